#include "memory/SnapshotMemory.h"

#include <algorithm>
#include <cstring>
#include <iterator>

namespace stackpeek {

void SnapshotMemory::addCapture(uint64_t addr, std::vector<uint8_t> bytes) {
  capturedBytes_ += bytes.size();
  captures_[addr] = std::move(bytes);
}

void SnapshotMemory::replaceCaptures(std::vector<MemoryCopy> copies) {
  clearCaptures();
  for (MemoryCopy &c : copies)
    addCapture(c.addr, std::move(c.bytes));
}

bool SnapshotMemory::read(uint64_t addr, void *buf, size_t len) {
  auto *out = static_cast<uint8_t *>(buf);
  // Walk the range piece by piece: captured bytes where a capture covers
  // them, the fallback for the gaps between captures.
  while (len > 0) {
    auto next = captures_.upper_bound(addr);
    if (next != captures_.begin()) {
      auto prev = std::prev(next);
      uint64_t offset = addr - prev->first;
      if (offset < prev->second.size()) {
        size_t chunk = std::min<uint64_t>(len, prev->second.size() - offset);
        std::memcpy(out, prev->second.data() + offset, chunk);
        out += chunk;
        addr += chunk;
        len -= chunk;
        continue;
      }
    }
    size_t chunk = next == captures_.end() ? len : std::min<uint64_t>(len, next->first - addr);
    if (!fallback_ || !fallback_->read(addr, out, chunk))
      return false;
    out += chunk;
    addr += chunk;
    len -= chunk;
  }
  return true;
}

} // namespace stackpeek
