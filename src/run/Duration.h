// Duration: parse and print the time spans of `stackpeek run` options.
//
// The syntax is GNU timeout's, widened a little because CI configs are
// written by hand: a non-negative decimal number with an optional unit,
// "ms", "s", "m", "h" or "d" ("90" is 90 seconds, "1.5s", "500ms", "15m",
// "1h"). Spaces, signs, exponents and other units are rejected so a typo
// ("15 min", "-5") is an error instead of a surprising timeout.
#pragma once

#include <chrono>
#include <string>

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace stackpeek {

using Duration = std::chrono::nanoseconds;

/// The longest accepted span (~100 years); keeps arithmetic far from overflow.
constexpr Duration kMaxDuration = std::chrono::hours(24 * 365 * 100);

/// "90", "90s", "1.5s", "500ms", "15m", "1h", "2d" -> nanoseconds.
llvm::Expected<Duration> parseDuration(llvm::StringRef text);

/// A short human form: "500ms", "3s", "1.5s", "15m", "1h30m".
std::string formatDuration(Duration d);

} // namespace stackpeek
