// The snapshot model: what stackpeek learned about a process, as plain data.
//
// Renderers (text, JSON, profiles) take these structs and nothing else: no
// pid, no live handle. That keeps every output format testable from a model
// built by hand, and keeps "what we found" separate from "how we found it".
//
// Absent facts are empty optionals, never made-up values: a frame with no
// debug info has no file, not file "??". Frames are stored innermost first.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace stackpeek {

// A Python local variable as read from the target (`dump --locals`): its
// bounded repr (see python/objects/Reprs.h for the rules) and its type's tp_name.
struct LocalVariable {
  std::string name;
  std::string repr; // "<unset>" for a local not assigned yet
  std::optional<std::string> type; // null for unset or unreadable values
};

struct Frame {
  enum class Kind { Native, Python };
  Kind kind = Kind::Native;

  // Native frames: the instruction address (for return addresses, the address
  // itself; symbolization looks up address-1 so the call site is reported).
  uint64_t address = 0;
  std::optional<std::string> function; // demangled C++ name or Python qualname
  std::optional<std::string> module;   // path of the shared object / executable
  std::optional<uint64_t> moduleOffset; // address relative to the module's load base
  std::optional<std::string> file;
  std::optional<uint32_t> line;
  std::optional<uint32_t> column;
  bool inlined = false; // this frame was inlined into the next (outer) one

  // Python frames (3.11+ carry end positions; earlier versions leave them empty).
  std::optional<uint32_t> endLine;
  std::optional<uint32_t> endColumn;
  // Python frames: the frame is the entry frame of an interpreter invocation
  // (a C->Python call boundary); the native merge uses it.
  bool pythonEntry = false;
  // Native frames: the stack pointer while the frame ran (its locals lie
  // from here up to the caller's). Python entry frames, 3.12+: the address
  // of the boundary record that closes the activation, which the eval loop
  // keeps among its own locals. Together they tie each activation to its
  // native frame without symbols (a stripped interpreter).
  std::optional<uint64_t> stackPointer;
  std::optional<uint64_t> entryRecordAddress;
  // The text of `line` in `file`, filled in after resume by the driver when
  // the file is readable (renderers never read files themselves).
  std::optional<std::string> sourceLine;
  // Arguments and local variables when requested (--locals), in the code
  // object's order: arguments first, then locals, cells, free variables.
  std::vector<LocalVariable> locals;

  // A frame that could not be decoded carries the reason; other fields may be
  // partially filled.
  std::optional<std::string> error;
};

// One exception of the chain a Python thread is handling (inside `except`,
// or a `finally` running because of an exception), as traceback.py prints it.
struct PythonException {
  std::string type;    // as traceback prints it: "ValueError", "mod.MyError"
  std::string message; // str(exc), for the cases python/depth/Exceptions.h lists
  std::vector<Frame> traceback; // most recent call last, like the printout
  // How this exception relates to the previous entry of the chain: "cause"
  // (raise ... from) or "context" (raised while handling); empty for the
  // exception being handled itself.
  std::string chainedAs;
  std::optional<std::string> error; // could not be read completely
};

// A Python thread and its interpreter's GIL. NotHeld: not holding it, but
// whether it waits for it is unknown (no registers, or a version whose GIL
// lock cannot be located).
enum class GilState { Held, Waiting, Released, NotHeld };

struct Thread {
  pid_t tid = 0;
  std::string name;   // /proc/PID/task/TID/comm
  std::string state;  // running, sleeping, disk-wait, stopped, zombie, ...
  std::optional<std::string> wchan; // kernel function it sleeps in, when known

  std::vector<Frame> frames; // innermost first
  // How many innermost-first frames were dropped by --max-frames.
  size_t framesOmitted = 0;
  // Why the stack is incomplete or missing (e.g. "not captured: thread in
  // uninterruptible sleep", "unwinding stopped: frame loop"); empty if whole.
  std::vector<std::string> errors;

  // Python facts, filled only for threads of a Python target.
  std::optional<std::string> pythonThreadName;
  std::optional<GilState> gil;
  // The garbage collector runs on this thread (null: not a Python thread,
  // or the version's collector flag is not known).
  std::optional<bool> collectingGarbage;
  std::optional<bool> idle;
  // The exception being handled, then the exceptions it chains to (its
  // __cause__, else its __context__, ...), bounded; empty when none.
  std::vector<PythonException> handlingException;

  std::optional<bool> holdsGil() const {
    if (!gil)
      return std::nullopt;
    return *gil == GilState::Held;
  }
};

// asyncio, per running event loop (`dump --async`).
struct AsyncioTask {
  std::string id;     // the Task object's address, "0x..."
  std::string name;   // Task.get_name()
  std::string state;  // "running", "pending", "done", "cancelled"
  std::vector<Frame> stack; // awaiting coroutines, outermost (the task's) first
  std::vector<std::string> awaitedBy; // ids of tasks waiting for this one
  std::optional<std::string> awaiting; // what the innermost coroutine awaits
  std::optional<std::string> error;
};

struct AsyncioLoop {
  std::string id;                // the loop object's address
  std::optional<pid_t> thread;   // OS thread running it, when known
  std::vector<AsyncioTask> tasks;
};

struct AsyncioSnapshot {
  std::vector<AsyncioLoop> loops;
  std::vector<std::string> errors;
};

struct PythonInfo {
  std::string version;        // "3.11.7"
  std::string implementation = "cpython";
  bool freeThreaded = false;  // a --disable-gil build (3.13t, 3.14t, ...)
  // Free-threaded builds: whether the GIL was enabled at run time, as it is
  // when PYTHON_GIL=1 or an extension module requires it.
  std::optional<bool> gilEnabled;
};

struct Process {
  pid_t pid = 0;
  std::optional<pid_t> parentPid;
  std::string command;    // argv joined with spaces
  std::string executable; // /proc/PID/exe target
  std::vector<Thread> threads;
  std::vector<std::string> errors; // process-level problems (partial dump, ...)
  std::optional<PythonInfo> python;
  // Why a process that runs Python has no Python frames in this snapshot
  // (an undecodable runtime, unreadable thread states, ...); also among
  // `errors`. Empty for a process that is not Python at all.
  std::optional<std::string> pythonUnavailable;
  std::optional<AsyncioSnapshot> asyncio; // only with --async

  // How long the target was paused while the snapshot was taken.
  std::optional<double> pauseMicros;
};

} // namespace stackpeek
