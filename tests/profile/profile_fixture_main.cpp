// stackpeek_profile_fixture: writes the hand-built profile of
// ProfileFixture.h in one format, so check_formats.py can hand the file to
// that format's real consumer (xmllint, a JSON-schema validator,
// go tool pprof) before `stackpeek record` exists to produce one.
//
// Usage: stackpeek_profile_fixture FORMAT OUTPUT_FILE
#include <cstdio>

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include "ProfileFixture.h"
#include "profile/ProfileWriter.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FORMAT OUTPUT_FILE\n", argv[0]);
    return 2;
  }
  auto format = stackpeek::formatFromName(argv[1]);
  if (!format) {
    std::fprintf(stderr, "unknown format %s\n", argv[1]);
    return 2;
  }
  std::error_code ec;
  llvm::raw_fd_ostream out(argv[2], ec, llvm::sys::fs::OF_None);
  if (ec) {
    std::fprintf(stderr, "%s: %s\n", argv[2], ec.message().c_str());
    return 1;
  }
  stackpeek::ProfileWriteOptions options;
  options.title = "fixture <profile> & \"title\"";
  if (llvm::Error e = stackpeek::writeProfile(stackpeek::fixture::makeProfile(), *format, out, options)) {
    llvm::errs() << llvm::toString(std::move(e)) << "\n";
    return 1;
  }
  out.close();
  return out.has_error() ? 1 : 0;
}
