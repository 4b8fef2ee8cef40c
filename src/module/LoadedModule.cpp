#include "module/LoadedModule.h"

namespace stackpeek {

namespace {
constexpr uint64_t kPageSize = 4096; // x86_64
} // namespace

// A byte inside a segment's file range belongs to that segment. The bytes
// before a segment's start in its first page (a mapping's start, when the
// segment does not begin on a page) are mapped with it too; they are asked
// for second, since the segment before may hold them as well.
std::optional<uint64_t> linkAddressOf(const std::vector<LoadSegment> &loads, uint64_t fileOffset) {
  for (const LoadSegment &seg : loads)
    if (fileOffset >= seg.offset && fileOffset - seg.offset < seg.filesz)
      return fileOffset - seg.offset + seg.vaddr;
  for (const LoadSegment &seg : loads)
    if (fileOffset < seg.offset && fileOffset >= (seg.offset & ~(kPageSize - 1)))
      return seg.vaddr - (seg.offset - fileOffset);
  return std::nullopt;
}

// The kernel maps each segment from its page-aligned offset to its
// page-aligned address, so the segment a mapping shows is the one whose
// page-aligned offset is the mapping's (the segment before may share that
// page's bytes, but not its mapping).
std::optional<uint64_t> loadBias(const MapEntry &mapping, const std::vector<LoadSegment> &loads) {
  for (const LoadSegment &seg : loads)
    if ((seg.offset & ~(kPageSize - 1)) == mapping.offset)
      return mapping.start - (seg.vaddr & ~(kPageSize - 1));
  std::optional<uint64_t> link = linkAddressOf(loads, mapping.offset);
  if (!link)
    return std::nullopt;
  return mapping.start - *link;
}

const MapEntry *loadStartOf(const std::vector<MapEntry> &maps, const MapEntry &mapping) {
  const MapEntry *best = nullptr;
  for (const MapEntry &m : maps) {
    if (m.start > mapping.start)
      break;
    if (m.offset == 0 && m.path == mapping.path && m.inode == mapping.inode)
      best = &m;
  }
  return best;
}

std::vector<const MapEntry *> loadStarts(const std::vector<MapEntry> &maps) {
  std::vector<const MapEntry *> starts;
  for (const MapEntry &m : maps)
    if (m.isFile() && m.offset == 0)
      starts.push_back(&m);
  return starts;
}

} // namespace stackpeek
