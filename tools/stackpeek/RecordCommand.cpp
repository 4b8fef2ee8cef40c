// `stackpeek record`: options, the sampling loop, the status line, the
// summary, and writing the profile in the chosen format.
#include <cstdlib>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <thread>

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "Commands.h"
#include "driver/Recorder.h"
#include "process/HeldThreads.h"
#include "profile/ProfileWriter.h"
#include "text/Escape.h"
#include "run/Spawn.h"

namespace stackpeek::tool {

namespace {

struct RecordArgs {
  int pid = 0;
  std::vector<std::string> command;
  std::vector<std::string> unusedPositional; // see addRecordCommand
  double rate = 100;
  double duration = 0;
  std::vector<std::string> outputs;
  std::string format;
  RecordOptions options;
};

const char *kRecordExamples = R"(
Examples:
  stackpeek record --pid 1234 -o profile.svg      flame graph of a running process
  stackpeek record -o app.speedscope.json -- python3 app.py --port 8080
  stackpeek record --pid 1234 --duration 30 --rate 250 -o cpu.pb.gz   # go tool pprof
  stackpeek record --pid 1234 --native --threads -o mixed.svg
  stackpeek record --pid 1234 --nonblocking -o live.folded    # never pause the target
  stackpeek record --pid 1234 -o cpu.svg -o cpu.pb.gz         # one recording, two formats

The format follows the file name (.svg flame graph, .speedscope.json
speedscope, .pb.gz/.pb/.pprof pprof, .txt/.folded collapsed stacks, .json raw
samples) unless --format says otherwise. Every output is checked (folder
exists and is writable, format known) before sampling starts. Recording
stops at --duration, when the target exits, or on Ctrl-C; the profile is
written in every case. A command started by record (after --) that is still
running when recording stops is sent SIGTERM (SIGKILL if it has not exited
5 s later).

By default only threads on a CPU are sampled. For Python stacks one thread
is paused per sample, for about 0.1 ms: the one that last held the GIL (the
others cannot run Python code without taking it, which stackpeek checks);
with --native, on Python 2.7 and 3.6, and on free-threaded builds (3.13t,
3.14t) running without a GIL, every sampled thread is. --idle
adds sleeping threads, --nonblocking reads Python stacks without pausing
anything (samples torn by the running target are detected and dropped).
)";

std::atomic<bool> gStop{false};

// First Ctrl-C (or SIGTERM/SIGHUP): finish the current sample, write the
// profile. A second one: detach from everything and die at once.
void onStopSignal(int sig) {
  if (gStop.exchange(true))
    detachHeldThreadsAndDie(sig);
}

void installStopHandlers() {
  struct sigaction sa{};
  sa.sa_handler = onStopSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP})
    sigaction(sig, &sa, nullptr);
}

double cpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

uint64_t failureCount(const SamplerStats &s) {
  uint64_t n = 0;
  for (const auto &[why, count] : s.failures)
    n += count;
  return n;
}

void printStatus(const RecordProgress &p, const SamplerStats &s) {
  llvm::errs() << llvm::formatv("\r\x1b[2Kstackpeek: recording {0:f1} s, {1} samples, "
                                "{2:f0} Hz, {3} failed, {4} dropped{5}",
                                p.elapsedSeconds, s.samples, p.effectiveRateHz,
                                failureCount(s), s.dropped,
                                p.behind ? " - falling behind, lower --rate" : "");
}

void printSummary(const Profile &profile, const Recorder &recorder, double cpu,
                  const std::string &written) {
  const SamplerStats &s = recorder.stats();
  double seconds = profile.durationNs / 1e9;
  llvm::errs() << llvm::formatv(
      "stackpeek: wrote {0}: {1} samples of {2} distinct stacks from {3} "
      "process(es) over {4:f1} s at {5} Hz",
      written, s.samples, profile.stacks.size(), profile.processes.size(), seconds,
      profile.rateHz);
  if (recorder.progress().missedTicks)
    llvm::errs() << llvm::formatv("; {0} ticks missed (sampling fell behind)",
                                  recorder.progress().missedTicks);
  llvm::errs() << ".\n";
  if (s.pauses)
    llvm::errs() << llvm::formatv("  target paused {0} times, {1:f1} us on average, "
                                  "{2} us at worst, {3:f1} threads stopped on average\n",
                                  s.pauses, double(s.pauseTotalUs) / s.pauses, s.pauseMaxUs,
                                  double(s.threadsStopped) / s.pauses);
  else
    llvm::errs() << "  the target was never paused\n";
  llvm::errs() << llvm::formatv("  stackpeek used {0:f2} s of CPU ({1:f1}% of one core)\n",
                                cpu, seconds > 0 ? 100 * cpu / seconds : 0.0);
  if (s.dropped)
    llvm::errs() << "  " << s.dropped << " samples dropped (torn or undecodable)\n";
  for (const auto &[why, count] : s.failures)
    llvm::errs() << "  " << count << " x " << why << "\n";
  constexpr size_t kMaxNotes = 10; // a target can map any number of stripped files
  size_t shown = 0;
  for (const std::string &note : s.notes)
    if (shown++ < kMaxNotes)
      llvm::errs() << "  Note: " << note << "\n";
  if (s.notes.size() > kMaxNotes)
    llvm::errs() << "  Note: " << s.notes.size() - kMaxNotes
                 << " more modules have no symbols or debug information\n";
}

