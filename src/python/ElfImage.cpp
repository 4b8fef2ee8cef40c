// Reads symbol tables, section headers and program headers with LLVM's
// ELFObjectFile; we keep only the few names the locator asks for, so the
// large libpython .symtab is not retained.
#include "python/ElfImage.h"

#include <array>
#include <unordered_set>

#include "process/SafeFile.h"

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
constexpr uint64_t kMaxElfFileSize = 2ull << 30;

template <class Array> bool wanted(const Array &names, llvm::StringRef name) {
  for (const char *n : names)
    if (name == n)
      return true;
  return false;
}

} // namespace

llvm::Expected<ElfImage> ElfImage::open(const std::string &path) {
  auto buffer = openRegularFile(path, kMaxElfFileSize);
  if (!buffer)
    return buffer.takeError();
  auto object = llvm::object::ObjectFile::createELFObjectFile(
      (*buffer)->getMemBufferRef());
  if (!object)
    return object.takeError();
  auto *elf = llvm::dyn_cast<llvm::object::ELF64LEObjectFile>(object->get());
  if (!elf)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "%s is not a 64-bit little-endian ELF file",
                                   path.c_str());
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
  auto phdrs = elf->getELFFile().program_headers();
  if (!phdrs)
    return phdrs.takeError();
  for (const auto &ph : *phdrs) {
    if (ph.p_type != llvm::ELF::PT_LOAD)
      continue;
    uint64_t align = ph.p_align ? uint64_t(ph.p_align) : 1;
    image.firstLoadVaddr_ = ph.p_vaddr & ~(align - 1);
    break;
  }
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
