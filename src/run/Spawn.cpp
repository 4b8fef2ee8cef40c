// Spawn: fork, adjust the child, exec; exec errors travel back through a
// close-on-exec pipe (EOF on it means exec succeeded).
#include "run/Spawn.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace stackpeek {

bool inTerminalForeground() {
  int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return false; // no controlling terminal
  pid_t foreground = ::tcgetpgrp(fd);
  ::close(fd);
  return foreground == ::getpgrp();
}

namespace {

// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void execChild(char *const *argv, const sigset_t &mask, bool ownGroup,
                            pid_t parent, int errorPipe) {
  if (ownGroup)
    ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) // stackpeek died before prctl took effect
    ::_exit(125);
  ::sigprocmask(SIG_SETMASK, &mask, nullptr);
  ::execvp(argv[0], argv);
  int error = errno;
  (void)!::write(errorPipe, &error, sizeof error);
  ::_exit(127);
}

// Reads the exec error the child sent, or 0 when the pipe closed empty.
int readExecError(int fd) {
  int error = 0;
  ssize_t n;
  do
    n = ::read(fd, &error, sizeof error);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof error) ? error : 0;
}

} // namespace

llvm::Expected<SpawnedCommand> spawnCommand(const std::vector<std::string> &argv,
                                            const sigset_t &childMask, bool ownGroup) {
  // Everything the child needs is built before fork: no allocation after it.
  std::vector<char *> cargv;
  for (const std::string &a : argv)
    cargv.push_back(const_cast<char *>(a.c_str()));
  cargv.push_back(nullptr);
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0)
    return llvm::createStringError(std::error_code(errno, std::generic_category()),
                                   "cannot create a pipe: %s", strerror(errno));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int error = errno;
    ::close(pipeFds[0]);
    ::close(pipeFds[1]);
    return llvm::createStringError(std::error_code(error, std::generic_category()),
                                   "cannot start the command: fork failed: %s",
                                   strerror(error));
  }
  if (pid == 0) {
    ::close(pipeFds[0]);
    execChild(cargv.data(), childMask, ownGroup, parent, pipeFds[1]);
  }
  ::close(pipeFds[1]);
  // Also set the group from here, so it is in place whichever side runs first
  // (after exec the kernel refuses, EACCES, which means the child did it).
  if (ownGroup)
    ::setpgid(pid, pid);
  SpawnedCommand spawned;
  spawned.ownGroup = ownGroup;
  spawned.execError = readExecError(pipeFds[0]);
  ::close(pipeFds[0]);
  if (spawned.execError) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return spawned;
  }
  spawned.pid = pid;
  return spawned;
}

} // namespace stackpeek
