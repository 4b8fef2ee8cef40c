#include "memory/ProcessMemory.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <cstring>
#include <string>

namespace stackpeek {

ProcessMemory::ProcessMemory(pid_t pid) : pid_(pid) {}

ProcessMemory::~ProcessMemory() {
  if (memFd_ >= 0)
    ::close(memFd_);
}

size_t ProcessMemory::readUncachedPrefix(uint64_t addr, void *buf, size_t len) {
  if (len == 0 || addr + len < addr)
    return 0;
  if (useVmReadv_) {
    struct iovec local{buf, len};
    struct iovec remote{reinterpret_cast<void *>(addr), len};
    ssize_t got = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
    if (got > 0) {
      bytesCopied_ += size_t(got);
      return size_t(got);
    }
  }
  // /proc/PID/mem also stops at the first page it cannot read.
  return readUncached(addr, buf, len) ? len : 0;
}

bool ProcessMemory::readUncached(uint64_t addr, void *buf, size_t len) {
  if (len == 0)
    return true;
  if (addr + len < addr)
    return false; // wraps around the address space
  if (useVmReadv_) {
    struct iovec local{buf, len};
    struct iovec remote{reinterpret_cast<void *>(addr), len};
    ssize_t got = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
    if (got == static_cast<ssize_t>(len)) {
      bytesCopied_ += len;
      return true;
    }
    if (got >= 0 || errno == EFAULT || errno == ESRCH)
      return false; // partial read or unmapped: a real answer, not a fallback case
    if (errno != ENOSYS && errno != EPERM)
      return false;
    useVmReadv_ = false;
  }
  if (memFd_ < 0) {
    std::string path = "/proc/" + std::to_string(pid_) + "/mem";
    memFd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (memFd_ < 0)
      return false;
  }
  ssize_t got = ::pread(memFd_, buf, len, static_cast<off_t>(addr));
  if (got != static_cast<ssize_t>(len))
    return false;
  bytesCopied_ += len;
  return true;
}

// A page buffer, reused from those clearCache() let go when there are any:
// a sampler drops and refills the same few dozen pages on every pass.
std::unique_ptr<ProcessMemory::Page> ProcessMemory::newPage() {
  if (spare_.empty())
    return std::make_unique<Page>();
  std::unique_ptr<Page> p = std::move(spare_.back());
  spare_.pop_back();
  return p;
}

void ProcessMemory::dropPage(std::unique_ptr<Page> p) {
  if (p && spare_.size() < kMaxSparePages)
    spare_.push_back(std::move(p));
}

std::vector<uint64_t> ProcessMemory::takeTouchedPages() {
  tracking_ = false;
  std::sort(touched_.begin(), touched_.end());
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  return std::move(touched_);
}

void ProcessMemory::prefetch(std::vector<uint64_t> pages) {
  if (!useVmReadv_)
    return;
  pages.erase(std::remove_if(pages.begin(), pages.end(),
                             [&](uint64_t p) { return pages_.count(p) != 0; }),
              pages.end());
  if (pages.size() > kMaxPrefetchPages)
    pages.resize(kMaxPrefetchPages);
  std::vector<std::unique_ptr<Page>> buffers;
  std::vector<iovec> local, remote;
  for (uint64_t p : pages) {
    buffers.push_back(newPage());
    local.push_back({buffers.back()->data(), kPageSize});
    remote.push_back({reinterpret_cast<void *>(p), kPageSize});
  }
  // The kernel copies range after range and stops at the first it cannot
  // read: keep what came, skip that page, go on with the rest.
  size_t next = 0;
  while (next < pages.size()) {
    ssize_t got = ::process_vm_readv(pid_, &local[next], pages.size() - next,
                                     &remote[next], pages.size() - next, 0);
    size_t whole = got > 0 ? size_t(got) / kPageSize : 0;
    for (size_t i = next; i < next + whole; ++i)
      pages_[pages[i]] = std::move(buffers[i]);
    bytesCopied_ += whole * kPageSize;
    if (got < 0 && errno != EFAULT)
      break; // ESRCH and the like: nothing more will come
    next += whole + 1; // the page that stopped it (or a torn one) is skipped
  }
  for (std::unique_ptr<Page> &unused : buffers)
    dropPage(std::move(unused));
}

const ProcessMemory::Page *ProcessMemory::page(uint64_t pageAddr) {
  // Reads come in runs on one page (a struct, then the next field): the
  // last page is answered without a lookup, and is already tracked.
  if (lastValid_ && pageAddr == lastPageAddr_)
    return lastPage_;
  if (tracking_)
    touched_.push_back(pageAddr);
  auto [it, inserted] = pages_.try_emplace(pageAddr);
  if (inserted) {
    auto fresh = newPage();
    if (readUncached(pageAddr, fresh->data(), kPageSize))
      it->second = std::move(fresh);
    else
      dropPage(std::move(fresh));
  }
  lastValid_ = true;
  lastPageAddr_ = pageAddr;
  lastPage_ = it->second.get();
  return lastPage_;
}

void ProcessMemory::setImmutableRanges(std::vector<std::pair<uint64_t, uint64_t>> ranges) {
  std::sort(ranges.begin(), ranges.end());
  immutable_ = std::move(ranges);
}

void ProcessMemory::clearCache() {
  lastValid_ = false;
  for (auto it = pages_.begin(); it != pages_.end();) {
    uint64_t page = it->first;
    auto r = std::upper_bound(immutable_.begin(), immutable_.end(),
                              std::make_pair(page, UINT64_MAX));
    bool keep = r != immutable_.begin() && it->second &&
                page >= std::prev(r)->first && page + kPageSize <= std::prev(r)->second;
    if (keep) {
      ++it;
      continue;
    }
    dropPage(std::move(it->second));
    it = pages_.erase(it);
  }
}

void ProcessMemory::clearAll() {
  lastValid_ = false;
  pages_.clear();
  immutable_.clear();
}

bool ProcessMemory::read(uint64_t addr, void *buf, size_t len) {
  if (len == 0)
    return true;
  if (addr + len < addr)
    return false;
  // Large reads bypass the cache: they are usually one-off copies.
  if (len > 4 * kPageSize)
    return readUncached(addr, buf, len);
  auto *out = static_cast<uint8_t *>(buf);
  while (len > 0) {
    uint64_t pageAddr = addr & ~(kPageSize - 1);
    uint64_t offset = addr - pageAddr;
    size_t chunk = std::min<uint64_t>(len, kPageSize - offset);
    const Page *p = page(pageAddr);
    if (!p)
      return false;
    std::memcpy(out, p->data() + offset, chunk);
    out += chunk;
    addr += chunk;
    len -= chunk;
  }
  return true;
}

} // namespace stackpeek
