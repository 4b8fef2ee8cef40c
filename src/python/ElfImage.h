// ElfImage: the symbols and sections of the file that holds the interpreter.
//
// CPython's roots (_PyRuntime, interp_head, _PyThreadState_Current,
// Py_Version) are ELF symbols of libpython or of the python executable; on
// stripped 3.10+ builds `_PyRuntime` is still findable as the `.PyRuntime`
// section. We read them from the file on disk with LLVM's ELF reader and
// translate link-time addresses to runtime ones with the load bias:
//   runtime = (start of the mapping at file offset 0)
//             + value - (first PT_LOAD p_vaddr, aligned down to its p_align)
// which is right for PIE/DSOs (first vaddr 0) and for non-PIE executables
// (Debian's python3.11: first vaddr 0x400000, values already absolute).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

namespace stackpeek::python {

struct ElfSection {
  uint64_t address = 0, size = 0;
};

class ElfImage {
public:
  /// Parses an x86_64 ELF file at `path` (already namespace-adjusted).
  static llvm::Expected<ElfImage> open(const std::string &path);

  /// Link-time value of a symbol from .dynsym or .symtab (local symbols too:
  /// `interp_head` is static).
  std::optional<uint64_t> symbol(const std::string &name) const;
  std::optional<ElfSection> section(const std::string &name) const;
  /// First PT_LOAD p_vaddr aligned down to its alignment (the link-time
  /// address that lands at the offset-0 mapping).
  uint64_t firstLoadVaddr() const { return firstLoadVaddr_; }

private:
  std::unordered_map<std::string, uint64_t> symbols_;
  std::unordered_map<std::string, ElfSection> sections_;
  uint64_t firstLoadVaddr_ = 0;
};

} // namespace stackpeek::python
