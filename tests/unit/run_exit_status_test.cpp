// Unit tests of run/ExitStatus (wait statuses from real children, so the
// macros' encoding is not re-implemented here) and of run/Activity's
// IdleTracker rules.
#include <gtest/gtest.h>

#include <csignal>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run/Activity.h"
#include "run/ExitStatus.h"

using namespace stackpeek;
using namespace std::chrono_literals;

namespace {

// The wait status of a child that ran `body`.
template <typename F> int statusOf(F body) {
  pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

} // namespace

TEST(RunExitStatus, ExitCodesPassThrough) {
  EXPECT_EQ(exitCodeForWaitStatus(statusOf([] { _exit(0); })), 0);
  EXPECT_EQ(exitCodeForWaitStatus(statusOf([] { _exit(3); })), 3);
  EXPECT_EQ(exitCodeForWaitStatus(statusOf([] { _exit(255); })), 255);
}

TEST(RunExitStatus, SignalsBecome128PlusN) {
  rlimit noCore{0, 0};
  EXPECT_EQ(exitCodeForWaitStatus(statusOf([&] {
              setrlimit(RLIMIT_CORE, &noCore);
              signal(SIGSEGV, SIG_DFL);
              raise(SIGSEGV);
            })),
            128 + SIGSEGV);
  EXPECT_EQ(exitCodeForWaitStatus(statusOf([] { raise(SIGKILL); })), 137);
  EXPECT_EQ(exitCodeForWaitStatus(statusOf([] {
              signal(SIGTERM, SIG_DFL);
              raise(SIGTERM);
            })),
            143);
}

TEST(RunExitStatus, ExecErrors) {
  EXPECT_EQ(exitCodeForExecError(ENOENT), 127);
  EXPECT_EQ(exitCodeForExecError(ENOTDIR), 127);
  EXPECT_EQ(exitCodeForExecError(EACCES), 126);
  EXPECT_EQ(exitCodeForExecError(ENOEXEC), 126);
}

namespace {

ActivitySample sample(std::vector<ThreadActivity> threads, bool stopped = false) {
  ActivitySample s;
  s.threads = std::move(threads);
  s.allStopped = stopped;
  return s;
}

} // namespace

TEST(RunIdleTracker, FiresOnceAfterTimeoutWithoutChange) {
  IdleTracker tracker(1s);
  auto t0 = IdleTracker::Clock::time_point{} + 100s;
  auto s = sample({{1, 100, 5}, {2, 200, 7}});
  EXPECT_FALSE(tracker.observe(s, t0));
  EXPECT_FALSE(tracker.observe(s, t0 + 500ms));
  EXPECT_TRUE(tracker.observe(s, t0 + 1s));
  EXPECT_EQ(tracker.idleFor(t0 + 1s), 1s);
  EXPECT_FALSE(tracker.observe(s, t0 + 2s)) << "one dump per idle spell";
  EXPECT_FALSE(tracker.observe(s, t0 + 10s));
}

TEST(RunIdleTracker, AnyCounterChangeIsActivity) {
  IdleTracker tracker(1s);
  auto t0 = IdleTracker::Clock::time_point{} + 100s;
  EXPECT_FALSE(tracker.observe(sample({{1, 100, 5}}), t0));
  // One wakeup (switch count) without measurable CPU time still counts.
  EXPECT_FALSE(tracker.observe(sample({{1, 100, 6}}), t0 + 900ms));
  EXPECT_FALSE(tracker.observe(sample({{1, 100, 6}}), t0 + 1800ms));
  EXPECT_FALSE(tracker.observe(sample({{1, 101, 6}}), t0 + 2700ms)); // CPU time
  EXPECT_FALSE(tracker.observe(sample({{1, 101, 6}, {2, 0, 0}}), t0 + 3600ms)); // new thread
  EXPECT_TRUE(tracker.observe(sample({{1, 101, 6}, {2, 0, 0}}), t0 + 4600ms));
  // Activity ends the spell; the next spell is reported again.
  EXPECT_FALSE(tracker.observe(sample({{1, 101, 6}}), t0 + 5s)); // a thread left
  EXPECT_TRUE(tracker.observe(sample({{1, 101, 6}}), t0 + 6s));
}

TEST(RunIdleTracker, OwnDumpIsNotActivity) {
  IdleTracker tracker(1s);
  auto t0 = IdleTracker::Clock::time_point{} + 100s;
  EXPECT_FALSE(tracker.observe(sample({{1, 100, 5}}), t0));
  tracker.ignoreUntil(t0 + 700ms);
  // The dump woke the thread: counters moved, but inside the grace window.
  EXPECT_FALSE(tracker.observe(sample({{1, 110, 9}}), t0 + 600ms));
  EXPECT_TRUE(tracker.observe(sample({{1, 110, 9}}), t0 + 1s))
      << "the idle clock keeps running across our own dump";
}

TEST(RunIdleTracker, StoppedTreeIsNotIdle) {
  IdleTracker tracker(1s);
  auto t0 = IdleTracker::Clock::time_point{} + 100s;
  auto s = sample({{1, 100, 5}}, true);
  EXPECT_FALSE(tracker.observe(s, t0));
  EXPECT_FALSE(tracker.observe(s, t0 + 5s));
  auto running = sample({{1, 100, 5}}, false);
  EXPECT_FALSE(tracker.observe(running, t0 + 5500ms));
  EXPECT_TRUE(tracker.observe(running, t0 + 6s));
}

TEST(RunIdleTracker, RealSampleOfASleepingChildIsStable) {
  int gate[2];
  ASSERT_EQ(pipe(gate), 0);
  pid_t child = fork();
  if (child == 0) {
    char c;
    close(gate[1]);
    (void)!read(gate[0], &c, 1);
    _exit(0);
  }
  close(gate[0]);
  // Poll until the child has run and settled in read(); from then on it is
  // idle. (Two equal samples before it was ever scheduled do not count: on a
  // loaded machine a fresh child can wait longer than one poll interval.)
  ActivitySample a, b;
  for (int i = 0; i < 2000; ++i) {
    a = sampleActivity({child});
    usleep(1000);
    b = sampleActivity({child});
    if (a == b && !a.threads.empty() && a.threads[0].switches > 0)
      break;
  }
  EXPECT_TRUE(a == b);
  ASSERT_EQ(a.threads.size(), 1u);
  EXPECT_EQ(a.threads[0].tid, child);
  EXPECT_GT(a.threads[0].switches, 0u);
  close(gate[1]);
  int status;
  waitpid(child, &status, 0);
}
