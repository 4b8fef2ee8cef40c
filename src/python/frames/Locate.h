// Locate: finding the interpreter of a process, before the pause
// (docs/cpython-structures.md §1).
#pragma once

#include <sys/types.h>

#include <optional>
#include <vector>

#include "llvm/Support/Error.h"
#include "memory/MemorySource.h"
#include "process/Maps.h"
#include "python/frames/Interpreter.h"

namespace stackpeek::python {

/// Finds the interpreter of process `pid`. nullopt: not a (supported-layout)
/// CPython process. An error: it looks like Python but could not be decoded
/// (unsupported version, runtime not initialised, unreadable file, ...).
llvm::Expected<std::optional<Interpreter>> locate(pid_t pid, MemorySource &mem);

/// 3.14+, for --async: finds `_asyncio`'s debug offsets in an extension
/// module the target imported (one of `maps`, the target's mappings), when
/// the interpreter does not hold them. Reads ELF headers: call before the
/// pause.
void locateAsyncioDebug(pid_t pid, const std::vector<MapEntry> &maps, Interpreter &in);

} // namespace stackpeek::python
