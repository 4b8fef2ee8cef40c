// ProcessMemory: reads a live process's memory.
//
// process_vm_readv is the fast path: one syscall copies many bytes without
// stopping the target and without ptrace. It needs the same permission as
// ptrace-attach; where it is unavailable (ENOSYS on old or seccomp-restricted
// kernels, EPERM in some containers) we fall back to pread on /proc/PID/mem.
//
// Reads go through a page cache (4 KiB pages) because the unwinder and the
// Python decoder read many small, nearby values: one syscall per page beats one
// per word (what PTRACE_PEEKDATA would cost). The cache must be cleared
// whenever the target may have run since the last read (`clearCache`), since
// stale pages would mix two moments of the target's life.
#pragma once

#include <sys/types.h>

#include <array>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "memory/MemorySource.h"

namespace stackpeek {

class ProcessMemory : public MemorySource {
public:
  explicit ProcessMemory(pid_t pid);
  ~ProcessMemory() override;
  ProcessMemory(const ProcessMemory &) = delete;
  ProcessMemory &operator=(const ProcessMemory &) = delete;

  bool read(uint64_t addr, void *buf, size_t len) override;

  /// Reads without going through (or filling) the page cache; for large
  /// one-off copies such as a thread's live stack.
  bool readUncached(uint64_t addr, void *buf, size_t len);

  /// Like readUncached, but a read that runs into memory that cannot be read
  /// (a guard region inside the same mapping, as glibc 2.42+ puts between
  /// thread stacks with MADV_GUARD_INSTALL) keeps what came before it.
  /// Returns the number of bytes read from `addr` on.
  size_t readUncachedPrefix(uint64_t addr, void *buf, size_t len);

  /// Forgets cached pages, except those inside the immutable ranges.
  void clearCache();
  /// Forgets every cached page and the immutable ranges (after an exec).
  void clearAll();

  /// Address ranges [start, end) whose contents never change while the
  /// process runs (read-only, non-writable file mappings: code, unwind
  /// tables, .rodata). Their cached pages survive clearCache(), which makes
  /// repeated unwinding (record) cheap.
  void setImmutableRanges(std::vector<std::pair<uint64_t, uint64_t>> ranges);
  pid_t pid() const { return pid_; }

  /// From now on, remember which pages reads go through (see prefetch);
  /// takeTouchedPages() hands them over and stops remembering.
  void trackPages() {
    tracking_ = true;
    lastValid_ = false; // the first read of each page is recorded
    touched_.clear();
  }
  std::vector<uint64_t> takeTouchedPages();

  /// Reads these pages into the cache with as few system calls as possible:
  /// process_vm_readv takes many ranges at once. The sampler passes the
  /// pages its previous pass read, so a pass whose structures have not
  /// moved costs one system call instead of one per page. Pages already
  /// cached are skipped; one that cannot be read is left out (a later
  /// read tries it again and fails on its own).
  void prefetch(std::vector<uint64_t> pages);

  /// Total bytes copied from the target so far (for statistics and bounds).
  uint64_t bytesCopied() const { return bytesCopied_; }

private:
  static constexpr uint64_t kPageSize = 4096;
  using Page = std::array<uint8_t, kPageSize>;
  const Page *page(uint64_t pageAddr);
  std::unique_ptr<Page> newPage();
  void dropPage(std::unique_ptr<Page> p);

  pid_t pid_;
  int memFd_ = -1;             // /proc/PID/mem, opened lazily on first fallback
  bool useVmReadv_ = true;     // cleared after ENOSYS/EPERM from process_vm_readv
  uint64_t bytesCopied_ = 0;
  // Pages that could not be read are remembered as null, so a bad pointer
  // followed repeatedly costs one syscall, not one per attempt.
  std::unordered_map<uint64_t, std::unique_ptr<Page>> pages_;
  std::vector<std::pair<uint64_t, uint64_t>> immutable_; // sorted by start
  bool tracking_ = false;
  std::vector<uint64_t> touched_;
  static constexpr size_t kMaxPrefetchPages = 512;
  std::vector<std::unique_ptr<Page>> spare_; // buffers to reuse (newPage)
  static constexpr size_t kMaxSparePages = 1024;
  // The page the last read went to (page()): valid until the cache is
  // cleared; unordered_map keeps its values where they are.
  bool lastValid_ = false;
  uint64_t lastPageAddr_ = 0;
  const Page *lastPage_ = nullptr;
};

/// Reads of `memory` that bypass its page cache: for values read while the
/// target runs and again within one pause (the GIL's hand-over record).
class UncachedReads : public MemorySource {
public:
  explicit UncachedReads(ProcessMemory &memory) : memory_(memory) {}
  bool read(uint64_t addr, void *buf, size_t len) override {
    return memory_.readUncached(addr, buf, len);
  }

private:
  ProcessMemory &memory_;
};

} // namespace stackpeek
