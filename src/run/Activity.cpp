// Activity: reading the per-thread counters, and the idle-episode rules.
#include "run/Activity.h"

#include <algorithm>

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include "process/ProcFs.h"

namespace stackpeek {

namespace {

std::string taskFile(pid_t pid, pid_t tid, const char *name) {
  return "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/" + name;
}

// "runtime_ns wait_ns timeslices\n"
bool readSchedstat(pid_t pid, pid_t tid, ThreadActivity &out) {
  auto text = readSmallFile(taskFile(pid, tid, "schedstat"), 256);
  if (!text) {
    llvm::consumeError(text.takeError());
    return false;
  }
  llvm::SmallVector<llvm::StringRef, 3> fields;
  llvm::StringRef(*text).trim().split(fields, ' ', 2, false);
  return fields.size() == 3 && !fields[0].getAsInteger(10, out.cpuTime) &&
         !fields[2].getAsInteger(10, out.switches);
}

uint64_t statusCounter(llvm::StringRef status, llvm::StringRef key) {
  size_t at = status.find(key);
  uint64_t value = 0;
  if (at != llvm::StringRef::npos)
    (void)status.drop_front(at + key.size()).ltrim().consumeInteger(10, value);
  return value;
}

// Fallback: utime+stime ticks (stat fields 14, 15) and context switches.
void readStatCounters(pid_t pid, pid_t tid, ThreadActivity &out) {
  if (auto stat = readSmallFile(taskFile(pid, tid, "stat"), 4096)) {
    llvm::StringRef text(*stat);
    llvm::SmallVector<llvm::StringRef, 16> fields;
    text.drop_front(std::min(text.size(), text.rfind(')') + 2))
        .split(fields, ' ', 14, false);
    uint64_t utime = 0, stime = 0;
    if (fields.size() > 12 && !fields[11].getAsInteger(10, utime) &&
        !fields[12].getAsInteger(10, stime))
      out.cpuTime = utime + stime;
  } else {
    llvm::consumeError(stat.takeError());
  }
  if (auto status = readSmallFile(taskFile(pid, tid, "status"), 64 << 10)) {
    out.switches = statusCounter(*status, "\nvoluntary_ctxt_switches:") +
                   statusCounter(*status, "\nnonvoluntary_ctxt_switches:");
  } else {
    llvm::consumeError(status.takeError());
  }
}

bool stoppedByJobControl(pid_t pid) {
  auto stat = readTaskStat(pid, pid);
  if (!stat)
    return false;
  return stat->state == 'T';
}

} // namespace

ActivitySample sampleActivity(const std::vector<pid_t> &pids) {
  ActivitySample sample;
  sample.allStopped = !pids.empty();
  for (pid_t pid : pids) {
    sample.allStopped = sample.allStopped && stoppedByJobControl(pid);
    auto tids = listThreads(pid);
    if (!tids) {
      llvm::consumeError(tids.takeError()); // exited: absent from the sample
      continue;
    }
    for (pid_t tid : *tids) {
      ThreadActivity t;
      t.tid = tid;
      if (!readSchedstat(pid, tid, t))
        readStatCounters(pid, tid, t);
      sample.threads.push_back(t);
    }
  }
  std::sort(sample.threads.begin(), sample.threads.end(),
            [](const ThreadActivity &a, const ThreadActivity &b) { return a.tid < b.tid; });
  return sample;
}

bool IdleTracker::observe(const ActivitySample &sample, Clock::time_point now) {
  bool first = !last_;
  bool changed = first || !(sample == *last_);
  last_ = sample;
  if (first) {
    lastChange_ = now;
    return false;
  }
  if (now < ignoreUntil_)
    return false; // re-baseline after our own dump; the idle clock runs on
  if (sample.allStopped) {
    lastChange_ = now; // paused on purpose (Ctrl-Z), not deadlocked
    return false;
  }
  if (changed) {
    lastChange_ = now;
    reported_ = false;
    return false;
  }
  if (reported_ || now - lastChange_ < timeout_)
    return false;
  reported_ = true;
  return true;
}

IdleTracker::Clock::duration IdleTracker::idleFor(Clock::time_point now) const {
  return last_ ? now - lastChange_ : Clock::duration::zero();
}

} // namespace stackpeek