std::optional<ProfileFormat> chooseFormat(const RecordArgs &args, const std::string &output) {
  if (!args.format.empty())
    return formatFromName(args.format);
  return formatFromFileName(output);
}

// Why `path` could not be written once the recording ends, "" if it can: a
// missing or read-only folder must be found before sampling, not after.
std::string unwritableOutput(const std::string &path) {
  llvm::StringRef parent = llvm::sys::path::parent_path(path);
  std::string folder = parent.empty() ? "." : parent.str();
  if (llvm::sys::fs::is_directory(path))
    return "it is a folder";
  if (!llvm::sys::fs::exists(folder))
    return "folder " + escapeForTerminal(folder) + " does not exist (create it first)";
  if (!llvm::sys::fs::is_directory(folder))
    return escapeForTerminal(folder) + " is not a folder";
  if (::access(folder.c_str(), W_OK | X_OK) != 0)
    return "folder " + escapeForTerminal(folder) + " is not writable (" + strerror(errno) + ")";
  if (llvm::sys::fs::exists(path) && ::access(path.c_str(), W_OK) != 0)
    return std::string("the file is not writable (") + strerror(errno) + ")";
  return "";
}

// Writes every requested file from the one recording; "" or the first error.
std::string writeOutputs(const Profile &profile, const RecordArgs &args,
                         const std::vector<ProfileFormat> &formats, std::string &written) {
  ProfileWriteOptions writeOptions;
  writeOptions.title = "stackpeek record " + (args.command.empty()
                                                  ? "--pid " + std::to_string(args.pid)
                                                  : llvm::join(args.command, " "));
  for (size_t i = 0; i < args.outputs.size(); ++i) {
    std::error_code ec;
    llvm::raw_fd_ostream out(args.outputs[i], ec);
    if (ec)
      return "cannot write " + args.outputs[i] + ": " + ec.message();
    if (llvm::Error err = writeProfile(profile, formats[i], out, writeOptions))
      return llvm::toString(std::move(err));
    written += (written.empty() ? "" : ", ") + args.outputs[i] + " (" +
               profileFormatName(formats[i]).str() + ")";
  }
  return "";
}

// Starts `argv` for recording; stackpeek's own stop handlers stay in place.
llvm::Expected<pid_t> startCommand(const std::vector<std::string> &argv) {
  sigset_t mask;
  sigprocmask(SIG_SETMASK, nullptr, &mask);
  auto spawned = spawnCommand(argv, mask, /*ownGroup=*/!inTerminalForeground());
  if (!spawned)
    return spawned.takeError();
  if (spawned->pid == 0)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cannot run %s: %s", argv[0].c_str(),
                                   strerror(spawned->execError));
  return spawned->pid;
}

// A command we started and stopped recording before it finished is ended,
// so stackpeek does not leave it behind unsupervised.
int reapCommand(pid_t child) {
  int status = 0;
  if (waitpid(child, &status, WNOHANG) == 0) {
    kill(child, SIGTERM);
    for (int i = 0; i < 500 && waitpid(child, &status, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (kill(child, 0) == 0) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
    }
  }
  return status;
}

void raiseOpenFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int runRecord(RecordArgs &args) {
  if ((args.pid != 0) == !args.command.empty()) {
    llvm::errs() << "stackpeek: give either --pid PID or a command after --\n";
    return kUsage;
  }
  if (args.options.sampler.nonblocking && args.options.sampler.native) {
    llvm::errs() << "stackpeek: --nonblocking cannot read native stacks (they need the "
                    "thread's registers, which only a pause gives); drop one of them\n";
    return kUsage;
  }
  if (args.outputs.empty())
    args.outputs.push_back("stackpeek-" + std::to_string(args.pid ? args.pid : getpid()) + ".svg");
  if (args.outputs.size() > 1 && !args.format.empty()) {
    llvm::errs() << "stackpeek: with several -o files the format comes from each file's name; "
                    "drop --format\n";
    return kUsage;
  }
  std::vector<ProfileFormat> formats;
  for (const std::string &output : args.outputs) {
    auto format = chooseFormat(args, output);
    if (!format) {
      llvm::errs() << "stackpeek: cannot tell the format from '" << escapeForTerminal(output)
                   << "'; name it .svg, .speedscope.json, .pb.gz, .pb, .pprof, .txt, .folded "
                      "or .json, or pass --format\n";
      return kUsage;
    }
    formats.push_back(*format);
    if (std::string problem = unwritableOutput(output); !problem.empty()) {
      llvm::errs() << "stackpeek: cannot write " << escapeForTerminal(output) << ": " << problem
                   << "; nothing was recorded\n";
      return kUsage;
    }
  }
  args.options.rateHz = args.rate;
  if (args.duration > 0)
    args.options.durationSeconds = args.duration;
  args.options.sampler.processRoots = args.options.subprocesses;

  installStopHandlers();
  pid_t child = 0;
  if (!args.command.empty()) {
    auto started = startCommand(args.command);
    if (!started) {
      llvm::errs() << "stackpeek: " << llvm::toString(started.takeError()) << "\n";
      return kUsage;
    }
    child = args.pid = *started;
  }

  // The sampler keeps /proc files of the target's threads open (about one
  // per thread, more with --subprocesses): allow as many as the hard limit
  // lets us. Done after starting the command, which keeps the usual limit.
  raiseOpenFileLimit();

  Recorder recorder(args.options);
  if (llvm::Error err = recorder.addRoot(args.pid)) {
    // Other errors are the options' (--gil, --nonblocking on this target).
    int code = exitCodeFor(std::move(err), kUsage);
    if (child)
      reapCommand(child);
    return code;
  }
  bool live = isatty(STDERR_FILENO);
  Profile profile = recorder.run(gStop, [&](const RecordProgress &p, const SamplerStats &s) {
    if (live)
      printStatus(p, s);
  });
  if (live)
    llvm::errs() << "\r\x1b[2K";
  double cpu = cpuSeconds();
  if (child)
    reapCommand(child);

  std::string written;
  if (std::string error = writeOutputs(profile, args, formats, written); !error.empty()) {
    llvm::errs() << "stackpeek: " << error << "\n";
    return kInternal;
  }
  printSummary(profile, recorder, cpu, written);
  return kOk;
}

} // namespace

