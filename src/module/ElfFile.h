// ElfFile: an ELF object opened from the target's filesystem, defensively.
//
// The files behind a target's mappings are untrusted: the path comes from
// /proc/PID/maps (read through /proc/PID/root so a containerised target's
// files are found in its own mount namespace), and whatever sits there could
// be a FIFO, a device, or a malformed ELF. So we open with O_NONBLOCK and
// accept only regular files below a size bound, then let LLVM's Object
// library parse the bytes, checking every Expected it returns.
//
// Beyond parsing, this file knows the two ways a stripped binary points at
// its separate debug file: the GNU build-id note (looked up as
// DIR/.build-id/xx/rest.debug) and the .gnu_debuglink section (a file name
// looked up next to the binary, in its .debug/ subfolder, and under the
// global debug directories).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include "module/LoadedModule.h"

namespace stackpeek {

class ElfFile {
public:
  /// Opens `path` if it is a regular ELF64 file no larger than the bound
/// (see process/SafeFile.h).
  static llvm::Expected<std::unique_ptr<ElfFile>> open(const std::string &path);

  const llvm::object::ELFObjectFileBase &object() const { return *object_; }
  const std::string &path() const { return path_; }
  const std::vector<LoadSegment> &loads() const { return loads_; }
  /// Build-id bytes as lowercase hex; empty if there is no build-id note.
  const std::string &buildId() const { return buildId_; }
  /// The file name in .gnu_debuglink, if present.
  const std::optional<std::string> &debugLink() const { return debugLink_; }
  bool hasDwarf() const { return hasDwarf_; }
  bool hasSymtab() const { return hasSymtab_; }

private:
  ElfFile() = default;
  void scanSections();

  std::string path_;
  std::unique_ptr<llvm::MemoryBuffer> buffer_;
  std::unique_ptr<llvm::object::ELFObjectFileBase> object_;
  std::vector<LoadSegment> loads_;
  std::string buildId_;
  std::optional<std::string> debugLink_;
  bool hasDwarf_ = false;
  bool hasSymtab_ = false;
};

} // namespace stackpeek
