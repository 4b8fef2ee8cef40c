// ptraceRefusalHint fed /proc text as the kernel writes it: the cases that
// refuse even root (yama scope 3, a user namespace, seccomp, an LSM label)
// cannot be provoked as root on a test machine, except the user namespace
// (test_cli_errors.py does that one with the real binary). An ordinary user
// is told to become root; root is never told so.
#include <gtest/gtest.h>

#include "process/PtraceRefusal.h"

using namespace stackpeek;

namespace {

const char kRootStatus[] = "Name:\tstackpeek\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"
                           "CapEff:\t000001ffffffffff\nSeccomp:\t0\nSeccomp_filters:\t0\n";
const char kUserStatus[] = "Name:\tstackpeek\nUid:\t1000\t1000\t1000\t1000\n"
                           "CapEff:\t0000000000000000\nSeccomp:\t0\n";
// uid 1000 given CAP_SYS_PTRACE (setcap cap_sys_ptrace+ep): bit 19.
const char kCapStatus[] = "Name:\tstackpeek\nUid:\t1000\t1000\t1000\t1000\n"
                          "CapEff:\t0000000000080000\nSeccomp:\t0\n";
const char kIdentityMap[] = "         0          0 4294967295\n";

PtraceFacts hostRoot() {
  PtraceFacts facts;
  facts.ownStatus = kRootStatus;
  facts.ownUidMap = kIdentityMap;
  facts.ownUserNs = "user:[4026531837]";
  facts.targetUserNs = "user:[4026531837]";
  facts.ptraceScope = "1\n";
  facts.ownLsmLabel = "unconfined\n";
  facts.lockdown = "[none] integrity confidentiality\n";
  return facts;
}

bool says(const std::string &hint, const char *text) {
  return hint.find(text) != std::string::npos;
}

TEST(PtraceRefusal, AnOrdinaryUserIsToldToBecomeRoot) {
  PtraceFacts facts = hostRoot();
  facts.ownStatus = kUserStatus;
  std::string hint = ptraceRefusalHint(facts);
  EXPECT_TRUE(says(hint, "as root / with CAP_SYS_PTRACE")) << hint;
  EXPECT_TRUE(says(hint, "ptrace_scope is 1 (set it to 0, or run as root)")) << hint;
}

TEST(PtraceRefusal, RootIsNeverToldToRunAsRoot) {
  for (const char *status : {kRootStatus, kCapStatus}) {
    PtraceFacts facts = hostRoot();
    facts.ownStatus = status;
    std::string hint = ptraceRefusalHint(facts);
    EXPECT_TRUE(says(hint, "already runs as root / with CAP_SYS_PTRACE")) << hint;
    EXPECT_FALSE(says(hint, "run as root")) << hint;
    EXPECT_FALSE(says(hint, "run stackpeek as")) << hint;
    // Nothing in these facts refuses root: say so, and where to look.
    EXPECT_TRUE(says(hint, "no cause shows in /proc")) << hint;
    EXPECT_TRUE(says(hint, "dmesg")) << hint;
  }
}

TEST(PtraceRefusal, YamaScopeThreeRefusesRoot) {
  PtraceFacts facts = hostRoot();
  facts.ptraceScope = "3\n";
  std::string hint = ptraceRefusalHint(facts);
  EXPECT_TRUE(says(hint, "ptrace_scope is 3")) << hint;
  EXPECT_FALSE(says(hint, "no cause shows")) << hint;
}

TEST(PtraceRefusal, ScopesOneAndTwoDoNotRefuseRoot) {
  for (const char *scope : {"1\n", "2\n"}) {
    PtraceFacts facts = hostRoot();
    facts.ptraceScope = scope;
    EXPECT_FALSE(says(ptraceRefusalHint(facts), "ptrace_scope is")) << scope;
  }
}

TEST(PtraceRefusal, RootInsideAUserNamespace) {
  PtraceFacts facts = hostRoot();
  facts.ownUidMap = "         0       1000          1\n"; // unshare --user --map-root-user
  facts.ownUserNs = "user:[4026532178]";
  facts.targetUserNs = std::nullopt; // outside our namespace: not readable from it
  std::string hint = ptraceRefusalHint(facts);
  EXPECT_TRUE(says(hint, "runs in a user namespace")) << hint;

  facts.targetUserNs = "user:[4026531837]"; // readable, and another namespace
  EXPECT_TRUE(says(ptraceRefusalHint(facts), "runs in a user namespace"));

  facts.targetUserNs = facts.ownUserNs; // the target shares it: not the cause
  EXPECT_FALSE(says(ptraceRefusalHint(facts), "runs in a user namespace"));
}

TEST(PtraceRefusal, SeccompAndSecurityLabelsAreNamed) {
  PtraceFacts facts = hostRoot();
  facts.ownStatus->replace(facts.ownStatus->find("Seccomp:\t0"), 10, "Seccomp:\t2");
  facts.ownLsmLabel = "docker-default (enforce)\n";
  std::string hint = ptraceRefusalHint(facts);
  EXPECT_TRUE(says(hint, "seccomp filter (Seccomp: 2")) << hint;
  EXPECT_TRUE(says(hint, "label 'docker-default (enforce)'")) << hint;

  facts.ownLsmLabel = "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023";
  EXPECT_FALSE(says(ptraceRefusalHint(facts), "label")); // SELinux, unconfined
}

TEST(PtraceRefusal, LockdownIsContextOnly) {
  PtraceFacts facts = hostRoot();
  facts.lockdown = "none integrity [confidentiality]\n";
  std::string hint = ptraceRefusalHint(facts);
  EXPECT_TRUE(says(hint, "kernel lockdown is on (confidentiality)")) << hint;
  EXPECT_TRUE(says(hint, "no cause shows in /proc")) << hint;
}

TEST(PtraceRefusal, UnreadableFilesAreUnknownFacts) {
  std::string hint = ptraceRefusalHint(PtraceFacts{}); // nothing readable
  EXPECT_TRUE(says(hint, "as root / with CAP_SYS_PTRACE")) << hint;

  PtraceFacts facts;
  facts.ownStatus = kRootStatus;
  EXPECT_TRUE(says(ptraceRefusalHint(facts), "no cause shows in /proc"));
}

TEST(PtraceRefusal, TextFromFilesIsPrintedPrintable) {
  PtraceFacts facts = hostRoot();
  facts.ownLsmLabel = std::string("evil\x1b[31m\n", 10);
  std::string hint = ptraceRefusalHint(facts);
  EXPECT_FALSE(says(hint, "\x1b")) << hint;
  EXPECT_TRUE(says(hint, "evil?[31m")) << hint;
}

} // namespace
