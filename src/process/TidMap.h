// TidMap: a process's thread ids as it knows them itself, and as we do.
//
// A process in a pid namespace of its own (a container; `unshare --pid`)
// numbers its threads in that namespace: its first thread is 1 there,
// whatever /proc and ptrace call it here. What the process records about
// its threads (CPython's native_thread_id, the tid in glibc's struct
// pthread) is in its own ids, so matching that with the threads we stop
// needs a mapping. The kernel gives it: the NSpid line of
// /proc/PID/task/TID/status lists the thread's id in every pid namespace
// it belongs to, from our /proc's namespace to its own (innermost) last;
// nested namespaces add entries between. Every thread of a process is in
// the same pid namespace, so a process whose first thread shows one id
// shares ours and needs no file read per thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace stackpeek {

class TidMap {
public:
  /// Nothing known: every id is taken as it is.
  TidMap() = default;
  /// Threads whose ids are the same to the process and to us.
  TidMap(std::initializer_list<pid_t> sameIds);

  /// The threads `tids` (ours, from /proc/PID/task) of process `pid`.
  static TidMap read(pid_t pid, const std::vector<pid_t> &tids);
  /// Adds thread `tid` of `pid` (one started since read()), unless known:
  /// a hash lookup, and one file read for a new thread in a namespace.
  void learn(pid_t pid, pid_t tid);
  /// Records one thread: `ours` as /proc names it, `own` as the process
  /// does; `own` != `ours` means the process has a namespace of its own.
  void add(pid_t ours, pid_t own);

  bool empty() const { return known_.empty(); }
  /// Whether the process numbers its threads in a pid namespace of its own.
  bool ownNamespace() const { return ownNamespace_; }
  /// Whether `own` is the process's id of a known thread.
  bool knows(int64_t own) const;
  /// Our id of the thread the process calls `own`. For a thread not known:
  /// `own` itself when the process shares our ids, else nullopt.
  std::optional<pid_t> ours(int64_t own) const;

private:
  std::unordered_map<pid_t, pid_t> oursByOwn_;
  std::unordered_set<pid_t> known_; // our ids of the threads added
  bool ownNamespace_ = false;
};

} // namespace stackpeek
