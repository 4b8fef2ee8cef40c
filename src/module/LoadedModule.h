// LoadedModule: one load of an ELF file in the target, and where its
// link-time addresses landed.
//
// The loader maps each PT_LOAD segment from its file offset rounded down to
// a page, at its link-time address plus one bias per load (0 for a non-PIE
// executable). /proc/PID/maps shows the result, and the mapping at file
// offset 0 starts a load: a file mapped twice (dlopen of a copy, ctypes
// loading libpython again) is two loads. The bias is the start of a
// mapping minus the link-time address of its first byte, which the segment
// covering that file offset gives. p_align plays no part: the kernel and
// ld.so place segments by pages, whatever alignment a segment asks for.
//
// The unwinder (program headers read from memory), the symbolizer (from
// the file) and the Python locator (symbols from the file) all translate
// addresses with these functions, so the three agree on every module.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "llvm/ADT/ArrayRef.h"
#include "llvm/BinaryFormat/ELF.h"

#include "process/Maps.h"

namespace stackpeek {

/// A PT_LOAD program header.
struct LoadSegment {
  uint64_t vaddr = 0, offset = 0, filesz = 0, memsz = 0;
  bool executable = false;
};

/// The PT_LOAD headers among `phdrs` (read from a file or from memory), in
/// order.
template <class Phdr> std::vector<LoadSegment> loadSegments(llvm::ArrayRef<Phdr> phdrs) {
  std::vector<LoadSegment> loads;
  for (const Phdr &ph : phdrs)
    if (ph.p_type == llvm::ELF::PT_LOAD)
      loads.push_back({ph.p_vaddr, ph.p_offset, ph.p_filesz, ph.p_memsz,
                       (ph.p_flags & llvm::ELF::PF_X) != 0});
  return loads;
}

/// The link-time address of the byte at `fileOffset`, if a segment maps it
/// (from its page-aligned start: the loader maps whole pages).
std::optional<uint64_t> linkAddressOf(const std::vector<LoadSegment> &loads, uint64_t fileOffset);

/// Runtime address minus link-time address for the load `mapping` belongs
/// to; nullopt when no segment maps its first byte.
std::optional<uint64_t> loadBias(const MapEntry &mapping, const std::vector<LoadSegment> &loads);

/// The first mapping of the load `mapping` belongs to: the closest mapping
/// of the same file at offset 0 at or below it (null if none).
const MapEntry *loadStartOf(const std::vector<MapEntry> &maps, const MapEntry &mapping);

/// The first mapping of every load of a file, in address order.
std::vector<const MapEntry *> loadStarts(const std::vector<MapEntry> &maps);

} // namespace stackpeek
