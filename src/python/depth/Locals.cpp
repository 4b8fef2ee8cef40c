// Locals: the fast locals of each captured frame, as reprs, read during the
// pause (see Depth.h for why).
//
// Domain facts (checked against each version's headers, see DepthLayout.h):
//  - ≤3.10: slots f_localsplus[0 .. co_nlocals + ncells + nfrees) of the
//    frame object; names: co_varnames (the first co_nlocals), then
//    co_cellvars, then co_freevars. Cell and free slots hold PyCellObjects
//    (ob_ref at +16). An argument captured by a closure lives in its cell,
//    its plain slot is NULL: the cell's value wins for that name.
//  - 3.11+: slots _PyInterpreterFrame.localsplus[0 .. co_nlocalsplus); names
//    co_localsplusnames, kinds co_localspluskinds (CO_FAST_LOCAL 0x20, CELL
//    0x40, FREE 0x80, HIDDEN 0x10 = 3.12+ inlined-comprehension temporaries,
//    skipped). A cell slot holds the raw value until MAKE_CELL runs.
//  - A NULL slot is a local not assigned yet (or deleted): shown as <unset>.
//  - Module-level frames have no fast locals (their variables are globals)
//    and show none.
//  - A suspended coroutine's (or generator's) frame has the same layout as
//    a running one: a PyFrameObject (≤3.10, gi_frame/cr_frame) or the
//    _PyInterpreterFrame embedded in the generator at gi_iframe (3.11+), so
//    task frames (Asyncio.cpp sets frameAddr to either) are read alike.
#include <unordered_map>

#include "python/depth/Depth.h"
#include "python/objects/Objects.h"
#include "python/layout/RemoteStruct.h"

namespace stackpeek::python {

namespace {

constexpr const char *kUnset = "<unset>";

enum class SlotKind { Plain, Cell, Hidden };

struct CodeLocals {
  std::vector<std::string> names;
  std::vector<SlotKind> kinds;
  std::optional<std::string> error;
};

// The strings of a tuple of str, at most `max`.
llvm::Expected<std::vector<std::string>>
readNameTuple(MemorySource &mem, const Layout &l, const DepthLayout &d,
              uint64_t tuple, size_t max) {
  std::vector<std::string> names;
  if (tuple == 0)
    return names;
  auto size = mem.readValue<int64_t>(tuple + d.varSize);
  if (!size)
    return size.takeError();
  if (*size < 0 || size_t(*size) > max)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "implausible name tuple size %lld",
                                   (long long)*size);
  std::vector<uint64_t> items(*size);
  if (llvm::Error err = mem.readExact(tuple + d.tupleItems, items.data(), items.size() * 8))
    return std::move(err);
  for (uint64_t item : items) {
    auto s = readString(mem, l, item);
    if (!s)
      return s.takeError();
    names.push_back(std::move(*s));
  }
  return names;
}

llvm::Expected<CodeLocals> readCodeLocals(const Layout &l, const DepthLayout &d,
                                          MemorySource &mem, uint64_t code) {
  uint32_t size = std::max({d.coNlocals, d.coVarnames.value_or(0),
                            d.coCellvars.value_or(0), d.coLocalsplusKinds.value_or(0)}) + 8;
  auto co = RemoteStruct::read(mem, code, size);
  if (!co)
    return co.takeError();
  CodeLocals out;
  if (d.coLocalsplusNames) {
    auto names = readNameTuple(mem, l, d, co->pointer(*d.coLocalsplusNames),
                               kMaxLocalsPerFrame);
    if (!names)
      return names.takeError();
    auto kinds = readBytes(mem, l, co->pointer(*d.coLocalsplusKinds), names->size());
    if (!kinds)
      return kinds.takeError();
    if (kinds->size() != names->size())
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "co_localspluskinds does not match names");
    out.names = std::move(*names);
    for (uint8_t k : *kinds)
      out.kinds.push_back(k & kCoFastHidden ? SlotKind::Hidden
                          : k & (kCoFastCell | kCoFastFree) ? SlotKind::Cell
                                                            : SlotKind::Plain);
    return out;
  }
  int32_t nlocals = co->get<int32_t>(d.coNlocals).value_or(-1);
  auto vars = readNameTuple(mem, l, d, co->pointer(*d.coVarnames), kMaxLocalsPerFrame);
  if (!vars)
    return vars.takeError();
  if (nlocals < 0 || size_t(nlocals) > vars->size())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "implausible co_nlocals %d", nlocals);
  vars->resize(nlocals);
  out.names = std::move(*vars);
  out.kinds.assign(out.names.size(), SlotKind::Plain);
  for (uint32_t off : {*d.coCellvars, *d.coFreevars}) {
    auto cells = readNameTuple(mem, l, d, co->pointer(off), kMaxLocalsPerFrame);
    if (!cells)
      return cells.takeError();
    for (std::string &n : *cells) {
      out.names.push_back(std::move(n));
      out.kinds.push_back(SlotKind::Cell);
    }
  }
  return out;
}

