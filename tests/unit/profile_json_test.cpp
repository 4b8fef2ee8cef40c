// The raw-samples JSON keeps every sample as recorded (time, pid, tid,
// frames innermost first) and every frame's fields; check_formats.py uses
// it as the reference for the other formats, so it is pinned to the
// Profile here field by field.
#include <gtest/gtest.h>

#include "llvm/Support/JSON.h"

#include "../profile/ProfileFixture.h"
#include "../profile/WriterTestSupport.h"

using namespace stackpeek;

namespace {

llvm::json::Value parsed(const Profile &p) {
  auto v = llvm::json::parse(writer_test::writeToString(p, ProfileFormat::Json));
  EXPECT_TRUE(static_cast<bool>(v));
  return v ? std::move(*v) : llvm::json::Value(nullptr);
}

template <class T>
void expectOptional(const llvm::json::Object &o, llvm::StringRef key, const std::optional<T> &v) {
  const llvm::json::Value *got = o.get(key);
  ASSERT_NE(got, nullptr) << key.str();
  if (!v)
    EXPECT_EQ(got->kind(), llvm::json::Value::Null) << key.str();
  else if constexpr (std::is_same_v<T, std::string>)
    EXPECT_EQ(writer_test::got(got->getAsString()), sanitizeUtf8(*v)) << key.str();
  else
    EXPECT_EQ(writer_test::got(got->getAsInteger()), static_cast<int64_t>(*v)) << key.str();
}

} // namespace

TEST(ProfileJson, TopLevelAndTables) {
  Profile p = fixture::makeProfile();
  llvm::json::Value v = parsed(p);
  const llvm::json::Object &o = *v.getAsObject();
  EXPECT_EQ(writer_test::got(o.getNumber("rate_hz")), 100.0);
  EXPECT_EQ(writer_test::got(o.getInteger("duration_ns")), static_cast<int64_t>(p.durationNs));
  const auto &procs = *o.getArray("processes");
  ASSERT_EQ(procs.size(), p.processes.size());
  EXPECT_EQ(writer_test::got(procs[1].getAsObject()->getString("command")), "worker-helper \x1b[2J");
  const auto &threads = *o.getArray("threads");
  ASSERT_EQ(threads.size(), p.threads.size());
  EXPECT_EQ(writer_test::got(threads[1].getAsObject()->getInteger("tid")), 101);
  EXPECT_EQ(writer_test::got(threads[1].getAsObject()->getString("name")), "pool;worker\n1");
}

TEST(ProfileJson, FramesKeepEveryField) {
  Profile p = fixture::makeProfile();
  llvm::json::Value v = parsed(p);
  const auto &frames = *v.getAsObject()->getArray("frames");
  ASSERT_EQ(frames.size(), p.frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    const llvm::json::Object &f = *frames[i].getAsObject();
    const ProfileFrame &want = p.frames[i];
    const char *kind = want.synthetic ? "synthetic"
                       : want.kind == Frame::Kind::Python ? "python" : "native";
    EXPECT_EQ(writer_test::got(f.getString("kind")), kind);
    EXPECT_EQ(writer_test::got(f.getString("function")), sanitizeUtf8(want.function));
    expectOptional(f, "file", want.file);
    expectOptional(f, "line", want.line);
    expectOptional(f, "module", want.module);
  }
}

TEST(ProfileJson, EverySampleInRecordedOrder) {
  Profile p = fixture::makeProfile();
  llvm::json::Value v = parsed(p);
  const auto &samples = *v.getAsObject()->getArray("samples");
  ASSERT_EQ(samples.size(), p.samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const llvm::json::Object &s = *samples[i].getAsObject();
    const ProfileSample &want = p.samples[i];
    EXPECT_EQ(writer_test::got(s.getInteger("t_ns")), static_cast<int64_t>(want.timestampNs));
    EXPECT_EQ(writer_test::got(s.getInteger("pid")), want.pid);
    EXPECT_EQ(writer_test::got(s.getInteger("tid")), want.tid);
    EXPECT_EQ(writer_test::got(s.getInteger("weight_ns")), static_cast<int64_t>(want.weightNs));
    std::vector<FrameId> frames;
    for (const llvm::json::Value &f : *s.getArray("frames"))
      frames.push_back(static_cast<FrameId>(*f.getAsInteger()));
    EXPECT_EQ(frames, p.stacks[want.stack]); // innermost first
  }
}

TEST(ProfileJson, MissingWeightFallsBackToThePeriod) {
  Profile p;
  p.rateHz = 250;
  p.samples = {{0, 1, 1, p.internStack({p.internFrame(fixture::label("x"))}), 0}};
  llvm::json::Value v = parsed(p);
  const auto &s = *(*v.getAsObject()->getArray("samples"))[0].getAsObject();
  EXPECT_EQ(writer_test::got(s.getInteger("weight_ns")), 4'000'000);
}
