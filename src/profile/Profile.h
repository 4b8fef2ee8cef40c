// Profile: what `stackpeek record` collected, as plain data.
//
// A recording at 100-1000 Hz over many threads produces millions of stack
// samples that repeat the same few thousand stacks, so the model interns:
// each distinct frame is stored once (frames), each distinct stack once as
// a list of frame ids (stacks), and a sample is a timestamp, a pid/tid and a
// stack id. Writers (collapsed, flamegraph, speedscope, pprof, json) read
// this model only, never a process, so each can be tested on a hand-built
// profile.
//
// Frame ids and stack ids index the vectors. Stacks are innermost first,
// like thread stacks in model/Snapshot.h. Labels that group samples by
// thread or process (--threads, --subprocesses) are ordinary frames at the
// outer end of the stack, so writers need no special case for them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/Snapshot.h"

namespace stackpeek {

using FrameId = uint32_t;
using StackId = uint32_t;

struct ProfileFrame {
  Frame::Kind kind = Frame::Kind::Native;
  std::string function;              // "??" when unknown
  std::optional<std::string> file;   // source file (Python, or native with DWARF)
  std::optional<uint32_t> line;
  std::optional<std::string> module; // native: shared object path
  bool synthetic = false;            // a thread/process label, not code
};

struct ProfileSample {
  uint64_t timestampNs = 0; // since the start of the recording
  pid_t pid = 0;
  pid_t tid = 0;
  StackId stack = 0;
  uint64_t weightNs = 0;    // wall time this sample stands for (1/rate)
};

struct ProfileThread {
  pid_t pid = 0, tid = 0;
  std::string name;
};

struct ProfileProcess {
  pid_t pid = 0;
  std::string command;
};

struct Profile {
  std::vector<ProfileFrame> frames;
  std::vector<std::vector<FrameId>> stacks; // innermost first
  std::vector<ProfileSample> samples;
  std::vector<ProfileThread> threads;
  std::vector<ProfileProcess> processes;
  double rateHz = 0;
  uint64_t durationNs = 0;

  /// Interns a frame (by all its fields) and returns its id.
  FrameId internFrame(const ProfileFrame &frame);
  /// Interns a stack of frame ids (innermost first) and returns its id.
  StackId internStack(const std::vector<FrameId> &stack);

  /// The human-readable label of a frame, the same in every format:
  /// "function (file:line)" for Python, "function (module)" for native.
  std::string label(FrameId id) const;

private:
  std::map<std::tuple<int, std::string, std::string, uint32_t, std::string, bool>, FrameId>
      frameIndex_;
  std::map<std::vector<FrameId>, StackId> stackIndex_;
};

/// Converts a model Frame into a profile frame: the fields that identify
/// the code, not the instruction address. Python frames keep their line;
/// native frames are identified by function and module alone.
ProfileFrame profileFrameOf(const Frame &frame);

} // namespace stackpeek
