// DepthLayout tables for CPython 2.7 and 3.6-3.15 (listed with their Layouts
// in VersionLayouts.cpp), and their overlay from the debug offsets. See
// DepthLayout.h for where each number comes from; the comments name the
// struct fields.
//
// 3.14 and 3.15 (gdb on 3.14.7 built with DWARF; 3.15.2 checked on live
// objects by the oracle tests): the interpreter frame keeps a stack pointer
// instead of a depth, its slots are tagged _PyStackRefs, and 3.15
// renumbered the generator frame states (CREATED 0, SUSPENDED 1,
// SUSPENDED_YIELD_FROM 2, ..._LOCKED 3, EXECUTING 4, CLEARED 5) and keeps
// what a suspended `await` waits on one slot below the top. Free-threaded
// builds put 16 more bytes in every object header (ob_tid, flags,
// ob_ref_local, ob_ref_shared) in front of ob_type.
#include "python/layout/DepthLayout.h"

#include "python/layout/BuiltinTables.h"
#include "python/layout/DebugOffsets.h"
#include "python/layout/OffsetField.h"

namespace stackpeek::python {

namespace {

// ≤3.10: co_varnames/co_cellvars/co_freevars tuples, f_localsplus.
DepthLayout frameObjectVersion(uint32_t nlocals, uint32_t varnames,
                               uint32_t code, uint32_t localsplus,
                               uint32_t lasti) {
  DepthLayout d;
  d.coNlocals = nlocals;
  d.coVarnames = varnames;
  d.coFreevars = varnames + 8; // co_varnames, co_freevars, co_cellvars
  d.coCellvars = varnames + 16;
  d.coCode = code;
  d.frameLocalsplus = localsplus;
  d.frameObjectLasti = lasti;
  return d;
}

void py3Exceptions(DepthLayout &d, uint32_t first) {
  // PyBaseExceptionObject: ..., args 24, [notes 32,] traceback, context,
  // cause, suppress_context (char).
  d.excTraceback = first, d.excContext = first + 8, d.excCause = first + 16;
  d.excSuppressContext = first + 24;
}

void taskObj(DepthLayout &d, uint32_t state, uint32_t waiter) {
  // FutureObj_HEAD: fut_loop 16, fut_callback0 24, fut_context0 32,
  // fut_callbacks 40, ..., fut_state (int); TaskObj: task_fut_waiter,
  // task_coro, task_name follow the future head.
  d.hasAsyncio = true;
  d.futState = state;
  d.taskFutWaiter = waiter, d.taskCoro = waiter + 8, d.taskName = waiter + 16;
}

// 3.11+: co_localsplusnames/kinds, _PyInterpreterFrame.localsplus at 72 and
// stacktop at 64, PyFrameObject.f_frame at 24.
DepthLayout interpreterFrameVersion(uint32_t nlocalsplus, uint32_t excInfo) {
  DepthLayout d;
  d.coNlocalsplus = nlocalsplus, d.coNlocals = 80;
  d.coLocalsplusNames = 96, d.coLocalsplusKinds = 104;
  d.frameLocalsplus = 72, d.iframeStacktop = 64, d.frameObjectIframe = 24;
  d.excState = ExcStateModel::StackItem311;
  d.tstateExcInfo = excInfo;
  py3Exceptions(d, 40); // __notes__ at 32 since 3.11
  return d;
}

} // namespace

namespace builtin {

DepthLayout depth27() {
  DepthLayout d = frameObjectVersion(20, 56, 32, 376, 120);
  d.coFreevars = 64, d.coCellvars = 72;
  d.excState = ExcStateModel::TstateFields;
  d.tstateExcType = 96, d.tstateExcValue = 104, d.tstateExcTraceback = 112;
  d.htName = d.htQualname = 856; // 2.7 has no __qualname__
  d.setEntryKey = 8, d.setEntryHash = 0;
  return d;
}

DepthLayout depth36() {
  DepthLayout d = frameObjectVersion(24, 64, 40, 376, 120);
  d.excState = ExcStateModel::TstateFields;
  d.tstateExcType = 104, d.tstateExcValue = 112, d.tstateExcTraceback = 120;
  py3Exceptions(d, 32);
  d.htName = 832, d.htQualname = 848;
  return d;
}

DepthLayout depth37() {
  DepthLayout d = frameObjectVersion(24, 64, 40, 360, 104);
  d.excState = ExcStateModel::StackItem37;
  d.tstateExcInfo = 144;
  py3Exceptions(d, 32);
  d.htName = 832, d.htQualname = 848;
  return d;
}

DepthLayout depth38() {
  DepthLayout d = frameObjectVersion(28, 72, 48, 360, 104);
  d.excState = ExcStateModel::StackItem37;
  d.tstateExcInfo = 144;
  py3Exceptions(d, 32);
  d.htName = 848, d.htQualname = 864;
  d.yieldFrom = YieldFromModel::StacktopPtr;
  d.frameStacktopPtr = 72;
  d.genFrame = 16;
  taskObj(d, 72, 104);
  return d;
}

DepthLayout depth39() {
  DepthLayout d = depth38();
  d.htName = 840, d.htQualname = 856;
  taskObj(d, 80, 144);
  return d;
}

DepthLayout depth310() {
  DepthLayout d = frameObjectVersion(28, 72, 48, 352, 96);
  d.excState = ExcStateModel::StackItem37;
  d.tstateExcInfo = 144;
  py3Exceptions(d, 32);
  d.htName = 848, d.htQualname = 864;
  d.yieldFrom = YieldFromModel::StackDepth310;
  d.frameValuestack = 64, d.frameStackdepth = 80;
  d.genFrame = 16;
  taskObj(d, 88, 152);
  return d;
}

DepthLayout depth311() {
  DepthLayout d = interpreterFrameVersion(76, 120);
  d.htName = 848, d.htQualname = 864;
  d.yieldFrom = YieldFromModel::ResumeOparg;
  d.genIframe = 80, d.genFrameState = 75;
  d.resumeOpcodes = {151, 150}; // RESUME, RESUME_QUICK
  taskObj(d, 88, 128);
  return d;
}

DepthLayout depth312() {
  DepthLayout d = interpreterFrameVersion(72, 104);
  d.htName = 856, d.htQualname = 872;
  d.yieldFrom = YieldFromModel::ResumeOparg;
  d.genIframe = 72, d.genFrameState = 67;
  d.resumeOpcodes = {151, 240}; // RESUME, INSTRUMENTED_RESUME
  taskObj(d, 88, 128);
  return d;
}

DepthLayout depth313() {
  DepthLayout d = interpreterFrameVersion(72, 120);
  d.htName = 856, d.htQualname = 872;
  d.yieldFrom = YieldFromModel::FrameState313;
  d.genIframe = 72, d.genFrameState = 67;
  d.frameCreated = -3, d.frameSuspendedYieldFrom = -1;
  taskObj(d, 96, 112); // the task flags became bitfields at 104
  return d;
}

// 3.14: localsplus at 80, stackpointer at 64, tagged stack references.
DepthLayout depth314() {
  DepthLayout d = depth313();
  d.frameLocalsplus = 80;
  d.iframeStacktop.reset();
  d.iframeStackpointer = 64;
  d.stackRefTagBits = 3, d.stackRefTaggedInts = true;
  d.asyncioInThreadLists = true;
  return d;
}

DepthLayout depth315() {
  DepthLayout d = depth314();
  d.tstateExcInfo = 144; // after current_exception (136)
  d.htName = 864, d.htQualname = 880; // PyTypeObject grew by 8
  d.frameCreated = 0, d.frameSuspendedYieldFrom = 2, d.frameCleared = 5;
  d.awaitedSlotFromTop = 2;
  return d;
}

} // namespace builtin

namespace {

// Every offset the debug offsets concern: those inside an object (not a
// frame or thread state) move with a free-threaded build's larger object
// header, and those the table publishes are then taken from it. The ones a
// rule of their own sets (ht_name and ht_qualname, exc_info, the stack
// pointer) follow the table in overlayDebugOffsets.
struct DepthField {
  OffsetField<DepthLayout> member;
  bool inObject;
  DebugField source = DebugField::Unused;
};

constexpr bool kInObject = true, kOutsideObjects = false;
using F = DebugField;
using D = DepthLayout;

constexpr DepthField kDepthFields[] = {
    {&D::coNlocals, kInObject},
    {&D::coNlocalsplus, kInObject},
    {&D::coLocalsplusNames, kInObject, F::CoLocalsplusnames},
    {&D::coLocalsplusKinds, kInObject, F::CoLocalspluskinds},
    {&D::frameLocalsplus, kOutsideObjects, F::FrameLocalsplus},
    {&D::frameObjectIframe, kInObject},
    {&D::frameObjectLasti, kInObject},
    {&D::genIframe, kInObject, F::GiIframe},
    {&D::genFrameState, kInObject, F::GiFrameState},
    {&D::excArgs, kInObject},
    {&D::excTraceback, kInObject},
    {&D::excContext, kInObject},
    {&D::excCause, kInObject},
    {&D::excSuppressContext, kInObject},
    {&D::tbNext, kInObject},
    {&D::tbFrame, kInObject},
    {&D::tbLasti, kInObject},
    {&D::tbLineno, kInObject},
    {&D::tpBase, kInObject},
    {&D::tpDict, kInObject},
    {&D::htName, kInObject},
    {&D::htQualname, kInObject},
    {&D::varSize, kInObject, F::TupleObSize},
    {&D::tupleItems, kInObject, F::TupleItem},
    {&D::listItems, kInObject, F::ListItem},
    {&D::setUsed, kInObject},
    {&D::setMask, kInObject},
    {&D::setTable, kInObject},
    {&D::floatValue, kInObject, F::FloatFval},
    {&D::weakrefObject, kInObject},
    {&D::cellRef, kInObject},
    {&D::methodFunc, kInObject},
    {&D::methodSelf, kInObject},
    {&D::asyncGenAwaitableGen, kInObject},
    {&D::futLoop, kInObject},
    {&D::futCallback0, kInObject},
    {&D::futCallbacks, kInObject},
    {&D::futState, kInObject},
    {&D::taskFutWaiter, kInObject},
    {&D::taskCoro, kInObject},
    {&D::taskName, kInObject},
};

void overlayFields(const DebugOffsets &t, uint32_t headerShift, DepthLayout &d) {
  for (const DepthField &f : kDepthFields) {
    if (auto v = f.member.get(d); v && f.inObject)
      f.member.set(d, *v + headerShift);
    if (auto v = t.get(f.source))
      f.member.set(d, static_cast<uint32_t>(*v));
  }
}

} // namespace

StackRefValue untagStackRef(const DepthLayout &d, uint64_t bits) {
  if (d.stackRefTaggedInts && (bits & 3) == 3)
    return {0, static_cast<int64_t>(bits) >> 2};
  return {bits & ~d.stackRefTagBits, std::nullopt};
}

DepthLayout builtin::overlayDebugOffsets(const DebugOffsets &t, DepthLayout d,
                                         uint32_t headerShift) {
  overlayFields(t, headerShift, d);
  if (t.freeThreaded && t.version.minor == 13)
    d.stackRefTagBits = 1; // deferred references (Py_TAG_DEFERRED)
  // Only the versions that keep a stack pointer (not a depth) take one.
  if (d.iframeStackpointer)
    t.copyTo(DebugField::FrameStackpointer, d.iframeStackpointer);
  // PyHeapTypeObject: ..., ht_name, ht_slots, ht_qualname, ht_cached_keys.
  if (auto keys = t.get(DebugField::HtCachedKeys); keys && *keys >= 24)
    d.htName = static_cast<uint32_t>(*keys - 24), d.htQualname = static_cast<uint32_t>(*keys - 8);
  if (auto exc = t.get(DebugField::CurrentException)) // exc_info follows it
    d.tstateExcInfo = static_cast<uint32_t>(*exc + 8);
  return d;
}

} // namespace stackpeek::python
