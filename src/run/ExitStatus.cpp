// ExitStatus: the wait-status decoding and the exec-failure codes.
#include "run/ExitStatus.h"

#include <sys/wait.h>

#include <cerrno>

namespace stackpeek {

int exitCodeForWaitStatus(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return kRunFailed; // stopped/continued are never final states
}

int exitCodeForExecError(int error) {
  // ENOENT/ENOTDIR: nothing of that name on PATH, as in sh's "not found".
  return error == ENOENT || error == ENOTDIR ? kRunNotFound : kRunCannotExecute;
}

} // namespace stackpeek
