#include "driver/Dump.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include "driver/Pause.h"
#include "driver/Stages.h"
#include "driver/TargetImage.h"
#include "process/ProcFs.h"
#include "python/depth/Depth.h"
#include "python/frames/Locate.h"
#include "python/frames/SourceLines.h"

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
void noteModulesWithoutSymbols(const std::vector<ModuleWithoutSymbols> &modules,
                               Process &process) {
  constexpr size_t kMaxNotes = 10;
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

// A dump's pause: the common copy, and the values that change as the
// target runs (locals, the exception being handled, asyncio tasks).
struct DumpPause {
  PauseCapture capture;
  python::CapturedDepth depth;
};

// The pause, as a scope: every thread stops, the snapshot is copied, and
// the session is gone when this returns.
llvm::Expected<DumpPause> pauseAndCopy(pid_t pid, TargetImage &image, const DumpOptions &options,
                                       Process &process) {
  auto session = PtraceSession::attach(pid);
  if (!session)
    return session.takeError();
  ProcessMemory &live = image.live();
  live.clearCache(); // pages read before the pause may be stale
  DumpPause pause;
  pause.capture.stacks = copyStacks((*session)->stoppedThreads(), image.pid(),
                                    image.facts().maps, live, process.errors);
  if (python::Interpreter *interp = image.python()) {
    auto captured = python::capture(*interp, live);
    if (captured) {
      pause.capture.python = std::move(*captured);
      pause.depth = python::captureDepth(*interp, *pause.capture.python, live,
                                         {options.locals, /*exceptions=*/true, options.async, {}});
    } else {
      process.pythonUnavailable = llvm::toString(captured.takeError());
      process.errors.push_back("Python stacks unavailable: " + *process.pythonUnavailable);
    }
  }
  if (options.holdPauseForTests)
    holdPauseForTests(**session);
  endPause(std::move(*session), pause.capture);
  live.clearCache();
  return pause;
}

// Decodes the captured chains: code objects are immutable, so reading them
// now gives what the frames ran during the pause.
std::map<pid_t, python::PythonThreadStack> decodePython(TargetImage &image, DumpPause &pause,
                                                        python::ResolvedDepth &depth,
                                                        Process &process) {
  std::map<pid_t, python::PythonThreadStack> pythonByTid;
  if (!pause.capture.python)
    return pythonByTid;
  const python::CapturedPython &captured = *pause.capture.python;
  python::Interpreter &interp = *image.python();
  for (const std::string &e : captured.errors)
    process.errors.push_back("Python: " + e);
  if (process.python)
    process.python->gilEnabled = captured.gilEnabled;
  std::vector<python::PythonThreadStack> stacks =
      python::resolve(interp, captured, image.live(), image.facts().tidMap);
  std::vector<pid_t> attached;
  for (const StoppedThread &t : pause.capture.stopped)
    attached.push_back(t.tid);
  for (const UncapturedThread &u : pause.capture.uncaptured)
    attached.push_back(u.tid);
  if (auto why = unmatchedPythonNote(stacks, attached, image.facts().tidMap)) {
    process.pythonUnavailable = *why;
    process.errors.push_back("Python stacks unavailable: " + *why);
  }
  depth = python::resolveDepth(interp, captured, pause.depth, image.live(), stacks);
  for (python::PythonThreadStack &s : stacks)
    if (s.tid != 0)
      pythonByTid[s.tid] = std::move(s);
  return pythonByTid;
}

// Unwinds and symbolizes each thread that shows native frames, and gives
// each its Python frames.
void buildThreads(pid_t pid, TargetImage &image, PauseCapture &capture,
                  std::map<pid_t, python::PythonThreadStack> &pythonByTid,
                  const DumpOptions &options, Process &process) {
  image.snapshot().replaceCaptures(std::move(capture.stacks));
  for (const StoppedThread &stopped : capture.stopped) {
    Thread thread = makeThread(pid, stopped.tid, image.facts());
    auto py = pythonByTid.find(stopped.tid);
    bool hasPython = py != pythonByTid.end() && !py->second.frames.empty();
    // Python-only output needs no native unwinding for Python threads.
    std::vector<Frame> native;
    if (!hasPython || options.native)
      native = image.nativeStack(stopped.regs, thread.errors);
    if (py != pythonByTid.end()) {
      applyPython(thread, py->second, std::move(native), options.native);
      applyGilWait(thread, py->second, stopped.regs);
    } else {
      thread.frames = std::move(native);
    }
    process.threads.push_back(std::move(thread));
  }
  noteModulesWithoutSymbols(image.modulesWithoutSymbols(), process);
  for (const UncapturedThread &u : capture.uncaptured) {
    Thread thread = makeThread(pid, u.tid, image.facts());
    thread.errors.push_back(u.reason);
    process.threads.push_back(std::move(thread));
  }
  std::sort(process.threads.begin(), process.threads.end(),
            [](const Thread &a, const Thread &b) { return a.tid < b.tid; });
}

llvm::Expected<DumpResult> dumpOnce(pid_t pid, const DumpOptions &options, AttemptNotes &notes) {
  DumpResult result;
  Process &process = result.process;
  process.pid = pid;
  notes.before = processLiveness(pid);
  // The process's memory and files, seen through a thread that still has
  // them: a leader that has exited (pthread_exit) has none.
  pid_t view = notes.before == Liveness::Running ? pid : liveThreadOf(pid);

  // Before the pause: /proc facts, and where the Python interpreter lives.
  TargetImage image(view, {options.debugDirs}, process);
  if (image.python() && options.async)
    python::locateAsyncioDebug(view, image.facts().maps, *image.python());

  llvm::Expected<DumpPause> pause = pauseAndCopy(pid, image, options, process);
  if (!pause)
    return pause.takeError();
  notes.execSeen = pause->capture.execSeen;
  process.pauseMicros = static_cast<double>(pause->capture.duration.count());

  // After it: the target runs; the rest works from the copy.
  python::ResolvedDepth depth;
  std::map<pid_t, python::PythonThreadStack> pythonByTid =
      decodePython(image, *pause, depth, process);
  buildThreads(pid, image, pause->capture, pythonByTid, options, process);
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
