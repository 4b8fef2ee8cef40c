// Exceptions: the exception a thread is handling (what sys.exc_info() would
// return in it), with its traceback and __cause__/__context__ chain, read
// during the pause; traceback code objects are decoded after resume.
//
// Domain facts (headers of each version, see DepthLayout.h):
//  - Where: 2.7/3.6 tstate->exc_type/exc_value/exc_traceback. 3.7-3.10
//    tstate->exc_info points at a stack of _PyErr_StackItem {exc_type,
//    exc_value, exc_traceback, previous_item}; 3.11+ {exc_value,
//    previous_item}. Like _PyErr_GetTopmostException, skip items whose value
//    is NULL or None (e.g. a generator's empty slot).
//  - BaseException: args (tuple) at 24; 3.x: __traceback__, __context__,
//    __cause__, __suppress_context__ (char) after args (and after __notes__
//    from 3.11). 2.7 has no chaining.
//  - Traceback objects: tb_next 16, tb_frame 24, tb_lasti 32 (bytes; the
//    instruction offset), tb_lineno 36 (-1 on 3.12+ until asked for: then the
//    line comes from tb_lasti and the line table). tb_frame is a frame object;
//    on 3.11+ its f_frame points at the _PyInterpreterFrame holding f_code.
//  - traceback.py: the chain follows __cause__ ("The above exception was the
//    direct cause of the following exception:"), else __context__ unless
//    __suppress_context__ ("During handling of the above exception, another
//    exception occurred:"), stopping at an exception already seen.
//  - The type as traceback prints it: 3.x `module.qualname`, without the
//    module for builtins and __main__; 2.7 `__name__` only.
//  - The message is str(exc) as BaseException.__str__ computes it: '' for no
//    args, str(args[0]) for one (KeyError: repr(args[0])), repr(args)
//    otherwise. Limits: classes overriding __str__ (OSError's "[Errno N]",
//    SyntaxError, UnicodeError, user classes) show that default instead.
#include <algorithm>

#include "python/depth/Depth.h"
#include "python/objects/Objects.h"
#include "python/layout/RemoteStruct.h"

namespace stackpeek::python {

namespace {

class ExceptionReader {
public:
  ExceptionReader(const Interpreter &in, const DepthLayout &d, ReprReader &r)
      : in_(in), l_(in.layout), d_(d), r_(r), mem_(r.memory()) {}

  // sys.exc_info()[1] and [2] of a thread state.
  std::pair<uint64_t, uint64_t> handled(uint64_t tstate) {
    if (d_.excState == ExcStateModel::TstateFields) {
      uint64_t value = ptr(tstate + d_.tstateExcValue);
      if (!isException(value))
        return {0, 0};
      return {value, ptr(tstate + d_.tstateExcTraceback)};
    }
    bool old = d_.excState == ExcStateModel::StackItem37;
    uint32_t valueAt = old ? 8 : 0, previousAt = old ? 24 : 8;
    uint64_t item = ptr(tstate + d_.tstateExcInfo);
    for (size_t i = 0; item && i < 256; ++i) {
      uint64_t value = ptr(item + valueAt);
      if (isException(value))
        return {value, ptr(value + *d_.excTraceback)};
      item = ptr(item + previousAt);
    }
    return {0, 0};
  }

  std::vector<CapturedException> chain(uint64_t value, uint64_t tb) {
    std::vector<CapturedException> out;
    std::vector<uint64_t> seen;
    std::string relation;
    while (value && out.size() < kMaxExceptionChain &&
           std::find(seen.begin(), seen.end(), value) == seen.end()) {
      seen.push_back(value);
      CapturedException e = one(value, tb);
      e.chainedAs = relation;
      out.push_back(std::move(e));
      if (!d_.excCause)
        break; // 2.7: no chaining
      auto exc = RemoteStruct::read(mem_, value, *d_.excSuppressContext + 1);
      if (!exc) {
        llvm::consumeError(exc.takeError());
        break;
      }
      uint64_t cause = exc->pointer(*d_.excCause);
      uint64_t context = exc->pointer(*d_.excContext);
      bool suppress = exc->get<uint8_t>(*d_.excSuppressContext).value_or(0);
      if (isException(cause))
        value = cause, relation = "cause";
      else if (isException(context) && !suppress)
        value = context, relation = "context";
      else
        break;
      tb = ptr(value + *d_.excTraceback);
    }
    if (value && out.size() == kMaxExceptionChain)
      out.back().error = "exception chain truncated";
    return out;
  }

private:
  uint64_t ptr(uint64_t addr) { return valueOr(mem_.readValue<uint64_t>(addr), 0ul); }

