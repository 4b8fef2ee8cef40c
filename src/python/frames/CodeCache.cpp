#include "python/frames/CodeCache.h"

#include "python/objects/Objects.h"
#include "python/layout/RemoteStruct.h"

namespace stackpeek::python {

namespace {

llvm::Expected<CodeInfo> readCodeObject(const Layout &l, MemorySource &mem,
                                        const RemoteStruct &co) {
  auto type = typeName(mem, l, co.address());
  if (!type)
    return type.takeError();
  if (*type != "code")
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "executable is a '%s', not code",
                                   type->c_str());
  CodeInfo info;
  uint64_t nameAddr = co.pointer(l.coQualname.value_or(l.coName));
  auto name = readString(mem, l, nameAddr);
  if (!name)
    return name.takeError();
  info.function = *name;
  auto file = readString(mem, l, co.pointer(l.coFilename));
  if (!file)
    return file.takeError();
  info.file = *file;
  info.firstLineno = co.get<int32_t>(l.coFirstLineno).value_or(0);
  auto table = readBytes(mem, l, co.pointer(l.coLineTable));
  if (!table)
    return table.takeError();
  info.lineTable = std::move(*table);
  if (l.coFirstTraceable)
    info.firstTraceable = co.get<int32_t>(*l.coFirstTraceable).value_or(0);
  if (l.coTlbc)
    info.tlbc = co.pointer(*l.coTlbc);
  return info;
}

// The code struct without its reference count: what must not have changed
// for a cached decoding to still describe the object at this address.
std::vector<uint8_t> fingerprintOf(const Layout &l, const RemoteStruct &co) {
  std::vector<uint8_t> bytes;
  for (uint64_t off = l.obType; off + 8 <= co.size(); off += 8)
    for (uint64_t v = co.pointer(off), i = 0; i < 8; ++i)
      bytes.push_back(uint8_t(v >> (8 * i)));
  return bytes;
}

} // namespace

bool CodeCache::stillValid(const Layout &l, MemorySource &mem, uint64_t addr,
                           Entry &e) {
  if (!persistent_ || e.validatedPass == pass_)
    return true;
  auto co = RemoteStruct::read(mem, addr, l.codeSize);
  if (!co) {
    llvm::consumeError(co.takeError());
    return false;
  }
  if (fingerprintOf(l, *co) != e.fingerprint)
    return false;
  e.validatedPass = pass_;
  return true;
}

const CodeInfo &CodeCache::get(const Layout &l, MemorySource &mem, uint64_t addr) {
  auto it = entries_.find(addr);
  if (it != entries_.end() && stillValid(l, mem, addr, it->second))
    return it->second.info;
  if (it != entries_.end()) {
    bytes_ -= it->second.info.lineTable.size();
    entries_.erase(it);
  }
  auto co = RemoteStruct::read(mem, addr, l.codeSize);
  llvm::Expected<CodeInfo> info =
      co ? readCodeObject(l, mem, *co) : llvm::Expected<CodeInfo>(co.takeError());
  if (!info) {
    // Unreadable now (being built or freed, or a torn address): reported,
    // not kept, so a long recording does not fill up with garbage.
    failed_ = CodeInfo{};
    failed_.error = "unreadable code object: " + llvm::toString(info.takeError());
    return failed_;
  }
  if (entries_.size() >= kMaxEntries || bytes_ + info->lineTable.size() > kMaxBytes) {
    entries_.clear();
    bytes_ = 0;
  }
  Entry e;
  e.validatedPass = pass_;
  e.info = std::move(*info);
  e.fingerprint = fingerprintOf(l, *co);
  bytes_ += e.info.lineTable.size();
  return entries_.emplace(addr, std::move(e)).first->second.info;
}

} // namespace stackpeek::python
