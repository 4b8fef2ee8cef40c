// See SourceLines.h. Files larger than kMaxSourceFile are skipped: source
// files that large are not worth pausing a dump for.
#include "python/frames/SourceLines.h"

#include "process/SafeFile.h"

namespace stackpeek::python {

namespace {

constexpr uint64_t kMaxSourceFile = 16 << 20;

bool isPseudoFile(const std::string &file) {
  return file.empty() || file.front() == '<';
}

std::vector<std::string> splitLines(llvm::StringRef text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    llvm::StringRef line = text.substr(0, nl);
    if (line.endswith("\r"))
      line = line.drop_back();
    out.push_back(line.str());
    if (nl == llvm::StringRef::npos)
      break;
    text = text.substr(nl + 1);
  }
  return out;
}

} // namespace

const std::vector<std::string> *SourceLines::lines(const std::string &file) {
  auto it = files_.find(file);
  if (it != files_.end())
    return it->second.get();
  std::unique_ptr<std::vector<std::string>> content;
  if (!isPseudoFile(file)) {
    auto buffer = openRegularFile(pathInTarget(pid_, file), kMaxSourceFile);
    if (buffer)
      content = std::make_unique<std::vector<std::string>>(
          splitLines((*buffer)->getBuffer()));
    else
      llvm::consumeError(buffer.takeError());
  }
  return files_.emplace(file, std::move(content)).first->second.get();
}

std::optional<std::string> SourceLines::line(const std::string &file,
                                             uint32_t line) {
  const std::vector<std::string> *all = lines(file);
  if (!all || line == 0 || line > all->size())
    return std::nullopt;
  return (*all)[line - 1];
}

std::optional<std::string> readSourceLine(pid_t pid, const std::string &file,
                                          uint32_t line) {
  return SourceLines(pid).line(file, line);
}

} // namespace stackpeek::python
