// Line-table decoders; each mirrors the CPython function named in its comment
// (Objects/codeobject.c of the version concerned), including its edge cases:
// offsets before the first instruction map to co_firstlineno, offsets past the
// end of the table map to "no line".
#include "python/frames/LineTable.h"

namespace stackpeek::python {

namespace {

std::optional<uint32_t> asLine(int64_t line) {
  if (line < 0 || line > UINT32_MAX)
    return std::nullopt;
  return static_cast<uint32_t>(line);
}

// Cursor over a 3.11+ location table; every read is bounds-checked and a
// read past the end sets `truncated` instead of touching memory.
class LocationCursor {
public:
  explicit LocationCursor(llvm::ArrayRef<uint8_t> bytes) : bytes_(bytes) {}
  bool atEnd() const { return pos_ >= bytes_.size(); }
  bool truncated() const { return truncated_; }
  uint8_t byte() {
    if (atEnd()) {
      truncated_ = true;
      return 0;
    }
    return bytes_[pos_++];
  }
  // 6-bit little-endian groups, bit 6 = continuation.
  uint64_t varint() {
    uint8_t b = byte();
    uint64_t value = b & 63;
    unsigned shift = 0;
    while ((b & 64) && !truncated_ && shift < 60) {
      b = byte();
      shift += 6;
      value |= uint64_t(b & 63) << shift;
    }
    return value;
  }
  int64_t signedVarint() {
    uint64_t v = varint();
    return (v & 1) ? -int64_t(v >> 1) : int64_t(v >> 1);
  }

private:
  llvm::ArrayRef<uint8_t> bytes_;
  size_t pos_ = 0;
  bool truncated_ = false;
};

std::optional<uint32_t> asColumn(int64_t col) {
  return col < 0 ? std::nullopt : asLine(col);
}

} // namespace

// PyCode_Addr2Line of 2.7 / 3.6-3.9.
SourcePosition positionFromLnotab(llvm::ArrayRef<uint8_t> lnotab,
                                  int firstLineno, int64_t byteOffset,
                                  bool signedLineDeltas) {
  int64_t line = firstLineno, addr = 0;
  for (size_t i = 0; i + 1 < lnotab.size(); i += 2) {
    addr += lnotab[i];
    if (addr > byteOffset)
      break;
    line += signedLineDeltas ? int64_t(int8_t(lnotab[i + 1]))
                             : int64_t(lnotab[i + 1]);
  }
  return {asLine(line), std::nullopt, std::nullopt, std::nullopt};
}

// PyCode_Addr2Line + _PyCode_CheckLineNumber of 3.10.
SourcePosition positionFromLinetable310(llvm::ArrayRef<uint8_t> linetable,
                                        int firstLineno, int64_t byteOffset) {
  if (byteOffset < 0)
    return {asLine(firstLineno), {}, {}, {}};
  int64_t line = firstLineno, end = 0;
  for (size_t i = 0; i + 1 < linetable.size(); i += 2) {
    int64_t start = end;
    end += linetable[i];
    int8_t delta = int8_t(linetable[i + 1]);
    std::optional<int64_t> current;
    if (delta != -128) {
      line += delta;
      current = line;
    }
    if (start <= byteOffset && byteOffset < end)
      return {current ? asLine(*current) : std::nullopt, {}, {}, {}};
  }
  return {};
}

// PyCode_Addr2Location of 3.11+ (advance_with_locations).
SourcePosition positionFromLocationTable(llvm::ArrayRef<uint8_t> table,
                                         int firstLineno, int64_t codeUnit) {
  if (codeUnit < 0)
    return {asLine(firstLineno), asLine(firstLineno), 0, 0};
  LocationCursor cur(table);
  int64_t line = firstLineno, end = 0;
  while (!cur.atEnd()) {
    uint8_t first = cur.byte();
    if (!(first & 0x80))
      return {}; // not at an entry start: corrupt table
    int code = (first >> 3) & 15;
    int64_t start = end;
    end += (first & 7) + 1;
    SourcePosition pos;
    if (code == 15) {
      // No location: leave everything empty.
    } else if (code == 14) {
      line += cur.signedVarint();
      pos.line = asLine(line);
      pos.endLine = asLine(line + int64_t(cur.varint()));
      pos.column = asColumn(int64_t(cur.varint()) - 1);
      pos.endColumn = asColumn(int64_t(cur.varint()) - 1);
    } else if (code == 13) {
      line += cur.signedVarint();
      pos.line = pos.endLine = asLine(line);
    } else if (code >= 10) {
      line += code - 10;
      pos.line = pos.endLine = asLine(line);
      pos.column = cur.byte();
      pos.endColumn = cur.byte();
    } else {
      uint8_t second = cur.byte();
      pos.line = pos.endLine = asLine(line);
      pos.column = uint32_t(code << 3 | (second >> 4));
      pos.endColumn = *pos.column + (second & 15);
    }
    if (cur.truncated())
      return {};
    if (start <= codeUnit && codeUnit < end)
      return pos;
  }
  return {};
}

} // namespace stackpeek::python
