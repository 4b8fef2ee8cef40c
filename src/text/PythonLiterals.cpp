#include "text/PythonLiterals.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace stackpeek {

void appendUtf8(std::string &out, uint32_t cp) {
  if (cp >= 0xD800 && cp <= 0xDFFF)
    cp = 0xFFFD;
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

namespace {

// Non-printable non-ASCII ranges (Unicode Cc, Cf, Zs, Zl, Zp, Cs, Co, and
// the noncharacters U+FFFE/U+FFFF), which a 3.x str repr escapes.
struct Range { uint32_t lo, hi; };
constexpr Range kNonPrintable[] = {
    {0x80, 0xA0},       {0xAD, 0xAD},       {0x600, 0x605},
    {0x61C, 0x61C},     {0x6DD, 0x6DD},     {0x70F, 0x70F},
    {0x8E2, 0x8E2},     {0x1680, 0x1680},   {0x180E, 0x180E},
    {0x2000, 0x200F},   {0x2028, 0x202F},   {0x205F, 0x2064},
    {0x2066, 0x206F},   {0x3000, 0x3000},   {0xD800, 0xF8FF},
    {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0xFFFE, 0xFFFF},
    {0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x1343F},
    {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
    {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF},
};

bool printableNonAscii(uint32_t cp) {
  if (cp > 0x10FFFF)
    return false;
  for (const Range &r : kNonPrintable)
    if (cp >= r.lo && cp <= r.hi)
      return false;
  return true;
}

void appendHexEscape(std::string &out, uint32_t cp) {
  char buf[16];
  if (cp <= 0xFF)
    snprintf(buf, sizeof buf, "\\x%02x", cp);
  else if (cp <= 0xFFFF)
    snprintf(buf, sizeof buf, "\\u%04x", cp);
  else
    snprintf(buf, sizeof buf, "\\U%08x", cp);
  out += buf;
}

template <class Seq> char chooseQuote(const Seq &s) {
  bool single = false, dbl = false;
  for (auto c : s) {
    single |= c == '\'';
    dbl |= c == '"';
  }
  return single && !dbl ? '"' : '\'';
}

// The escapes every repr shares; returns false for other characters.
bool commonEscape(std::string &out, uint32_t c, char quote) {
  if (c == uint32_t(quote) || c == '\\') {
    out += '\\';
    out += char(c);
  } else if (c == '\t') {
    out += "\\t";
  } else if (c == '\n') {
    out += "\\n";
  } else if (c == '\r') {
    out += "\\r";
  } else if (c < ' ' || c == 0x7F) {
    appendHexEscape(out, c);
  } else {
    return false;
  }
  return true;
}

} // namespace

std::string codePointsToString(const std::vector<uint32_t> &cps) {
  std::string out;
  for (uint32_t cp : cps)
    appendUtf8(out, cp > 0x10FFFF ? 0xFFFD : cp);
  return out;
}

std::string strRepr(const std::vector<uint32_t> &cps) {
  char quote = chooseQuote(cps);
  std::string out(1, quote);
  for (uint32_t c : cps) {
    if (commonEscape(out, c, quote))
      continue;
    if (c < 0x7F || printableNonAscii(c))
      appendUtf8(out, c);
    else
      appendHexEscape(out, c);
  }
  return out + quote;
}

// The repr of ASCII-only quoting: printable ASCII as is, the rest escaped
// (bytes, and 2.7 unicode, whose repr escapes every non-ASCII character).
template <class Units>
std::string asciiQuotedRepr(const Units &units, const char *prefix) {
  char quote = chooseQuote(units);
  std::string out = prefix;
  out += quote;
  for (uint32_t c : units) {
    if (commonEscape(out, c, quote))
      continue;
    if (c < 0x7F)
      out += char(c);
    else
      appendHexEscape(out, c);
  }
  return out + quote;
}

std::string unicodeRepr2(const std::vector<uint32_t> &cps) {
  return asciiQuotedRepr(cps, "u");
}

std::string bytesRepr(const std::vector<uint8_t> &bytes, bool prefix) {
  return asciiQuotedRepr(bytes, prefix ? "b" : "");
}

std::string floatRepr(double v) {
  if (std::isnan(v))
    return "nan";
  if (std::isinf(v))
    return v < 0 ? "-inf" : "inf";
  // Shortest round-trip digits in scientific form: "-d.ddde±xx".
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool negative = sci[0] == '-';
  if (negative)
    sci.erase(0, 1);
  size_t e = sci.find('e');
  int exp10 = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.')
      digits += c;
  while (digits.size() > 1 && digits.back() == '0')
    digits.pop_back();
  int decpt = exp10 + 1; // value = 0.DIGITS * 10^decpt
  std::string out = negative ? "-" : "";
  if (digits == "0") {
    return out + "0.0";
  }
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(size_t(-decpt), '0') + digits;
    } else if (size_t(decpt) >= digits.size()) {
      out += digits + std::string(decpt - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, decpt) + "." + digits.substr(decpt);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1)
    out += "." + digits.substr(1);
  char ebuf[16];
  snprintf(ebuf, sizeof ebuf, "e%c%02d", decpt - 1 < 0 ? '-' : '+',
           std::abs(decpt - 1));
  return out + ebuf;
}

std::string digitsToDecimal(std::vector<uint32_t> digits) {
  while (!digits.empty() && digits.back() == 0)
    digits.pop_back();
  if (digits.empty())
    return "0";
  std::vector<uint32_t> chunks; // base 10^9, little-endian
  while (!digits.empty()) {
    uint64_t rem = 0;
    for (size_t i = digits.size(); i-- > 0;) {
      uint64_t cur = (rem << 30) | (digits[i] & 0x3FFFFFFF);
      digits[i] = uint32_t(cur / 1000000000);
      rem = cur % 1000000000;
    }
    chunks.push_back(uint32_t(rem));
    while (!digits.empty() && digits.back() == 0)
      digits.pop_back();
  }
  std::string out = std::to_string(chunks.back());
  for (size_t i = chunks.size() - 1; i-- > 0;) {
    char buf[16];
    snprintf(buf, sizeof buf, "%09u", chunks[i]);
    out += buf;
  }
  return out;
}

} // namespace stackpeek
