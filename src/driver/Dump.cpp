#include "driver/Dump.h"

#include <unistd.h>

#include <algorithm>
#include <map>

#include "memory/ProcessMemory.h"
#include "memory/SnapshotMemory.h"
#include "process/Attach.h"
#include "process/Maps.h"
#include "process/ProcFs.h"
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
  std::string name, state;
  std::optional<std::string> wchan;
};

ThreadFacts readThreadFacts(pid_t pid, pid_t tid) {
  ThreadFacts facts;
  facts.name = threadName(pid, tid);
  if (auto stat = readTaskStat(pid, tid))
    facts.state = describeState(stat->state);
  else {
    llvm::consumeError(stat.takeError());
    facts.state = "unknown";
  }
  facts.wchan = threadWchan(pid, tid);
  return facts;
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

} // namespace

llvm::Expected<DumpResult> dumpProcess(pid_t pid, const DumpOptions &options) {
  DumpResult result;
  Process &process = result.process;
  process.pid = pid;

  // Before the pause: everything /proc can tell without stopping anything.
  process.command = commandLine(pid);
  process.executable = executablePath(pid);
  if (auto stat = readTaskStat(pid, pid))
    process.parentPid = stat->ppid;
  else
    llvm::consumeError(stat.takeError());
  auto maps = readMaps(pid);
  if (!maps) {
    llvm::consumeError(maps.takeError());
    maps = std::vector<MapEntry>{};
  }
  std::map<pid_t, ThreadFacts> facts;
  if (auto tids = listThreads(pid)) {
    for (pid_t tid : *tids)
      facts[tid] = readThreadFacts(pid, tid);
  } else {
    llvm::consumeError(tids.takeError());
  }

  // Attach: every thread stops here. The pause lasts until detach().
  auto session = PtraceSession::attach(pid);
  if (!session)
    return session.takeError();
  ProcessMemory live(pid);
  SnapshotMemory snapshot(&live);

  // Snapshot: registers were read by attach; copy the live stacks.
  captureStacks(**session, *maps, live, snapshot, process.errors);
  if (options.holdPauseForTests)
    holdPauseForTests(**session);

  // Resume: the target runs again; the rest works from the snapshot.
  (*session)->detach();
  process.pauseMicros = static_cast<double>((*session)->pauseDuration().count());
  live.clearCache(); // pages read during the pause may now be stale

  // Unwind and symbolize each captured thread.
  Unwinder unwinder(*maps, snapshot);
  SymbolizerOptions symOptions;
  symOptions.rootPrefix = "/proc/" + std::to_string(pid) + "/root";
  symOptions.debugDirs = options.debugDirs;
  Symbolizer symbolizer(symOptions);
  for (const StoppedThread &stopped : (*session)->stoppedThreads()) {
    Thread thread;
    thread.tid = stopped.tid;
    auto known = facts.find(stopped.tid);
    ThreadFacts f = known != facts.end() ? known->second : readThreadFacts(pid, stopped.tid);
    thread.name = f.name;
    thread.state = f.state;
    thread.wchan = f.wchan;
    UnwindResult unwound = unwinder.unwind(stopped.regs, kMaxNativeFrames);
    for (size_t i = 0; i < unwound.frames.size(); ++i) {
      const RawFrame &raw = unwound.frames[i];
      bool exact = i == 0 || raw.signalFrame ||
                   (i > 0 && unwound.frames[i - 1].signalFrame);
      for (Frame &frame : symbolizer.symbolize(*maps, raw.ip, exact))
        thread.frames.push_back(std::move(frame));
    }
    if (unwound.stopReason)
      thread.errors.push_back(*unwound.stopReason);
    if (options.maxFrames && thread.frames.size() > options.maxFrames) {
      thread.framesOmitted = thread.frames.size() - options.maxFrames;
      thread.frames.resize(options.maxFrames);
    }
    process.threads.push_back(std::move(thread));
  }
  for (const UncapturedThread &u : (*session)->uncaptured()) {
    Thread thread;
    thread.tid = u.tid;
    auto known = facts.find(u.tid);
    ThreadFacts f = known != facts.end() ? known->second : readThreadFacts(pid, u.tid);
    thread.name = f.name;
    thread.state = f.state;
    thread.wchan = f.wchan;
    thread.errors.push_back(u.reason);
    process.threads.push_back(std::move(thread));
  }
  std::sort(process.threads.begin(), process.threads.end(),
            [](const Thread &a, const Thread &b) { return a.tid < b.tid; });

  if (!processAlive(pid)) {
    result.incomplete = true;
    process.errors.push_back("the process exited during the dump; stacks were captured "
                             "before it did, but symbols may be missing");
  }
  return result;
}

} // namespace stackpeek
