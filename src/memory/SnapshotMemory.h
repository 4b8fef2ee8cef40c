// SnapshotMemory: memory captured while the target was paused, over a live source.
//
// While the target is stopped we copy only what changes as it runs: the live
// part of each thread's stack. After it resumes, the unwinder reads those bytes
// from here, so the stacks it walks are the ones of the paused moment, while
// everything else (code, unwind tables, read-only data, which do not change)
// falls through to the live process. This is what lets unwinding and
// symbolization happen after the target has resumed.
#pragma once

#include <map>
#include <vector>

#include "memory/MemorySource.h"

namespace stackpeek {

/// Bytes copied from the target at `addr`: a plain value, so a pause can
/// hand its copies over once the target runs again.
struct MemoryCopy {
  uint64_t addr = 0;
  std::vector<uint8_t> bytes;
};

class SnapshotMemory : public MemorySource {
public:
  /// `fallback` may be null: then only captured bytes are readable.
  explicit SnapshotMemory(MemorySource *fallback) : fallback_(fallback) {}

  /// Records bytes copied at `addr`. Overlapping captures are not expected
  /// (one per thread stack); the later one wins where they would overlap.
  void addCapture(uint64_t addr, std::vector<uint8_t> bytes);

  /// Forgets every capture, then records `copies` (the stacks of one pause).
  void replaceCaptures(std::vector<MemoryCopy> copies);

  bool read(uint64_t addr, void *buf, size_t len) override;

  size_t capturedBytes() const { return capturedBytes_; }

  /// Forgets every capture (the sampler reuses one snapshot per pass).
  void clearCaptures() {
    captures_.clear();
    capturedBytes_ = 0;
  }

private:
  MemorySource *fallback_;
  std::map<uint64_t, std::vector<uint8_t>> captures_;
  size_t capturedBytes_ = 0;
};

} // namespace stackpeek
