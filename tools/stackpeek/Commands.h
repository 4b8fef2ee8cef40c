// The subcommands of the stackpeek tool. Each registers its options on the
// CLI11 app and returns the function that runs it once parsing succeeded.
// Commands only parse, call the library and map outcomes to exit codes.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

namespace stackpeek::tool {

// Exit codes shared by every command (documented in README.md, "Exit codes").
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

/// Says on stderr what went wrong ("stackpeek: MESSAGE") and returns the
/// exit code it calls for: by an AttachError's kind, else `otherwise`.
/// `context` prefixes the messages of other errors, which do not name the
/// process themselves ("pid 12: ").
int exitCodeFor(llvm::Error err, int otherwise, llvm::StringRef context = "");

/// Prints the whole command line (commands, options, examples) as JSON,
/// for the man page and completion generators (CliModel.cpp).
void printCliModel(const CLI::App &app, llvm::raw_ostream &out);

/// The text of --version: version, build, CPython versions read.
std::string versionText();

using CommandRunner = std::function<int()>;

/// Registers `dump`; the returned runner is called if `dump` was chosen.
CommandRunner addDumpCommand(CLI::App &app);
/// Registers `run` (command wrapper with hang dumps, tools/stackpeek/RunCommand.cpp).
CommandRunner addRunCommand(CLI::App &app);
/// Registers `record` (sampling profiler, tools/stackpeek/RecordCommand.cpp).
CommandRunner addRecordCommand(CLI::App &app);

} // namespace stackpeek::tool
