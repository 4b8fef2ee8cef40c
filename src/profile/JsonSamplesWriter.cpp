// JsonSamplesWriter: every sample, unaggregated, as one JSON document.
//
// For people who build their own analyses: the other formats aggregate or
// reshape, this one keeps each sample's time, pid and tid. Frames are
// listed once and samples refer to them by index, innermost first (like
// the Profile and `dump --format json`). Field meanings are the contract in
// docs/profile-formats.md. It is streamed with json::OStream because a long
// recording holds millions of samples; strings are made valid UTF-8 (JSON
// requires it) but otherwise kept as the target gave them, and absent facts
// are null.
#include "llvm/Support/JSON.h"

#include "text/Escape.h"
#include "profile/ProfileWriterSupport.h"

namespace stackpeek::profile_writer {

namespace {

template <class T>
void optionalAttribute(llvm::json::OStream &j, llvm::StringRef key, const std::optional<T> &v) {
  if (!v)
    j.attribute(key, nullptr);
  else if constexpr (std::is_same_v<T, std::string>)
    j.attribute(key, sanitizeUtf8(*v));
  else
    j.attribute(key, static_cast<int64_t>(*v));
}

void writeFrame(llvm::json::OStream &j, const ProfileFrame &f) {
  j.object([&] {
    j.attribute("kind", frameKindName(f));
    j.attribute("function", sanitizeUtf8(f.function));
    optionalAttribute(j, "file", f.file);
    optionalAttribute(j, "line", f.line);
    optionalAttribute(j, "module", f.module);
  });
}

void writeSample(llvm::json::OStream &j, const Profile &profile, const ProfileSample &s) {
  j.object([&] {
    j.attribute("t_ns", static_cast<int64_t>(s.timestampNs));
    j.attribute("pid", static_cast<int64_t>(s.pid));
    j.attribute("tid", static_cast<int64_t>(s.tid));
    j.attribute("weight_ns", static_cast<int64_t>(sampleWeightNs(profile, s)));
    j.attributeArray("frames", [&] {
      for (FrameId f : profile.stacks[s.stack])
        j.value(static_cast<int64_t>(f));
    });
  });
}

} // namespace

llvm::Error writeJsonSamples(const Profile &profile, llvm::raw_ostream &out) {
  llvm::json::OStream j(out);
  j.object([&] {
    j.attribute("format", "stackpeek-samples");
    j.attribute("version", 1);
    j.attribute("rate_hz", profile.rateHz);
    j.attribute("duration_ns", static_cast<int64_t>(profile.durationNs));
    j.attributeArray("processes", [&] {
      for (const ProfileProcess &p : profile.processes)
        j.object([&] {
          j.attribute("pid", static_cast<int64_t>(p.pid));
          j.attribute("command", sanitizeUtf8(p.command));
        });
    });
    j.attributeArray("threads", [&] {
      for (const ProfileThread &t : profile.threads)
        j.object([&] {
          j.attribute("pid", static_cast<int64_t>(t.pid));
          j.attribute("tid", static_cast<int64_t>(t.tid));
          j.attribute("name", sanitizeUtf8(t.name));
        });
    });
    j.attributeArray("frames", [&] {
      for (const ProfileFrame &f : profile.frames)
        writeFrame(j, f);
    });
    j.attributeArray("samples", [&] {
      for (const ProfileSample &s : profile.samples)
        writeSample(j, profile, s);
    });
  });
  out << '\n';
  return llvm::Error::success();
}

} // namespace stackpeek::profile_writer
