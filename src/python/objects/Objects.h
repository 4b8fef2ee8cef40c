// Objects: reading the few CPython object kinds the decoder needs.
//
// Names and file names are str objects (PyStringObject in 2.7, PEP 393
// PyUnicodeObject in 3.x: compact ASCII, compact Latin-1/UCS-2/UCS-4, or a
// "legacy" object with a separate data pointer); line tables are bytes (a
// 2.7 str); thread idents are ints (2.7 PyIntObject, 3.x PyLongObject with
// 30-bit digits, whose header changed to `lv_tag` in 3.12); thread names need
// dicts (three layouts: 2.7 open addressing, 3.6-3.10 compact dict, 3.11+
// compact dict with log2 sizes and unicode-only entry kind) and instance dicts
// (tp_dictoffset, then managed/inline dicts in 3.11/3.12/3.13).
//
// All of it is untrusted: lengths are capped, type flags are checked, and
// iteration is bounded; failures come back as llvm::Error.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "llvm/Support/Error.h"
#include "memory/MemorySource.h"
#include "python/layout/Layout.h"
#include "text/PythonLiterals.h"

namespace stackpeek::python {

/// "0x..." for an address, in messages about target memory.
std::string hexAddress(uint64_t v);

/// The value read, or `fallback` when the read failed (the error is dropped:
/// for best-effort fields whose absence is reported elsewhere).
template <class T> T valueOr(llvm::Expected<T> v, T fallback) {
  if (v)
    return *v;
  llvm::consumeError(v.takeError());
  return fallback;
}

// tp_flags bits (Include/object.h, identical in 2.7 and 3.x).
inline constexpr uint64_t kTpFlagsInt = 1ull << 23; // 2.7 only
inline constexpr uint64_t kTpFlagsLong = 1ull << 24;
inline constexpr uint64_t kTpFlagsBytes = 1ull << 27; // 2.7: str
inline constexpr uint64_t kTpFlagsUnicode = 1ull << 28;
inline constexpr uint64_t kTpFlagsDict = 1ull << 29;
inline constexpr uint64_t kTpFlagsManagedDict = 1ull << 4; // 3.11+
inline constexpr uint64_t kTpFlagsInlineValues = 1ull << 2; // 3.13+

inline constexpr size_t kMaxStringBytes = 4096;
inline constexpr size_t kMaxBytesObject = 1 << 20; // line tables
inline constexpr size_t kMaxDictEntries = 1 << 16;

/// Decodes a PEP 393 string already located: `kind` 1/2/4 bytes per code
/// point, to UTF-8. Lone surrogates U+DC80..U+DCFF (surrogateescape, how
/// Python represents undecodable bytes in file names) become the raw byte;
/// other invalid code points become U+FFFD.
std::string codePointsToUtf8(const uint8_t *data, size_t length, unsigned kind);

/// ob_type->tp_flags of the object at `addr`.
llvm::Expected<uint64_t> typeFlags(MemorySource &mem, const Layout &layout,
                                   uint64_t addr);

/// ob_type->tp_name of the object at `addr` ("code", "str", ...).
llvm::Expected<std::string> typeName(MemorySource &mem, const Layout &layout,
                                     uint64_t addr);

/// A str (2.7: str or unicode) as UTF-8 (2.7 str bytes are returned as is).
/// A PEP 393 str's state word: kind (1, 2 or 4 bytes per code point),
/// compact (data follows the header), ascii (data after the ASCII header).
struct StrState {
  unsigned kind = 0;
  bool compact = false, ascii = false;
};
StrState decodeStrState(const Layout &l, uint32_t state);

llvm::Expected<std::string> readString(MemorySource &mem, const Layout &layout,
                                       uint64_t addr);

/// The contents of a bytes object (2.7: str), at most `maxLen` bytes.
llvm::Expected<std::vector<uint8_t>> readBytes(MemorySource &mem,
                                               const Layout &layout,
                                               uint64_t addr,
                                               size_t maxLen = kMaxBytesObject);

/// An int (2.7 int/long, 3.x int) that fits in 64 bits, as unsigned.
llvm::Expected<uint64_t> readUnsignedInt(MemorySource &mem,
                                         const Layout &layout, uint64_t addr);

/// Calls `visit(key, value)` for each live entry of the dict at `addr` until
/// it returns false. Bounded by kMaxDictEntries.
using DictVisitor = std::function<bool(uint64_t key, uint64_t value)>;
llvm::Error forEachDictItem(MemorySource &mem, const Layout &layout,
                            uint64_t dictAddr, const DictVisitor &visit);

/// The value stored under the str key `key` in the dict at `dictAddr`, or 0
/// when absent.
llvm::Expected<uint64_t> dictLookupString(MemorySource &mem,
                                          const Layout &layout,
                                          uint64_t dictAddr,
                                          const std::string &key);

/// The attribute `name` of an ordinary Python instance (its __dict__ entry),
/// or 0 when absent.
llvm::Expected<uint64_t> instanceAttribute(MemorySource &mem,
                                           const Layout &layout,
                                           uint64_t objAddr,
                                           const std::string &name);

/// Several attributes of one instance in one pass over its __dict__ (or
/// inline values), in the order of `names`; 0 for each one absent.
llvm::Expected<std::vector<uint64_t>>
instanceAttributes(MemorySource &mem, const Layout &layout, uint64_t objAddr,
                   const std::vector<std::string> &names);

} // namespace stackpeek::python
