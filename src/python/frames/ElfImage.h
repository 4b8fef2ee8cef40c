// ElfImage: the symbols and sections of the file that holds the interpreter.
//
// CPython's roots (_PyRuntime, interp_head, _PyThreadState_Current,
// Py_Version) are ELF symbols of libpython or of the python executable; on
// stripped 3.10+ builds `_PyRuntime` is still findable as the `.PyRuntime`
// section. We read them from the file on disk and translate link-time
// addresses to runtime ones with the load's bias (module/LoadedModule.h),
// which is right for PIE/DSOs and for non-PIE executables alike (Debian's
// python3.11: first vaddr 0x400000, values already absolute).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include "module/LoadedModule.h"

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
  /// Runtime minus link-time address for the load whose first mapping
  /// (at file offset 0) is `start`; nullopt when no segment maps it.
  std::optional<uint64_t> loadBias(const MapEntry &start) const {
    return stackpeek::loadBias(start, loads_);
  }

private:
  std::unordered_map<std::string, uint64_t> symbols_;
  std::unordered_map<std::string, ElfSection> sections_;
  std::vector<LoadSegment> loads_;
};

} // namespace stackpeek::python
