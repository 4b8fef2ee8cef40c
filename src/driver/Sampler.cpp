#include "driver/Sampler.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>
#include <cstring>

#include "process/ProcFs.h"

namespace stackpeek {

namespace {
// Mappings of files only: anonymous ones ([heap], thread stacks) change
// all the time and matter neither to unwinding nor to the cached pages.
bool sameFileMappings(const std::vector<MapEntry> &a, const std::vector<MapEntry> &b) {
  auto files = [](const std::vector<MapEntry> &maps) {
    std::vector<const MapEntry *> out;
    for (const MapEntry &m : maps)
      if (m.isFile())
        out.push_back(&m);
    return out;
  };
  auto fa = files(a), fb = files(b);
  return std::equal(fa.begin(), fa.end(), fb.begin(), fb.end(),
                    [](const MapEntry *x, const MapEntry *y) {
                      return x->start == y->start && x->end == y->end &&
                             x->offset == y->offset && x->perms == y->perms &&
                             x->inode == y->inode && x->path == y->path;
                    });
}

// Where the executable's first mapping starts (0 if it is not mapped).
uint64_t mainImageBase(const std::vector<MapEntry> &maps, const std::string &exe) {
  for (const MapEntry &m : maps)
    if (m.offset == 0 && m.path == exe)
      return m.start;
  return 0;
}
} // namespace

ProcessSampler::ProcessSampler(pid_t pid, const SamplerOptions &options)
    : pid_(pid), options_(options), activity_(pid) {}

ProcessSampler::~ProcessSampler() = default;

llvm::Expected<std::unique_ptr<ProcessSampler>>
ProcessSampler::create(pid_t pid, const SamplerOptions &options) {
  if (!processAlive(pid))
    return llvm::make_error<AttachError>(AttachFailure::NoSuchProcess,
                                         "no process with pid " + std::to_string(pid));
  std::unique_ptr<ProcessSampler> s(new ProcessSampler(pid, options));
  s->readProcess(true);
  // A command just started may not be Python yet: a wrapper (pyenv's shim
  // is a shell script) still has to exec the interpreter, or the loader
  // has yet to map libpython. --nonblocking can sample nothing else, so it
  // waits for Python (bounded); the default mode samples native stacks
  // meanwhile and looks again (lookAgain).
  if (options.nonblocking && !s->image_->python()) {
    auto deadline = std::chrono::steady_clock::now() + kLookForPythonFor;
    while (!s->image_->python() && processAlive(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      s->readProcess(true);
    }
  }
  if (options.nonblocking && !s->image_->python()) {
    std::string why = "it is not a Python process";
    for (const std::string &e : s->process_.errors)
      if (llvm::StringRef(e).startswith("Python stacks unavailable: "))
        why = e.substr(std::strlen("Python stacks unavailable: "));
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "--nonblocking reads Python stacks only, and pid %d "
                                   "cannot be read as Python: %s",
                                   pid, why.c_str());
  }
  if (options.gilOnly && s->image_->python() &&
      python::freeThreadedGilEnabled(*s->image_->python(), s->image_->live()) == false)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "--gil samples the thread holding the GIL, and pid %d runs CPython %s "
        "free-threaded without one: record without --gil (every thread runs Python "
        "at once), or start it with PYTHON_GIL=1",
        pid, s->image_->python()->version().toString().c_str());
  // One attach up front checks what per-sample attaches skip (zombie,
  // kernel thread, another tracer, permissions) and fails early and clearly.
  if (!options.nonblocking) {
    std::map<pid_t, char> before;
    for (pid_t tid : s->image_->facts().tids())
      before[tid] = s->activity_.state(tid);
    auto probe = PtraceSession::attach(pid);
    if (!probe)
      return probe.takeError();
    probe->reset();
    s->settle(before);
  }
  return s;
}

