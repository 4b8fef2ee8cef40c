// Unwinder: turns a thread's registers plus its captured stack into a list of
// return addresses, using libunwind's remote API.
//
// libunwind does the DWARF CFI interpretation; we supply every accessor, so it
// reads memory only through our MemorySource (the paused snapshot of the
// stacks over a page-cached view of the live process) and registers only from
// the set captured at the stop. It never touches the target through ptrace,
// which is what lets unwinding run after the target has resumed.
//
// Unwind-info lookup (find_proc_info) is ours too: for the module containing
// an address we read its ELF program headers from the target's memory, find
// PT_GNU_EH_FRAME (the .eh_frame_hdr binary-search table that every x86_64
// ELF object built by GCC/Clang carries, the vDSO included), and hand
// libunwind a "remote table" describing it. That is what libunwind's own local
// unwinder does per dl_iterate_phdr entry; doing it here gives a per-module
// cache (libunwind-ptrace's _UPT_find_proc_info re-reads /proc/PID/maps and
// re-maps the ELF file whenever the address leaves the last module it saw) and
// avoids its trap of calling our accessors with its own `arg`. Where a module
// has no table, libunwind falls back to its frame-pointer heuristics.
//
// The walk is bounded in depth, and stops with a reason when a frame repeats
// (a loop in a corrupt stack) or the instruction pointer leaves mapped code.
#pragma once

#include <sys/user.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <libunwind.h>

#include "memory/MemorySource.h"
#include "process/Maps.h"

namespace stackpeek {

struct RawFrame {
  uint64_t ip = 0;
  uint64_t sp = 0;
  // The frame was interrupted by a signal (its ip is the exact faulting
  // instruction, not a return address), so symbolization must not subtract 1.
  bool signalFrame = false;
};

struct UnwindResult {
  std::vector<RawFrame> frames; // innermost first
  std::optional<std::string> stopReason; // why the walk ended early, if it did
};

class Unwinder {
public:
  /// `maps` and `memory` must outlive the Unwinder.
  Unwinder(const std::vector<MapEntry> &maps, MemorySource &memory);
  ~Unwinder();
  Unwinder(const Unwinder &) = delete;
  Unwinder &operator=(const Unwinder &) = delete;

  UnwindResult unwind(const user_regs_struct &regs, size_t maxFrames);

  // ---- used by the libunwind accessor callbacks ----
  struct EhFrameTable {
    bool present = false;
    unw_dyn_info_t info{};
  };
  /// The .eh_frame_hdr table of the module containing `ip` (cached).
  const EhFrameTable &tableFor(uint64_t ip);
  MemorySource &memory() { return memory_; }

private:
  EhFrameTable loadTable(const MapEntry &base);

  const std::vector<MapEntry> &maps_;
  MemorySource &memory_;
  unw_addr_space_t addressSpace_;
  std::map<uint64_t, EhFrameTable> tables_; // keyed by the module's base address
  EhFrameTable none_;
};

} // namespace stackpeek
