// TreeDump: per-process dumps with placeholders for failures, and rendering.
#include "run/TreeDump.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include "process/Attach.h"
#include "process/ProcFs.h"
#include "render/Escape.h"
#include "render/Renderer.h"

namespace stackpeek {

namespace {

// A process we could not dump, described by what /proc still tells.
Process placeholder(const TreeNode &node, const std::string &why) {
  Process p;
  p.pid = node.pid;
  if (node.ppid)
    p.parentPid = node.ppid;
  p.command = commandLine(node.pid);
  p.executable = executablePath(node.pid);
  p.errors.push_back("not dumped: " + why);
  return p;
}

std::string summaryLine(const Process &p, unsigned depth) {
  std::string line(2 + 2 * depth, ' ');
  line += std::to_string(p.pid);
  if (p.parentPid)
    line += " (parent " + std::to_string(*p.parentPid) + ")";
  line += ": " + escapeForTerminal(p.command.empty() ? "[no command line]" : p.command);
  if (!p.errors.empty() && p.threads.empty())
    line += "  [" + escapeForTerminal(p.errors.back()) + "]";
  return line + "\n";
}

// The JSON renderer prints one object for one process; a tree dump is read
// by scripts, which are simpler with one shape, so wrap it.
std::string asArray(const std::string &document) {
  auto parsed = llvm::json::parse(document);
  if (!parsed) {
    llvm::consumeError(parsed.takeError());
    return document;
  }
  if (parsed->kind() == llvm::json::Value::Array)
    return document;
  llvm::json::Array one;
  one.push_back(std::move(*parsed));
  std::string out;
  llvm::raw_string_ostream os(out);
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(one))) << "\n";
  return os.str();
}

} // namespace

TreeDumpResult dumpTree(const ProcessTree &tree, const DumpOptions &options) {
  TreeDumpResult result;
  result.truncated = tree.truncated;
  for (const TreeNode &node : tree.nodes) {
    auto dumped = dumpProcess(node.pid, options);
    if (dumped) {
      result.processes.push_back(std::move(dumped->process));
    } else {
      bool exited = false;
      std::string why;
      llvm::handleAllErrors(
          dumped.takeError(),
          [&](const AttachError &e) {
            exited = e.kind() == AttachFailure::NoSuchProcess;
            why = e.message();
          },
          [&](const llvm::ErrorInfoBase &e) { why = e.message(); });
      if (exited && !processExists(node.pid))
        continue; // gone since the scan: not part of the hang
      result.processes.push_back(placeholder(node, why));
    }
    result.depths.push_back(node.depth);
  }
  return result;
}

std::string renderTreeDump(const TreeDumpResult &dump, bool json, bool native) {
  RenderOptions renderOptions;
  renderOptions.native = native;
  auto renderer = json ? makeJsonRenderer(renderOptions) : makeTextRenderer(renderOptions);
  std::string out;
  llvm::raw_string_ostream os(out);
  if (!json) {
    os << "Process tree (" << dump.processes.size() << " process"
       << (dump.processes.size() == 1 ? "" : "es") << "):\n";
    for (size_t i = 0; i < dump.processes.size(); ++i)
      os << summaryLine(dump.processes[i], dump.depths[i]);
    if (dump.truncated)
      os << "  [more processes not shown: the tree has more than "
         << kMaxTreeProcesses << "]\n";
    os << "\n";
  }
  renderer->begin(os);
  for (const Process &p : dump.processes)
    renderer->render(p, os);
  renderer->end(os);
  os.flush();
  return json ? asArray(out) : out;
}

} // namespace stackpeek
