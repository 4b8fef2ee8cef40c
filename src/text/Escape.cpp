#include "text/Escape.h"

#include "llvm/Support/JSON.h"

namespace stackpeek {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t utf8SequenceLength(llvm::StringRef s, size_t i, uint32_t &codepoint) {
  auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t b0 = byte(i);
  size_t len;
  uint32_t cp;
  if (b0 < 0x80) { codepoint = b0; return 1; }
  if ((b0 & 0xe0) == 0xc0) { len = 2; cp = b0 & 0x1f; }
  else if ((b0 & 0xf0) == 0xe0) { len = 3; cp = b0 & 0x0f; }
  else if ((b0 & 0xf8) == 0xf0) { len = 4; cp = b0 & 0x07; }
  else return 0;
  if (i + len > s.size())
    return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  // Reject overlong forms, surrogates and values past U+10FFFF.
  static const uint32_t minimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < minimum[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  codepoint = cp;
  return len;
}

void appendHexByte(std::string &out, uint8_t b) {
  static const char digits[] = "0123456789abcdef";
  out += "\\x";
  out += digits[b >> 4];
  out += digits[b & 15];
}

void appendC1(std::string &out, uint32_t cp) {
  static const char digits[] = "0123456789abcdef";
  out += "\\u{";
  out += digits[(cp >> 4) & 15];
  out += digits[cp & 15];
  out += '}';
}

} // namespace

std::string escapeForTerminal(llvm::StringRef text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    size_t len = utf8SequenceLength(text, i, cp);
    if (len == 0) {
      appendHexByte(out, static_cast<uint8_t>(text[i]));
      ++i;
      continue;
    }
    if (cp == '\n') out += "\\n";
    else if (cp == '\t') out += "\\t";
    else if (cp == '\r') out += "\\r";
    else if (cp < 0x20 || cp == 0x7f) appendHexByte(out, static_cast<uint8_t>(cp));
    else if (cp >= 0x80 && cp < 0xa0) appendC1(out, cp); // e.g. U+009B, the CSI introducer
    else out.append(text.data() + i, len);
    i += len;
  }
  return out;
}

std::string sanitizeUtf8(llvm::StringRef text) {
  if (llvm::json::isUTF8(text))
    return text.str();
  return llvm::json::fixUTF8(text);
}

} // namespace stackpeek
