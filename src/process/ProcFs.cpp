#include "process/ProcFs.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <thread>

#include "llvm/ADT/StringRef.h"

namespace stackpeek {

namespace {
std::string taskDir(pid_t pid, pid_t tid) {
  return "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid);
}
} // namespace

llvm::Expected<std::string> readSmallFile(const std::string &path, size_t limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return llvm::errorCodeToError(std::error_code(errno, std::generic_category()));
  std::string out;
  char buf[8192];
  while (out.size() < limit) {
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - out.size()));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return llvm::errorCodeToError(std::error_code(err, std::generic_category()));
    }
    if (n == 0)
      break;
    out.append(buf, n);
  }
  ::close(fd);
  return out;
}

llvm::Expected<std::vector<pid_t>> listThreads(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/task";
  DIR *dir = ::opendir(path.c_str());
  if (!dir)
    return llvm::errorCodeToError(std::error_code(errno, std::generic_category()));
  std::vector<pid_t> tids;
  while (dirent *ent = ::readdir(dir)) {
    int tid = 0;
    if (!llvm::StringRef(ent->d_name).getAsInteger(10, tid) && tid > 0)
      tids.push_back(tid);
  }
  ::closedir(dir);
  return tids;
}

std::optional<TaskStat> readTaskStat(pid_t pid, pid_t tid) {
  auto text = readSmallFile(taskDir(pid, tid) + "/stat", 4096);
  if (!text) {
    llvm::consumeError(text.takeError());
    return std::nullopt;
  }
  size_t close = text->rfind(')');
  if (close == std::string::npos || close + 2 >= text->size())
    return std::nullopt; // malformed
  // After ") ": state ppid pgrp session tty_nr tpgid flags ...
  llvm::StringRef rest = llvm::StringRef(*text).drop_front(close + 2);
  TaskStat st;
  st.state = rest.front();
  llvm::SmallVector<llvm::StringRef, 8> fields;
  rest.split(fields, ' ', 8, false);
  if (fields.size() < 7 || fields[1].getAsInteger(10, st.ppid) ||
      fields[6].getAsInteger(10, st.flags))
    return std::nullopt; // malformed
  return st;
}

std::string describeState(char state) {
  switch (state) {
  case 'R': return "running";
  case 'S': return "sleeping";
  case 'D': return "disk-wait";
  case 'T': return "stopped";
  case 't': return "tracing-stop";
  case 'Z': return "zombie";
  case 'X': return "dead";
  case 'I': return "idle";
  case 'P': return "parked";
  default: return "unknown";
  }
}

std::string threadName(pid_t pid, pid_t tid) {
  auto text = readSmallFile(taskDir(pid, tid) + "/comm", 256);
  if (!text) {
    llvm::consumeError(text.takeError());
    return "";
  }
  return llvm::StringRef(*text).rtrim('\n').str();
}

std::optional<std::string> threadWchan(pid_t pid, pid_t tid) {
  auto text = readSmallFile(taskDir(pid, tid) + "/wchan", 256);
  if (!text) {
    llvm::consumeError(text.takeError());
    return std::nullopt;
  }
  if (text->empty() || *text == "0")
    return std::nullopt;
  return *text;
}

std::string commandLine(pid_t pid) {
  auto text = readSmallFile("/proc/" + std::to_string(pid) + "/cmdline", 64 << 10);
  if (!text) {
    llvm::consumeError(text.takeError());
    return "";
  }
  std::string joined = llvm::StringRef(*text).rtrim('\0').str();
  std::replace(joined.begin(), joined.end(), '\0', ' ');
  return joined;
}

namespace {
std::string readLink(const std::string &link) {
  char buf[4096];
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, n) : std::string();
}
} // namespace

std::string executablePath(pid_t pid) {
  return targetPath(rootDirectory(pid), readLink("/proc/" + std::to_string(pid) + "/exe"));
}

std::string rootDirectory(pid_t pid) {
  std::string root = readLink("/proc/" + std::to_string(pid) + "/root");
  return root.empty() || root[0] != '/' ? "/" : root;
}

std::string targetPath(const std::string &root, const std::string &path) {
  llvm::StringRef inside(path);
  if (root == "/" || !inside.consume_front(root) || !inside.startswith("/"))
    return path;
  return inside.str();
}

namespace {
// The text after "NAME:" on its line of a status file; nullopt if absent.
std::optional<std::string> statusField(const std::string &statusPath, llvm::StringRef name) {
  auto text = readSmallFile(statusPath, 64 << 10);
  if (!text) {
    llvm::consumeError(text.takeError());
    return std::nullopt;
  }
  std::string key = "\n" + name.str() + ":";
  size_t pos = text->find(key);
  if (pos == std::string::npos)
    return std::nullopt;
  pos += key.size();
  return text->substr(pos, text->find('\n', pos) - pos);
}

} // namespace

pid_t tracerPid(pid_t pid) {
  std::optional<std::string> field =
      statusField("/proc/" + std::to_string(pid) + "/status", "TracerPid");
  return field ? std::atoi(field->c_str()) : 0;
}

