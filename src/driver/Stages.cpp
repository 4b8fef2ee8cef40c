#include "driver/Stages.h"

#include <memory>
#include <algorithm>

#include "process/ProcFs.h"
#include "python/frames/GilState.h"
#include "python/frames/Locate.h"
#include "python/frames/Merge.h"

namespace stackpeek {

namespace {
// Bounds on what one snapshot may copy, so a hostile or huge target cannot
// make the pause (or our memory) grow without limit.
constexpr uint64_t kMaxStackCopy = 8ull << 20;      // per thread
constexpr uint64_t kMaxTotalStackCopy = 1ull << 30; // per snapshot
constexpr uint64_t kRedZone = 128; // x86_64 ABI: below rsp, still live
constexpr size_t kMaxNativeFrames = 8192;
} // namespace

ThreadFacts readThreadFacts(pid_t pid, pid_t tid) {
  ThreadFacts facts;
  facts.name = threadName(pid, tid);
  if (auto stat = readTaskStat(pid, tid))
    facts.state = stat->state;
  facts.wchan = threadWchan(pid, tid);
  return facts;
}

std::vector<pid_t> ProcessFacts::tids() const {
  std::vector<pid_t> out;
  for (const auto &entry : threads)
    out.push_back(entry.first);
  return out;
}

ProcessFacts readProcessFacts(pid_t pid, Process &process) {
  ProcessFacts facts;
  process.command = commandLine(pid);
  process.executable = executablePath(pid);
  if (auto stat = readTaskStat(pid, pid))
    process.parentPid = stat->ppid;
  if (auto maps = readMaps(pid))
    facts.maps = std::move(*maps);
  else
    llvm::consumeError(maps.takeError());
  if (auto tids = listThreads(pid)) {
    for (pid_t tid : *tids)
      facts.threads[tid] = readThreadFacts(pid, tid);
    facts.tidMap = TidMap::read(pid, *tids);
  } else {
    llvm::consumeError(tids.takeError());
  }
  return facts;
}

std::optional<python::Interpreter> locatePython(pid_t pid, MemorySource &mem,
                                                Process &process) {
  auto interp = python::locate(pid, mem);
  if (!interp) {
    process.pythonUnavailable = llvm::toString(interp.takeError());
    process.errors.push_back("Python stacks unavailable: " + *process.pythonUnavailable);
    return std::nullopt;
  }
  if (!*interp)
    return std::nullopt;
  process.python = (*interp)->info();
  for (const std::string &w : (*interp)->warnings)
    process.errors.push_back("Python: " + w);
  return std::move(**interp);
}

std::optional<std::string>
unmatchedPythonNote(const std::vector<python::PythonThreadStack> &stacks,
                    const std::vector<pid_t> &threads, const TidMap &tidMap) {
  if (stacks.empty())
    return std::nullopt;
  for (const python::PythonThreadStack &s : stacks)
    if (s.tid && std::find(threads.begin(), threads.end(), s.tid) != threads.end())
      return std::nullopt;
  constexpr size_t kIdsNamed = 8;
  std::string ids;
  for (size_t i = 0; i < stacks.size() && i < kIdsNamed; ++i)
    ids += (i ? ", " : "") + std::to_string(stacks[i].ownTid);
  if (stacks.size() > kIdsNamed)
    ids += ", ...";
  std::string why = tidMap.ownNamespace()
                        ? "it has a pid namespace of its own, and no thread's NSpid line "
                          "(/proc/PID/task/TID/status) gives those ids"
                        : "it shares stackpeek's pid namespace, where those ids are not its";
  std::string states = stacks.size() == 1
                           ? "the Python thread state names thread " + ids + ", which is not"
                           : "the " + std::to_string(stacks.size()) +
                                 " Python thread states name threads " + ids + ", none of which is";
  return states + " a thread of this process (" + why + "); native stacks only";
}

std::vector<MemoryCopy> copyStacks(const std::vector<StoppedThread> &threads, pid_t pid,
                                   std::vector<MapEntry> &maps, ProcessMemory &live,
                                   std::vector<std::string> &notes) {
  std::vector<MemoryCopy> copies;
  uint64_t total = 0;
  bool mapsRefreshed = false;
  // One scratch buffer for every thread, not zeroed (see below).
  std::unique_ptr<uint8_t[]> scratch;
  for (const StoppedThread &t : threads) {
    uint64_t sp = t.regs.rsp;
    const MapEntry *m = findMapping(maps, sp);
    if (!m && !mapsRefreshed) {
      if (auto fresh = readMaps(pid)) {
        maps = std::move(*fresh);
        m = findMapping(maps, sp);
      } else {
        llvm::consumeError(fresh.takeError());
      }
      mapsRefreshed = true;
    }
    if (!m)
      continue; // unwinding will read what it can from the live process
    uint64_t from = std::max(m->start, sp - kRedZone);
    uint64_t to = std::min(m->end, sp + kMaxStackCopy);
    if (to <= from || total >= kMaxTotalStackCopy) {
      notes.push_back("stack of thread " + std::to_string(t.tid) + " not copied (size limit)");
      continue;
    }
    to = std::min(to, from + (kMaxTotalStackCopy - total));
    // The mapping may hold other threads' stacks beyond this one's top
    // (glibc 2.42+ separates them by guard regions, not mappings): read up
    // to the first unreadable page, into a buffer that is not zeroed first
    // (8 MB each would cost milliseconds of the pause).
    if (!scratch)
      scratch.reset(new uint8_t[kMaxStackCopy + kRedZone]);
    size_t got = live.readUncachedPrefix(from, scratch.get(), to - from);
    if (got > 0) {
      total += got;
      copies.push_back({from, std::vector<uint8_t>(scratch.get(), scratch.get() + got)});
    }
  }
  return copies;
}

Thread makeThread(pid_t pid, pid_t tid, const ProcessFacts &facts) {
  Thread thread;
  thread.tid = tid;
  auto known = facts.threads.find(tid);
  ThreadFacts f = known != facts.threads.end() ? known->second : readThreadFacts(pid, tid);
  thread.name = f.name;
  thread.state = describeState(f.state);
  thread.wchan = f.wchan;
  return thread;
}

std::vector<Frame> nativeStack(Unwinder &unwinder, Symbolizer &symbolizer,
                               const std::vector<MapEntry> &maps,
                               const user_regs_struct &regs,
                               std::vector<std::string> &errors) {
  std::vector<Frame> frames;
  UnwindResult unwound = unwinder.unwind(regs, kMaxNativeFrames);
  for (size_t i = 0; i < unwound.frames.size(); ++i) {
    const RawFrame &raw = unwound.frames[i];
    // The innermost frame and a frame interrupted by a signal hold the exact
    // instruction; every other address is a return address.
    bool exact = i == 0 || raw.signalFrame || unwound.frames[i - 1].signalFrame;
    for (Frame &frame : symbolizer.symbolize(maps, raw.ip, exact)) {
      frame.stackPointer = raw.sp;
      frames.push_back(std::move(frame));
    }
  }
  if (unwound.stopReason)
    errors.push_back(*unwound.stopReason);
  return frames;
}

void applyPython(Thread &thread, python::PythonThreadStack &py,
                 std::vector<Frame> native, bool merge) {
  thread.pythonThreadName = py.name;
  // Memory says whether the thread holds the GIL; whether it waits for it
  // needs its registers (applyGilWait).
  if (py.status.noGil)
    thread.gil.reset();
  else
    thread.gil = py.holdsGil ? GilState::Held : GilState::NotHeld;
  thread.collectingGarbage = py.status.collectingGarbage;
  // "Idle" is the kernel's view: a Python thread not on a CPU (or runnable)
  // is waiting for something, whatever Python code it is in.
  thread.idle = thread.state != "running";
  for (std::string &e : py.errors)
    thread.errors.push_back(std::move(e));
  if (py.frames.empty()) {
    thread.frames = std::move(native);
  } else if (merge) {
    python::MergedStack merged = python::mergeNativeAndPython(native, py.frames);
    thread.frames = std::move(merged.frames);
    if (merged.warning)
      thread.errors.push_back(*merged.warning);
  } else {
    thread.frames = std::move(py.frames);
  }
}

void applyGilWait(Thread &thread, const python::PythonThreadStack &py,
                  const user_regs_struct &regs) {
  // orig_rax is the system call number of a thread stopped in one (-1
  // otherwise); rdi its first argument, for futex the futex word.
  if (py.status.noGil)
    return;
  python::SyscallStop stop{static_cast<long>(regs.orig_rax), regs.rdi};
  thread.gil = python::classifyGil(py.holdsGil, py.status, stop, thread.frames);
}

} // namespace stackpeek
