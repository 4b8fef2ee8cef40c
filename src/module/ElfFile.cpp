#include "module/ElfFile.h"

#include <cstring>

#include "llvm/BinaryFormat/ELF.h"
#include "llvm/Object/ObjectFile.h"

#include "process/SafeFile.h"

namespace stackpeek {

namespace {
constexpr uint64_t kMaxElfSize = 8ull << 30; // larger than any real binary

llvm::Error fail(const std::string &path, const std::string &why) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s: %s",
                                 path.c_str(), why.c_str());
}

std::string hex(llvm::ArrayRef<uint8_t> bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}
} // namespace

llvm::Expected<std::unique_ptr<ElfFile>> ElfFile::open(const std::string &path) {
  auto buffer = openRegularFile(path, kMaxElfSize);
  if (!buffer)
    return buffer.takeError();
  auto object = llvm::object::ObjectFile::createObjectFile((*buffer)->getMemBufferRef());
  if (!object)
    return object.takeError();
  auto *elf = llvm::dyn_cast<llvm::object::ELF64LEObjectFile>(object->get());
  if (!elf)
    return fail(path, "not a 64-bit little-endian ELF file");
  std::unique_ptr<ElfFile> file(new ElfFile());
  file->path_ = path;
  file->buffer_ = std::move(*buffer);
  object->release();
  file->object_.reset(elf);

  auto phdrs = elf->getELFFile().program_headers();
  if (!phdrs)
    return phdrs.takeError();
  file->loads_ = loadSegments(*phdrs);
  file->scanSections();
  return file;
}

void ElfFile::scanSections() {
  for (const llvm::object::SectionRef &section : object_->sections()) {
    auto name = section.getName();
    if (!name) {
      llvm::consumeError(name.takeError());
      continue;
    }
    if (*name == ".debug_info" || *name == ".zdebug_info")
      hasDwarf_ = true;
    if (*name == ".symtab")
      hasSymtab_ = true;
    if (*name == ".note.gnu.build-id" || *name == ".gnu_debuglink") {
      auto contents = section.getContents();
      if (!contents) {
        llvm::consumeError(contents.takeError());
        continue;
      }
      llvm::StringRef data = *contents;
      if (*name == ".gnu_debuglink") {
        llvm::StringRef link = data.split('\0').first;
        if (!link.empty() && link.size() < data.size() && link.find('/') == llvm::StringRef::npos)
          debugLink_ = link.str();
      } else if (data.size() >= 16) {
        // Note: namesz(4) descsz(4) type(4) "GNU\0" then descsz bytes.
        uint32_t namesz, descsz, type;
        std::memcpy(&namesz, data.data(), 4);
        std::memcpy(&descsz, data.data() + 4, 4);
        std::memcpy(&type, data.data() + 8, 4);
        uint64_t descAt = 12 + ((namesz + 3ull) & ~3ull);
        if (type == 3 /* NT_GNU_BUILD_ID */ && namesz == 4 && descsz > 0 &&
            descsz <= 64 && descAt + descsz <= data.size())
          buildId_ = hex(llvm::ArrayRef<uint8_t>(
              reinterpret_cast<const uint8_t *>(data.data() + descAt), descsz));
      }
    }
  }
}

} // namespace stackpeek
