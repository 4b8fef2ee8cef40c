// FuzzTargets: the body of every stackpeek fuzz target, as plain functions.
//
// Why a header: each fuzz_*.cpp is a libFuzzer binary whose
// LLVMFuzzerTestOneInput just calls one of these, and the unit-test binary
// (tests/unit/fuzz_regressions_test.cpp) calls the very same functions on
// every seed and every input that ever crashed (tests/fuzz/corpus/<target>/,
// tests/fuzz/regressions/<target>/), so a crash found once stays fixed in
// every build, sanitized or not, without clang.
//
// Each function feeds untrusted bytes to one stage that reads what a target
// controls, and checks the stage's promises (not only "no crash"):
//   maps      parseMaps on arbitrary /proc/PID/maps text: sorted, well-formed
//             entries; findMapping agrees with a linear scan.
//   elf       the Symbolizer on an arbitrary file (ElfFile, debug-file
//             search, DWARF loading, symbol tables, line lookups).
//   render    text and JSON renderers on a model full of hostile strings:
//             JSON parses (llvm::json::parse); text is valid UTF-8 with no
//             control byte but '\n', no ESC, no C1 control.
//   unwind    the libunwind-based Unwinder over a forged module (ELF header,
//             .eh_frame_hdr, FDEs) and stack in FakeMemory: bounded result.
//   python    the CPython decoder (capture + resolve) for every supported
//             layout over FakeMemory regions built from the input.
//   python_depth  handled exceptions, asyncio tasks and locals (captureDepth
//             + resolveDepth) over a well-formed 3.11 graph patched by the
//             input, or over raw regions for every layout: bounded chains,
//             tracebacks, coroutine stacks; awaiters are known tasks.
// A broken promise calls fuzzFail(), which aborts (libFuzzer saves the input)
// or, in the regression test, throws so gtest reports it.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include "memory/FakeMemory.h"
#include "model/Snapshot.h"
#include "process/Maps.h"
#include "python/layout/DebugOffsets.h"
#include "python/depth/Depth.h"
#include "python/frames/Capture.h"
#include "python/frames/Interpreter.h"
#include "python/frames/Resolve.h"
#include "python/layout/VersionLayouts.h"
#include "render/Renderer.h"
#include "symbolize/Symbolizer.h"
#include "unwind/Unwinder.h"

#include "../unit/PythonObjects311.h"

