// The memory sources: exact-range semantics, string reads at region edges,
// and the snapshot overlay that lets unwinding run after the target resumed.
#include <gtest/gtest.h>

#include <unistd.h>

#include "memory/FakeMemory.h"
#include "memory/ProcessMemory.h"

#include <sys/mman.h>
#include <unistd.h>
#include "memory/SnapshotMemory.h"

using namespace stackpeek;

TEST(FakeMemory, ReadsOnlyWholeRangesInsideARegion) {
  FakeMemory mem;
  mem.addRegion(0x1000, {1, 2, 3, 4});
  uint8_t buf[4];
  EXPECT_TRUE(mem.read(0x1001, buf, 3));
  EXPECT_EQ(buf[0], 2);
  EXPECT_FALSE(mem.read(0x1002, buf, 3)); // runs off the end
  EXPECT_FALSE(mem.read(0xfff, buf, 1));  // before the start
  EXPECT_FALSE(mem.read(0x2000, buf, 1));
}

TEST(FakeMemory, TypedReadsReportErrors) {
  FakeMemory mem;
  mem.put<uint64_t>(0x10, 0x1122334455667788ull);
  auto v = mem.readValue<uint64_t>(0x10);
  ASSERT_TRUE(bool(v));
  EXPECT_EQ(*v, 0x1122334455667788ull);
  auto bad = mem.readValue<uint64_t>(0x14);
  ASSERT_FALSE(bool(bad));
  EXPECT_NE(llvm::toString(bad.takeError()).find("0x14"), std::string::npos);
}

TEST(MemorySource, CStringAtTheEndOfARegion) {
  FakeMemory mem;
  std::string text = "hello";
  std::vector<uint8_t> bytes(text.begin(), text.end());
  bytes.push_back(0);
  mem.addRegion(0x2000 - bytes.size(), bytes); // ends exactly at 0x2000
  auto s = mem.readCString(0x2000 - bytes.size(), 4096);
  ASSERT_TRUE(bool(s));
  EXPECT_EQ(*s, "hello");
}

TEST(MemorySource, CStringWithoutTerminatorFails) {
  FakeMemory mem;
  mem.addRegion(0x3000, std::vector<uint8_t>(100, 'a'));
  auto s = mem.readCString(0x3000, 50);
  EXPECT_FALSE(bool(s));
  llvm::consumeError(s.takeError());
  auto t = mem.readCString(0x3000, 1000); // runs into unmapped memory
  EXPECT_FALSE(bool(t));
  llvm::consumeError(t.takeError());
}

TEST(SnapshotMemory, CapturedBytesWinAndTheRestFallsThrough) {
  FakeMemory live;
  live.addRegion(0x1000, std::vector<uint8_t>(64, 0xaa));
  SnapshotMemory snap(&live);
  snap.addCapture(0x1010, std::vector<uint8_t>(16, 0x55));
  uint8_t buf[32];
  ASSERT_TRUE(snap.read(0x1008, buf, 32)); // live, captured, live stitched
  EXPECT_EQ(buf[0], 0xaa);
  EXPECT_EQ(buf[8], 0x55);
  EXPECT_EQ(buf[23], 0x55);
  EXPECT_EQ(buf[24], 0xaa);
  SnapshotMemory alone(nullptr);
  alone.addCapture(0x10, {1, 2});
  EXPECT_FALSE(alone.read(0x10, buf, 3));
}

TEST(ProcessMemory, ReadsOwnProcessAndRejectsUnmapped) {
  ProcessMemory mem(getpid());
  static const char secret[] = "stackpeek-self-read";
  char buf[sizeof secret];
  ASSERT_TRUE(mem.read(reinterpret_cast<uint64_t>(secret), buf, sizeof secret));
  EXPECT_STREQ(buf, secret);
  EXPECT_FALSE(mem.read(8, buf, 8)); // page 0 is never mapped
  EXPECT_FALSE(mem.read(~0ull - 2, buf, 8)); // wraps
}

// The sampler's prefetch: many pages in one system call, a hole among them
// skipped (not cached, not fatal), and later reads served from the cache.
TEST(ProcessMemory, PrefetchFillsTheCacheAroundAnUnreadablePage) {
  long pageSize = ::sysconf(_SC_PAGESIZE);
  ASSERT_EQ(pageSize, 4096);
  auto *area = static_cast<uint8_t *>(
      ::mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(area, MAP_FAILED);
  area[0] = 11;
  area[2 * 4096] = 33;
  ASSERT_EQ(::mprotect(area + 4096, 4096, PROT_NONE), 0); // the hole
  uint64_t base = reinterpret_cast<uint64_t>(area);

  ProcessMemory mem(getpid());
  mem.prefetch({base, base + 4096, base + 2 * 4096});
  EXPECT_EQ(mem.bytesCopied(), 2u * 4096);
  // Served from the cache: the copies now differ from memory.
  area[0] = 0;
  area[2 * 4096] = 0;
  uint8_t a = 0, c = 0, b = 0;
  EXPECT_TRUE(mem.read(base, &a, 1));
  EXPECT_TRUE(mem.read(base + 2 * 4096, &c, 1));
  EXPECT_EQ(a, 11);
  EXPECT_EQ(c, 33);
  EXPECT_FALSE(mem.read(base + 4096, &b, 1));
  EXPECT_EQ(mem.bytesCopied(), 2u * 4096);

  // Tracking hands back the pages reads went through, once each.
  mem.trackPages();
  mem.read(base, &a, 1);
  mem.read(base + 2, &a, 1);
  mem.read(base + 2 * 4096, &c, 1);
  EXPECT_EQ(mem.takeTouchedPages(), (std::vector<uint64_t>{base, base + 2 * 4096}));
  ::munmap(area, 3 * 4096);
}

// A thread's stack may run into a guard region inside the same mapping
// (glibc 2.42+ between thread stacks): the copy keeps what precedes it.
TEST(ProcessMemory, PrefixReadStopsAtAnUnreadablePage) {
  long page = sysconf(_SC_PAGESIZE);
  void *area = mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(area, MAP_FAILED);
  auto *bytes = static_cast<uint8_t *>(area);
  std::memset(bytes, 0x5a, 2 * page);
  ASSERT_EQ(mprotect(bytes + 2 * page, page, PROT_NONE), 0);
  ProcessMemory mem(getpid());
  std::vector<uint8_t> out(3 * page);
  uint64_t start = reinterpret_cast<uint64_t>(bytes) + 16;
  size_t got = mem.readUncachedPrefix(start, out.data(), out.size() - 16);
  EXPECT_EQ(got, size_t(2 * page - 16));
  EXPECT_EQ(out[0], 0x5a);
  EXPECT_EQ(out[got - 1], 0x5a);
  EXPECT_FALSE(mem.readUncached(start, out.data(), out.size() - 16));
  munmap(area, 3 * page);
}
