// PythonObjects311: hand-built CPython 3.11 objects in FakeMemory, shared by
// the depth unit tests (reprs, handled exceptions, asyncio tasks).
//
// Why 3.11: it has the most moving parts the depth readers handle (managed
// instance dicts with pre-header words, compact dicts with log2 sizes,
// generators with an embedded interpreter frame and a RESUME-based "yield
// from" test), and one version is enough to pin the readers' rules; the
// integration tests cover every real interpreter.
//
// Each object gets its own page-aligned region with an unmapped gap after
// it, so a reader that runs past an object fails like it would in a process.
// Layout facts used here (offsets from python::Layout / DepthLayout):
//  - dict: ma_keys at 32, ma_values 0 (combined); keys: dk_log2_index_bytes
//    at 9, dk_kind at 10 (1: unicode, {key, value} entries), dk_nentries at
//    24, 2^log2_index_bytes index bytes at 32, entries after them;
//  - managed instance dict (Py_TPFLAGS_MANAGED_DICT): values pointer at
//    obj-32 (NULL here), dict pointer at obj-24;
//  - set: mask at 32, table at 40, 16-byte {key, hash} entries;
//  - generator/coroutine: gi_frame_state (int8) at 75, the interpreter frame
//    at 80 with f_code at +32, prev_instr at +56, stacktop at +64 and
//    localsplus at +72; suspended in await when the instruction after
//    prev_instr is RESUME (151) with oparg >= 2 and the awaited object is on
//    the stack top.
#pragma once

#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "memory/FakeMemory.h"
#include "python/layout/DepthLayout.h"
#include "python/layout/Layout.h"
#include "python/objects/Objects.h"
#include "python/objects/Reprs.h"
#include "python/layout/VersionLayouts.h"

namespace stackpeek::python::fixtures {

class Objects311 {
public:
  Objects311() : l(*builtinLayout(3, 11)), d(builtinLayouts({3, 11, 0, 0})->depth) {
    static const std::pair<const char *, uint64_t> kBuiltins[] = {
        {"int", kTpFlagsLong}, {"float", 0}, {"str", kTpFlagsUnicode},
        {"tuple", kTpFlagsTuple}, {"list", kTpFlagsList}, {"dict", kTpFlagsDict},
        {"NoneType", 0}, {"bool", kTpFlagsLong}, {"Widget", kTpFlagsHeapType},
        {"cell", 0}, {"set", 0}, {"weakref", 0}, {"module", 0},
        {"coroutine", 0}, {"generator", 0}, {"async_generator", 0},
        {"async_generator_asend", 0}, {"code", 0}, {"_asyncio.Task", 0},
        {"_asyncio.Future", 0}};
    for (const auto &[name, flags] : kBuiltins)
      types[name] = type(name, flags);
    none = object("NoneType", 16);
  }