// (Re)reads what the sampler knows of the process from scratch: command,
// maps, threads, the interpreter. Everything derived from the old image
// (cached pages, unwind tables, symbols, decoded code objects, thread-state
// hints) goes with it.
void ProcessSampler::readProcess(bool newImage) {
  process_ = Process{};
  process_.pid = pid_;
  if (newImage || !image_) {
    image_ = std::make_unique<TargetImage>(
        pid_, TargetImage::Options{options_.debugDirs, /*keepImmutablePages=*/true}, process_);
    notedModules_ = 0;
  } else {
    size_t mappingsBefore = image_->facts().maps.size();
    image_->reread(process_);
    // Symbols are costly to read again; they stay valid unless modules came
    // and went (an address cached as unknown may belong to a module now).
    if (image_->facts().maps.size() != mappingsBefore) {
      image_->forgetSymbols();
      notedModules_ = 0;
    }
  }
  exe_ = process_.executable;
  codes_ = python::CodeCache(/*persistent=*/true);
  lastChains_.clear();
  tstateHints_ = python::ThreadStateHints{};
  pythonPages_.clear();
  anchorPages_.clear();
  pythonSeen_ = false;
  pythonNoted_ = false;
  lookedAt_ = std::chrono::steady_clock::now();
}

// Every 100 ms: has the process exec'd (another image: start over), or,
// for a while after it started or exec'd, has Python appeared?
void ProcessSampler::lookAgain() {
  auto now = std::chrono::steady_clock::now();
  if (now - lastLook_ < std::chrono::milliseconds(100))
    return;
  lastLook_ = now;
  std::string exe = executablePath(pid_);
  bool execd = !exe.empty() && exe != exe_;
  // An interpreter found while it was still starting (libpython mapped,
  // nothing running yet) can be a half-read one: until a capture has shown
  // Python frames, it is looked for again too.
  bool stillStarting = (!image_->python() || !pythonSeen_) && now - lookedAt_ < kLookForPythonFor;
  if (execd || stillStarting) {
    auto since = lookedAt_;
    readProcess(execd);
    if (!execd)
      lookedAt_ = since; // keep the window of the current image
    return;
  }
  // Mappings change later too: a library loaded with dlopen, or one the
  // loader was still mapping when we looked (its whole span mapped
  // read-only first, the writable data over it after). Checked often while
  // the process is young, then once a second.
  auto every = now - lookedAt_ < kLookForPythonFor ? std::chrono::milliseconds(100)
                                                   : std::chrono::milliseconds(1000);
  if (now - lastMapsCheck_ >= every) {
    lastMapsCheck_ = now;
    refreshMaps();
  }
}

// Takes in changed mappings without starting over: the unwinder and the
// pages cached as unchanging depend on them (a range that was read-only
// may now be writable data); symbols and the interpreter's place do not.
void ProcessSampler::refreshMaps() {
  auto maps = readMaps(pid_);
  if (!maps) {
    llvm::consumeError(maps.takeError());
    return;
  }
  // A zombie leader (an exec under way, or main exited) shows no mappings:
  // keep what we have.
  const std::vector<MapEntry> &known = image_->facts().maps;
  if (maps->empty() || sameFileMappings(*maps, known))
    return;
  // The executable mapped somewhere else: the same program exec'd again
  // (its path unchanged), and everything read of it is stale.
  if (mainImageBase(*maps, exe_) != mainImageBase(known, exe_)) {
    readProcess(true);
    return;
  }
  image_->replaceMaps(std::move(*maps));
  pythonPages_.clear();
  anchorPages_.clear();
}

// A thread we just let go runs for a moment to re-enter the call it was
// sleeping in, and reads as running meanwhile. Waiting (briefly, bounded)
// for the sleepers to be back keeps the first pass from sampling them.
void ProcessSampler::settle(const std::map<pid_t, char> &before) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  for (const auto &[tid, state] : before) {
    if (state == 'R')
      continue;
    while (activity_.state(tid) == 'R' && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
  }
}

