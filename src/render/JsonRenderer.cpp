// JSON output: the stable, documented contract (docs/json-format.md).
//
// Field names never change once published; new facts are added as new
// fields. Absent facts are null, never invented. Addresses are hex strings
// because JSON numbers lose precision above 2^53. Every string passes through
// sanitizeUtf8, so the document is valid JSON whatever the target contains.
#include "render/Escape.h"
#include "render/Renderer.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

namespace stackpeek {

namespace {

using llvm::json::Array;
using llvm::json::Object;
using llvm::json::Value;

Value str(const std::string &s) { return sanitizeUtf8(s); }

template <class T> Value opt(const std::optional<T> &v) {
  if (!v)
    return nullptr;
  if constexpr (std::is_same_v<T, std::string>)
    return str(*v);
  else
    return *v;
}

Value hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return std::string(buf);
}

// "held", "waiting", "released"; null when not known (NotHeld: not holding,
// but whether waiting is unknown).
Value gilJson(const std::optional<GilState> &gil) {
  if (!gil)
    return nullptr;
  switch (*gil) {
  case GilState::Held: return "held";
  case GilState::Waiting: return "waiting";
  case GilState::Released: return "released";
  case GilState::NotHeld: return nullptr;
  }
  return nullptr;
}

Value frameJson(const Frame &f) {
  bool native = f.kind == Frame::Kind::Native;
  Object o{
      {"kind", native ? "native" : "python"},
      {"address", native ? hex(f.address) : Value(nullptr)},
      {"function", opt(f.function)},
      {"module", opt(f.module)},
      {"module_offset", f.moduleOffset ? hex(*f.moduleOffset) : Value(nullptr)},
      {"file", opt(f.file)},
      {"line", opt(f.line)},
      {"column", opt(f.column)},
      {"inlined", f.inlined},
  };
  if (!native) {
    o["end_line"] = opt(f.endLine);
    o["end_column"] = opt(f.endColumn);
  }
  if (!f.locals.empty()) {
    Object locals;
    for (const LocalVariable &v : f.locals)
      locals[sanitizeUtf8(v.name)] =
          Object{{"repr", str(v.repr)}, {"type", opt(v.type)}};
    o["locals"] = std::move(locals);
  }
  if (f.error)
    o["error"] = str(*f.error);
  return o;
}

Value framesJson(const std::vector<Frame> &frames) {
  Array out;
  out.reserve(frames.size()); // json::Value's move is not noexcept: a
                              // growing vector would deep-copy its elements
  for (const Frame &f : frames)
    out.push_back(frameJson(f));
  return out;
}

// The flat chain [handled, its cause/context, ...] as nested objects.
Value exceptionJson(const std::vector<PythonException> &chain) {
  Value next = nullptr;
  std::string nextRelation;
  for (size_t i = chain.size(); i-- > 0;) {
    const PythonException &e = chain[i];
    Object o{{"type", str(e.type)}, {"message", str(e.message)}};
    o["traceback"] = framesJson(e.traceback);
    if (e.error)
      o["error"] = str(*e.error);
    if (!nextRelation.empty())
      o[nextRelation] = std::move(next);
    nextRelation = e.chainedAs;
    next = std::move(o);
  }
  return next;
}

Value asyncioJson(const AsyncioSnapshot &a) {
  Array loops, errors;
  for (const AsyncioLoop &loop : a.loops) {
    Array tasks;
    tasks.reserve(loop.tasks.size());
    for (const AsyncioTask &t : loop.tasks) {
      Array awaitedBy;
      for (const std::string &id : t.awaitedBy)
        awaitedBy.push_back(id);
      Object o{{"id", t.id},
               {"name", str(t.name)},
               {"state", t.state},
               {"awaiting", opt(t.awaiting)}};
      // Moved in, not listed above: an initializer list would deep-copy.
      o["stack"] = framesJson(t.stack);
      o["awaited_by"] = std::move(awaitedBy);
      if (t.error)
        o["error"] = str(*t.error);
      tasks.push_back(std::move(o));
    }
    Object o{{"id", loop.id}, {"thread", opt(loop.thread)}};
    o["tasks"] = std::move(tasks);
    loops.push_back(std::move(o));
  }
  for (const std::string &e : a.errors)
    errors.push_back(str(e));
  Object o;
  o["loops"] = std::move(loops);
  o["errors"] = std::move(errors);
  return o;
}

Value threadJson(const Thread &t) {
  Array frames, errors;
  frames.reserve(t.frames.size());
  for (const Frame &f : t.frames)
    frames.push_back(frameJson(f));
  for (const std::string &e : t.errors)
    errors.push_back(str(e));
  Object o{
      {"tid", t.tid},
      {"name", str(t.name)},
      {"state", t.state},
      {"wchan", opt(t.wchan)},
      {"python_thread_name", opt(t.pythonThreadName)},
      {"holds_gil", opt(t.holdsGil())},
      {"gil", gilJson(t.gil)},
      {"gc", opt(t.collectingGarbage)},
      {"idle", opt(t.idle)},
      {"frames_omitted", static_cast<int64_t>(t.framesOmitted)},
      {"errors", std::move(errors)},
  };
  // Moved in after construction: an initializer list would deep-copy them.
  o["frames"] = std::move(frames);
  o["handling_exception"] = exceptionJson(t.handlingException);
  return o;
}

Value processJson(const Process &p) {
  Array threads, errors;
  threads.reserve(p.threads.size());
  for (const Thread &t : p.threads)
    threads.push_back(threadJson(t));
  for (const std::string &e : p.errors)
    errors.push_back(str(e));
  Value python = nullptr;
  if (p.python)
    python = Object{{"version", p.python->version},
                    {"implementation", p.python->implementation}};
  Object o{
      {"pid", p.pid},
      {"ppid", opt(p.parentPid)},
      {"command", str(p.command)},
      {"executable", str(p.executable)},
      {"python", std::move(python)},
      {"pause_us", opt(p.pauseMicros)},
      {"errors", std::move(errors)},
  };
  o["threads"] = std::move(threads);
  o["asyncio"] = p.asyncio ? asyncioJson(*p.asyncio) : Value(nullptr);
  return o;
}

// One process: one JSON object. Several: an array of them.
class JsonRenderer : public Renderer {
public:
  void render(const Process &process, llvm::raw_ostream &) override {
    documents_.push_back(processJson(process));
  }
  void end(llvm::raw_ostream &out) override {
    if (documents_.size() == 1)
      out << llvm::formatv("{0:2}", documents_.front()) << "\n";
    else
      out << llvm::formatv("{0:2}", Value(std::move(documents_))) << "\n";
    documents_.clear();
  }

private:
  Array documents_;
};

} // namespace

std::unique_ptr<Renderer> makeJsonRenderer(const RenderOptions &) {
  return std::make_unique<JsonRenderer>();
}

} // namespace stackpeek
