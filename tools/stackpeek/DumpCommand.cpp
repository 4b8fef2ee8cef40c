// `stackpeek dump PID...`: options, the pipeline call per pid, the renderer.
//
// Pids are taken as words and checked here rather than by CLI11, so that a
// name where a pid belongs (`dump postgres`) gets an answer naming the
// processes it matches instead of a numeric-range message.
#include <algorithm>
#include <cstdlib>
#include <set>

#include "llvm/Support/raw_ostream.h"

#include "Commands.h"
#include "driver/Dump.h"
#include "process/ProcFs.h"
#include "text/Escape.h"
#include "render/Renderer.h"
#include "process/Attach.h"
#include "process/ProcessTree.h"
#include "run/TreeDump.h"

namespace stackpeek::tool {

namespace {

struct DumpArgs {
  std::vector<std::string> pidWords; // as typed
  std::vector<int> pids;
  std::string format = "text";
  bool tree = false;
  std::vector<int> skipThreads; // tids left out of the output
  DumpOptions options;
};

const char *kDumpExamples = R"(
Examples:
  stackpeek dump 1234                  every thread of pid 1234, as text
  stackpeek dump --format json 1234    the same as one JSON document
  stackpeek dump --native 1234         Python and native frames merged
  stackpeek dump --locals --async 1234 Python locals and asyncio task trees
  stackpeek dump 1234 5678             several processes, one after another
  stackpeek dump --debug-dir ./dbg 42  also look for separate debug files
                                       under ./dbg/.build-id/xx/yyyy.debug
  stackpeek dump --tree --skip-thread 1240 1234
                                       pid 1234 and its descendants, without
                                       thread 1240 (e.g. the caller's own)

The target is paused only while its registers, stacks and Python frame
chains are copied (the pause is reported as pause_us in JSON), then resumed
before anything expensive happens.

Exit codes: 0 ok, 1 partial (target exited mid-dump), 2 usage error,
3 no such process, 4 permission denied, 5 already traced by a debugger,
6 not dumpable (zombie, kernel thread, or no thread stopped in time), 7 internal error.
)";

// --skip-thread: a tool dumping its own process (pytest-stackpeek's
// watchdog thread) leaves the thread doing the asking out. It was paused
// with the others, so the rest of the snapshot is as consistent as ever.
void leaveOutThreads(Process &process, const std::vector<int> &tids) {
  std::erase_if(process.threads, [&](const Thread &t) {
    return std::find(tids.begin(), tids.end(), t.tid) != tids.end();
  });
}

// CLI11 would read "-1" into a size_t as a huge limit; its own range check
// prints the range as floating point. Say what is wanted instead.
CLI::Validator frameCount() {
  return CLI::Validator(
      [](std::string &value) -> std::string {
        unsigned long long count = 0;
        if (llvm::StringRef(value).getAsInteger(10, count))
          return "expected a number of frames, 0 (all) or more, not '" + value + "'";
        return "";
      },
      "N");
}

constexpr size_t kMaxNamedMatches = 10;

// What to say when `word` is not a pid: the processes it may name.
std::string notAPidMessage(const std::string &word) {
  std::string quoted = "'" + escapeForTerminal(word) + "'";
  std::string message = "stackpeek: " + quoted + " is not a process id (a positive number)";
  size_t total = 0;
  std::vector<pid_t> matches = processesNamed(word, kMaxNamedMatches, &total);
  if (matches.empty())
    return message + "; no running process is named " + quoted + "\n";
  message += "; " + quoted + " matches pid" + (total == 1 ? "" : "s");
  for (size_t i = 0; i < matches.size(); ++i)
    message += std::string(i ? "," : "") + " " + std::to_string(matches[i]) + " (" +
               escapeForTerminal(commandLine(matches[i])) + ")";
  if (total > matches.size())
    message += " and " + std::to_string(total - matches.size()) + " more";
  message += "\nTo dump ";
  message += total == 1 ? "it: stackpeek dump " + std::to_string(matches[0])
                        : "them all: stackpeek dump $(pgrep -x " + escapeForTerminal(word) + ")";
  return message + "\n";
}

// Fills args.pids from the words typed; false (after saying why) if one is
// not a pid.
bool parsePids(DumpArgs &args) {
  for (const std::string &word : args.pidWords) {
    int pid = 0;
    if (llvm::StringRef(word).getAsInteger(10, pid) || pid <= 0) {
      llvm::errs() << notAPidMessage(word);
      return false;
    }
    args.pids.push_back(pid);
  }
  return true;
}

// A descendant that is a zombie has nothing to dump but belongs in the tree:
// it tells which child exited without being waited for.
std::optional<Process> zombieInTree(pid_t pid, const std::string &why) {
  auto stat = readTaskStat(pid, pid);
  if (!stat)
    return std::nullopt;
  if (stat->state != 'Z')
    return std::nullopt;
  return notDumpedPlaceholder(pid, stat->ppid, why);
}

// Dumps each pid in turn; the worst outcome decides the exit code. `roots`
// are the pids typed; the others are descendants found by --tree.
int runDump(const DumpArgs &args, const std::set<int> &roots) {
  RenderOptions renderOptions;
  renderOptions.native = args.options.native;
  renderOptions.jsonArray = args.tree || args.pids.size() > 1;
  auto renderer = args.format == "json" ? makeJsonRenderer(renderOptions)
                                        : makeTextRenderer(renderOptions);
  llvm::raw_fd_ostream &out = llvm::outs();
  int exitCode = kOk;
  renderer->begin(out);
  for (int pid : args.pids) {
    auto result = dumpProcess(pid, args.options);
    if (!result) {
      // A zombie below the roots of a tree is shown as one, not an error.
      llvm::Error err = llvm::handleErrors(
          result.takeError(), [&](std::unique_ptr<AttachError> e) -> llvm::Error {
            if (e->kind() == AttachFailure::NotDumpable && !roots.count(pid))
              if (auto zombie = zombieInTree(pid, e->message())) {
                renderer->render(*zombie, out);
                return llvm::Error::success();
              }
            return llvm::Error(std::move(e));
          });
      if (err)
        exitCode = std::max(exitCode, exitCodeFor(std::move(err), kInternal,
                                                  "pid " + std::to_string(pid) + ": "));
      continue;
    }
    leaveOutThreads(result->process, args.skipThreads);
    renderer->render(result->process, out);
    // Also where it is seen when the output goes to a file or a pipe.
    if (result->process.pythonUnavailable)
      llvm::errs() << "stackpeek: pid " << pid << ": Python stacks unavailable ("
                   << *result->process.pythonUnavailable << "); native stacks only\n";
    if (result->incomplete) {
      llvm::errs() << "stackpeek: pid " << pid
                   << " exited during the dump; output is partial\n";
      exitCode = std::max<int>(exitCode, kIncomplete);
    }
  }
  renderer->end(out);
  out.flush();
  return exitCode;
}

} // namespace

CommandRunner addDumpCommand(CLI::App &app) {
  auto args = std::make_shared<DumpArgs>();
  CLI::App *cmd = app.add_subcommand(
      "dump", "Pause a process briefly, print every thread's stack, resume it.");
  cmd->add_option("pid", args->pidWords, "process id(s) to dump")->required();
  cmd->add_option("-f,--format", args->format, "output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  cmd->add_flag("--tree", args->tree,
                "also dump every descendant of each PID, parents before children");
  cmd->add_flag("--native", args->options.native,
                "merge native (C/C++) frames with Python frames");
  cmd->add_flag("--locals", args->options.locals,
                "show each Python frame's arguments and local variables "
                "(bounded reprs read from memory; lengthens the pause)");
  cmd->add_flag("--async", args->options.async,
                "list the asyncio tasks of every event loop as await trees "
                "(CPython 3.8+)");
  cmd->add_option("--skip-thread", args->skipThreads,
                  "leave thread TID out of the output (it is paused with the "
                  "others all the same); may be repeated")
      ->expected(1) // one TID per use: a PID after it stays a PID
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-frames", args->options.maxFrames,
                  "keep only the N innermost frames of each thread (0: all)")
      ->check(frameCount());
  cmd->add_option("--debug-dir", args->options.debugDirs,
                  "extra directory to search for separate debug files "
                  "(by build-id and .gnu_debuglink); may be repeated")
      ->check(CLI::ExistingDirectory);
  cmd->footer(kDumpExamples);
  return [args, cmd]() -> int {
    if (!cmd->parsed())
      return -1;
    const char *hold = std::getenv("STACKPEEK_TEST_HOLD_PAUSE");
    args->options.holdPauseForTests = hold && std::string(hold) == "1";
    if (!parsePids(*args))
      return kUsage;
    std::set<int> roots(args->pids.begin(), args->pids.end());
    if (args->tree)
      args->pids = withDescendants(args->pids);
    return runDump(*args, roots);
  };
}

} // namespace stackpeek::tool
