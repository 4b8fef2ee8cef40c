// SafeFile: opening files named by a (possibly hostile) target process.
// Used by the symbolizer (ELF and debug files) and the Python decoder
// (the interpreter's ELF file, source lines).
//
// Paths we open come from the target: /proc/PID/maps entries and co_filename
// strings. A target could name a FIFO (open would block forever), a device
// (reads with side effects), or a huge file. So we open with O_NONBLOCK,
// accept only regular files (fstat S_ISREG on the opened descriptor, so a
// swapped symlink cannot fool the check), and cap the size. Paths are always
// resolved inside the target's mount namespace via /proc/PID/root.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

namespace stackpeek {

/// Maps (read-only) the regular file at `path` if it is at most `maxSize`.
llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>>
openRegularFile(const std::string &path, uint64_t maxSize);

/// `/proc/PID/root` + `path` for an absolute path; relative paths are taken
/// relative to the target's current directory (/proc/PID/cwd).
std::string pathInTarget(pid_t pid, const std::string &path);

} // namespace stackpeek
