// LineTable: turning a code object's position table into source positions.
//
// CPython stores no line number in a running frame that we could trust
// (f_lineno is stale unless tracing), so the line must be computed from the
// instruction offset and the code object's table, exactly as CPython's own
// PyCode_Addr2Line / PyCode_Addr2Location do. The encoding changed three
// times:
//   - ≤3.9 `co_lnotab`: (byte-offset increment, line increment) pairs; line
//     increments are unsigned in 2.7 and signed int8 from 3.6.
//   - 3.10 `co_linetable` (PEP 626): (byte-range length, line delta) pairs,
//     line delta -128 meaning "no line".
//   - 3.11+ location table (PEP 657): variable-length entries over code units
//     carrying line, end line, start and end column (0-based UTF-8 byte
//     offsets).
// Decoders take plain bytes (already copied from the target) and never read
// past them: a truncated or hostile table yields "no position", not a crash.
#pragma once

#include <cstdint>
#include <optional>

#include "llvm/ADT/ArrayRef.h"

namespace stackpeek::python {

struct SourcePosition {
  std::optional<uint32_t> line;
  std::optional<uint32_t> endLine;
  std::optional<uint32_t> column;    // 0-based, UTF-8 bytes (3.11+)
  std::optional<uint32_t> endColumn; // exclusive (3.11+)
};

/// ≤3.9: `byteOffset` is f_lasti in bytes (-1 before the first instruction).
SourcePosition positionFromLnotab(llvm::ArrayRef<uint8_t> lnotab,
                                  int firstLineno, int64_t byteOffset,
                                  bool signedLineDeltas);

/// 3.10: `byteOffset` = f_lasti * 2 (f_lasti counts code units in 3.10).
SourcePosition positionFromLinetable310(llvm::ArrayRef<uint8_t> linetable,
                                        int firstLineno, int64_t byteOffset);

/// 3.11+: `codeUnit` = (instruction pointer - co_code_adaptive) / 2.
SourcePosition positionFromLocationTable(llvm::ArrayRef<uint8_t> table,
                                         int firstLineno, int64_t codeUnit);

} // namespace stackpeek::python
