// FakeMemory: an address space assembled in-process.
//
// Unit tests lay out interpreter structures or stacks at chosen addresses and
// hand this to the code under test in place of a live process; fuzz targets
// fill it with mutated bytes. A read succeeds only if the whole range lies
// inside one region, exactly like a read that crosses into an unmapped page of
// a real process fails.
#pragma once

#include <cstring>
#include <map>
#include <vector>

#include "memory/MemorySource.h"

namespace stackpeek {

class FakeMemory : public MemorySource {
public:
  /// Adds (or replaces) a region of bytes starting at `addr`.
  void addRegion(uint64_t addr, std::vector<uint8_t> bytes) {
    regions_[addr] = std::move(bytes);
  }

  /// Writes a trivially-copyable value into an existing region (grows it when
  /// the value lands exactly at its end). Convenience for building fixtures.
  template <class T> void put(uint64_t addr, const T &value) {
    putBytes(addr, &value, sizeof(T));
  }
  void putBytes(uint64_t addr, const void *data, size_t len);

  bool read(uint64_t addr, void *buf, size_t len) override;

  /// How many read() calls were made; lets tests check bounds on work done.
  size_t readCount() const { return reads_; }

private:
  std::map<uint64_t, std::vector<uint8_t>> regions_;
  size_t reads_ = 0;
};

} // namespace stackpeek
