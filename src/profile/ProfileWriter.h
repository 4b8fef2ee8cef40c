// ProfileWriter: turns a recorded Profile into the file formats that
// existing profile viewers read, so `stackpeek record` needs no viewer of
// its own.
//
// Each format has one consumer it is validated against (see
// docs/profile-formats.md): collapsed stacks ("folded", one
// `outer;...;inner count` line per stack) for flamegraph.pl/inferno, a
// self-contained interactive SVG flame graph for a browser, speedscope's
// JSON file format, pprof's gzipped profile.proto for `go tool pprof`, and a
// raw-samples JSON for people who build their own tools. Writers only read
// the Profile, so every format is testable from a hand-built one.
#pragma once

#include <optional>
#include <string>

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include "profile/Profile.h"

namespace stackpeek {

enum class ProfileFormat { Collapsed, Flamegraph, Speedscope, Pprof, Json };

struct ProfileWriteOptions {
  std::string title = "stackpeek"; // flame graph heading, speedscope file name
};

/// From a file name: .svg flamegraph, .speedscope.json speedscope, .pb.gz
/// pprof, .txt/.folded collapsed, .json json; nullopt if unknown.
std::optional<ProfileFormat> formatFromFileName(llvm::StringRef path);

/// From a format name: "flamegraph", "speedscope", "pprof", "collapsed",
/// "json"; nullopt if unknown.
std::optional<ProfileFormat> formatFromName(llvm::StringRef name);

/// The name formatFromName accepts for `format`.
llvm::StringRef profileFormatName(ProfileFormat format);

/// Writes `profile` in `format`. Binary formats (pprof) write raw bytes.
/// Fails, writing nothing, if the profile refers to frames or stacks it
/// does not hold.
llvm::Error writeProfile(const Profile &profile, ProfileFormat format, llvm::raw_ostream &out,
                         const ProfileWriteOptions &options = {});

} // namespace stackpeek
