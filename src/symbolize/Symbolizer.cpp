#include "symbolize/Symbolizer.h"

#include <algorithm>

#include "llvm/Demangle/Demangle.h"
#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Support/Path.h"

namespace stackpeek {

namespace {

llvm::symbolize::LLVMSymbolizer::Options llvmOptions() {
  llvm::symbolize::LLVMSymbolizer::Options o;
  o.Demangle = true;
  o.UseSymbolTable = true;
  o.RelativeAddresses = false;
  return o;
}

struct Symbol {
  uint64_t start, size;
  std::string name;
};

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
    out.push_back({*addr, sym.getSize(), name->str()});
  };
  for (const llvm::object::ELFSymbolRef &sym : obj.symbols())
    add(sym);
  for (const llvm::object::ELFSymbolRef &sym : obj.getDynamicSymbolIterators())
    add(sym);
  std::sort(out.begin(), out.end(), [](const Symbol &a, const Symbol &b) {
    return a.start < b.start || (a.start == b.start && a.size > b.size);
  });
  return out;
}

// Symbol-table names of versioned symbols carry their version
// ("clock_nanosleep@@GLIBC_2.17"); the function is what a reader wants.
std::string withoutSymbolVersion(const std::string &name) {
  size_t at = name.find('@');
  return at == std::string::npos || at == 0 ? name : name.substr(0, at);
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
  std::vector<Symbol> symbols;    // fallback names
  std::string displayPath;        // the path as the target sees it
};

Symbolizer::Symbolizer(SymbolizerOptions options)
    : options_(std::move(options)), llvm_(llvmOptions()) {}

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
  module->displayPath = mapping.path;
  if (mapping.isFile()) {
    // " (deleted)": the file was replaced after mapping; the old one may still
    // be reachable through /proc/PID/map_files, but we do not chase it.
    auto main = ElfFile::open(options_.rootPrefix + mapping.path);
    if (main) {
      module->main = std::move(*main);
      if (!module->main->hasDwarf())
        module->debug = findDebugFile(*module->main, mapping.path);
      module->symbols = functionSymbols(module->main->object());
      if (module->debug && module->symbols.empty())
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
  std::optional<uint64_t> vaddr =
      module.main ? module.main->vaddrForFileOffset(fileOffset) : std::nullopt;
  base.moduleOffset = vaddr ? *vaddr : fileOffset;
  if (!vaddr)
    return {base};

  uint64_t lookup = exactAddress ? *vaddr : *vaddr - 1;
  const ElfFile &source =
      (module.main->hasDwarf() || !module.debug) ? *module.main : *module.debug;
  std::vector<Frame> frames;
  auto inlining = llvm_.symbolizeInlinedCode(
      source.object(), {lookup, llvm::object::SectionedAddress::UndefSection});
  if (inlining) {
    for (uint32_t i = 0; i < inlining->getNumberOfFrames(); ++i) {
      const llvm::DILineInfo &info = inlining->getFrame(i);
      Frame f = base;
      f.function = nullIfInvalid(info.FunctionName);
      if (f.function)
        f.function = withoutSymbolVersion(*f.function);
      f.file = nullIfInvalid(info.FileName);
      if (info.Line)
        f.line = info.Line;
      if (info.Column)
        f.column = info.Column;
      f.inlined = i + 1 < inlining->getNumberOfFrames();
      frames.push_back(std::move(f));
    }
  } else {
    llvm::consumeError(inlining.takeError());
  }
  if (frames.empty())
    frames.push_back(base);
  // No name from DWARF or LLVM's symbol table: use ours (covers .dynsym).
  Frame &outer = frames.back();
  if (!outer.function && !module.symbols.empty()) {
    auto it = std::upper_bound(module.symbols.begin(), module.symbols.end(), lookup,
                               [](uint64_t a, const Symbol &s) { return a < s.start; });
    if (it != module.symbols.begin()) {
      --it;
      if (lookup < it->start + std::max<uint64_t>(it->size, 1))
        outer.function = llvm::demangle(withoutSymbolVersion(it->name));
    }
  }
  return frames;
}

} // namespace stackpeek
