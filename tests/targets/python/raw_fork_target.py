"""Python target for stackpeek's integration tests: a child forked behind
CPython's back.

Why it exists: to have a process whose interpreter is readable but whose
thread state names a thread it does not have. libc's fork() called through
ctypes skips CPython's after-fork handling, so the child's only thread state
still holds the parent's native_thread_id (3.11+, where that field is the
one read). stackpeek must say so in a note, not dump a native-only process
without a word. The parent waits; the child, which dies with its parent
(PR_SET_PDEATHSIG), writes one byte to READY_FD and sleeps.

Usage: raw_fork_target.py READY_FD
"""
import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1

ready_fd = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
parent = os.getpid()
if libc.fork() == 0:
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)
    os.write(ready_fd, b"x")
time.sleep(1000000)
