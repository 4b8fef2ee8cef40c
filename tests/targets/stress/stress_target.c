/* stress_target: a self-checking process for the safety suites.
 *
 * Why: "stackpeek never harms the target" is only provable from inside the
 * target.  Every worker thread here sits in a different kind of blocking
 * system call (pipe read/write, nanosleep, futex wait, epoll_wait, accept,
 * waitpid on a child) and checks each result the way a careful program
 * would: an EINTR or a short read reaching the program, a lost, duplicated or
 * corrupted message, a sleep that ends early, a child with the wrong status,
 * or any other failure is counted as an anomaly.  A ptrace stop done right
 * (PTRACE_SEIZE + PTRACE_INTERRUPT, signals handed back on detach) is
 * invisible to all of them, so the suites dump this target thousands of
 * times and then require zero anomalies and steady progress.
 *
 * Optional "churn" workers create and join short-lived threads continuously
 * (thread churn during dumps); "--exec-loop N" makes the process re-exec
 * itself every N milliseconds (exec racing an attach), from the main thread
 * in even generations and from another thread in odd ones, with
 * "--exec-threads N" extra sleeping threads (more threads for the exec to
 * kill, so a dump more often seizes while it does); "--exit-after N"
 * makes it exit with status 0 on its own after N ms (exit racing a dump).
 *
 * Reporting: a 4 KiB stats file shared with the tests through mmap (layout
 * below, mirrored in tests/integration/safety_common.py).  Readiness: one byte
 * on --ready-fd once every worker has completed an operation.
 *
 * Usage: stress_target --stats PATH [--ready-fd FD] [--churn N]
 *                      [--exec-loop MS] [--exec-threads N] [--exit-after MS]
 *                      [--generation G]
 *
 * Built without sanitizers and with plain flags (tests/targets/CMakeLists.txt
 * clears the directory's options), like the other targets.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- stats file layout: uint64 slots ---- */
#define STATS_MAGIC 0x6b70737365727473ull /* "stresspk" */
enum {
  S_MAGIC = 0,
  S_PID = 1,
  S_WORKERS = 2,    /* number of workers */
  S_READY = 3,      /* 1 once every worker did one operation */
  S_ANOMALIES = 4,  /* total */
  S_GENERATION = 5, /* exec generation (--exec-loop) */
  S_OPS = 8,        /* S_OPS + w: operations done by worker w */
  S_ANOM = 24,      /* S_ANOM + w: anomalies of worker w */
  S_TEXT = 64,      /* byte offset 512: last anomaly, NUL-terminated text */
};
enum { W_PIPE, W_SLEEP, W_FUTEX, W_EPOLL, W_ACCEPT, W_WAITPID, W_CHURN, W_COUNT };
static const char *const kWorkerNames[W_COUNT] = {"pipe", "nanosleep", "futex", "epoll",
                                                  "accept", "waitpid", "churn"};

static volatile uint64_t *stats;

static void bump(int slot) { __atomic_fetch_add(&stats[slot], 1, __ATOMIC_RELAXED); }

static void anomaly(int worker, const char *fmt, ...) {
  char text[400];
  va_list ap;
  va_start(ap, fmt);
  int n = snprintf(text, sizeof text, "%s: ", kWorkerNames[worker]);
  vsnprintf(text + n, sizeof text - n, fmt, ap);
  va_end(ap);
  bump(S_ANOM + worker);
  bump(S_ANOMALIES);
  char *dst = (char *)(stats + S_TEXT);
  memcpy(dst, text, strlen(text) + 1); /* diagnostics only: racy by design */
  fprintf(stderr, "stress_target: anomaly: %s\n", text);
}

static void op_done(int worker) { bump(S_OPS + worker); }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- pipe: 64-byte messages with sequence number and checksum ---- */
struct message {
  uint64_t seq;
  uint64_t payload[6];
  uint64_t checksum;
};
_Static_assert(sizeof(struct message) == 64, "message size");
static int pipe_fds[2];

static uint64_t checksum(const struct message *m) {
  uint64_t h = 0xcbf29ce484222325ull ^ m->seq;
  for (int i = 0; i < 6; ++i)
    h = (h ^ m->payload[i]) * 0x100000001b3ull;
  return h;
}

