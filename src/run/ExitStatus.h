// ExitStatus: how `stackpeek run` turns what happened into its own exit code.
//
// A transparent wrapper must exit as the command did, so CI sees the same
// result with and without stackpeek. A wait status carries either an exit
// code (passed through) or a terminating signal, which a process cannot
// reproduce by exiting: like shells, we report 128+N (SIGSEGV -> 139). The
// codes stackpeek adds itself follow GNU timeout, so existing CI scripts that
// check for 124 keep working.
#pragma once

namespace stackpeek {

enum RunExitCode {
  kRunTimedOut = 124,      // --timeout (or --kill-on-idle) fired; tree killed
  kRunFailed = 125,        // stackpeek itself failed (not the command)
  kRunCannotExecute = 126, // the command was found but could not be executed
  kRunNotFound = 127,      // the command was not found
};

/// Exit code for a waitpid() status of the command: its exit code, or
/// 128+signal if a signal ended it.
int exitCodeForWaitStatus(int status);

/// Exit code when exec of the command failed with `error` (an errno).
int exitCodeForExecError(int error);

} // namespace stackpeek
