// stackpeek: the command-line tool. Parses options, runs the library's
// pipeline, picks a renderer, maps failures to exit codes. Nothing else lives
// here; see src/driver for the pipeline itself.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "llvm/Support/raw_ostream.h"

#include "driver/Dump.h"
#include "process/Attach.h"
#include "render/Renderer.h"

namespace {

// Exit codes (documented in README.md, "Exit codes").
enum ExitCode {
  kOk = 0,
  kIncomplete = 1,
  kUsage = 2,
  kNoSuchProcess = 3,
  kPermissionDenied = 4,
  kAlreadyTraced = 5,
  kNotDumpable = 6,
  kInternal = 7,
};

int exitCodeFor(stackpeek::AttachFailure kind) {
  switch (kind) {
  case stackpeek::AttachFailure::NoSuchProcess: return kNoSuchProcess;
  case stackpeek::AttachFailure::PermissionDenied: return kPermissionDenied;
  case stackpeek::AttachFailure::AlreadyTraced: return kAlreadyTraced;
  case stackpeek::AttachFailure::NotDumpable: return kNotDumpable;
  case stackpeek::AttachFailure::Other: return kInternal;
  }
  return kInternal;
}

struct DumpArgs {
  std::vector<int> pids;
  std::string format = "text";
  stackpeek::DumpOptions options;
};

// Dumps each pid in turn; the worst outcome decides the exit code.
int runDump(const DumpArgs &args) {
  stackpeek::RenderOptions renderOptions;
  renderOptions.native = args.options.native;
  auto renderer = args.format == "json" ? stackpeek::makeJsonRenderer(renderOptions)
                                        : stackpeek::makeTextRenderer(renderOptions);
  llvm::raw_fd_ostream &out = llvm::outs();
  int exitCode = kOk;
  renderer->begin(out);
  for (int pid : args.pids) {
    auto result = stackpeek::dumpProcess(pid, args.options);
    if (!result) {
      llvm::handleAllErrors(
          result.takeError(),
          [&](const stackpeek::AttachError &e) {
            llvm::errs() << "stackpeek: " << e.message() << "\n";
            exitCode = std::max(exitCode, exitCodeFor(e.kind()));
          },
          [&](const llvm::ErrorInfoBase &e) {
            llvm::errs() << "stackpeek: pid " << pid << ": " << e.message() << "\n";
            exitCode = std::max<int>(exitCode, kInternal);
          });
      continue;
    }
    renderer->render(result->process, out);
    if (result->incomplete) {
      llvm::errs() << "stackpeek: pid " << pid << " exited during the dump; output is partial\n";
      exitCode = std::max<int>(exitCode, kIncomplete);
    }
  }
  renderer->end(out);
  out.flush();
  return exitCode;
}

const char *kDumpExamples = R"(
Examples:
  stackpeek dump 1234                  every thread of pid 1234, as text
  stackpeek dump --format json 1234    the same as one JSON document
  stackpeek dump 1234 5678             several processes, one after another
  stackpeek dump --debug-dir ./dbg 42  also look for separate debug files
                                       under ./dbg/.build-id/xx/yyyy.debug

The target is paused only while its registers and stacks are copied (the
pause is reported as pause_us in JSON), then resumed before any symbolization.

Exit codes: 0 ok, 1 partial (target exited mid-dump), 2 usage error,
3 no such process, 4 permission denied, 5 already traced by a debugger,
6 not dumpable (zombie or kernel thread), 7 internal error.
)";

} // namespace

int main(int argc, char **argv) {
  // First thing: whatever ends stackpeek must also let the target go.
  stackpeek::installDetachOnFatalSignals();

  CLI::App app{"stackpeek: show what a running process is doing, every thread's "
               "native and Python stack, without changing or restarting it."};
  app.set_version_flag("--version", std::string("stackpeek ") + STACKPEEK_VERSION);
  app.require_subcommand(1);
  app.footer("Run 'stackpeek dump --help' for the options of dump.\n"
             "Example: stackpeek dump $(pgrep -f myservice)");

  DumpArgs dump;
  CLI::App *dumpCmd = app.add_subcommand(
      "dump", "Pause a process briefly, print every thread's stack, resume it.");
  dumpCmd->add_option("pid", dump.pids, "process id(s) to dump")
      ->required()
      ->check(CLI::PositiveNumber);
  dumpCmd->add_option("-f,--format", dump.format, "output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  dumpCmd->add_flag("--native", dump.options.native,
                    "merge native (C/C++) frames with Python frames");
  dumpCmd->add_option("--max-frames", dump.options.maxFrames,
                      "keep only the N innermost frames of each thread");
  dumpCmd->add_option("--debug-dir", dump.options.debugDirs,
                      "extra directory to search for separate debug files "
                      "(by build-id and .gnu_debuglink); may be repeated")
      ->check(CLI::ExistingDirectory);
  dumpCmd->footer(kDumpExamples);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }

  const char *hold = std::getenv("STACKPEEK_TEST_HOLD_PAUSE");
  dump.options.holdPauseForTests = hold && std::string(hold) == "1";
  try {
    return runDump(dump);
  } catch (const std::exception &e) {
    llvm::errs() << "stackpeek: internal error: " << e.what() << "\n";
    return kInternal;
  }
}