static void *pipe_writer(void *arg) {
  (void)arg;
  for (uint64_t seq = 0;; ++seq) {
    struct message m;
    m.seq = seq;
    for (int i = 0; i < 6; ++i)
      m.payload[i] = seq * 0x9e3779b97f4a7c15ull + i;
    m.checksum = checksum(&m);
    ssize_t n = write(pipe_fds[1], &m, sizeof m); /* atomic: < PIPE_BUF */
    if (n != (ssize_t)sizeof m)
      anomaly(W_PIPE, "write returned %zd (%s)", n, n < 0 ? strerror(errno) : "short");
    if (seq % 64 == 0)
      sleep_ms(1); /* let the reader block in read() too, not only the writer */
  }
  return NULL;
}

static void *pipe_reader(void *arg) {
  (void)arg;
  for (uint64_t expected = 0;; ++expected) {
    struct message m;
    ssize_t n = read(pipe_fds[0], &m, sizeof m);
    if (n != (ssize_t)sizeof m) {
      anomaly(W_PIPE, "read returned %zd (%s)", n, n < 0 ? strerror(errno) : "short read");
      if (n <= 0)
        continue;
      /* resynchronisation is impossible after a short read: stop checking order */
    }
    if (m.checksum != checksum(&m))
      anomaly(W_PIPE, "bad checksum in message %llu", (unsigned long long)m.seq);
    else if (m.seq != expected)
      anomaly(W_PIPE, "message %llu received, %llu expected (%s)", (unsigned long long)m.seq,
              (unsigned long long)expected, m.seq < expected ? "duplicated" : "lost");
    expected = m.seq;
    op_done(W_PIPE);
  }
  return NULL;
}

/* ---- nanosleep: never early, never EINTR ---- */
static void *sleeper(void *arg) {
  (void)arg;
  for (;;) {
    struct timespec ts = {0, 2000000}; /* 2 ms */
    uint64_t start = now_ns();
    if (nanosleep(&ts, NULL) != 0)
      anomaly(W_SLEEP, "nanosleep failed: %s", strerror(errno));
    else if (now_ns() - start < 2000000)
      anomaly(W_SLEEP, "nanosleep returned early after %llu ns",
              (unsigned long long)(now_ns() - start));
    op_done(W_SLEEP);
  }
  return NULL;
}

/* ---- futex: a waiter and a waker on one word ---- */
static uint32_t futex_word;

static void *futex_waker(void *arg) {
  (void)arg;
  for (;;) {
    sleep_ms(1);
    __atomic_fetch_add(&futex_word, 1, __ATOMIC_SEQ_CST);
    if (syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) < 0)
      anomaly(W_FUTEX, "FUTEX_WAKE failed: %s", strerror(errno));
  }
  return NULL;
}

static void *futex_waiter(void *arg) {
  (void)arg;
  for (;;) {
    uint32_t seen = __atomic_load_n(&futex_word, __ATOMIC_SEQ_CST);
    long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
    /* EAGAIN: the word changed before we slept; a normal outcome. */
    if (r != 0 && errno != EAGAIN)
      anomaly(W_FUTEX, "FUTEX_WAIT failed: %s", strerror(errno));
    op_done(W_FUTEX);
  }
  return NULL;
}

/* ---- epoll_wait on an eventfd fed by a poster ---- */
static int event_fd, epoll_fd;

static void *event_poster(void *arg) {
  (void)arg;
  for (;;) {
    sleep_ms(1);
    uint64_t one = 1;
    if (write(event_fd, &one, sizeof one) != sizeof one)
      anomaly(W_EPOLL, "eventfd write failed: %s", strerror(errno));
  }
  return NULL;
}

static void *epoller(void *arg) {
  (void)arg;
  for (;;) {
    struct epoll_event ev;
    int n = epoll_wait(epoll_fd, &ev, 1, -1);
    if (n != 1) {
      anomaly(W_EPOLL, "epoll_wait returned %d (%s)", n, n < 0 ? strerror(errno) : "no event");
      continue;
    }
    uint64_t count;
    ssize_t r = read(event_fd, &count, sizeof count);
    if (r != sizeof count || count == 0)
      anomaly(W_EPOLL, "eventfd read returned %zd (%s)", r, r < 0 ? strerror(errno) : "short");
    op_done(W_EPOLL);
  }
  return NULL;
}

/* ---- accept on loopback; a client connects and sends a sequence number ---- */
static int listen_fd;
static struct sockaddr_in listen_addr;

