// stackpeek: the command-line tool. Registers the subcommands (each in its
// own file), parses, runs the chosen one. The pipelines live in src/.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "llvm/Support/raw_ostream.h"

#include "Commands.h"
#include "process/Attach.h"
#include "process/HeldThreads.h"

using namespace stackpeek::tool;

namespace {
// STACKPEEK_TEST_HOOK_FD=N (with STACKPEEK_TEST_HOOK_AT=seized|interrupted):
// at that stage of every attach, say so on stderr and wait for one byte on
// fd N, so a test can end threads or the process exactly there. EOF on fd N
// turns the hook off. Tests only; unset, nothing happens.
int gHookFd = -1;
std::string gHookAt;

void waitForTest(const char *stage) {
  if (gHookFd < 0 || gHookAt != stage)
    return;
  std::string line = std::string("stackpeek-test-hook: ") + stage + "\n";
  (void)!::write(2, line.data(), line.size());
  char byte;
  if (::read(gHookFd, &byte, 1) != 1)
    gHookFd = -1;
}

void installTestHook() {
  const char *fd = std::getenv("STACKPEEK_TEST_HOOK_FD");
  const char *at = std::getenv("STACKPEEK_TEST_HOOK_AT");
  if (!fd || !at)
    return;
  gHookFd = std::atoi(fd);
  gHookAt = at;
  stackpeek::setAttachTestHook(waitForTest);
}
} // namespace

int main(int argc, char **argv) {
  // First thing: whatever ends stackpeek must also let the target go.
  stackpeek::installDetachOnFatalSignals();
  installTestHook();

  CLI::App app{"stackpeek: show what a running process is doing, every thread's "
               "native and Python stack, without changing or restarting it."};
  app.set_version_flag("--version", versionText(),
                       "print the version, what it was built with and the CPython versions it reads");
  app.require_subcommand(1);
  app.footer("Run 'stackpeek COMMAND --help' for the options of a command.\n"
             "Example: stackpeek dump $(pgrep -f myservice)");

  std::vector<CommandRunner> commands = {addDumpCommand(app), addRecordCommand(app),
                                         addRunCommand(app)};

  // Before parsing, which requires a command: for the build's generators.
  if (argc == 2 && std::strcmp(argv[1], "--cli-model") == 0) {
    printCliModel(app, llvm::outs());
    return kOk;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0) // --help, --version
      return app.exit(e);
    llvm::errs() << "stackpeek: " << e.what() << "\n"
                 << "Run 'stackpeek --help' (or 'stackpeek COMMAND --help') for usage.\n";
    return kUsage;
  }
  try {
    for (const CommandRunner &run : commands)
      if (int rc = run(); rc >= 0)
        return rc;
    return kUsage;
  } catch (const std::exception &e) {
    llvm::errs() << "stackpeek: internal error: " << e.what() << "\n";
    return kInternal;
  }
}
