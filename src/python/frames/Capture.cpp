// capture(): walking interpreters, thread states and frame chains while the
// target is stopped.
//
// Only what changes as the target runs is copied here: which frames are on
// each thread's chain, each frame's code object address and instruction
// position, entry/owner flags, thread ids and the GIL holder. Code objects
// are immutable and are read later by resolve(), after the target resumed.
//
// Domain facts (docs/cpython-structures.md §2-3, §5):
//  - interpreters: `next` chain from interp_head / _PyRuntime.interpreters.head;
//    thread states: `next` chain from tstate_head / threads.head.
//  - ≤3.10 frames: tstate->frame, then f_back. 3.11/3.12: tstate->cframe->
//    current_frame, then `previous`; 3.13+: tstate->current_frame.
//  - 3.11 marks the first frame of each eval activation with is_entry; 3.12+
//    pushes a shim frame (owner FRAME_OWNED_BY_CSTACK; 3.14 also
//    FRAME_OWNED_BY_INTERPRETER, 3.15 only that) below it, which is not a
//    Python frame: we drop it and mark the frame above it as the entry.
//  - 3.14+ f_executable is a _PyStackRef: its low two bits are tags.
//  - GIL holder: *_PyThreadState_Current (2.7/3.6),
//    _PyRuntime.gilstate.tstate_current (3.7-3.11), or the interpreter's GIL
//    struct `locked ? last_holder : none` (3.12+).
//  - GIL waiters (take_gil) sleep on the GIL's condition variable or mutex:
//    `_gil_runtime_state` embedded in _PyRuntime (3.7-3.11) or behind
//    interp->ceval.gil (3.12+); static gil_cond/gil_mutex (3.6); the sem_t
//    behind `interpreter_lock` (2.7). capture() records where they are;
//    classifyGil() (GilState.cpp) compares them with each thread's futex.
//  - The collector: `collecting` is set by whoever runs a collection, for
//    its whole length (callbacks and finalizers included). CPython runs a
//    collection holding the GIL, so it is attributed to the GIL holder.
//    Edge cases where that is wrong: a finalizer that releases the GIL
//    (sleep, I/O, a lock) leaves `collecting` set while another thread may
//    take the GIL, and Python code in a finalizer can be switched out every
//    switch interval like any other; then the holder is not the collector
//    (and no thread is reported if nobody holds the GIL).
//  - Thread ids stored in a thread state are the target's own: in a pid
//    namespace (a container) they differ from ours (process/TidMap.h).
// Every chain is bounded and cycle-checked: a racing or corrupt target must
// not make us loop or allocate without bound.
#include "python/frames/Capture.h"
#include "python/frames/GilAnchor.h"
#include "python/frames/GilState.h"
#include "python/frames/Interpreter.h"
#include "python/frames/Resolve.h"

#include <algorithm>
#include <limits>

#include <unordered_set>

#include "python/objects/Objects.h"
#include "python/layout/RemoteStruct.h"

