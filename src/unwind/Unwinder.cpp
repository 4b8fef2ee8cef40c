#include "unwind/Unwinder.h"

#include "module/LoadedModule.h"

#include <elf.h>

#include <cstring>
#include <set>
#include <utility>

namespace stackpeek {

// Exported by libunwind but not declared in its public headers: the binary
// search over an .eh_frame_hdr table that libunwind's own unwinders use.
extern "C" int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip,
                                                  unw_dyn_info_t *di,
                                                  unw_proc_info_t *pi,
                                                  int need_unwind_info, void *arg);

namespace {

struct UnwindContext {
  Unwinder *unwinder;
  const user_regs_struct *regs;
};

UnwindContext &ctx(void *arg) { return *static_cast<UnwindContext *>(arg); }

// libunwind x86_64 register numbers -> user_regs_struct fields.
const unsigned long long *registerSlot(const user_regs_struct &r, unw_regnum_t reg) {
  switch (reg) {
  case UNW_X86_64_RAX: return &r.rax;
  case UNW_X86_64_RDX: return &r.rdx;
  case UNW_X86_64_RCX: return &r.rcx;
  case UNW_X86_64_RBX: return &r.rbx;
  case UNW_X86_64_RSI: return &r.rsi;
  case UNW_X86_64_RDI: return &r.rdi;
  case UNW_X86_64_RBP: return &r.rbp;
  case UNW_X86_64_RSP: return &r.rsp;
  case UNW_X86_64_R8: return &r.r8;
  case UNW_X86_64_R9: return &r.r9;
  case UNW_X86_64_R10: return &r.r10;
  case UNW_X86_64_R11: return &r.r11;
  case UNW_X86_64_R12: return &r.r12;
  case UNW_X86_64_R13: return &r.r13;
  case UNW_X86_64_R14: return &r.r14;
  case UNW_X86_64_R15: return &r.r15;
  case UNW_X86_64_RIP: return &r.rip;
  default: return nullptr;
  }
}

int findProcInfo(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
                 int needUnwindInfo, void *arg) {
  const Unwinder::EhFrameTable &table = ctx(arg).unwinder->tableFor(ip);
  if (!table.present)
    return -UNW_ENOINFO;
  auto info = table.info; // libunwind takes a non-const pointer
  return _Ux86_64_dwarf_search_unwind_table(as, ip, &info, pi, needUnwindInfo, arg);
}

void putUnwindInfo(unw_addr_space_t, unw_proc_info_t *, void *) {
  // Deliberately nothing: dwarf_search_unwind_table takes unwind_info from
  // libunwind's internal mempool, and libunwind's DWARF parser returns it
  // there itself (Gparser.c put_unwind_info). free() here, as
  // _UPT_put_unwind_info does, would hand mempool memory to malloc.
}

int getDynInfoListAddr(unw_addr_space_t, unw_word_t *, void *) {
  return -UNW_ENOINFO; // no JIT-registered unwind info support
}

int accessMem(unw_addr_space_t, unw_word_t addr, unw_word_t *val, int write, void *arg) {
  if (write)
    return -UNW_EINVAL; // we never write to the target
  return ctx(arg).unwinder->memory().read(addr, val, sizeof *val) ? 0 : -UNW_EINVAL;
}

int accessReg(unw_addr_space_t, unw_regnum_t reg, unw_word_t *val, int write, void *arg) {
  if (write)
    return -UNW_EINVAL;
  const unsigned long long *slot = registerSlot(*ctx(arg).regs, reg);
  if (!slot)
    return -UNW_EBADREG;
  *val = *slot;
  return 0;
}

int accessFpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t *, int, void *) {
  return -UNW_EBADREG;
}

int resume(unw_addr_space_t, unw_cursor_t *, void *) { return -UNW_EINVAL; }

int getProcName(unw_addr_space_t, unw_word_t, char *, size_t, unw_word_t *, void *) {
  return -UNW_ENOINFO; // symbolization is done by LLVM, after the walk
}

unw_accessors_t gAccessors = {findProcInfo, putUnwindInfo, getDynInfoListAddr,
                              accessMem,    accessReg,     accessFpreg,
                              resume,       getProcName};

// Decodes a DWARF EH pointer of the encodings .eh_frame_hdr uses in practice.
// Returns false for anything else.
bool readEncoded(MemorySource &mem, uint64_t &cursor, uint8_t enc, uint64_t hdrAddr,
                 uint64_t &out) {
  if (enc == 0xff) // DW_EH_PE_omit
    return false;
  uint64_t base = 0;
  switch (enc & 0x70) {
  case 0x00: break;                 // absptr
  case 0x10: base = cursor; break;  // pcrel
  case 0x30: base = hdrAddr; break; // datarel (relative to .eh_frame_hdr)
  default: return false;
  }
  int64_t value = 0;
  switch (enc & 0x0f) {
  case 0x03: { uint32_t v; if (!mem.read(cursor, &v, 4)) return false; value = v; cursor += 4; break; }
  case 0x0b: { int32_t v; if (!mem.read(cursor, &v, 4)) return false; value = v; cursor += 4; break; }
  case 0x04: case 0x0c: case 0x00: {
    uint64_t v; if (!mem.read(cursor, &v, 8)) return false; value = static_cast<int64_t>(v); cursor += 8; break; }
  default: return false;
  }
  out = base + static_cast<uint64_t>(value);
  return true;
}

} // namespace

