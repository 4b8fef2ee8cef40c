// Shared plumbing for the native test target programs (native_target,
// bench_target, names_target): command-line parsing, the readiness pipe, the "stats" file a
// ticker thread keeps up to date (proof that the target keeps running, and the
// largest scheduling gap it saw, used by the safety tests and the benchmark),
// a wait until given threads sit in a blocking system call, and the
// attributes that shape the call chains (NOINLINE, ALWAYS_INLINE, BARRIER).
// None of these helpers ever appears in the call chains the tests check.
//
// Stats file layout: STATS_SLOTS little-endian uint64 words, mapped shared,
// so a test can mmap it and read it while the target runs:
//   [0] magic STATS_MAGIC           [1] ticks (1 ms clock_nanosleep ticks)
//   [2] largest gap between two ticks since the last reset, in ns
//   [3] reset request (a reader bumps it)  [4] reset acknowledged (the ticker
//       copies [3] here after zeroing [2])
//   [5] spurious wakeups: times a "block forever" call in a target returned
//       (a dump that disturbs the target, e.g. by an EINTR, makes it non-zero)
//   [6] pid of the target
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// A function that stays a frame of its own, one that never does, and a
// point after a call that keeps the call from becoming a tail call.
#if defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noipa))  // no inlining, cloning or IPA tricks
#endif
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define BARRIER() asm volatile("" ::: "memory")

namespace target {

constexpr uint64_t STATS_MAGIC = 0x7374617473706b31ULL;  // "stkpk1"-ish tag
constexpr size_t STATS_SLOTS = 8;
enum StatsSlot { S_MAGIC = 0, S_TICKS, S_MAX_GAP_NS, S_RESET_REQ, S_RESET_ACK, S_SPURIOUS, S_PID };

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "target: %s: %s\n", what, std::strerror(errno));
  std::_Exit(99);
}

inline pid_t gettid_() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// Minimal "--name value" parser: the targets are only started by the tests.
inline const char* arg_value(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

inline volatile uint64_t* g_stats = nullptr;

inline void stats_open(const char* path) {
  static uint64_t dummy[STATS_SLOTS];
  if (!path) {
    g_stats = dummy;
    return;
  }
  int fd = ::open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open stats");
  if (::ftruncate(fd, 4096) != 0) die("ftruncate stats");
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) die("mmap stats");
  ::close(fd);
  g_stats = static_cast<volatile uint64_t*>(p);
  g_stats[S_PID] = uint64_t(::getpid());
  __atomic_store_n(&g_stats[S_MAGIC], STATS_MAGIC, __ATOMIC_RELEASE);
}

inline void note_spurious_wakeup() { __atomic_fetch_add(&g_stats[S_SPURIOUS], 1, __ATOMIC_RELAXED); }

// The ticker: sleeps 1 ms at a time, counts ticks and records the largest gap
// between two consecutive wakeups.  While the process is ptrace-stopped it
// cannot tick, so the first tick after the resume measures the pause.
inline void* ticker_main(void*) {
  pthread_setname_np(pthread_self(), "ticker");
  uint64_t last = now_ns();
  uint64_t seen_reset = 0;
  for (;;) {
    timespec d = {0, 1000000};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &d, nullptr);
    uint64_t t = now_ns();
    uint64_t gap = t - last;
    last = t;
    uint64_t req = __atomic_load_n(&g_stats[S_RESET_REQ], __ATOMIC_ACQUIRE);
    if (req != seen_reset) {
      seen_reset = req;
      __atomic_store_n(&g_stats[S_MAX_GAP_NS], 0, __ATOMIC_RELAXED);
      __atomic_store_n(&g_stats[S_RESET_ACK], req, __ATOMIC_RELEASE);
    } else if (gap > g_stats[S_MAX_GAP_NS]) {
      __atomic_store_n(&g_stats[S_MAX_GAP_NS], gap, __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(&g_stats[S_TICKS], 1, __ATOMIC_RELEASE);
  }
  return nullptr;
}

inline pid_t start_ticker() {
  static std::atomic<pid_t> tid{0};
  pthread_t th;
  if (pthread_create(
          &th, nullptr,
          [](void* arg) -> void* {
            static_cast<std::atomic<pid_t>*>(arg)->store(gettid_());
            tid.notify_all();
            return ticker_main(nullptr);
          },
          &tid) != 0)
    die("pthread_create ticker");
  tid.wait(0);
  return tid.load();
}

// State letter of /proc/self/task/TID/stat (after the ")" of the comm field).
inline char task_state(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", int(tid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return '?';
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return '?';
  buf[n] = 0;
  const char* rp = std::strrchr(buf, ')');
  return (rp && rp[1] == ' ') ? rp[2] : '?';
}

// Poll until every listed thread is asleep in the kernel.  The threads have
// already announced that their next action is the blocking call, so 'S' means
// they are in it.  Polling (with a short nanosleep between rounds) is the only
// way to observe another thread's kernel state.
inline void wait_all_sleeping(const std::vector<pid_t>& tids) {
  for (;;) {
    bool all = true;
    for (pid_t t : tids)
      if (task_state(t) != 'S') {
        all = false;
        break;
      }
    if (all) return;
    timespec d = {0, 200000};
    nanosleep(&d, nullptr);
  }
}

// Counts threads that announced "about to block"; the main thread waits on it.
struct BlockedCounter {
  std::atomic<int> count{0};
  void announce() {
    count.fetch_add(1, std::memory_order_acq_rel);
    count.notify_all();
  }
  void wait_for(int n) {
    for (int c = count.load(std::memory_order_acquire); c < n; c = count.load(std::memory_order_acquire))
      count.wait(c);
  }
};

inline void signal_ready(int fd) {
  if (fd < 0) return;
  char b = 'R';
  while (::write(fd, &b, 1) != 1)
    if (errno != EINTR) die("write ready byte");
  ::close(fd);
}

inline std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o;
}

inline std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n < 0) return "";
  buf[n] = 0;
  return buf;
}

}  // namespace target
