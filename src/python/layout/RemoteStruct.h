// RemoteStruct: one bounds-checked copy of a target object.
//
// The CPython decoder reads many fields of the same object (a frame, a thread
// state, a code object). Reading each field separately would cost one
// MemorySource call per field and, worse, could mix two moments of a running
// target. So we copy the first N bytes of the object once, then hand out typed
// fields by offset. Offsets come from per-version layout tables, which are
// data, so every access is checked against the copied size: a layout/size
// mismatch becomes an error, never an out-of-bounds read.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/Error.h"
#include "memory/MemorySource.h"

namespace stackpeek::python {

class RemoteStruct {
public:
  /// Copies `size` bytes at `addr`. Fails if the range is unreadable.
  static llvm::Expected<RemoteStruct> read(MemorySource &mem, uint64_t addr,
                                           size_t size) {
    RemoteStruct s;
    s.addr_ = addr;
    s.bytes_.resize(size);
    if (llvm::Error err = mem.readExact(addr, s.bytes_.data(), size))
      return std::move(err);
    return s;
  }

  /// Wraps bytes already copied (tests, or a bigger copy sliced up).
  static RemoteStruct fromBytes(uint64_t addr, std::vector<uint8_t> bytes) {
    RemoteStruct s;
    s.addr_ = addr;
    s.bytes_.assign(bytes.begin(), bytes.end());
    return s;
  }

  uint64_t address() const { return addr_; }
  size_t size() const { return bytes_.size(); }

  /// The field of type T at `offset`, or nullopt if it lies outside the copy.
  template <class T> std::optional<T> get(uint64_t offset) const {
    static_assert(std::is_trivially_copyable_v<T>);
    if (offset > bytes_.size() || sizeof(T) > bytes_.size() - offset)
      return std::nullopt;
    T value;
    std::memcpy(&value, bytes_.data() + offset, sizeof(T));
    return value;
  }

  /// Like get(), but an out-of-range field is an llvm::Error naming it.
  template <class T>
  llvm::Expected<T> field(uint64_t offset, const char *what) const {
    if (std::optional<T> v = get<T>(offset))
      return *v;
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "field %s at offset %llu outside %zu-byte copy",
                                   what, (unsigned long long)offset,
                                   bytes_.size());
  }

  uint64_t pointer(uint64_t offset) const {
    return get<uint64_t>(offset).value_or(0);
  }

private:
  uint64_t addr_ = 0;
  // Frames, thread states and code objects fit inline: copying them during
  // the pause then allocates nothing (interpreter states do not, and go to
  // the heap).
  llvm::SmallVector<uint8_t, 384> bytes_;
};

} // namespace stackpeek::python
