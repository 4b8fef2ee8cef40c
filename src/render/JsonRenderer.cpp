// JSON output: the stable, documented contract (docs/json-format.md).
//
// Field names never change once published; new facts are added as new
// fields. Absent facts are null, never invented. Addresses are hex strings
// because JSON numbers lose precision above 2^53. Every string passes through
// sanitizeUtf8, so the document is valid JSON whatever the target contains.
//
// Written as a stream (llvm::json::OStream), not built as a json::Value
// tree: a dump with --locals or --async holds hundreds of thousands of
// fields, and building, sorting and freeing a tree of them cost several
// times what reading them from the target did.
#include <set>

#include "text/Escape.h"
#include "render/Renderer.h"

#include "llvm/Support/JSON.h"

namespace stackpeek {

namespace {

using llvm::json::OStream;

class Writer {
public:
  explicit Writer(OStream &j) : j_(j) {}

  void process(const Process &p) {
    j_.object([&] {
      j_.attribute("pid", p.pid);
      optional("ppid", p.parentPid);
      string("command", p.command);
      string("executable", p.executable);
      j_.attributeBegin("python");
      if (p.python)
        j_.object([&] {
          string("version", p.python->version);
          string("implementation", p.python->implementation);
          j_.attribute("free_threaded", p.python->freeThreaded);
          // Free-threaded builds: enabled at run time or not; GIL builds
          // always have theirs.
          optional("gil_enabled", p.python->freeThreaded ? p.python->gilEnabled
                                                         : std::optional<bool>(true));
        });
      else
        j_.value(nullptr);
      j_.attributeEnd();
      optional("python_unavailable", p.pythonUnavailable);
      optional("pause_us", p.pauseMicros);
      j_.attributeArray("threads", [&] {
        for (const Thread &t : p.threads)
          thread(t);
      });
      strings("errors", p.errors);
      j_.attributeBegin("asyncio");
      if (p.asyncio)
        asyncio(*p.asyncio);
      else
        j_.value(nullptr);
      j_.attributeEnd();
    });
  }

private:
  void string(llvm::StringRef key, const std::string &s) {
    j_.attribute(key, sanitizeUtf8(s));
  }
  template <class T> void optional(llvm::StringRef key, const std::optional<T> &v) {
    if (!v)
      j_.attribute(key, nullptr);
    else if constexpr (std::is_same_v<T, std::string>)
      string(key, *v);
    else
      j_.attribute(key, *v);
  }
  void strings(llvm::StringRef key, const std::vector<std::string> &values) {
    j_.attributeArray(key, [&] {
      for (const std::string &v : values)
        j_.value(sanitizeUtf8(v));
    });
  }
  void hex(llvm::StringRef key, std::optional<uint64_t> v) {
    if (!v) {
      j_.attribute(key, nullptr);
      return;
    }
    char buf[24];
    snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(*v));
    j_.attribute(key, llvm::StringRef(buf));
  }