  bool isException(uint64_t obj) {
    return obj && (r_.typeOf(obj).flags & kTpFlagsBaseExc);
  }

  CapturedException one(uint64_t value, uint64_t tb) {
    CapturedException e;
    e.type = displayType(value);
    e.message = message(value);
    traceback(tb, e);
    return e;
  }

  // traceback.py's name for the exception's type.
  std::string displayType(uint64_t value) {
    uint64_t type = ptr(value + l_.obType);
    const ReprReader::TypeInfo &t = r_.typeOf(value);
    std::string name = t.name, module;
    if (auto dot = name.rfind('.'); dot != std::string::npos) {
      module = name.substr(0, dot);
      name = name.substr(dot + 1);
    }
    if (t.flags & kTpFlagsHeapType) {
      uint64_t q = ptr(type + (l_.stringModel == StringModel::Py2 ? d_.htName
                                                                    : d_.htQualname));
      if (auto s = readString(mem_, l_, q))
        name = *s;
      else
        llvm::consumeError(s.takeError());
      module = heapTypeModule(type);
    }
    if (l_.stringModel == StringModel::Py2 || module.empty() ||
        module == "builtins" || module == "__main__")
      return name;
    return module + "." + name;
  }

  std::string heapTypeModule(uint64_t type) {
    uint64_t dict = ptr(type + d_.tpDict);
    if (!dict)
      return "";
    auto mod = dictLookupString(mem_, l_, dict, "__module__");
    if (!mod || !*mod) {
      if (!mod)
        llvm::consumeError(mod.takeError());
      return "";
    }
    auto s = readString(mem_, l_, *mod);
    if (s)
      return *s;
    llvm::consumeError(s.takeError());
    return "";
  }

  std::string message(uint64_t value) {
    uint64_t args = ptr(value + d_.excArgs);
    if (!args || r_.typeOf(args).kind != ReprReader::Kind::Tuple)
      return "";
    int64_t n = valueOr(mem_.readValue<int64_t>(args + d_.varSize), int64_t(-1));
    if (n == 0)
      return "";
    if (n != 1)
      return r_.repr(args).repr;
    uint64_t arg = ptr(args + d_.tupleItems);
    if (r_.typeOf(value).name == "KeyError")
      return r_.repr(arg).repr;
    return r_.str(arg);
  }

  void traceback(uint64_t tb, CapturedException &e) {
    std::vector<uint64_t> seen;
    while (tb && e.traceback.size() < kMaxTracebackEntries) {
      if (std::find(seen.begin(), seen.end(), tb) != seen.end()) {
        e.error = "traceback loops";
        return;
      }
      seen.push_back(tb);
      auto t = RemoteStruct::read(mem_, tb, d_.tbLineno + 4);
      if (!t) {
        e.error = "unreadable traceback: " + llvm::toString(t.takeError());
        return;
      }
      e.traceback.push_back(entry(*t));
      tb = t->pointer(d_.tbNext);
    }
    if (tb)
      e.error = "traceback truncated";
  }

  CapturedTracebackEntry entry(const RemoteStruct &t) {
    CapturedTracebackEntry out;
    out.lineno = t.get<int32_t>(d_.tbLineno).value_or(-1);
    int32_t lasti = t.get<int32_t>(d_.tbLasti).value_or(-1);
    uint64_t frame = t.pointer(d_.tbFrame);
    CapturedFrame &f = out.frame;
    f.frameAddr = frame;
    if (d_.frameObjectIframe) { // 3.11+: code sits in the interpreter frame
      uint64_t iframe = ptr(frame + *d_.frameObjectIframe);
      f.codeAddr = ptr(iframe + l_.frameCode) & ~l_.executableTagBits;
      f.instrPtr = f.codeAddr + l_.coCodeAdaptive.value_or(0) + uint64_t(std::max(lasti, 0));
    } else {
      f.codeAddr = ptr(frame + l_.frameCode);
      f.lasti = l_.lastiInCodeUnits && lasti >= 0 ? lasti / 2 : lasti;
    }
    if (!f.codeAddr)
      f.error = "traceback frame without code";
    return out;
  }

  const Interpreter &in_;
  const Layout &l_;
  const DepthLayout &d_;
  ReprReader &r_;
  MemorySource &mem_;
};

} // namespace

std::vector<CapturedException> captureHandledException(
    const Interpreter &interp, const DepthLayout &d, ReprReader &reprs,
    uint64_t tstateAddr) {
  ExceptionReader reader(interp, d, reprs);
  auto [value, tb] = reader.handled(tstateAddr);
  if (!value)
    return {};
  return reader.chain(value, tb);
}

} // namespace stackpeek::python
