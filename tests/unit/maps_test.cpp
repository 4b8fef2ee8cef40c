// /proc/PID/maps parsing: real-looking lines, and the malformed ones a
// parser of untrusted text must survive.
#include <gtest/gtest.h>

#include "process/Maps.h"
#include "process/ProcFs.h"

using namespace stackpeek;

TEST(Maps, ParsesFileAnonymousAndSpecialMappings) {
  auto maps = parseMaps(
      "55d0c2b09000-55d0c2b0b000 r-xp 00001000 fe:01 1234567    /usr/bin/my prog (deleted)\n"
      "7ffd1c8e1000-7ffd1c902000 rw-p 00000000 00:00 0          [stack]\n"
      "7f0000000000-7f0000001000 ---p 00000000 00:00 0 \n");
  ASSERT_EQ(maps.size(), 3u);
  EXPECT_EQ(maps[0].start, 0x55d0c2b09000u);
  EXPECT_EQ(maps[0].offset, 0x1000u);
  EXPECT_EQ(maps[0].inode, 1234567u);
  EXPECT_EQ(maps[0].path, "/usr/bin/my prog (deleted)");
  EXPECT_TRUE(maps[0].executable());
  EXPECT_TRUE(maps[0].isFile());
  // Sorted by address: the anonymous mapping comes before the stack.
  EXPECT_EQ(maps[1].path, "");
  EXPECT_EQ(maps[2].path, "[stack]");
  EXPECT_FALSE(maps[2].isFile());
}

TEST(Maps, SkipsMalformedLines) {
  auto maps = parseMaps("garbage\n"
                        "1000-0500 r-xp 0 00:00 0 /inverted\n"
                        "zz-1000 r-xp 0 00:00 0 /badhex\n"
                        "1000-2000 rwxpx 0 00:00 0 /badperms\n"
                        "1000-2000 r--p 0 00:00 notanumber /badinode\n"
                        "\n"
                        "3000-4000 r--p 0 00:00 0 /ok\n");
  ASSERT_EQ(maps.size(), 1u);
  EXPECT_EQ(maps[0].path, "/ok");
}

TEST(Maps, FindsTheContainingMapping) {
  auto maps = parseMaps("1000-2000 r--p 0 00:00 0 /a\n3000-4000 r-xp 0 00:00 0 /b\n");
  EXPECT_EQ(findMapping(maps, 0x1000)->path, "/a");
  EXPECT_EQ(findMapping(maps, 0x3fff)->path, "/b");
  EXPECT_EQ(findMapping(maps, 0x2000), nullptr);
  EXPECT_EQ(findMapping(maps, 0x10), nullptr);
}

// The kernel prints a chroot's files by their path from our root; the
// target's own path is what /proc/PID/root opens.
TEST(TargetPath, AChrootsDirectoryIsCutFromItsFilesPaths) {
  EXPECT_EQ(targetPath("/srv/jail", "/srv/jail/usr/lib/libc.so.6"), "/usr/lib/libc.so.6");
  EXPECT_EQ(targetPath("/srv/jail", "/srv/jail/opt/py (deleted)"), "/opt/py (deleted)");
  // Not under it (a file mapped from outside the chroot), or not a path.
  EXPECT_EQ(targetPath("/srv/jail", "/srv/jail2/x.so"), "/srv/jail2/x.so");
  EXPECT_EQ(targetPath("/srv/jail", "/srv/jail"), "/srv/jail");
  EXPECT_EQ(targetPath("/srv/jail", "[heap]"), "[heap]");
  EXPECT_EQ(targetPath("/", "/usr/lib/libc.so.6"), "/usr/lib/libc.so.6");
}