Unwinder::Unwinder(const std::vector<MapEntry> &maps, MemorySource &memory)
    : maps_(maps), memory_(memory) {
  addressSpace_ = unw_create_addr_space(&gAccessors, 0);
  unw_set_caching_policy(addressSpace_, UNW_CACHE_GLOBAL);
}

Unwinder::~Unwinder() { unw_destroy_addr_space(addressSpace_); }

const Unwinder::EhFrameTable &Unwinder::tableFor(uint64_t ip) {
  const MapEntry *mapping = findMapping(maps_, ip);
  if (!mapping || !mapping->executable())
    return none_;
  const MapEntry *base = loadStartOf(maps_, *mapping);
  if (!base)
    return none_;
  auto it = tables_.find(base->start);
  if (it == tables_.end())
    it = tables_.emplace(base->start, loadTable(*base)).first;
  return it->second;
}

Unwinder::EhFrameTable Unwinder::loadTable(const MapEntry &base) {
  EhFrameTable table;
  Elf64_Ehdr ehdr;
  if (!memory_.read(base.start, &ehdr, sizeof ehdr) ||
      std::memcmp(ehdr.e_ident, ELFMAG, SELFMAG) != 0 ||
      ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_phentsize != sizeof(Elf64_Phdr) ||
      ehdr.e_phnum == 0 || ehdr.e_phnum > 512)
    return table;
  std::vector<Elf64_Phdr> phdrs(ehdr.e_phnum);
  if (!memory_.read(base.start + ehdr.e_phoff, phdrs.data(), phdrs.size() * sizeof(Elf64_Phdr)))
    return table;

  const Elf64_Phdr *ehFrameHdr = nullptr;
  for (const Elf64_Phdr &ph : phdrs)
    if (ph.p_type == PT_GNU_EH_FRAME)
      ehFrameHdr = &ph;
  std::vector<LoadSegment> loads = loadSegments(llvm::ArrayRef<Elf64_Phdr>(phdrs));
  uint64_t textLo = UINT64_MAX, textHi = 0;
  for (const LoadSegment &seg : loads)
    if (seg.executable) {
      textLo = std::min<uint64_t>(textLo, seg.vaddr);
      textHi = std::max<uint64_t>(textHi, seg.vaddr + seg.memsz);
    }
  std::optional<uint64_t> loadBiasOfBase = loadBias(base, loads);
  if (!loadBiasOfBase || !ehFrameHdr || textLo >= textHi)
    return table;
  uint64_t bias = *loadBiasOfBase;

  // .eh_frame_hdr: version, eh_frame_ptr_enc, fde_count_enc, table_enc, then
  // the encoded eh_frame pointer, the encoded FDE count and the sorted table.
  uint64_t hdr = bias + ehFrameHdr->p_vaddr;
  uint8_t head[4];
  if (!memory_.read(hdr, head, 4) || head[0] != 1)
    return table;
  uint64_t cursor = hdr + 4, ehFramePtr = 0, fdeCount = 0;
  if (!readEncoded(memory_, cursor, head[1], hdr, ehFramePtr) ||
      !readEncoded(memory_, cursor, head[2], hdr, fdeCount))
    return table;
  // libunwind's table search understands only datarel|sdata4 entries, which
  // is what every linker emits.
  if (head[3] != 0x3b || fdeCount == 0 || fdeCount > (64u << 20))
    return table;

  table.present = true;
  unw_dyn_info_t &di = table.info;
  di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
  di.start_ip = bias + textLo;
  di.end_ip = bias + textHi;
  di.gp = 0;
  di.u.rti.name_ptr = 0;
  di.u.rti.segbase = hdr;
  di.u.rti.table_data = cursor;
  // Length in unw_word_t units; each entry is two int32s = one word.
  di.u.rti.table_len = fdeCount * 8 / sizeof(unw_word_t);
  return table;
}

UnwindResult Unwinder::unwind(const user_regs_struct &regs, size_t maxFrames) {
  UnwindResult result;
  UnwindContext context{this, &regs};
  unw_cursor_t cursor;
  if (int rc = unw_init_remote(&cursor, addressSpace_, &context); rc != 0) {
    result.frames.push_back({regs.rip, regs.rsp, false});
    result.stopReason = std::string("cannot start unwinding: ") + unw_strerror(rc);
    return result;
  }
  std::set<std::pair<uint64_t, uint64_t>> seen;
  while (true) {
    unw_word_t ip = 0, sp = 0;
    unw_get_reg(&cursor, UNW_REG_IP, &ip);
    unw_get_reg(&cursor, UNW_REG_SP, &sp);
    if (ip == 0)
      break; // the outermost frame marks the end with a null return address
    if (result.frames.size() >= maxFrames) {
      result.stopReason = "stopped after " + std::to_string(maxFrames) + " frames (depth limit)";
      break;
    }
    if (!seen.insert({ip, sp}).second) {
      result.stopReason = "unwinding stopped: a frame repeats (corrupt or looping stack)";
      break;
    }
    const MapEntry *mapping = findMapping(maps_, ip);
    if (!result.frames.empty() && (!mapping || !mapping->executable())) {
      result.stopReason = "unwinding stopped: return address is not in mapped code";
      break;
    }
    result.frames.push_back({ip, sp, unw_is_signal_frame(&cursor) > 0});
    int step = unw_step(&cursor);
    if (step == 0)
      break;
    if (step < 0) {
      result.stopReason = std::string("unwinding stopped: ") + unw_strerror(step);
      break;
    }
  }
  return result;
}

} // namespace stackpeek