std::vector<pid_t> namespaceTids(pid_t pid, pid_t tid) {
  std::vector<pid_t> ids;
  std::optional<std::string> field = statusField(taskDir(pid, tid) + "/status", "NSpid");
  if (!field)
    return ids;
  llvm::SmallVector<llvm::StringRef, 4> parts;
  llvm::StringRef(*field).split(parts, '\t', -1, false);
  for (llvm::StringRef part : parts) {
    pid_t id = 0;
    if (part.trim().getAsInteger(10, id) || id <= 0)
      return {};
    ids.push_back(id);
  }
  return ids;
}

bool processExists(pid_t pid) {
  return ::access(("/proc/" + std::to_string(pid)).c_str(), F_OK) == 0;
}

bool processAlive(pid_t pid) {
  auto stat = readTaskStat(pid, pid);
  if (!stat)
    return false;
  return stat->state != 'Z' && stat->state != 'X';
}

Liveness processLiveness(pid_t pid) {
  auto stat = readTaskStat(pid, pid);
  if (!stat)
    return Liveness::Gone;
  if (!stat->ending())
    return Liveness::Running;
  auto tids = listThreads(pid);
  if (!tids) {
    llvm::consumeError(tids.takeError());
    return Liveness::Gone;
  }
  for (pid_t tid : *tids) {
    if (tid == pid)
      continue;
    auto other = readTaskStat(pid, tid);
    if (!other)
      continue;
    if (!other->ending())
      return Liveness::Changing;
  }
  return Liveness::Gone;
}

Liveness settledLiveness(pid_t pid, std::chrono::milliseconds limit) {
  // A zombie leader alone can also be a moment of an exec (the execing
  // thread's switch to the leader's pid): give it a few milliseconds more.
  constexpr std::chrono::milliseconds kZombieGrace{10};
  auto start = std::chrono::steady_clock::now();
  auto undecided = [&](Liveness now) {
    auto elapsed = std::chrono::steady_clock::now() - start;
    if (now == Liveness::Changing)
      return elapsed < limit;
    return now == Liveness::Gone && elapsed < std::min<std::chrono::nanoseconds>(kZombieGrace, limit) &&
           processExists(pid);
  };
  Liveness now = processLiveness(pid);
  while (undecided(now)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    now = processLiveness(pid);
  }
  return now;
}

pid_t liveThreadOf(pid_t pid) {
  auto leader = readTaskStat(pid, pid);
  if (!leader)
    return pid;
  if (!leader->exited())
    return pid;
  auto tids = listThreads(pid);
  if (!tids) {
    llvm::consumeError(tids.takeError());
    return pid;
  }
  for (pid_t tid : *tids) {
    auto stat = readTaskStat(pid, tid);
    if (stat && !stat->exited())
      return tid;
  }
  return pid;
}

std::vector<pid_t> childProcesses(pid_t pid) {
  std::vector<pid_t> children;
  auto tids = listThreads(pid);
  if (!tids) {
    llvm::consumeError(tids.takeError());
    return children;
  }
  for (pid_t tid : *tids) {
    auto text = readSmallFile(taskDir(pid, tid) + "/children", 1 << 20);
    if (!text) {
      llvm::consumeError(text.takeError());
      continue;
    }
    llvm::SmallVector<llvm::StringRef, 16> parts;
    llvm::StringRef(*text).split(parts, ' ', -1, false);
    for (llvm::StringRef p : parts) {
      int child = 0;
      if (!p.trim().getAsInteger(10, child))
        children.push_back(child);
    }
  }
  return children;
}

} // namespace stackpeek

namespace stackpeek {

namespace {
// The first word of the command line without its directory. A program that
// rewrites its title (PostgreSQL's "postgres: checkpointer") leaves one
// space-separated string, so the word ends at a space too.
std::string programBaseName(pid_t pid) {
  auto text = readSmallFile("/proc/" + std::to_string(pid) + "/cmdline", 4096);
  if (!text) {
    llvm::consumeError(text.takeError());
    return "";
  }
  llvm::StringRef word = llvm::StringRef(*text).split('\0').first.split(' ').first;
  size_t slash = word.rfind('/');
  return (slash == llvm::StringRef::npos ? word : word.drop_front(slash + 1)).str();
}
} // namespace

std::vector<pid_t> processesNamed(llvm::StringRef name, size_t limit, size_t *total) {
  std::vector<pid_t> all;
  if (DIR *dir = ::opendir("/proc")) {
    while (dirent *ent = ::readdir(dir)) {
      int pid = 0;
      if (!llvm::StringRef(ent->d_name).getAsInteger(10, pid) && pid > 0)
        all.push_back(pid);
    }
    ::closedir(dir);
  }
  std::sort(all.begin(), all.end());
  std::vector<pid_t> matches;
  size_t count = 0;
  for (pid_t pid : all) {
    if (threadName(pid, pid) != name && programBaseName(pid) != name)
      continue;
    ++count;
    if (matches.size() < limit)
      matches.push_back(pid);
  }
  if (total)
    *total = count;
  return matches;
}

} // namespace stackpeek
