#include "process/StrayLedger.h"

#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <vector>

#include "process/ExecWatchdog.h"
#include "process/HeldThreads.h"
#include "process/ProcFs.h"
#include "process/StopEffects.h"

namespace stackpeek {

namespace {

struct Stray {
  pid_t pid, tid;
};
std::vector<Stray> gStrays; // main flow only

// The real parent of a traced leader reaps its exit itself (`run` waits for
// its command): a tracer that is also the parent must leave that status.
bool isOurChild(pid_t pid) {
  auto stat = readTaskStat(pid, pid);
  if (!stat)
    return false;
  return stat->ppid == getpid();
}

// True once the stray is no longer ours: detached, or gone.
bool releaseStray(const Stray &s) {
  siginfo_t info{};
  if (ptrace(PTRACE_GETSIGINFO, s.tid, nullptr, &info) == 0) {
    detachStoppedStray(s.tid, info);
    return true;
  }
  siginfo_t exited{};
  int flags = WEXITED | WNOHANG | WNOWAIT | __WALL;
  if (waitid(P_PID, s.tid, &exited, flags) != 0)
    return errno == ECHILD; // not our tracee any more
  if (exited.si_pid != s.tid)
    return false; // still running towards its stop
  if (s.tid != s.pid || !isOurChild(s.pid)) {
    int status = 0;
    waitpid(s.tid, &status, __WALL | WNOHANG);
  }
  return true;
}

} // namespace

bool isStray(pid_t tid) {
  return std::any_of(gStrays.begin(), gStrays.end(), [tid](const Stray &s) { return s.tid == tid; });
}

void forgetStray(pid_t tid) {
  gStrays.erase(std::remove_if(gStrays.begin(), gStrays.end(),
                               [tid](const Stray &s) { return s.tid == tid; }),
                gStrays.end());
}

void addStray(pid_t pid, pid_t tid) { gStrays.push_back({pid, tid}); }

void addStraysToReapable() {
  for (const Stray &s : gStrays)
    if (s.tid != s.pid)
      addReapable(s.tid);
}

void releaseStrayTracees() {
  for (auto it = gStrays.begin(); it != gStrays.end();) {
    if (!releaseStray(*it)) {
      ++it;
      continue;
    }
    unregisterHeld(it->tid);
    it = gStrays.erase(it);
  }
}

} // namespace stackpeek
