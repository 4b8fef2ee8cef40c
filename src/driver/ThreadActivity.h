// ThreadActivity: which threads of a process are on a CPU right now, asked
// up to a thousand times a second.
//
// The sampler stops only running threads, so it must know each tick which
// those are. The kernel says so in /proc/PID/task/TID/stat (state 'R'), but
// generating that file costs about 4 us, and a server with 200 threads
// would make that 0.8 ms a tick, most of a core at 1000 Hz, taken from a
// busy target on a small machine. /proc/PID/task/TID/schedstat costs a third
// of that and carries the thread's total CPU time (se.sum_exec_runtime).
//
// So threads are hot or cold. A hot thread (seen running, or its CPU time
// moving, within the last kHotFor) has its state read every tick. A cold
// thread has only its CPU time read, every kColdEvery; when that moved, it
// turns hot. The price, documented in the README: a thread asleep for a
// while that wakes for a burst is seen within kColdEvery plus the kernel's
// accounting delay (the CPU time of a running thread is brought up to date
// at its next scheduler tick, 4 ms at HZ=250), so a burst that short after
// a long sleep can be missed. Threads are re-listed every kRelistEvery (a
// listing of 200 threads costs as much as reading 100 stat files), so a
// new thread is seen within that.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace stackpeek {

class ThreadActivity {
public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kHotFor{100};
  static constexpr std::chrono::milliseconds kColdEvery{20};
  static constexpr std::chrono::milliseconds kRelistEvery{100};

  explicit ThreadActivity(pid_t pid) : pid_(pid) {}
  ~ThreadActivity();
  ThreadActivity(const ThreadActivity &) = delete;
  ThreadActivity &operator=(const ThreadActivity &) = delete;

  /// The threads to sample now: running ones, or with `includeIdle` every
  /// live one. `alive` turns false once the process is gone.
  std::vector<pid_t> poll(bool includeIdle, bool &alive, Clock::time_point now = Clock::now());

  /// The state letter from /proc/PID/task/TID/stat ('?' when unreadable).
  char state(pid_t tid);

  /// The thread's CPU time so far (se.sum_exec_runtime), read now; nullopt
  /// when unreadable.
  std::optional<uint64_t> cpuTimeNs(pid_t tid);

  /// Every thread seen at the last listing.
  std::vector<pid_t> threads() const;

private:
  struct Watch {
    int statFd = -1, schedstatFd = -1;
    uint64_t runtimeNs = 0;
    bool hot = true; // new threads start hot: their state is read at once
    char knownState = 0; // with includeIdle: the state last read
    Clock::time_point lastActive, lastChecked;
  };
  bool relist(Clock::time_point now);
  static int openTaskFile(pid_t pid, pid_t tid, const char *name);
  bool readRuntime(pid_t tid, Watch &w, uint64_t &runtimeNs);
  void forget(std::map<pid_t, Watch>::iterator it);

  pid_t pid_;
  std::map<pid_t, Watch> watches_;
  Clock::time_point lastListed_{};
  bool listedOnce_ = false;
};

} // namespace stackpeek
