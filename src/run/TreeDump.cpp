// TreeDump: per-process dumps with placeholders for failures, and rendering.
#include "run/TreeDump.h"

#include "llvm/Support/raw_ostream.h"

#include "process/Attach.h"
#include "process/ProcFs.h"
#include "text/Escape.h"
#include "render/Renderer.h"

namespace stackpeek {

Process notDumpedPlaceholder(pid_t pid, pid_t ppid, const std::string &why) {
  Process p;
  p.pid = pid;
  if (ppid)
    p.parentPid = ppid;
  p.command = commandLine(pid);
  p.executable = executablePath(pid);
  p.errors.push_back("not dumped: " + why);
  return p;
}

namespace {

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
      result.processes.push_back(notDumpedPlaceholder(node.pid, node.ppid, why));
    }
    result.depths.push_back(node.depth);
  }
  return result;
}

std::string renderTreeDump(const TreeDumpResult &dump, bool json, bool native) {
  RenderOptions renderOptions;
  renderOptions.native = native;
  renderOptions.jsonArray = true; // scripts read one shape, whatever the tree's size
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
  return out;
}

} // namespace stackpeek
