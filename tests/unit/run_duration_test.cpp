// Unit tests of run/Duration: the forms CI configs use, and the typos that
// must be errors rather than surprising timeouts.
#include <gtest/gtest.h>

#include "run/Duration.h"

using namespace stackpeek;
using namespace std::chrono_literals;

namespace {

Duration parsed(const char *text) {
  auto d = parseDuration(text);
  EXPECT_TRUE(static_cast<bool>(d)) << text;
  if (!d) {
    llvm::consumeError(d.takeError());
    return Duration(-1);
  }
  return *d;
}

bool rejected(const char *text) {
  auto d = parseDuration(text);
  if (d)
    return false;
  llvm::consumeError(d.takeError());
  return true;
}

} // namespace

TEST(RunDuration, PlainNumberIsSeconds) {
  EXPECT_EQ(parsed("90"), 90s);
  EXPECT_EQ(parsed("0"), 0s);
}

TEST(RunDuration, Units) {
  EXPECT_EQ(parsed("90s"), 90s);
  EXPECT_EQ(parsed("15m"), 15min);
  EXPECT_EQ(parsed("1h"), 1h);
  EXPECT_EQ(parsed("2d"), 48h);
  EXPECT_EQ(parsed("500ms"), 500ms);
}

TEST(RunDuration, Fractions) {
  EXPECT_EQ(parsed("1.5s"), 1500ms);
  EXPECT_EQ(parsed("1.5"), 1500ms);
  EXPECT_EQ(parsed("0.25m"), 15s);
  EXPECT_EQ(parsed(".5s"), 500ms);
  EXPECT_EQ(parsed("2."), 2s);
  EXPECT_EQ(parsed("0.000000001s"), 1ns);
  EXPECT_EQ(parsed("0.0000000001s"), 0ns); // below a nanosecond: dropped
}

TEST(RunDuration, RejectsTyposAndSigns) {
  for (const char *bad : {"", "s", ".", "-5", "+5", "5 s", " 5", "5min", "15M", "1e3",
                          "inf", "nan", "1.2.3", "1h30m", "0x10", "5sec"})
    EXPECT_TRUE(rejected(bad)) << "'" << bad << "'";
}

TEST(RunDuration, RejectsOverflow) {
  EXPECT_TRUE(rejected("99999999999999999999999"));
  EXPECT_TRUE(rejected("100000000d"));
  EXPECT_FALSE(rejected("36500d"));
}

TEST(RunDuration, ErrorSaysWhatToWrite) {
  auto d = parseDuration("5min");
  ASSERT_FALSE(static_cast<bool>(d));
  std::string message = llvm::toString(d.takeError());
  EXPECT_NE(message.find("5min"), std::string::npos) << message;
  EXPECT_NE(message.find("15m"), std::string::npos) << message;
}

TEST(RunDuration, Format) {
  EXPECT_EQ(formatDuration(500ms), "500ms");
  EXPECT_EQ(formatDuration(1500ms), "1.5s");
  EXPECT_EQ(formatDuration(3s), "3s");
  EXPECT_EQ(formatDuration(90s), "90s");
  EXPECT_EQ(formatDuration(15min), "15m");
  EXPECT_EQ(formatDuration(90min), "1h30m");
  EXPECT_EQ(formatDuration(1h), "1h");
}
