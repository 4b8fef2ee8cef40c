// SourceLines: the text of a Python source line, for traceback rendering.
//
// co_filename is whatever the target compiled: an absolute path, a path
// relative to the target's working directory at import time, or a pseudo
// name such as "<string>", "<stdin>", "<frozen os>", "<shim>". We read real
// files through /proc/PID/root (or /proc/PID/cwd for relative names) so the
// target's mount namespace is used, opening them non-blocking, regular files
// only, size-capped (see SafeFile.h), and never execute or decode anything
// beyond splitting lines. A line that cannot be read is simply absent.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace stackpeek::python {

/// Caches whole files per dump, so rendering many frames of one file reads
/// it once. Not thread-safe.
class SourceLines {
public:
  explicit SourceLines(pid_t pid) : pid_(pid) {}

  /// Line `line` (1-based) of `file` without its line ending; nullopt for
  /// pseudo files, unreadable files, or lines past the end.
  std::optional<std::string> line(const std::string &file, uint32_t line);

private:
  const std::vector<std::string> *lines(const std::string &file);

  pid_t pid_;
  std::map<std::string, std::unique_ptr<std::vector<std::string>>> files_;
};

/// One-off form of SourceLines::line.
std::optional<std::string> readSourceLine(pid_t pid, const std::string &file,
                                          uint32_t line);

} // namespace stackpeek::python
