// CodeCache: decoded code objects (name, file, line table), by address.
//
// Turning a captured frame into "function (file:line)" needs its code
// object: a type check, the code struct, two strings and the line table,
// five or more remote reads. A dump reads each code object once. The
// sampler resolves the same few code objects hundreds of times a second, so
// it keeps one cache across passes ("persistent").
//
// Domain facts: a code object never changes what stackpeek reads from it
// (name, qualname, filename, first line, line table are set at creation).
// What can happen is that it is freed and its address reused by another
// code object. A persistent entry therefore remembers the code struct's
// bytes after the reference count (which moves with every call) and is
// reused in a later pass only if one re-read of those bytes matches; any
// mismatch, including a changed mutable field (co_extra, 3.12+ caches),
// just costs a full re-read. Validation happens once per address per pass.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "memory/MemorySource.h"
#include "python/layout/Layout.h"
#include "python/frames/LineTable.h"

namespace stackpeek::python {

struct CodeInfo {
  std::optional<std::string> function;
  std::optional<std::string> file;
  int firstLineno = 0;
  std::vector<uint8_t> lineTable;
  int64_t firstTraceable = 0; // code units (3.11+)
  uint64_t tlbc = 0; // free-threaded 3.14+: co_tlbc, the per-thread copies
  std::optional<std::string> error;

  /// The source position of instruction `at` (a code unit, or f_lasti
  /// before 3.11), decoding the line table with `decode` only the first
  /// time: a sampler asks for the same few positions over and over.
  template <class Decode>
  SourcePosition positionAt(int64_t at, Decode decode) const {
    auto it = positions_.find(at);
    if (it != positions_.end())
      return it->second;
    SourcePosition pos = decode();
    if (positions_.size() < kMaxPositions)
      positions_.emplace(at, pos);
    return pos;
  }

private:
  static constexpr size_t kMaxPositions = 4096;
  mutable std::unordered_map<int64_t, SourcePosition> positions_;
};

class CodeCache {
public:
  /// Entries older than a pass are re-validated before reuse; a
  /// non-persistent cache lives for one resolve() and never re-validates.
  explicit CodeCache(bool persistent = false) : persistent_(persistent) {}

  /// Starts a pass: every entry must be validated again before reuse.
  void newPass() { ++pass_; }

  const CodeInfo &get(const Layout &l, MemorySource &mem, uint64_t addr);

  /// Whether the code object at `addr` is cached and still the one that
  /// was decoded (validated as get() does, once per pass).
  bool unchanged(const Layout &l, MemorySource &mem, uint64_t addr) {
    auto it = entries_.find(addr);
    return it != entries_.end() && stillValid(l, mem, addr, it->second);
  }

  size_t size() const { return entries_.size(); }

private:
  struct Entry {
    CodeInfo info;
    std::vector<uint8_t> fingerprint; // code struct past ob_refcnt
    uint64_t validatedPass = 0;
  };
  bool stillValid(const Layout &l, MemorySource &mem, uint64_t addr, Entry &e);
  // Bound on what a long recording keeps: code objects of a program are
  // few, but a target that keeps creating them (exec, lambdas in a loop)
  // must not grow the sampler without limit.
  static constexpr size_t kMaxEntries = 1 << 16;
  static constexpr size_t kMaxBytes = 64 << 20; // line tables, summed

  bool persistent_;
  uint64_t pass_ = 1;
  std::unordered_map<uint64_t, Entry> entries_;
  size_t bytes_ = 0;
  CodeInfo failed_; // the last failure: not kept, a torn read is not news
};

} // namespace stackpeek::python