  uint64_t alloc(size_t size) {
    uint64_t a = next;
    size_t bytes = (size + 0xfff) & ~size_t(0xfff);
    mem.addRegion(a, std::vector<uint8_t>(bytes));
    next += bytes + 0x1000;
    return a;
  }
  // A type named `name`; `base` (a type address) becomes tp_base.
  uint64_t type(const std::string &name, uint64_t flags, uint64_t base = 0) {
    uint64_t n = alloc(name.size() + 1);
    mem.putBytes(n, name.c_str(), name.size() + 1);
    uint64_t t = alloc(1024);
    mem.put(t + l.tpName, n);
    mem.put(t + l.tpFlags, flags);
    mem.put(t + d.tpBase, base);
    return t;
  }
  // A heap type (class statement) with a managed __dict__.
  uint64_t heapClass(const std::string &name, uint64_t base = 0, uint64_t extraFlags = 0) {
    return types[name] = type(name, kTpFlagsHeapType | kTpFlagsManagedDict | extraFlags, base);
  }
  uint64_t object(const std::string &type, size_t size) {
    uint64_t o = alloc(size);
    mem.put(o + l.obType, types.at(type));
    return o;
  }
  uint64_t integer(int64_t v) {
    uint64_t o = object("int", 32);
    mem.put(o + 16, int64_t(v < 0 ? -1 : v == 0 ? 0 : 1));
    mem.put(o + 24, uint32_t(v < 0 ? -v : v));
    return o;
  }
  uint64_t floating(double v) {
    uint64_t o = object("float", 24);
    mem.put(o + d.floatValue, v);
    return o;
  }
  uint64_t str(const std::string &ascii) {
    uint64_t o = object("str", l.asciiObjectSize + ascii.size() + 1);
    mem.put(o + l.unicodeLength, int64_t(ascii.size()));
    mem.put(o + l.unicodeState, uint32_t(1 << 2 | 1 << 5 | 1 << 6));
    mem.putBytes(o + l.asciiObjectSize, ascii.data(), ascii.size());
    return o;
  }
  uint64_t tuple(const std::vector<uint64_t> &items) {
    uint64_t o = object("tuple", 24 + items.size() * 8);
    mem.put(o + 16, int64_t(items.size()));
    for (size_t i = 0; i < items.size(); ++i)
      mem.put(o + d.tupleItems + i * 8, items[i]);
    return o;
  }
  // A list claiming `size` items, of which `items` are really there.
  uint64_t list(const std::vector<uint64_t> &items, int64_t size = -1) {
    uint64_t o = object("list", 40);
    uint64_t array = alloc(std::max<size_t>(items.size(), 1) * 8);
    mem.put(o + 16, size < 0 ? int64_t(items.size()) : size);
    mem.put(o + d.listItems, array);
    for (size_t i = 0; i < items.size(); ++i)
      mem.put(array + i * 8, items[i]);
    return o;
  }
  // A combined-table dict of str keys.
  uint64_t dict(const std::vector<std::pair<std::string, uint64_t>> &items) {
    uint64_t keys = alloc(40 + items.size() * 16);
    mem.put(keys + 9, uint8_t(3)); // 8 index bytes
    mem.put(keys + 10, uint8_t(1)); // DICT_KEYS_UNICODE
    mem.put(keys + 24, uint64_t(items.size()));
    for (size_t i = 0; i < items.size(); ++i) {
      mem.put(keys + 40 + i * 16, str(items[i].first));
      mem.put(keys + 48 + i * 16, items[i].second);
    }
    uint64_t o = object("dict", 48);
    mem.put(o + l.dictUsed, uint64_t(items.size()));
    mem.put(o + l.dictKeys, keys);
    return o;
  }
  // An instance of a heapClass whose __dict__ holds `attrs`.
  uint64_t instance(const std::string &cls,
                    const std::vector<std::pair<std::string, uint64_t>> &attrs) {
    uint64_t o = alloc(64) + 32; // pre-header: values, dict
    mem.put(o + l.obType, types.at(cls));
    mem.put(o - 24, dict(attrs));
    return o;
  }
  uint64_t set(const std::vector<uint64_t> &keys) {
    size_t slots = 8;
    while (slots < keys.size() * 2)
      slots *= 2;
    uint64_t table = alloc(slots * 16);
    for (size_t i = 0; i < keys.size(); ++i) {
      mem.put(table + i * 16 + d.setEntryKey, keys[i]);
      mem.put(table + i * 16 + d.setEntryHash, uint64_t(i + 1));
    }
    uint64_t o = object("set", 200);
    mem.put(o + d.setUsed, int64_t(keys.size()));
    mem.put(o + d.setMask, uint64_t(slots - 1));
    mem.put(o + d.setTable, table);
    return o;
  }
  uint64_t weakref(uint64_t target) {
    uint64_t o = object("weakref", 48);
    mem.put(o + d.weakrefObject, target);
    return o;
  }
  uint64_t module(const std::vector<std::pair<std::string, uint64_t>> &attrs) {
    uint64_t o = object("module", 48);
    mem.put(o + l.moduleDict, dict(attrs));
    return o;
  }
  uint64_t code() { return object("code", 256); }
  // A suspended generator-like object of type `kind` running `code`,
  // awaiting `awaited` (0: suspended at a plain yield).
  uint64_t coroutine(uint64_t code, uint64_t awaited, const std::string &kind = "coroutine") {
    uint64_t o = object(kind, 256);
    uint64_t frame = o + *d.genIframe;
    mem.put(o + *d.genFrameState, int8_t(-1)); // FRAME_SUSPENDED
    mem.put(frame + l.frameCode, code);
    uint64_t instr = alloc(16);
    uint8_t next[2] = {151, uint8_t(awaited ? 3 : 1)}; // RESUME after await / yield
    mem.putBytes(instr + 2, next, 2);
    mem.put(frame + l.frameInstrPtr, instr);
    mem.put(frame + *d.iframeStacktop, int32_t(1));
    mem.put(frame + d.frameLocalsplus, awaited);
    return o;
  }
  std::string repr(uint64_t addr, ReprLimits limits = {}) {
    ReprReader r(mem, l, d, limits);
    return r.repr(addr).repr;
  }

