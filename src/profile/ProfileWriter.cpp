// ProfileWriter: format names, file-name suffixes, and the dispatch to one
// writer per format (CollapsedWriter.cpp, FlamegraphWriter.cpp, ...).
//
// Suffixes are matched longest first, so "out.speedscope.json" is
// speedscope and not the raw-samples json.
#include "profile/ProfileWriter.h"

#include <cmath>

#include "text/Escape.h"
#include "profile/ProfileWriterSupport.h"

namespace stackpeek {

namespace {

struct NamedFormat {
  const char *name;
  ProfileFormat format;
};
const NamedFormat kNames[] = {
    {"collapsed", ProfileFormat::Collapsed}, {"flamegraph", ProfileFormat::Flamegraph},
    {"speedscope", ProfileFormat::Speedscope}, {"pprof", ProfileFormat::Pprof},
    {"json", ProfileFormat::Json},
};

// Longest suffixes first: ".speedscope.json" must win over ".json". pprof
// reads its profile gzipped or not, so .pprof and .pb get the same bytes as
// .pb.gz.
const NamedFormat kSuffixes[] = {
    {".speedscope.json", ProfileFormat::Speedscope}, {".pb.gz", ProfileFormat::Pprof},
    {".pprof", ProfileFormat::Pprof},                {".pb", ProfileFormat::Pprof},
    {".folded", ProfileFormat::Collapsed},           {".svg", ProfileFormat::Flamegraph},
    {".txt", ProfileFormat::Collapsed},              {".json", ProfileFormat::Json},
};

} // namespace

std::optional<ProfileFormat> formatFromFileName(llvm::StringRef path) {
  for (const NamedFormat &s : kSuffixes)
    if (path.size() > strlen(s.name) && path.endswith_insensitive(s.name))
      return s.format;
  return std::nullopt;
}

std::optional<ProfileFormat> formatFromName(llvm::StringRef name) {
  for (const NamedFormat &n : kNames)
    if (name == n.name)
      return n.format;
  return std::nullopt;
}

llvm::StringRef profileFormatName(ProfileFormat format) {
  for (const NamedFormat &n : kNames)
    if (n.format == format)
      return n.name;
  return "?";
}

llvm::Error writeProfile(const Profile &profile, ProfileFormat format, llvm::raw_ostream &out,
                         const ProfileWriteOptions &options) {
  using namespace profile_writer;
  if (llvm::Error e = checkProfile(profile))
    return e;
  switch (format) {
  case ProfileFormat::Collapsed: return writeCollapsed(profile, out);
  case ProfileFormat::Flamegraph: return writeFlamegraph(profile, out, options);
  case ProfileFormat::Speedscope: return writeSpeedscope(profile, out, options);
  case ProfileFormat::Pprof: return writePprof(profile, out);
  case ProfileFormat::Json: return writeJsonSamples(profile, out);
  }
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "unknown profile format");
}

namespace profile_writer {

std::string plainText(llvm::StringRef text) { return escapeForTerminal(sanitizeUtf8(text)); }

std::string plainLabel(const Profile &profile, FrameId id) {
  std::string label = plainText(profile.label(id));
  return label.empty() ? "??" : label;
}

llvm::StringRef frameKindName(const ProfileFrame &frame) {
  if (frame.synthetic)
    return "synthetic";
  return frame.kind == Frame::Kind::Python ? "python" : "native";
}

llvm::Error checkProfile(const Profile &profile) {
  auto bad = [](const char *what, size_t index) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "profile is inconsistent: %s %zu refers past the end", what,
                                   index);
  };
  for (size_t i = 0; i < profile.samples.size(); ++i)
    if (profile.samples[i].stack >= profile.stacks.size())
      return bad("sample", i);
  for (size_t i = 0; i < profile.stacks.size(); ++i)
    for (FrameId f : profile.stacks[i])
      if (f >= profile.frames.size())
        return bad("stack", i);
  return llvm::Error::success();
}

uint64_t sampleWeightNs(const Profile &profile, const ProfileSample &sample) {
  if (sample.weightNs != 0 || profile.rateHz <= 0)
    return sample.weightNs;
  return static_cast<uint64_t>(std::llround(1e9 / profile.rateHz));
}

std::vector<uint64_t> samplesPerStack(const Profile &profile) {
  std::vector<uint64_t> counts(profile.stacks.size(), 0);
  for (const ProfileSample &s : profile.samples)
    ++counts[s.stack];
  return counts;
}

} // namespace profile_writer

} // namespace stackpeek
