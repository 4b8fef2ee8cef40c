#include "symbolize/DwarfLoader.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <libdeflate.h>

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

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

// Returns the section's bytes, decompressed if needed; null on any problem.
std::unique_ptr<llvm::MemoryBuffer> materialize(const PendingSection &s) {
  if (s.shfCompressed) {
    Elf64_Chdr hdr;
    if (s.data.size() < sizeof hdr)
      return nullptr;
    std::memcpy(&hdr, s.data.data(), sizeof hdr);
    if (hdr.ch_type != ELFCOMPRESS_ZLIB)
      return nullptr;
    return inflate(s.data.drop_front(sizeof hdr), hdr.ch_size, s.name);
  }
  if (s.gnuCompressed) {
    if (s.data.size() < 12 || !s.data.startswith("ZLIB"))
      return nullptr;
    uint64_t size = 0;
    for (int i = 4; i < 12; ++i)
      size = (size << 8) | static_cast<uint8_t>(s.data[i]);
    return inflate(s.data.drop_front(12), size, s.name);
  }
  return llvm::MemoryBuffer::getMemBuffer(s.data, s.name, false);
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
  auto big = std::async(std::launch::async, materialize, *largest);
  auto loaded = std::make_unique<LoadedDwarf>();
  auto &sections = loaded->sections;
  for (auto it = pending.begin(); it != pending.end(); ++it)
    if (it != largest)
      if (auto buffer = materialize(*it))
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
