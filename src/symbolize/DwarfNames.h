// DwarfNames: function names for DWARF entries, as gdb prints them.
//
// A function's DWARF entry (DW_TAG_subprogram, or DW_TAG_inlined_subroutine
// for an inlined call) names it in one of two ways. With a
// DW_AT_linkage_name, the mangled name says everything (scopes, template
// arguments, parameters), and we demangle it GNU-style. Without one, only
// DW_AT_name is there ("helper", "_M_invoke<0>"): GCC omits the linkage name
// for functions with internal linkage that are only ever inlined (a static
// inline function in a namespace, most of libstdc++'s inlined helpers), so
// the name alone loses its namespace and class. gdb then builds the
// qualified name from the scopes the function was declared in, and so do
// we:
//  - the declaration is found by following DW_AT_abstract_origin (inlined
//    copy -> its abstract instance) and DW_AT_specification (out-of-class
//    definition -> the declaration inside the class);
//  - each enclosing DW_TAG_namespace adds "NAME::", an unnamed one
//    "(anonymous namespace)::"; each class, struct or union adds its
//    DW_AT_name, which GCC writes with its template arguments
//    ("_Invoker<std::tuple<...> >");
//  - the walk ends at the compile unit, at an enclosing function (a local
//    class is not qualified by it) and at an unnamed class (a lambda's
//    closure type: gdb prints its call operator as plain "operator()").
// No parameter list is added: DWARF has none to copy, and gdb prints none.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "llvm/DebugInfo/DWARF/DWARFContext.h"
#include "llvm/DebugInfo/DWARF/DWARFDie.h"

namespace stackpeek {

/// The DIEs of the frames at `address`, innermost first: the same chain
/// DWARFContext::getInliningInfoForAddress reports frames for.
std::vector<llvm::DWARFDie> inlinedChainAt(llvm::DWARFContext &context, uint64_t address);

/// False when the unit holding `address` has no entries LLVM can walk (a
/// malformed file): its line and inlining lookups must not be asked.
bool dwarfReadableAt(llvm::DWARFContext &context, uint64_t address);

/// The name gdb prints for a function's DIE; nullopt if the DIE names no
/// function at all.
std::optional<std::string> functionName(const llvm::DWARFDie &die);

} // namespace stackpeek
