#include "driver/ChainMemo.h"

namespace stackpeek {

ChainMemo::ChainKey ChainMemo::keyOf(const python::CapturedThread &thread) {
  ChainKey key;
  key.reserve(thread.frames.size());
  for (const python::CapturedFrame &f : thread.frames)
    key.push_back({f.codeAddr, f.lasti, f.instrPtr, f.owner, f.entry});
  return key;
}

std::optional<StackId> ChainMemo::lastStack(const python::CapturedThread &thread,
                                            const ChainKey &key) const {
  if (thread.frames.empty())
    return std::nullopt;
  for (const python::CapturedFrame &f : thread.frames)
    if (f.error)
      return std::nullopt;
  auto last = last_.find(thread.osTid);
  if (last == last_.end() || last->second.key != key)
    return std::nullopt;
  return last->second.stack;
}

void ChainMemo::bound(size_t limit) {
  if (last_.size() > limit)
    last_.clear();
}

} // namespace stackpeek
