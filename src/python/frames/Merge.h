// Merge: splicing a thread's Python frames into its native stack in place
// of the interpreter's eval-loop frames (docs/cpython-structures.md §7).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/Snapshot.h"

namespace stackpeek::python {

struct MergedStack {
  std::vector<Frame> frames;          // innermost first
  std::optional<std::string> warning; // set when the stacks did not line up
};

/// True for native frames that run the bytecode loop
/// (_PyEval_EvalFrameDefault; PyEval_EvalFrameEx on 2.7).
bool isEvalFrame(const Frame &native);

/// Replaces the eval-loop native frames by the Python frames each ran. Each
/// activation's Python frames end (outermost) at a frame with pythonEntry.
/// Activations are placed by where their entry record lies on the native
/// stack when every one of them has one there (3.12+), else by counting
/// eval-loop frames by name.
MergedStack mergeNativeAndPython(const std::vector<Frame> &native,
                                 const std::vector<Frame> &python);

} // namespace stackpeek::python
