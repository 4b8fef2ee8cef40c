// MemorySource: the one way stackpeek reads another process's address space.
//
// Everything that interprets target memory (the unwinder's accessors, the
// CPython decoder) reads through this interface, never through a pid. Three
// implementations exist: ProcessMemory (a live process, process_vm_readv with
// a page cache and a /proc/PID/mem fallback), SnapshotMemory (byte ranges
// copied while the target was paused, layered over a live source), and
// FakeMemory (regions built in-process, for unit tests and fuzzing).
//
// Target memory is untrusted and may vanish at any moment (the target unmaps
// it or exits), so a failed read is an ordinary outcome: `read` returns false,
// and the typed helpers return llvm::Expected so callers report the failure at
// the frame or thread it belongs to and carry on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "llvm/Support/Error.h"

namespace stackpeek {

class MemorySource {
public:
  virtual ~MemorySource() = default;

  /// Copies exactly `len` bytes starting at `addr` into `buf`. Returns false
  /// (leaving `buf` unspecified) if any byte of the range cannot be read.
  virtual bool read(uint64_t addr, void *buf, size_t len) = 0;

  /// Like read(), but returns an llvm::Error that names the range.
  llvm::Error readExact(uint64_t addr, void *buf, size_t len);

  /// Reads one trivially-copyable value of type T at `addr`.
  template <class T> llvm::Expected<T> readValue(uint64_t addr) {
    static_assert(std::is_trivially_copyable_v<T>);
    T value{};
    if (llvm::Error err = readExact(addr, &value, sizeof(T)))
      return std::move(err);
    return value;
  }

  /// Reads a NUL-terminated string of at most `maxLen` bytes (without the NUL).
  /// Reads in small chunks so a string at the end of a mapping still works.
  /// Fails if no NUL is found within maxLen bytes.
  llvm::Expected<std::string> readCString(uint64_t addr, size_t maxLen);
};

/// The error produced for an unreadable range, shared so messages look alike.
llvm::Error makeReadError(uint64_t addr, size_t len);

} // namespace stackpeek
