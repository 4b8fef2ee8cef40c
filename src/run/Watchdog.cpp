// Watchdog: the single-threaded supervision loop of `stackpeek run`.
//
// The loop sleeps in poll() on a signalfd; the poll timeout is the nearest
// deadline (timeout, next idle sample, next kill-phase check). Each wakeup
// drains the signals, reaps children, then acts on whichever deadline passed.
#include "run/Watchdog.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "process/Attach.h"
#include "process/ProcFs.h"
#include "process/ProcessTree.h"
#include "process/StrayLedger.h"
#include "run/Activity.h"
#include "run/ExitStatus.h"
#include "run/Spawn.h"
#include "run/TreeDump.h"

namespace stackpeek {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kSamplePeriod = 200ms;    // idle sampling (and its resolution)
constexpr auto kKillPoll = 50ms;         // how often the kill phase re-checks
constexpr auto kGiveUpAfterKill = 5s;    // SIGKILLed but still there: stop waiting
constexpr auto kDumpGrace = 500ms;       // our ptrace wakeups settle meanwhile
constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// Writes all of `text` to fd (stderr may be a pipe that takes it in pieces).
bool writeAll(int fd, const std::string &text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

void say(const std::string &line) { (void)writeAll(STDERR_FILENO, "stackpeek: " + line + "\n"); }

std::string plural(size_t n, const char *word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "es");
}

std::string seconds(Clock::duration d) {
  return formatDuration(std::chrono::duration_cast<Duration>(d));
}

// Where dumps go: stderr always, and --output (created, truncated, at the
// first dump, so the file exists only if a dump happened).
class DumpSink {
public:
  explicit DumpSink(std::string path) : path_(std::move(path)) {}
  ~DumpSink() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  void write(const std::string &toStderr, const std::string &toFile) {
    (void)writeAll(STDERR_FILENO, toStderr);
    if (path_.empty() || failed_)
      return;
    if (fd_ < 0)
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0 || !writeAll(fd_, toFile)) {
      failed_ = true;
      say("cannot write the dump to " + path_ + ": " + strerror(errno) +
          "; check --output (the dump is on stderr above)");
    }
  }

private:
  std::string path_;
  int fd_ = -1;
  bool failed_ = false;
};

class Watchdog {
public:
  explicit Watchdog(const RunOptions &options)
      : options_(options), sink_(options.outputPath),
        idle_(options.idleTimeout.value_or(Duration::zero())) {}
  ~Watchdog() {
    if (signalFd_ >= 0)
      ::close(signalFd_);
  }
  int run();

private:
  bool setUp(sigset_t &originalMask);
  void handleSignals();
  void onSignal(int sig, int code);
  void reap();
  void dumpTree(const std::string &why);
  void sampleIdle(Clock::time_point now);
  void startKill(Clock::time_point now);
  void signalTree(const ProcessTree &tree, int sig, std::set<pid_t> *onlyNew);
  bool killStep(Clock::time_point now);
  int pollTimeoutMs(Clock::time_point now) const;
  ProcessTree tree() const { return liveProcessTree(::getpid(), false, command_); }

  RunOptions options_;
  DumpSink sink_;
  IdleTracker idle_;
  int signalFd_ = -1;
  pid_t command_ = 0;
  bool ownGroup_ = false;
  std::optional<int> commandStatus_;
  bool commandLost_ = false; // reaped inside a dump: its status is gone
  Clock::time_point start_{}, nextSample_{};
  // Kill phase.
  bool killing_ = false;
  Clock::time_point killAt_{};
  bool sentKill_ = false;
  std::set<pid_t> termed_;
};

// Subreaper, blocked signals read through a signalfd. Returns false (after
// saying why) if the kernel refuses any of it.
bool Watchdog::setUp(sigset_t &originalMask) {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    say(std::string("cannot become a subreaper (prctl: ") + strerror(errno) +
        "); needs Linux 3.4 or later");
    return false;
  }
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : kForwarded)
    sigaddset(&mask, sig);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGCHLD);
  // Blocked, never read: a closed stderr must not kill the supervisor (and
  // SIG_IGN would be inherited by the command, so it is not an option).
  sigaddset(&mask, SIGPIPE);
  ::sigprocmask(SIG_BLOCK, &mask, &originalMask);
  sigdelset(&mask, SIGPIPE);
  signalFd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signalFd_ < 0) {
    say(std::string("cannot create a signalfd: ") + strerror(errno));
    return false;
  }
  return true;
}

void Watchdog::handleSignals() {
  signalfd_siginfo info;
  while (::read(signalFd_, &info, sizeof info) == sizeof info)
    onSignal(static_cast<int>(info.ssi_signo), info.ssi_code);
}

void Watchdog::onSignal(int sig, int code) {
  if (sig == SIGCHLD)
    return reap();
  if (sig == SIGUSR1) {
    dumpTree("SIGUSR1 received after " + seconds(Clock::now() - start_) +
             " (the command keeps running)");
    return;
  }
  if (killing_) { // asked again while killing: do not wait any longer
    killAt_ = Clock::now();
    return;
  }
  // A terminal sends its signals to the whole foreground group, which then
  // includes the command: it already has this one.
  if (!ownGroup_ && code == SI_KERNEL)
    return;
  ::kill(ownGroup_ ? -command_ : command_, sig);
}

// Reaps every exited child: the command (keeping its status) and orphans
// that were re-parented to us.
void Watchdog::reap() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
    if (pid == command_ && !WIFSTOPPED(status)) // a stop is a stray of ours, not an exit
      commandStatus_ = status;
}

