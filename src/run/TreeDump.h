// TreeDump: dump every process of a process tree and render them together.
//
// This is what `stackpeek run` prints when a command hangs. Each process is
// dumped on its own with dumpProcess (one pause per process, never the whole
// tree at once, so a process is stopped only for its own snapshot). A process
// that cannot be dumped (a zombie, one already traced by a debugger, one that
// exited meanwhile) still appears, with its pid, parent, command line and the
// reason, because "which processes existed" is half of a hang diagnosis.
#pragma once

#include <string>
#include <vector>

#include "driver/Dump.h"
#include "model/Snapshot.h"
#include "process/ProcessTree.h"

namespace stackpeek {

struct TreeDumpResult {
  std::vector<Process> processes; // tree order, one per node
  std::vector<unsigned> depths;   // nesting of each process, for the summary
  bool truncated = false;
};

/// A process that could not be dumped, described by what /proc still tells
/// (command line, executable) and why, so it keeps its place in a tree.
Process notDumpedPlaceholder(pid_t pid, pid_t ppid, const std::string &why);

/// Dumps each node of `tree` in order.
TreeDumpResult dumpTree(const ProcessTree &tree, const DumpOptions &options);

/// Text: an indented "pid  command" overview of the tree, then each process
/// as the text renderer prints it. JSON: always an array of process objects
/// (also for a single process), one document, ending in a newline.
std::string renderTreeDump(const TreeDumpResult &dump, bool json, bool native);

} // namespace stackpeek
