// The pure formatting of Python values (text/PythonLiterals.h), against
// what CPython's repr() prints for the same values.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "text/PythonLiterals.h"

using namespace stackpeek;

namespace {

TEST(PythonLiterals, FloatsFollowPythonRepr) {
  EXPECT_EQ(floatRepr(1.0), "1.0");
  EXPECT_EQ(floatRepr(0.1), "0.1");
  EXPECT_EQ(floatRepr(-0.0), "-0.0");
  EXPECT_EQ(floatRepr(1e16), "1e+16");
  EXPECT_EQ(floatRepr(1e15), "1000000000000000.0");
  EXPECT_EQ(floatRepr(1e-4), "0.0001");
  EXPECT_EQ(floatRepr(1e-5), "1e-05");
  EXPECT_EQ(floatRepr(1.5e-5), "1.5e-05");
  EXPECT_EQ(floatRepr(123456789.123), "123456789.123");
  EXPECT_EQ(floatRepr(1e22), "1e+22");
  EXPECT_EQ(floatRepr(5e-324), "5e-324");
  EXPECT_EQ(floatRepr(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(floatRepr(-2.5e-300), "-2.5e-300");
  EXPECT_EQ(floatRepr(1.0 / 0.0), "inf");
  EXPECT_EQ(floatRepr(-1.0 / 0.0), "-inf");
  EXPECT_EQ(floatRepr(std::nan("")), "nan");
}

std::vector<uint32_t> cps(const std::u32string &s) { return {s.begin(), s.end()}; }

TEST(PythonLiterals, StrQuotesAndEscapes) {
  EXPECT_EQ(strRepr(cps(U"plain")), "'plain'");
  EXPECT_EQ(strRepr(cps(U"it's")), "\"it's\"");
  EXPECT_EQ(strRepr(cps(U"it's \"x\"")), "'it\\'s \"x\"'");
  EXPECT_EQ(strRepr({'t', '\t', 'n', '\n', 'r', '\r', 'z', 0, 0x7f, '\\'}),
            "'t\\tn\\nr\\rz\\x00\\x7f\\\\'");
  EXPECT_EQ(strRepr(cps(U"h\u00e9 \u65e5 \U0001F600")), "'h\u00e9 \u65e5 \U0001F600'");
  EXPECT_EQ(strRepr(cps(U"\u00a0\u200b\U000E0041\xad")), "'\\xa0\\u200b\\U000e0041\\xad'");
  EXPECT_EQ(strRepr({0xD800}), "'\\ud800'");
  EXPECT_EQ(unicodeRepr2(cps(U"h\u00e9\u65e5")), "u'h\\xe9\\u65e5'");
  EXPECT_EQ(bytesRepr({'a', 0, 0xff, '\''}, true), "b\"a\\x00\\xff'\"");
  EXPECT_EQ(bytesRepr({'a'}, false), "'a'");
}

TEST(PythonLiterals, BigIntsInDecimal) {
  EXPECT_EQ(digitsToDecimal({}), "0");
  EXPECT_EQ(digitsToDecimal({42}), "42");
  // 2**70 = digits (0, 0, 1024) in base 2**30.
  EXPECT_EQ(digitsToDecimal({0, 0, 1024}), "1180591620717411303424");
  // 10**18 - 1
  uint64_t v = 999999999999999999ull;
  EXPECT_EQ(digitsToDecimal({uint32_t(v & 0x3fffffff), uint32_t((v >> 30) & 0x3fffffff)}),
            "999999999999999999");
}

TEST(PythonLiterals, Utf8OfCodePoints) {
  EXPECT_EQ(codePointsToString({'a', 0xe9, 0x65e5, 0x1F600}), "a\u00e9\u65e5\U0001F600");
  EXPECT_EQ(codePointsToString({0xD800, 0x110000}), "\uFFFD\uFFFD");
}

} // namespace
