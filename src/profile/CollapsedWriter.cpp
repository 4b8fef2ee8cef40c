// CollapsedWriter: the "folded stacks" text format.
//
// One line per distinct stack: frame labels outermost first joined by ';',
// a space, and the number of samples with that stack. This is the input of
// flamegraph.pl, inferno-flamegraph and speedscope. The format has no
// escaping: ';' separates frames and the last space separates the count,
// so ';' in a label becomes ':' and newlines (and other control
// characters) become visible escapes; spaces are fine. Stacks whose labels
// coincide after that are one line. Lines are sorted so that the same
// profile always gives the same file. Samples with an empty stack have no
// line (the format cannot express them).
#include <algorithm>
#include <map>

#include "profile/ProfileWriterSupport.h"

namespace stackpeek::profile_writer {

namespace {

std::string collapsedStack(const Profile &profile, const std::vector<FrameId> &stack) {
  std::string line;
  for (auto it = stack.rbegin(); it != stack.rend(); ++it) { // outermost first
    std::string label = plainLabel(profile, *it);
    std::replace(label.begin(), label.end(), ';', ':');
    if (!line.empty())
      line += ';';
    line += label;
  }
  return line;
}

} // namespace

llvm::Error writeCollapsed(const Profile &profile, llvm::raw_ostream &out) {
  std::vector<uint64_t> counts = samplesPerStack(profile);
  std::map<std::string, uint64_t> lines; // sorted, and merges equal label paths
  for (StackId id = 0; id < profile.stacks.size(); ++id)
    if (counts[id] != 0 && !profile.stacks[id].empty())
      lines[collapsedStack(profile, profile.stacks[id])] += counts[id];
  for (const auto &[stack, count] : lines)
    out << stack << ' ' << count << '\n';
  return llvm::Error::success();
}

} // namespace stackpeek::profile_writer