namespace stackpeek::python {

namespace {

// The thread state that holds the GIL of `interp`, 0 if none or unknown.
uint64_t gilHolder(const Interpreter &in, MemorySource &mem,
                   const RemoteStruct &interp) {
  const Layout &l = in.layout;
  switch (l.gilModel) {
  case GilModel::CurrentThreadSymbol:
    return in.currentTstateAddr
               ? valueOr(mem.readValue<uint64_t>(in.currentTstateAddr), 0ul)
               : 0;
  case GilModel::RuntimeTstateCurrent:
    return l.runtimeTstateCurrent
               ? valueOr(mem.readValue<uint64_t>(in.runtimeAddr +
                                                 *l.runtimeTstateCurrent),
                         0ul)
               : 0;
  case GilModel::InterpreterGil: {
    if (!l.interpGilPointer)
      return 0;
    uint64_t gil = interp.pointer(*l.interpGilPointer);
    if (!gil)
      return 0;
    int32_t locked = valueOr(mem.readValue<int32_t>(gil + l.gilLocked), 0);
    return locked ? valueOr(mem.readValue<uint64_t>(gil + l.gilLastHolder), 0ul)
                  : 0;
  }
  }
  return 0;
}

// The futexes a GIL waiter sleeps on in `interp`'s GIL; empty if unknown.
std::vector<AddressRange> gilWaitFutexes(const Interpreter &in,
                                         MemorySource &mem,
                                         const RemoteStruct &interp) {
  const Layout &l = in.layout;
  auto range = [](uint64_t addr, uint64_t size) {
    return std::vector<AddressRange>{{addr, addr + size}};
  };
  uint64_t gil = 0;
  switch (l.gilLock) {
  case GilLockModel::Unknown:
    return {};
  case GilLockModel::StaticSemaphore: {
    // A PyThread_type_lock on Linux is a malloc'ed sem_t: its futex word.
    uint64_t sem = in.gilLockPointerAddr
                       ? valueOr(mem.readValue<uint64_t>(in.gilLockPointerAddr), 0ul)
                       : 0;
    return sem ? range(sem, l.semSize) : std::vector<AddressRange>{};
  }
  case GilLockModel::StaticCondMutex:
    if (!in.gilCondAddr || !in.gilMutexAddr)
      return {};
    return {{in.gilCondAddr, in.gilCondAddr + l.condSize},
            {in.gilMutexAddr, in.gilMutexAddr + l.mutexSize}};
  case GilLockModel::RuntimeGilStruct:
    if (!l.runtimeGil || !in.runtimeAddr)
      return {};
    gil = in.runtimeAddr + *l.runtimeGil;
    break;
  case GilLockModel::InterpreterGilPointer:
    if (!l.interpGilPointer)
      return {};
    gil = interp.pointer(*l.interpGilPointer);
    break;
  }
  if (!gil)
    return {};
  return range(gil + l.gilWaitBegin, l.gilWaitEnd - l.gilWaitBegin);
}

std::optional<int32_t> readInt(MemorySource &mem, uint64_t addr) {
  int32_t v = 0;
  if (!mem.read(addr, &v, sizeof v))
    return std::nullopt;
  return v;
}

// Whether `interp`'s collector is running; nullopt if it cannot be read.
std::optional<bool> gcCollecting(const Interpreter &in, MemorySource &mem,
                                 const RemoteStruct &interp) {
  const Layout &l = in.layout;
  std::optional<int32_t> flag;
  switch (l.gcModel) {
  case GcModel::StaticCollecting:
    if (in.gcCollectingAddr)
      flag = readInt(mem, in.gcCollectingAddr);
    break;
  case GcModel::RuntimeCollecting:
    if (l.gcCollecting && in.runtimeAddr)
      flag = readInt(mem, in.runtimeAddr + *l.gcCollecting);
    break;
  case GcModel::InterpreterCollecting:
    if (l.gcCollecting)
      flag = interp.get<int32_t>(*l.gcCollecting);
    break;
  }
  if (!flag)
    return std::nullopt;
  return *flag != 0;
}

// The newest frame of a thread: tstate->frame (≤3.10), ->cframe->current_frame
// (3.11/3.12) or ->current_frame (3.13+).
llvm::Expected<uint64_t> newestFrame(const Layout &l, MemorySource &mem,
                                     const RemoteStruct &tstate) {
  uint64_t frame = tstate.pointer(l.tstateFrame);
  if (!l.cframeCurrentFrame || frame == 0)
    return frame;
  return mem.readValue<uint64_t>(frame + *l.cframeCurrentFrame);
}

// Brent's cycle detection: remembers one address and a step count instead
// of every address seen (this runs during the pause, for every thread of
// every sample). A loop is found within twice its length plus its start.
class LoopCheck {
public:
  bool revisits(uint64_t addr) {
    if (addr == mark_)
      return true;
    if (++steps_ == power_) {
      mark_ = addr;
      power_ *= 2;
      steps_ = 0;
    }
    return false;
  }

private:
  uint64_t mark_ = 0, power_ = 1, steps_ = 0;
};

void walkFrames(const Layout &l, MemorySource &mem, uint64_t frameAddr,
                const CaptureLimits &limits, CapturedThread &out) {
  LoopCheck loop;
  out.frames.reserve(64);
  size_t visited = 0;
  while (frameAddr != 0) {
    if (out.frames.size() >= limits.maxFramesPerThread) {
      out.errors.push_back("Python stack truncated at " +
                           std::to_string(limits.maxFramesPerThread) + " frames");
      return;
    }
    // Shim frames are skipped, not kept: bound the steps too.
    if (loop.revisits(frameAddr) || ++visited > 2 * limits.maxFramesPerThread + 2) {
      out.errors.push_back("Python frame chain loops at " + hexAddress(frameAddr));
      return;
    }
    auto frame = RemoteStruct::read(mem, frameAddr, l.frameSize);
    if (!frame) {
      CapturedFrame bad;
      bad.frameAddr = frameAddr;
      bad.error = "unreadable frame: " + llvm::toString(frame.takeError());
      out.frames.push_back(std::move(bad));
      return;
    }
    CapturedFrame f;
    f.frameAddr = frameAddr;
    f.codeAddr = frame->pointer(l.frameCode) & ~l.executableTagBits;
    if (l.frameModel == FrameModel::FrameObject) {
      f.lasti = frame->get<int32_t>(l.frameLasti).value_or(-1);
      f.entry = true; // ≤3.10: one eval-loop call per frame
    } else {
      f.instrPtr = frame->pointer(l.frameInstrPtr);
      f.owner = l.frameOwner ? frame->get<uint8_t>(*l.frameOwner).value_or(0) : 0;
      f.entry = l.frameIsEntry && frame->get<uint8_t>(*l.frameIsEntry).value_or(0);
      if (l.frameTlbcIndex)
        f.tlbcIndex = frame->get<int32_t>(*l.frameTlbcIndex).value_or(0);
    }
    frameAddr = frame->pointer(l.frameBack);
    if (l.firstShimOwner && f.owner >= *l.firstShimOwner) {
      // Shim frame: not Python code, but it closes the activation above it.
      if (!out.frames.empty() && !out.frames.back().entry) {
        out.frames.back().entry = true;
        out.frames.back().entryRecord = f.frameAddr;
      }
      continue;
    }
    out.frames.push_back(std::move(f));
  }
}

// What capture() reads once per interpreter and hands to each thread.
struct InterpreterFacts {
  std::optional<bool> gilEnabled; // free-threaded builds only
  uint64_t gilHolder = 0;
  std::vector<AddressRange> gilWaitFutexes;
  std::optional<bool> collecting;
};

CapturedThread captureThread(const Layout &l, MemorySource &mem,
                             const RemoteStruct &tstate, uint64_t interpAddr,
                             const InterpreterFacts &facts,
                             const CaptureLimits &limits) {
  CapturedThread t;
  t.tstateAddr = tstate.address();
  t.interpAddr = interpAddr;
  t.threadIdent = tstate.pointer(l.tstateThreadId);
  if (l.tstateNativeThreadId)
    t.nativeThreadId = tstate.pointer(*l.tstateNativeThreadId);
  t.holdsGil = facts.gilHolder != 0 && facts.gilHolder == t.tstateAddr;
  t.status.gilWaitFutexes = facts.gilWaitFutexes;
  t.status.noGil = facts.gilEnabled == false;
  if (l.tstateGilRequested && !t.status.noGil)
    if (auto requested = tstate.get<int32_t>(*l.tstateGilRequested))
      t.status.gilRequested = *requested != 0;
  // The collector runs on the GIL's holder; without a GIL, which thread
  // runs it is not recorded.
  if (facts.collecting && !(t.status.noGil && *facts.collecting))
    t.status.collectingGarbage = *facts.collecting && t.holdsGil;
  auto frame = newestFrame(l, mem, tstate);
  if (!frame) {
    t.errors.push_back("cannot read the current frame: " +
                       llvm::toString(frame.takeError()));
    return t;
  }
  walkFrames(l, mem, *frame, limits, t);
  return t;
}

// The OS thread id of a thread state in the target's own pid namespace:
// native_thread_id (3.11+), else from glibc's struct pthread that
// thread_id points to; nullopt if unreadable.
std::optional<int64_t> ownTidOf(const Layout &l, MemorySource &mem, const RemoteStruct &tstate,
                                uint64_t pthreadTidOffset) {
  if (l.tstateNativeThreadId)
    return static_cast<int64_t>(tstate.pointer(*l.tstateNativeThreadId));
  int32_t fromPthread = 0;
  uint64_t ident = tstate.pointer(l.tstateThreadId);
  if (!ident || !mem.read(ident + pthreadTidOffset, &fromPthread, 4))
    return std::nullopt;
  return fromPthread;
}

// The same, as we name the thread. A thread the map does not know gets 0,
// which is no thread's id: it is none of the threads the caller chose
// (those are in the map), and resolve() tells what it is.
std::optional<int64_t> tidOf(const Layout &l, MemorySource &mem, const RemoteStruct &tstate,
                             uint64_t pthreadTidOffset, const TidMap *tids) {
  std::optional<int64_t> own = ownTidOf(l, mem, tstate, pthreadTidOffset);
  if (!own || !tids)
    return own;
  return tids->ours(*own).value_or(0);
}

// Whether the thread state belongs to one of limits.onlyTids (always, when
// that list is empty, or when its tid cannot be read: resolve() sorts it out).
bool wanted(std::optional<int64_t> tid, const CaptureLimits &limits) {
  if (limits.onlyTids.empty() || !tid)
    return true;
  return std::find(limits.onlyTids.begin(), limits.onlyTids.end(), *tid) !=
         limits.onlyTids.end();
}

InterpreterFacts interpreterFacts(const Interpreter &in, MemorySource &mem,
                                  const RemoteStruct &interp, const CaptureLimits &limits) {
  std::optional<bool> enabled = freeThreadedGilEnabled(in, mem, interp.address());
  if (!limits.threadStatus)
    return {enabled};
  if (enabled == false)
    return {enabled, 0, {}, gcCollecting(in, mem, interp)};
  return {enabled, gilHolder(in, mem, interp), gilWaitFutexes(in, mem, interp),
          gcCollecting(in, mem, interp)};
}

// Threads of one interpreter, newest first as CPython links them.
void captureInterpreter(const Interpreter &in, MemorySource &mem,
                        const RemoteStruct &interp, const CaptureLimits &limits,
                        std::unordered_set<uint64_t> &seenThreads,
                        CapturedPython &out) {
  const Layout &l = in.layout;
  InterpreterFacts facts = interpreterFacts(in, mem, interp, limits);
  if (!out.gilEnabled)
    out.gilEnabled = facts.gilEnabled;
  uint64_t tstateAddr = interp.pointer(l.interpThreadsHead);
  while (tstateAddr != 0) {
    if (out.threads.size() >= limits.maxThreads) {
      out.errors.push_back("more than " + std::to_string(limits.maxThreads) +
                           " Python threads; the rest were skipped");
      return;
    }
    if (!seenThreads.insert(tstateAddr).second) {
      out.errors.push_back("Python thread list loops at " + hexAddress(tstateAddr));
      return;
    }
    auto tstate = RemoteStruct::read(mem, tstateAddr, l.tstateSize);
    if (!tstate) {
      out.errors.push_back("unreadable thread state " + hexAddress(tstateAddr) + ": " +
                           llvm::toString(tstate.takeError()));
      return;
    }
    if (tstate->pointer(l.tstateInterp) != interp.address()) {
      out.errors.push_back("thread state " + hexAddress(tstateAddr) +
                           " belongs to another interpreter; list cut");
      return;
    }
    // A dump wants every thread: its tid (one more read before 3.11) is
    // needed only to filter or to fill the sampler's hints.
    std::optional<int64_t> tid;
    if (limits.hints || !limits.onlyTids.empty())
      tid = tidOf(l, mem, *tstate, limits.pthreadTidOffset, limits.tidMap);
    if (limits.hints && tid && *tid > 0)
      limits.hints->tstateByTid[pid_t(*tid)] = tstateAddr;
    if (wanted(tid, limits)) {
      out.threads.push_back(
          captureThread(l, mem, *tstate, interp.address(), facts, limits));
      out.threads.back().osTid = pid_t(tid.value_or(0));
    }
    tstateAddr = tstate->pointer(l.tstateNext);
  }
}

// A freed thread state can keep its interp and thread id fields (malloc
// reuses only its first words, where CPython keeps prev/next): require
// its `next` to still be the end of the list or a thread state of the
// same interpreter. One small read.
bool stillLinked(const Layout &l, MemorySource &mem, const RemoteStruct &tstate,
                 uint64_t interpAddr) {
  uint64_t next = tstate.pointer(l.tstateNext);
  if (next == 0)
    return true;
  uint64_t nextInterp = 0;
  return mem.read(next + l.tstateInterp, &nextInterp, sizeof nextInterp) &&
         nextInterp == interpAddr;
}

// The sampler's short way (ThreadStateHints): read only the chosen
// threads' states where the last walk found them. nullopt: walk instead.
std::optional<CapturedPython> captureFromHints(const Interpreter &in, MemorySource &mem,
                                               const CaptureLimits &limits) {
  ThreadStateHints &hints = *limits.hints;
  if (!hints.valid || ++hints.capturesSinceWalk >= ThreadStateHints::kFullWalkEvery)
    return std::nullopt;
  const Layout &l = in.layout;
  auto head = mem.readValue<uint64_t>(in.interpHeadAddr);
  if (!head || *head != hints.interpAddr) {
    if (!head)
      llvm::consumeError(head.takeError());
    return std::nullopt;
  }
  // The interpreter itself is read only for the thread status; a second
  // interpreter started since the last walk is noticed at the next one.
  InterpreterFacts facts;
  if (limits.threadStatus) {
    auto interp = RemoteStruct::read(mem, hints.interpAddr, l.interpSize);
    if (!interp) {
      llvm::consumeError(interp.takeError());
      return std::nullopt;
    }
    if (interp->pointer(l.interpNext) != 0)
      return std::nullopt;
    facts = interpreterFacts(in, mem, *interp, limits);
  }
  CapturedPython out;
  for (pid_t tid : limits.onlyTids) {
    auto hint = hints.tstateByTid.find(tid);
    if (hint == hints.tstateByTid.end()) {
      if (hints.withoutPython.count(tid))
        continue; // no thread state at the last walk: a native thread
      return std::nullopt; // a new thread: walk to find it
    }
    auto tstate = RemoteStruct::read(mem, hint->second, l.tstateSize);
    if (!tstate) {
      llvm::consumeError(tstate.takeError());
      return std::nullopt;
    }
    if (tstate->pointer(l.tstateInterp) != hints.interpAddr ||
        tidOf(l, mem, *tstate, limits.pthreadTidOffset, limits.tidMap) != int64_t(tid) ||
        !stillLinked(l, mem, *tstate, hints.interpAddr))
      return std::nullopt; // freed, or reused for another thread
    out.threads.push_back(captureThread(l, mem, *tstate, hints.interpAddr, facts, limits));
    out.threads.back().osTid = tid;
  }
  return out;
}

// After a full walk: what the hints may serve until the next one.
// Only a complete walk of one interpreter may vouch for the hints: a walk
// cut short (unreadable or looping list, torn by threads that run) would
// make the threads it did not reach look like native ones.
void refreshHints(ThreadStateHints &hints, uint64_t firstInterp, size_t interpreters,
                  bool complete, const CaptureLimits &limits) {
  hints.valid = complete && interpreters == 1;
  hints.interpAddr = firstInterp;
  hints.capturesSinceWalk = 0;
  if (!hints.valid)
    return;
  // Native threads are remembered across walks (a pool of them takes turns
  // on the CPU), forgotten once they have a thread state; bounded.
  for (auto it = hints.withoutPython.begin(); it != hints.withoutPython.end();)
    it = hints.tstateByTid.count(*it) ? hints.withoutPython.erase(it) : std::next(it);
  if (hints.withoutPython.size() > ThreadStateHints::kMaxWithoutPython)
    hints.withoutPython.clear();
  for (pid_t tid : limits.onlyTids)
    if (!hints.tstateByTid.count(tid))
      hints.withoutPython.insert(tid);
}

} // namespace

std::optional<pid_t> threadStateTid(const Layout &l, MemorySource &mem, uint64_t tstateAddr,
                                    uint64_t pthreadTidOffset, const TidMap *tids) {
  auto tstate = RemoteStruct::read(mem, tstateAddr, l.tstateSize);
  if (!tstate) {
    llvm::consumeError(tstate.takeError());
    return std::nullopt;
  }
  std::optional<int64_t> tid = tidOf(l, mem, *tstate, pthreadTidOffset, tids);
  if (!tid || *tid <= 0 || *tid > std::numeric_limits<pid_t>::max())
    return std::nullopt;
  return pid_t(*tid);
}

llvm::Expected<CapturedPython> capture(const Interpreter &in, MemorySource &mem,
                                       const CaptureLimits &limits) {
  if (limits.hints && !limits.onlyTids.empty())
    if (std::optional<CapturedPython> quick = captureFromHints(in, mem, limits))
      return std::move(*quick);
  const Layout &l = in.layout;
  auto head = mem.readValue<uint64_t>(in.interpHeadAddr);
  if (!head)
    return head.takeError();
  if (limits.hints)
    limits.hints->tstateByTid.clear();
  CapturedPython out;
  std::unordered_set<uint64_t> seenInterps, seenThreads;
  for (uint64_t interpAddr = *head; interpAddr != 0;) {
    if (seenInterps.size() >= limits.maxInterpreters) {
      out.errors.push_back("too many interpreters; the rest were skipped");
      break;
    }
    if (!seenInterps.insert(interpAddr).second) {
      out.errors.push_back("interpreter list loops at " + hexAddress(interpAddr));
      break;
    }
    auto interp = RemoteStruct::read(mem, interpAddr, l.interpSize);
    if (!interp) {
      out.errors.push_back("unreadable interpreter " + hexAddress(interpAddr) + ": " +
                           llvm::toString(interp.takeError()));
      break;
    }
    captureInterpreter(in, mem, *interp, limits, seenThreads, out);
    interpAddr = interp->pointer(l.interpNext);
  }
  if (limits.hints)
    refreshHints(*limits.hints, *head, seenInterps.size(), out.errors.empty(), limits);
  return out;
}

} // namespace stackpeek::python
