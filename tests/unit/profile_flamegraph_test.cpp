// The flame graph SVG: every frame's exact sample count is in data-n, so
// the widths can be checked as numbers: the root holds every sample, a
// child lies within its parent, siblings do not overlap and sum to at most
// the parent, and each box is as wide as its share. Also: target text can
// never become markup or control characters. Well-formedness is checked by
// xmllint in tests/profile/check_formats.py.
#include <map>
#include <regex>

#include <gtest/gtest.h>

#include "llvm/Support/JSON.h"

#include "../profile/ProfileFixture.h"
#include "../profile/WriterTestSupport.h"

using namespace stackpeek;

namespace {

struct Box {
  uint64_t n, x, depth;
  std::optional<size_t> parent;
  double width;
  std::string kind, title;
};

std::vector<Box> boxes(const std::string &svg) {
  static const std::regex g(
      "<g class=\"f\" data-n=\"(\\d+)\" data-x=\"(\\d+)\" data-d=\"(\\d+)\" data-p=\"(\\d*)\" "
      "data-k=\"(\\w+)\"><title>([^<]*)</title><rect [^>]*width=\"([0-9.]+)\"");
  std::vector<Box> out;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), g); it != std::sregex_iterator(); ++it) {
    const std::smatch &m = *it;
    Box b{std::stoull(m[1]), std::stoull(m[2]), std::stoull(m[3]), std::nullopt,
          std::stod(m[7]), m[5], m[6]};
    if (m[4].length())
      b.parent = std::stoull(m[4]);
    out.push_back(b);
  }
  return out;
}

void expectTreeInvariants(const std::vector<Box> &b, uint64_t totalSamples) {
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b[0].n, totalSamples);
  EXPECT_EQ(b[0].kind, "root");
  std::map<size_t, std::vector<const Box *>> children;
  for (size_t i = 1; i < b.size(); ++i) {
    ASSERT_TRUE(b[i].parent && *b[i].parent < i) << i;
    const Box &parent = b[*b[i].parent];
    EXPECT_EQ(b[i].depth, parent.depth + 1);
    EXPECT_LE(parent.x, b[i].x);
    EXPECT_LE(b[i].x + b[i].n, parent.x + parent.n);
    children[*b[i].parent].push_back(&b[i]);
  }
  for (auto &[parent, kids] : children) {
    std::sort(kids.begin(), kids.end(), [](auto *a, auto *c) { return a->x < c->x; });
    uint64_t sum = 0;
    for (size_t k = 0; k < kids.size(); ++k) {
      sum += kids[k]->n;
      if (k)
        EXPECT_LE(kids[k - 1]->x + kids[k - 1]->n, kids[k]->x);
    }
    EXPECT_LE(sum, b[parent].n);
  }
  for (const Box &box : b) // widths are shares of 1180 px, to 2 decimals
    EXPECT_NEAR(box.width, 1180.0 * box.n / totalSamples, 0.006);
}

} // namespace

TEST(ProfileFlamegraph, WidthsAreSampleCounts) {
  Profile p = fixture::makeProfile();
  std::vector<Box> b = boxes(writer_test::writeToString(p, ProfileFormat::Flamegraph));
  expectTreeInvariants(b, p.samples.size());
}

