// locate(): finding and validating the CPython runtime of a process.
//
// Domain facts relied on (docs/cpython-structures.md §1):
//  - The interpreter lives in a mapped libpython*.so if there is one, else in
//    the executable (Debian's python3 links libpython statically). sysconfig
//    is never consulted: only /proc/PID/maps tells what is really loaded.
//  - Roots: `_PyRuntime` (3.7+; also the `.PyRuntime` section on 3.10+ when
//    symbols are stripped), `interp_head` + `_PyThreadState_Current`
//    (2.7/3.6; interp_head is a local symbol, .symtab only).
//  - Version: `_Py_DebugOffsets` (3.13+), `Py_Version` (3.11+), the string
//    Py_GetVersion() formats into its static buffer (`version.0`) at startup,
//    or as a last resort the file name (major.minor only).
//  - The same file can be mapped twice (ctypes dlopen of libpython/python):
//    every load of the file is tried and the runtime must validate (cookie on
//    3.13+, interp->threads.head->interp == interp).
#include "python/frames/Interpreter.h"
#include "python/frames/Locate.h"

#include "python/layout/DebugOffsets.h"
#include "python/layout/VersionLayouts.h"

#include <cstring>
#include <map>
#include <regex>

#include "process/Maps.h"
#include "process/ProcFs.h"
#include "module/LoadedModule.h"
#include "python/frames/ElfImage.h"
#include "python/layout/RemoteStruct.h"
#include "process/SafeFile.h"
#include "llvm/Support/Path.h"

