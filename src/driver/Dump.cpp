#include "driver/Dump.h"

#include <unistd.h>

#include <algorithm>
#include <map>

#include "memory/ProcessMemory.h"
#include "memory/SnapshotMemory.h"
#include "process/Attach.h"
#include "process/Maps.h"
#include "process/ProcFs.h"
#include "python/PythonStacks.h"
#include "python/SourceLines.h"
#include "symbolize/Symbolizer.h"
#include "unwind/Unwinder.h"

namespace stackpeek {

namespace {

// Bounds on what one dump may copy, so a hostile or huge target cannot make
// the pause (or our memory) grow without limit.
constexpr uint64_t kMaxStackCopy = 8ull << 20;     // per thread
constexpr uint64_t kMaxTotalStackCopy = 1ull << 30; // per dump
constexpr uint64_t kRedZone = 128;                  // x86_64 ABI: below rsp, still live
constexpr size_t kMaxNativeFrames = 8192;

struct ThreadFacts {
  std::string name;
  char state = '?';
  std::optional<std::string> wchan;
};

ThreadFacts readThreadFacts(pid_t pid, pid_t tid) {
  ThreadFacts facts;
  facts.name = threadName(pid, tid);
  if (auto stat = readTaskStat(pid, tid))
    facts.state = stat->state;
  else
    llvm::consumeError(stat.takeError());
  facts.wchan = threadWchan(pid, tid);
  return facts;
}

// Everything /proc can tell without stopping anything, read before the pause.
struct ProcessFacts {
  std::vector<MapEntry> maps;
  std::map<pid_t, ThreadFacts> threads;
};

ProcessFacts readProcessFacts(pid_t pid, Process &process) {
  ProcessFacts facts;
  process.command = commandLine(pid);
  process.executable = executablePath(pid);
  if (auto stat = readTaskStat(pid, pid))
    process.parentPid = stat->ppid;
  else
    llvm::consumeError(stat.takeError());
  if (auto maps = readMaps(pid))
    facts.maps = std::move(*maps);
  else
    llvm::consumeError(maps.takeError());
  if (auto tids = listThreads(pid)) {
    for (pid_t tid : *tids)
      facts.threads[tid] = readThreadFacts(pid, tid);
  } else {
    llvm::consumeError(tids.takeError());
  }
  return facts;
}

// Finds the Python interpreter, if any. Problems become notes on the
// process: the native stacks are still worth printing.
std::optional<python::Interpreter> locatePython(pid_t pid, MemorySource &mem,
                                                Process &process) {
  auto interp = python::locate(pid, mem);
  if (!interp) {
    process.errors.push_back("Python stacks unavailable: " +
                             llvm::toString(interp.takeError()));
    return std::nullopt;
  }
  if (!*interp)
    return std::nullopt;
  process.python = (*interp)->info();
  for (const std::string &w : (*interp)->warnings)
    process.errors.push_back("Python: " + w);
  return std::move(**interp);
}

// Copies the live part of each stopped thread's stack: from just below the
// stack pointer to the top of the mapping that contains it.
void captureStacks(const PtraceSession &session, std::vector<MapEntry> &maps,
                   ProcessMemory &live, SnapshotMemory &snapshot,
                   std::vector<std::string> &notes) {
  uint64_t total = 0;
  bool mapsRefreshed = false;
  for (const StoppedThread &t : session.stoppedThreads()) {
    uint64_t sp = t.regs.rsp;
    const MapEntry *m = findMapping(maps, sp);
    if (!m && !mapsRefreshed) {
      // A thread created after we read the maps: its stack is new.
      if (auto fresh = readMaps(session.pid())) {
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
    if (to <= from || total + (to - from) > kMaxTotalStackCopy) {
      notes.push_back("stack of thread " + std::to_string(t.tid) + " not copied (size limit)");
      continue;
    }
    std::vector<uint8_t> bytes(to - from);
    if (live.readUncached(from, bytes.data(), bytes.size())) {
      total += bytes.size();
      snapshot.addCapture(from, std::move(bytes));
    }
  }
}

// Holds the target paused until a signal ends us (the handler detaches) or
// the target dies, so tests can interrupt stackpeek at its most delicate
// moment. Polling is fine here: this is a test hook, not synchronisation.
void holdPauseForTests(PtraceSession &session) {
  static const char line[] = "stackpeek: test hold: target paused\n";
  (void)!::write(STDERR_FILENO, line, sizeof line - 1);
  while (session.leaderAlive())
    ::usleep(10000);
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
                               const StoppedThread &stopped, Thread &thread) {
  std::vector<Frame> frames;
  UnwindResult unwound = unwinder.unwind(stopped.regs, kMaxNativeFrames);
  for (size_t i = 0; i < unwound.frames.size(); ++i) {
    const RawFrame &raw = unwound.frames[i];
    // The innermost frame and a frame interrupted by a signal hold the exact
    // instruction; every other address is a return address.
    bool exact = i == 0 || raw.signalFrame || unwound.frames[i - 1].signalFrame;
    for (Frame &frame : symbolizer.symbolize(maps, raw.ip, exact))
      frames.push_back(std::move(frame));
  }
  if (unwound.stopReason)
    thread.errors.push_back(*unwound.stopReason);
  return frames;
}

// Gives a thread its Python facts and decides which frames it shows:
// Python frames alone, or merged with the native ones under --native.
void applyPython(Thread &thread, python::PythonThreadStack &py,
                 std::vector<Frame> native, bool merge, char state) {
  thread.pythonThreadName = py.name;
  thread.holdsGil = py.holdsGil;
  thread.idle = state != 'R';
  for (std::string &e : py.errors)
    thread.errors.push_back(std::move(e));
  if (!merge) {
    thread.frames = std::move(py.frames);
    return;
  }
  python::MergedStack merged = python::mergeNativeAndPython(native, py.frames);
  thread.frames = std::move(merged.frames);
  if (merged.warning)
    thread.errors.push_back(*merged.warning);
}

void fillSourceLines(pid_t pid, Process &process) {
  python::SourceLines sources(pid);
  for (Thread &t : process.threads)
    for (Frame &f : t.frames)
      if (f.kind == Frame::Kind::Python && f.file && f.line)
        f.sourceLine = sources.line(*f.file, *f.line);
}

void truncateFrames(Process &process, size_t maxFrames) {
  if (!maxFrames)
    return;
  for (Thread &t : process.threads)
    if (t.frames.size() > maxFrames) {
      t.framesOmitted = t.frames.size() - maxFrames;
      t.frames.resize(maxFrames);
    }
}

} // namespace

llvm::Expected<DumpResult> dumpProcess(pid_t pid, const DumpOptions &options) {
  DumpResult result;
  Process &process = result.process;
  process.pid = pid;

  // Before the pause: /proc facts, and where the Python interpreter lives.
  ProcessFacts facts = readProcessFacts(pid, process);
  ProcessMemory live(pid);
  std::optional<python::Interpreter> interp = locatePython(pid, live, process);

  // Attach: every thread stops here. The pause lasts until detach().
  auto session = PtraceSession::attach(pid);
  if (!session)
    return session.takeError();
  live.clearCache(); // pages read before the pause may be stale

  // Snapshot: registers (read by attach), live stacks, Python frame chains.
  SnapshotMemory snapshot(&live);
  captureStacks(**session, facts.maps, live, snapshot, process.errors);
  std::optional<python::CapturedPython> capturedPython;
  if (interp) {
    auto captured = python::capture(*interp, live);
    if (captured)
      capturedPython = std::move(*captured);
    else
      process.errors.push_back("Python stacks unavailable: " +
                               llvm::toString(captured.takeError()));
  }
  if (options.holdPauseForTests)
    holdPauseForTests(**session);

  // Resume: the target runs again; the rest works from the snapshot.
  (*session)->detach();
  process.pauseMicros = static_cast<double>((*session)->pauseDuration().count());
  live.clearCache();

  // Decode Python frames: code objects are immutable, so reading them now
  // gives what the frames ran during the pause.
  std::map<pid_t, python::PythonThreadStack> pythonByTid;
  if (capturedPython) {
    for (const std::string &e : capturedPython->errors)
      process.errors.push_back("Python: " + e);
    std::vector<pid_t> knownTids;
    for (const auto &[tid, f] : facts.threads)
      knownTids.push_back(tid);
    for (python::PythonThreadStack &s : python::resolve(*interp, *capturedPython, live, knownTids))
      if (s.tid != 0)
        pythonByTid[s.tid] = std::move(s);
  }

  // Unwind and symbolize each thread that shows native frames.
  Unwinder unwinder(facts.maps, snapshot);
  SymbolizerOptions symOptions;
  symOptions.rootPrefix = "/proc/" + std::to_string(pid) + "/root";
  symOptions.debugDirs = options.debugDirs;
  Symbolizer symbolizer(symOptions);
  for (const StoppedThread &stopped : (*session)->stoppedThreads()) {
    Thread thread = makeThread(pid, stopped.tid, facts);
    auto py = pythonByTid.find(stopped.tid);
    bool hasPython = py != pythonByTid.end() && !py->second.frames.empty();
    std::vector<Frame> native;
    if (!hasPython || options.native)
      native = nativeStack(unwinder, symbolizer, facts.maps, stopped, thread);
    if (py != pythonByTid.end()) {
      auto f = facts.threads.find(stopped.tid);
      char state = f != facts.threads.end() ? f->second.state : '?';
      if (hasPython)
        applyPython(thread, py->second, std::move(native), options.native, state);
      else {
        applyPython(thread, py->second, {}, false, state);
        thread.frames = std::move(native);
      }
    } else {
      thread.frames = std::move(native);
    }
    process.threads.push_back(std::move(thread));
  }
  for (const UncapturedThread &u : (*session)->uncaptured()) {
    Thread thread = makeThread(pid, u.tid, facts);
    thread.errors.push_back(u.reason);
    process.threads.push_back(std::move(thread));
  }
  std::sort(process.threads.begin(), process.threads.end(),
            [](const Thread &a, const Thread &b) { return a.tid < b.tid; });

  fillSourceLines(pid, process);
  truncateFrames(process, options.maxFrames);
  if (!processAlive(pid)) {
    result.incomplete = true;
    process.errors.push_back("the process exited during the dump; stacks were captured "
                             "before it did, but symbols may be missing");
  }
  return result;
}

} // namespace stackpeek
