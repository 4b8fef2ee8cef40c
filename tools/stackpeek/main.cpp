// stackpeek: the command-line tool. Registers the subcommands (each in its
// own file), parses, runs the chosen one. The pipelines live in src/.
#include <exception>

#include "llvm/Support/raw_ostream.h"

#include "Commands.h"

using namespace stackpeek::tool;

int main(int argc, char **argv) {
  // First thing: whatever ends stackpeek must also let the target go.
  stackpeek::installDetachOnFatalSignals();

  CLI::App app{"stackpeek: show what a running process is doing, every thread's "
               "native and Python stack, without changing or restarting it."};
  app.set_version_flag("--version", std::string("stackpeek ") + STACKPEEK_VERSION);
  app.require_subcommand(1);
  app.footer("Run 'stackpeek COMMAND --help' for the options of a command.\n"
             "Example: stackpeek dump $(pgrep -f myservice)");

  std::vector<CommandRunner> commands = {addDumpCommand(app), addRecordCommand(app),
                                         addRunCommand(app)};

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
