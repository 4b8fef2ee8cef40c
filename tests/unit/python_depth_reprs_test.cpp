// Repr tests: Python's formatting rules (floats, quotes, escapes, big ints)
// on plain values, and ReprReader on hand-built CPython 3.11 objects in
// FakeMemory: bounds (items, depth, string length, huge claimed sizes read
// cheaply), cycles, unreadable pointers, and other objects. The integration
// tests compare with real interpreters; these pin the rules and the
// hostile-memory guarantees.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "memory/FakeMemory.h"
#include "python/layout/DepthLayout.h"
#include "python/layout/Layout.h"
#include "python/objects/Objects.h"
#include "python/objects/Reprs.h"
#include "PythonObjects311.h"

using namespace stackpeek;
using namespace stackpeek::python;

namespace {

using fixtures::Objects311;

TEST(PythonDepthReprs, ScalarsAndContainers) {
  Objects311 o;
  EXPECT_EQ(o.repr(o.none), "None");
  EXPECT_EQ(o.repr(o.integer(-7)), "-7");
  EXPECT_EQ(o.repr(o.floating(2.5)), "2.5");
  EXPECT_EQ(o.repr(o.str("it's")), "\"it's\"");
  EXPECT_EQ(o.repr(o.tuple({o.integer(1)})), "(1,)");
  EXPECT_EQ(o.repr(o.tuple({})), "()");
  EXPECT_EQ(o.repr(o.list({o.integer(1), o.str("a"), o.none})), "[1, 'a', None]");
  uint64_t widget = o.object("Widget", 16);
  char buf[64];
  snprintf(buf, sizeof buf, "<Widget object at 0x%llx>", (unsigned long long)widget);
  EXPECT_EQ(o.repr(widget), buf);
  ReprReader r(o.mem, o.l, o.d);
  EXPECT_EQ(r.repr(widget).type, "Widget");
}

TEST(PythonDepthReprs, LongListsShowTheirFirstItemsAndReadLittle) {
  Objects311 o;
  std::vector<uint64_t> items;
  for (int i = 0; i < 12; ++i)
    items.push_back(o.integer(i));
  EXPECT_EQ(o.repr(o.list(items)), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...(2 more)]");
  // A corrupt list claiming 2^39 items: only the first ten are read.
  uint64_t huge = o.list(items, int64_t(1) << 39);
  size_t before = o.mem.readCount();
  EXPECT_EQ(o.repr(huge), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...(549755813878 more)]");
  EXPECT_LT(o.mem.readCount() - before, 100u);
  ReprLimits three;
  three.maxItems = 3;
  EXPECT_EQ(o.repr(o.list(items), three), "[0, 1, 2, ...(9 more)]");
}

TEST(PythonDepthReprs, CyclesAndDepthShowCPythonsMarker) {
  Objects311 o;
  uint64_t self = o.list({o.integer(1), o.integer(2), 0});
  uint64_t array = *o.mem.readValue<uint64_t>(self + o.d.listItems);
  o.mem.put(array + 16, self);
  EXPECT_EQ(o.repr(self), "[1, 2, [...]]");
  // tuple -> list -> tuple
  uint64_t inner = o.list({0});
  uint64_t outer = o.tuple({inner});
  o.mem.put(*o.mem.readValue<uint64_t>(inner + o.d.listItems), outer);
  EXPECT_EQ(o.repr(outer), "([(...)],)");
  uint64_t deep = o.list({o.list({o.list({o.list({o.integer(5)})})})});
  EXPECT_EQ(o.repr(deep), "[[[[...]]]]");
}

TEST(PythonDepthReprs, UnreadableAndTruncated) {
  Objects311 o;
  EXPECT_EQ(o.repr(0xdead0000), "<unreadable 0xdead0000>");
  ReprReader r(o.mem, o.l, o.d);
  EXPECT_FALSE(r.repr(0xdead0000).type.has_value());
  EXPECT_EQ(o.repr(o.list({o.integer(1), 0xdead0000})), "[1, <unreadable 0xdead0000>]");
  // A list whose item array is unmapped.
  uint64_t broken = o.object("list", 40);
  o.mem.put(broken + 16, int64_t(2));
  o.mem.put(broken + o.d.listItems, uint64_t(0xbad00000));
  EXPECT_EQ(o.repr(broken), "[<unreadable 0xbad00000>]");
  std::string longText(250, 'x');
  EXPECT_EQ(o.repr(o.str(longText)), "'" + std::string(100, 'x') + "'...(150 more chars)");
  ReprLimits small;
  small.maxReprBytes = 20;
  std::vector<uint64_t> words;
  for (int i = 0; i < 10; ++i)
    words.push_back(o.str("word"));
  std::string cut = o.repr(o.list(words), small);
  EXPECT_LE(cut.size(), 23u);
  EXPECT_EQ(cut.substr(cut.size() - 3), "...");
}

TEST(PythonDepthReprs, ImplausibleStrLengthIsUnreadable) {
  Objects311 o;
  uint64_t s = o.str("abc");
  o.mem.put(s + o.l.unicodeLength, int64_t(-5));
  EXPECT_EQ(o.repr(s).rfind("<unreadable", 0), 0u);
  uint64_t t = o.str("abc");
  o.mem.put(t + o.l.unicodeLength, int64_t(1) << 50);
  EXPECT_EQ(o.repr(t).rfind("<unreadable", 0), 0u);
}

} // namespace
