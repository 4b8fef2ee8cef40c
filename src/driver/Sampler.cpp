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
  if (options.nonblocking && !s->interp_)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "--nonblocking reads Python stacks only, and pid %d "
                                   "is not a Python process that stackpeek can read",
                                   pid);
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
  }
  codes_ = python::CodeCache(/*persistent=*/true);
  tstateHints_ = python::ThreadStateHints{};
  pythonPages_.clear();
  pythonSeen_ = false;
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

// The threads resolve() may map Python threads to: those known at start
// and those sampled now (new ones are named in facts_ only afterwards).
std::vector<pid_t> ProcessSampler::knownTids(const std::vector<pid_t> &chosen) const {
  std::vector<pid_t> tids = facts_.tids();
  tids.insert(tids.end(), chosen.begin(), chosen.end());
  return tids;
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

void ProcessSampler::record(Profile &profile, const Thread &thread, uint64_t timestampNs,
                            uint64_t weightNs) {
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
  ProfileSample sample;
  sample.timestampNs = timestampNs;
  sample.pid = pid_;
  sample.tid = thread.tid;
  sample.stack = profile.internStack(stack);
  sample.weightNs = weightNs;
  profile.samples.push_back(sample);
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

  // Snapshot: stop only the chosen threads (unless nonblocking), copy what
  // changes as they run, let them go.
  std::unique_ptr<PtraceSession> session;
  snapshot_.clearCaptures();
  live_.clearCache();
  if (!options_.nonblocking) {
    AttachOptions attach;
    attach.onlyThreads = chosen;
    attach.skipChecks = true;
    attach.stopDeadline = std::chrono::milliseconds(100);
    auto s = PtraceSession::attach(pid_, attach);
    if (!s) {
      ++stats.failures[llvm::toString(s.takeError())];
      return processAlive(pid_);
    }
    session = std::move(*s);
  }
  std::optional<python::CapturedPython> captured;
  if (interp_) {
    python::CaptureLimits limits;
    limits.onlyTids = chosen; // only the sampled threads' chains, for a short pause
    limits.hints = &tstateHints_;
    limits.threadStatus = options_.gilOnly;
    // The structures a capture reads mostly stay where they were (thread
    // states, the frames' stack chunk, the interpreter): fetch last pass's
    // pages in one system call, then read as usual from the cache.
    live_.prefetch(pythonPages_);
    live_.trackPages();
    auto c = python::capture(*interp_, live_, limits);
    pythonPages_ = live_.takeTouchedPages();
    if (c && std::any_of(c->threads.begin(), c->threads.end(),
                         [](const python::CapturedThread &t) { return !t.frames.empty(); }))
      pythonSeen_ = true;
    if (c)
      captured = std::move(*c);
    else
      ++stats.failures["Python: " + llvm::toString(c.takeError())];
  }
  std::set<pid_t> stacksCopied;
  if (session) {
    // A native stack is copied where it will be shown: with --native, or
    // for a thread running no Python code. Copying only those keeps the
    // pause of a Python-only profile to the Python frame chain.
    std::vector<StoppedThread> copy;
    for (const StoppedThread &t : session->stoppedThreads())
      if (options_.native || !capturedPythonFrames(captured, t.tid)) {
        copy.push_back(t);
        stacksCopied.insert(t.tid);
      }
    std::vector<std::string> notes;
    captureStacks(copy, pid_, facts_.maps, live_, snapshot_, notes);
  }
  if (session) {
    session->detach();
    uint64_t us = session->pauseDuration().count();
    ++stats.pauses;
    stats.pauseTotalUs += us;
    stats.pauseMaxUs = std::max(stats.pauseMaxUs, us);
    if (session->execSeen()) {
      // The pass straddled an exec: its stacks mix two programs. Drop it
      // and start over on the new one.
      ++stats.failures["the process ran exec during the sample"];
      readProcess(true);
      return processAlive(pid_);
    }
  }
  live_.clearCache();

  // Decode and record, after the target runs again.
  std::map<pid_t, python::PythonThreadStack> pythonByTid;
  if (captured)
    for (auto &s : python::resolve(*interp_, *captured, live_, knownTids(chosen),
                                   needThreadNames(chosen), &codes_))
      if (s.tid)
        pythonByTid[s.tid] = std::move(s);
  std::vector<StoppedThread> fromPythonOnly;
  const std::vector<StoppedThread> &threads =
      session ? session->stoppedThreads() : fromPythonOnly;
  if (!session)
    for (pid_t tid : chosen)
      fromPythonOnly.push_back({tid, {}, 0});
  for (const StoppedThread &stopped : threads) {
    if (!facts_.threads.count(stopped.tid)) // a new thread: read its name once
      facts_.threads[stopped.tid] = readThreadFacts(pid_, stopped.tid);
    Thread thread = makeThread(pid_, stopped.tid, facts_);
    auto py = pythonByTid.find(stopped.tid);
    bool hasPython = py != pythonByTid.end() && !py->second.frames.empty();
    if (options_.gilOnly && !(py != pythonByTid.end() && py->second.holdsGil))
      continue;
    if (!session && !hasPython)
      continue; // nonblocking: threads without Python frames cannot be read
    std::vector<Frame> native;
    if (session && (!hasPython || options_.native)) {
      if (!stacksCopied.count(stopped.tid)) {
        // Its Python frames were all still being set up (hidden, as CPython
        // hides them) and its stack was not copied: nothing true to show.
        ++stats.dropped;
        continue;
      }
      native = nativeStack(*unwinder_, *symbolizer_, facts_.maps, stopped.regs, thread.errors);
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
    record(profile, thread, timestampNs, weightNs);
    ++stats.samples;
  }
  return true;
}

} // namespace stackpeek
