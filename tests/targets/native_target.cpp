// native_target: the process the native integration tests dump.  Every thread
// parks in a known blocking call behind a known call chain, and the program
// itself writes an "oracle" (JSON) describing, per thread, its tid, its name
// and the exact chain innermost-first with the source line of every call site
// and which frames are inlined.  Tests compare stackpeek's output against that
// oracle, so nothing about the expected stacks is hard-coded in the tests.
//
// Built -O2 -g -fomit-frame-pointer in several variants (PIE, non-PIE,
// stripped with separate build-id debug info); see CMakeLists.txt.
//
// Usage: native_target [--ready-fd N] [--oracle PATH] [--stats PATH] [--depth D]
//                      [--main-exits]
//   --ready-fd  a pipe fd; one byte is written once every thread has announced
//               that its next action is the blocking call and every thread but
//               main is asleep in the kernel (main blocks right after writing:
//               tests wait until /proc shows main asleep too)
//   --oracle    where to write the oracle JSON (before the ready byte)
//   --stats     the ticker stats file (see target_common.h)
//   --depth     depth of the recursion thread (default 1000)
//   --main-exits  main calls pthread_exit instead of blocking, once it has
//               signalled readiness: the leader becomes a zombie while every
//               other thread goes on (the oracle marks main not blocked)
//
// Chains (outermost first): the function names are taken from __func__ for
// extern "C" functions and from __PRETTY_FUNCTION__ (minus the return type)
// for C++ ones, i.e. the way a demangled symbol reads.
//   main:      main -> main_park -> pause()
//   sleeper:   sleeper_thread -> level_a(int) -> level_b(int) -> block_in_nanosleep -> nanosleep()
//   waiter:    waiter_thread -> chains::Waiter::wait_outer(int) -> chains::Waiter::wait_inner(int)
//              -> pthread_cond_wait()
//   reader:    reader_thread -> read_outer -> read_block -> read() on a pipe nobody writes
//   inliner:   inliner_thread -> inl_outer -> [inl_middle, always_inline] -> inl_block
//              -> [inl_leaf, always_inline] -> poll(NULL, 0, -1)
//   recurser:  recurser_thread -> recurse(int) x depth -> block_in_recursion -> sem_wait()
//   ticker:    not checked (it runs: see target_common.h)
#include <poll.h>
#include <semaphore.h>
#include <signal.h>

#include "target_common.h"

namespace {

struct Frame {
  std::string function;
  int line = 0;
  bool inlined = false;
};

struct ThreadInfo {
  const char* name;
  pid_t tid = 0;
  bool blocked = true;              // parks in a blocking call the tests check
  std::vector<Frame> outer_first;  // recorded as the chain is entered
};

thread_local ThreadInfo* tl = nullptr;

std::string cxx_name(const char* pretty) {
  // "static void chains::Waiter::wait_inner(int)" -> "chains::Waiter::wait_inner(int)"
  std::string s(pretty);
  size_t paren = s.find('(');
  size_t space = s.rfind(' ', paren);
  return space == std::string::npos ? s : s.substr(space + 1);
}

void enter(std::string fn, bool inlined = false) { tl->outer_first.push_back({std::move(fn), 0, inlined}); }

}  // namespace

#define C_NAME (std::string(__func__))
#define CXX_NAME (cxx_name(__PRETTY_FUNCTION__))

// Records the current line as this frame's call site, makes the call, then a
// barrier so the call can never become a tail call.  Keep each use on one line.
#define AT(call)                             \
  do {                                       \
    tl->outer_first.back().line = __LINE__; \
    call;                                    \
    BARRIER();                               \
  } while (0)

static void announce_blocked();

// The blocking call: records the line, announces, blocks forever.  A return
// from the call is a spurious wakeup, counted in the stats file.
#define BLOCK_FOREVER(call)                  \
  do {                                       \
    tl->outer_first.back().line = __LINE__; \
    announce_blocked();                      \
    for (;;) {                               \
      call;                                  \
      target::note_spurious_wakeup();        \
    }                                        \
  } while (0)

static target::BlockedCounter g_blocked;
static int g_ready_fd = -1;
static const char* g_oracle_path = nullptr;
static int g_depth = 1000;
static bool g_main_exits = false;
static int g_pipe[2];
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static sem_t g_sem;
static volatile int g_sink;

