// Target-chosen text must never reach a terminal as control sequences, and
// JSON must stay valid UTF-8 whatever bytes the target holds.
#include <gtest/gtest.h>

#include "llvm/Support/JSON.h"

#include "text/Escape.h"

using stackpeek::escapeForTerminal;
using stackpeek::sanitizeUtf8;

TEST(Escape, PlainTextPassesThrough) {
  EXPECT_EQ(escapeForTerminal("worker-3 données ☃"), "worker-3 données ☃");
}

TEST(Escape, ControlCharactersBecomeVisible) {
  EXPECT_EQ(escapeForTerminal("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(escapeForTerminal("line\nnext\ttab\r"), "line\\nnext\\ttab\\r");
  EXPECT_EQ(escapeForTerminal(llvm::StringRef("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(escapeForTerminal("del\x7f"), "del\\x7f");
}

TEST(Escape, C1ControlsAreEscaped) {
  // U+009B (CSI) encoded as UTF-8 is C2 9B; some terminals act on it.
  EXPECT_EQ(escapeForTerminal("x\xc2\x9b" "31m"), "x\\u{9b}31m");
}

TEST(Escape, InvalidUtf8BytesAreEscaped) {
  EXPECT_EQ(escapeForTerminal("bad\xff\xfe"), "bad\\xff\\xfe");
  EXPECT_EQ(escapeForTerminal("trunc\xe2\x98"), "trunc\\xe2\\x98");
  EXPECT_EQ(escapeForTerminal("overlong\xc0\xaf"), "overlong\\xc0\\xaf");
}

TEST(Escape, JsonSanitizingYieldsValidUtf8) {
  std::string fixed = sanitizeUtf8("ok\xff" "end");
  EXPECT_TRUE(llvm::json::isUTF8(fixed));
  EXPECT_NE(fixed.find("\xef\xbf\xbd"), std::string::npos); // U+FFFD marks it
  EXPECT_EQ(sanitizeUtf8("fine ☃"), "fine ☃");
}