namespace stackpeek::python {

namespace {

llvm::Error locateError(const std::string &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s",
                                 msg.c_str());
}

// One load of a file that may hold the interpreter (LoadedModule.h).
struct ModuleLoad {
  MapEntry start; // its mapping at file offset 0
  bool isLibpython = false;
  const std::string &path() const { return start.path; }
};

std::string baseName(const std::string &path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool isLibpythonName(const std::string &path) {
  // libpython3.11.so.1.0, libpython3.6m.so, libpython2.7.so, libpython3.13t.so
  static const std::regex pattern(R"(libpython\d\.\d+[a-z]*\.so(\.[0-9.]+)?)");
  return std::regex_match(baseName(path), pattern);
}

std::string stripDeleted(std::string path) {
  static const std::string suffix = " (deleted)";
  if (path.size() > suffix.size() &&
      path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
    path.resize(path.size() - suffix.size());
  return path;
}

// Every load of libpython, then of the executable. A file mapped twice
// yields two loads; a page re-mapped without its offset-0 mapping (libffi
// trampolines) yields none.
std::vector<ModuleLoad> findModuleLoads(const std::vector<MapEntry> &maps,
                                        const std::string &exePath) {
  std::vector<ModuleLoad> libs, exes;
  for (const MapEntry *m : loadStarts(maps)) {
    std::string path = stripDeleted(m->path);
    if (isLibpythonName(path))
      libs.push_back({*m, true});
    else if (path == exePath)
      exes.push_back({*m, false});
  }
  libs.insert(libs.end(), exes.begin(), exes.end());
  return libs;
}

std::optional<PythonVersion> parseVersionString(llvm::StringRef text) {
  static const std::regex pattern(R"(^([23])\.(\d{1,2})\.(\d{1,3}))");
  std::cmatch m;
  std::string s = text.str();
  if (!std::regex_search(s.c_str(), m, pattern))
    return std::nullopt;
  PythonVersion v;
  v.major = std::stoi(m[1]), v.minor = std::stoi(m[2]), v.micro = std::stoi(m[3]);
  return v;
}

std::optional<PythonVersion> versionFromFileName(const std::string &path) {
  static const std::regex pattern(R"(python(\d)\.(\d+))");
  std::smatch m;
  std::string name = baseName(stripDeleted(path));
  if (!std::regex_search(name, m, pattern))
    return std::nullopt;
  PythonVersion v;
  v.major = std::stoi(m[1]), v.minor = std::stoi(m[2]);
  return v;
}

// Searches `len` bytes at `addr` for Py_GetVersion()'s output,
// "X.Y.Z[suffix] (build info...", in chunks so one unreadable page only
// loses that chunk.
std::optional<PythonVersion> scanForVersionString(MemorySource &mem,
                                                  uint64_t addr, uint64_t len) {
  constexpr uint64_t kChunk = 64 * 1024, kOverlap = 64, kMaxScan = 16 << 20;
  static const std::regex pattern(R"(([23])\.(\d{1,2})\.(\d{1,3})[a-z0-9+]* \()");
  std::vector<char> buf(kChunk + kOverlap);
  len = std::min(len, kMaxScan);
  for (uint64_t off = 0; off < len; off += kChunk) {
    uint64_t want = std::min(kChunk + kOverlap, len - off);
    if (!mem.read(addr + off, buf.data(), want))
      continue;
    std::string text(buf.data(), want);
    for (char &c : text)
      if (c == '\0')
        c = '\n';
    std::smatch m;
    if (std::regex_search(text, m, pattern)) {
      PythonVersion v;
      v.major = std::stoi(m[1]), v.minor = std::stoi(m[2]), v.micro = std::stoi(m[3]);
      return v;
    }
  }
  return std::nullopt;
}

// Version of a pre-3.11 runtime (no Py_Version): the formatted buffer, a scan
// of .bss, or the file name.
llvm::Expected<PythonVersion> versionWithoutPyVersion(MemorySource &mem,
                                                      const ElfImage &image,
                                                      uint64_t bias,
                                                      const std::string &path,
                                                      std::vector<std::string> &warnings) {
  for (const char *sym : {"version.0", "version"})
    if (auto addr = image.symbol(sym)) {
      auto text = mem.readCString(*addr + bias, 250);
      if (!text) {
        llvm::consumeError(text.takeError());
        continue;
      }
      if (auto v = parseVersionString(*text))
        return *v;
    }
  if (auto bss = image.section(".bss"))
    if (auto v = scanForVersionString(mem, bss->address + bias, bss->size))
      return *v;
  if (auto v = versionFromFileName(path)) {
    warnings.push_back("Python patch level unknown; version taken from file name");
    return *v;
  }
  return locateError("cannot determine the Python version of " + path);
}

// The layouts for the runtime at `runtimeAddr`: from the debug offsets when
// the cookie is there (3.13+), else the built-in tables for the version.
llvm::Expected<VersionLayouts> layoutsForRuntime(MemorySource &mem, const ElfImage &image,
                                                 uint64_t bias, uint64_t runtimeAddr,
                                                 const std::string &path,
                                                 std::vector<std::string> &warnings) {
  char cookie[8];
  if (mem.read(runtimeAddr, cookie, 8) &&
      std::memcmp(cookie, kDebugOffsetsCookie, 8) == 0) {
    auto table = readDebugOffsets(mem, runtimeAddr);
    if (!table)
      return table.takeError();
    if (table->orderGuessed)
      warnings.push_back("CPython " + table->version.toString() +
                         " is newer than any version stackpeek knows; reading it as " +
                         std::to_string(table->version.major) + "." +
                         std::to_string(newestDebugOffsetsMinor()) +
                         " (unverified: frames that fail say why)");
    return layoutsFromDebugOffsets(*table);
  }
  PythonVersion version;
  if (auto pyVersion = image.symbol("Py_Version")) {
    auto hex = mem.readValue<uint64_t>(*pyVersion + bias);
    if (!hex)
      return hex.takeError();
    version = PythonVersion::fromHex(*hex);
  } else {
    auto v = versionWithoutPyVersion(mem, image, bias, path, warnings);
    if (!v)
      return v.takeError();
    version = *v;
  }
  if (version.atLeast(3, 13))
    return locateError("CPython " + version.toString() +
                       " runtime lacks the _Py_DebugOffsets cookie");
  std::optional<VersionLayouts> layouts = builtinLayouts(version);
  if (!layouts)
    return locateError("unsupported CPython version " + version.toString());
  return std::move(*layouts);
}

// interp_head must point at an interpreter whose first thread state points
// back at it: this rejects an uninitialised second copy of the runtime.
llvm::Error validateRuntime(MemorySource &mem, const Interpreter &in) {
  auto interp = mem.readValue<uint64_t>(in.interpHeadAddr);
  if (!interp)
    return interp.takeError();
  if (*interp == 0)
    return locateError("no interpreter (runtime not initialised)");
  const Layout &l = in.layout;
  auto is = RemoteStruct::read(mem, *interp, l.interpSize);
  if (!is)
    return is.takeError();
  uint64_t tstate = is->pointer(l.interpThreadsHead);
  if (tstate == 0)
    return llvm::Error::success(); // no thread yet: nothing to contradict
  auto back = mem.readValue<uint64_t>(tstate + l.tstateInterp);
  if (!back)
    return back.takeError();
  if (*back != *interp)
    return locateError("thread state does not point back at its interpreter");
  return llvm::Error::success();
}

// 2.7/3.6: the GIL's lock and the collector's flag are static variables
// (local symbols: .symtab only). Missing ones leave those details unknown.
void locateStatics(const ElfImage &image, Interpreter &in) {
  auto at = [&](const char *name) {
    std::optional<uint64_t> sym = image.symbol(name);
    return sym ? *sym + in.loadBias : 0;
  };
  in.gilLockPointerAddr = at("interpreter_lock");
  in.gilCondAddr = at("gil_cond");
  in.gilMutexAddr = at("gil_mutex");
  in.gcCollectingAddr = at("collecting");
}

llvm::Expected<Interpreter> interpreterAt(MemorySource &mem,
                                          const ElfImage &image,
                                          const ModuleLoad &load) {
  Interpreter in;
  in.modulePath = load.path();
  std::optional<uint64_t> bias = image.loadBias(load.start);
  if (!bias)
    return locateError("no PT_LOAD segment of " + load.path() + " maps its first page");
  in.loadBias = *bias;
  std::optional<uint64_t> runtime = image.symbol("_PyRuntime");
  if (!runtime)
    if (auto sec = image.section(".PyRuntime"))
      runtime = sec->address;
  if (runtime) {
    in.runtimeAddr = *runtime + in.loadBias;
    auto layouts = layoutsForRuntime(mem, image, in.loadBias, in.runtimeAddr,
                                     load.path(), in.warnings);
    if (!layouts)
      return layouts.takeError();
    in.layout = layouts->layout, in.depth = layouts->depth;
    if (!in.layout.runtimeInterpretersHead)
      return locateError("CPython " + in.layout.version.toString() +
                         " has no _PyRuntime layout");
    in.interpHeadAddr = in.runtimeAddr + *in.layout.runtimeInterpretersHead;
  } else if (auto head = image.symbol("interp_head")) {
    auto version =
        versionWithoutPyVersion(mem, image, in.loadBias, load.path(), in.warnings);
    if (!version)
      return version.takeError();
    std::optional<VersionLayouts> layouts = builtinLayouts(*version);
    if (!layouts || layouts->layout.runtimeInterpretersHead)
      return locateError("unsupported CPython version " + version->toString());
    in.layout = layouts->layout, in.depth = layouts->depth;
    in.interpHeadAddr = *head + in.loadBias;
    if (auto current = image.symbol("_PyThreadState_Current"))
      in.currentTstateAddr = *current + in.loadBias;
    locateStatics(image, in);
  } else {
    return locateError("no _PyRuntime or interp_head symbol in " + load.path());
  }
  if (llvm::Error err = validateRuntime(mem, in))
    return std::move(err);
  if (auto asyncio = image.section(".AsyncioDebug"))
    in.asyncioDebugAddr = asyncio->address + in.loadBias;
  return in;
}

bool looksLikePython(const ElfImage &image) {
  return image.symbol("_PyRuntime") || image.section(".PyRuntime") ||
         image.symbol("interp_head") || image.symbol("_PyThreadState_Current");
}

} // namespace

llvm::Expected<std::optional<Interpreter>> locate(pid_t pid, MemorySource &mem) {
  auto maps = readMaps(pid);
  if (!maps)
    return maps.takeError();
  std::string exePath = stripDeleted(executablePath(pid));
  std::vector<ModuleLoad> loads = findModuleLoads(*maps, exePath);

  std::vector<std::string> failures;
  bool sawPython = false;
  std::map<std::pair<std::string, uint64_t>, std::optional<ElfImage>> images;
  for (const ModuleLoad &load : loads) {
    auto key = std::make_pair(load.path(), load.start.inode);
    if (!images.count(key)) {
      // The executable is opened through /proc/PID/exe so a deleted or
      // namespaced binary still works.
      std::string file = load.isLibpython
                             ? pathInTarget(pid, stripDeleted(load.path()))
                             : "/proc/" + std::to_string(pid) + "/exe";
      auto image = ElfImage::open(file);
      if (!image) {
        std::string why = llvm::toString(image.takeError());
        if (stripDeleted(load.path()) != load.path())
          why += " (the file was deleted or replaced after the process loaded it, and "
                 "stackpeek reads the interpreter's symbols from it)";
        failures.push_back(why);
        images[key] = std::nullopt;
        // A libpython we cannot open is still Python: say why its stacks
        // are missing rather than dump it as a native program.
        sawPython = sawPython || load.isLibpython;
      } else {
        images[key] = std::move(*image);
      }
    }
    const std::optional<ElfImage> &image = images[key];
    if (!image || !looksLikePython(*image))
      continue;
    sawPython = true;
    auto in = interpreterAt(mem, *image, load);
    if (in)
      return std::optional<Interpreter>(std::move(*in));
    failures.push_back(load.path() + ": " + llvm::toString(in.takeError()));
  }
  if (!sawPython)
    return std::optional<Interpreter>();
  std::string msg = "cannot decode the Python runtime";
  for (const std::string &f : failures)
    msg += "; " + f;
  return locateError(msg);
}

void locateAsyncioDebug(pid_t pid, const std::vector<MapEntry> &maps, Interpreter &in) {
  if (in.asyncioDebugAddr || !in.version().atLeast(3, 14))
    return;
  for (const MapEntry &m : maps) {
    llvm::StringRef base = llvm::sys::path::filename(m.path);
    if (m.offset != 0 || !base.startswith("_asyncio.") || !base.endswith(".so"))
      continue;
    auto image = ElfImage::open(pathInTarget(pid, stripDeleted(m.path)));
    if (!image) {
      llvm::consumeError(image.takeError());
      continue;
    }
    auto section = image->section(".AsyncioDebug");
    std::optional<uint64_t> bias = image->loadBias(m);
    if (section && bias) {
      in.asyncioDebugAddr = section->address + *bias;
      return;
    }
  }
}

} // namespace stackpeek::python
