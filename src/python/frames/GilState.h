// GilState: whether a thread holds the GIL, waits for it, or neither, from
// what capture() read and where the thread was stopped.
#pragma once

#include <optional>
#include <vector>

#include "model/Snapshot.h"
#include "python/frames/Capture.h"

namespace stackpeek::python {

/// The system call a stopped thread was in, from its registers.
struct SyscallStop {
  long number = -1;    // orig_rax; -1 when not stopped in a system call
  uint64_t arg0 = 0;   // rdi: for futex, the futex word's address
};

/// The thread's GIL state from what capture() read, the system call it was
/// stopped in (nullopt: registers unknown, e.g. record --nonblocking) and
/// its native frames (`take_gil` is proof of waiting).
GilState classifyGil(bool holdsGil, const ThreadStatus &status,
                     const std::optional<SyscallStop> &stop,
                     const std::vector<Frame> &frames);

} // namespace stackpeek::python