void Watchdog::dumpTree(const std::string &why) {
  ProcessTree live = tree();
  say(why + "; stacks of " + plural(live.nodes.size(), "process") + " follow");
  TreeDumpResult dump = stackpeek::dumpTree(live, options_.dump);
  std::string text = renderTreeDump(dump, options_.json, options_.dump.native);
  std::string banner = "stackpeek: " + why + "\n";
  sink_.write(text, options_.json ? text : banner + text + "\n");
  idle_.ignoreUntil(Clock::now() + kDumpGrace);
  // A dump waits on the threads it stops; if the command exited during it,
  // that wait may have reaped it, and its status is gone.
  if (!commandStatus_ && ::kill(command_, 0) != 0 && errno == ESRCH)
    commandLost_ = true;
}

void Watchdog::sampleIdle(Clock::time_point now) {
  nextSample_ = now + kSamplePeriod;
  std::vector<pid_t> pids;
  for (const TreeNode &node : tree().nodes)
    pids.push_back(node.pid);
  if (!idle_.observe(sampleActivity(pids), now))
    return;
  dumpTree("the process tree has used no CPU for " + seconds(idle_.idleFor(now)) +
           " (--idle-timeout), which looks like a deadlock");
  if (options_.killOnIdle)
    startKill(Clock::now());
}

void Watchdog::signalTree(const ProcessTree &tree, int sig, std::set<pid_t> *onlyNew) {
  for (const TreeNode &node : tree.nodes) {
    if (onlyNew && !onlyNew->insert(node.pid).second)
      continue;
    ::kill(node.pid, sig);
    if (sig == SIGTERM)
      ::kill(node.pid, SIGCONT); // a stopped process acts on SIGTERM only once continued
  }
}

void Watchdog::startKill(Clock::time_point now) {
  killing_ = true;
  killAt_ = now + options_.killAfter;
  ProcessTree live = tree();
  say("sending SIGTERM to " + plural(live.nodes.size(), "process") + "; SIGKILL follows in " +
      formatDuration(options_.killAfter) + " (--kill-after)");
  signalTree(live, SIGTERM, &termed_);
}

// One check of the kill phase; true once the tree is gone (or we give up).
bool Watchdog::killStep(Clock::time_point now) {
  ProcessTree live = tree();
  if (live.nodes.empty())
    return true;
  if (now < killAt_) {
    signalTree(live, SIGTERM, &termed_); // processes forked since
    return false;
  }
  if (!sentKill_)
    say("sending SIGKILL to " + plural(live.nodes.size(), "process") +
        " still running after SIGTERM");
  sentKill_ = true;
  signalTree(live, SIGKILL, nullptr);
  if (now < killAt_ + kGiveUpAfterKill)
    return false;
  std::string left;
  for (const TreeNode &node : live.nodes)
    left += " " + std::to_string(node.pid) + " (" + commandLine(node.pid) + ")";
  say("giving up: still present " + seconds(kGiveUpAfterKill) +
      " after SIGKILL (stuck in the kernel?):" + left);
  return true;
}

int Watchdog::pollTimeoutMs(Clock::time_point now) const {
  Clock::time_point next = Clock::time_point::max();
  if (killing_) {
    next = now + kKillPoll;
  } else {
    if (options_.timeout)
      next = std::min(next, start_ + *options_.timeout);
    if (options_.idleTimeout)
      next = std::min(next, nextSample_);
  }
  if (next == Clock::time_point::max())
    return -1;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1 << 30));
}

int Watchdog::run() {
  sigset_t originalMask;
  if (!setUp(originalMask))
    return kRunFailed;
  ownGroup_ = !inTerminalForeground();
  auto spawned = spawnCommand(options_.command, originalMask, ownGroup_);
  if (!spawned) {
    say(llvm::toString(spawned.takeError()));
    return kRunFailed;
  }
  if (spawned->execError) {
    say("cannot run '" + options_.command.front() + "': " + strerror(spawned->execError) +
        "; check the command name, PATH and permissions");
    return exitCodeForExecError(spawned->execError);
  }
  command_ = spawned->pid;
  start_ = nextSample_ = Clock::now();
  for (;;) {
    pollfd pfd{signalFd_, POLLIN, 0};
    int rc = ::poll(&pfd, 1, pollTimeoutMs(Clock::now()));
    if (rc < 0 && errno != EINTR) {
      say(std::string("poll failed: ") + strerror(errno));
      startKill(Clock::now());
    }
    handleSignals();
    reap(); // SIGCHLD is coalesced; reaping on every wakeup loses nothing
    releaseStrayTracees(); // threads a dump left still stopping (StrayLedger.h)
    Clock::time_point now = Clock::now();
    if (killing_) {
      if (killStep(now))
        return kRunTimedOut;
      continue;
    }
    if (commandStatus_)
      return exitCodeForWaitStatus(*commandStatus_);
    if (commandLost_) {
      say("the command exited while its stack was being dumped; its exit status is lost");
      return kRunFailed;
    }
    if (options_.timeout && now >= start_ + *options_.timeout) {
      dumpTree("the command is still running after " + formatDuration(*options_.timeout) +
               " (--timeout)");
      startKill(Clock::now());
    } else if (options_.idleTimeout && now >= nextSample_) {
      sampleIdle(now);
    }
  }
}

} // namespace

int runWatched(const RunOptions &options) {
  if (options.command.empty()) {
    say("no command given; usage: stackpeek run [OPTIONS] -- COMMAND [ARGS...]");
    return kRunFailed;
  }
  Watchdog watchdog(options);
  return watchdog.run();
}

} // namespace stackpeek
