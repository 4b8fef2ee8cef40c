// Reads symbol tables and section headers through ElfFile (the one ELF
// reader: safe open, LLVM's parser); we keep only the few names the locator
// asks for and the PT_LOAD table, so the large libpython .symtab is not
// retained.
#include "python/frames/ElfImage.h"

#include <array>
#include <unordered_set>

#include "module/ElfFile.h"

namespace stackpeek::python {

namespace {

// Symbols and sections the locator may ask for; everything else is skipped.
constexpr std::array kWantedSymbols = {
    "_PyRuntime", "interp_head", "_PyThreadState_Current", "Py_Version",
    "version.0", "version", // Py_GetVersion's static buffer (≤3.10)
    // 2.7/3.6 statics: the GIL's lock and the collector's flag.
    "interpreter_lock", "gil_cond", "gil_mutex", "collecting"};
// Generic static names another object file of a static build could define
// too: two different definitions make the name unusable, not the first one.
constexpr std::array kUniqueSymbols = {"interpreter_lock", "gil_cond",
                                       "gil_mutex", "collecting"};
constexpr std::array kWantedSections = {".PyRuntime", ".AsyncioDebug", ".bss", ".data"};

template <class Array> bool wanted(const Array &names, llvm::StringRef name) {
  for (const char *n : names)
    if (name == n)
      return true;
  return false;
}

} // namespace

llvm::Expected<ElfImage> ElfImage::open(const std::string &path) {
  auto file = ElfFile::open(path);
  if (!file)
    return file.takeError();
  const llvm::object::ELFObjectFileBase *elf = &(*file)->object();
  ElfImage image;
  std::unordered_set<std::string> ambiguous;
  auto addSymbol = [&](const llvm::object::ELFSymbolRef &sym) {
    auto name = sym.getName();
    if (!name) {
      llvm::consumeError(name.takeError());
      return;
    }
    if (!wanted(kWantedSymbols, *name) || ambiguous.count(name->str()))
      return;
    auto value = sym.getValue();
    if (!value) {
      llvm::consumeError(value.takeError());
      return;
    }
    if (*value == 0) // undefined references have value 0
      return;
    auto known = image.symbols_.find(name->str());
    if (known == image.symbols_.end()) {
      image.symbols_[name->str()] = *value;
    } else if (known->second != *value && wanted(kUniqueSymbols, *name)) {
      image.symbols_.erase(known);
      ambiguous.insert(name->str());
    }
  };
  for (const llvm::object::ELFSymbolRef &sym : elf->getDynamicSymbolIterators())
    addSymbol(sym);
  for (const llvm::object::ELFSymbolRef &sym : elf->symbols())
    addSymbol(sym);
  for (const llvm::object::SectionRef &sec : elf->sections()) {
    auto name = sec.getName();
    if (!name) {
      llvm::consumeError(name.takeError());
      continue;
    }
    if (wanted(kWantedSections, *name))
      image.sections_[name->str()] = {sec.getAddress(), sec.getSize()};
  }
  image.loads_ = (*file)->loads();
  return image;
}

std::optional<uint64_t> ElfImage::symbol(const std::string &name) const {
  auto it = symbols_.find(name);
  if (it == symbols_.end())
    return std::nullopt;
  return it->second;
}

std::optional<ElfSection> ElfImage::section(const std::string &name) const {
  auto it = sections_.find(name);
  if (it == sections_.end())
    return std::nullopt;
  return it->second;
}

} // namespace stackpeek::python
