#include "driver/Dump.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include "driver/Stages.h"
#include "process/ProcFs.h"
#include "python/Depth.h"
#include "python/SourceLines.h"

namespace stackpeek {

namespace {

// Holds the target paused until a signal ends us (the handler detaches) or
// the target dies, so tests can interrupt stackpeek at its most delicate
// moment. Polling is fine here: this is a test hook, not synchronisation.
void holdPauseForTests(PtraceSession &session) {
  static const char line[] = "stackpeek: test hold: target paused\n";
  (void)!::write(STDERR_FILENO, line, sizeof line - 1);
  while (session.leaderAlive())
    ::usleep(10000);
}

void fillSourceLines(pid_t pid, Process &process) {
  python::SourceLines sources(pid);
  for (Thread &t : process.threads)
    for (Frame &f : t.frames)
      if (f.kind == Frame::Kind::Python && f.file && f.line)
        f.sourceLine = sources.line(*f.file, *f.line);
}

// Source lines of the frames that --locals/--async and handled exceptions
// add outside the threads' stacks.
void fillDepthSourceLines(pid_t pid, Process &process) {
  python::SourceLines sources(pid);
  auto fill = [&](std::vector<Frame> &frames) {
    for (Frame &f : frames)
      if (f.file && f.line)
        f.sourceLine = sources.line(*f.file, *f.line);
  };
  for (Thread &t : process.threads)
    for (PythonException &e : t.handlingException)
      fill(e.traceback);
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

// Says once per module that its frames are unnamed and how to add symbols;
// bounded, as a target can map any number of stripped files.
void noteModulesWithoutSymbols(const Symbolizer &symbolizer, Process &process) {
  constexpr size_t kMaxNotes = 10;
  const std::vector<ModuleWithoutSymbols> &modules = symbolizer.modulesWithoutSymbols();
  for (size_t i = 0; i < modules.size() && i < kMaxNotes; ++i)
    process.errors.push_back(missingSymbolsNote(modules[i]));
  if (modules.size() > kMaxNotes)
    process.errors.push_back(std::to_string(modules.size() - kMaxNotes) +
                             " more modules have no symbols or debug information");
}

// What one attempt saw of the process around it, for dumpProcess to decide
// whether to take it again.
struct AttemptNotes {
  bool execSeen = false; // a thread we held finished an exec
  Liveness before = Liveness::Running;
  Liveness after = Liveness::Running;
};

llvm::Expected<DumpResult> dumpOnce(pid_t pid, const DumpOptions &options, AttemptNotes &notes) {
  DumpResult result;
  Process &process = result.process;
  process.pid = pid;
  notes.before = processLiveness(pid);
  // The process's memory and files, seen through a thread that still has
  // them: a leader that has exited (pthread_exit) has none.
  pid_t view = notes.before == Liveness::Running ? pid : liveThreadOf(pid);

  // Before the pause: /proc facts, and where the Python interpreter lives.
  ProcessFacts facts = readProcessFacts(view, process);
  ProcessMemory live(view);
  std::optional<python::Interpreter> interp = locatePython(view, live, process);
  if (interp && options.async)
    python::locateAsyncioDebug(view, facts.maps, *interp);

  // Attach: every thread stops here. The pause lasts until detach().
  auto session = PtraceSession::attach(pid);
  if (!session)
    return session.takeError();
  live.clearCache(); // pages read before the pause may be stale

  // Snapshot: registers (read by attach), live stacks, Python frame chains.
  SnapshotMemory snapshot(&live);
  captureStacks((*session)->stoppedThreads(), view, facts.maps, live, snapshot,
                process.errors);
  std::optional<python::CapturedPython> capturedPython;
  if (interp) {
    auto captured = python::capture(*interp, live);
    if (captured)
      capturedPython = std::move(*captured);
    else {
      process.pythonUnavailable = llvm::toString(captured.takeError());
      process.errors.push_back("Python stacks unavailable: " + *process.pythonUnavailable);
    }
  }
  // Values that change as the target runs (locals, the exception being
  // handled, asyncio tasks) are read now, within bounds (python/Depth.h).
  python::CapturedDepth capturedDepth;
  if (capturedPython)
    capturedDepth = python::captureDepth(
        *interp, *capturedPython, live,
        {options.locals, /*exceptions=*/true, options.async, {}});
  if (options.holdPauseForTests)
    holdPauseForTests(**session);

  // Resume: the target runs again; the rest works from the snapshot.
  (*session)->detach();
  notes.execSeen = (*session)->execSeen();
  process.pauseMicros = static_cast<double>((*session)->pauseDuration().count());
  live.clearCache();

  // Decode Python frames: code objects are immutable, so reading them now
  // gives what the frames ran during the pause.
  std::map<pid_t, python::PythonThreadStack> pythonByTid;
  python::ResolvedDepth depth;
  if (capturedPython) {
    for (const std::string &e : capturedPython->errors)
      process.errors.push_back("Python: " + e);
    if (process.python)
      process.python->gilEnabled = capturedPython->gilEnabled;
    std::vector<python::PythonThreadStack> stacks =
        python::resolve(*interp, *capturedPython, live, facts.tidMap);
    std::vector<pid_t> attached;
    for (const StoppedThread &t : (*session)->stoppedThreads())
      attached.push_back(t.tid);
    for (const UncapturedThread &u : (*session)->uncaptured())
      attached.push_back(u.tid);
    if (auto why = unmatchedPythonNote(stacks, attached, facts.tidMap)) {
      process.pythonUnavailable = *why;
      process.errors.push_back("Python stacks unavailable: " + *why);
    }
    depth = python::resolveDepth(*interp, *capturedPython, capturedDepth, live, stacks);
    for (python::PythonThreadStack &s : stacks)
      if (s.tid != 0)
        pythonByTid[s.tid] = std::move(s);
  }

  // Unwind and symbolize each thread that shows native frames.
  Unwinder unwinder(facts.maps, snapshot);
  SymbolizerOptions symOptions;
  symOptions.rootPrefix = "/proc/" + std::to_string(view) + "/root";
  symOptions.debugDirs = options.debugDirs;
  Symbolizer symbolizer(symOptions);
  for (const StoppedThread &stopped : (*session)->stoppedThreads()) {
    Thread thread = makeThread(pid, stopped.tid, facts);
    auto py = pythonByTid.find(stopped.tid);
    bool hasPython = py != pythonByTid.end() && !py->second.frames.empty();
    // Python-only output needs no native unwinding for Python threads.
    std::vector<Frame> native;
    if (!hasPython || options.native)
      native = nativeStack(unwinder, symbolizer, facts.maps, stopped.regs, thread.errors);
    if (py != pythonByTid.end()) {
      applyPython(thread, py->second, std::move(native), options.native);
      applyGilWait(thread, py->second, stopped.regs);
    } else {
      thread.frames = std::move(native);
    }
    process.threads.push_back(std::move(thread));
  }
  noteModulesWithoutSymbols(symbolizer, process);
  for (const UncapturedThread &u : (*session)->uncaptured()) {
    Thread thread = makeThread(pid, u.tid, facts);
    thread.errors.push_back(u.reason);
    process.threads.push_back(std::move(thread));
  }
  std::sort(process.threads.begin(), process.threads.end(),
            [](const Thread &a, const Thread &b) { return a.tid < b.tid; });

  python::applyDepth(std::move(depth), process);
  fillSourceLines(view, process);
  fillDepthSourceLines(view, process);
  truncateFrames(process, options.maxFrames);
  notes.after = processLiveness(pid);
  if (notes.after == Liveness::Gone) {
    result.incomplete = true;
    process.errors.push_back("the process exited during the dump; stacks were captured "
                             "before it did, but symbols may be missing");
  }
  return result;
}

// An exec under way looks, from outside, like a process that is exiting (its
// leader a zombie, its threads vanishing) or that refuses ptrace (EPERM from
// the dying leader), and a snapshot taken across it mixes two programs. Once
// the exec is done the process is there again, running its new program: such
// outcomes are taken again, a few times, if the process then runs.
bool mayBeExecRace(llvm::Error &err, pid_t pid) {
  bool transient = false;
  err = llvm::handleErrors(std::move(err), [&](std::unique_ptr<AttachError> e) -> llvm::Error {
    transient = e->kind() == AttachFailure::NoSuchProcess ||
                e->kind() == AttachFailure::PermissionDenied ||
                e->kind() == AttachFailure::NotDumpable;
    return llvm::Error(std::move(e));
  });
  // A kernel thread stays one: no need to try again.
  if (auto stat = readTaskStat(pid, pid); stat && stat->kernelThread())
    transient = false;
  else if (!stat)
    llvm::consumeError(stat.takeError());
  return transient;
}

} // namespace

llvm::Expected<DumpResult> dumpProcess(pid_t pid, const DumpOptions &options) {
  constexpr int kAttempts = 4;
  constexpr std::chrono::milliseconds kSettleFor{200};
  const std::string kExecNote =
      "the process ran exec during the dump: stacks may mix the old program and the new";
  // The last dump that was taken but raced an exec: better than an error if
  // the process keeps exec'ing through every attempt.
  std::optional<DumpResult> raced;
  for (int attempt = 1;; ++attempt) {
    AttemptNotes notes;
    llvm::Expected<DumpResult> result = dumpOnce(pid, options, notes);
    bool lastTry = attempt == kAttempts;
    if (!result) {
      llvm::Error err = result.takeError();
      if (mayBeExecRace(err, pid) && !lastTry &&
          settledLiveness(pid, kSettleFor) == Liveness::Running) {
        llvm::consumeError(std::move(err));
        continue;
      }
      if (!raced)
        return std::move(err);
      // An earlier attempt did take a dump: better than this error.
      llvm::consumeError(std::move(err));
      raced->process.errors.push_back(kExecNote);
      raced->incomplete = raced->incomplete || processLiveness(pid) == Liveness::Gone;
      return std::move(*raced);
    }
    // "Changing" throughout is a process whose main thread has exited, not
    // an exec: nothing to wait for.
    bool changedMidway = notes.after != Liveness::Running && notes.after != notes.before;
    if ((notes.execSeen || changedMidway) && !lastTry &&
        settledLiveness(pid, kSettleFor) == Liveness::Running) {
      raced = std::move(*result);
      continue;
    }
    if (notes.execSeen)
      result->process.errors.push_back(kExecNote);
    return result;
  }
}

} // namespace stackpeek
