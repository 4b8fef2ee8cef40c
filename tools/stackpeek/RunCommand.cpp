// `stackpeek run [OPTIONS] -- COMMAND [ARGS...]`: options, then the library's
// watchdog (src/run/Watchdog.h). Its exit code is the command's, so CI sees
// the same result with or without stackpeek, plus GNU timeout's 124-127.
#include <unistd.h>

#include "llvm/Support/Path.h"

#include "Commands.h"
#include "run/Duration.h"
#include "run/Watchdog.h"

namespace stackpeek::tool {

namespace {

struct RunArgs {
  std::string timeout, killAfter = "10s", idleTimeout, output, format = "text";
  bool killOnIdle = false;
  std::vector<std::string> unusedPositional; // see addRunCommand
  RunOptions options;
};

const char *kRunExamples = R"(
Examples:
  stackpeek run --timeout 20m -- pytest -x tests/
        like `timeout 20m pytest`, but before killing a hung run it prints
        every thread's stack of every process of the tree to stderr
  stackpeek run --timeout 1h --output hang.txt -- make check
        also keep the dump in hang.txt (created only if a dump happened)
  stackpeek run --idle-timeout 2m --kill-on-idle -- ./integration.sh
        dump and kill as soon as the whole tree has used no CPU for 2
        minutes (a deadlock), long before the job's time limit
  stackpeek run -- ./server &  ...  kill -USR1 $!
        dump the tree at any moment; the command keeps running

Durations: 90 (seconds), 90s, 1.5s, 500ms, 15m, 1h, 2d.
The command runs with the same stdin, stdout, stderr, environment and
working directory. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to stackpeek are
passed on to the command (not the ones a terminal already sent it).
--idle-timeout counts a tree as idle only when no thread of it was scheduled
at all (exact per-thread CPU time and wakeup counts); anything that polls or
sleeps in short intervals is busy. Use --timeout for those.

Exit status: the command's (128+N if signal N ended it); 124 timed out (or
idle with --kill-on-idle) and killed; 125 stackpeek failed; 126 the command
cannot be executed; 127 the command was not found; 2 usage error.
)";

// A CLI11 validator: empty string if `text` is a valid duration.
std::string checkDuration(const std::string &text) {
  auto parsed = parseDuration(text);
  if (parsed)
    return "";
  return llvm::toString(parsed.takeError());
}

// The dump file is created only when a dump happens; check now that it can be.
std::string checkOutputDir(const std::string &path) {
  std::string dir = llvm::sys::path::parent_path(path).str();
  if (dir.empty())
    dir = ".";
  if (::access(dir.c_str(), W_OK) == 0)
    return "";
  return "cannot create " + path + " later: directory " + dir +
         " does not exist or is not writable; create it first";
}

Duration durationOf(const std::string &text) {
  return llvm::cantFail(parseDuration(text)); // validated by checkDuration
}

int runRun(RunArgs &args, const std::vector<std::string> &rest) {
  RunOptions &o = args.options;
  o.command = rest;
  if (!o.command.empty() && o.command.front() == "--")
    o.command.erase(o.command.begin());
  if (o.command.empty()) {
    llvm::errs() << "stackpeek: run needs a command: stackpeek run [OPTIONS] -- COMMAND "
                    "[ARGS...]\n";
    return kUsage;
  }
  if (args.killOnIdle && args.idleTimeout.empty()) {
    llvm::errs() << "stackpeek: --kill-on-idle needs --idle-timeout DURATION\n";
    return kUsage;
  }
  if (!args.timeout.empty() && durationOf(args.timeout).count() > 0)
    o.timeout = durationOf(args.timeout); // 0 means no timeout, as in GNU timeout
  if (!args.idleTimeout.empty()) {
    o.idleTimeout = durationOf(args.idleTimeout);
    if (o.idleTimeout->count() == 0) {
      llvm::errs() << "stackpeek: --idle-timeout must be longer than 0\n";
      return kUsage;
    }
  }
  o.killAfter = durationOf(args.killAfter);
  o.killOnIdle = args.killOnIdle;
  o.outputPath = args.output;
  o.json = args.format == "json";
  return runWatched(o);
}

} // namespace

CommandRunner addRunCommand(CLI::App &app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App *cmd = app.add_subcommand(
      "run", "Run a command; if it hangs (--timeout, --idle-timeout) or on SIGUSR1, "
             "dump the stacks of its whole process tree.");
  // Everything from the first non-option word (or after "--") is the command,
  // options included: `stackpeek run --timeout 5 pytest -x` works. CLI11
  // hands words to `remaining()` only in prefix mode, and passes "--" up to
  // the parent app unless a positional is still open; this positional stays
  // open because its validator refuses every word, which sends them all to
  // `remaining()` verbatim.
  cmd->prefix_command();
  cmd->validate_positionals();
  cmd->add_option("COMMAND", args->unusedPositional, "the command to run and its arguments")
      ->check(CLI::Validator([](std::string &) { return std::string("verbatim"); }, "", ""));
  cmd->add_option("--timeout", args->timeout,
                  "dump the tree, then kill it and exit 124, if the command runs longer "
                  "than DURATION (0: never)")
      ->type_name("DURATION")
      ->check(checkDuration, "");
  cmd->add_option("--kill-after", args->killAfter,
                  "after the timeout's SIGTERM, wait this long before SIGKILL")
      ->type_name("DURATION")
      ->check(checkDuration, "")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", args->idleTimeout,
                  "dump the tree when none of its threads has run for DURATION "
                  "(a deadlock); once per idle spell")
      ->type_name("DURATION")
      ->check(checkDuration, "");
  cmd->add_flag("--kill-on-idle", args->killOnIdle,
                "after the idle dump, kill the tree and exit 124");
  cmd->add_option("-o,--output", args->output,
                  "also write each dump to FILE (created at the first dump)")
      ->type_name("FILE")
      ->check(checkOutputDir, "");
  cmd->add_option("-f,--format", args->format, "dump format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  cmd->add_flag("--native", args->options.dump.native,
                "merge native (C/C++) frames with Python frames");
  cmd->footer(kRunExamples);
  return [args, cmd]() -> int {
    if (!cmd->parsed())
      return -1;
    return runRun(*args, cmd->remaining());
  };
}

} // namespace stackpeek::tool
