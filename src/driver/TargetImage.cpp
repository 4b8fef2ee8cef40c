#include "driver/TargetImage.h"

namespace stackpeek {

namespace {

// Read-only mappings of files: code, unwind tables, constants. Their pages
// can stay cached while the target runs.
std::vector<std::pair<uint64_t, uint64_t>> immutableRanges(const std::vector<MapEntry> &maps) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const MapEntry &m : maps)
    if (m.isFile() && m.perms.size() > 1 && m.perms[1] != 'w')
      ranges.emplace_back(m.start, m.end);
  return ranges;
}

std::unique_ptr<Symbolizer> makeSymbolizer(pid_t pid, const std::vector<std::string> &debugDirs) {
  SymbolizerOptions options;
  options.rootPrefix = "/proc/" + std::to_string(pid) + "/root";
  options.debugDirs = debugDirs;
  return std::make_unique<Symbolizer>(options);
}

} // namespace

TargetImage::TargetImage(pid_t pid, Options options, Process &process)
    : pid_(pid), options_(std::move(options)), live_(pid), snapshot_(&live_),
      symbolizer_(makeSymbolizer(pid, options_.debugDirs)) {
  readFacts(process);
}

void TargetImage::reread(Process &process) { readFacts(process); }

void TargetImage::readFacts(Process &process) {
  facts_ = readProcessFacts(pid_, process);
  live_.clearAll();
  interp_ = locatePython(pid_, live_, process);
  rebuildUnwinder();
}

void TargetImage::forgetSymbols() { symbolizer_ = makeSymbolizer(pid_, options_.debugDirs); }

void TargetImage::replaceMaps(std::vector<MapEntry> maps) {
  facts_.maps = std::move(maps);
  live_.clearAll();
  rebuildUnwinder();
}

void TargetImage::rebuildUnwinder() {
  if (options_.keepImmutablePages)
    live_.setImmutableRanges(immutableRanges(facts_.maps));
  unwinder_ = std::make_unique<Unwinder>(facts_.maps, snapshot_);
}

std::vector<Frame> TargetImage::nativeStack(const user_regs_struct &regs,
                                            std::vector<std::string> &errors) {
  return stackpeek::nativeStack(*unwinder_, *symbolizer_, facts_.maps, regs, errors);
}

} // namespace stackpeek
