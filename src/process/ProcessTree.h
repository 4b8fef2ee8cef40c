// ProcessTree: a process and all its descendants, parents before children.
//
// Linux has no "descendants of P" call. /proc/PID/task/TID/children exists
// only with CONFIG_PROC_CHILDREN (often off, e.g. in Firecracker guests), so
// the tree is rebuilt from the ppid field of every /proc/PID/stat. That scan
// is not atomic: a process may exit or fork while it runs, and a recycled pid
// could in theory make a parent map point in a circle. Ordering therefore
// tolerates missing parents, never visits a pid twice (cycle-safe), and stops
// at a fixed number of processes (bounded), so a fork bomb cannot make a dump
// run forever.
//
// Siblings are ordered by pid, except that callers may list the roots
// themselves (stackpeek run puts the command before orphans it adopted).
#pragma once

#include <sys/types.h>

#include <map>
#include <vector>

namespace stackpeek {

struct TreeNode {
  pid_t pid = 0;
  pid_t ppid = 0;  // 0 when unknown
  unsigned depth = 0; // 0 for a root
};

struct ProcessTree {
  std::vector<TreeNode> nodes; // preorder: every parent before its children
  bool truncated = false;      // the limit was reached; some were left out
};

constexpr size_t kMaxTreeProcesses = 512;

/// Orders `roots` and their descendants (from a pid -> ppid map) depth first.
/// Roots are kept in the given order and included even if absent from the
/// map; a pid reachable twice is listed once.
ProcessTree orderTree(const std::vector<pid_t> &roots,
                      const std::map<pid_t, pid_t> &parentOf,
                      size_t limit = kMaxTreeProcesses);

/// pid -> ppid of every process in /proc, read now.
std::map<pid_t, pid_t> readParentMap();

/// The live tree under `root`. With includeRoot false, the roots are the
/// children of `root` (in pid order, `first` before the others if given).
ProcessTree liveProcessTree(pid_t root, bool includeRoot, pid_t first = 0,
                            size_t limit = kMaxTreeProcesses);

/// Each pid of `roots` followed by its descendants, in tree order, without
/// duplicates and without stackpeek itself (a process cannot ptrace itself;
/// this matters when a process asks stackpeek to dump its own tree).
std::vector<pid_t> withDescendants(const std::vector<pid_t> &roots);

} // namespace stackpeek