namespace stackpeek::fuzz {

// Set by the regression test: failures throw instead of aborting.
inline bool &throwOnFailure() {
  static bool value = false;
  return value;
}

[[noreturn]] inline void fuzzFail(const std::string &what) {
  if (throwOnFailure())
    throw std::runtime_error(what);
  fprintf(stderr, "fuzz check failed: %s\n", what.c_str());
  abort();
}

// A tiny deterministic reader of the fuzz input (FuzzedDataProvider is
// clang-only; this keeps the header usable from a GCC-built unit test).
class Input {
public:
  Input(const uint8_t *data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return size_ - pos_; }
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  template <class T> T integral() {
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      v = static_cast<T>((static_cast<uint64_t>(v) << 8) | byte());
    return v;
  }
  bool flag() { return byte() & 1; }
  // Up to maxLen bytes; the length comes from the input.
  std::string string(size_t maxLen = 64) {
    size_t len = std::min<size_t>(byte() % (maxLen + 1), remaining());
    std::string s(reinterpret_cast<const char *>(data_ + pos_), len);
    pos_ += len;
    return s;
  }
  std::vector<uint8_t> bytes(size_t len) {
    len = std::min(len, remaining());
    std::vector<uint8_t> out(data_ + pos_, data_ + pos_ + len);
    pos_ += len;
    return out;
  }
  std::vector<uint8_t> rest() { return bytes(remaining()); }

private:
  const uint8_t *data_;
  size_t size_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------- maps

inline void fuzzMaps(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  std::vector<MapEntry> maps = parseMaps(text);
  for (size_t i = 0; i < maps.size(); ++i) {
    const MapEntry &m = maps[i];
    if (m.end < m.start || m.perms.size() != 4)
      fuzzFail("malformed map entry accepted");
    if (i && maps[i - 1].start > m.start)
      fuzzFail("maps not sorted");
  }
  // findMapping agrees with a linear scan (for non-overlapping maps).
  bool overlapping = false;
  for (size_t i = 1; i < maps.size(); ++i)
    overlapping |= maps[i].start < maps[i - 1].end;
  if (overlapping)
    return;
  Input in(data, size);
  for (int k = 0; k < 8 && !maps.empty(); ++k) {
    const MapEntry &pick = maps[in.byte() % maps.size()];
    uint64_t probes[] = {pick.start, pick.end, pick.end - 1, pick.start - 1, in.integral<uint64_t>()};
    for (uint64_t addr : probes) {
      const MapEntry *want = nullptr;
      for (const MapEntry &m : maps)
        if (m.contains(addr))
          want = &m;
      if (findMapping(maps, addr) != want)
        fuzzFail("findMapping disagrees with a linear scan");
    }
  }
}

// ---------------------------------------------------------------- elf

// The input becomes a file the Symbolizer opens as a mapped module. The
// first 16 bytes choose the probed addresses; the rest is the file.
inline void fuzzElf(const uint8_t *data, size_t size) {
  static std::string path = [] {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/stackpeek-fuzz-elf-" + std::to_string(getpid()) + ".so";
  }();
  Input in(data, size);
  uint64_t probeA = in.integral<uint32_t>(), probeB = in.integral<uint32_t>();
  uint64_t offset = (in.integral<uint32_t>() & 0xffff) << 12;
  in.integral<uint32_t>();
  std::vector<uint8_t> file = in.rest();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    fuzzFail("cannot write " + path);
  if (!file.empty() && ::write(fd, file.data(), file.size()) != static_cast<ssize_t>(file.size()))
    fuzzFail("short write to " + path);
  ::close(fd);

  std::vector<MapEntry> maps(1);
  maps[0].start = 0x400000;
  maps[0].end = 0x400000 + 0x100000;
  maps[0].offset = offset;
  maps[0].perms = "r-xp";
  maps[0].inode = 1;
  maps[0].path = path;
  Symbolizer symbolizer(SymbolizerOptions{});
  for (uint64_t probe : {probeA, probeB, uint64_t(0), uint64_t(1)}) {
    uint64_t addr = maps[0].start + probe % (maps[0].end - maps[0].start);
    for (bool exact : {false, true}) {
      std::vector<Frame> frames = symbolizer.symbolize(maps, addr, exact);
      if (frames.empty() || frames.size() > 4096)
        fuzzFail("symbolize returned " + std::to_string(frames.size()) + " frames");
      for (const Frame &f : frames)
        if (f.address != addr)
          fuzzFail("symbolized frame has the wrong address");
    }
  }
}

// ---------------------------------------------------------------- render

inline std::optional<std::string> maybeString(Input &in, size_t maxLen = 48) {
  if (!in.flag())
    return std::nullopt;
  return in.string(maxLen);
}

inline Process hostileProcess(Input &in) {
  static const char *const kStates[] = {"running", "sleeping", "disk-wait", "stopped",
                                        "tracing-stop", "zombie", "idle", "unknown"};
  Process p;
  p.pid = in.integral<uint16_t>();
  if (in.flag())
    p.parentPid = in.integral<uint16_t>();
  p.command = in.string(96);
  p.executable = in.string(48);
  if (in.flag())
    p.pauseMicros = in.integral<uint16_t>() / 7.0;
  if (in.flag()) {
    PythonInfo py;
    py.version = std::to_string(in.byte() % 4) + "." + std::to_string(in.byte() % 20) + "." +
                 std::to_string(in.byte());
    p.python = py;
  }
  for (int e = in.byte() % 3; e > 0; --e)
    p.errors.push_back(in.string());
  for (int t = in.byte() % 4; t > 0 && !in.empty(); --t) {
    Thread th;
    th.tid = in.integral<uint16_t>();
    th.name = in.string(16);
    th.state = kStates[in.byte() % 8];
    th.wchan = maybeString(in, 24);
    if (in.flag()) th.pythonThreadName = in.string(24);
    if (in.flag()) th.gil = static_cast<GilState>(in.byte() % 4);
    if (in.flag()) th.collectingGarbage = in.flag();
    if (in.flag()) th.idle = in.flag();
    th.framesOmitted = in.byte() % 3;
    for (int e = in.byte() % 3; e > 0; --e)
      th.errors.push_back(in.string());
    for (int f = in.byte() % 8; f > 0 && !in.empty(); --f) {
      Frame fr;
      fr.kind = in.flag() ? Frame::Kind::Python : Frame::Kind::Native;
      fr.address = in.integral<uint64_t>();
      fr.function = maybeString(in);
      fr.module = maybeString(in);
      if (in.flag()) fr.moduleOffset = in.integral<uint32_t>();
      fr.file = maybeString(in);
      if (in.flag()) fr.line = in.integral<uint32_t>();
      if (in.flag()) fr.column = in.integral<uint16_t>();
      if (in.flag()) fr.endLine = fr.line.value_or(0) + in.byte() % 2;
      if (in.flag()) fr.endColumn = in.integral<uint16_t>();
      fr.inlined = in.flag();
      fr.pythonEntry = in.flag();
      fr.sourceLine = maybeString(in, 80);
      for (int l = in.byte() % 3; l > 0; --l)
        fr.locals.push_back({in.string(16), in.string(32)});
      fr.error = maybeString(in);
      // Runs of identical Python frames exercise the repeat folding.
      int copies = in.byte() % 5 == 0 ? 1 + in.byte() % 6 : 1;
      for (int c = 0; c < copies; ++c)
        th.frames.push_back(fr);
    }
    p.threads.push_back(std::move(th));
  }
  return p;
}

// Text output promise: valid UTF-8, no control byte but '\n', no DEL, no C1.
inline void checkTerminalSafe(const std::string &text) {
  if (!llvm::json::isUTF8(text))
    fuzzFail("text output is not valid UTF-8");
  for (size_t i = 0; i < text.size(); ++i) {
    auto b = static_cast<unsigned char>(text[i]);
    if ((b < 0x20 && b != '\n') || b == 0x7f)
      fuzzFail("text output contains control byte " + std::to_string(b) + " at " +
               std::to_string(i));
    if (b == 0xc2 && i + 1 < text.size() &&
        static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) < 0xa0)
      fuzzFail("text output contains a C1 control character");
  }
}

inline void fuzzRender(const uint8_t *data, size_t size) {
  Input in(data, size);
  std::vector<Process> processes;
  for (int n = 1 + in.byte() % 2; n > 0; --n)
    processes.push_back(hostileProcess(in));
  for (bool native : {false, true}) {
    RenderOptions options;
    options.native = native;
    std::string text, json;
    {
      llvm::raw_string_ostream out(text);
      auto r = makeTextRenderer(options);
      r->begin(out);
      for (const Process &p : processes)
        r->render(p, out);
      r->end(out);
    }
    checkTerminalSafe(text);
    {
      llvm::raw_string_ostream out(json);
      auto r = makeJsonRenderer(options);
      r->begin(out);
      for (const Process &p : processes)
        r->render(p, out);
      r->end(out);
    }
    auto parsed = llvm::json::parse(json);
    if (!parsed) {
      std::string why = llvm::toString(parsed.takeError());
      fuzzFail("JSON output does not parse: " + why);
    }
  }
}

// ---------------------------------------------------------------- unwind

// Layout: 8 bytes rip offset, 8 bytes rsp offset, 8 bytes rbp, then the
// module image (first 8 KiB of the rest) and the stack (the remainder).
inline void fuzzUnwind(const uint8_t *data, size_t size) {
  constexpr uint64_t kModule = 0x400000, kStack = 0x7ff000000000;
  Input in(data, size);
  uint64_t ripOff = in.integral<uint16_t>(), rspOff = in.integral<uint16_t>();
  uint64_t rbp = in.integral<uint64_t>();
  std::vector<uint8_t> image = in.bytes(8192);
  std::vector<uint8_t> stack = in.rest();
  image.resize(8192);
  stack.resize(std::max<size_t>(stack.size(), 64));
  FakeMemory mem;
  mem.addRegion(kModule, image);
  mem.addRegion(kStack, stack);
  std::vector<MapEntry> maps(2);
  maps[0] = {kModule, kModule + image.size(), 0, "r-xp", 1, "/fuzz/module.so"};
  maps[1] = {kStack, kStack + stack.size(), 0, "rw-p", 0, "[stack]"};
  user_regs_struct regs{};
  regs.rip = kModule + ripOff % image.size();
  regs.rsp = kStack + rspOff % stack.size();
  regs.rbp = (rbp & 1) ? kStack + (rbp >> 1) % stack.size() : rbp;
  regs.cs = 0x33;
  Unwinder unwinder(maps, mem);
  UnwindResult result = unwinder.unwind(regs, 256);
  if (result.frames.empty() || result.frames.size() > 256)
    fuzzFail("unwind returned " + std::to_string(result.frames.size()) + " frames");
}

// ---------------------------------------------------------------- python

// Byte 0: layout (2.7, 3.6-3.13); then up to 6 regions, each a 16-bit
// length and its bytes, placed at 0x100000 * (index + 1) (so the input can
// hold pointers to its own regions). Region 0 holds _PyRuntime.
inline void fuzzPython(const uint8_t *data, size_t size) {
  static const int kMinors[][2] = {{2, 7},  {3, 6},  {3, 7},  {3, 8},  {3, 9},  {3, 10},
                                   {3, 11}, {3, 12}, {3, 13}, {3, 14}, {3, 15}};
  Input in(data, size);
  uint8_t selector = in.byte();
  const int *version = kMinors[selector % std::size(kMinors)];
  // 3.13+ with the top bit set: the layout comes from a debug-offsets
  // table at the start of the runtime, every value of it fuzzed.
  bool fromTable = version[1] >= 13 && (selector & 0x80);
  auto layout = python::builtinLayout(version[0], version[1]);
  if (!layout)
    return;
  FakeMemory mem;
  for (uint64_t i = 0; i < 6 && !in.empty(); ++i) {
    size_t len = in.integral<uint16_t>();
    std::vector<uint8_t> bytes = in.bytes(len);
    bytes.resize(std::max<size_t>(bytes.size(), fromTable && i == 0 ? 24 : 8));
    if (fromTable && i == 0) {
      uint64_t hex = (uint64_t(version[0]) << 24) | (uint64_t(version[1]) << 16) | 0xf0;
      std::memcpy(bytes.data(), python::kDebugOffsetsCookie, 8);
      std::memcpy(bytes.data() + 8, &hex, 8);
    }
    mem.addRegion(0x100000 * (i + 1), std::move(bytes));
  }
  python::Interpreter interp;
  if (fromTable) {
    auto table = python::readDebugOffsets(mem, 0x100000);
    if (!table) {
      llvm::consumeError(table.takeError());
      return;
    }
    auto fromDebugOffsets = python::layoutsFromDebugOffsets(*table);
    if (!fromDebugOffsets) {
      llvm::consumeError(fromDebugOffsets.takeError());
      return;
    }
    layout = fromDebugOffsets->layout;
    interp.depth = fromDebugOffsets->depth;
  }
  interp.layout = *layout;
  interp.modulePath = "/fuzz/libpython.so";
  if (version[0] == 2 || version[1] == 6) {
    interp.interpHeadAddr = 0x100000;
    interp.currentTstateAddr = 0x100008;
  } else {
    interp.runtimeAddr = 0x100000;
    interp.interpHeadAddr = 0x100000 + layout->runtimeInterpretersHead.value_or(0);
  }
  python::CaptureLimits limits;
  limits.maxThreads = 64;
  limits.maxFramesPerThread = 256;
  auto captured = python::capture(interp, mem, limits);
  if (!captured) {
    llvm::consumeError(captured.takeError());
    return;
  }
  size_t readsBefore = mem.readCount();
  std::vector<python::PythonThreadStack> stacks = python::resolve(interp, *captured, mem);
  if (stacks.size() > captured->threads.size())
    fuzzFail("resolve invented threads");
  for (const auto &s : stacks)
    if (s.frames.size() > limits.maxFramesPerThread + 1)
      fuzzFail("resolve exceeded the frame limit");
  // Work is bounded: a few thousand reads per frame at most.
  if (mem.readCount() - readsBefore > 100000 + 20000 * (1 + limits.maxFramesPerThread))
    fuzzFail("resolve read memory without bound");
}

// ---------------------------------------------------------------- python_depth

// The well-formed graph the patches start from: a handled ValueError with a
// cause and a context and a 3-entry traceback; a C task in `async for` over
// an async generator awaiting a coroutine, a pure-Python task awaiting it,
// and two C tasks awaiting each other.
inline python::CapturedPython depthGraph(python::fixtures::DepthObjects311 &g) {
  uint64_t handled = g.exception("ValueError", "outer");
  uint64_t cause = g.exception("KeyError", "k");
  g.chain(handled, cause, 0);
  g.chain(cause, 0, g.exception("ValueError", "first"));
  g.mem.put(handled + *g.d.excTraceback, g.traceback(3));
  g.handle(handled);
  uint64_t code = g.code();
  uint64_t sleeping = g.coroutine(code, g.object("_asyncio.Future", 64));
  uint64_t agen = g.coroutine(code, sleeping, "async_generator");
  uint64_t asend = g.object("async_generator_asend", 48);
  g.mem.put(asend + 16, agen);
  uint64_t consumer = g.coroutine(code, asend);
  uint64_t c = g.cTask("consumer", consumer);
  uint64_t py = g.pyTaskObject("py", g.coroutine(code, 0), c);
  uint64_t a = g.cTask("a", g.coroutine(code, 0));
  uint64_t b = g.cTask("b", g.coroutine(code, 0), a);
  g.mem.put(a + g.d.taskFutWaiter, b);
  python::CapturedPython captured;
  captured.threads.emplace_back();
  python::CapturedThread &t = captured.threads.back();
  t.tstateAddr = g.tstate;
  t.interpAddr = g.interpreter({c, py, a, b});
  python::CapturedFrame f;
  f.frameAddr = consumer + *g.d.genIframe;
  f.codeAddr = code;
  t.frames.push_back(f);
  return captured;
}

// Patches: a byte whose low bit picks raw bytes (up to 15, at a u32 offset)
// or a pointer (to another u32 offset) written at a u32 offset; offsets are
// taken modulo the graph's extent; a patch outside every region is dropped.
inline void patchGraph(Input &in, FakeMemory &mem, uint64_t base, uint64_t extent) {
  uint8_t scratch[16];
  while (!in.empty()) {
    uint8_t op = in.byte();
    uint64_t at = base + in.integral<uint32_t>() % extent;
    std::vector<uint8_t> bytes;
    if (op & 1) {
      uint64_t target = base + in.integral<uint32_t>() % extent;
      bytes.resize(8);
      std::memcpy(bytes.data(), &target, 8);
    } else {
      bytes = in.bytes((op >> 1) & 15);
    }
    if (mem.read(at, scratch, bytes.size()))
      mem.putBytes(at, bytes.data(), bytes.size());
  }
}

inline void checkDepth(const python::CapturedDepth &depth) {
  for (const auto &[tstate, chain] : depth.exceptions) {
    if (chain.size() > python::kMaxExceptionChain)
      fuzzFail("exception chain longer than its limit");
    for (const auto &e : chain)
      if (e.traceback.size() > python::kMaxTracebackEntries)
        fuzzFail("traceback longer than its limit");
  }
  if (!depth.asyncio)
    return;
  const auto &tasks = depth.asyncio->tasks;
  if (tasks.size() > python::kMaxTasks)
    fuzzFail("more tasks than the limit");
  std::set<uint64_t> ids;
  for (const auto &t : tasks)
    if (!ids.insert(t.addr).second)
      fuzzFail("a task listed twice");
  for (const auto &t : tasks) {
    if (t.stack.size() > python::kMaxAwaitChain)
      fuzzFail("coroutine stack longer than its limit");
    std::set<uint64_t> by(t.awaitedBy.begin(), t.awaitedBy.end());
    if (by.size() != t.awaitedBy.size())
      fuzzFail("an awaiter listed twice");
    for (uint64_t parent : by)
      if (!ids.count(parent))
        fuzzFail("awaited by a task that is not listed");
  }
}

// Byte 0: even, the 3.11 graph patched by the rest; odd, byte 1 picks a
// layout (2.7, 3.6-3.13) and up to 6 raw regions follow as in fuzzPython,
// region 0 holding the thread state and the interpreter's `modules` pointer.
inline void fuzzPythonDepth(const uint8_t *data, size_t size) {
  static const int kMinors[][2] = {{2, 7},  {3, 6},  {3, 7},  {3, 8},  {3, 9},  {3, 10},
                                   {3, 11}, {3, 12}, {3, 13}, {3, 14}, {3, 15}};
  Input in(data, size);
  python::fixtures::DepthObjects311 graph;
  FakeMemory raw;
  FakeMemory *mem = &graph.mem;
  python::Interpreter interp;
  python::CapturedPython captured;
  if (!(in.byte() & 1)) {
    interp.layout = graph.l;
    captured = depthGraph(graph);
    patchGraph(in, graph.mem, 0x100000, graph.next - 0x100000);
  } else {
    const int *version = kMinors[in.byte() % std::size(kMinors)];
    interp.layout = *python::builtinLayout(version[0], version[1]);
    for (uint64_t i = 0; i < 6 && !in.empty(); ++i) {
      std::vector<uint8_t> bytes = in.bytes(in.integral<uint16_t>());
      bytes.resize(std::max<size_t>(bytes.size(), 8));
      raw.addRegion(0x100000 * (i + 1), std::move(bytes));
    }
    captured.threads.emplace_back();
    captured.threads.back().tstateAddr = 0x100000;
    captured.threads.back().interpAddr = 0x100000 - interp.layout.interpModules;
    captured.threads.back().frames.push_back({0x200000, 0x300000});
    mem = &raw;
  }
  // Locate computes the depth table with the layout; so does the fuzzer.
  auto layouts = python::builtinLayouts(interp.layout.version);
  if (!layouts)
    fuzzFail("no depth table for a supported version");
  interp.depth = layouts->depth;
  python::DepthOptions options;
  options.locals = options.exceptions = options.asyncio = true;
  python::CapturedDepth depth = python::captureDepth(interp, captured, *mem, options);
  checkDepth(depth);
  python::ResolvedDepth resolved = python::resolveDepth(interp, captured, depth, *mem, {});
  size_t want = depth.asyncio ? depth.asyncio->tasks.size() : 0, got = 0;
  if (resolved.asyncio)
    for (const auto &loop : resolved.asyncio->loops)
      got += loop.tasks.size();
  if (got != want)
    fuzzFail("resolveDepth lost or invented tasks");
}

} // namespace stackpeek::fuzz
