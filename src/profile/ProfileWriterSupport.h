// ProfileWriterSupport: what several profile writers share, kept internal
// to src/profile.
//
// Labels come from the target (function, file and thread names), so before
// any writer uses one it becomes a "plain label": invalid UTF-8 is replaced
// by U+FFFD (every format here is UTF-8 text or holds UTF-8 strings) and
// control characters become visible escapes (\n, \x1b, ...), because every
// consumer prints labels somewhere: a terminal (go tool pprof -top), a line
// based file (collapsed), an SVG. Using one function everywhere keeps a
// frame's name identical across formats.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include "profile/Profile.h"
#include "profile/ProfileWriter.h"

namespace stackpeek::profile_writer {

/// U+FFFD for invalid UTF-8, then visible escapes for control characters.
std::string plainText(llvm::StringRef text);

/// plainText(profile.label(id)), "??" if that is empty.
std::string plainLabel(const Profile &profile, FrameId id);

/// "python", "native" or "synthetic" (a thread/process label, not code).
llvm::StringRef frameKindName(const ProfileFrame &frame);

/// Fails if a sample names a stack, or a stack a frame, that is not there.
llvm::Error checkProfile(const Profile &profile);

/// The wall time a sample stands for: its weightNs, or 1/rateHz when the
/// sampler left it 0 (0 if neither is known).
uint64_t sampleWeightNs(const Profile &profile, const ProfileSample &sample);

/// Samples per stack id (index = StackId).
std::vector<uint64_t> samplesPerStack(const Profile &profile);

llvm::Error writeCollapsed(const Profile &profile, llvm::raw_ostream &out);
llvm::Error writeFlamegraph(const Profile &profile, llvm::raw_ostream &out,
                            const ProfileWriteOptions &options);
llvm::Error writeSpeedscope(const Profile &profile, llvm::raw_ostream &out,
                            const ProfileWriteOptions &options);
llvm::Error writePprof(const Profile &profile, llvm::raw_ostream &out);
llvm::Error writeJsonSamples(const Profile &profile, llvm::raw_ostream &out);

} // namespace stackpeek::profile_writer
