// Text output: what a person reads in a terminal or a CI log.
//
// Native-only threads read like a debugger backtrace, innermost frame first
// (#0 is where the thread is now). Threads running Python read like Python's
// own traceback, oldest call first ("most recent call last"), so a Python
// developer sees the format they already know: source lines, carets under
// the running expression on 3.11+, and runs of identical frames collapsed
// the way traceback.py collapses them. With --native the merged stack keeps
// that order and marks each frame (C) or (Python).
//
// Everything chosen by the target passes through escapeForTerminal.
#include "text/Escape.h"
#include "render/Renderer.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <map>
#include <set>

namespace stackpeek {

namespace {

std::string esc(const std::string &s) { return escapeForTerminal(s); }

bool hasPythonFrames(const Thread &t) {
  for (const Frame &f : t.frames)
    if (f.kind == Frame::Kind::Python)
      return true;
  return false;
}

std::string moduleSuffix(const Frame &f) {
  if (!f.module)
    return "";
  std::string s = " (" + esc(llvm::sys::path::filename(*f.module).str());
  if (f.moduleOffset)
    s += llvm::formatv("+{0:x}", *f.moduleOffset).str();
  return s + ")";
}

std::string location(const Frame &f) {
  if (!f.file)
    return "";
  std::string s = " at " + esc(*f.file);
  if (f.line)
    s += ":" + std::to_string(*f.line);
  if (f.line && f.column)
    s += ":" + std::to_string(*f.column);
  return s;
}

void threadHeader(const Thread &t, llvm::raw_ostream &out) {
  const std::string &name = t.pythonThreadName ? *t.pythonThreadName : t.name;
  out << "Thread " << t.tid << " \"" << esc(name) << "\" (";
  if (t.idle)
    out << (*t.idle ? "idle" : "active");
  else
    out << t.state;
  if (t.gil == GilState::Held)
    out << ", holds the GIL";
  else if (t.gil == GilState::Waiting)
    out << ", waiting for the GIL";
  if (t.collectingGarbage.value_or(false))
    out << ", collecting garbage";
  if (t.wchan && !(t.idle && !*t.idle))
    out << ", in " << esc(*t.wchan);
  out << ")\n";
}

void nativeFrameLine(const Frame &f, size_t index, llvm::raw_ostream &out) {
  out << llvm::formatv("  #{0,-2} 0x{1:x-16} ", index, f.address);
  out << (f.function ? esc(*f.function) : std::string("??"));
  out << location(f) << moduleSuffix(f);
  if (f.inlined)
    out << " [inlined]";
  if (f.error)
    out << " [" << esc(*f.error) << "]";
  out << "\n";
}

// Converts a UTF-8 byte offset within `line` to a character offset, because
// CPython records columns in bytes but carets are drawn per character.
size_t charOffset(const std::string &line, size_t byteOffset) {
  size_t chars = 0;
  for (size_t i = 0; i < line.size() && i < byteOffset; ++i)
    if ((static_cast<unsigned char>(line[i]) & 0xc0) != 0x80)
      ++chars;
  return chars;
}

// The source line and, on 3.11+, carets under the running expression. As in
// traceback.py, carets are omitted when they would underline the whole line.
void pythonSourceLines(const Frame &f, llvm::raw_ostream &out) {
  if (!f.sourceLine)
    return;
  std::string raw = *f.sourceLine;
  while (!raw.empty() && (raw.back() == '\n' || raw.back() == '\r'))
    raw.pop_back();
  size_t indent = raw.find_first_not_of(" \t\f");
  if (indent == std::string::npos)
    return;
  std::string stripped = raw.substr(indent);
  size_t end = stripped.find_last_not_of(" \t\f");
  stripped = stripped.substr(0, end + 1);
  out << "    " << esc(stripped) << "\n";
  if (!f.column || !f.endColumn || !f.endLine || !f.line || *f.endLine != *f.line)
    return;
  if (*f.column < indent || *f.endColumn <= *f.column)
    return;
  size_t start = charOffset(raw, *f.column) - charOffset(raw, indent);
  size_t stop = charOffset(raw, *f.endColumn) - charOffset(raw, indent);
  size_t width = charOffset(stripped, stripped.size());
  if (start == 0 && stop >= width)
    return;
  out << "    " << std::string(start, ' ') << std::string(stop - start, '^') << "\n";
}

void pythonFrameLines(const Frame &f, bool marked, llvm::raw_ostream &out) {
  out << "  " << (marked ? "(Python) " : "") << "File \""
      << esc(f.file.value_or("<unknown>")) << "\", line "
      << (f.line ? std::to_string(*f.line) : std::string("?")) << ", in "
      << esc(f.function.value_or("<unknown>"));
  if (f.error)
    out << " [" << esc(*f.error) << "]";
  out << "\n";
  pythonSourceLines(f, out);
  for (const LocalVariable &v : f.locals)
    out << "    " << esc(v.name) << " = " << esc(v.repr) << "\n";
}

void mergedNativeLine(const Frame &f, llvm::raw_ostream &out) {
  out << "  (C) " << (f.function ? esc(*f.function) : std::string("??"))
      << location(f) << moduleSuffix(f);
  if (f.inlined)
    out << " [inlined]";
  out << "\n";
}

bool samePythonLine(const Frame &a, const Frame &b) {
  return a.kind == Frame::Kind::Python && b.kind == Frame::Kind::Python &&
         a.file == b.file && a.line == b.line && a.function == b.function;
}

// Oldest call first, with traceback.py's rule for repeats: after three
// identical consecutive entries, the rest become one summary line.
void tracebackStyle(const Thread &t, bool native, llvm::raw_ostream &out) {
  out << "Traceback (most recent call last):\n";
  if (t.framesOmitted)
    out << "  [" << t.framesOmitted << " older frames not shown]\n";
  const std::vector<Frame> &frames = t.frames;
  size_t repeats = 0;
  for (size_t i = frames.size(); i-- > 0;) {
    const Frame &f = frames[i];
    bool sameAsPrevious = i + 1 < frames.size() && samePythonLine(f, frames[i + 1]);
    repeats = sameAsPrevious ? repeats + 1 : 0;
    bool lastOfRun = i == 0 || !samePythonLine(f, frames[i - 1]);
    if (repeats >= 3) {
      if (lastOfRun)
        out << "  [Previous line repeated " << repeats - 2 << " more time"
            << (repeats - 2 > 1 ? "s" : "") << "]\n";
      continue;
    }
    if (f.kind == Frame::Kind::Python)
      pythonFrameLines(f, native, out);
    else if (native)
      mergedNativeLine(f, out);
  }
}

// The handled exception and its chain, oldest first with traceback.py's
// separators, as `traceback.print_exc()` would print it in the except block.
void exceptionChain(const std::vector<PythonException> &chain,
                    llvm::raw_ostream &out) {
  out << "  While handling an exception:\n";
  for (size_t i = chain.size(); i-- > 0;) {
    const PythonException &e = chain[i];
    if (!e.traceback.empty()) {
      out << "  Traceback (most recent call last):\n";
      for (const Frame &f : e.traceback) {
        std::string block;
        llvm::raw_string_ostream lines(block);
        pythonFrameLines(f, false, lines);
        lines.flush();
        for (llvm::StringRef rest = block; !rest.empty();) {
          auto [line, tail] = rest.split('\n');
          out << "  " << line << "\n";
          rest = tail;
        }
      }
    }
    out << "  " << esc(e.type);
    if (!e.message.empty())
      out << ": " << esc(e.message);
    out << "\n";
    if (e.error)
      out << "  [" << esc(*e.error) << "]\n";
    if (i > 0)
      out << (chain[i].chainedAs == "cause"
                  ? "\n  The above exception was the direct cause of the "
                    "following exception:\n\n"
                  : "\n  During handling of the above exception, another "
                    "exception occurred:\n\n");
  }
}

std::string taskLabel(const AsyncioTask &t) {
  return "(T) " + esc(t.name) + " [" + t.state + "]";
}

// One task and, below it, its coroutine stack and the tasks it awaits
// (those whose awaited_by names it), like `python -m asyncio pstree`.
// The task graph comes from the target, so it is treated as hostile: a task
// awaited by several others is expanded under the first only (later places
// name it), an await cycle is named where it closes, and nesting stops at
// kMaxTaskDepth (deeper tasks start trees of their own), so output stays
// linear in the number of tasks and the recursion bounded.
constexpr size_t kMaxTaskDepth = 64;

struct TaskTreePrinter {
  const std::map<std::string, std::vector<const AsyncioTask *>> &awaits;
  llvm::raw_ostream &out;
  std::set<std::string> onPath, printed;

