// DwarfLoader: builds an LLVM DWARFContext from just the sections that
// symbolization needs, decompressing them fast.
//
// Why not let LLVM open the object itself: DWARFContext::create(ObjectFile)
// eagerly decompresses every compressed debug section, and Debian ships its
// detached debug files (libc6-dbg, *-dbgsym) with zlib-compressed DWARF. For
// libc that is ~10 MB of inflate on every dump, most of it location lists
// that a stack dump never reads. Here we take only the sections that address
// -> function/file/line/inlining lookups use, inflate them with libdeflate
// (several times faster than zlib for whole-buffer inflation), large ones in
// parallel, and hand LLVM an in-memory section map.
//
// Inflated sections are also kept in a cache directory keyed by build-id
// (~/.cache/stackpeek/dwarf/<build-id>/, see cacheDirFor), so the next dump
// maps them instead of inflating again: the first dump of a process using
// Debian's libc6-dbg pays ~30 ms for it, later ones almost nothing.
//
// Compressed sections come in two encodings: SHF_COMPRESSED (an Elf64_Chdr
// header with type ELFCOMPRESS_ZLIB, then a zlib stream) and the older GNU
// ".zdebug_*" sections ("ZLIB", a big-endian 64-bit size, then a zlib stream).
#pragma once

#include <memory>

#include "llvm/ADT/StringMap.h"
#include "llvm/DebugInfo/DWARF/DWARFContext.h"
#include "llvm/Support/MemoryBuffer.h"

#include "module/ElfFile.h"

namespace stackpeek {

/// The DWARF of one file: the context and the section bytes it points into.
struct LoadedDwarf {
  llvm::StringMap<std::unique_ptr<llvm::MemoryBuffer>> sections;
  std::unique_ptr<llvm::DWARFContext> context;
};

/// Null if the file has no usable DWARF (no .debug_info, or it cannot be
/// decompressed). Decoding problems inside the DWARF are swallowed: they
/// surface as missing lines, never as output on stderr.
std::unique_ptr<LoadedDwarf> loadDwarf(const ElfFile &file);

} // namespace stackpeek
