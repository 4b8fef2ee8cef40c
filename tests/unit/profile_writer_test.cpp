// The writer entry point: format names, file-name suffixes (longest
// first), and refusal to write a profile that points past its own tables.
#include <gtest/gtest.h>

#include "../profile/ProfileFixture.h"
#include "../profile/WriterTestSupport.h"

using namespace stackpeek;

TEST(ProfileWriter, FormatFromFileName) {
  EXPECT_EQ(formatFromFileName("out.svg"), ProfileFormat::Flamegraph);
  EXPECT_EQ(formatFromFileName("/tmp/x.speedscope.json"), ProfileFormat::Speedscope);
  EXPECT_EQ(formatFromFileName("x.json"), ProfileFormat::Json);
  EXPECT_EQ(formatFromFileName("cpu.pb.gz"), ProfileFormat::Pprof);
  EXPECT_EQ(formatFromFileName("cpu.pb"), ProfileFormat::Pprof);
  EXPECT_EQ(formatFromFileName("cpu.pprof"), ProfileFormat::Pprof);
  EXPECT_EQ(formatFromFileName("stacks.txt"), ProfileFormat::Collapsed);
  EXPECT_EQ(formatFromFileName("stacks.folded"), ProfileFormat::Collapsed);
  EXPECT_EQ(formatFromFileName("OUT.SVG"), ProfileFormat::Flamegraph);
  EXPECT_EQ(formatFromFileName("profile.gz"), std::nullopt);
  EXPECT_EQ(formatFromFileName("profile"), std::nullopt);
  EXPECT_EQ(formatFromFileName(".svg"), std::nullopt); // a suffix alone is no file name
}

TEST(ProfileWriter, FormatFromNameRoundTrips) {
  for (auto f : {ProfileFormat::Collapsed, ProfileFormat::Flamegraph, ProfileFormat::Speedscope,
                 ProfileFormat::Pprof, ProfileFormat::Json})
    EXPECT_EQ(formatFromName(profileFormatName(f)), f);
  EXPECT_EQ(formatFromName("flamegraph"), ProfileFormat::Flamegraph);
  EXPECT_EQ(formatFromName("svg"), std::nullopt);
}

TEST(ProfileWriter, RejectsDanglingIds) {
  Profile p = fixture::makeProfile();
  p.samples.push_back({0, 1, 1, static_cast<StackId>(p.stacks.size()), 0});
  std::string out;
  llvm::raw_string_ostream os(out);
  llvm::Error e = writeProfile(p, ProfileFormat::Json, os);
  ASSERT_TRUE(static_cast<bool>(e));
  EXPECT_NE(llvm::toString(std::move(e)).find("inconsistent"), std::string::npos);
  EXPECT_TRUE(os.str().empty());

  Profile q = fixture::makeProfile();
  q.stacks[0].push_back(static_cast<FrameId>(q.frames.size()));
  EXPECT_TRUE(llvm::errorToBool(writeProfile(q, ProfileFormat::Collapsed, os)));
}

TEST(ProfileWriter, EveryFormatWritesAnEmptyProfile) {
  Profile empty;
  for (auto f : {ProfileFormat::Collapsed, ProfileFormat::Flamegraph, ProfileFormat::Speedscope,
                 ProfileFormat::Pprof, ProfileFormat::Json}) {
    std::string out = writer_test::writeToString(empty, f);
    if (f != ProfileFormat::Collapsed)
      EXPECT_FALSE(out.empty()) << profileFormatName(f).str();
  }
}