  void print(const AsyncioTask &t, const std::string &indent, bool last, size_t depth) {
    printed.insert(t.id);
    out << indent << (last ? "└── " : "├── ") << taskLabel(t) << "\n";
    std::string inner = indent + (last ? "    " : "│   ");
    auto children = awaits.find(t.id);
    size_t nChildren = children == awaits.end() ? 0 : children->second.size();
    for (size_t i = 0; i < t.stack.size(); ++i) {
      const Frame &f = t.stack[i];
      bool lastLine = i + 1 == t.stack.size() && nChildren == 0 && !t.awaiting;
      out << inner << (lastLine ? "└── " : "├── ") << " "
          << esc(f.function.value_or("<unknown>")) << " "
          << esc(f.file.value_or("<unknown>")) << ":"
          << (f.line ? std::to_string(*f.line) : std::string("?")) << "\n";
      // --locals: below the frame's line, indented as under a thread frame.
      for (const LocalVariable &v : f.locals)
        out << inner << (lastLine ? "    " : "│   ") << "    " << esc(v.name)
            << " = " << esc(v.repr) << "\n";
    }
    if (t.awaiting)
      out << inner << (nChildren == 0 ? "└── " : "├── ") << "awaiting "
          << esc(*t.awaiting) << "\n";
    if (nChildren == 0)
      return;
    if (depth >= kMaxTaskDepth) {
      out << inner << "└── (" << nChildren << " awaited task"
          << (nChildren == 1 ? "" : "s") << " deeper than " << kMaxTaskDepth
          << " levels: their own trees follow)\n";
      return;
    }
    onPath.insert(t.id);
    for (size_t i = 0; i < nChildren; ++i) {
      const AsyncioTask *c = children->second[i];
      const char *branch = i + 1 == nChildren ? "└── " : "├── ";
      if (onPath.count(c->id))
        out << inner << branch << "(cycle: " << taskLabel(*c) << " " << c->id << ")\n";
      else if (printed.count(c->id))
        out << inner << branch << "(" << taskLabel(*c) << " " << c->id << ", shown above)\n";
      else
        print(*c, inner, i + 1 == nChildren, depth + 1);
    }
    onPath.erase(t.id);
  }
};

void asyncioSection(const AsyncioSnapshot &a, llvm::raw_ostream &out) {
  for (const AsyncioLoop &loop : a.loops) {
    out << "\nasyncio event loop " << loop.id;
    if (loop.thread)
      out << " (thread " << *loop.thread << ")";
    out << ", " << loop.tasks.size() << " task"
        << (loop.tasks.size() == 1 ? "" : "s") << ":\n";
    std::map<std::string, std::vector<const AsyncioTask *>> awaits;
    std::set<std::string> inLoop;
    for (const AsyncioTask &t : loop.tasks)
      inLoop.insert(t.id);
    std::vector<const AsyncioTask *> roots;
    for (const AsyncioTask &t : loop.tasks) {
      bool awaited = false;
      for (const std::string &by : t.awaitedBy)
        if (inLoop.count(by) && by != t.id) {
          awaits[by].push_back(&t);
          awaited = true;
        }
      if (!awaited)
        roots.push_back(&t);
    }
    TaskTreePrinter tree{awaits, out, {}, {}};
    for (size_t i = 0; i < roots.size(); ++i)
      tree.print(*roots[i], "", i + 1 == roots.size(), 0);
    // Tasks only reachable through an await cycle have no root: start there.
    for (const AsyncioTask &t : loop.tasks)
      if (!tree.printed.count(t.id))
        tree.print(t, "", true, 0);
  }
  for (const std::string &e : a.errors)
    out << "Note: asyncio: " << esc(e) << "\n";
}

// "cpython", or "cpython, free-threaded, GIL disabled" and the like.
std::string pythonBuild(const PythonInfo &py) {
  std::string s = py.implementation;
  if (py.freeThreaded) {
    s += ", free-threaded";
    if (py.gilEnabled)
      s += *py.gilEnabled ? ", GIL enabled at run time" : ", GIL disabled";
  }
  return s;
}

class TextRenderer : public Renderer {
public:
  explicit TextRenderer(const RenderOptions &options) : options_(options) {}

