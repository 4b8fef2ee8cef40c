#include "symbolize/Symbolizer.h"

#include <algorithm>

#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Support/Path.h"

#include "symbolize/DwarfLoader.h"
#include "symbolize/DwarfNames.h"
#include "symbolize/GnuDemangle.h"

namespace stackpeek {

namespace {

struct Symbol {
  uint64_t start, size;
  std::string name;
  bool global; // STB_GLOBAL or STB_WEAK: the name callers use
};

// Among aliases of one address (glibc has __GI___clock_nanosleep,
// __clock_nanosleep and clock_nanosleep for one function), the public one
// reads best: global before local, then fewer leading underscores.
bool betterAlias(const Symbol &a, const Symbol &b) {
  if (a.global != b.global)
    return a.global;
  size_t ua = a.name.find_first_not_of('_'), ub = b.name.find_first_not_of('_');
  if (ua != ub)
    return ua < ub;
  return a.name.size() < b.name.size();
}

// Function symbols from .symtab and .dynsym, sorted by address.
std::vector<Symbol> functionSymbols(const llvm::object::ELFObjectFileBase &obj) {
  std::vector<Symbol> out;
  auto add = [&](const llvm::object::ELFSymbolRef &sym) {
    if (sym.getELFType() != llvm::ELF::STT_FUNC && sym.getELFType() != llvm::ELF::STT_GNU_IFUNC)
      return;
    auto addr = sym.getAddress();
    auto name = sym.getName();
    if (!addr || !name || *addr == 0 || name->empty()) {
      if (!addr) llvm::consumeError(addr.takeError());
      if (!name) llvm::consumeError(name.takeError());
      return;
    }
    uint8_t binding = sym.getBinding();
    out.push_back({*addr, sym.getSize(), name->str(),
                   binding == llvm::ELF::STB_GLOBAL || binding == llvm::ELF::STB_WEAK});
  };
  // LLVM's per-symbol accessors (getELFType, getSize, getBinding) abort the
  // process on a malformed table (bad sh_entsize or bounds), so a table is
  // read only after ELFFile::symbols() has validated it as a whole.
  bool symtabOk = false, dynsymOk = false;
  if (const auto *elf = llvm::dyn_cast<llvm::object::ELF64LEObjectFile>(&obj)) {
    const auto &file = elf->getELFFile();
    if (auto sections = file.sections()) {
      bool symtabBad = false, dynsymBad = false;
      for (const auto &sec : *sections) {
        if (sec.sh_type != llvm::ELF::SHT_SYMTAB && sec.sh_type != llvm::ELF::SHT_DYNSYM)
          continue;
        bool bad = false;
        if (auto syms = file.symbols(&sec); !syms) {
          llvm::consumeError(syms.takeError());
          bad = true;
        }
        (sec.sh_type == llvm::ELF::SHT_SYMTAB ? symtabBad : dynsymBad) |= bad;
      }
      symtabOk = !symtabBad;
      dynsymOk = !dynsymBad;
    } else {
      llvm::consumeError(sections.takeError());
    }
  }
  if (symtabOk)
    for (const llvm::object::ELFSymbolRef &sym : obj.symbols())
      add(sym);
  if (dynsymOk)
    for (const llvm::object::ELFSymbolRef &sym : obj.getDynamicSymbolIterators())
      add(sym);
  // By address; at one address the preferred alias first, so a lookup that
  // lands on the last symbol at or below an address can step back to it.
  std::sort(out.begin(), out.end(), [](const Symbol &a, const Symbol &b) {
    if (a.start != b.start)
      return a.start < b.start;
    return betterAlias(a, b);
  });
  return out;
}

// Symbol-table names of versioned symbols carry their version
// ("clock_nanosleep@@GLIBC_2.17"); the function is what a reader wants.
std::string withoutSymbolVersion(const std::string &name) {
  size_t at = name.find('@');
  return at == std::string::npos || at == 0 ? name : name.substr(0, at);
}

// The preferred alias of the function symbol containing `vaddr`, if any.
const Symbol *symbolAt(const std::vector<Symbol> &symbols, uint64_t vaddr) {
  auto it = std::upper_bound(symbols.begin(), symbols.end(), vaddr,
                             [](uint64_t a, const Symbol &s) { return a < s.start; });
  if (it == symbols.begin())
    return nullptr;
  uint64_t start = std::prev(it)->start;
  // Step back to the first (preferred) alias at that address.
  auto first = std::lower_bound(symbols.begin(), it, start,
                                [](const Symbol &s, uint64_t a) { return s.start < a; });
  for (auto s = first; s != it; ++s)
    if (vaddr < s->start + std::max<uint64_t>(s->size, 1))
      return &*s;
  return nullptr;
}

std::optional<std::string> nullIfInvalid(const std::string &s) {
  if (s.empty() || s == llvm::DILineInfo::BadString || s == "<invalid>")
    return std::nullopt;
  return s;
}

} // namespace

struct Symbolizer::Module {
  std::unique_ptr<ElfFile> main;  // the mapped file itself (null if unreadable)
  std::unique_ptr<ElfFile> debug; // its separate debug file, if found
  std::unique_ptr<LoadedDwarf> dwarf; // from main, else from debug; may be null
  std::vector<Symbol> symbols;    // fallback names
  // Results per (vaddr, exact): many threads share the same return addresses.
  std::map<std::pair<uint64_t, bool>, std::vector<Frame>> cache;
  bool listedWithoutSymbols = false; // in withoutSymbols_ already
};

Symbolizer::Symbolizer(SymbolizerOptions options) : options_(std::move(options)) {}

Symbolizer::~Symbolizer() = default;

std::unique_ptr<ElfFile> Symbolizer::tryDebugCandidate(const std::string &candidate,
                                                       const std::string &wantBuildId) {
  auto file = ElfFile::open(candidate);
  if (!file) {
    llvm::consumeError(file.takeError());
    return nullptr;
  }
  // A debug file for another build would give confidently wrong lines.
  if (!wantBuildId.empty() && (*file)->buildId() != wantBuildId)
    return nullptr;
  if (!(*file)->hasDwarf() && !(*file)->hasSymtab())
    return nullptr;
  return std::move(*file);
}

std::unique_ptr<ElfFile> Symbolizer::findDebugFile(const ElfFile &main,
                                                   const std::string &path) {
  std::vector<std::string> roots = options_.debugDirs;
  roots.push_back(options_.rootPrefix + "/usr/lib/debug");
  if (!options_.rootPrefix.empty())
    roots.push_back("/usr/lib/debug");
  const std::string &id = main.buildId();
  if (id.size() > 2)
    for (const std::string &root : roots)
      if (auto f = tryDebugCandidate(root + "/.build-id/" + id.substr(0, 2) + "/" +
                                         id.substr(2) + ".debug",
                                     id))
        return f;
  if (const auto &link = main.debugLink()) {
    std::string dir = llvm::sys::path::parent_path(options_.rootPrefix + path).str();
    std::string targetDir = llvm::sys::path::parent_path(path).str();
    std::vector<std::string> candidates = {dir + "/" + *link, dir + "/.debug/" + *link};
    for (const std::string &root : roots)
      candidates.push_back(root + targetDir + "/" + *link);
    for (const std::string &c : candidates)
      if (c != options_.rootPrefix + path)
        if (auto f = tryDebugCandidate(c, id))
          return f;
  }
  return nullptr;
}

Symbolizer::Module &Symbolizer::moduleFor(const MapEntry &mapping) {
  auto key = std::make_pair(mapping.path, mapping.inode);
  auto it = modules_.find(key);
  if (it != modules_.end())
    return *it->second;
  auto module = std::make_unique<Module>();
  if (mapping.isFile()) {
    // " (deleted)": the file was replaced after mapping; the old one may still
    // be reachable through /proc/PID/map_files, but we do not chase it.
    auto main = ElfFile::open(options_.rootPrefix + mapping.path);
    if (main) {
      module->main = std::move(*main);
      if (!module->main->hasDwarf())
        module->debug = findDebugFile(*module->main, mapping.path);
      module->dwarf = loadDwarf(module->debug ? *module->debug : *module->main);
      module->symbols = functionSymbols(module->main->object());
      if (module->debug && !module->main->hasSymtab())
        module->symbols = functionSymbols(module->debug->object());
    } else {
      llvm::consumeError(main.takeError());
    }
  }
  return *modules_.emplace(key, std::move(module)).first->second;
}

std::vector<Frame> Symbolizer::symbolize(const std::vector<MapEntry> &maps,
                                         uint64_t address, bool exactAddress) {
  Frame base;
  base.kind = Frame::Kind::Native;
  base.address = address;
  const MapEntry *mapping = findMapping(maps, address);
  if (!mapping)
    return {base};
  if (!mapping->path.empty())
    base.module = mapping->path;
  Module &module = moduleFor(*mapping);
  uint64_t fileOffset = address - mapping->start + mapping->offset;
  std::optional<uint64_t> bias =
      module.main ? loadBias(*mapping, module.main->loads()) : std::nullopt;
  std::optional<uint64_t> vaddr;
  if (bias)
    vaddr = address - *bias;
  base.moduleOffset = vaddr ? *vaddr : fileOffset;
  if (!vaddr)
    return {base};

  uint64_t lookupAddr = exactAddress ? *vaddr : *vaddr - 1;
  auto key = std::make_pair(lookupAddr, exactAddress);
  auto cached = module.cache.find(key);
  if (cached == module.cache.end()) {
    cached = module.cache.emplace(key, lookup(module, lookupAddr, base)).first;
    noteIfUnnamed(module, mapping->path, cached->second);
  }
  std::vector<Frame> frames = cached->second;
  for (Frame &f : frames)
    f.address = address; // the cache is per module address, not per mapping
  return frames;
}

// Only a module without any DWARF is listed: one with DWARF that misses an
// address (hand-written assembly, say) has nothing a debug package would add.
void Symbolizer::noteIfUnnamed(Module &module, const std::string &path,
                               const std::vector<Frame> &frames) {
  if (module.listedWithoutSymbols || !module.main || frames.back().function ||
      (module.dwarf && module.dwarf->context))
    return;
  module.listedWithoutSymbols = true;
  withoutSymbols_.push_back({path, module.main->buildId(), module.main->debugLink()});
}

std::vector<Frame> Symbolizer::lookup(Module &module, uint64_t vaddr, const Frame &base) {
  std::vector<Frame> frames;
  if (module.dwarf && module.dwarf->context && dwarfReadableAt(*module.dwarf->context, vaddr)) {
    llvm::DILineInfoSpecifier spec(
        llvm::DILineInfoSpecifier::FileLineInfoKind::AbsoluteFilePath,
        llvm::DILineInfoSpecifier::FunctionNameKind::LinkageName);
    llvm::DIInliningInfo inlining = module.dwarf->context->getInliningInfoForAddress(
        {vaddr, llvm::object::SectionedAddress::UndefSection}, spec);
    // LLVM names an entry without a linkage name by its bare DW_AT_name;
    // the entries themselves give the qualified name gdb prints.
    std::vector<llvm::DWARFDie> dies = inlinedChainAt(*module.dwarf->context, vaddr);
    if (dies.size() != inlining.getNumberOfFrames())
      dies.clear();
    for (uint32_t i = 0; i < inlining.getNumberOfFrames(); ++i) {
      const llvm::DILineInfo &info = inlining.getFrame(i);
      Frame f = base;
      if (auto name = dies.empty() ? std::nullopt : functionName(dies[i]))
        f.function = std::move(*name);
      else if (auto name = nullIfInvalid(info.FunctionName))
        f.function = demangleGnuStyle(withoutSymbolVersion(*name));
      f.file = nullIfInvalid(info.FileName);
      if (info.Line)
        f.line = info.Line;
      if (info.Column)
        f.column = info.Column;
      f.inlined = i + 1 < inlining.getNumberOfFrames();
      frames.push_back(std::move(f));
    }
  }
  if (frames.empty())
    frames.push_back(base);
  // The outermost frame is a real (not inlined) function, so the symbol
  // table names it too: that name wins, being the public alias where DWARF
  // has an internal one, and the only name where there is no DWARF at all.
  Frame &outer = frames.back();
  if (const Symbol *sym = symbolAt(module.symbols, vaddr))
    outer.function = demangleGnuStyle(withoutSymbolVersion(sym->name));
  return frames;
}

std::string missingSymbolsNote(const ModuleWithoutSymbols &module) {
  std::string note = module.path + " has no symbols or debug information, so its frames show "
                     "as ??: install the distribution's debug package for it (Debian: its "
                     "-dbgsym package; find-dbgsym-packages from debian-goodies names it)";
  const std::string &id = module.buildId;
  if (id.size() > 2)
    note += ", or pass --debug-dir DIR with its debug file at DIR/.build-id/" + id.substr(0, 2) +
            "/" + id.substr(2) + ".debug";
  else if (module.debugLink)
    note += ", or pass --debug-dir DIR with its debug file at DIR" +
            llvm::sys::path::parent_path(module.path).str() + "/" + *module.debugLink;
  else
    note += "; it has no build-id or debug link to find a debug file by, so only an "
            "unstripped build would name its frames";
  return note;
}

} // namespace stackpeek
