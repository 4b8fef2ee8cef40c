/* Native target for the `stackpeek run` tests: a C process that hangs in a
 * function with a known name.
 *
 * Why: the process-tree tests need a child that is not Python, whose stack
 * stackpeek must unwind natively, and the kill tests need processes that
 * ignore SIGTERM so only SIGKILL ends them.
 *
 * Usage: hang_native [--ignore-term] [--fork N]
 *   --ignore-term  ignore SIGTERM (only SIGKILL ends it)
 *   --fork N       first fork N children that do the same (a deeper tree)
 * Readiness: if STACKPEEK_TEST_READY_FD is set, every process (parent and
 * forked children) writes one byte 'n' to that fd right before it parks in
 * native_child_hangs_here(), which waits in pause() forever and uses no CPU.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static void announce(void) {
  const char *fd = getenv("STACKPEEK_TEST_READY_FD");
  if (fd && write(atoi(fd), "n", 1) != 1)
    _exit(2);
}

__attribute__((noinline)) void native_child_hangs_here(void) {
  announce();
  for (;;)
    pause();
}

int main(int argc, char **argv) {
  int forks = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--ignore-term") == 0)
      signal(SIGTERM, SIG_IGN);
    else if (strcmp(argv[i], "--fork") == 0 && i + 1 < argc)
      forks = atoi(argv[++i]);
  }
  for (int i = 0; i < forks; ++i) {
    pid_t pid = fork();
    if (pid < 0)
      return 2;
    if (pid == 0)
      break; /* children do not fork further */
  }
  native_child_hangs_here();
  return 0;
}