  void render(const Process &p, llvm::raw_ostream &out) override {
    if (!first_)
      out << "\n";
    first_ = false;
    out << "Process " << p.pid << ": " << esc(p.command) << "\n";
    if (p.python)
      out << "Python " << p.python->version << " (" << pythonBuild(*p.python) << ")\n";
    for (const std::string &e : p.errors)
      out << "Note: " << esc(e) << "\n";
    for (const Thread &t : p.threads) {
      out << "\n";
      threadHeader(t, out);
      if (hasPythonFrames(t)) {
        tracebackStyle(t, options_.native, out);
      } else {
        for (size_t i = 0; i < t.frames.size(); ++i)
          nativeFrameLine(t.frames[i], i, out);
        if (t.framesOmitted)
          out << "  [" << t.framesOmitted << " outer frames not shown]\n";
      }
      if (!t.handlingException.empty())
        exceptionChain(t.handlingException, out);
      for (const std::string &e : t.errors)
        out << "  [" << esc(e) << "]\n";
    }
    if (p.asyncio)
      asyncioSection(*p.asyncio, out);
  }

private:
  RenderOptions options_;
  bool first_ = true;
};

} // namespace

std::unique_ptr<Renderer> makeTextRenderer(const RenderOptions &options) {
  return std::make_unique<TextRenderer>(options);
}

} // namespace stackpeek
