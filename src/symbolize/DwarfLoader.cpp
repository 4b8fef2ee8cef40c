#include "symbolize/DwarfLoader.h"

#include <elf.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <future>
#include <libdeflate.h>

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include "process/SafeFile.h"

namespace stackpeek {

namespace {

// The sections read by DWARFContext::getInliningInfoForAddress and the line
// table. Location lists, frame info, macros and name indexes are left out.
const llvm::StringSet<> &wantedSections() {
  static const llvm::StringSet<> names = {
      "debug_info",    "debug_abbrev", "debug_line",        "debug_line_str",
      "debug_str",     "debug_str_offsets", "debug_addr",   "debug_ranges",
      "debug_rnglists", "debug_aranges"};
  return names;
}

constexpr uint64_t kMaxSectionSize = 2ull << 30;

std::unique_ptr<llvm::MemoryBuffer> inflate(llvm::StringRef zlibStream, uint64_t size,
                                            llvm::StringRef name) {
  if (size == 0 || size > kMaxSectionSize)
    return nullptr;
  auto out = llvm::WritableMemoryBuffer::getNewUninitMemBuffer(size, name);
  if (!out)
    return nullptr;
  libdeflate_decompressor *d = libdeflate_alloc_decompressor();
  if (!d)
    return nullptr;
  size_t actual = 0;
  libdeflate_result r = libdeflate_zlib_decompress(
      d, zlibStream.data(), zlibStream.size(), out->getBufferStart(), size, &actual);
  libdeflate_free_decompressor(d);
  if (r != LIBDEFLATE_SUCCESS || actual != size)
    return nullptr;
  return out;
}

struct PendingSection {
  std::string name; // without the leading dot, as DWARFContext expects
  llvm::StringRef data;
  bool shfCompressed = false;
  bool gnuCompressed = false;
};

// Where inflated sections of the file with this build-id are kept between
// runs, or "" for no cache: $STACKPEEK_CACHE_DIR, else $XDG_CACHE_HOME/
// stackpeek, else ~/.cache/stackpeek (STACKPEEK_CACHE_DIR= disables it).
// Keyed by build-id, so a rebuilt library never meets a stale entry.
std::string cacheDirFor(const std::string &buildId) {
  if (buildId.size() < 16 || buildId.find_first_not_of("0123456789abcdef") != std::string::npos)
    return "";
  std::string root;
  if (const char *dir = std::getenv("STACKPEEK_CACHE_DIR"))
    root = dir;
  else if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    root = std::string(xdg) + "/stackpeek";
  else if (const char *home = std::getenv("HOME"); home && *home)
    root = std::string(home) + "/.cache/stackpeek";
  if (root.empty())
    return "";
  return root + "/dwarf/" + buildId;
}

std::unique_ptr<llvm::MemoryBuffer> readCached(const std::string &path, uint64_t size) {
  auto cached = openRegularFile(path, size);
  if (!cached) {
    llvm::consumeError(cached.takeError());
    return nullptr;
  }
  if ((*cached)->getBufferSize() != size)
    return nullptr;
  return std::move(*cached);
}

// Best effort: a cache that cannot be written only costs the next run time.
void writeCached(const std::string &dir, const std::string &path, llvm::StringRef bytes) {
  if (llvm::sys::fs::create_directories(dir, true, llvm::sys::fs::perms::owner_all))
    return;
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::error_code ec;
    llvm::raw_fd_ostream out(tmp, ec, llvm::sys::fs::OF_None);
    if (ec)
      return;
    out << bytes;
    if (out.has_error()) {
      out.clear_error();
      llvm::sys::fs::remove(tmp);
      return;
    }
  }
  if (llvm::sys::fs::rename(tmp, path))
    llvm::sys::fs::remove(tmp);
}

// Returns the section's bytes, decompressed if needed (from the cache when
// an earlier run inflated them); null on any problem.
std::unique_ptr<llvm::MemoryBuffer> materialize(const PendingSection &s,
                                                const std::string &cacheDir) {
  llvm::StringRef stream;
  uint64_t size = 0;
  if (s.shfCompressed) {
    Elf64_Chdr hdr;
    if (s.data.size() < sizeof hdr)
      return nullptr;
    std::memcpy(&hdr, s.data.data(), sizeof hdr);
    if (hdr.ch_type != ELFCOMPRESS_ZLIB)
      return nullptr;
    stream = s.data.drop_front(sizeof hdr);
    size = hdr.ch_size;
  } else if (s.gnuCompressed) {
    if (s.data.size() < 12 || !s.data.startswith("ZLIB"))
      return nullptr;
    for (int i = 4; i < 12; ++i)
      size = (size << 8) | static_cast<uint8_t>(s.data[i]);
    stream = s.data.drop_front(12);
  } else {
    return llvm::MemoryBuffer::getMemBuffer(s.data, s.name, false);
  }
  std::string path = cacheDir.empty() ? "" : cacheDir + "/" + s.name;
  if (!path.empty())
    if (auto cached = readCached(path, size))
      return cached;
  auto inflated = inflate(stream, size, s.name);
  if (inflated && !path.empty())
    writeCached(cacheDir, path, inflated->getBuffer());
  return inflated;
}

} // namespace

std::unique_ptr<LoadedDwarf> loadDwarf(const ElfFile &file) {
  std::vector<PendingSection> pending;
  for (const llvm::object::SectionRef &section : file.object().sections()) {
    auto name = section.getName();
    if (!name) {
      llvm::consumeError(name.takeError());
      continue;
    }
    PendingSection p;
    llvm::StringRef n = *name;
    if (n.consume_front(".zdebug_"))
      p.gnuCompressed = true;
    else if (!n.consume_front(".debug_"))
      continue;
    p.name = ("debug_" + n).str();
    if (!wantedSections().contains(p.name))
      continue;
    auto contents = section.getContents();
    if (!contents) {
      llvm::consumeError(contents.takeError());
      continue;
    }
    p.data = *contents;
    p.shfCompressed = (llvm::object::ELFSectionRef(section).getFlags() & SHF_COMPRESSED) != 0;
    pending.push_back(std::move(p));
  }
  bool hasInfo = std::any_of(pending.begin(), pending.end(),
                             [](const PendingSection &p) { return p.name == "debug_info"; });
  if (!hasInfo)
    return nullptr;

  // Inflate the largest section on a second thread while this one does the
  // rest: .debug_info is usually most of the work.
  auto largest = std::max_element(pending.begin(), pending.end(),
                                  [](const PendingSection &a, const PendingSection &b) {
                                    return a.data.size() < b.data.size();
                                  });
  std::string cacheDir = cacheDirFor(file.buildId());
  auto big = std::async(std::launch::async, materialize, *largest, cacheDir);
  auto loaded = std::make_unique<LoadedDwarf>();
  auto &sections = loaded->sections;
  for (auto it = pending.begin(); it != pending.end(); ++it)
    if (it != largest)
      if (auto buffer = materialize(*it, cacheDir))
        sections[it->name] = std::move(buffer);
  if (auto buffer = big.get())
    sections[largest->name] = std::move(buffer);
  if (!sections.count("debug_info"))
    return nullptr;
  auto ignore = [](llvm::Error e) { llvm::consumeError(std::move(e)); };
  loaded->context = llvm::DWARFContext::create(sections, 8, true, ignore, ignore);
  return loaded;
}

} // namespace stackpeek
