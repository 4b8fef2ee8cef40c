// Collapsed ("folded") stacks: the expected lines are computed here from
// the profile's samples with the documented rules (outermost first, ';'
// joins, ';' in a label becomes ':', control characters visible, sorted,
// count = samples), not copied from the writer's output.
#include <map>

#include "llvm/Support/JSON.h"

#include <gtest/gtest.h>

#include "../profile/ProfileFixture.h"
#include "../profile/WriterTestSupport.h"

using namespace stackpeek;
using stackpeek::writer_test::expectedLabel;
using stackpeek::writer_test::writeToString;

namespace {

std::string expectedCollapsed(const Profile &p) {
  std::map<std::string, uint64_t> lines;
  for (const ProfileSample &s : p.samples) {
    const auto &stack = p.stacks[s.stack];
    if (stack.empty())
      continue;
    std::string line;
    for (size_t i = stack.size(); i-- > 0;) {
      std::string label = expectedLabel(p, stack[i]);
      for (char &c : label)
        if (c == ';')
          c = ':';
      line += (line.empty() ? "" : ";") + label;
    }
    ++lines[line];
  }
  std::string out;
  for (const auto &[line, count] : lines)
    out += line + " " + std::to_string(count) + "\n";
  return out;
}

} // namespace

TEST(ProfileCollapsed, SmallProfileExactly) {
  Profile p;
  FrameId mainF = p.internFrame(fixture::native("main", "/bin/a.out"));
  FrameId f = p.internFrame(fixture::python("f", "m.py", 3));
  StackId deep = p.internStack({f, mainF}), shallow = p.internStack({mainF});
  p.samples = {{0, 1, 1, deep, 1}, {1, 1, 1, shallow, 1}, {2, 1, 2, deep, 1}};
  EXPECT_EQ(writeToString(p, ProfileFormat::Collapsed), "main (a.out) 1\n"
                                                        "main (a.out);f (m.py:3) 2\n");
}

TEST(ProfileCollapsed, FixtureMatchesTheSamples) {
  Profile p = fixture::makeProfile();
  EXPECT_EQ(writeToString(p, ProfileFormat::Collapsed), expectedCollapsed(p));
}

TEST(ProfileCollapsed, HostileLabelsCannotBreakTheFormat) {
  Profile p = fixture::makeProfile();
  std::string out = writeToString(p, ProfileFormat::Collapsed);
  EXPECT_TRUE(llvm::json::isUTF8(out));
  uint64_t total = 0;
  size_t start = 0;
  for (size_t end; (end = out.find('\n', start)) != std::string::npos; start = end + 1) {
    llvm::StringRef line(out.data() + start, end - start);
    for (char c : line)
      EXPECT_GE(static_cast<unsigned char>(c), 0x20) << line.str();
    auto [stack, count] = line.rsplit(' ');
    uint64_t n = 0;
    EXPECT_FALSE(count.getAsInteger(10, n)) << line.str();
    total += n;
  }
  EXPECT_EQ(start, out.size()); // ends with a newline
  EXPECT_EQ(total, p.samples.size() - 1); // all but the empty stack
  EXPECT_NE(out.find("thread 101 pool:worker\\n1;start_thread"), std::string::npos);
  EXPECT_NE(out.find("evil:name\\nnext (/srv/x<script>alert(1)</script>.py:5) 2\n"),
            std::string::npos);
  EXPECT_NE(out.find("\\x1b[31mred\\x1b[0m (bad\xef\xbf\xbd\xef\xbf\xbd.so)"), std::string::npos);
}

TEST(ProfileCollapsed, LabelsEqualAfterEscapingShareALine) {
  Profile p;
  StackId a = p.internStack({p.internFrame(fixture::label("x;y"))});
  StackId b = p.internStack({p.internFrame(fixture::label("x:y"))});
  p.samples = {{0, 1, 1, a, 1}, {0, 1, 1, b, 1}};
  EXPECT_EQ(writeToString(p, ProfileFormat::Collapsed), "x:y 2\n");
}
