#include "driver/Sampler.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>
#include <cstring>

#include "process/ProcFs.h"

namespace stackpeek {

namespace {
// Read-only mappings of files: code, unwind tables, constants. Their pages
// can stay cached across passes.
std::vector<std::pair<uint64_t, uint64_t>> immutableRanges(const std::vector<MapEntry> &maps) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const MapEntry &m : maps)
    if (m.isFile() && m.perms.size() > 1 && m.perms[1] != 'w')
      ranges.emplace_back(m.start, m.end);
  return ranges;
}

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

// Reads that bypass the page cache, for the GIL's hand-over record: it is
// read while threads run, and again within one pause.
class UncachedReads : public MemorySource {
public:
  explicit UncachedReads(ProcessMemory &memory) : memory_(memory) {}
  bool read(uint64_t addr, void *buf, size_t len) override {
    return memory_.readUncached(addr, buf, len);
  }

private:
  ProcessMemory &memory_;
};

// Where the executable's first mapping starts (0 if it is not mapped).
uint64_t mainImageBase(const std::vector<MapEntry> &maps, const std::string &exe) {
  for (const MapEntry &m : maps)
    if (m.offset == 0 && m.path == exe)
      return m.start;
  return 0;
}
} // namespace

ProcessSampler::ProcessSampler(pid_t pid, const SamplerOptions &options)
    : pid_(pid), options_(options), live_(pid), snapshot_(&live_), activity_(pid) {}

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
  if (options.nonblocking && !s->interp_) {
    auto deadline = std::chrono::steady_clock::now() + kLookForPythonFor;
    while (!s->interp_ && processAlive(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      s->readProcess(true);
    }
  }
  if (options.nonblocking && !s->interp_) {
    std::string why = "it is not a Python process";
    for (const std::string &e : s->process_.errors)
      if (llvm::StringRef(e).startswith("Python stacks unavailable: "))
        why = e.substr(std::strlen("Python stacks unavailable: "));
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "--nonblocking reads Python stacks only, and pid %d "
                                   "cannot be read as Python: %s",
                                   pid, why.c_str());
  }
  if (options.gilOnly && s->interp_ &&
      python::freeThreadedGilEnabled(*s->interp_, s->live_) == false)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "--gil samples the thread holding the GIL, and pid %d runs CPython %s "
        "free-threaded without one: record without --gil (every thread runs Python "
        "at once), or start it with PYTHON_GIL=1",
        pid, s->interp_->version().toString().c_str());
  // One attach up front checks what per-sample attaches skip (zombie,
  // kernel thread, another tracer, permissions) and fails early and clearly.
  if (!options.nonblocking) {
    std::map<pid_t, char> before;
    for (pid_t tid : s->facts_.tids())
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
  size_t mappingsBefore = facts_.maps.size();
  facts_ = readProcessFacts(pid_, process_);
  newImage = newImage || facts_.maps.size() != mappingsBefore;
  exe_ = process_.executable;
  live_.clearAll();
  interp_ = locatePython(pid_, live_, process_);
  live_.setImmutableRanges(immutableRanges(facts_.maps));
  unwinder_ = std::make_unique<Unwinder>(facts_.maps, snapshot_);
  // Symbols are costly to read again; they stay valid unless the image
  // changed or modules came and went (an address cached as unknown may
  // belong to a module now).
  if (!symbolizer_ || newImage) {
    SymbolizerOptions symOptions;
    symOptions.rootPrefix = "/proc/" + std::to_string(pid_) + "/root";
    symOptions.debugDirs = options_.debugDirs;
    symbolizer_ = std::make_unique<Symbolizer>(symOptions);
    notedModules_ = 0;
  }
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
  bool stillStarting = (!interp_ || !pythonSeen_) && now - lookedAt_ < kLookForPythonFor;
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
  if (maps->empty() || sameFileMappings(*maps, facts_.maps))
    return;
  // The executable mapped somewhere else: the same program exec'd again
  // (its path unchanged), and everything read of it is stale.
  if (mainImageBase(*maps, exe_) != mainImageBase(facts_.maps, exe_)) {
    readProcess(true);
    return;
  }
  facts_.maps = std::move(*maps);
  live_.clearAll();
  live_.setImmutableRanges(immutableRanges(facts_.maps));
  unwinder_ = std::make_unique<Unwinder>(facts_.maps, snapshot_);
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

// The thread to stop for an anchored pass, or nullopt when the pass stops
// every sampled thread: native stacks wanted (their registers are read
// while stopped), no interpreter or no single GIL record to watch
// (sharedGilAddress), or a last holder the hints do not place.
std::optional<ProcessSampler::GilAnchor> ProcessSampler::planGilAnchor() {
  if (options_.native || options_.nonblocking || !interp_ || !tstateHints_.valid)
    return std::nullopt;
  UncachedReads mem(live_);
  uint64_t gil = python::sharedGilAddress(*interp_, mem);
  if (!gil)
    return std::nullopt;
  std::optional<python::GilHandover> handover = python::readGilHandover(interp_->layout, mem, gil);
  if (!handover || !handover->lastHolder)
    return std::nullopt;
  for (const auto &[tid, tstate] : tstateHints_.tstateByTid)
    if (tstate == handover->lastHolder)
      return GilAnchor{tid, tstate, gil, *handover};
  return std::nullopt;
}

// Without a GIL nothing stops the other threads from running Python while
// one is stopped, but a thread asleep in the kernel cannot change its frames
// until it wakes. So the sleepers' chains are read without stopping them,
// and trusted only when, after the read, each one's CPU time is what it was
// before and it still sleeps (a thread that woke, ran and slept again has
// more CPU time: the kernel accounts for it when it is switched out). The
// running threads, and those whose native stack is shown, are stopped.
std::optional<ProcessSampler::Sleepers>
ProcessSampler::planSleeperReads(const std::vector<pid_t> &chosen) {
  if (options_.native || options_.nonblocking || !interp_ || !tstateHints_.valid ||
      !interp_->layout.freeThreaded)
    return std::nullopt;
  UncachedReads mem(live_);
  if (python::freeThreadedGilEnabled(*interp_, mem) != false)
    return std::nullopt;
  Sleepers s;
  for (pid_t tid : chosen) {
    if (!tstateHints_.tstateByTid.count(tid) || withoutPythonFrames_.count(tid))
      continue;
    char state = activity_.state(tid);
    std::optional<uint64_t> cpu = activity_.cpuTimeNs(tid);
    if ((state == 'S' || state == 'D') && cpu)
      s.tids.push_back(tid), s.cpuNs.push_back(*cpu);
  }
  if (s.tids.empty())
    return std::nullopt;
  return s;
}

bool ProcessSampler::sleepersStillAsleep(const Sleepers &s) {
  for (size_t i = 0; i < s.tids.size(); ++i) {
    char state = activity_.state(s.tids[i]);
    if ((state != 'S' && state != 'D') || activity_.cpuTimeNs(s.tids[i]) != s.cpuNs[i])
      return false;
  }
  return true;
}

// The anchor, and the sampled threads whose native stack will be shown:
// those without a thread state, and those that showed no Python frames.
std::vector<pid_t> ProcessSampler::anchoredStops(const GilAnchor &anchor,
                                                 const std::vector<pid_t> &chosen) const {
  std::vector<pid_t> stop{anchor.tid};
  for (pid_t tid : chosen)
    if (tid != anchor.tid &&
        (!tstateHints_.tstateByTid.count(tid) || withoutPythonFrames_.count(tid)))
      stop.push_back(tid);
  return stop;
}

// Reads the Python chains of `tids` into out.captured (adding to what an
// earlier call of the same pass read); the pages it read go to `pages`.
void ProcessSampler::capturePython(const std::vector<pid_t> &tids, PassCapture &out,
                                   std::vector<uint64_t> &pages) {
  if (!interp_ || tids.empty())
    return;
  python::CaptureLimits limits;
  limits.onlyTids = tids; // only the sampled threads' chains, for a short pause
  limits.hints = &tstateHints_;
  limits.tidMap = &facts_.tidMap;
  limits.threadStatus = options_.gilOnly;
  live_.trackPages();
  auto c = python::capture(*interp_, live_, limits);
  std::vector<uint64_t> touched = live_.takeTouchedPages();
  pages.insert(pages.end(), touched.begin(), touched.end());
  if (!c) {
    out.pythonErrors.push_back("Python: " + llvm::toString(c.takeError()));
    return;
  }
  if (std::any_of(c->threads.begin(), c->threads.end(),
                  [](const python::CapturedThread &t) { return !t.frames.empty(); }))
    pythonSeen_ = true;
  if (!out.captured) {
    out.captured = std::move(*c);
    return;
  }
  for (python::CapturedThread &t : c->threads)
    out.captured->threads.push_back(std::move(t));
  for (std::string &e : c->errors)
    out.captured->errors.push_back(std::move(e));
}

// A native stack is copied where it will be shown: with --native, or for a
// sampled thread running no Python code. Copying only those keeps the
// pause of a Python-only profile to the Python frame chains.
void ProcessSampler::copyNativeStacks(PassCapture &out, const std::vector<pid_t> &chosen) {
  std::vector<StoppedThread> copy;
  for (const StoppedThread &t : out.session->stoppedThreads())
    if (std::find(chosen.begin(), chosen.end(), t.tid) != chosen.end() &&
        (options_.native || !capturedPythonFrames(out.captured, t.tid))) {
      copy.push_back(t);
      out.stacksCopied.insert(t.tid);
    }
  std::vector<std::string> notes;
  captureStacks(copy, pid_, facts_.maps, live_, snapshot_, notes);
}

// Stops `stop` and copies what the pass shows of `chosen`.
//
// Anchored, `stop` is the anchor (plus threads without Python frames), and
// the other threads' chains are read while it comes to a stop: they cannot
// change unless the GIL changes hands, which the hand-over record read when
// the anchor was chosen (planGilAnchor) and again at the end tells. The
// anchor's own chain is read once it stands still, afresh (pages cached
// before its stop may predate its last steps).
ProcessSampler::StopResult ProcessSampler::stopAndCapture(const std::vector<pid_t> &stop,
                                                          const std::vector<pid_t> &chosen,
                                                          const GilAnchor *anchor,
                                                          PassCapture &out) {
  snapshot_.clearCaptures();
  live_.clearCache();
  AttachOptions attach;
  attach.onlyThreads = stop;
  attach.skipChecks = true;
  // A sampled thread stops within microseconds, unless it waits for the
  // CPU (a busy host): then it is waited for, rather than lost or left
  // stopped, up to kRunnableStopDeadline.
  attach.runnableStopDeadline = kRunnableStopDeadline;
  auto deadline = std::chrono::milliseconds(100);
  auto session = PtraceSession::startAttach(pid_, attach);
  if (!session) {
    out.attachError = llvm::toString(session.takeError());
    return StopResult::AttachFailed;
  }
  out.session = std::move(*session);
  auto finish = [&] {
    llvm::Error err = out.session->finishAttach(deadline);
    if (!err)
      return true;
    out.attachError = llvm::toString(std::move(err));
    return false;
  };
  if (!anchor) {
    if (!finish())
      return StopResult::AttachFailed;
    // The structures a capture reads mostly stay where they were (thread
    // states, the frames' stack chunk, the interpreter): fetch last pass's
    // pages in one system call, then read as usual from the cache.
    live_.prefetch(pythonPages_);
    capturePython(chosen, out, out.pages);
    copyNativeStacks(out, chosen);
    return StopResult::Captured;
  }
  out.anchored = true;
  UncachedReads uncached(live_);
  const python::Layout &l = interp_->layout;
  std::vector<pid_t> others;
  for (pid_t tid : chosen)
    if (tid != anchor->tid)
      others.push_back(tid);
  if (!others.empty()) {
    live_.prefetch(pythonPages_);
    capturePython(others, out, out.pages);
  }
  if (!finish())
    return StopResult::AttachFailed;
  // Stopped, and still the thread of that thread state: it cannot exit and
  // leave its address to a new thread state until we let it go.
  const auto &stopped = out.session->stoppedThreads();
  if (std::none_of(stopped.begin(), stopped.end(),
                   [&](const StoppedThread &t) { return t.tid == anchor->tid; }) ||
      python::threadStateTid(l, uncached, anchor->tstate,
                             python::CaptureLimits{}.pthreadTidOffset,
                             &facts_.tidMap) != anchor->tid)
    return StopResult::AnchorLost;
  if (others.size() < chosen.size()) {
    live_.clearCache();
    if (anchorPagesTid_ == anchor->tid)
      live_.prefetch(anchorPages_); // where its chain was last time
    capturePython({anchor->tid}, out, out.anchorPages);
    out.anchorTid = anchor->tid;
  }
  std::optional<python::GilHandover> after = python::readGilHandover(l, uncached, anchor->gil);
  if (!after || after->switches != anchor->before.switches ||
      after->lastHolder != anchor->before.lastHolder)
    return StopResult::AnchorLost;
  copyNativeStacks(out, chosen);
  return StopResult::Captured;
}

void ProcessSampler::delayForTests() const {
  if (options_.sleeperReadDelayUsForTests)
    std::this_thread::sleep_for(std::chrono::microseconds(options_.sleeperReadDelayUsForTests));
}

// The free-threaded pass (planSleeperReads): the sleepers' chains are read
// while the others are being stopped, then the stopped ones', then the
// sleepers are checked.
ProcessSampler::StopResult ProcessSampler::stopAwakeAndCapture(const Sleepers &sleepers,
                                                               const std::vector<pid_t> &chosen,
                                                               PassCapture &out) {
  std::vector<pid_t> awake;
  for (pid_t tid : chosen)
    if (std::find(sleepers.tids.begin(), sleepers.tids.end(), tid) == sleepers.tids.end())
      awake.push_back(tid);
  snapshot_.clearCaptures();
  live_.clearCache();
  out.anchored = true; // like an anchored pass: not every sampled thread stopped
  live_.prefetch(pythonPages_);
  if (awake.empty()) {
    delayForTests();
    capturePython(sleepers.tids, out, out.pages);
    return sleepersStillAsleep(sleepers) ? StopResult::Captured : StopResult::AnchorLost;
  }
  AttachOptions attach;
  attach.onlyThreads = awake;
  attach.skipChecks = true;
  attach.runnableStopDeadline = kRunnableStopDeadline;
  auto session = PtraceSession::startAttach(pid_, attach);
  if (!session) {
    out.attachError = llvm::toString(session.takeError());
    return StopResult::AttachFailed;
  }
  out.session = std::move(*session);
  delayForTests();
  capturePython(sleepers.tids, out, out.pages);
  if (llvm::Error err = out.session->finishAttach(std::chrono::milliseconds(100))) {
    out.attachError = llvm::toString(std::move(err));
    return StopResult::AttachFailed;
  }
  live_.clearCache();
  capturePython(awake, out, out.pages);
  if (!sleepersStillAsleep(sleepers))
    return StopResult::AnchorLost;
  copyNativeStacks(out, chosen);
  return StopResult::Captured;
}

// Lets the stopped threads go and accounts for the pause. False when the
// pause straddled an exec: its stacks mix two programs.
bool ProcessSampler::endPause(PassCapture &pass, SamplerStats &stats) {
  if (!pass.session)
    return true;
  pass.session->detach();
  if (pass.session->stoppedThreads().empty())
    return !pass.session->execSeen(); // nothing stopped: no pause to count
  uint64_t us = pass.session->pauseDuration().count();
  ++stats.pauses;
  stats.pauseTotalUs += us;
  stats.pauseMaxUs = std::max(stats.pauseMaxUs, us);
  stats.threadsStopped += pass.session->stoppedThreads().size();
  return !pass.session->execSeen();
}

// The pass straddled an exec: its stacks mix two programs. Dropped; the
// sampler starts over on the new one.
bool ProcessSampler::startOverAfterExec(SamplerStats &stats) {
  ++stats.failures["the process ran exec during the sample"];
  readProcess(true);
  return processAlive(pid_);
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
    facts_.tidMap.learn(pid_, tid);

  // Snapshot: nonblocking, read while everything runs. Otherwise stop the
  // GIL's last holder alone when that is enough (anchored), else every
  // sampled thread; copy what changes as they run; let them go.
  PassCapture pass;
  if (options_.nonblocking) {
    live_.clearCache();
    live_.prefetch(pythonPages_);
    capturePython(chosen, pass, pass.pages);
  } else {
    StopResult result;
    // Free-threaded builds without a GIL have no anchor: asking for the
    // sleepers first reads the GIL's state once per pass.
    std::optional<Sleepers> sleepers = planSleeperReads(chosen);
    std::optional<GilAnchor> anchor;
    if (!sleepers)
      anchor = planGilAnchor();
    if (sleepers || anchor) {
      result = sleepers ? stopAwakeAndCapture(*sleepers, chosen, pass)
                        : stopAndCapture(anchoredStops(*anchor, chosen), chosen, &*anchor, pass);
      if (result != StopResult::Captured) {
        // The GIL changed hands, the anchor could not be stopped, or a
        // sleeper woke during its read: stop them all instead.
        if (!endPause(pass, stats))
          return startOverAfterExec(stats);
        pass = PassCapture{};
        result = stopAndCapture(chosen, chosen, nullptr, pass);
      }
    } else {
      result = stopAndCapture(chosen, chosen, nullptr, pass);
    }
    if (result == StopResult::AttachFailed) {
      ++stats.failures[pass.attachError];
      return processAlive(pid_);
    }
    if (!endPause(pass, stats))
      return startOverAfterExec(stats);
  }
  live_.clearCache();
  // Next pass's prefetch: the pages read before the anchor's stop, and
  // those of the anchor's chain (read after it, once it stands still).
  pythonPages_ = sortedUnique(std::move(pass.pages));
  if (pass.anchorTid) {
    anchorPages_ = sortedUnique(std::move(pass.anchorPages));
    anchorPagesTid_ = pass.anchorTid;
  }
  for (const std::string &why : pass.pythonErrors)
    ++stats.failures[why];
  recordPass(profile, chosen, pass, timestampNs, weightNs, stats);
  return true;
}

ProcessSampler::ChainKey ProcessSampler::chainKeyOf(const python::CapturedThread &t) {
  ChainKey key;
  key.reserve(t.frames.size());
  for (const python::CapturedFrame &f : t.frames)
    key.push_back({f.codeAddr, f.lasti, f.instrPtr, f.owner, f.entry});
  return key;
}

// Whether a captured chain, whose key is `key`, is the one this thread's
// last Python-only sample was decoded from (the code objects are checked
// later, in recordPass).
bool ProcessSampler::sameChainAsLast(const python::CapturedThread &t, const ChainKey &key) const {
  if (options_.native || t.frames.empty())
    return false;
  for (const python::CapturedFrame &f : t.frames)
    if (f.error)
      return false;
  auto memo = lastChains_.find(t.osTid);
  return memo != lastChains_.end() && memo->second.key == key;
}

// A module that left a frame unnamed for lack of symbols is said once, in
// the summary (the symbolizer lists each once; only new ones are copied).
void ProcessSampler::noteModulesWithoutSymbols(SamplerStats &stats) {
  const std::vector<ModuleWithoutSymbols> &modules = symbolizer_->modulesWithoutSymbols();
  for (; notedModules_ < modules.size(); ++notedModules_)
    stats.notes.insert(missingSymbolsNote(modules[notedModules_]));
  // Why Python frames are missing (or what is unverified), once per image.
  if (!pythonNoted_)
    for (const std::string &e : process_.errors)
      if (llvm::StringRef(e).startswith("Python"))
        stats.notes.insert(e);
  pythonNoted_ = true;
}

// Decodes and records one pass, after the target runs again.
//
// A thread whose Python chain is the one of its last sample (the same code
// objects at the same positions, the code objects unchanged) gets that
// sample's stack again without decoding: an idle thread then costs a
// comparison instead of decoding and interning every frame.
void ProcessSampler::recordPass(Profile &profile, const std::vector<pid_t> &chosen,
                                PassCapture &pass, uint64_t timestampNs, uint64_t weightNs,
                                SamplerStats &stats) {
  struct Repeat {
    StackId stack;
    bool holdsGil;
  };
  std::map<pid_t, Repeat> repeats;
  std::map<pid_t, ChainKey> keys;
  std::map<pid_t, python::PythonThreadStack> pythonByTid;
  codes_.newPass(); // the target ran: cached code objects are checked again
  if (pass.captured) {
    python::CapturedPython fresh, stale;
    std::vector<python::CapturedThread> candidates;
    for (python::CapturedThread &t : pass.captured->threads) {
      bool repeatable = false;
      if (t.osTid && t.errors.empty()) {
        const ChainKey &key = keys[t.osTid] = chainKeyOf(t);
        repeatable = sameChainAsLast(t, key);
      }
      (repeatable ? candidates : fresh.threads).push_back(std::move(t));
    }
    auto decode = [&](const python::CapturedPython &threads) {
      if (threads.threads.empty())
        return;
      for (auto &s : python::resolve(*interp_, threads, live_, facts_.tidMap,
                                     needThreadNames(chosen), &codes_))
        if (s.tid)
          pythonByTid[s.tid] = std::move(s);
    };
    decode(fresh);
    // After that resolve, code objects it shared with the candidates are
    // already validated for this pass: checking them costs no read.
    for (python::CapturedThread &t : candidates) {
      bool codesSame = std::all_of(t.frames.begin(), t.frames.end(), [&](const auto &f) {
        return codes_.unchanged(interp_->layout, live_, f.codeAddr);
      });
      if (codesSame)
        repeats[t.osTid] = {lastChains_[t.osTid].stack, t.holdsGil};
      else
        stale.threads.push_back(std::move(t));
    }
    decode(stale);
  }
  std::map<pid_t, const StoppedThread *> stopped;
  if (pass.session)
    for (const StoppedThread &t : pass.session->stoppedThreads())
      stopped[t.tid] = &t;
  if (withoutPythonFrames_.size() > python::ThreadStateHints::kMaxWithoutPython)
    withoutPythonFrames_.clear();
  if (lastChains_.size() > python::ThreadStateHints::kMaxWithoutPython)
    lastChains_.clear();
  for (pid_t tid : chosen) {
    auto repeat = repeats.find(tid);
    auto py = pythonByTid.find(tid);
    bool hasPython =
        repeat != repeats.end() || (py != pythonByTid.end() && !py->second.frames.empty());
    if (hasPython)
      withoutPythonFrames_.erase(tid);
    else
      withoutPythonFrames_.insert(tid);
    auto st = stopped.find(tid);
    const StoppedThread *regs = st == stopped.end() ? nullptr : st->second;
    // A thread that was not stopped is shown only from its Python frames:
    // nonblocking, or an anchored pass (a thread that ran no Python code
    // there is stopped from the next pass on). In a full stop, a thread
    // missing from the stopped ones had gone.
    if (!regs && (!hasPython || (pass.session && !pass.anchored)))
      continue;
    if (repeat != repeats.end()) {
      if (!options_.gilOnly || repeat->second.holdsGil)
        addSample(profile, tid, repeat->second.stack, timestampNs, weightNs, stats);
      continue;
    }
    if (options_.gilOnly && !(py != pythonByTid.end() && py->second.holdsGil))
      continue;
    if (!facts_.threads.count(tid)) // a new thread: read its name once
      facts_.threads[tid] = readThreadFacts(pid_, tid);
    Thread thread = makeThread(pid_, tid, facts_);
    std::vector<Frame> native;
    bool withNative = regs && (!hasPython || options_.native);
    if (withNative) {
      if (!pass.stacksCopied.count(tid)) {
        // Its Python frames were all still being set up (hidden, as CPython
        // hides them) and its stack was not copied: nothing true to show.
        ++stats.dropped;
        continue;
      }
      native = nativeStack(*unwinder_, *symbolizer_, facts_.maps, regs->regs, thread.errors);
      noteModulesWithoutSymbols(stats);
    }
    if (py != pythonByTid.end())
      applyPython(thread, py->second, std::move(native), options_.native);
    else
      thread.frames = std::move(native);
    bool torn = std::any_of(thread.frames.begin(), thread.frames.end(),
                            [](const Frame &f) { return f.error.has_value(); });
    if (thread.frames.empty() || (options_.nonblocking && (torn || !thread.errors.empty()))) {
      ++stats.dropped;
      continue;
    }
    StackId stack = internStackOf(profile, thread);
    addSample(profile, tid, stack, timestampNs, weightNs, stats);
    // Remembered for the next pass: Python-only stacks decoded whole.
    auto key = keys.find(tid);
    if (!withNative && !torn && thread.errors.empty() && key != keys.end())
      lastChains_[tid] = {std::move(key->second), stack};
    else
      lastChains_.erase(tid);
  }
}

} // namespace stackpeek
