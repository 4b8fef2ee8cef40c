// Symbolizer: addresses -> functions, source lines and modules, after the
// target has resumed.
//
// For each module seen in /proc/PID/maps we open its ELF file through
// /proc/PID/root (see ElfFile), pick the object that carries the most
// information — the file itself if it has DWARF, else its separate debug file
// found by build-id or .gnu_debuglink under the given debug directories — and
// ask LLVM's DWARFContext (built by DwarfLoader from only the sections that
// matter) for the possibly inlined frames at the module-relative address.
// When DWARF gives no function name we look the address up in .symtab and
// .dynsym, so stripped binaries still show exported functions. Everything is
// cached per module and per address, so the cost of parsing debug info is
// paid once per dump (or per recording), and identical stacks in many
// threads cost one lookup.
//
// A module with no DWARF that leaves a frame unnamed is listed once
// (modulesWithoutSymbols), so the dump can say how to add its symbols.
//
// Return addresses point after the call; we look up address-1 so the line is
// the call site's, except for the innermost frame and signal frames, whose
// address is the exact instruction.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>


#include "model/Snapshot.h"
#include "process/Maps.h"
#include "module/ElfFile.h"

namespace stackpeek {

struct SymbolizerOptions {
  /// Prefix for module paths: "/proc/PID/root" for a live target, "" to use
  /// paths as they are (tests, core files).
  std::string rootPrefix;
  /// Extra roots searched for separate debug files before the defaults
  /// (ROOT/usr/lib/debug and /usr/lib/debug).
  std::vector<std::string> debugDirs;
};

/// A module whose frames could not be named: it has no debug information
/// (neither in itself nor in a separate debug file found) and no symbol
/// covering those addresses. What a user needs to add its symbols.
struct ModuleWithoutSymbols {
  std::string path;    // as in /proc/PID/maps
  std::string buildId; // lowercase hex, empty if the file has no build-id note
  std::optional<std::string> debugLink; // its .gnu_debuglink file name
};

/// The note that says `module` has no symbols and how to add them: the
/// distribution's debug package, or --debug-dir with the debug file where
/// the symbolizer looks for it (by build-id, else by debug link).
std::string missingSymbolsNote(const ModuleWithoutSymbols &module);

class Symbolizer {
public:
  explicit Symbolizer(SymbolizerOptions options);
  ~Symbolizer();

  /// The frames at `address`: inlined callees first (marked inlined), then
  /// the function that contains them. Never empty.
  std::vector<Frame> symbolize(const std::vector<MapEntry> &maps, uint64_t address,
                               bool exactAddress);

  /// Every module that left a frame unnamed so far, once each, in the
  /// order their first unnamed frame was seen.
  const std::vector<ModuleWithoutSymbols> &modulesWithoutSymbols() const {
    return withoutSymbols_;
  }

private:
  struct Module;
  Module &moduleFor(const MapEntry &mapping);
  std::unique_ptr<ElfFile> findDebugFile(const ElfFile &main, const std::string &path);
  std::unique_ptr<ElfFile> tryDebugCandidate(const std::string &candidate,
                                             const std::string &wantBuildId);

  std::vector<Frame> lookup(Module &module, uint64_t vaddr, const Frame &base);
  void noteIfUnnamed(Module &module, const std::string &path, const std::vector<Frame> &frames);

  SymbolizerOptions options_;
  std::map<std::pair<std::string, uint64_t>, std::unique_ptr<Module>> modules_;
  std::vector<ModuleWithoutSymbols> withoutSymbols_;
};

} // namespace stackpeek
