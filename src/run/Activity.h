// Activity: "has this process tree done anything lately?", for --idle-timeout.
//
// A deadlock's signature is a tree in which no thread runs at all: every
// thread sleeps in a wait that nobody will end. The obvious measure, utime +
// stime from /proc/PID/stat, is too coarse for that: it is reported in clock
// ticks (10 ms), so a process that wakes every 100 ms, does 50 us of work and
// sleeps again gains one tick every 20 s and looks dead for long stretches.
// We therefore sample each thread's /proc/PID/task/TID/schedstat, which gives
// the exact on-CPU time in nanoseconds and the number of times the thread was
// scheduled in: any wakeup at all, however short, changes it. Where schedstat
// is missing (kernels without CONFIG_SCHED_INFO) we fall back to utime+stime
// plus the thread's voluntary and involuntary context-switch counts from its
// status file, which also count every wakeup.
//
// The rule is then strict: the tree is idle when two samples are identical
// (same threads, same counters); any change, including a thread or process
// appearing or going away, is activity. So a tree that polls, sleeps in short
// intervals or has a housekeeping thread with a timer is never "idle", even if
// it is stuck in a loop of timed waits; --timeout catches those. The strict
// rule was chosen because killing a job that still makes progress is worse
// than noticing a deadlock later.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace stackpeek {

struct ThreadActivity {
  pid_t tid = 0;
  uint64_t cpuTime = 0;  // ns from schedstat, or utime+stime ticks
  uint64_t switches = 0; // times scheduled in, or context switches
  bool operator==(const ThreadActivity &) const = default;
};

struct ActivitySample {
  std::vector<ThreadActivity> threads; // sorted by tid
  bool allStopped = false; // every process stopped by job control (Ctrl-Z)
  bool operator==(const ActivitySample &o) const { return threads == o.threads; }
};

/// Reads the counters of every thread of `pids` now.
ActivitySample sampleActivity(const std::vector<pid_t> &pids);

/// Decides when a sequence of samples amounts to "idle for the timeout".
/// Pure logic (times are passed in) so the rules are unit-tested.
class IdleTracker {
public:
  using Clock = std::chrono::steady_clock;
  explicit IdleTracker(Clock::duration timeout) : timeout_(timeout) {}

  /// Feeds a sample. Returns true once per idle episode: when the samples
  /// have not changed for `timeout`. Activity ends the episode.
  bool observe(const ActivitySample &sample, Clock::time_point now);

  /// Our own dump wakes every thread (ptrace stops it): samples taken until
  /// `until` only re-baseline, they neither count as activity nor as idle.
  void ignoreUntil(Clock::time_point until) { ignoreUntil_ = until; }

  /// How long the tree has been unchanged as of `now` (0 without samples).
  Clock::duration idleFor(Clock::time_point now) const;

private:
  Clock::duration timeout_;
  std::optional<ActivitySample> last_;
  Clock::time_point lastChange_{};
  Clock::time_point ignoreUntil_{};
  bool reported_ = false;
};

} // namespace stackpeek
