// Unit tests of run/ProcessTree: preorder (parents before children), sibling
// order, and the properties a racy /proc scan needs (cycles, missing
// parents, a bound on the size).
#include <gtest/gtest.h>

#include <unistd.h>
#include <sys/wait.h>

#include "process/ProcessTree.h"

using namespace stackpeek;

namespace {

std::vector<pid_t> pidsOf(const ProcessTree &tree) {
  std::vector<pid_t> pids;
  for (const TreeNode &n : tree.nodes)
    pids.push_back(n.pid);
  return pids;
}

} // namespace

TEST(RunProcessTree, PreorderParentsBeforeChildren) {
  //   10 -> 30 -> 31
  //      -> 20 -> 21, 22
  std::map<pid_t, pid_t> parentOf = {{10, 1}, {20, 10}, {30, 10}, {21, 20},
                                     {22, 20}, {31, 30}, {99, 1}};
  ProcessTree tree = orderTree({10}, parentOf);
  EXPECT_EQ(pidsOf(tree), (std::vector<pid_t>{10, 20, 21, 22, 30, 31}));
  EXPECT_FALSE(tree.truncated);
  ASSERT_EQ(tree.nodes.size(), 6u);
  EXPECT_EQ(tree.nodes[0].depth, 0u);
  EXPECT_EQ(tree.nodes[0].ppid, 1);
  EXPECT_EQ(tree.nodes[2].depth, 2u);
  EXPECT_EQ(tree.nodes[2].ppid, 20);
}

TEST(RunProcessTree, RootsKeepTheirGivenOrder) {
  std::map<pid_t, pid_t> parentOf = {{5, 1}, {7, 1}, {8, 7}};
  EXPECT_EQ(pidsOf(orderTree({7, 5}, parentOf)), (std::vector<pid_t>{7, 8, 5}));
}

TEST(RunProcessTree, RootMissingFromTheMapIsStillListed) {
  ProcessTree tree = orderTree({42}, {});
  EXPECT_EQ(pidsOf(tree), (std::vector<pid_t>{42}));
  EXPECT_EQ(tree.nodes[0].ppid, 0);
}

TEST(RunProcessTree, CycleIsVisitedOnce) {
  // 2 -> 3 -> 4 -> 2: impossible in one instant, possible in a racy scan
  // with recycled pids.
  std::map<pid_t, pid_t> parentOf = {{2, 4}, {3, 2}, {4, 3}};
  EXPECT_EQ(pidsOf(orderTree({2}, parentOf)), (std::vector<pid_t>{2, 3, 4}));
}

TEST(RunProcessTree, SelfParentIsNotItsOwnChild) {
  std::map<pid_t, pid_t> parentOf = {{6, 6}, {7, 6}};
  EXPECT_EQ(pidsOf(orderTree({6}, parentOf)), (std::vector<pid_t>{6, 7}));
}

TEST(RunProcessTree, DuplicateRootsListedOnce) {
  std::map<pid_t, pid_t> parentOf = {{5, 1}, {6, 5}};
  EXPECT_EQ(pidsOf(orderTree({5, 6, 5}, parentOf)), (std::vector<pid_t>{5, 6}));
}

TEST(RunProcessTree, BoundedAndMarkedTruncated) {
  // A chain 1000 deep: no recursion limit, and the bound applies.
  std::map<pid_t, pid_t> parentOf;
  for (pid_t p = 2; p <= 1000; ++p)
    parentOf[p] = p - 1;
  ProcessTree tree = orderTree({1}, parentOf, 100);
  EXPECT_EQ(tree.nodes.size(), 100u);
  EXPECT_TRUE(tree.truncated);
  EXPECT_EQ(tree.nodes.back().depth, 99u);
  EXPECT_FALSE(orderTree({1}, parentOf, 1000).truncated);
}

TEST(RunProcessTree, LiveTreeFindsAChildAndExcludesSelf) {
  int gate[2];
  ASSERT_EQ(pipe(gate), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c;
    close(gate[1]);
    (void)!read(gate[0], &c, 1); // parked until the test closes the pipe
    _exit(0);
  }
  close(gate[0]);
  ProcessTree withRoot = liveProcessTree(getpid(), true);
  ASSERT_FALSE(withRoot.nodes.empty());
  EXPECT_EQ(withRoot.nodes[0].pid, getpid());
  ProcessTree below = liveProcessTree(getpid(), false, child);
  ASSERT_FALSE(below.nodes.empty());
  EXPECT_EQ(below.nodes[0].pid, child);
  EXPECT_EQ(below.nodes[0].ppid, getpid());
  std::vector<pid_t> expanded = withDescendants({getpid()});
  EXPECT_TRUE(expanded.empty()) << "stackpeek's own pid must never be dumped";
  EXPECT_EQ(withDescendants({child}), (std::vector<pid_t>{child}));
  close(gate[1]);
  int status;
  waitpid(child, &status, 0);
}
