// TidMap: see TidMap.h for why thread ids need mapping and where the
// kernel tells them.
#include "process/TidMap.h"

#include <limits>

#include "process/ProcFs.h"

namespace stackpeek {

namespace {
bool validTid(int64_t id) { return id > 0 && id <= std::numeric_limits<pid_t>::max(); }
} // namespace

TidMap::TidMap(std::initializer_list<pid_t> sameIds) {
  for (pid_t tid : sameIds)
    add(tid, tid);
}

TidMap TidMap::read(pid_t pid, const std::vector<pid_t> &tids) {
  TidMap map;
  // One status file tells whether the process shares our namespace; a
  // thread that cannot be read (gone already) tells nothing.
  for (pid_t tid : tids) {
    std::vector<pid_t> ids = namespaceTids(pid, tid);
    if (ids.empty())
      continue;
    map.ownNamespace_ = ids.size() > 1;
    break;
  }
  for (pid_t tid : tids)
    map.learn(pid, tid);
  return map;
}

void TidMap::learn(pid_t pid, pid_t tid) {
  if (known_.count(tid))
    return;
  if (!ownNamespace_) {
    add(tid, tid);
    return;
  }
  std::vector<pid_t> ids = namespaceTids(pid, tid);
  if (!ids.empty())
    add(tid, ids.back());
}

void TidMap::add(pid_t ours, pid_t own) {
  known_.insert(ours);
  // A thread's own id may have been another's, one that has exited since.
  oursByOwn_[own] = ours;
  ownNamespace_ = ownNamespace_ || own != ours;
}

bool TidMap::knows(int64_t own) const {
  return validTid(own) && oursByOwn_.count(pid_t(own));
}

std::optional<pid_t> TidMap::ours(int64_t own) const {
  if (!validTid(own))
    return std::nullopt;
  if (auto it = oursByOwn_.find(pid_t(own)); it != oursByOwn_.end())
    return it->second;
  if (ownNamespace_)
    return std::nullopt;
  return pid_t(own);
}

} // namespace stackpeek
