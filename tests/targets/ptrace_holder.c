/* ptrace_holder: plays "another debugger" for the test that stackpeek refuses
 * a target that is already traced (exit 5).  It PTRACE_SEIZEs every thread of
 * PID (seizing does not stop them), writes one byte to READY_FD, then serves
 * ptrace events (passing signals through) until its tracees are gone or it is
 * killed; either way the kernel detaches and the target runs on.
 *
 * Usage: ptrace_holder PID READY_FD
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: ptrace_holder PID READY_FD\n");
    return 2;
  }
  pid_t pid = (pid_t)atoi(argv[1]);
  int ready_fd = atoi(argv[2]);
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR* d = opendir(path);
  if (!d) {
    perror("ptrace_holder: opendir");
    return 1;
  }
  int seized = 0;
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    pid_t tid = (pid_t)atoi(e->d_name);
    if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) {
      fprintf(stderr, "ptrace_holder: PTRACE_SEIZE %d: %s\n", (int)tid, strerror(errno));
      return 1;
    }
    ++seized;
  }
  closedir(d);
  if (seized == 0) return 1;
  char b = 'R';
  if (write(ready_fd, &b, 1) != 1) return 1;
  close(ready_fd);
  for (;;) {
    int status;
    pid_t w = waitpid(-1, &status, __WALL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return 0; /* ECHILD: every tracee is gone */
    }
    if (WIFSTOPPED(status)) {
      int sig = WSTOPSIG(status);
      /* signal-delivery-stop: pass the signal on; group-stop / event stops: continue */
      unsigned event = (unsigned)status >> 16;
      if (event != 0 || sig == SIGTRAP) sig = 0;
      ptrace(PTRACE_CONT, w, 0, (void*)(long)sig);
    }
  }
}
