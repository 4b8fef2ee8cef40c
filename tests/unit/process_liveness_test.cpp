// processLiveness against real processes: this one runs; a zombie child and
// a reaped one are gone; a child whose main thread called pthread_exit while
// another thread lives is "changing" (from outside it looks like an exec in
// progress), and stays so however long settledLiveness waits. dump retries an
// attach only for processes that come out Running, so a Gone here that should
// be Changing (or the reverse) changes what the user is told.
#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "process/ProcFs.h"

using namespace stackpeek;

namespace {

// Waits (bounded) until /proc shows `pid`'s leader in `state`.
bool waitForLeaderState(pid_t pid, char state) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    auto stat = readTaskStat(pid, pid);
    if (stat && stat->state == state)
      return true;
    usleep(1000);
  }
  return false;
}

void *sleepForever(void *) {
  for (;;)
    pause();
  return nullptr;
}

} // namespace

TEST(ProcessLiveness, ThisProcessRuns) {
  EXPECT_EQ(processLiveness(getpid()), Liveness::Running);
  EXPECT_EQ(settledLiveness(getpid(), std::chrono::milliseconds(50)), Liveness::Running);
}

TEST(ProcessLiveness, ZombieAndReapedChildAreGone) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0)
    _exit(0);
  siginfo_t info{};
  // WNOWAIT: wait for the exit but leave the zombie in place.
  ASSERT_EQ(waitid(P_PID, child, &info, WEXITED | WNOWAIT), 0);
  EXPECT_EQ(processLiveness(child), Liveness::Gone);
  EXPECT_EQ(settledLiveness(child, std::chrono::milliseconds(50)), Liveness::Gone);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  EXPECT_EQ(processLiveness(child), Liveness::Gone);
}

TEST(ProcessLiveness, ZombieLeaderWithALiveThreadIsChanging) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pthread_t thread;
    if (pthread_create(&thread, nullptr, sleepForever, nullptr) != 0)
      _exit(1);
    pthread_exit(nullptr); // the leader becomes a zombie; the thread lives on
  }
  ASSERT_TRUE(waitForLeaderState(child, 'Z'));
  EXPECT_EQ(processLiveness(child), Liveness::Changing);
  EXPECT_EQ(settledLiveness(child, std::chrono::milliseconds(30)), Liveness::Changing);
  kill(child, SIGKILL);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
}
