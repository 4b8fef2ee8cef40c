// names_target: the process the naming tests dump.  Each thread parks behind
// a C++ construct whose functions gdb names from scope rather than from a
// linkage name, or whose demangled spelling differs between demanglers:
// functions in named and anonymous namespaces that are inlined (GCC gives the
// inlined copies no DW_AT_linkage_name), lambdas (two in one function, so the
// "#N" numbering shows), std::function, class and function templates, member
// functions, and std::thread's own _State_impl/_Invoker frames, which every
// thread here starts under.
//
// No oracle file: the oracle is gdb itself (`thread apply all bt` on this
// process), and the test compares stackpeek's names with gdb's frame by frame.
// Built -O2 -g like the other targets (see CMakeLists.txt), so that the
// always_inline functions are really inlined.
//
// Usage: names_target [--ready-fd N]
//   --ready-fd  a pipe fd; one byte is written once every worker thread is
//               asleep in its blocking call (main blocks right after writing:
//               tests wait until /proc shows main asleep too)
//
// Chains (outermost first, below std::thread's frames):
//   ns-static:  ns::park(int) -> [ns::helper(int), static always_inline] -> nanosleep()
//   anon:       (anonymous namespace)::anon_outer(int) -> [(anonymous namespace)::anon_inner(int)] -> pause()
//   lambda:     lambda_host(int) -> lambda_host(int)::{lambda(int)#2}::operator()(int) const -> sigsuspend()
//   function:   function_host(int) -> std::function<void(int)>::operator() -> std::_Function_handler<...>::_M_invoke
//               -> function_host(int)::{lambda(int)#1}::operator()(int) const -> poll()
//   template:   shapes::Box<int>::hold(int) -> [shapes::deep<3>(int), always_inline] -> select()
//   member:     shapes::Widget::spin(int) const -> [shapes::Widget::rest(int), always_inline] -> sem_wait()
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/select.h>

#include <functional>
#include <thread>

#include "target_common.h"

static target::BlockedCounter g_blocked;
static volatile int g_sink;
static sem_t g_sem;

// Counts the thread in, then blocks forever in `call` (a return is a spurious
// wakeup, counted like in native_target).
#define BLOCK_FOREVER(call)           \
  do {                                \
    g_blocked.announce();             \
    for (;;) {                        \
      call;                           \
      target::note_spurious_wakeup(); \
    }                                 \
  } while (0)

namespace ns {
static ALWAYS_INLINE void helper(int x) {
  timespec ts = {3600 + x, 0};
  BLOCK_FOREVER(nanosleep(&ts, nullptr));
}

NOINLINE void park(int x) {
  helper(x + 1);
  BARRIER();
}
}  // namespace ns

namespace {
ALWAYS_INLINE void anon_inner(int x) {
  g_sink = x;
  BLOCK_FOREVER(pause());
}

NOINLINE void anon_outer(int x) {
  anon_inner(x + 1);
  BARRIER();
}
}  // namespace

NOINLINE void lambda_host(int x) {
  auto first = [](int y) { g_sink = y; };  // inlined: only here for the numbering
  auto second = [](int y) NOINLINE {
    g_sink = y;
    sigset_t none;
    sigemptyset(&none);
    BLOCK_FOREVER(sigsuspend(&none));
  };
  first(x);
  second(x + 1);
  BARRIER();
}

NOINLINE void function_host(int x) {
  std::function<void(int)> parked = [](int y) NOINLINE {
    g_sink = y;
    BLOCK_FOREVER(g_sink = poll(nullptr, 0, -1));
  };
  parked(x);
  BARRIER();
}

namespace shapes {
template <int N>
ALWAYS_INLINE void deep(int x) {
  g_sink = x + N;
  BLOCK_FOREVER(g_sink = select(0, nullptr, nullptr, nullptr, nullptr));
}

template <typename T>
struct Box {
  T value;
  NOINLINE void hold(T x) {
    value = x;
    deep<3>(int(x));
    BARRIER();
  }
};

class Widget {
 public:
  NOINLINE void spin(int x) const {
    rest(x + id_);
    BARRIER();
  }

 private:
  static ALWAYS_INLINE void rest(int x) {
    g_sink = x;
    BLOCK_FOREVER(sem_wait(&g_sem));
  }
  int id_ = 7;
};
}  // namespace shapes

static shapes::Box<int> g_box;
static const shapes::Widget g_widget;

// Each thread is a std::thread running a lambda, named for the tests; it
// publishes its tid before it announces itself blocked.  The barrier after
// the body keeps the call from becoming a tail call, so that std::thread's
// _State_impl::_M_run frame (with _Invoker::_M_invoke<0> and the lambda
// inlined into it) stays on the stack.
static std::vector<pid_t> g_tids(16);
static std::thread start(size_t index, const char* name, void (*body)(int)) {
  return std::thread([=] {
    g_tids[index] = target::gettid_();
    pthread_setname_np(pthread_self(), name);
    body(int(index));
    BARRIER();
  });
}

int main(int argc, char** argv) {
  int ready_fd = std::atoi(target::arg_value(argc, argv, "--ready-fd", "-1"));
  target::stats_open(nullptr);
  sem_init(&g_sem, 0, 0);
  std::vector<std::thread> threads;
  threads.push_back(start(threads.size(), "ns-static", ns::park));
  threads.push_back(start(threads.size(), "anon", anon_outer));
  threads.push_back(start(threads.size(), "lambda", lambda_host));
  threads.push_back(start(threads.size(), "function", function_host));
  threads.push_back(start(threads.size(), "template", [](int x) { g_box.hold(x); }));
  threads.push_back(start(threads.size(), "member", [](int x) { g_widget.spin(x); }));
  g_blocked.wait_for(int(threads.size()));
  target::wait_all_sleeping({g_tids.begin(), g_tids.begin() + threads.size()});
  target::signal_ready(ready_fd);
  for (;;) pause();
}
