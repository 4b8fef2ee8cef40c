// mergeNativeAndPython(): splicing Python frames into a native stack.
//
// The interpreter runs Python code inside its eval loop, so a native unwind
// shows `_PyEval_EvalFrameDefault` (PyEval_EvalFrameEx on 2.7) where Python
// functions ran. How many Python frames one eval-loop activation ran depends
// on the version (docs/cpython-structures.md §7):
//  - ≤3.10: exactly one (resolve() marks every frame pythonEntry);
//  - 3.11: from the newest down to the frame with is_entry;
//  - 3.12+: down to the frame just above a shim (owner FRAME_OWNED_BY_CSTACK).
// Either way the captured frames carry pythonEntry on the outermost frame of
// each activation, so the Python stack splits into blocks, one per eval-loop
// native frame, innermost first.
//
// From 3.12 the eval loop keeps the shim frame that closes an activation
// among its own C locals, so the shim's address lies between that native
// frame's stack pointer and its caller's. When every activation's shim lies
// on the native stack, that places each one exactly, with or without
// symbols (Debian's interpreter is stripped); a named frame that is not the
// eval loop receiving one means the addresses are not what we think, and
// the name count decides instead.
//
// When counts disagree by one extra native eval frame (a callee already
// popped its Python frame but has not returned in C yet) the innermost eval
// frame is dropped; any other mismatch is reported and the Python frames are
// placed after the native ones rather than guessed into wrong places.
#include "python/frames/Merge.h"
#include "python/frames/Resolve.h"

namespace stackpeek::python {

namespace {

bool nameStartsWith(const Frame &f, llvm::StringRef prefix) {
  if (!f.function)
    return false;
  llvm::StringRef name(*f.function);
  // GCC may split a function into "name" and "name.cold"; both are the loop.
  return name == prefix || name.startswith((prefix + ".").str());
}

std::vector<std::vector<Frame>> activations(const std::vector<Frame> &python) {
  std::vector<std::vector<Frame>> blocks(1);
  for (const Frame &f : python) {
    blocks.back().push_back(f);
    if (f.pythonEntry)
      blocks.emplace_back();
  }
  if (blocks.back().empty())
    blocks.pop_back();
  return blocks;
}

// The native frame whose stack region holds `addr`: frames are innermost
// first, so the stack pointer grows with the index. Inlined frames share
// their physical frame's stack pointer; the outermost of them owns it.
std::optional<size_t> frameHolding(const std::vector<Frame> &native, uint64_t addr) {
  for (size_t i = 0; i + 1 < native.size(); ++i) {
    if (!native[i].stackPointer || !native[i + 1].stackPointer)
      return std::nullopt;
    if (addr >= *native[i].stackPointer && addr < *native[i + 1].stackPointer)
      return i;
  }
  return std::nullopt;
}

// Places each activation at the native frame holding its entry record, or
// nullopt when one lacks a record on the stack or lands somewhere odd.
std::optional<std::vector<std::optional<size_t>>>
placeByEntryRecord(const std::vector<Frame> &native,
                   const std::vector<std::vector<Frame>> &blocks) {
  std::vector<std::optional<size_t>> owner(native.size());
  size_t previous = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const Frame &entry = blocks[b].back();
    if (!entry.entryRecordAddress)
      return std::nullopt;
    std::optional<size_t> at = frameHolding(native, *entry.entryRecordAddress);
    // Activations are innermost first, as the native frames are.
    if (!at || (b > 0 && *at <= previous) || owner[*at])
      return std::nullopt;
    if (native[*at].function && !isEvalFrame(native[*at]))
      return std::nullopt;
    owner[*at] = b;
    previous = *at;
  }
  return owner;
}

} // namespace

bool isEvalFrame(const Frame &native) {
  return native.kind == Frame::Kind::Native &&
         (nameStartsWith(native, "_PyEval_EvalFrameDefault") ||
          nameStartsWith(native, "PyEval_EvalFrameEx"));
}

MergedStack mergeNativeAndPython(const std::vector<Frame> &native,
                                 const std::vector<Frame> &python) {
  MergedStack out;
  if (python.empty()) {
    out.frames = native;
    return out;
  }
  // 3.6-3.10 still have PyEval_EvalFrameEx as a thin wrapper calling
  // _PyEval_EvalFrameDefault: count only the real loop when present.
  bool hasDefault = false;
  for (const Frame &f : native)
    hasDefault |= nameStartsWith(f, "_PyEval_EvalFrameDefault");
  auto isLoop = [&](const Frame &f) {
    return f.kind == Frame::Kind::Native &&
           (hasDefault ? nameStartsWith(f, "_PyEval_EvalFrameDefault")
                       : nameStartsWith(f, "PyEval_EvalFrameEx"));
  };
  std::vector<std::vector<Frame>> blocks = activations(python);
  if (auto owner = placeByEntryRecord(native, blocks)) {
    size_t firstPlaced = native.size();
    for (size_t i = 0; i < native.size() && firstPlaced == native.size(); ++i)
      if ((*owner)[i])
        firstPlaced = i;
    for (size_t i = 0; i < native.size(); ++i) {
      if ((*owner)[i]) {
        const std::vector<Frame> &block = blocks[*(*owner)[i]];
        out.frames.insert(out.frames.end(), block.begin(), block.end());
      } else if (!(i < firstPlaced && isLoop(native[i]))) {
        // An eval frame inside the innermost activation has already popped
        // its Python frame; it is dropped as the count rule drops it.
        out.frames.push_back(native[i]);
      }
    }
    return out;
  }
  size_t evalCount = 0;
  for (const Frame &f : native)
    evalCount += isLoop(f);

  if (evalCount != blocks.size() && evalCount != blocks.size() + 1) {
    out.frames = native;
    out.frames.insert(out.frames.end(), python.begin(), python.end());
    out.warning = "cannot merge: " + std::to_string(evalCount) +
                  " native eval frames vs " + std::to_string(blocks.size()) +
                  " Python activations; Python frames listed after native ones";
    return out;
  }
  size_t skip = evalCount - blocks.size(); // 0 or 1 innermost eval frame
  size_t next = 0;
  for (const Frame &f : native) {
    if (!isLoop(f)) {
      out.frames.push_back(f);
      continue;
    }
    if (skip > 0) {
      --skip;
      continue;
    }
    const std::vector<Frame> &block = blocks[next++];
    out.frames.insert(out.frames.end(), block.begin(), block.end());
  }
  return out;
}

} // namespace stackpeek::python
