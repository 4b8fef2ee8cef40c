// ProcessTree: the /proc scan and the depth-first ordering of its result.
#include "process/ProcessTree.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "llvm/ADT/StringRef.h"

#include "process/ProcFs.h"

namespace stackpeek {

namespace {

std::map<pid_t, std::vector<pid_t>> childrenOf(const std::map<pid_t, pid_t> &parentOf) {
  std::map<pid_t, std::vector<pid_t>> children;
  for (const auto &[pid, ppid] : parentOf)
    if (pid != ppid) // pid 0 and broken maps: a process is not its own child
      children[ppid].push_back(pid); // map order: already sorted by pid
  return children;
}

pid_t parentIn(const std::map<pid_t, pid_t> &parentOf, pid_t pid) {
  auto it = parentOf.find(pid);
  return it == parentOf.end() ? 0 : it->second;
}

} // namespace

ProcessTree orderTree(const std::vector<pid_t> &roots,
                      const std::map<pid_t, pid_t> &parentOf, size_t limit) {
  ProcessTree tree;
  auto children = childrenOf(parentOf);
  std::set<pid_t> seen;
  // Explicit stack (no recursion, so depth costs no native stack): pushed in
  // reverse so the first child is visited first.
  std::vector<TreeNode> stack;
  for (auto it = roots.rbegin(); it != roots.rend(); ++it)
    stack.push_back({*it, parentIn(parentOf, *it), 0});
  while (!stack.empty()) {
    TreeNode node = stack.back();
    stack.pop_back();
    if (!seen.insert(node.pid).second)
      continue; // a cycle, or a pid listed both as root and as descendant
    if (tree.nodes.size() >= limit) {
      tree.truncated = true;
      break;
    }
    tree.nodes.push_back(node);
    auto kids = children.find(node.pid);
    if (kids == children.end())
      continue;
    for (auto it = kids->second.rbegin(); it != kids->second.rend(); ++it)
      if (!seen.count(*it))
        stack.push_back({*it, node.pid, node.depth + 1});
  }
  return tree;
}

std::map<pid_t, pid_t> readParentMap() {
  std::map<pid_t, pid_t> parentOf;
  DIR *dir = ::opendir("/proc");
  if (!dir)
    return parentOf;
  while (dirent *ent = ::readdir(dir)) {
    int pid = 0;
    if (llvm::StringRef(ent->d_name).getAsInteger(10, pid) || pid <= 0)
      continue;
    if (auto stat = readTaskStat(pid, pid)) // else exited since readdir
      parentOf[pid] = stat->ppid;
  }
  ::closedir(dir);
  return parentOf;
}

ProcessTree liveProcessTree(pid_t root, bool includeRoot, pid_t first, size_t limit) {
  std::map<pid_t, pid_t> parentOf = readParentMap();
  if (includeRoot)
    return orderTree({root}, parentOf, limit);
  std::vector<pid_t> roots;
  if (first && parentIn(parentOf, first) == root)
    roots.push_back(first);
  for (const auto &[pid, ppid] : parentOf)
    if (ppid == root && pid != first && pid != root)
      roots.push_back(pid);
  return orderTree(roots, parentOf, limit);
}

std::vector<pid_t> withDescendants(const std::vector<pid_t> &roots) {
  std::map<pid_t, pid_t> parentOf = readParentMap();
  // Cut stackpeek out of the tree: removing its ppid entry detaches it (and
  // whatever it runs) from whoever started it.
  const pid_t self = ::getpid();
  parentOf.erase(self);
  std::vector<pid_t> pids;
  std::set<pid_t> listed;
  for (pid_t root : roots) {
    if (root == self)
      continue;
    for (const TreeNode &node : orderTree({root}, parentOf).nodes)
      if (listed.insert(node.pid).second)
        pids.push_back(node.pid);
  }
  return pids;
}

} // namespace stackpeek
