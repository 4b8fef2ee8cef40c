// Duration parsing: digits, at most one '.', then a unit from a fixed table.
// Parsed by hand (not strtod) so locale, exponents, "inf" and "nan" can never
// sneak in, and the value is computed in integer nanoseconds.
#include "run/Duration.h"

#include <cstdint>

namespace stackpeek {

namespace {

llvm::Error badDuration(llvm::StringRef text, llvm::StringRef why) {
  return llvm::createStringError(
      llvm::inconvertibleErrorCode(),
      "invalid duration '" + text.str() + "': " + why.str() +
          " (use e.g. 90, 90s, 1.5s, 500ms, 15m, 1h)");
}

// Nanoseconds per unit; an empty unit means seconds, as in GNU timeout.
bool unitNanos(llvm::StringRef unit, uint64_t &nanos) {
  if (unit.empty() || unit == "s")
    nanos = 1'000'000'000ull;
  else if (unit == "ms")
    nanos = 1'000'000ull;
  else if (unit == "m")
    nanos = 60'000'000'000ull;
  else if (unit == "h")
    nanos = 3'600'000'000'000ull;
  else if (unit == "d")
    nanos = 86'400'000'000'000ull;
  else
    return false;
  return true;
}

} // namespace

llvm::Expected<Duration> parseDuration(llvm::StringRef text) {
  size_t numberEnd = 0;
  while (numberEnd < text.size() &&
         (llvm::isDigit(text[numberEnd]) || text[numberEnd] == '.'))
    ++numberEnd;
  llvm::StringRef number = text.take_front(numberEnd);
  llvm::StringRef unit = text.drop_front(numberEnd);
  auto [whole, fraction] = number.split('.');
  if (whole.empty() && fraction.empty())
    return badDuration(text, "expected a number");
  if (fraction.contains('.'))
    return badDuration(text, "more than one '.'");
  uint64_t perUnit = 0;
  if (!unitNanos(unit, perUnit))
    return badDuration(text, "unknown unit '" + unit.str() + "'");
  // Integer part: stop before it could exceed the maximum.
  const uint64_t limit = static_cast<uint64_t>(kMaxDuration.count());
  uint64_t nanos = 0;
  for (char c : whole) {
    nanos = nanos * 10 + static_cast<uint64_t>(c - '0');
    if (nanos > limit / perUnit)
      return badDuration(text, "too long");
  }
  nanos *= perUnit;
  // Fraction: each digit is worth a tenth of the previous one; digits below
  // a nanosecond are dropped.
  uint64_t scale = perUnit;
  for (char c : fraction) {
    scale /= 10;
    nanos += static_cast<uint64_t>(c - '0') * scale;
  }
  if (nanos > limit)
    return badDuration(text, "too long");
  return Duration(static_cast<int64_t>(nanos));
}

std::string formatDuration(Duration d) {
  using namespace std::chrono;
  int64_t ns = d.count();
  if (ns < 0)
    ns = 0;
  if (ns % 1'000'000'000 != 0 && ns < 10'000'000'000) {
    if (ns < 1'000'000'000)
      return std::to_string(ns / 1'000'000) + "ms";
    // Tenths of a second read better than "1500ms".
    return std::to_string(ns / 1'000'000'000) + "." +
           std::to_string((ns / 100'000'000) % 10) + "s";
  }
  int64_t s = ns / 1'000'000'000;
  if (s < 60 || (s % 60 != 0 && s < 3600))
    return std::to_string(s) + "s";
  std::string out;
  if (s >= 3600)
    out += std::to_string(s / 3600) + "h";
  if (s % 3600 / 60)
    out += std::to_string(s % 3600 / 60) + "m";
  if (s % 60)
    out += std::to_string(s % 60) + "s";
  return out;
}

} // namespace stackpeek
