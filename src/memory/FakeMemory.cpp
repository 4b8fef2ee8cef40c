#include "memory/FakeMemory.h"

namespace stackpeek {

bool FakeMemory::read(uint64_t addr, void *buf, size_t len) {
  ++reads_;
  auto it = regions_.upper_bound(addr);
  if (it == regions_.begin())
    return false;
  --it;
  uint64_t start = it->first;
  const std::vector<uint8_t> &bytes = it->second;
  uint64_t offset = addr - start;
  if (offset > bytes.size() || len > bytes.size() - offset)
    return false;
  if (len) // memcpy with a null pointer is undefined even for 0 bytes
    std::memcpy(buf, bytes.data() + offset, len);
  return true;
}

void FakeMemory::putBytes(uint64_t addr, const void *data, size_t len) {
  auto it = regions_.upper_bound(addr);
  if (it == regions_.begin()) {
    addRegion(addr, std::vector<uint8_t>(len));
    it = regions_.find(addr);
  } else {
    --it;
  }
  std::vector<uint8_t> &bytes = it->second;
  uint64_t offset = addr - it->first;
  if (offset + len > bytes.size())
    bytes.resize(offset + len);
  if (len) // an empty value may come with a null pointer (UBSan)
    std::memcpy(bytes.data() + offset, data, len);
}

} // namespace stackpeek
