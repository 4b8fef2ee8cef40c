// Reprs: Python-style reprs of objects read out of a target's memory, for
// `dump --locals` (and the messages of handled exceptions).
//
// No code runs in the target, so repr() cannot be called; instead the common
// built-in types are formatted here exactly as CPython formats them, and
// everything else as `<TypeName object at 0x...>`:
//  - None, bool, int (2.7 int/long with its `L`, 3.x ints of any size from
//    30-bit digits; 3.12+ keeps sign and digit count in `lv_tag`), float
//    (shortest round-trip digits, exponent form when the decimal point is
//    more than 16 places right or 4 places left: `1.0`, `1e+16`, `1e-05`,
//    `inf`, `nan`), str (PEP 393 compact ASCII/Latin-1/UCS-2/UCS-4 and legacy
//    strings; 2.7 unicode with its `u` prefix), bytes (2.7 str), tuple, list,
//    dict, set, frozenset, exceptions (`ValueError('x')`).
//  - Quotes: `'` unless the text contains `'` and no `"`. Escapes: `\\`, the
//    quote, `\t \n \r`, `\xhh` for other controls and (bytes, 2.7 unicode) for
//    everything outside ASCII, `\xhh \uhhhh \Uhhhhhhhh` for non-printable
//    non-ASCII code points of a 3.x str. Printability approximates
//    str.isprintable() with a table of the control, format, separator,
//    surrogate and private-use ranges; unassigned code points count as
//    printable (CPython would escape them).
// Bounds (ReprLimits) keep a huge or hostile object cheap: strings show their
// first N characters then `...(K more chars)`, containers their first N
// items then `...(K more)`, nesting deeper than maxDepth and cycles show as
// `[...]` / `(...)` / `{...}` (CPython's own cycle marker), ints wider than
// maxIntDigits 30-bit digits as `<int of ~N digits>`, and a repr longer than
// maxReprBytes is cut with `...`. Every read goes through MemorySource and is
// checked; an unreadable object shows as `<unreadable 0x...>`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "memory/MemorySource.h"
#include "python/layout/DepthLayout.h"
#include "python/layout/Layout.h"
#include "text/PythonLiterals.h"

namespace stackpeek::python {

struct ReprLimits {
  size_t maxDepth = 3;        // container nesting shown
  size_t maxItems = 10;       // items shown per container
  size_t maxStringChars = 100; // characters (bytes) shown per str/bytes
  size_t maxReprBytes = 1024; // whole repr, then "..."
  size_t maxIntDigits = 100;  // 30-bit digits (~900 decimal digits)
  size_t maxObjects = 512;    // objects visited for one top-level repr
};

struct ValueRepr {
  std::string repr;
  std::optional<std::string> type; // tp_name; null when unreadable
};

/// Reads reprs of objects in one target. Caches type lookups, so use one
/// reader per pause (types may be freed and reused once the target runs).
class ReprReader {
public:
  ReprReader(MemorySource &mem, const Layout &layout, const DepthLayout &depth,
             ReprLimits limits = {});

  /// repr(obj) within the limits.
  ValueRepr repr(uint64_t addr);

  /// str(obj): a str's own text (bounded), else repr(obj).
  std::string str(uint64_t addr);

  /// What kind of object `addr` is, by its (non-heap, built-in) type.
  enum class Kind {
    Unreadable, Other, None, Bool, Int, Long2, Float, Str, Unicode2, Bytes,
    Tuple, List, Dict, Set, FrozenSet, Exception
  };
  struct TypeInfo {
    Kind kind = Kind::Unreadable;
    std::string name;   // tp_name
    uint64_t flags = 0; // tp_flags
  };
  /// The type of the object at `addr` (cached per type address).
  const TypeInfo &typeOf(uint64_t addr);

  MemorySource &memory() { return mem_; }
  const Layout &layout() const { return l_; }
  const DepthLayout &depthLayout() const { return d_; }
  const ReprLimits &limits() const { return limits_; }

private:
  MemorySource &mem_;
  const Layout &l_;
  const DepthLayout &d_;
  ReprLimits limits_;
  std::unordered_map<uint64_t, TypeInfo> types_;
  TypeInfo unreadable_;
};

} // namespace stackpeek::python
