"""Is a debugger attached to this process right now?

Why: a test stopped at a breakpoint runs "too long" but is not hung; dumping
it would only add noise (and a native debugger would make ptrace fail).

Facts: sys.gettrace() is per thread, and the watchdog runs in its own
thread, so the main thread is inspected through its frames: pdb and every
bdb-based debugger (ipdb, pudb) set frame.f_trace on the frames they watch;
pydevd/debugpy's trace functions come from their own modules; on 3.12+
debuggers may use sys.monitoring's DEBUGGER_ID slot instead. A native
debugger (gdb, strace) shows up as TracerPid in /proc/self/status. Tracers
that are not debuggers (coverage) are deliberately not counted.
"""

import sys

_DEBUGGER_MODULES = ("bdb", "pdb", "ipdb", "pudb", "pydevd", "_pydevd", "debugpy")


def _is_debugger(trace):
    if trace is None:
        return False
    try:
        import bdb
        if isinstance(getattr(trace, "__self__", None), bdb.Bdb):
            return True
    except ImportError:
        pass
    owner = getattr(trace, "__self__", trace)
    names = [getattr(trace, "__module__", None) or ""]
    names += [getattr(cls, "__module__", "") or "" for cls in type(owner).__mro__]
    return any(n.split(".")[0].startswith(_DEBUGGER_MODULES) for n in names)


def _tracer_pid():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def stack_depth(frame):
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def debugger_attached(main_thread_ident, outer_depth=0):
    """outer_depth: how many outermost frames of the main thread to ignore.
    They belong to pytest itself, and a debugger used earlier leaves its
    f_trace there (bdb's set_continue clears frames only up to its botframe,
    the outermost one), so only the frames of the running test count."""
    if _tracer_pid() != 0:
        return True
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None and monitoring.get_tool(monitoring.DEBUGGER_ID):
        return True
    frame = sys._current_frames().get(main_thread_ident)
    for _ in range(max(0, stack_depth(frame) - outer_depth)):
        if _is_debugger(frame.f_trace):
            return True
        frame = frame.f_back
    return False
