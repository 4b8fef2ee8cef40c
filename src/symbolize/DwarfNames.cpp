// DwarfNames: qualified names from DWARF scopes (see DwarfNames.h). The
// DWARF comes from the target's files: every reference is checked before it
// is followed and every walk has a bound, so a cyclic or deep chain of
// entries yields a shorter name, never a hang.
#include "symbolize/DwarfNames.h"

#include "llvm/DebugInfo/DWARF/DWARFCompileUnit.h"

#include "symbolize/GnuDemangle.h"

namespace stackpeek {

namespace {

// Far beyond what real code nests; only a malformed file reaches them.
constexpr int kMaxDeclarationHops = 16;
constexpr int kMaxScopes = 64;

// The entry a function (or class) was declared with: an inlined copy
// refers to its abstract instance, an out-of-class definition to the
// declaration inside the class.
llvm::DWARFDie declarationOf(llvm::DWARFDie die) {
  for (int hop = 0; hop < kMaxDeclarationHops; ++hop) {
    llvm::DWARFDie next = die.getAttributeValueAsReferencedDie(llvm::dwarf::DW_AT_abstract_origin);
    if (!next)
      next = die.getAttributeValueAsReferencedDie(llvm::dwarf::DW_AT_specification);
    if (!next)
      break;
    die = next;
  }
  return die;
}

bool isClassLike(llvm::dwarf::Tag tag) {
  return tag == llvm::dwarf::DW_TAG_class_type || tag == llvm::dwarf::DW_TAG_structure_type ||
         tag == llvm::dwarf::DW_TAG_union_type;
}

bool endsQualification(llvm::dwarf::Tag tag) {
  return tag == llvm::dwarf::DW_TAG_compile_unit || tag == llvm::dwarf::DW_TAG_partial_unit ||
         tag == llvm::dwarf::DW_TAG_type_unit || tag == llvm::dwarf::DW_TAG_subprogram ||
         tag == llvm::dwarf::DW_TAG_inlined_subroutine;
}

// "ns::Class<int>::" for the scopes enclosing `decl`, outermost first.
std::string scopePrefix(const llvm::DWARFDie &decl) {
  std::vector<std::string> scopes;
  llvm::DWARFDie scope = decl.getParent();
  for (int depth = 0; scope && depth < kMaxScopes; ++depth, scope = scope.getParent()) {
    llvm::dwarf::Tag tag = scope.getTag();
    if (endsQualification(tag))
      break;
    if (tag == llvm::dwarf::DW_TAG_namespace) {
      const char *name = scope.getShortName();
      scopes.push_back(name && *name ? name : "(anonymous namespace)");
    } else if (isClassLike(tag)) {
      // A class defined outside the class it is nested in names its
      // enclosing scopes through its declaration.
      scope = declarationOf(scope);
      const char *name = scope.getShortName();
      if (!name || !*name)
        break;
      scopes.push_back(name);
    }
    // Anything else (a lexical block, say) is transparent, as in gdb.
  }
  std::string prefix;
  for (auto it = scopes.rbegin(); it != scopes.rend(); ++it)
    prefix += *it + "::";
  return prefix;
}

} // namespace

// LLVM 14 walks a unit's entries from its unit entry without checking that
// there is one: a unit whose entries fail to parse (a malformed file) has
// none, and the walk reads through a null pointer. Its entries are parsed
// here first, as the walk would, and such a unit is left alone.
bool dwarfReadableAt(llvm::DWARFContext &context, uint64_t address) {
  llvm::DWARFCompileUnit *unit = context.getCompileUnitForAddress(address);
  return !unit || unit->getUnitDIE(/*ExtractUnitDIEOnly=*/false).isValid();
}

std::vector<llvm::DWARFDie> inlinedChainAt(llvm::DWARFContext &context, uint64_t address) {
  llvm::SmallVector<llvm::DWARFDie, 4> chain;
  llvm::DWARFCompileUnit *unit = context.getCompileUnitForAddress(address);
  if (unit && unit->getUnitDIE(/*ExtractUnitDIEOnly=*/false).isValid())
    unit->getInlinedChainForAddress(address, chain);
  return {chain.begin(), chain.end()};
}

std::optional<std::string> functionName(const llvm::DWARFDie &die) {
  if (!die)
    return std::nullopt;
  if (const char *linkage = die.getLinkageName(); linkage && *linkage)
    return demangleGnuStyle(linkage);
  const char *name = die.getShortName();
  if (!name || !*name)
    return std::nullopt;
  return scopePrefix(declarationOf(die)) + name;
}

} // namespace stackpeek
