// PythonLiterals: how Python writes values, with no target memory involved.
//
// The reprs of `dump --locals` are built from objects read out of a target,
// but the formatting itself is pure: a float's shortest round-trip digits
// and repr's exponent rules (`1.0`, `1e+16`, `1e-05`, `inf`, `nan`); a str's
// quotes and escapes (`'` unless the text holds `'` and no `"`; `\\`, the
// quote, `\t \n \r`, `\xhh` for other controls, `\xhh \uhhhh \Uhhhhhhhh`
// for non-printable non-ASCII code points, by a table approximating
// str.isprintable()); bytes and 2.7 unicode, which escape everything outside
// printable ASCII; the decimal digits of an int held as 30-bit digits. It
// lives here, below the decoders, so it can be tested on its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stackpeek {

/// Appends code point `cp` as UTF-8; surrogates (which CPython strings may
/// hold but UTF-8 cannot) become U+FFFD.
void appendUtf8(std::string &out, uint32_t cp);

/// Python's repr of a double (shortest round-trip, repr's exponent rules).
std::string floatRepr(double v);

/// Python 3's repr of a str given as code points (quotes and escapes).
std::string strRepr(const std::vector<uint32_t> &codePoints);

/// Python 2's repr of a unicode object (u'...', non-ASCII escaped).
std::string unicodeRepr2(const std::vector<uint32_t> &codePoints);

/// Python 3's repr of bytes (b'...'); 2.7 str without the prefix.
std::string bytesRepr(const std::vector<uint8_t> &bytes, bool prefix);

/// Decimal digits of a magnitude given as little-endian 30-bit digits.
std::string digitsToDecimal(std::vector<uint32_t> digits);

/// The UTF-8 encoding of code points (lone surrogates become U+FFFD).
std::string codePointsToString(const std::vector<uint32_t> &codePoints);

} // namespace stackpeek
