// DepthLayout: the offsets that locals, handled exceptions and asyncio tasks
// need, per CPython minor version, kept apart from Layout (which covers only
// what a plain stack needs) so the stack decoder's table stays small.
//
// Like Layout, these are data, not #ifdefs. Sources:
//  - code objects, frames, generators, tracebacks, exceptions, thread-state
//    exception fields, containers, weakrefs, cells, bound methods: offsetof()
//    against the headers of the pyenv builds 2.7.18, 3.6.15, 3.7.16, 3.8.18,
//    3.9.18, 3.10.13, 3.11.7, 3.12.1, 3.13.0 (Include/, Include/cpython/,
//    Include/internal/ with Py_BUILD_CORE); opcodes from opcode.h;
//  - `_asyncio` FutureObj/TaskObj (Modules/_asynciomodule.c, not installed):
//    measured on live objects of each build (the address of a task's loop,
//    coroutine, name and awaited future found in its memory; the state field
//    found by diffing a future before and after set_result/cancel), then
//    checked by the integration tests against Task.get_coro()/get_name().
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "python/layout/Layout.h"

namespace stackpeek::python {

// Where sys.exc_info() lives in a thread state.
enum class ExcStateModel {
  TstateFields, // 2.7/3.6: tstate->exc_type / exc_value / exc_traceback
  StackItem37,  // 3.7-3.10: tstate->exc_info -> {type, value, tb, previous}
  StackItem311, // 3.11+:    tstate->exc_info -> {value, previous}
};

// How a suspended generator/coroutine records what it awaits (_PyGen_yf).
enum class YieldFromModel {
  None,           // 2.7/3.6/3.7 (asyncio tasks are not supported there)
  StacktopPtr,    // 3.8/3.9: code[f_lasti + 2] == YIELD_FROM, f_stacktop[-1]
  StackDepth310,  // 3.10: code[(f_lasti + 1) * 2] == YIELD_FROM, valuestack[depth-1]
  ResumeOparg,    // 3.11/3.12: next instruction RESUME with oparg >= 2, stack top
  FrameState313,  // 3.13+: gi_frame_state == FRAME_SUSPENDED_YIELD_FROM, a stack slot
};

struct DepthLayout {
  // Code objects.
  uint32_t coNlocals = 0;
  std::optional<uint32_t> coVarnames, coCellvars, coFreevars; // ≤3.10
  std::optional<uint32_t> coCode;                              // ≤3.10
  std::optional<uint32_t> coNlocalsplus, coLocalsplusNames,
      coLocalsplusKinds; // 3.11+
  // Frames: the fast-locals array (frame object ≤3.10, interpreter frame
  // 3.11+), and the value stack top.
  uint32_t frameLocalsplus = 0;
  std::optional<uint32_t> frameStacktopPtr;  // 3.8/3.9 f_stacktop
  std::optional<uint32_t> frameValuestack, frameStackdepth; // 3.10
  std::optional<uint32_t> iframeStacktop;    // 3.11-3.13 int, in slots
  std::optional<uint32_t> iframeStackpointer; // 3.14+ _PyStackRef *
  std::optional<uint32_t> frameObjectIframe; // 3.11+ PyFrameObject.f_frame
  uint32_t frameObjectLasti = 0;             // ≤3.10 PyFrameObject.f_lasti
  // Generators / coroutines.
  YieldFromModel yieldFrom = YieldFromModel::None;
  std::optional<uint32_t> genFrame;      // ≤3.10 gi_frame (PyFrameObject*)
  std::optional<uint32_t> genIframe;     // 3.11+ embedded _PyInterpreterFrame
  std::optional<uint32_t> genFrameState; // 3.11+ int8
  int8_t frameCreated = -2, frameSuspendedYieldFrom = -1, frameCleared = 4;
  // The awaited object's slot, counted from the stack top: 1 (the top)
  // up to 3.14, 2 from 3.15.
  uint32_t awaitedSlotFromTop = 1;
  // 3.14+ (3.13t): frame slots are _PyStackRefs, tagged words. Low bits 11
  // are a tagged int (the value shifted left by 2), else clearing
  // `stackRefTagBits` gives the object (0: unset).
  uint64_t stackRefTagBits = 0;
  bool stackRefTaggedInts = false;
  std::vector<uint8_t> resumeOpcodes; // 3.11/3.12 RESUME and its variants
  uint8_t yieldFromOpcode = 72;       // ≤3.10
  // Exceptions and tracebacks.
  ExcStateModel excState = ExcStateModel::TstateFields;
  uint32_t tstateExcType = 0, tstateExcValue = 0, tstateExcTraceback = 0;
  uint32_t tstateExcInfo = 0;
  uint32_t excArgs = 24;
  std::optional<uint32_t> excTraceback, excContext, excCause,
      excSuppressContext; // 3.x
  uint32_t tbNext = 16, tbFrame = 24, tbLasti = 32, tbLineno = 36;
  // Types.
  uint32_t tpBase = 256, tpDict = 264;
  uint32_t htName = 0, htQualname = 0; // heap types (ht_qualname 3.x)
  // Objects. varSize: PyVarObject.ob_size.
  uint32_t varSize = 16;
  uint32_t tupleItems = 24, listItems = 24;
  uint32_t setUsed = 24, setMask = 32, setTable = 40;
  uint32_t setEntryKey = 0, setEntryHash = 8; // 16-byte setentry ({hash, key} in 2.7)
  uint32_t floatValue = 16, weakrefObject = 16, cellRef = 16;
  uint32_t methodFunc = 16, methodSelf = 24;
  // async_generator_asend / _athrow: ags_gen / agt_gen, right after the head.
  uint32_t asyncGenAwaitableGen = 16;
  // _asyncio FutureObj / TaskObj (3.8+).
  bool hasAsyncio = false;
  // 3.14+: C tasks are on per-thread lists that the _asyncio module's own
  // debug offsets describe (Asyncio.cpp), which also place the task fields.
  bool asyncioInThreadLists = false;
  uint32_t futLoop = 16, futCallback0 = 24, futCallbacks = 40, futState = 0;
  uint32_t taskFutWaiter = 0, taskCoro = 0, taskName = 0;
};

// CO_FAST_* kinds of co_localspluskinds (3.11+).
inline constexpr uint8_t kCoFastHidden = 0x10, kCoFastLocal = 0x20,
                         kCoFastCell = 0x40, kCoFastFree = 0x80;
inline constexpr uint64_t kTpFlagsHeapType = 1ull << 9;
inline constexpr uint64_t kTpFlagsList = 1ull << 25, kTpFlagsTuple = 1ull << 26,
                          kTpFlagsBaseExc = 1ull << 30,
                          kTpFlagsType = 1ull << 31;

/// What a frame slot holds: an object's address (0: unset), or a tagged int.
struct StackRefValue {
  uint64_t object = 0;
  std::optional<int64_t> taggedInt;
};
StackRefValue untagStackRef(const DepthLayout &d, uint64_t bits);

} // namespace stackpeek::python