static void *client(void *arg) {
  (void)arg;
  for (uint64_t seq = 0;; ++seq) {
    sleep_ms(2);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      anomaly(W_ACCEPT, "socket failed: %s", strerror(errno));
      continue;
    }
    if (connect(fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) != 0)
      anomaly(W_ACCEPT, "connect failed: %s", strerror(errno));
    else if (write(fd, &seq, sizeof seq) != sizeof seq)
      anomaly(W_ACCEPT, "client write failed: %s", strerror(errno));
    else {
      char c; /* wait for the server's close so connections never pile up */
      if (read(fd, &c, 1) != 0)
        anomaly(W_ACCEPT, "client expected EOF: %s", strerror(errno));
    }
    close(fd);
  }
  return NULL;
}

static void *acceptor(void *arg) {
  (void)arg;
  for (uint64_t expected = 0;; ++expected) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      anomaly(W_ACCEPT, "accept failed: %s", strerror(errno));
      continue;
    }
    uint64_t seq = ~0ull;
    ssize_t n = recv(fd, &seq, sizeof seq, MSG_WAITALL);
    if (n != sizeof seq)
      anomaly(W_ACCEPT, "recv returned %zd (%s)", n, n < 0 ? strerror(errno) : "short read");
    else if (seq != expected)
      anomaly(W_ACCEPT, "connection %llu received, %llu expected", (unsigned long long)seq,
              (unsigned long long)expected);
    expected = seq;
    close(fd);
    op_done(W_ACCEPT);
  }
  return NULL;
}

/* ---- fork a child and waitpid for it ---- */
static void *parent(void *arg) {
  (void)arg;
  for (int i = 0;; ++i) {
    int code = i & 0x7f;
    pid_t child = fork();
    if (child < 0) {
      anomaly(W_WAITPID, "fork failed: %s", strerror(errno));
      sleep_ms(10);
      continue;
    }
    if (child == 0) {
      struct timespec ts = {0, 3000000};
      nanosleep(&ts, NULL);
      _exit(code);
    }
    int status = 0;
    pid_t r = waitpid(child, &status, 0);
    if (r != child)
      anomaly(W_WAITPID, "waitpid returned %d (%s)", (int)r, r < 0 ? strerror(errno) : "");
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != code)
      anomaly(W_WAITPID, "child status 0x%x, expected exit %d", status, code);
    op_done(W_WAITPID);
  }
  return NULL;
}

/* ---- churn: short-lived threads, created and joined continuously ---- */
static void *short_lived(void *arg) {
  volatile uint64_t x = (uintptr_t)arg;
  for (int i = 0; i < 1000; ++i)
    x = x * 6364136223846793005ull + 1;
  return (void *)(uintptr_t)(x | 1);
}

static void *churner(void *arg) {
  (void)arg;
  for (;;) {
    pthread_t t[4];
    int made = 0;
    for (int i = 0; i < 4; ++i) {
      int err = pthread_create(&t[made], NULL, short_lived, (void *)(uintptr_t)i);
      if (err)
        anomaly(W_CHURN, "pthread_create failed: %s", strerror(err));
      else
        ++made;
    }
    for (int i = 0; i < made; ++i) {
      void *ret = NULL;
      int err = pthread_join(t[i], &ret);
      if (err || ret == NULL)
        anomaly(W_CHURN, "pthread_join failed: %s", strerror(err));
    }
    op_done(W_CHURN);
  }
  return NULL;
}

/* ---- setup ---- */
static void start(void *(*fn)(void *), const char *name) {
  pthread_t t;
  int err = pthread_create(&t, NULL, fn, NULL);
  if (err) {
    fprintf(stderr, "stress_target: pthread_create: %s\n", strerror(err));
    exit(2);
  }
  pthread_setname_np(t, name);
}

/* ---- the exec loop: replace the whole process with a new generation ---- */
static const char *exec_argv0, *exec_stats_path;
static char exec_gen[32], exec_ms_arg[32], exec_threads_arg[32];
static int exec_after_ms;

static void *exec_self(void *arg) {
  (void)arg;
  sleep_ms(exec_after_ms);
  char *const args[] = {(char *)exec_argv0, "--stats", (char *)exec_stats_path,
                        "--exec-loop", exec_ms_arg, "--exec-threads", exec_threads_arg,
                        "--generation", exec_gen, NULL};
  execv("/proc/self/exe", args);
  anomaly(W_SLEEP, "exec failed: %s", strerror(errno));
  exit(1);
}

static void die(const char *what) {
  fprintf(stderr, "stress_target: %s: %s\n", what, strerror(errno));
  exit(2);
}

