// Renderer: one small interface for every output format.
//
// A renderer sees only the plain model (model/Snapshot.h): never a pid, never
// a file. begin/end bracket a run that may cover several processes (several
// PIDs on the command line, or a process tree), so formats that need a single
// document (JSON) can wrap them.
#pragma once

#include <memory>

#include "llvm/Support/raw_ostream.h"

#include "model/Snapshot.h"

namespace stackpeek {

struct RenderOptions {
  bool native = false; // merged native+Python stacks were requested
  // JSON: an array even for one process. Set when the caller asked for
  // several (several pids, a tree), so the shape follows the request and not
  // how many processes could be dumped (docs/json-format.md).
  bool jsonArray = false;
};

class Renderer {
public:
  virtual ~Renderer() = default;
  virtual void begin(llvm::raw_ostream &) {}
  virtual void render(const Process &process, llvm::raw_ostream &out) = 0;
  virtual void end(llvm::raw_ostream &) {}
};

std::unique_ptr<Renderer> makeTextRenderer(const RenderOptions &options);
std::unique_ptr<Renderer> makeJsonRenderer(const RenderOptions &options);

} // namespace stackpeek
