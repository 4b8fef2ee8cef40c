// Stages: the steps of the stack pipeline, shared by `dump` (one snapshot)
// and `record` (many). Each is a short function over explicit inputs; the
// drivers (Dump.cpp, Sampler.cpp) string them together in order.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "memory/ProcessMemory.h"
#include "memory/SnapshotMemory.h"
#include "model/Snapshot.h"
#include "process/Attach.h"
#include "process/Maps.h"
#include "process/TidMap.h"
#include "python/frames/Interpreter.h"
#include "python/frames/Resolve.h"
#include "symbolize/Symbolizer.h"
#include "unwind/Unwinder.h"

namespace stackpeek {

/// What /proc says about one thread, read without stopping it.
struct ThreadFacts {
  std::string name;
  char state = '?';
  std::optional<std::string> wchan;
};
ThreadFacts readThreadFacts(pid_t pid, pid_t tid);

/// Everything /proc can tell about a process without stopping anything.
struct ProcessFacts {
  std::vector<MapEntry> maps;
  std::map<pid_t, ThreadFacts> threads;
  TidMap tidMap; // the threads' ids in the process's own pid namespace
  std::vector<pid_t> tids() const;
};
/// Fills process.command/executable/parentPid too.
ProcessFacts readProcessFacts(pid_t pid, Process &process);

/// Finds the Python interpreter, if any. Problems become notes on the
/// process (the native stacks are still worth printing).
std::optional<python::Interpreter> locatePython(pid_t pid, MemorySource &mem,
                                                Process &process);

/// Why Python stacks are unavailable for a process whose interpreter was read but none of whose
/// thread states belongs to one of `threads` (those attached, our ids),
/// with the reason; nullopt when some did, or there were none.
std::optional<std::string>
unmatchedPythonNote(const std::vector<python::PythonThreadStack> &stacks,
                    const std::vector<pid_t> &threads, const TidMap &tidMap);

/// While stopped: copies the live part of each thread's stack (just below
/// the stack pointer to the top of its mapping). `maps` is re-read once if
/// a stack is in a mapping it does not know (a new thread).
std::vector<MemoryCopy> copyStacks(const std::vector<StoppedThread> &threads, pid_t pid,
                                   std::vector<MapEntry> &maps, ProcessMemory &live,
                                   std::vector<std::string> &notes);

/// A model thread with its /proc facts (from `facts`, else read now).
Thread makeThread(pid_t pid, pid_t tid, const ProcessFacts &facts);

/// Unwinds and symbolizes one thread from its stop registers. Why the walk
/// ended early, if it did, is added to `errors`.
std::vector<Frame> nativeStack(Unwinder &unwinder, Symbolizer &symbolizer,
                               const std::vector<MapEntry> &maps,
                               const user_regs_struct &regs,
                               std::vector<std::string> &errors);

/// Gives a thread its Python facts and frames: Python frames alone, or
/// merged into `native` when `merge`. A thread state with no Python frames
/// keeps `native`.
void applyPython(Thread &thread, python::PythonThreadStack &py,
                 std::vector<Frame> native, bool merge);

/// After applyPython(): tells a thread that does not hold the GIL apart as
/// waiting for it or not, from the system call its stop registers show and
/// its native frames. Only for threads stopped with registers read.
void applyGilWait(Thread &thread, const python::PythonThreadStack &py,
                  const user_regs_struct &regs);

} // namespace stackpeek