int main(int argc, char **argv) {
  const char *stats_path = NULL;
  int ready_fd = -1, churn = 0, exec_ms = 0, exit_ms = 0, exec_threads = 0;
  long generation = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--stats")) stats_path = argv[i + 1];
    else if (!strcmp(argv[i], "--ready-fd")) ready_fd = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--churn")) churn = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--exec-loop")) exec_ms = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--exec-threads")) exec_threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--generation")) generation = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--exit-after")) exit_ms = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: stress_target --stats PATH [--ready-fd FD] [--churn N] "
                      "[--exec-loop MS] [--exec-threads N] [--exit-after MS]\n");
      return 2;
    }
  }
  if (!stats_path) {
    fprintf(stderr, "stress_target: --stats is required\n");
    return 2;
  }
  int sfd = open(stats_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (sfd < 0 || ftruncate(sfd, 4096) != 0)
    die("stats file");
  stats = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
  if (stats == MAP_FAILED)
    die("mmap stats");
  close(sfd);
  if (generation == 0)
    memset((void *)stats, 0, 4096);
  stats[S_PID] = (uint64_t)getpid();
  stats[S_WORKERS] = churn ? W_COUNT : W_CHURN;
  stats[S_GENERATION] = (uint64_t)generation;
  __atomic_store_n(&stats[S_MAGIC], STATS_MAGIC, __ATOMIC_RELEASE);

  if (exec_ms > 0) {
    exec_stats_path = stats_path;
    /* Exec racing an attach: a few threads, then replace the whole process. */
    start(sleeper, "sleeper");
    start(futex_waiter, "futex-wait");
    start(futex_waker, "futex-wake");
    for (int i = 0; i < exec_threads; ++i)
      start(sleeper, "exec-sleeper");
    if (ready_fd >= 0) {
      char c = 'R';
      if (write(ready_fd, &c, 1) != 1)
        die("ready fd");
      close(ready_fd);
    }
    snprintf(exec_gen, sizeof exec_gen, "%ld", generation + 1);
    snprintf(exec_ms_arg, sizeof exec_ms_arg, "%d", exec_ms);
    snprintf(exec_threads_arg, sizeof exec_threads_arg, "%d", exec_threads);
    exec_argv0 = argv[0];
    exec_after_ms = exec_ms;
    if (generation % 2 == 0)
      exec_self(NULL);
    start(exec_self, "exec-from-thread");
    for (;;)
      pause();
  }

  if (pipe2(pipe_fds, O_CLOEXEC) != 0)
    die("pipe");
  event_fd = eventfd(0, EFD_CLOEXEC);
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (event_fd < 0 || epoll_fd < 0)
    die("eventfd/epoll");
  struct epoll_event ev = {.events = EPOLLIN};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, event_fd, &ev) != 0)
    die("epoll_ctl");
  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  listen_addr.sin_family = AF_INET;
  listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof listen_addr;
  if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) ||
      listen(listen_fd, 64) || getsockname(listen_fd, (struct sockaddr *)&listen_addr, &len))
    die("listen");

  start(pipe_reader, "pipe-reader");
  start(pipe_writer, "pipe-writer");
  start(sleeper, "sleeper");
  start(futex_waiter, "futex-wait");
  start(futex_waker, "futex-wake");
  start(epoller, "epoll");
  start(event_poster, "event-post");
  start(acceptor, "acceptor");
  start(client, "client");
  start(parent, "waitpid");
  for (int i = 0; i < churn; ++i)
    start(churner, "churn");

  /* Ready once every worker completed an operation (deadline: 20 s). */
  uint64_t deadline = now_ns() + 20000000000ull;
  for (;;) {
    int all = 1;
    for (int w = 0; w < (int)stats[S_WORKERS]; ++w)
      if (__atomic_load_n(&stats[S_OPS + w], __ATOMIC_RELAXED) == 0)
        all = 0;
    if (all)
      break;
    if (now_ns() > deadline) {
      fprintf(stderr, "stress_target: workers did not start\n");
      return 2;
    }
    sleep_ms(1);
  }
  __atomic_store_n(&stats[S_READY], 1, __ATOMIC_RELEASE);
  if (ready_fd >= 0) {
    char c = 'R';
    if (write(ready_fd, &c, 1) != 1)
      die("ready fd");
    close(ready_fd);
  }
  if (exit_ms > 0) {
    sleep_ms(exit_ms); /* exit on our own, racing whoever inspects us */
    _exit(0);
  }
  for (;;)
    pause(); /* main thread: parked; the tests kill us */
}
