// Depth: the capture / resolve / apply phases for locals, handled exceptions
// and asyncio tasks (see Depth.h). This file only sequences the readers and
// converts captured data into the model; the CPython facts live in
// Locals.cpp, Exceptions.cpp and Asyncio.cpp.
#include "python/depth/Depth.h"

#include <cstdio>

#include "python/objects/Objects.h"

namespace stackpeek::python {

namespace {

// Every frame to decode after resume, collected so code objects are read
// once, then handed back in order.
class FrameBatch {
public:
  size_t add(const CapturedFrame &f) {
    frames_.push_back(f);
    return frames_.size() - 1;
  }
  void resolve(const Interpreter &in, MemorySource &mem) {
    decoded_ = resolveFrames(in, frames_, mem);
  }
  Frame take(size_t i) { return std::move(decoded_[i]); }

private:
  std::vector<CapturedFrame> frames_;
  std::vector<Frame> decoded_;
};

struct PendingException {
  pid_t tid;
  std::vector<std::vector<size_t>> frameIndexes; // per chain entry
};

} // namespace

CapturedDepth captureDepth(const Interpreter &interp, CapturedPython &captured,
                           MemorySource &mem, const DepthOptions &options) {
  CapturedDepth out;
  const std::optional<DepthLayout> &d = interp.depth;
  if (!d) {
    out.errors.push_back("locals, exceptions and tasks are not supported on "
                         "CPython " + interp.version().toString());
    return out;
  }
  ReprReader reprs(mem, interp.layout, *d, options.reprs);
  if (options.asyncio)
    out.asyncio = captureAsyncio(interp, *d, reprs, captured);
  if (options.locals)
    captureLocals(interp, *d, reprs, captured,
                  out.asyncio ? &*out.asyncio : nullptr);
  if (options.exceptions)
    for (const CapturedThread &t : captured.threads) {
      auto chain = captureHandledException(interp, *d, reprs, t.tstateAddr);
      if (!chain.empty())
        out.exceptions[t.tstateAddr] = std::move(chain);
    }
  return out;
}

ResolvedDepth resolveDepth(const Interpreter &interp,
                           const CapturedPython &captured,
                           const CapturedDepth &depth, MemorySource &mem,
                           const std::vector<PythonThreadStack> &stacks) {
  ResolvedDepth out;
  out.errors = depth.errors;
  std::unordered_map<uint64_t, pid_t> tidByTstate, tidByIdent;
  for (size_t i = 0; i < captured.threads.size() && i < stacks.size(); ++i) {
    tidByTstate[captured.threads[i].tstateAddr] = stacks[i].tid;
    tidByIdent[captured.threads[i].threadIdent] = stacks[i].tid;
  }
  FrameBatch batch;
  std::vector<PendingException> pending;
  for (const auto &[tstate, chain] : depth.exceptions) {
    PendingException p{tidByTstate[tstate], {}};
    for (const CapturedException &e : chain) {
      p.frameIndexes.emplace_back();
      for (const CapturedTracebackEntry &tb : e.traceback)
        p.frameIndexes.back().push_back(batch.add(tb.frame));
    }
    pending.push_back(std::move(p));
  }
  std::vector<std::vector<size_t>> taskFrames;
  if (depth.asyncio)
    for (const CapturedTask &t : depth.asyncio->tasks) {
      taskFrames.emplace_back();
      for (const CapturedFrame &f : t.stack)
        taskFrames.back().push_back(batch.add(f));
    }
  batch.resolve(interp, mem);

  size_t k = 0;
  for (const auto &[tstate, chain] : depth.exceptions) {
    const PendingException &p = pending[k++];
    std::vector<PythonException> model;
    for (size_t i = 0; i < chain.size(); ++i) {
      const CapturedException &e = chain[i];
      PythonException pe{e.type, e.message, {}, e.chainedAs, e.error};
      for (size_t j = 0; j < e.traceback.size(); ++j) {
        Frame f = batch.take(p.frameIndexes[i][j]);
        if (e.traceback[j].lineno > 0 && f.line != uint32_t(e.traceback[j].lineno)) {
          f.line = uint32_t(e.traceback[j].lineno); // tb_lineno is authoritative
          f.column = f.endLine = f.endColumn = std::nullopt;
        }
        pe.traceback.push_back(std::move(f));
      }
      model.push_back(std::move(pe));
    }
    if (p.tid)
      out.exceptions[p.tid] = std::move(model);
  }

  if (!depth.asyncio)
    return out;
  AsyncioSnapshot snap;
  snap.errors = depth.asyncio->errors;
  std::map<uint64_t, size_t> loopIndex;
  for (size_t i = 0; i < depth.asyncio->tasks.size(); ++i) {
    const CapturedTask &t = depth.asyncio->tasks[i];
    auto [it, fresh] = loopIndex.emplace(t.loop, snap.loops.size());
    if (fresh) {
      AsyncioLoop loop;
      loop.id = hexAddress(t.loop);
      auto ident = depth.asyncio->loopThreadIdent.find(t.loop);
      if (ident != depth.asyncio->loopThreadIdent.end() && ident->second)
        if (auto tid = tidByIdent.find(ident->second); tid != tidByIdent.end() && tid->second)
          loop.thread = tid->second;
      snap.loops.push_back(std::move(loop));
    }
    AsyncioTask task{hexAddress(t.addr), t.name, t.state, {}, {}, t.awaiting, t.error};
    for (size_t idx : taskFrames[i])
      task.stack.push_back(batch.take(idx));
    for (uint64_t by : t.awaitedBy)
      task.awaitedBy.push_back(hexAddress(by));
    snap.loops[it->second].tasks.push_back(std::move(task));
  }
  out.asyncio = std::move(snap);
  return out;
}

void applyDepth(ResolvedDepth depth, Process &process) {
  for (Thread &t : process.threads) {
    auto e = depth.exceptions.find(t.tid);
    if (e != depth.exceptions.end())
      t.handlingException = std::move(e->second);
  }
  for (std::string &e : depth.errors)
    process.errors.push_back("Python: " + e);
  if (depth.asyncio)
    process.asyncio = std::move(depth.asyncio);
}

} // namespace stackpeek::python
