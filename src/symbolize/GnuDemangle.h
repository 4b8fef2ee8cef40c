// GnuDemangle: C++ names spelled the way gdb and c++filt spell them.
//
// Linux users read demangled names in gdb backtraces and c++filt output,
// both produced by libiberty's cplus_demangle. LLVM's Itanium demangler
// parses the same mangling but spells three things its own way:
//   closure types    LLVM  f()::'lambda0'(int)     GNU  f()::{lambda(int)#2}
//   unnamed types    LLVM  A::'unnamed'            GNU  A::{unnamed type#1}
//   clone suffixes   LLVM  f() (.constprop.0.cold) GNU  f() [clone .constprop.0] [clone .cold]
// The numbering differs by one step: the mangling's discriminator is absent
// for the first closure ("UlvE_"), then counts from 0 ("UlvE0_" is the
// second), and LLVM prints that raw digit string where GNU prints the
// ordinal. We keep LLVM's parser and swap in our own printing for just
// those three node kinds (through the parser's node allocator, the hook
// LLVM's own ItaniumManglingCanonicalizer uses). Linking libiberty itself
// (Debian's libiberty-dev, a static archive) would be a second demangler to
// trust with names read from the target's files, for three spellings.
#pragma once

#include <string>
#include <string_view>

namespace stackpeek {

/// The GNU spelling of an Itanium-mangled name ("_Z..."). Other names, and
/// mangled names the parser rejects, are handed to llvm::demangle, which
/// returns them unchanged if it cannot demangle them either.
std::string demangleGnuStyle(std::string_view name);

} // namespace stackpeek