  FakeMemory mem;
  Layout l;
  DepthLayout d;
  std::map<std::string, uint64_t> types;
  uint64_t none = 0;
  uint64_t next = 0x100000;
};

// Builds what the exception and asyncio readers walk: a thread state whose
// exc_info holds an exception (with args, __cause__/__context__ and a
// traceback of frames), and an interpreter whose sys.modules['asyncio.tasks']
// has `_all_tasks` (a WeakSet), `_current_tasks` and `_PyTask`; tasks are C
// `_asyncio.Task` objects or pure-Python `Task(Future)` instances.
class DepthObjects311 : public Objects311 {
public:
  DepthObjects311() {
    types["ValueError"] = type("ValueError", kTpFlagsBaseExc);
    types["KeyError"] = type("KeyError", kTpFlagsBaseExc);
    types["traceback"] = type("traceback", 0);
    types["frame"] = type("frame", 0);
    tstate = alloc(512);
    heapClass("WeakSet");
    pyFuture = heapClass("Future");
    pyTask = heapClass("Task", pyFuture);
    loop = object("Widget", 64);
  }

  // --- exceptions

  // An exception of builtin type `kind` with args (message,).
  uint64_t exception(const std::string &kind, const std::string &message) {
    uint64_t e = object(kind, 80);
    mem.put(e + d.excArgs, tuple({str(message)}));
    return e;
  }
  void chain(uint64_t exc, uint64_t cause, uint64_t context, bool suppress = false) {
    mem.put(exc + *d.excCause, cause);
    mem.put(exc + *d.excContext, context);
    mem.put(exc + *d.excSuppressContext, uint8_t(suppress));
  }
  // A traceback of `n` entries, each with its own frame and code.
  uint64_t traceback(size_t n) {
    uint64_t head = 0;
    for (size_t i = 0; i < n; ++i) {
      uint64_t iframe = alloc(80);
      mem.put(iframe + l.frameCode, code());
      uint64_t frame = object("frame", 64);
      mem.put(frame + *d.frameObjectIframe, iframe);
      uint64_t tb = object("traceback", 48);
      mem.put(tb + d.tbNext, head);
      mem.put(tb + d.tbFrame, frame);
      mem.put(tb + d.tbLineno, int32_t(10 + i));
      head = tb;
    }
    return head;
  }
  // Makes `exc` what sys.exc_info() returns on the thread.
  void handle(uint64_t exc) {
    uint64_t item = alloc(16);
    mem.put(item, exc);
    mem.put(tstate + d.tstateExcInfo, item);
  }

  // --- asyncio

  uint64_t cTask(const std::string &name, uint64_t coro, uint64_t waiter = 0) {
    uint64_t t = object("_asyncio.Task", d.taskName + 8);
    mem.put(t + d.futLoop, loop);
    mem.put(t + d.taskCoro, coro);
    mem.put(t + d.taskFutWaiter, waiter);
    mem.put(t + d.taskName, str(name));
    return t;
  }
  uint64_t pyTaskObject(const std::string &name, uint64_t coro, uint64_t waiter = 0,
                        const char *state = nullptr) {
    std::vector<std::pair<std::string, uint64_t>> attrs = {
        {"_loop", loop}, {"_callbacks", list({})}, {"_name", str(name)},
        {"_must_cancel", none}, {"_fut_waiter", waiter ? waiter : none}, {"_coro", coro}};
    if (state)
      attrs.push_back({"_state", str(state)});
    return instance("Task", attrs);
  }
  // The interpreter state whose asyncio.tasks._all_tasks holds `tasks`
  // (or whose WeakSet's `data` is `set`, when given).
  uint64_t interpreter(const std::vector<uint64_t> &tasks, uint64_t set = 0) {
    std::vector<uint64_t> refs;
    for (uint64_t t : tasks)
      refs.push_back(weakref(t));
    uint64_t weakSet = instance("WeakSet", {{"data", set ? set : this->set(refs)}});
    uint64_t tasksModule = module({{"_all_tasks", weakSet},
                                   {"_current_tasks", dict({})},
                                   {"_PyTask", pyTask}});
    uint64_t interp = alloc(l.interpModules + 8);
    mem.put(interp + l.interpModules, dict({{"asyncio.tasks", tasksModule}}));
    return interp;
  }

  uint64_t tstate = 0, pyFuture = 0, pyTask = 0, loop = 0;
};

} // namespace stackpeek::python::fixtures
