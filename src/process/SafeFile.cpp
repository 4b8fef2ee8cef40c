// See SafeFile.h: non-blocking open, regular files only, size-capped mmap.
#include "process/SafeFile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "llvm/Support/FileSystem.h"

namespace stackpeek {

llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>>
openRegularFile(const std::string &path, uint64_t maxSize) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    return llvm::createStringError(std::error_code(err, std::generic_category()),
                                   "cannot open %s: %s", path.c_str(),
                                   std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      uint64_t(st.st_size) > maxSize) {
    ::close(fd);
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "%s is not a regular file of at most %llu bytes",
                                   path.c_str(), (unsigned long long)maxSize);
  }
  auto buffer = llvm::MemoryBuffer::getOpenFile(
      llvm::sys::fs::convertFDToNativeFile(fd), path, st.st_size,
      /*RequiresNullTerminator=*/false);
  ::close(fd);
  if (!buffer)
    return llvm::createStringError(buffer.getError(), "cannot map %s",
                                   path.c_str());
  return std::move(*buffer);
}

std::string pathInTarget(pid_t pid, const std::string &path) {
  std::string proc = "/proc/" + std::to_string(pid);
  if (!path.empty() && path[0] == '/')
    return proc + "/root" + path;
  return proc + "/cwd/" + path;
}

} // namespace stackpeek
