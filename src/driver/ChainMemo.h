// ChainMemo: each sampled thread's last Python-only stack, and the frame
// chain it was decoded from.
//
// A thread that sleeps, or loops in one place, shows the same chain pass
// after pass: the same code objects at the same instructions. Code objects
// do not change once made, so a chain equal to the last one (and whose code
// objects are still the ones decoded, which the code cache checks) gives
// the same stack, and an idle thread then costs a comparison instead of
// decoding and interning every frame. Only chains read whole are kept: one
// cut short (an error) is decoded afresh each time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "profile/Profile.h"
#include "python/frames/Capture.h"

namespace stackpeek {

class ChainMemo {
public:
  // What a Python-only stack is decoded from, frame by frame.
  struct FrameKey {
    uint64_t code;
    int64_t lasti;
    uint64_t instr;
    uint8_t owner;
    bool entry;
    bool operator==(const FrameKey &) const = default;
  };
  using ChainKey = std::vector<FrameKey>;

  static ChainKey keyOf(const python::CapturedThread &thread);

  /// The stack last recorded for this thread, when it was decoded from the
  /// chain `key` and `thread` was read whole.
  std::optional<StackId> lastStack(const python::CapturedThread &thread, const ChainKey &key) const;

  void remember(pid_t tid, ChainKey key, StackId stack) { last_[tid] = {std::move(key), stack}; }
  void forget(pid_t tid) { last_.erase(tid); }
  void clear() { last_.clear(); }
  /// Forgets everything once more than `limit` threads are remembered
  /// (threads come and go; the memo must not grow with them).
  void bound(size_t limit);

private:
  struct Decoded {
    ChainKey key;
    StackId stack = 0;
  };
  std::map<pid_t, Decoded> last_;
};

} // namespace stackpeek
