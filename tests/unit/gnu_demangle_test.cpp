// demangleGnuStyle must spell names as gdb and c++filt do, where LLVM's
// demangler spells them its own way (lambdas, unnamed types, clones), and
// exactly as LLVM does everywhere else. Each expected string is what
// c++filt (binutils 2.40) prints for the mangled name beside it.
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "llvm/Demangle/Demangle.h"

#include "symbolize/GnuDemangle.h"

using stackpeek::demangleGnuStyle;

struct Spelling {
  const char *mangled;
  const char *gnu; // what c++filt prints
};

void expectGnuSpellings(std::initializer_list<Spelling> cases) {
  for (const Spelling &c : cases)
    EXPECT_EQ(demangleGnuStyle(c.mangled), c.gnu) << c.mangled;
}

TEST(GnuDemangle, LambdasAreNumberedFromOne) {
  expectGnuSpellings({
      {"_ZZ4mainENKUliE_clEi", "main::{lambda(int)#1}::operator()(int) const"},
      {"_ZZ11lambda_hostiENKUliE0_clEi", "lambda_host(int)::{lambda(int)#2}::operator()(int) const"},
      {"_ZZ4mainENKUliE9_clEi", "main::{lambda(int)#11}::operator()(int) const"},
      {"_ZNSt6thread11_State_implINS_8_InvokerISt5tupleIJZ5startmPKcPFviEEUlvE_EEEEE6_M_runEv",
       "std::thread::_State_impl<std::thread::_Invoker<std::tuple<start(unsigned long, char "
       "const*, void (*)(int))::{lambda()#1}> > >::_M_run()"},
  });
}

TEST(GnuDemangle, UnnamedTypes) {
  expectGnuSpellings({{"_ZN1AUt_E", "A::{unnamed type#1}"}, {"_ZN1AUt3_E", "A::{unnamed type#5}"}});
}

TEST(GnuDemangle, CloneSuffixes) {
  expectGnuSpellings({
      {"_Z13function_hosti.cold", "function_host(int) [clone .cold]"},
      {"_Z1fv.constprop.0.cold", "f() [clone .constprop.0] [clone .cold]"},
      {"_ZNK1A1fEv.part.0", "A::f() const [clone .part.0]"},
      {"_Z1fv.isra.0.123", "f() [clone .isra.0.123]"},
  });
}

TEST(GnuDemangle, SuffixThatIsNoCloneIsKept) {
  // c++filt gives up on the whole name here; we keep the demangled part and
  // the suffix, so nothing is lost.
  EXPECT_EQ(demangleGnuStyle("_Z1fv.Foo"), "f() [clone .Foo]");
}

TEST(GnuDemangle, EverythingElseAsLlvmSpellsIt) {
  for (const char *name : {"_ZN12_GLOBAL__N_110anon_outerEi", "_ZN2ns4parkEi",
                           "_ZNK6shapes6Widget4spinEi", "_ZN6shapes4deepILi3EEEvi",
                           "_ZNKSt8functionIFviEEclEi"})
    EXPECT_EQ(demangleGnuStyle(name), llvm::demangle(name)) << name;
  expectGnuSpellings({{"_ZN12_GLOBAL__N_110anon_outerEi", "(anonymous namespace)::anon_outer(int)"}});
}

TEST(GnuDemangle, NamesThatAreNotMangledStayAsTheyAre) {
  EXPECT_EQ(demangleGnuStyle("main"), "main");
  EXPECT_EQ(demangleGnuStyle("lock_PyThread_acquire_lock.lto_priv.0"),
            "lock_PyThread_acquire_lock.lto_priv.0");
  EXPECT_EQ(demangleGnuStyle(""), "");
}

TEST(GnuDemangle, MalformedManglingComesBackUnchanged) {
  for (const char *name : {"_Z", "_ZZ", "_ZN2ns", "_ZZ4mainENKUliE", "_ZN1AUt", "_Z\xff\xfe"})
    EXPECT_EQ(demangleGnuStyle(name), name) << name;
}