static std::vector<uint64_t> sortedUnique(std::vector<uint64_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// Whether capture() found Python frames on this OS thread.
static bool capturedPythonFrames(const std::optional<python::CapturedPython> &captured, pid_t tid) {
  if (!captured)
    return false;
  for (const python::CapturedThread &t : captured->threads)
    if (t.osTid == tid && !t.frames.empty())
      return true;
  return false;
}

// Thread names are read (a walk of threading._active) only while some
// chosen thread has not been named yet.
bool ProcessSampler::needThreadNames(const std::vector<pid_t> &chosen) const {
  return std::any_of(chosen.begin(), chosen.end(),
                     [&](pid_t tid) { return !threadNames_.count(tid); });
}

StackId ProcessSampler::internStackOf(Profile &profile, const Thread &thread) {
  // A thread's name is taken from its first sample (later passes skip
  // reading Python thread names), so its label stays the same throughout.
  auto [named, firstSample] =
      threadNames_.try_emplace(thread.tid, thread.pythonThreadName.value_or(thread.name));
  if (firstSample)
    profile.threads.push_back({pid_, thread.tid, named->second});
  std::vector<FrameId> stack;
  for (const Frame &f : thread.frames)
    stack.push_back(profile.internFrame(profileFrameOf(f)));
  if (options_.threadRoots) {
    ProfileFrame label;
    label.synthetic = true;
    label.function = "thread " + std::to_string(thread.tid) + " " + named->second;
    stack.push_back(profile.internFrame(label));
  }
  if (options_.processRoots) {
    ProfileFrame label;
    label.synthetic = true;
    label.function = "process " + std::to_string(pid_) + " " + process_.command;
    stack.push_back(profile.internFrame(label));
  }
  return profile.internStack(stack);
}

void ProcessSampler::addSample(Profile &profile, pid_t tid, StackId stack, uint64_t timestampNs,
                               uint64_t weightNs, SamplerStats &stats) {
  ProfileSample sample;
  sample.timestampNs = timestampNs;
  sample.pid = pid_;
  sample.tid = tid;
  sample.stack = stack;
  sample.weightNs = weightNs;
  profile.samples.push_back(sample);
  ++stats.samples;
}

StopPlanInputs ProcessSampler::planInputs() {
  return {image_->python(), image_->live(), tstateHints_, activity_, withoutPythonFrames_,
          /*pythonOnly=*/!options_.native && !options_.nonblocking};
}

// Reads the Python chains of `tids` into out.pause.python (adding to what
// an earlier call of the same pass read); the pages it read go to `pages`.
void ProcessSampler::capturePython(const std::vector<pid_t> &tids, PassCapture &out,
                                   std::vector<uint64_t> &pages) {
  python::Interpreter *interp = image_->python();
  if (!interp || tids.empty())
    return;
  ProcessMemory &live = image_->live();
  python::CaptureLimits limits;
  limits.onlyTids = tids; // only the sampled threads' chains, for a short pause
  limits.hints = &tstateHints_;
  limits.tidMap = &image_->facts().tidMap;
  limits.threadStatus = options_.gilOnly;
  live.trackPages();
  auto c = python::capture(*interp, live, limits);
  std::vector<uint64_t> touched = live.takeTouchedPages();
  pages.insert(pages.end(), touched.begin(), touched.end());
  if (!c) {
    out.pythonErrors.push_back("Python: " + llvm::toString(c.takeError()));
    return;
  }
  if (std::any_of(c->threads.begin(), c->threads.end(),
                  [](const python::CapturedThread &t) { return !t.frames.empty(); }))
    pythonSeen_ = true;
  std::optional<python::CapturedPython> &captured = out.pause.python;
  if (!captured) {
    captured = std::move(*c);
    return;
  }
  for (python::CapturedThread &t : c->threads)
    captured->threads.push_back(std::move(t));
  for (std::string &e : c->errors)
    captured->errors.push_back(std::move(e));
}

// A native stack is copied where it will be shown: with --native, or for a
// sampled thread running no Python code. Copying only those keeps the
// pause of a Python-only profile to the Python frame chains.
void ProcessSampler::copyNativeStacks(const PtraceSession &session, PassCapture &out,
                                      const std::vector<pid_t> &chosen) {
  std::vector<StoppedThread> copy;
  for (const StoppedThread &t : session.stoppedThreads())
    if (std::find(chosen.begin(), chosen.end(), t.tid) != chosen.end() &&
        (options_.native || !capturedPythonFrames(out.pause.python, t.tid))) {
      copy.push_back(t);
      out.stacksCopied.insert(t.tid);
    }
  std::vector<std::string> notes;
  out.pause.stacks = copyStacks(copy, pid_, image_->facts().maps, image_->live(), notes);
}

// The pass's pause, as a scope: the session that stops the threads lives
// only in here, and `out` holds plain copies when it returns.
ProcessSampler::StopResult ProcessSampler::pauseFor(const StopPlan &plan,
                                                    const std::vector<pid_t> &chosen,
                                                    PassCapture &out) {
  image_->live().clearCache();
  std::unique_ptr<PtraceSession> session;
  StopResult result = plan.sleepers ? stopAwakeAndCapture(plan, chosen, session, out)
                                    : stopAndCapture(plan, chosen, session, out);
  endPause(std::move(session), out.pause);
  return result;
}

// Seizes and interrupts `stop`; the stops are waited for by finishStopping,
// so that reads can overlap them.
std::unique_ptr<PtraceSession> ProcessSampler::startStopping(const std::vector<pid_t> &stop,
                                                             PassCapture &out) {
  AttachOptions attach;
  attach.onlyThreads = stop;
  attach.skipChecks = true;
  // A sampled thread stops within microseconds, unless it waits for the
  // CPU (a busy host): then it is waited for, rather than lost or left
  // stopped, up to kRunnableStopDeadline.
  attach.runnableStopDeadline = kRunnableStopDeadline;
  auto session = PtraceSession::startAttach(pid_, attach);
  if (!session) {
    out.attachError = llvm::toString(session.takeError());
    return nullptr;
  }
  return std::move(*session);
}

bool ProcessSampler::finishStopping(PtraceSession &session, PassCapture &out) {
  llvm::Error err = session.finishAttach(std::chrono::milliseconds(100));
  if (!err)
    return true;
  out.attachError = llvm::toString(std::move(err));
  return false;
}

// Stops plan.stop and copies what the pass shows of `chosen`.
ProcessSampler::StopResult
ProcessSampler::stopAndCapture(const StopPlan &plan, const std::vector<pid_t> &chosen,
                               std::unique_ptr<PtraceSession> &session, PassCapture &out) {
  session = startStopping(plan.stop, out);
  if (!session)
    return StopResult::AttachFailed;
  if (plan.anchor)
    return captureAnchored(*plan.anchor, chosen, *session, out);
  if (!finishStopping(*session, out))
    return StopResult::AttachFailed;
  // The structures a capture reads mostly stay where they were (thread
  // states, the frames' stack chunk, the interpreter): fetch last pass's
  // pages in one system call, then read as usual from the cache.
  image_->live().prefetch(pythonPages_);
  capturePython(chosen, out, out.pages);
  copyNativeStacks(*session, out, chosen);
  return StopResult::Captured;
}

// Anchored: the other threads' chains are read while the anchor comes to a
// stop. They cannot change unless the GIL changes hands, which the
// hand-over record read when the anchor was chosen and again at the end
// tells. The anchor's own chain is read once it stands still, afresh
// (pages cached before its stop may predate its last steps).
ProcessSampler::StopResult ProcessSampler::captureAnchored(const GilAnchor &anchor,
                                                           const std::vector<pid_t> &chosen,
                                                           PtraceSession &session,
                                                           PassCapture &out) {
  out.anchored = true;
  ProcessMemory &live = image_->live();
  UncachedReads uncached(live);
  const python::Layout &l = image_->python()->layout;
  std::vector<pid_t> others;
  for (pid_t tid : chosen)
    if (tid != anchor.tid)
      others.push_back(tid);
  if (!others.empty()) {
    live.prefetch(pythonPages_);
    capturePython(others, out, out.pages);
  }
  if (!finishStopping(session, out))
    return StopResult::AttachFailed;
  // Stopped, and still the thread of that thread state: it cannot exit and
  // leave its address to a new thread state until we let it go.
  const auto &stopped = session.stoppedThreads();
  if (std::none_of(stopped.begin(), stopped.end(),
                   [&](const StoppedThread &t) { return t.tid == anchor.tid; }) ||
      python::threadStateTid(l, uncached, anchor.tstate, python::CaptureLimits{}.pthreadTidOffset,
                             &image_->facts().tidMap) != anchor.tid)
    return StopResult::AnchorLost;
  if (others.size() < chosen.size()) {
    live.clearCache();
    if (anchorPagesTid_ == anchor.tid)
      live.prefetch(anchorPages_); // where its chain was last time
    capturePython({anchor.tid}, out, out.anchorPages);
    out.anchorTid = anchor.tid;
  }
  std::optional<python::GilHandover> after = python::readGilHandover(l, uncached, anchor.gil);
  if (!after || after->switches != anchor.before.switches ||
      after->lastHolder != anchor.before.lastHolder)
    return StopResult::AnchorLost;
  copyNativeStacks(session, out, chosen);
  return StopResult::Captured;
}

void ProcessSampler::delayForTests() const {
  if (options_.sleeperReadDelayUsForTests)
    std::this_thread::sleep_for(std::chrono::microseconds(options_.sleeperReadDelayUsForTests));
}

// The free-threaded pass: the sleepers' chains are read while the others
// (plan.stop) are being stopped, then the stopped ones', then the sleepers
// are checked.
ProcessSampler::StopResult
ProcessSampler::stopAwakeAndCapture(const StopPlan &plan, const std::vector<pid_t> &chosen,
                                    std::unique_ptr<PtraceSession> &session, PassCapture &out) {
  const Sleepers &sleepers = *plan.sleepers;
  ProcessMemory &live = image_->live();
  out.anchored = true; // like an anchored pass: not every sampled thread stopped
  live.prefetch(pythonPages_);
  if (plan.stop.empty()) {
    delayForTests();
    capturePython(sleepers.tids, out, out.pages);
    return sleepersStillAsleep(sleepers, activity_) ? StopResult::Captured
                                                     : StopResult::AnchorLost;
  }
  session = startStopping(plan.stop, out);
  if (!session)
    return StopResult::AttachFailed;
  delayForTests();
  capturePython(sleepers.tids, out, out.pages);
  if (!finishStopping(*session, out))
    return StopResult::AttachFailed;
  live.clearCache();
  capturePython(plan.stop, out, out.pages);
  if (!sleepersStillAsleep(sleepers, activity_))
    return StopResult::AnchorLost;
  copyNativeStacks(*session, out, chosen);
  return StopResult::Captured;
}

// Accounts for a pass's pause. False when it straddled an exec: its stacks
// mix two programs.
bool ProcessSampler::countPause(const PassCapture &pass, SamplerStats &stats) {
  if (!pass.pause.stoppedAny())
    return !pass.pause.execSeen; // nothing stopped: no pause to count
  uint64_t us = pass.pause.duration.count();
  ++stats.pauses;
  stats.pauseTotalUs += us;
  stats.pauseMaxUs = std::max(stats.pauseMaxUs, us);
  stats.threadsStopped += pass.pause.stopped.size();
  return !pass.pause.execSeen;
}

// The pass straddled an exec: its stacks mix two programs. Dropped; the
// sampler starts over on the new one.
bool ProcessSampler::startOverAfterExec(SamplerStats &stats) {
  ++stats.failures["the process ran exec during the sample"];
  readProcess(true);
  return processAlive(pid_);
}

// Next pass's prefetch: the pages read before the anchor's stop, and
// those of the anchor's chain (read after it, once it stands still).
void ProcessSampler::keepPagesForNextPass(PassCapture &pass) {
  pythonPages_ = sortedUnique(std::move(pass.pages));
  if (pass.anchorTid) {
    anchorPages_ = sortedUnique(std::move(pass.anchorPages));
    anchorPagesTid_ = pass.anchorTid;
  }
}

bool ProcessSampler::samplePass(Profile &profile, uint64_t timestampNs, uint64_t weightNs,
                                SamplerStats &stats) {
  ++stats.passes;
  lookAgain();
  bool alive = true;
  std::vector<pid_t> chosen = activity_.poll(options_.includeIdle, alive);
  if (!alive)
    return false;
  if (chosen.empty())
    return true;
  // Thread states name threads in the target's ids (its pid namespace):
  // the threads started since readProcess() are mapped before any capture.
  for (pid_t tid : chosen)
    image_->facts().tidMap.learn(pid_, tid);

  // Snapshot: nonblocking, read while everything runs. Otherwise stop what
  // the plan says; copy what changes as they run; let them go.
  PassCapture pass;
  if (options_.nonblocking) {
    image_->live().clearCache();
    image_->live().prefetch(pythonPages_);
    capturePython(chosen, pass, pass.pages);
  } else {
    StopPlan plan = planStops(planInputs(), chosen);
    StopResult result = pauseFor(plan, chosen, pass);
    if (!plan.stopsEvery() && result != StopResult::Captured) {
      // The GIL changed hands, the anchor could not be stopped, or a
      // sleeper woke during its read: stop them all instead.
      if (!countPause(pass, stats))
        return startOverAfterExec(stats);
      pass = PassCapture{};
      result = pauseFor(stopEvery(chosen), chosen, pass);
    }
    if (result == StopResult::AttachFailed) {
      ++stats.failures[pass.attachError];
      return processAlive(pid_);
    }
    if (!countPause(pass, stats))
      return startOverAfterExec(stats);
  }
  image_->live().clearCache();
  keepPagesForNextPass(pass);
  for (const std::string &why : pass.pythonErrors)
    ++stats.failures[why];
  recordPass(profile, chosen, pass, timestampNs, weightNs, stats);
  return true;
}

// A module that left a frame unnamed for lack of symbols is said once, in
// the summary (the image lists each once; only new ones are copied).
void ProcessSampler::noteModulesWithoutSymbols(SamplerStats &stats) {
  const std::vector<ModuleWithoutSymbols> &modules = image_->modulesWithoutSymbols();
  for (; notedModules_ < modules.size(); ++notedModules_)
    stats.notes.insert(missingSymbolsNote(modules[notedModules_]));
  // Why Python frames are missing (or what is unverified), once per image.
  if (!pythonNoted_)
    for (const std::string &e : process_.errors)
      if (llvm::StringRef(e).startswith("Python"))
        stats.notes.insert(e);
  pythonNoted_ = true;
}

// Decodes the pass's chains, except those equal to the thread's last one
// with their code objects unchanged (ChainMemo.h): those become `repeats`.
std::map<pid_t, python::PythonThreadStack>
ProcessSampler::decodePass(PassCapture &pass, const std::vector<pid_t> &chosen,
                           std::map<pid_t, ChainMemo::ChainKey> &keys,
                           std::map<pid_t, Repeat> &repeats) {
  std::map<pid_t, python::PythonThreadStack> pythonByTid;
  if (!pass.pause.python)
    return pythonByTid;
  python::Interpreter &interp = *image_->python();
  python::CapturedPython fresh, stale;
  std::vector<std::pair<python::CapturedThread, StackId>> candidates;
  for (python::CapturedThread &t : pass.pause.python->threads) {
    std::optional<StackId> last;
    if (t.osTid && t.errors.empty()) {
      const ChainMemo::ChainKey &key = keys[t.osTid] = ChainMemo::keyOf(t);
      if (!options_.native)
        last = lastChains_.lastStack(t, key);
    }
    if (last)
      candidates.emplace_back(std::move(t), *last);
    else
      fresh.threads.push_back(std::move(t));
  }
  auto decode = [&](const python::CapturedPython &threads) {
    if (threads.threads.empty())
      return;
    for (auto &s : python::resolve(interp, threads, image_->live(), image_->facts().tidMap,
                                   needThreadNames(chosen), &codes_))
      if (s.tid)
        pythonByTid[s.tid] = std::move(s);
  };
  decode(fresh);
  // After that resolve, code objects it shared with the candidates are
  // already validated for this pass: checking them costs no read.
  for (auto &[t, stack] : candidates) {
    bool codesSame = std::all_of(t.frames.begin(), t.frames.end(), [&](const auto &f) {
      return codes_.unchanged(interp.layout, image_->live(), f.codeAddr);
    });
    if (codesSame)
      repeats[t.osTid] = {stack, t.holdsGil};
    else
      stale.threads.push_back(std::move(t));
  }
  decode(stale);
  return pythonByTid;
}

// Every frame decoded and no error on the thread.
static bool isWhole(const Thread &thread) {
  return thread.errors.empty() &&
         std::none_of(thread.frames.begin(), thread.frames.end(),
                      [](const Frame &f) { return f.error.has_value(); });
}

// One sampled thread's stack: its native frames when they are shown (from
// the copied stack), merged with or replaced by its Python frames. nullopt
// when nothing true can be shown.
std::optional<Thread> ProcessSampler::sampleThread(pid_t tid, python::PythonThreadStack *py,
                                                   const StoppedThread *regs, bool withNative,
                                                   const PassCapture &pass, SamplerStats &stats) {
  ProcessFacts &facts = image_->facts();
  if (!facts.threads.count(tid)) // a new thread: read its name once
    facts.threads[tid] = readThreadFacts(pid_, tid);
  Thread thread = makeThread(pid_, tid, facts);
  std::vector<Frame> native;
  if (withNative) {
    // Its Python frames were all still being set up (hidden, as CPython
    // hides them) and its stack was not copied: nothing true to show.
    if (!pass.stacksCopied.count(tid))
      return std::nullopt;
    native = image_->nativeStack(regs->regs, thread.errors);
    noteModulesWithoutSymbols(stats);
  }
  if (py)
    applyPython(thread, *py, std::move(native), options_.native);
  else
    thread.frames = std::move(native);
  // Read unstopped, a stack with any flaw may be torn: never recorded.
  if (thread.frames.empty() || (options_.nonblocking && !isWhole(thread)))
    return std::nullopt;
  return thread;
}

// Decodes and records one pass, after the target runs again. A thread whose
// chain repeats gets its last sample's stack again without decoding.
void ProcessSampler::recordPass(Profile &profile, const std::vector<pid_t> &chosen,
                                PassCapture &pass, uint64_t timestampNs, uint64_t weightNs,
                                SamplerStats &stats) {
  std::map<pid_t, Repeat> repeats;
  std::map<pid_t, ChainMemo::ChainKey> keys;
  codes_.newPass(); // the target ran: cached code objects are checked again
  std::map<pid_t, python::PythonThreadStack> pythonByTid = decodePass(pass, chosen, keys, repeats);
  image_->snapshot().replaceCaptures(std::move(pass.pause.stacks));
  if (withoutPythonFrames_.size() > python::ThreadStateHints::kMaxWithoutPython)
    withoutPythonFrames_.clear();
  lastChains_.bound(python::ThreadStateHints::kMaxWithoutPython);
  // In a pass that stopped every sampled thread, one missing from the
  // stopped ones had gone.
  bool stoppedEvery = !options_.nonblocking && !pass.anchored;
  for (pid_t tid : chosen) {
    auto repeat = repeats.find(tid);
    auto py = pythonByTid.find(tid);
    bool hasPython =
        repeat != repeats.end() || (py != pythonByTid.end() && !py->second.frames.empty());
    if (hasPython)
      withoutPythonFrames_.erase(tid);
    else
      withoutPythonFrames_.insert(tid);
    const StoppedThread *regs = pass.pause.stoppedThread(tid);
    // A thread that was not stopped is shown only from its Python frames:
    // nonblocking, or an anchored pass (a thread that ran no Python code
    // there is stopped from the next pass on).
    if (!regs && (!hasPython || stoppedEvery))
      continue;
    if (repeat != repeats.end()) {
      if (!options_.gilOnly || repeat->second.holdsGil)
        addSample(profile, tid, repeat->second.stack, timestampNs, weightNs, stats);
      continue;
    }
    if (options_.gilOnly && !(py != pythonByTid.end() && py->second.holdsGil))
      continue;
    bool withNative = regs && (!hasPython || options_.native);
    std::optional<Thread> sampled =
        sampleThread(tid, py == pythonByTid.end() ? nullptr : &py->second, regs, withNative,
                     pass, stats);
    if (!sampled) {
      ++stats.dropped;
      continue;
    }
    StackId stack = internStackOf(profile, *sampled);
    addSample(profile, tid, stack, timestampNs, weightNs, stats);
    // Remembered for the next pass: Python-only stacks decoded whole.
    auto key = keys.find(tid);
    if (!withNative && isWhole(*sampled) && key != keys.end())
      lastChains_.remember(tid, std::move(key->second), stack);
    else
      lastChains_.forget(tid);
  }
}

} // namespace stackpeek