CommandRunner addRecordCommand(CLI::App &app) {
  auto args = std::make_shared<RecordArgs>();
  CLI::App *cmd = app.add_subcommand(
      "record", "Sample a process's stacks at a fixed rate and write a profile.");
  cmd->add_option("-p,--pid", args->pid, "process to record")->check(CLI::PositiveNumber);
  // The command after "--" is taken verbatim, its options included
  // (`-- python3 -m http.server`): the same CLI11 arrangement as `run`
  // (see addRunCommand): prefix mode, and a positional whose validator
  // refuses every word, so that all of them reach `remaining()`.
  cmd->prefix_command();
  cmd->validate_positionals();
  cmd->add_option("command", args->unusedPositional, "command to start and record (after --)")
      ->check(CLI::Validator([](std::string &) { return std::string("verbatim"); }, "", ""));
  cmd->add_option("-r,--rate", args->rate, "samples per second")
      ->check(CLI::Range(1.0, 10000.0))
      ->capture_default_str();
  cmd->add_option("-d,--duration", args->duration,
                  "seconds to record (default: until the target exits or Ctrl-C)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-o,--output", args->outputs,
                  "output file (default stackpeek-PID.svg); its name picks the format; "
                  "repeat to write several formats of one recording");
  cmd->add_option("-f,--format", args->format, "output format")
      ->check(CLI::IsMember({"flamegraph", "speedscope", "pprof", "collapsed", "json"}));
  cmd->add_flag("--native", args->options.sampler.native,
                "merge native (C/C++) frames with Python frames");
  cmd->add_flag("--idle", args->options.sampler.includeIdle,
                "also sample threads that are sleeping or waiting");
  cmd->add_flag("--gil", args->options.sampler.gilOnly,
                "only sample the thread holding the GIL (free-threaded builds "
                "without a GIL have none: an error)");
  cmd->add_flag("--threads", args->options.sampler.threadRoots,
                "keep the thread as the root frame of each stack");
  cmd->add_flag("--subprocesses", args->options.subprocesses,
                "also sample child processes (new ones included), each under its pid");
  cmd->add_flag("--nonblocking", args->options.sampler.nonblocking,
                "never pause the target (Python stacks only; torn samples are dropped)");
  cmd->add_option("--debug-dir", args->options.sampler.debugDirs,
                  "extra directory to search for separate debug files")
      ->check(CLI::ExistingDirectory);
  cmd->footer(kRecordExamples);
  return [args, cmd]() -> int {
    if (!cmd->parsed())
      return -1;
    if (const char *delay = std::getenv("STACKPEEK_TEST_SLEEPER_READ_DELAY_US"))
      args->options.sampler.sleeperReadDelayUsForTests =
          static_cast<uint32_t>(std::strtoul(delay, nullptr, 10));
    args->command = cmd->remaining();
    if (!args->command.empty() && args->command.front() == "--") {
      args->command.erase(args->command.begin());
    } else if (!args->command.empty() && args->command.front().rfind("-", 0) == 0) {
      // Prefix mode hands unknown options over too: say what CLI11 would.
      llvm::errs() << "stackpeek: record: unknown option " << args->command.front()
                   << "\nRun 'stackpeek record --help' for usage.\n";
      return kUsage;
    }
    return runRecord(*args);
  };
}

} // namespace stackpeek::tool
