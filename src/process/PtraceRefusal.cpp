// PtraceRefusal: see the header for the kernel's reasons to refuse a tracer
// and what /proc shows of each.
#include "process/PtraceRefusal.h"

#include <unistd.h>

#include <cstdint>
#include <vector>

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"

#include "process/ProcFs.h"

namespace stackpeek {
namespace {

constexpr unsigned kCapSysPtrace = 19; // linux/capability.h

std::optional<std::string> readText(const std::string &path) {
  auto text = readSmallFile(path, 4096);
  if (!text) {
    llvm::consumeError(text.takeError());
    return std::nullopt;
  }
  return *text;
}

std::optional<std::string> readLink(const std::string &path) {
  char buf[64]; // "user:[4026531837]"
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n <= 0)
    return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

// The value after "Name:" in /proc/PID/status, "" if absent.
llvm::StringRef statusField(llvm::StringRef status, llvm::StringRef name) {
  llvm::SmallVector<llvm::StringRef, 64> lines;
  status.split(lines, '\n');
  for (llvm::StringRef line : lines)
    if (line.consume_front(name) && line.consume_front(":"))
      return line.trim();
  return "";
}

bool privileged(llvm::StringRef status) {
  llvm::SmallVector<llvm::StringRef, 4> uids;
  statusField(status, "Uid").split(uids, '\t', -1, false);
  if (uids.size() >= 2 && uids[1] == "0")
    return true;
  uint64_t caps = 0;
  return !statusField(status, "CapEff").getAsInteger(16, caps) &&
         (caps >> kCapSysPtrace & 1) != 0;
}

// The initial user namespace maps every uid to itself: "0 0 4294967295".
bool initialUserNamespace(llvm::StringRef uidMap) {
  llvm::SmallVector<llvm::StringRef, 4> words;
  uidMap.split(words, ' ', -1, false);
  return words.size() == 3 && words[0] == "0" && words[1] == "0" &&
         words[2].trim() == "4294967295";
}

// Keeps a short label printable (it is shown to the user as is).
std::string printable(llvm::StringRef text) {
  std::string out;
  for (char c : text.trim().take_front(80))
    out += llvm::isPrint(c) ? c : '?';
  return out;
}

// The selected mode of /sys/kernel/security/lockdown, "none [integrity] ...".
llvm::StringRef lockdownMode(llvm::StringRef text) {
  size_t open = text.find('['), close = text.find(']');
  if (open == llvm::StringRef::npos || close == llvm::StringRef::npos || close < open)
    return "";
  return text.slice(open + 1, close);
}

std::string unprivilegedHint(const PtraceFacts &facts) {
  std::string hint =
      "run stackpeek as the target's user with ptrace allowed, or as root / with "
      "CAP_SYS_PTRACE";
  llvm::StringRef scope = facts.ptraceScope ? llvm::StringRef(*facts.ptraceScope).trim() : "";
  if (!scope.empty() && scope != "0")
    hint += "; /proc/sys/kernel/yama/ptrace_scope is " + printable(scope) +
            " (set it to 0, or run as root)";
  hint += "; in a container, start it with --cap-add SYS_PTRACE";
  return hint;
}

// Every cause /proc shows for refusing a privileged tracer.
std::vector<std::string> privilegedCauses(const PtraceFacts &facts) {
  std::vector<std::string> causes;
  if (facts.ptraceScope && llvm::StringRef(*facts.ptraceScope).trim() == "3")
    causes.push_back("/proc/sys/kernel/yama/ptrace_scope is 3, which forbids every attach, "
                     "root's too, until reboot");
  bool foreignNs = facts.ownUserNs && facts.targetUserNs && *facts.ownUserNs != *facts.targetUserNs;
  if (facts.ownUidMap && !initialUserNamespace(*facts.ownUidMap) &&
      (foreignNs || !facts.targetUserNs))
    causes.push_back("stackpeek runs in a user namespace (/proc/self/uid_map is not the "
                     "identity map) and the target is not in it: root there is root over that "
                     "namespace only; run stackpeek in the target's namespace (on the host)");
  llvm::StringRef status = facts.ownStatus ? llvm::StringRef(*facts.ownStatus) : "";
  llvm::StringRef seccomp = statusField(status, "Seccomp");
  if (!seccomp.empty() && seccomp != "0")
    causes.push_back("stackpeek runs under a seccomp filter (Seccomp: " + printable(seccomp) +
                     " in /proc/self/status) that may forbid ptrace; in a container, allow "
                     "it (Docker: --cap-add SYS_PTRACE, or --security-opt seccomp=unconfined)");
  if (facts.ownLsmLabel) {
    llvm::StringRef label = llvm::StringRef(*facts.ownLsmLabel).trim().rtrim('\0');
    if (!label.empty() && label != "unconfined" && !label.contains("unconfined_t"))
      causes.push_back("stackpeek is confined by a security module (label '" + printable(label) +
                       "' in /proc/self/attr/current); its policy may deny ptrace, and the "
                       "kernel log (dmesg) names the denial");
  }
  return causes;
}

} // namespace

PtraceFacts readPtraceFacts(pid_t target) {
  PtraceFacts facts;
  std::string proc = "/proc/" + std::to_string(target);
  facts.ownStatus = readText("/proc/self/status");
  facts.ownUidMap = readText("/proc/self/uid_map");
  facts.ownUserNs = readLink("/proc/self/ns/user");
  facts.targetUserNs = readLink(proc + "/ns/user");
  facts.ptraceScope = readText("/proc/sys/kernel/yama/ptrace_scope");
  facts.ownLsmLabel = readText("/proc/self/attr/current");
  facts.lockdown = readText("/sys/kernel/security/lockdown");
  return facts;
}

std::string ptraceRefusalHint(const PtraceFacts &facts) {
  if (!facts.ownStatus || !privileged(*facts.ownStatus))
    return unprivilegedHint(facts);
  std::vector<std::string> causes = privilegedCauses(facts);
  std::string hint = "stackpeek already runs as root / with CAP_SYS_PTRACE and the kernel "
                     "still refused; ";
  if (causes.empty())
    hint += "no cause shows in /proc (yama ptrace_scope, user namespaces, seccomp and "
            "security labels look permissive); the kernel log (dmesg) may name an LSM denial";
  else
    hint += llvm::join(causes, "; ");
  if (facts.lockdown) {
    llvm::StringRef mode = lockdownMode(*facts.lockdown);
    if (!mode.empty() && mode != "none")
      hint += "; note: kernel lockdown is on (" + printable(mode) +
              "), often with a hardened security policy";
  }
  return hint;
}

} // namespace stackpeek
