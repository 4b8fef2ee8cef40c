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
  // The text of `line` in `file`, filled in after resume by the driver when
  // the file is readable (renderers never read files themselves).
  std::optional<std::string> sourceLine;
  // Local variables as (name, repr) when requested; kept in definition order.
  std::vector<std::pair<std::string, std::string>> locals;

  // A frame that could not be decoded carries the reason; other fields may be
  // partially filled.
  std::optional<std::string> error;
};

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
  std::optional<bool> holdsGil;
  std::optional<bool> idle;
};

struct PythonInfo {
  std::string version;        // "3.11.7"
  std::string implementation = "cpython";
};

struct Process {
  pid_t pid = 0;
  std::optional<pid_t> parentPid;
  std::string command;    // argv joined with spaces
  std::string executable; // /proc/PID/exe target
  std::vector<Thread> threads;
  std::vector<std::string> errors; // process-level problems (partial dump, ...)
  std::optional<PythonInfo> python;

  // How long the target was paused while the snapshot was taken.
  std::optional<double> pauseMicros;
};

} // namespace stackpeek
