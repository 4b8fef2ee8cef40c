// bench_target: the process scripts/bench/native dumps.  N worker threads each
// descend a recursive chain D frames deep and block in sem_wait; a ticker
// thread (target_common.h) measures the largest gap between 1 ms ticks, so the
// benchmark can see how long a dumper actually stopped the process.
//
// Usage: bench_target --threads N --depth D [--ready-fd FD] [--stats PATH]
// One byte is written to FD once every worker is asleep in sem_wait.
#include <semaphore.h>

#include "target_common.h"

static sem_t g_sem;
static target::BlockedCounter g_blocked;
static volatile int g_sink;

extern "C" NOINLINE void bench_block(int x) {
  g_sink = x;
  g_blocked.announce();
  for (;;) {
    sem_wait(&g_sem);
    target::note_spurious_wakeup();
  }
}

extern "C" NOINLINE void bench_descend(int remaining) {
  if (remaining > 1)
    bench_descend(remaining - 1);
  else
    bench_block(remaining);
  asm volatile("" ::: "memory");  // not a tail call: every level keeps its frame
  g_sink = remaining;
}

struct Worker {
  int depth;
  std::atomic<pid_t>* tid;
};

extern "C" NOINLINE void* bench_worker(void* arg) {
  auto* w = static_cast<Worker*>(arg);
  w->tid->store(target::gettid_(), std::memory_order_release);
  pthread_setname_np(pthread_self(), "bench-worker");
  bench_descend(w->depth);
  return nullptr;
}

int main(int argc, char** argv) {
  int nthreads = std::atoi(target::arg_value(argc, argv, "--threads", "1"));
  int depth = std::atoi(target::arg_value(argc, argv, "--depth", "20"));
  int ready_fd = std::atoi(target::arg_value(argc, argv, "--ready-fd", "-1"));
  if (nthreads < 0) nthreads = 0;
  if (depth < 1) depth = 1;
  target::stats_open(target::arg_value(argc, argv, "--stats", nullptr));
  sem_init(&g_sem, 0, 0);
  target::start_ticker();

  std::vector<std::atomic<pid_t>> tids(nthreads);
  std::vector<Worker> workers(nthreads);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 << 10);
  for (int i = 0; i < nthreads; ++i) {
    workers[i] = {depth, &tids[i]};
    pthread_t th;
    if (pthread_create(&th, &attr, bench_worker, &workers[i]) != 0) target::die("pthread_create");
  }
  g_blocked.wait_for(nthreads);
  std::vector<pid_t> list;
  for (auto& t : tids) list.push_back(t.load(std::memory_order_acquire));
  target::wait_all_sleeping(list);
  target::signal_ready(ready_fd);
  for (;;) pause();
}
