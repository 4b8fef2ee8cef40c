#include "driver/ThreadActivity.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "process/ProcFs.h"

namespace stackpeek {

namespace {
bool isGone(char state) { return state == 'Z' || state == 'X' || state == '?'; }
} // namespace

ThreadActivity::~ThreadActivity() {
  while (!watches_.empty())
    forget(watches_.begin());
}

int ThreadActivity::openTaskFile(pid_t pid, pid_t tid, const char *name) {
  std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/" + name;
  return ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
}

void ThreadActivity::forget(std::map<pid_t, Watch>::iterator it) {
  if (it->second.statFd >= 0)
    ::close(it->second.statFd);
  if (it->second.schedstatFd >= 0)
    ::close(it->second.schedstatFd);
  watches_.erase(it);
}

namespace {
void closeFd(int &fd) {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}
} // namespace

// The state letter, from a stat file kept open while the thread is hot
// (pread regenerates it). A failed read closes the file: the tid may have
// been reused by a new thread since, whose file must be opened afresh.
char ThreadActivity::state(pid_t tid) {
  auto it = watches_.find(tid);
  if (it == watches_.end())
    it = watches_.emplace(tid, Watch{}).first;
  Watch &w = it->second;
  if (w.statFd < 0 && (w.statFd = openTaskFile(pid_, tid, "stat")) < 0)
    return '?';
  char buf[512];
  ssize_t n = ::pread(w.statFd, buf, sizeof buf - 1, 0);
  if (n <= 0) {
    closeFd(w.statFd);
    return '?';
  }
  buf[n] = 0;
  const char *close = std::strrchr(buf, ')');
  return close && close[1] == ' ' ? close[2] : '?';
}

std::optional<uint64_t> ThreadActivity::cpuTimeNs(pid_t tid) {
  auto it = watches_.find(tid);
  if (it == watches_.end())
    it = watches_.emplace(tid, Watch{}).first;
  uint64_t ns = 0;
  if (!readRuntime(tid, it->second, ns))
    return std::nullopt;
  return ns;
}

// se.sum_exec_runtime, the first field of schedstat. False when it cannot
// be read (no CONFIG_SCHED_INFO, a vanished thread, no fd left): the caller
// then falls back to the thread's state.
bool ThreadActivity::readRuntime(pid_t tid, Watch &w, uint64_t &runtimeNs) {
  if (w.schedstatFd < 0 && (w.schedstatFd = openTaskFile(pid_, tid, "schedstat")) < 0)
    return false;
  char buf[128];
  ssize_t n = ::pread(w.schedstatFd, buf, sizeof buf - 1, 0);
  if (n <= 0) {
    closeFd(w.schedstatFd);
    return false;
  }
  buf[n] = 0;
  char *end = nullptr;
  runtimeNs = std::strtoull(buf, &end, 10);
  return end != buf;
}

// Re-reads /proc/PID/task: new threads start hot, vanished ones are dropped.
// False once the process is gone (no task directory, or a dead leader).
bool ThreadActivity::relist(Clock::time_point now) {
  lastListed_ = now;
  listedOnce_ = true;
  auto tids = listThreads(pid_);
  if (!tids) {
    // Out of file descriptors is not the end of the process.
    std::error_code ec = llvm::errorToErrorCode(tids.takeError());
    return ec == std::errc::too_many_files_open ||
           ec == std::errc::too_many_files_open_in_system;
  }
  std::sort(tids->begin(), tids->end());
  for (auto it = watches_.begin(); it != watches_.end();)
    if (!std::binary_search(tids->begin(), tids->end(), it->first))
      forget(it++);
    else
      ++it;
  // A new thread starts hot (its state is read at once); cold threads get
  // their checks spread over kColdEvery by tid, not all in one tick.
  for (pid_t tid : *tids)
    if (watches_.emplace(tid, Watch{}).second)
      watches_[tid].lastActive = now;
  char leader = state(pid_);
  return leader != 'Z' && leader != 'X';
}

std::vector<pid_t> ThreadActivity::poll(bool includeIdle, bool &alive, Clock::time_point now) {
  std::vector<pid_t> chosen;
  if (!listedOnce_ || now - lastListed_ >= kRelistEvery)
    if (!relist(now)) {
      alive = false;
      return chosen;
    }
  for (auto &[tid, w] : watches_) {
    if (includeIdle) {
      // Every live thread is wanted; its state only tells a dead one, so
      // it is re-read every kColdEvery rather than every tick.
      if (now - w.lastChecked >= kColdEvery || !w.knownState) {
        w.knownState = state(tid);
        w.lastChecked = now;
      }
      if (!isGone(w.knownState))
        chosen.push_back(tid);
      continue;
    }
    if (!w.hot) {
      if (now - w.lastChecked < kColdEvery)
        continue;
      w.lastChecked = now;
      uint64_t runtime = 0;
      bool known = readRuntime(tid, w, runtime);
      if (known && runtime == w.runtimeNs)
        continue;
      // It ran (or its CPU time cannot be read: then only its state tells).
      w.runtimeNs = runtime;
      w.hot = true;
      w.lastActive = now;
    }
    if (state(tid) == 'R') {
      w.lastActive = now;
      chosen.push_back(tid);
    } else if (now - w.lastActive >= kHotFor && readRuntime(tid, w, w.runtimeNs)) {
      // Turning cold: its CPU time from now on is what tells it woke up,
      // and its stat file is closed (one open file per idle thread).
      w.hot = false;
      w.lastChecked = now - std::chrono::milliseconds(tid % kColdEvery.count());
      closeFd(w.statFd);
    }
  }
  return chosen;
}

std::vector<pid_t> ThreadActivity::threads() const {
  std::vector<pid_t> tids;
  for (const auto &[tid, w] : watches_)
    tids.push_back(tid);
  return tids;
}

} // namespace stackpeek
