// speedscope: one sampled profile per thread, its samples in time order as
// frame indexes OUTERMOST first, weights in nanoseconds; shared.frames is
// the frame table in FrameId order. Schema conformance is checked by
// tests/profile/check_formats.py against speedscope's own schema.
#include <algorithm>
#include <map>

#include <gtest/gtest.h>

#include "llvm/Support/JSON.h"

#include "../profile/ProfileFixture.h"
#include "../profile/WriterTestSupport.h"

using namespace stackpeek;

namespace {

llvm::json::Value speedscope(const Profile &p) {
  ProfileWriteOptions options;
  options.title = "my title";
  auto v = llvm::json::parse(writer_test::writeToString(p, ProfileFormat::Speedscope, options));
  EXPECT_TRUE(static_cast<bool>(v));
  return v ? std::move(*v) : llvm::json::Value(nullptr);
}

std::vector<int64_t> ints(const llvm::json::Array &a) {
  std::vector<int64_t> out;
  for (const auto &v : a)
    out.push_back(*v.getAsInteger());
  return out;
}

} // namespace

TEST(ProfileSpeedscope, HeaderAndFrames) {
  Profile p = fixture::makeProfile();
  llvm::json::Value v = speedscope(p);
  const llvm::json::Object &o = *v.getAsObject();
  EXPECT_EQ(writer_test::got(o.getString("$schema")),
            "https://www.speedscope.app/file-format-schema.json");
  EXPECT_EQ(writer_test::got(o.getString("name")), "my title");
  const auto &frames = *o.getObject("shared")->getArray("frames");
  ASSERT_EQ(frames.size(), p.frames.size());
  for (FrameId id = 0; id < frames.size(); ++id) {
    const llvm::json::Object &f = *frames[id].getAsObject();
    EXPECT_EQ(writer_test::got(f.getString("name")), writer_test::expectedLabel(p, id));
    const ProfileFrame &want = p.frames[id];
    if (want.line)
      EXPECT_EQ(writer_test::got(f.getInteger("line")), int64_t(*want.line));
    else
      EXPECT_EQ(f.get("line"), nullptr);
    if (want.file)
      EXPECT_EQ(writer_test::got(f.getString("file")), *want.file);
  }
}

TEST(ProfileSpeedscope, OneProfilePerThreadInTimeOrder) {
  Profile p = fixture::makeProfile();
  std::map<std::pair<pid_t, pid_t>, std::vector<ProfileSample>> byThread;
  for (const ProfileSample &s : p.samples)
    byThread[{s.pid, s.tid}].push_back(s);
  llvm::json::Value v = speedscope(p);
  const auto &profiles = *v.getAsObject()->getArray("profiles");
  ASSERT_EQ(profiles.size(), byThread.size());
  size_t i = 0;
  for (auto &[key, samples] : byThread) {
    std::stable_sort(samples.begin(), samples.end(),
                     [](auto &a, auto &b) { return a.timestampNs < b.timestampNs; });
    const llvm::json::Object &prof = *profiles[i++].getAsObject();
    EXPECT_EQ(writer_test::got(prof.getString("type")), "sampled");
    EXPECT_EQ(writer_test::got(prof.getString("unit")), "nanoseconds");
    std::string title = "pid " + std::to_string(key.first) + " tid " + std::to_string(key.second);
    EXPECT_TRUE(llvm::StringRef(writer_test::got(prof.getString("name"))).startswith(title));
    const auto &got = *prof.getArray("samples");
    ASSERT_EQ(got.size(), samples.size());
    int64_t total = 0;
    for (size_t k = 0; k < samples.size(); ++k) {
      std::vector<int64_t> want(p.stacks[samples[k].stack].rbegin(),
                                p.stacks[samples[k].stack].rend()); // outermost first
      EXPECT_EQ(ints(*got[k].getAsArray()), want);
      total += samples[k].weightNs;
    }
    EXPECT_EQ(ints(*prof.getArray("weights")).size(), samples.size());
    EXPECT_EQ(writer_test::got(prof.getInteger("startValue")), 0);
    EXPECT_EQ(writer_test::got(prof.getInteger("endValue")), total);
  }
}

TEST(ProfileSpeedscope, ThreadNamesAreEscaped) {
  Profile p = fixture::makeProfile();
  llvm::json::Value v = speedscope(p);
  const auto &profiles = *v.getAsObject()->getArray("profiles");
  auto name = [&](size_t i) { return writer_test::got(profiles[i].getAsObject()->getString("name")); };
  EXPECT_EQ(name(1), "pid 100 tid 101 pool;worker\\n1");
  EXPECT_EQ(name(2), "pid 100 tid 102"); // unnamed
}
