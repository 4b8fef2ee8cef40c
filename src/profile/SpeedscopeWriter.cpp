// SpeedscopeWriter: speedscope's own JSON file format
// (https://www.speedscope.app/file-format-schema.json; the schema the
// speedscope npm package ships is vendored in tests/data for the tests).
//
// Domain facts: a file holds `shared.frames` ({name, file?, line?}) and a
// list of profiles; a "sampled" profile has `samples` (each a list of
// indexes into shared.frames, OUTERMOST first, in time order) and one
// weight per sample in `unit`. speedscope's time-order view lays samples
// end to end, so each thread gets its own profile ("pid P tid T NAME") and
// its samples are sorted by time. Weights are the wall time each sample
// stands for, in nanoseconds (unit "nanoseconds"), so speedscope shows
// durations; endValue is the sum of the weights. shared.frames is the
// Profile's frame table, so frame index = FrameId.
#include <algorithm>
#include <map>

#include "llvm/Support/JSON.h"

#include "profile/ProfileWriterSupport.h"

namespace stackpeek::profile_writer {

namespace {

using ThreadKey = std::pair<pid_t, pid_t>; // pid, tid

// Sample indexes per thread, each list in time order.
std::map<ThreadKey, std::vector<size_t>> samplesByThread(const Profile &profile) {
  std::map<ThreadKey, std::vector<size_t>> byThread;
  for (size_t i = 0; i < profile.samples.size(); ++i)
    byThread[{profile.samples[i].pid, profile.samples[i].tid}].push_back(i);
  for (auto &[key, indexes] : byThread)
    std::stable_sort(indexes.begin(), indexes.end(), [&](size_t a, size_t b) {
      return profile.samples[a].timestampNs < profile.samples[b].timestampNs;
    });
  return byThread;
}

std::string threadTitle(const Profile &profile, ThreadKey key) {
  std::string title = "pid " + std::to_string(key.first) + " tid " + std::to_string(key.second);
  for (const ProfileThread &t : profile.threads)
    if (t.pid == key.first && t.tid == key.second && !t.name.empty())
      return title + " " + plainText(t.name);
  return title;
}

void writeFrames(llvm::json::OStream &j, const Profile &profile) {
  j.attributeObject("shared", [&] {
    j.attributeArray("frames", [&] {
      for (FrameId id = 0; id < profile.frames.size(); ++id) {
        const ProfileFrame &f = profile.frames[id];
        j.object([&] {
          j.attribute("name", plainLabel(profile, id));
          // speedscope shows `file` in its details pane; for native code
          // without debug info the module is the best "where".
          if (auto where = f.file ? f.file : f.module)
            j.attribute("file", plainText(*where));
          if (f.line)
            j.attribute("line", static_cast<int64_t>(*f.line));
        });
      }
    });
  });
}

void writeThread(llvm::json::OStream &j, const Profile &profile, ThreadKey key,
                 const std::vector<size_t> &indexes) {
  uint64_t total = 0;
  for (size_t i : indexes)
    total += sampleWeightNs(profile, profile.samples[i]);
  j.object([&] {
    j.attribute("type", "sampled");
    j.attribute("name", threadTitle(profile, key));
    j.attribute("unit", "nanoseconds");
    j.attribute("startValue", 0);
    j.attribute("endValue", static_cast<int64_t>(total));
    j.attributeArray("samples", [&] {
      for (size_t i : indexes) {
        const std::vector<FrameId> &stack = profile.stacks[profile.samples[i].stack];
        j.array([&] {
          for (auto it = stack.rbegin(); it != stack.rend(); ++it) // outermost first
            j.value(static_cast<int64_t>(*it));
        });
      }
    });
    j.attributeArray("weights", [&] {
      for (size_t i : indexes)
        j.value(static_cast<int64_t>(sampleWeightNs(profile, profile.samples[i])));
    });
  });
}

} // namespace

llvm::Error writeSpeedscope(const Profile &profile, llvm::raw_ostream &out,
                            const ProfileWriteOptions &options) {
  llvm::json::OStream j(out);
  j.object([&] {
    j.attribute("$schema", "https://www.speedscope.app/file-format-schema.json");
    j.attribute("exporter", "stackpeek " STACKPEEK_VERSION);
    j.attribute("name", plainText(options.title));
    j.attribute("activeProfileIndex", 0);
    writeFrames(j, profile);
    j.attributeArray("profiles", [&] {
      for (const auto &[key, indexes] : samplesByThread(profile))
        writeThread(j, profile, key, indexes);
    });
  });
  out << '\n';
  return llvm::Error::success();
}

} // namespace stackpeek::profile_writer
