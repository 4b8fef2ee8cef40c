// TargetImage: one process image as every command sees it.
//
// A dump, a sampling pass and (later) a core file all need the same things
// of their target: what /proc says (maps, threads, their ids in the
// target's pid namespace), its memory (live, with the stacks the last pause
// copied laid over it), where its Python interpreter is, the unwinder's
// tables and the symbolizer's caches. They are built here, once per image,
// and each command only decides when to pause and what to show.
//
// An image lasts until the program changes: an exec (a new program), or new
// mappings (dlopen), which replaceMaps() takes in without reading symbols
// or locating the interpreter again. The object is not movable: the
// unwinder holds references to its maps and memory.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "driver/Stages.h"
#include "memory/ProcessMemory.h"
#include "memory/SnapshotMemory.h"
#include "model/Snapshot.h"
#include "python/frames/Interpreter.h"
#include "symbolize/Symbolizer.h"
#include "unwind/Unwinder.h"

namespace stackpeek {

class TargetImage {
public:
  struct Options {
    std::vector<std::string> debugDirs;
    // Keep cached pages of read-only file mappings (code, unwind tables)
    // when the cache is cleared: worth it when the image is read again and
    // again (record), not for one dump.
    bool keepImmutablePages = false;
  };

  /// Reads the live process `pid`: its /proc facts and its interpreter.
  /// What the user is shown of them (command, executable, Python version,
  /// why Python is unavailable) goes to `process`.
  TargetImage(pid_t pid, Options options, Process &process);
  TargetImage(const TargetImage &) = delete;
  TargetImage &operator=(const TargetImage &) = delete;

  pid_t pid() const { return pid_; }
  ProcessFacts &facts() { return facts_; }
  const ProcessFacts &facts() const { return facts_; }
  ProcessMemory &live() { return live_; }
  /// The stacks of the last pause over the live memory: what unwinding reads.
  SnapshotMemory &snapshot() { return snapshot_; }
  python::Interpreter *python() { return interp_ ? &*interp_ : nullptr; }

  /// Re-reads the facts and the interpreter of the same program (it was
  /// still starting), keeping the symbols read so far.
  void reread(Process &process);

  /// Starts the symbols over: modules came and went, and an address cached
  /// as unknown may belong to one now.
  void forgetSymbols();

  /// Takes in changed mappings: the unwinder and the cached pages follow;
  /// the symbols and the interpreter's place stay.
  void replaceMaps(std::vector<MapEntry> maps);

  /// The native frames of one stopped thread, unwound over the snapshot and
  /// symbolized; why the walk ended early goes to `errors`.
  std::vector<Frame> nativeStack(const user_regs_struct &regs, std::vector<std::string> &errors);

  /// Modules that left frames unnamed, each once, in the order found.
  const std::vector<ModuleWithoutSymbols> &modulesWithoutSymbols() const {
    return symbolizer_->modulesWithoutSymbols();
  }

private:
  void readFacts(Process &process);
  void rebuildUnwinder();

  pid_t pid_;
  Options options_;
  ProcessFacts facts_;
  ProcessMemory live_;
  SnapshotMemory snapshot_;
  std::optional<python::Interpreter> interp_;
  std::unique_ptr<Unwinder> unwinder_;
  std::unique_ptr<Symbolizer> symbolizer_;
};

} // namespace stackpeek