TEST(ProfileFlamegraph, TreeMatchesTheSamples) {
  Profile p = fixture::makeProfile();
  std::map<std::vector<FrameId>, uint64_t> want; // path from the root, outermost first
  for (const ProfileSample &s : p.samples) {
    std::vector<FrameId> path;
    for (size_t i = p.stacks[s.stack].size(); i-- > 0;) {
      path.push_back(p.stacks[s.stack][i]);
      ++want[path];
    }
  }
  // Each box's title starts with its label; labels identify frames here.
  std::map<std::string, FrameId> byLabel;
  for (FrameId id = 0; id < p.frames.size(); ++id)
    byLabel[writer_test::expectedLabel(p, id)] = id;
  std::vector<Box> b = boxes(writer_test::writeToString(p, ProfileFormat::Flamegraph));
  std::vector<std::vector<FrameId>> paths(b.size());
  std::map<std::vector<FrameId>, uint64_t> got;
  for (size_t i = 1; i < b.size(); ++i) {
    std::string title = b[i].title.substr(0, b[i].title.find('\n'));
    paths[i] = paths[*b[i].parent];
    // Undo the XML escaping of the few characters the fixture uses.
    for (auto [from, to] : {std::pair{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""},
                            {"&apos;", "'"}, {"&amp;", "&"}})
      for (size_t k; (k = title.find(from)) != std::string::npos;)
        title.replace(k, strlen(from), to);
    if (!byLabel.count(title)) // U+FFFF is not XML: the SVG shows U+FFFD
      title.replace(title.find("\xef\xbf\xbd end"), 3, "\xef\xbf\xbf");
    ASSERT_TRUE(byLabel.count(title)) << title;
    paths[i].push_back(byLabel[title]);
    got[paths[i]] = b[i].n;
  }
  EXPECT_EQ(got, want);
}

TEST(ProfileFlamegraph, TargetTextStaysText) {
  Profile p = fixture::makeProfile();
  ProfileWriteOptions options;
  options.title = "t <b>&\x1b";
  std::string svg = writer_test::writeToString(p, ProfileFormat::Flamegraph, options);
  EXPECT_TRUE(llvm::json::isUTF8(svg));
  for (char c : svg)
    EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 || c == '\n') << int(c);
  size_t scripts = 0;
  for (size_t k = 0; (k = svg.find("<script", k)) != std::string::npos; ++k)
    ++scripts;
  EXPECT_EQ(scripts, 1u);
  EXPECT_NE(svg.find("evil;name\\nnext (/srv/x&lt;script&gt;alert(1)&lt;/script&gt;.py:5)"),
            std::string::npos);
  EXPECT_NE(svg.find("a &quot;quoted&quot; &apos;name&apos; &amp; more"), std::string::npos);
  EXPECT_NE(svg.find(">t &lt;b&gt;&amp;\\x1b</text>"), std::string::npos);
  EXPECT_EQ(svg.find("\xef\xbf\xbf"), std::string::npos); // U+FFFF is not an XML character
}

TEST(ProfileFlamegraph, ColoursByKind) {
  Profile p = fixture::makeProfile();
  std::vector<Box> b = boxes(writer_test::writeToString(p, ProfileFormat::Flamegraph));
  std::map<std::string, int> kinds;
  for (const Box &box : b)
    ++kinds[box.kind];
  EXPECT_GT(kinds["python"], 0);
  EXPECT_GT(kinds["native"], 0);
  EXPECT_GT(kinds["synthetic"], 0);
  EXPECT_EQ(kinds["root"], 1);
}

TEST(ProfileFlamegraph, TinyFramesAreLeftOutButCounted) {
  Profile p;
  FrameId mainF = p.internFrame(fixture::native("main", "/bin/a"));
  StackId big = p.internStack({p.internFrame(fixture::native("hot", "/bin/a")), mainF});
  StackId tiny = p.internStack({p.internFrame(fixture::native("rare", "/bin/a")), mainF});
  for (int i = 0; i < 30000; ++i)
    p.samples.push_back({0, 1, 1, big, 1});
  p.samples.push_back({0, 1, 1, tiny, 1});
  std::string svg = writer_test::writeToString(p, ProfileFormat::Flamegraph);
  std::vector<Box> b = boxes(svg);
  ASSERT_EQ(b.size(), 3u); // root, main, hot
  EXPECT_EQ(b[1].n, 30001u);
  EXPECT_EQ(svg.find("rare"), std::string::npos);
  expectTreeInvariants(b, p.samples.size());
}

TEST(ProfileFlamegraph, LongLabelsAreCutToFit) {
  Profile p;
  std::string longName(300, 'x');
  p.samples = {{0, 1, 1, p.internStack({p.internFrame(fixture::label(longName + "\xe2\x98\x83"))}), 1}};
  std::string svg = writer_test::writeToString(p, ProfileFormat::Flamegraph);
  EXPECT_NE(svg.find("xx..</text>"), std::string::npos);
  EXPECT_TRUE(llvm::json::isUTF8(svg));
}
