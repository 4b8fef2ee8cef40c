// One mapping from what went wrong to the exit code, for every command, so
// the same failure ends `dump`, `record` and `run` alike (README.md, "Exit
// codes").
#include "Commands.h"

#include "llvm/Support/raw_ostream.h"

#include "process/Attach.h"

namespace stackpeek::tool {

namespace {

int exitCodeForAttach(AttachFailure kind) {
  switch (kind) {
  case AttachFailure::NoSuchProcess: return kNoSuchProcess;
  case AttachFailure::PermissionDenied: return kPermissionDenied;
  case AttachFailure::AlreadyTraced: return kAlreadyTraced;
  case AttachFailure::NotDumpable: return kNotDumpable;
  case AttachFailure::NotStopped: return kNotDumpable;
  case AttachFailure::Other: return kInternal;
  }
  return kInternal;
}

} // namespace

int exitCodeFor(llvm::Error err, int otherwise, llvm::StringRef context) {
  int code = kOk;
  llvm::handleAllErrors(
      std::move(err),
      [&](const AttachError &e) {
        llvm::errs() << "stackpeek: " << e.message() << "\n";
        code = std::max(code, exitCodeForAttach(e.kind()));
      },
      [&](const llvm::ErrorInfoBase &e) {
        llvm::errs() << "stackpeek: " << context << e.message() << "\n";
        code = std::max(code, otherwise);
      });
  return code;
}

} // namespace stackpeek::tool
