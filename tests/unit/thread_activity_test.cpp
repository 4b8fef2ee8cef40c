// ThreadActivity against real threads of this test process: a spinning
// thread must be chosen, a sleeping one must not, and a sleeper that turned
// cold must be found again once it starts using a CPU. Time is passed in,
// so "cold" needs no real waiting; real time only bounds the wait for the
// kernel to account the woken thread's CPU time.
#include <gtest/gtest.h>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iterator>
#include <string>
#include <mutex>
#include <thread>

#include "driver/ThreadActivity.h"

using namespace stackpeek;
using Clock = ThreadActivity::Clock;

namespace {

pid_t currentTid() { return pid_t(::syscall(SYS_gettid)); }

bool contains(const std::vector<pid_t> &v, pid_t tid) {
  return std::find(v.begin(), v.end(), tid) != v.end();
}

// A thread that sleeps on a condition variable until told to spin, then
// spins until told to stop.
class Worker {
public:
  Worker() : thread_([this] { run(); }) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return tid_ != 0; });
  }
  ~Worker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      spin_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void startSpinning() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      spin_ = true;
    }
    cv_.notify_all();
  }
  pid_t tid() const { return tid_; }

private:
  void run() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tid_ = currentTid();
    }
    cv_.notify_all();
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return spin_; });
    lock.unlock();
    while (!stopFlag())
      ;
  }
  bool stopFlag() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stop_;
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool spin_ = false, stop_ = false;
  pid_t tid_ = 0;
  std::thread thread_;
};

} // namespace

char stateOf(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() ? text[close + 2] : '?';
}

TEST(ThreadActivity, ChoosesRunningThreadsAndFindsColdOnesAgain) {
  if (::access("/proc/self/schedstat", R_OK) != 0)
    GTEST_SKIP() << "no /proc/PID/schedstat on this kernel (CONFIG_SCHED_INFO)";
  Worker sleeper, spinner;
  spinner.startSpinning();
  // The sleeper may still be on its way into its wait: let it get there.
  for (auto deadline = Clock::now() + std::chrono::seconds(5);
       stateOf(sleeper.tid()) != 'S' && Clock::now() < deadline;)
    std::this_thread::yield();
  ASSERT_EQ(stateOf(sleeper.tid()), 'S');
  ThreadActivity activity(::getpid());
  bool alive = true;
  Clock::time_point t = Clock::now();

  // The spinner may be runnable without a CPU for a moment on a busy
  // machine, but 'R' covers that; bound the wait for it anyway.
  std::vector<pid_t> chosen;
  for (auto deadline = Clock::now() + std::chrono::seconds(5);
       !contains(chosen, spinner.tid()) && Clock::now() < deadline;)
    chosen = activity.poll(false, alive, t);
  EXPECT_TRUE(alive);
  EXPECT_TRUE(contains(chosen, spinner.tid()));
  EXPECT_FALSE(contains(chosen, sleeper.tid()));
  EXPECT_TRUE(contains(activity.threads(), sleeper.tid()));

  // Long enough asleep, the sleeper is cold: only its CPU time is watched.
  t += ThreadActivity::kHotFor * 2;
  chosen = activity.poll(false, alive, t);
  EXPECT_FALSE(contains(chosen, sleeper.tid()));

  // Woken to spin, it is chosen again once the kernel has accounted some of
  // its CPU time (at its next scheduler tick).
  sleeper.startSpinning();
  bool found = false;
  for (auto deadline = Clock::now() + std::chrono::seconds(5);
       !found && Clock::now() < deadline;) {
    t += ThreadActivity::kColdEvery;
    found = contains(activity.poll(false, alive, t), sleeper.tid());
  }
  EXPECT_TRUE(found);

  // With idle threads included, every live thread is chosen.
  chosen = activity.poll(true, alive, t);
  EXPECT_TRUE(contains(chosen, currentTid()));
  EXPECT_TRUE(contains(chosen, sleeper.tid()));
}

TEST(ThreadActivity, ReportsAGoneProcess) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0)
    ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ThreadActivity activity(child);
  bool alive = true;
  EXPECT_TRUE(activity.poll(false, alive).empty());
  EXPECT_FALSE(alive);
}
