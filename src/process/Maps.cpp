#include "process/Maps.h"

#include <algorithm>

#include "process/ProcFs.h"

namespace stackpeek {

namespace {

bool parseHex(llvm::StringRef s, uint64_t &out) {
  return !s.empty() && !s.getAsInteger(16, out);
}

// Splits off the next space-separated field.
llvm::StringRef nextField(llvm::StringRef &rest) {
  rest = rest.ltrim(' ');
  auto [field, tail] = rest.split(' ');
  rest = tail;
  return field;
}

std::optional<MapEntry> parseLine(llvm::StringRef line) {
  MapEntry e;
  llvm::StringRef rest = line;
  auto [lo, hi] = nextField(rest).split('-');
  llvm::StringRef perms = nextField(rest);
  llvm::StringRef offset = nextField(rest);
  llvm::StringRef dev = nextField(rest);
  llvm::StringRef inode = nextField(rest);
  if (!parseHex(lo, e.start) || !parseHex(hi, e.end) || e.end < e.start ||
      perms.size() != 4 || !parseHex(offset, e.offset) || dev.empty() ||
      inode.getAsInteger(10, e.inode))
    return std::nullopt;
  e.perms = perms.str();
  e.path = rest.ltrim(' ').str();
  return e;
}

} // namespace

std::vector<MapEntry> parseMaps(llvm::StringRef text) {
  std::vector<MapEntry> maps;
  while (!text.empty()) {
    auto [line, rest] = text.split('\n');
    text = rest;
    if (auto e = parseLine(line))
      maps.push_back(std::move(*e));
  }
  std::sort(maps.begin(), maps.end(),
            [](const MapEntry &a, const MapEntry &b) { return a.start < b.start; });
  return maps;
}

llvm::Expected<std::vector<MapEntry>> readMaps(pid_t pid) {
  std::string root = rootDirectory(pid);
  auto text = readSmallFile("/proc/" + std::to_string(pid) + "/maps", 64 << 20);
  if (!text)
    return text.takeError();
  std::vector<MapEntry> maps = parseMaps(*text);
  for (MapEntry &m : maps)
    m.path = targetPath(root, m.path);
  return maps;
}

const MapEntry *findMapping(const std::vector<MapEntry> &maps, uint64_t addr) {
  auto it = std::upper_bound(
      maps.begin(), maps.end(), addr,
      [](uint64_t a, const MapEntry &e) { return a < e.start; });
  if (it == maps.begin())
    return nullptr;
  --it;
  return it->contains(addr) ? &*it : nullptr;
}

} // namespace stackpeek