static ThreadInfo g_main{"nt-main"};
static ThreadInfo g_threads[] = {{"sleeper"}, {"waiter"}, {"reader"}, {"inliner"}, {"recurser"}};
static ThreadInfo g_ticker{"ticker"};

// ---------------------------------------------------------------- sleeper
extern "C" NOINLINE void block_in_nanosleep(int x) {
  enter(C_NAME);
  timespec ts = {3600 + x, 0};
  BLOCK_FOREVER(nanosleep(&ts, nullptr));
}

NOINLINE void level_b(int x) {
  enter(CXX_NAME);
  AT(block_in_nanosleep(x + 1));
  g_sink = x;
}

NOINLINE void level_a(int x) {
  enter(CXX_NAME);
  AT(level_b(x + 1));
  g_sink = x;
}

extern "C" NOINLINE void* sleeper_thread(void* arg) {
  tl = static_cast<ThreadInfo*>(arg);
  enter(C_NAME);
  AT(level_a(g_sink));
  return nullptr;
}

// ---------------------------------------------------------------- waiter
namespace chains {
struct Waiter {
  static NOINLINE void wait_inner(int x) {
    enter(CXX_NAME);
    pthread_mutex_lock(&g_mutex);
    g_sink = x;
    BLOCK_FOREVER(pthread_cond_wait(&g_cond, &g_mutex));
  }
  static NOINLINE void wait_outer(int x) {
    enter(CXX_NAME);
    AT(wait_inner(x * 2));
    g_sink = x;
  }
};
}  // namespace chains

extern "C" NOINLINE void* waiter_thread(void* arg) {
  tl = static_cast<ThreadInfo*>(arg);
  enter(C_NAME);
  AT(chains::Waiter::wait_outer(g_sink));
  return nullptr;
}

// ---------------------------------------------------------------- reader
extern "C" NOINLINE void read_block(int fd) {
  enter(C_NAME);
  char c;
  BLOCK_FOREVER(g_sink = int(read(fd, &c, 1)));
}

extern "C" NOINLINE void read_outer(int fd) {
  enter(C_NAME);
  AT(read_block(fd));
  g_sink = fd;
}

extern "C" NOINLINE void* reader_thread(void* arg) {
  tl = static_cast<ThreadInfo*>(arg);
  enter(C_NAME);
  AT(read_outer(g_pipe[0]));
  return nullptr;
}

// ---------------------------------------------------------------- inliner
extern "C" {
static ALWAYS_INLINE void inl_leaf(int x) {
  enter(C_NAME, true);
  g_sink = x;
  BLOCK_FOREVER(g_sink = poll(nullptr, 0, -1));
}

NOINLINE void inl_block(int x) {
  enter(C_NAME);
  AT(inl_leaf(x + 3));
  g_sink = x;
}

static ALWAYS_INLINE void inl_middle(int x) {
  enter(C_NAME, true);
  AT(inl_block(x + 2));
  g_sink = x;
}

NOINLINE void inl_outer(int x) {
  enter(C_NAME);
  AT(inl_middle(x + 1));
  g_sink = x;
}
}

extern "C" NOINLINE void* inliner_thread(void* arg) {
  tl = static_cast<ThreadInfo*>(arg);
  enter(C_NAME);
  AT(inl_outer(g_sink));
  return nullptr;
}

// ---------------------------------------------------------------- recurser
extern "C" NOINLINE void block_in_recursion(int x) {
  enter(C_NAME);
  g_sink = x;
  BLOCK_FOREVER(sem_wait(&g_sem));
}

NOINLINE void recurse(int remaining) {
  enter(CXX_NAME);
  if (remaining > 1) {
    AT(recurse(remaining - 1));
  } else {
    AT(block_in_recursion(remaining));
  }
  g_sink = remaining;
}

extern "C" NOINLINE void* recurser_thread(void* arg) {
  tl = static_cast<ThreadInfo*>(arg);
  enter(C_NAME);
  AT(recurse(g_depth));
  return nullptr;
}

