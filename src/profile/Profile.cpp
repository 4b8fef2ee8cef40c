#include "profile/Profile.h"

#include "llvm/Support/Path.h"

namespace stackpeek {

FrameId Profile::internFrame(const ProfileFrame &f) {
  auto key = std::make_tuple(static_cast<int>(f.kind), f.function, f.file.value_or(""),
                             f.line.value_or(0), f.module.value_or(""), f.synthetic);
  auto [it, inserted] = frameIndex_.try_emplace(key, static_cast<FrameId>(frames.size()));
  if (inserted)
    frames.push_back(f);
  return it->second;
}

StackId Profile::internStack(const std::vector<FrameId> &stack) {
  auto [it, inserted] = stackIndex_.try_emplace(stack, static_cast<StackId>(stacks.size()));
  if (inserted)
    stacks.push_back(stack);
  return it->second;
}

std::string Profile::label(FrameId id) const {
  const ProfileFrame &f = frames[id];
  if (f.synthetic)
    return f.function;
  if (f.kind == Frame::Kind::Python && f.file)
    return f.function + " (" + *f.file + (f.line ? ":" + std::to_string(*f.line) : "") + ")";
  if (f.module)
    return f.function + " (" + llvm::sys::path::filename(*f.module).str() + ")";
  return f.function;
}

ProfileFrame profileFrameOf(const Frame &frame) {
  ProfileFrame f;
  f.kind = frame.kind;
  f.function = frame.function.value_or("??");
  f.file = frame.file;
  f.module = frame.module;
  // Python frames are told apart by line (as Python profilers show them);
  // a native function is one frame whatever instruction it was at.
  if (frame.kind == Frame::Kind::Python)
    f.line = frame.line;
  return f;
}

} // namespace stackpeek
