// Maps: the target's memory mappings, from /proc/PID/maps.
//
// Each line is `start-end perms offset dev inode path`. The path is optional
// (anonymous memory), may contain spaces, and may end in " (deleted)" when the
// file was replaced after mapping. The file is written by the kernel but the
// paths are chosen by the target (it can map files with any name), so the
// parser treats every field as untrusted and skips malformed lines.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace stackpeek {

struct MapEntry {
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t offset = 0; // file offset of `start`
  std::string perms;   // e.g. "r-xp"
  uint64_t inode = 0;
  std::string path;    // empty for anonymous mappings; may be "[stack]" etc.

  bool contains(uint64_t addr) const { return addr >= start && addr < end; }
  bool executable() const { return perms.size() > 2 && perms[2] == 'x'; }
  bool readable() const { return !perms.empty() && perms[0] == 'r'; }
  /// A mapping of a real file (not [stack], [vdso], anonymous, ...).
  bool isFile() const { return inode != 0 && !path.empty() && path[0] == '/'; }
};

std::vector<MapEntry> parseMaps(llvm::StringRef text);
/// The mappings of `pid`, their paths as the target names them (a chroot's
/// directory cut off: ProcFs.h targetPath), to be opened through
/// /proc/PID/root.
llvm::Expected<std::vector<MapEntry>> readMaps(pid_t pid);

/// Finds the mapping containing `addr` in maps sorted by start (as the kernel
/// lists them); null if none.
const MapEntry *findMapping(const std::vector<MapEntry> &maps, uint64_t addr);

} // namespace stackpeek
