// The load bias, computed once (module/LoadedModule.h) for the unwinder, the
// symbolizer and the Python locator. The file-based cases use
// native_target_palign: non-PIE, its first segment at 0x401000, every
// segment declaring a 2 MiB alignment. Aligning p_vaddr down to p_align
// (what the locator once did) puts its bias 0x1000 off; the kernel maps by
// page, so the true bias is 0.
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "memory/FakeMemory.h"
#include "module/ElfFile.h"
#include "module/LoadedModule.h"
#include "python/frames/ElfImage.h"
#include "unwind/Unwinder.h"

using namespace stackpeek;

namespace {

MapEntry mapping(uint64_t start, uint64_t end, uint64_t offset, const char *perms,
                 const char *path = "/m") {
  MapEntry m;
  m.start = start, m.end = end, m.offset = offset, m.perms = perms, m.inode = 7, m.path = path;
  return m;
}

std::string palignPath() { return std::string(STACKPEEK_TARGETS_DIR) + "/native_target_palign"; }

} // namespace

TEST(LoadBias, SharedObjectLoadedHigh) {
  std::vector<LoadSegment> loads = {{0, 0, 0x800, 0x800, false}, {0x1000, 0x1000, 0x300, 0x300, true}};
  EXPECT_EQ(loadBias(mapping(0x7f0000000000, 0x7f0000001000, 0, "r--p"), loads), 0x7f0000000000u);
  EXPECT_EQ(loadBias(mapping(0x7f0000001000, 0x7f0000002000, 0x1000, "r-xp"), loads),
            0x7f0000000000u);
}

TEST(LoadBias, SegmentThatStartsMidPage) {
  // The data segment of a typical executable: its file offset and address
  // share their low 12 bits, and its mapping starts at the page below.
  std::vector<LoadSegment> loads = {{0x401000, 0, 0x4e8, 0x4e8, false},
                                    {0x404df8, 0x2df8, 0x220, 0x228, false}};
  EXPECT_EQ(loadBias(mapping(0x404000, 0x405000, 0x2000, "rw-p"), loads), 0u);
  EXPECT_EQ(linkAddressOf(loads, 0x2e00), 0x404e00u);
}

TEST(LoadBias, NoSegmentMapsTheOffset) {
  std::vector<LoadSegment> loads = {{0x1000, 0x1000, 0x100, 0x100, true}};
  EXPECT_EQ(loadBias(mapping(0x5000, 0x6000, 0x8000, "r-xp"), loads), std::nullopt);
}

TEST(LoadBias, EachLoadOfAFileStartsAtItsOwnOffsetZeroMapping) {
  std::vector<MapEntry> maps = {mapping(0x1000, 0x2000, 0, "r--p"),
                                mapping(0x2000, 0x3000, 0x1000, "r-xp"),
                                mapping(0x9000, 0xa000, 0, "r--p"),
                                mapping(0xa000, 0xb000, 0x1000, "r-xp")};
  EXPECT_EQ(loadStartOf(maps, maps[1]), &maps[0]);
  EXPECT_EQ(loadStartOf(maps, maps[3]), &maps[2]);
  EXPECT_EQ(loadStarts(maps).size(), 2u);
}

class PalignModule : public ::testing::Test {
protected:
  void SetUp() override {
    auto file = ElfFile::open(palignPath());
    ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
    elf = std::move(*file);
    ASSERT_FALSE(elf->loads().empty());
    ASSERT_EQ(elf->loads().front().offset, 0u);
    ASSERT_EQ(elf->loads().front().vaddr, 0x401000u);
  }
  // The executable's mappings as the kernel makes them: each segment from
  // its page-aligned offset at its page-aligned address (bias 0).
  std::vector<MapEntry> kernelMappings() const {
    std::vector<MapEntry> maps;
    for (const LoadSegment &s : elf->loads()) {
      uint64_t from = s.vaddr & ~0xfffull, to = (s.vaddr + s.memsz + 0xfff) & ~0xfffull;
      maps.push_back(mapping(from, to, s.offset & ~0xfffull, s.executable ? "r-xp" : "r--p",
                             "/palign"));
    }
    return maps;
  }
  std::unique_ptr<ElfFile> elf;
};

TEST_F(PalignModule, PythonLocatorBias) {
  auto image = python::ElfImage::open(palignPath());
  ASSERT_TRUE(bool(image)) << llvm::toString(image.takeError());
  EXPECT_EQ(image->loadBias(kernelMappings().front()), 0u);
}

TEST_F(PalignModule, SymbolizerAddresses) {
  for (const MapEntry &m : kernelMappings())
    EXPECT_EQ(loadBias(m, elf->loads()), 0u) << std::hex << m.start;
  const LoadSegment &text = *std::find_if(elf->loads().begin(), elf->loads().end(),
                                          [](const LoadSegment &s) { return s.executable; });
  EXPECT_EQ(linkAddressOf(elf->loads(), text.offset + 0x10), text.vaddr + 0x10);
}

TEST_F(PalignModule, UnwinderTableRange) {
  // The unwinder reads the program headers from target memory: lay the
  // file's bytes out as the kernel would.
  std::ifstream in(palignPath(), std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  FakeMemory memory;
  std::vector<MapEntry> maps = kernelMappings();
  for (const MapEntry &m : maps) {
    uint64_t len = std::min<uint64_t>(m.end - m.start, bytes.size() - m.offset);
    memory.addRegion(m.start, std::vector<uint8_t>(bytes.begin() + m.offset,
                                                   bytes.begin() + m.offset + len));
  }
  const LoadSegment &text = *std::find_if(elf->loads().begin(), elf->loads().end(),
                                          [](const LoadSegment &s) { return s.executable; });
  Unwinder unwinder(maps, memory);
  const Unwinder::EhFrameTable &table = unwinder.tableFor(text.vaddr + 0x10);
  ASSERT_TRUE(table.present);
  EXPECT_EQ(table.info.start_ip, text.vaddr);
  EXPECT_EQ(table.info.end_ip, text.vaddr + text.memsz);
}