  // "held", "waiting", "released"; null when not known (NotHeld: not
  // holding, but whether waiting is unknown).
  static const char *gilName(const std::optional<GilState> &gil) {
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

  void frame(const Frame &f) {
    bool native = f.kind == Frame::Kind::Native;
    j_.object([&] {
      j_.attribute("kind", native ? "native" : "python");
      hex("address", native ? std::optional<uint64_t>(f.address) : std::nullopt);
      optional("function", f.function);
      optional("module", f.module);
      hex("module_offset", f.moduleOffset);
      optional("file", f.file);
      optional("line", f.line);
      optional("column", f.column);
      if (!native) {
        optional("end_line", f.endLine);
        optional("end_column", f.endColumn);
      }
      j_.attribute("inlined", f.inlined);
      if (!f.locals.empty())
        j_.attributeObject("locals", [&] {
          // Two names can sanitize to one key; a JSON object keeps one.
          std::set<std::string> keys;
          for (const LocalVariable &v : f.locals) {
            std::string key = sanitizeUtf8(v.name);
            if (!keys.insert(key).second)
              continue;
            j_.attributeObject(key, [&] {
              string("repr", v.repr);
              optional("type", v.type);
            });
          }
        });
      if (f.error)
        string("error", *f.error);
    });
  }
  void frames(llvm::StringRef key, const std::vector<Frame> &list) {
    j_.attributeArray(key, [&] {
      for (const Frame &f : list)
        frame(f);
    });
  }

  // The flat chain [handled, its cause/context, ...] as nested objects.
  void exception(const std::vector<PythonException> &chain, size_t i) {
    const PythonException &e = chain[i];
    j_.object([&] {
      string("type", e.type);
      string("message", e.message);
      frames("traceback", e.traceback);
      if (e.error)
        string("error", *e.error);
      // chainedAs says how an entry relates to the one before it.
      if (i + 1 < chain.size() && !chain[i + 1].chainedAs.empty()) {
        j_.attributeBegin(chain[i + 1].chainedAs);
        exception(chain, i + 1);
        j_.attributeEnd();
      }
    });
  }

  void asyncio(const AsyncioSnapshot &a) {
    j_.object([&] {
      j_.attributeArray("loops", [&] {
        for (const AsyncioLoop &loop : a.loops)
          j_.object([&] {
            j_.attribute("id", loop.id);
            optional("thread", loop.thread);
            j_.attributeArray("tasks", [&] {
              for (const AsyncioTask &t : loop.tasks)
                task(t);
            });
          });
      });
      strings("errors", a.errors);
    });
  }
  void task(const AsyncioTask &t) {
    j_.object([&] {
      j_.attribute("id", t.id);
      string("name", t.name);
      j_.attribute("state", t.state);
      optional("awaiting", t.awaiting);
      frames("stack", t.stack);
      j_.attributeArray("awaited_by", [&] {
        for (const std::string &id : t.awaitedBy)
          j_.value(id);
      });
      if (t.error)
        string("error", *t.error);
    });
  }

  void thread(const Thread &t) {
    j_.object([&] {
      j_.attribute("tid", t.tid);
      string("name", t.name);
      j_.attribute("state", t.state);
      optional("wchan", t.wchan);
      optional("python_thread_name", t.pythonThreadName);
      optional("holds_gil", t.holdsGil());
      if (const char *gil = gilName(t.gil))
        j_.attribute("gil", gil);
      else
        j_.attribute("gil", nullptr);
      optional("gc", t.collectingGarbage);
      optional("idle", t.idle);
      frames("frames", t.frames);
      j_.attribute("frames_omitted", static_cast<int64_t>(t.framesOmitted));
      j_.attributeBegin("handling_exception");
      if (t.handlingException.empty())
        j_.value(nullptr);
      else
        exception(t.handlingException, 0);
      j_.attributeEnd();
      strings("errors", t.errors);
    });
  }

  OStream &j_;
};

// One process asked for: one JSON object. Several asked for: an array of
// those dumped. None dumped: nothing, so stdout never holds a document that
// looks like a result (the reasons are on stderr). The documents are kept as
// text until end(), which knows how many there were.
class JsonRenderer : public Renderer {
public:
  explicit JsonRenderer(const RenderOptions &options) : asArray_(options.jsonArray) {}

  void render(const Process &process, llvm::raw_ostream &) override {
    std::string text;
    llvm::raw_string_ostream os(text);
    OStream j(os, 2);
    Writer(j).process(process);
    os.flush();
    documents_.push_back(std::move(text));
  }
  void end(llvm::raw_ostream &out) override {
    if (documents_.empty()) {
      // nothing dumped: nothing printed
    } else if (documents_.size() == 1 && !asArray_) {
      out << documents_.front() << "\n";
    } else {
      // JSON strings hold no raw newline, so indenting every line of a
      // document nests it in the array.
      out << "[";
      for (size_t i = 0; i < documents_.size(); ++i) {
        out << (i ? ",\n" : "\n");
        llvm::StringRef rest = documents_[i];
        while (!rest.empty()) {
          auto [line, tail] = rest.split('\n');
          out << "  " << line << (tail.empty() && !rest.endswith("\n") ? "" : "\n");
          rest = tail;
        }
      }
      out << "\n]\n";
    }
    documents_.clear();
  }

private:
  bool asArray_;
  std::vector<std::string> documents_;
};

} // namespace

std::unique_ptr<Renderer> makeJsonRenderer(const RenderOptions &options) {
  return std::make_unique<JsonRenderer>(options);
}

} // namespace stackpeek