class LocalsReader {
public:
  LocalsReader(const Layout &l, const DepthLayout &d, ReprReader &reprs)
      : l_(l), d_(d), reprs_(reprs), mem_(reprs.memory()) {}

  void frame(CapturedFrame &f) {
    if (f.error || !f.codeAddr)
      return;
    const CodeLocals &code = codeLocals(f.codeAddr);
    if (code.error) {
      f.locals.push_back({"<locals>", "<unreadable: " + *code.error + ">", {}});
      return;
    }
    size_t n = std::min(code.names.size(), kMaxLocalsPerFrame);
    std::vector<uint64_t> slots(n);
    if (n && !mem_.read(f.frameAddr + d_.frameLocalsplus, slots.data(), n * 8)) {
      f.locals.push_back({"<locals>", "<unreadable>", {}});
      return;
    }
    std::unordered_map<std::string, size_t> byName;
    for (size_t i = 0; i < n; ++i) {
      if (code.kinds[i] == SlotKind::Hidden)
        continue;
      StackRefValue slot = untagStackRef(d_, slots[i]);
      uint64_t value = slot.object;
      if (value && code.kinds[i] == SlotKind::Cell)
        value = derefCell(value);
      LocalVariable v{code.names[i], kUnset, {}};
      if (slot.taggedInt) {
        v.repr = std::to_string(*slot.taggedInt);
        v.type = "int";
      } else if (value) {
        ValueRepr r = reprs_.repr(value);
        v.repr = std::move(r.repr);
        v.type = std::move(r.type);
      }
      auto [it, fresh] = byName.emplace(v.name, f.locals.size());
      if (fresh)
        f.locals.push_back(std::move(v));
      else if (value) // an argument moved into its cell (≤3.10)
        f.locals[it->second] = std::move(v);
    }
  }

private:
  // A cell's content; a non-cell is a value not yet moved into its cell.
  uint64_t derefCell(uint64_t obj) {
    if (reprs_.typeOf(obj).name != "cell")
      return obj;
    auto ref = mem_.readValue<uint64_t>(obj + d_.cellRef);
    if (ref)
      return *ref;
    llvm::consumeError(ref.takeError());
    return 0;
  }

  const CodeLocals &codeLocals(uint64_t code) {
    auto it = codes_.find(code);
    if (it != codes_.end())
      return it->second;
    CodeLocals value;
    if (auto read = readCodeLocals(l_, d_, mem_, code))
      value = std::move(*read);
    else
      value.error = llvm::toString(read.takeError());
    return codes_.emplace(code, std::move(value)).first->second;
  }

  const Layout &l_;
  const DepthLayout &d_;
  ReprReader &reprs_;
  MemorySource &mem_;
  std::unordered_map<uint64_t, CodeLocals> codes_;
};

} // namespace

void captureLocals(const Interpreter &interp, const DepthLayout &d,
                   ReprReader &reprs, CapturedPython &captured,
                   CapturedAsyncio *tasks) {
  LocalsReader reader(interp.layout, d, reprs);
  for (CapturedThread &t : captured.threads)
    for (CapturedFrame &f : t.frames)
      reader.frame(f);
  if (tasks)
    for (CapturedTask &t : tasks->tasks)
      for (CapturedFrame &f : t.stack)
        reader.frame(f);
}

} // namespace stackpeek::python
