// WriterTestSupport: helpers for the profile writer unit tests
// (tests/unit/profile_*.cpp): write a profile to a string, and the label
// rules the writers promise (Profile::label, invalid UTF-8 -> U+FFFD,
// control characters made visible), restated from the public pieces so the
// tests compute expectations from the profile, not from writer output.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "llvm/ADT/Optional.h"

#include "profile/ProfileWriter.h"
#include "text/Escape.h"

namespace stackpeek::writer_test {

inline std::string writeToString(const Profile &p, ProfileFormat format,
                                 const ProfileWriteOptions &options = {}) {
  std::string out;
  llvm::raw_string_ostream os(out);
  llvm::Error e = writeProfile(p, format, os, options);
  EXPECT_FALSE(static_cast<bool>(e)) << llvm::toString(std::move(e));
  os.flush();
  return out;
}

inline std::string expectedLabel(const Profile &p, FrameId id) {
  std::string l = escapeForTerminal(sanitizeUtf8(p.label(id)));
  return l.empty() ? "??" : l;
}

// llvm::Optional (LLVM 14) results as plain values gtest can compare and
// print; an absent value becomes a marker that matches no expectation.
inline std::string got(llvm::Optional<llvm::StringRef> v) { return v ? v->str() : "<absent>"; }
inline int64_t got(llvm::Optional<int64_t> v) { return v ? *v : INT64_MIN; }
inline double got(llvm::Optional<double> v) { return v ? *v : -1e300; }

} // namespace stackpeek::writer_test
