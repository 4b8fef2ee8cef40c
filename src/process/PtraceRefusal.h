// PtraceRefusal: what to tell the user when PTRACE_SEIZE answers EPERM.
//
// Why it exists: "run as root" is the right advice for an ordinary user and
// the wrong one for root, who already is. The kernel refuses even a
// privileged tracer when (as far as /proc shows):
//  - Yama's ptrace_scope is 3: no process may attach, root included, until
//    reboot (scopes 1 and 2 let CAP_SYS_PTRACE through);
//  - the tracer's CAP_SYS_PTRACE belongs to a user namespace the target is
//    not in (root inside `unshare --user`, a rootless container): that
//    root is only root over processes of its own namespace and its
//    children. A namespace other than the initial one has a uid_map that is
//    not the identity map "0 0 4294967295";
//  - a seccomp filter on the tracer (Docker's default profile before 19.03
//    refused ptrace with EPERM), or an LSM label (AppArmor, SELinux) whose
//    policy denies it; the kernel log says which.
// Kernel lockdown restricts kernel access (kcore, bpf, perf), not ptrace
// itself; it is named as context when it is on, since it often comes with
// a hardened policy. Every text is read from /proc or /sys and parsed
// leniently: a file that cannot be read is a fact not known, never an error.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace stackpeek {

/// The texts the diagnosis reads, each as read (nullopt: not readable).
struct PtraceFacts {
  std::optional<std::string> ownStatus;    // /proc/self/status (Uid, CapEff, Seccomp)
  std::optional<std::string> ownUidMap;    // /proc/self/uid_map
  std::optional<std::string> ownUserNs;    // readlink /proc/self/ns/user
  std::optional<std::string> targetUserNs; // readlink /proc/PID/ns/user
  std::optional<std::string> ptraceScope;  // /proc/sys/kernel/yama/ptrace_scope
  std::optional<std::string> ownLsmLabel;  // /proc/self/attr/current
  std::optional<std::string> lockdown;     // /sys/kernel/security/lockdown
};

/// Reads the facts for a refused attach to `target`.
PtraceFacts readPtraceFacts(pid_t target);

/// The advice that follows "not permitted to attach to pid N: ".
std::string ptraceRefusalHint(const PtraceFacts &facts);

} // namespace stackpeek