// ---------------------------------------------------------------- main
static void write_oracle() {
  std::string j = "{\n  \"pid\": " + std::to_string(getpid()) + ",\n";
  j += "  \"executable\": \"" + target::json_escape(target::self_exe()) + "\",\n";
  j += "  \"source_file\": \"" + target::json_escape(__FILE__) + "\",\n";
  j += "  \"recursion\": {\"thread\": \"recurser\", \"function\": \"" + target::json_escape(cxx_name("void recurse(int)")) +
       "\", \"depth\": " + std::to_string(g_depth) + "},\n";
  j += "  \"threads\": [\n";
  std::vector<ThreadInfo*> all{&g_main};
  for (auto& t : g_threads) all.push_back(&t);
  all.push_back(&g_ticker);
  for (size_t i = 0; i < all.size(); ++i) {
    ThreadInfo* t = all[i];
    j += "    {\"name\": \"" + target::json_escape(t->name) + "\", \"tid\": " + std::to_string(t->tid) +
         ", \"blocked\": " + (t->blocked ? "true" : "false") + ", \"frames\": ";
    if (!t->blocked) {
      j += "null";
    } else {
      j += "[";
      for (size_t k = t->outer_first.size(); k-- > 0;) {
        const Frame& f = t->outer_first[k];
        j += "\n      {\"function\": \"" + target::json_escape(f.function) + "\", \"file\": \"" +
             target::json_escape(__FILE__) + "\", \"line\": " + std::to_string(f.line) +
             ", \"inlined\": " + (f.inlined ? "true" : "false") + "}";
        if (k) j += ",";
      }
      j += "]";
    }
    j += i + 1 < all.size() ? "},\n" : "}\n";
  }
  j += "  ]\n}\n";
  std::string tmp = std::string(g_oracle_path) + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) target::die("open oracle");
  if (std::fwrite(j.data(), 1, j.size(), f) != j.size() || std::fclose(f) != 0) target::die("write oracle");
  if (std::rename(tmp.c_str(), g_oracle_path) != 0) target::die("rename oracle");
}

// Worker threads: count themselves in.  Main: wait until every worker is in
// its blocking call, publish the oracle, signal readiness (then it blocks).
static void announce_blocked() {
  if (tl != &g_main) {
    g_blocked.announce();
    return;
  }
  const int n = int(sizeof g_threads / sizeof g_threads[0]);
  g_blocked.wait_for(n);
  std::vector<pid_t> tids;
  for (auto& t : g_threads) tids.push_back(t.tid);
  target::wait_all_sleeping(tids);
  if (g_main_exits) g_main.blocked = false;
  if (g_oracle_path) write_oracle();
  target::signal_ready(g_ready_fd);
  if (g_main_exits) pthread_exit(nullptr);
}

extern "C" NOINLINE void main_park(int x) {
  enter(C_NAME);
  g_sink = x;
  BLOCK_FOREVER(pause());
}

static void* thread_trampoline_tid(ThreadInfo* t) {
  t->tid = target::gettid_();
  pthread_setname_np(pthread_self(), t->name);
  return nullptr;
}

int main(int argc, char** argv) {
  g_ready_fd = std::atoi(target::arg_value(argc, argv, "--ready-fd", "-1"));
  g_oracle_path = target::arg_value(argc, argv, "--oracle", nullptr);
  g_depth = std::atoi(target::arg_value(argc, argv, "--depth", "1000"));
  if (g_depth < 1) g_depth = 1;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--main-exits") == 0) g_main_exits = true;
  target::stats_open(target::arg_value(argc, argv, "--stats", nullptr));
  if (pipe2(g_pipe, O_CLOEXEC) != 0) target::die("pipe");
  sem_init(&g_sem, 0, 0);

  tl = &g_main;
  thread_trampoline_tid(&g_main);
  g_ticker.blocked = false;
  g_ticker.tid = target::start_ticker();

  using Entry = void* (*)(void*);
  const Entry entries[] = {sleeper_thread, waiter_thread, reader_thread, inliner_thread, recurser_thread};
  static_assert(sizeof entries / sizeof entries[0] == sizeof g_threads / sizeof g_threads[0]);
  for (size_t i = 0; i < sizeof entries / sizeof entries[0]; ++i) {
    struct Start {
      Entry entry;
      ThreadInfo* info;
    };
    auto* s = new Start{entries[i], &g_threads[i]};
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8 << 20);
    // The trampoline sets tid and name, then tail-jumps nowhere: it calls the
    // entry, whose own frame is what the oracle records.
    if (pthread_create(
            &th, &attr,
            [](void* p) -> void* {
              auto* st = static_cast<Start*>(p);
              thread_trampoline_tid(st->info);
              return st->entry(st->info);
            },
            s) != 0)
      target::die("pthread_create");
    pthread_attr_destroy(&attr);
  }

  enter(C_NAME);
  AT(main_park(argc));
  return 0;
}
