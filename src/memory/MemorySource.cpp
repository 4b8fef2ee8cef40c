#include "memory/MemorySource.h"

#include <algorithm>
#include <cstring>

#include "llvm/Support/Format.h"

namespace stackpeek {

llvm::Error makeReadError(uint64_t addr, size_t len) {
  return llvm::createStringError(
      llvm::inconvertibleErrorCode(), "cannot read %zu bytes at 0x%llx", len,
      static_cast<unsigned long long>(addr));
}

llvm::Error MemorySource::readExact(uint64_t addr, void *buf, size_t len) {
  if (len == 0 || read(addr, buf, len))
    return llvm::Error::success();
  return makeReadError(addr, len);
}

llvm::Expected<std::string> MemorySource::readCString(uint64_t addr,
                                                      size_t maxLen) {
  std::string out;
  constexpr size_t kChunk = 64;
  char chunk[kChunk];
  while (out.size() < maxLen) {
    // Never read past the next 64-byte boundary in one go, so a short string
    // that ends just before an unmapped page is still readable.
    size_t toBoundary = kChunk - (addr % kChunk);
    size_t want = std::min({toBoundary, maxLen - out.size(), kChunk});
    if (!read(addr, chunk, want))
      return makeReadError(addr, want);
    const char *nul = static_cast<const char *>(std::memchr(chunk, 0, want));
    if (nul) {
      out.append(chunk, nul - chunk);
      return out;
    }
    out.append(chunk, want);
    addr += want;
  }
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "string longer than %zu bytes", maxLen);
}

} // namespace stackpeek
