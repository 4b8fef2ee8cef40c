// Object readers: strings, bytes, ints, dicts, instance dicts. See Objects.h
// for the layouts; offsets come from the Layout, the remaining constants
// (entry sizes, index widths, pre-header words) are fixed by CPython's
// dictobject.c / pycore_dict.h / pycore_object.h of each version family.
#include "python/objects/Objects.h"

#include "python/layout/RemoteStruct.h"

namespace stackpeek::python {

std::string hexAddress(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)v);
  return buf;
}

namespace {

llvm::Error fail(const char *fmt, unsigned long long v = 0) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), fmt, v);
}

llvm::Expected<uint64_t> readPointer(MemorySource &mem, uint64_t addr) {
  return mem.readValue<uint64_t>(addr);
}

} // namespace

StrState decodeStrState(const Layout &l, uint32_t state) {
  unsigned at = l.unicodeKindBit;
  return {(state >> at) & 7, bool((state >> (at + 3)) & 1), bool((state >> (at + 4)) & 1)};
}

namespace {

// PEP 393 str: state bits are interned:2, kind:3, compact:1, ascii:1
// (free-threaded 3.14+: interned is a whole byte, see Layout::unicodeKindBit).
llvm::Expected<std::string> readUnicode3(MemorySource &mem, const Layout &l,
                                         uint64_t addr) {
  // Only the ASCII header is certainly there: a short ASCII str may end
  // right after it, at the end of a mapping.
  auto obj = RemoteStruct::read(mem, addr, l.asciiObjectSize);
  if (!obj)
    return obj.takeError();
  int64_t length = obj->get<int64_t>(l.unicodeLength).value_or(-1);
  StrState st = decodeStrState(l, obj->get<uint32_t>(l.unicodeState).value_or(0));
  unsigned kind = st.kind;
  bool compact = st.compact, ascii = st.ascii;
  if (length < 0 || size_t(length) > kMaxStringBytes)
    return fail("implausible str length %lld", (unsigned long long)length);
  if (kind != 1 && kind != 2 && kind != 4)
    return fail("str of unknown kind %llu", kind);
  uint64_t data;
  if (compact && ascii) {
    data = addr + l.asciiObjectSize;
  } else if (compact) {
    data = addr + l.compactUnicodeSize;
  } else { // legacy object: separate buffer at data.any
    auto any = mem.readValue<uint64_t>(addr + l.compactUnicodeSize);
    if (!any)
      return any.takeError();
    data = *any;
  }
  if (data == 0)
    return fail("str without data (not ready)");
  std::vector<uint8_t> bytes(size_t(length) * kind);
  if (llvm::Error err = mem.readExact(data, bytes.data(), bytes.size()))
    return std::move(err);
  return codePointsToUtf8(bytes.data(), size_t(length), kind);
}

// 2.7 unicode: {length, Py_UNICODE *str}, Py_UNICODE = UCS4 or UCS2.
llvm::Expected<std::string> readUnicode2(MemorySource &mem, const Layout &l,
                                         uint64_t addr) {
  auto obj = RemoteStruct::read(mem, addr, l.py2UnicodeData + 8);
  if (!obj)
    return obj.takeError();
  int64_t length = obj->get<int64_t>(l.unicodeLength).value_or(-1);
  if (length < 0 || size_t(length) > kMaxStringBytes)
    return fail("implausible unicode length %lld", (unsigned long long)length);
  std::vector<uint8_t> bytes(size_t(length) * l.py2UnicodeWidth);
  if (llvm::Error err = mem.readExact(obj->pointer(l.py2UnicodeData),
                                      bytes.data(), bytes.size()))
    return std::move(err);
  return codePointsToUtf8(bytes.data(), size_t(length), l.py2UnicodeWidth);
}

// 3.6-3.10 PyDictKeysObject: dk_size at 8, dk_nentries at 32, indices at 40
// sized by dk_size; 3.11+: log2 sizes at 8/9, kind at 10, nentries at 24,
// indices at 32. Entries follow the indices.
struct KeysShape {
  uint64_t entries = 0;  // address of the first entry
  uint64_t count = 0;    // dk_nentries
  unsigned entrySize = 24;
  unsigned keyOffset = 8, valueOffset = 16;
};

llvm::Expected<KeysShape> keysShape(MemorySource &mem, const Layout &l,
                                    uint64_t keys) {
  auto k = RemoteStruct::read(mem, keys, 40);
  if (!k)
    return k.takeError();
  KeysShape s;
  if (l.dictModel == DictModel::Py311) {
    uint8_t log2Index = k->get<uint8_t>(9).value_or(0);
    uint8_t kind = k->get<uint8_t>(10).value_or(0);
    if (log2Index > 40)
      return fail("implausible dict index size");
    s.count = k->get<uint64_t>(24).value_or(0);
    s.entries = keys + 32 + (uint64_t(1) << log2Index);
    if (kind != 0) // DICT_KEYS_UNICODE / SPLIT: {key, value}
      s.entrySize = 16, s.keyOffset = 0, s.valueOffset = 8;
  } else {
    uint64_t size = k->get<uint64_t>(8).value_or(0);
    if (size == 0 || size > (1ull << 32))
      return fail("implausible dict size %llu", size);
    unsigned width = size <= 0xff ? 1 : size <= 0xffff ? 2 : 4;
    s.count = k->get<uint64_t>(32).value_or(0);
    s.entries = keys + 40 + size * width;
  }
  if (s.count > kMaxDictEntries)
    return fail("dict with %llu entries", s.count);
  return s;
}

// Iterates a keys object; `values` is the split-table values array (entry i's
// value is values[i]) or 0 for a combined table.
llvm::Error forEachKeysEntry(MemorySource &mem, const Layout &l, uint64_t keys,
                             uint64_t values, const DictVisitor &visit) {
  auto shape = keysShape(mem, l, keys);
  if (!shape)
    return shape.takeError();
  if (shape->count == 0)
    return llvm::Error::success();
  auto table = RemoteStruct::read(mem, shape->entries,
                                  shape->count * shape->entrySize);
  if (!table)
    return table.takeError();
  std::vector<uint64_t> splitValues;
  if (values) {
    splitValues.resize(shape->count);
    if (llvm::Error err =
            mem.readExact(values, splitValues.data(), shape->count * 8))
      return err;
  }
  for (uint64_t i = 0; i < shape->count; ++i) {
    uint64_t base = i * shape->entrySize;
    uint64_t key = table->pointer(base + shape->keyOffset);
    uint64_t value =
        values ? splitValues[i] : table->pointer(base + shape->valueOffset);
    if (key && value && !visit(key, value))
      break;
  }
  return llvm::Error::success();
}

// 2.7 PyDictObject: ma_mask at 32, ma_table at 40, entries {hash,key,value};
// deleted slots keep a dummy key with a NULL value.
llvm::Error forEachDictItem27(MemorySource &mem, const Layout &l,
                              uint64_t dict, const DictVisitor &visit) {
  auto d = RemoteStruct::read(mem, dict, l.dictValues + 8);
  if (!d)
    return d.takeError();
  uint64_t mask = d->pointer(l.dictKeys);
  if (mask >= kMaxDictEntries * 4)
    return fail("dict with mask %llu", mask);
  auto table = RemoteStruct::read(mem, d->pointer(l.dictValues), (mask + 1) * 24);
  if (!table)
    return table.takeError();
  for (uint64_t i = 0; i <= mask; ++i) {
    uint64_t key = table->pointer(i * 24 + 8), value = table->pointer(i * 24 + 16);
    if (key && value && !visit(key, value))
      break;
  }
  return llvm::Error::success();
}

// Instance dict as (dict) or (keys, values) of a split/inline table.
struct InstanceDict {
  uint64_t dict = 0;
  uint64_t keys = 0, values = 0;
};

llvm::Expected<InstanceDict> instanceDict(MemorySource &mem, const Layout &l,
                                          uint64_t obj) {
  auto type = readPointer(mem, obj + l.obType);
  if (!type)
    return type.takeError();
  auto t = RemoteStruct::read(
      mem, *type, std::max<uint32_t>(l.tpDictOffset, l.htCachedKeys.value_or(0)) + 8);
  if (!t)
    return t.takeError();
  uint64_t flags = t->pointer(l.tpFlags);
  InstanceDict out;
  bool managed = l.instanceDict != InstanceDictModel::TypeDictOffset &&
                 (flags & kTpFlagsManagedDict);
  if (!managed) {
    int64_t offset = t->get<int64_t>(l.tpDictOffset).value_or(0);
    if (offset <= 0 || offset > 4096)
      return out; // no __dict__ slot (or a var-sized object: unsupported)
    auto dict = readPointer(mem, obj + offset);
    if (!dict)
      return dict.takeError();
    out.dict = *dict;
    return out;
  }
  uint64_t cachedKeys = l.htCachedKeys ? t->pointer(*l.htCachedKeys) : 0;
  switch (l.instanceDict) {
  case InstanceDictModel::Managed311: {
    auto values = readPointer(mem, obj - 32);
    if (!values)
      return values.takeError();
    if (*values) {
      out.keys = cachedKeys, out.values = *values;
      return out;
    }
    auto dict = readPointer(mem, obj - 24);
    if (!dict)
      return dict.takeError();
    out.dict = *dict;
    return out;
  }
  case InstanceDictModel::DictOrValues312: {
    auto word = readPointer(mem, obj - 24);
    if (!word)
      return word.takeError();
    if (*word & 1)
      out.keys = cachedKeys, out.values = *word + 1;
    else
      out.dict = *word;
    return out;
  }
  case InstanceDictModel::Inline313: {
    auto dict = readPointer(mem, obj - l.managedDictBefore);
    if (!dict)
      return dict.takeError();
    if (*dict || !(flags & kTpFlagsInlineValues)) {
      out.dict = *dict;
      return out;
    }
    int64_t basic = t->get<int64_t>(l.tpBasicSize).value_or(0);
    auto valid = mem.readValue<uint8_t>(obj + basic + 3);
    if (!valid)
      return valid.takeError();
    if (*valid)
      out.keys = cachedKeys, out.values = obj + basic + l.dictValuesArray;
    return out;
  }
  case InstanceDictModel::TypeDictOffset:
    break;
  }
  return out;
}

} // namespace

std::string codePointsToUtf8(const uint8_t *data, size_t length,
                             unsigned kind) {
  std::string out;
  out.reserve(length);
  for (size_t i = 0; i < length; ++i) {
    uint32_t cp = 0;
    if (kind == 1)
      cp = data[i];
    else if (kind == 2)
      cp = uint32_t(data[2 * i]) | uint32_t(data[2 * i + 1]) << 8;
    else
      cp = uint32_t(data[4 * i]) | uint32_t(data[4 * i + 1]) << 8 |
           uint32_t(data[4 * i + 2]) << 16 | uint32_t(data[4 * i + 3]) << 24;
    if (cp >= 0xDC80 && cp <= 0xDCFF)
      out += char(cp - 0xDC00); // surrogateescape'd raw byte
    else if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      appendUtf8(out, 0xFFFD);
    else
      appendUtf8(out, cp);
  }
  return out;
}

llvm::Expected<uint64_t> typeFlags(MemorySource &mem, const Layout &l,
                                   uint64_t addr) {
  auto type = readPointer(mem, addr + l.obType);
  if (!type)
    return type.takeError();
  return mem.readValue<uint64_t>(*type + l.tpFlags);
}

llvm::Expected<std::string> typeName(MemorySource &mem, const Layout &l,
                                     uint64_t addr) {
  auto type = readPointer(mem, addr + l.obType);
  if (!type)
    return type.takeError();
  auto name = readPointer(mem, *type + l.tpName);
  if (!name)
    return name.takeError();
  return mem.readCString(*name, 128);
}

llvm::Expected<std::string> readString(MemorySource &mem, const Layout &l,
                                       uint64_t addr) {
  if (addr == 0)
    return fail("NULL str");
  auto flags = typeFlags(mem, l, addr);
  if (!flags)
    return flags.takeError();
  if (*flags & kTpFlagsUnicode)
    return l.stringModel == StringModel::Py2 ? readUnicode2(mem, l, addr)
                                             : readUnicode3(mem, l, addr);
  if (l.stringModel == StringModel::Py2 && (*flags & kTpFlagsBytes)) {
    auto bytes = readBytes(mem, l, addr, kMaxStringBytes);
    if (!bytes)
      return bytes.takeError();
    return std::string(bytes->begin(), bytes->end());
  }
  return fail("object at 0x%llx is not a str", addr);
}

llvm::Expected<std::vector<uint8_t>> readBytes(MemorySource &mem,
                                               const Layout &l, uint64_t addr,
                                               size_t maxLen) {
  if (addr == 0)
    return fail("NULL bytes");
  auto size = mem.readValue<int64_t>(addr + l.bytesSize);
  if (!size)
    return size.takeError();
  if (*size < 0 || uint64_t(*size) > maxLen)
    return fail("implausible bytes length %lld", (unsigned long long)*size);
  std::vector<uint8_t> out(*size);
  if (llvm::Error err = mem.readExact(addr + l.bytesData, out.data(), out.size()))
    return std::move(err);
  return out;
}

llvm::Expected<uint64_t> readUnsignedInt(MemorySource &mem, const Layout &l,
                                         uint64_t addr) {
  auto flags = typeFlags(mem, l, addr);
  if (!flags)
    return flags.takeError();
  if (l.intModel == IntModel::Py2Int && (*flags & kTpFlagsInt))
    return mem.readValue<uint64_t>(addr + 16); // PyIntObject.ob_ival
  if (!(*flags & kTpFlagsLong))
    return fail("object at 0x%llx is not an int", addr);
  auto header = mem.readValue<int64_t>(addr + l.intHeader);
  if (!header)
    return header.takeError();
  int64_t digits;
  if (l.intModel == IntModel::LvTag) {
    if ((*header & 3) == 2)
      return fail("negative int");
    digits = int64_t(uint64_t(*header) >> 3);
  } else {
    if (*header < 0)
      return fail("negative int");
    digits = *header;
  }
  if (digits > 3)
    return fail("int wider than 64 bits");
  uint32_t d[3] = {0, 0, 0};
  if (llvm::Error err = mem.readExact(addr + l.intDigits, d, digits * 4))
    return std::move(err);
  // 30-bit digits (every supported build; see sys.int_info).
  return uint64_t(d[0]) | uint64_t(d[1]) << 30 | uint64_t(d[2]) << 60;
}

llvm::Error forEachDictItem(MemorySource &mem, const Layout &l,
                            uint64_t dictAddr, const DictVisitor &visit) {
  if (dictAddr == 0)
    return fail("NULL dict");
  if (l.dictModel == DictModel::Py27)
    return forEachDictItem27(mem, l, dictAddr, visit);
  auto d = RemoteStruct::read(mem, dictAddr, l.dictValues + 8);
  if (!d)
    return d.takeError();
  uint64_t values = d->pointer(l.dictValues);
  return forEachKeysEntry(mem, l, d->pointer(l.dictKeys),
                          values ? values + l.dictValuesArray : 0, visit);
}

// A visitor for forEachDictItem / forEachKeysEntry that stops at the entry
// whose key is the str `key` and stores its value in `found`. Non-str keys
// are skipped.
static auto findStringKey(MemorySource &mem, const Layout &l, const std::string &key,
                          uint64_t &found) {
  return [&mem, &l, &key, &found](uint64_t k, uint64_t v) {
    auto s = readString(mem, l, k);
    if (!s) {
      llvm::consumeError(s.takeError());
      return true;
    }
    if (*s != key)
      return true;
    found = v;
    return false;
  };
}

llvm::Expected<uint64_t> dictLookupString(MemorySource &mem, const Layout &l,
                                          uint64_t dictAddr,
                                          const std::string &key) {
  uint64_t found = 0;
  llvm::Error err = forEachDictItem(mem, l, dictAddr, findStringKey(mem, l, key, found));
  if (err)
    return std::move(err);
  return found;
}

llvm::Expected<std::vector<uint64_t>>
instanceAttributes(MemorySource &mem, const Layout &l, uint64_t objAddr,
                   const std::vector<std::string> &names) {
  std::vector<uint64_t> found(names.size(), 0);
  size_t missing = names.size();
  // One pass over the entries, each key read once, for every name wanted.
  DictVisitor visit = [&](uint64_t k, uint64_t v) {
    auto s = readString(mem, l, k);
    if (!s) {
      llvm::consumeError(s.takeError());
      return true;
    }
    for (size_t i = 0; i < names.size(); ++i)
      if (!found[i] && names[i] == *s) {
        found[i] = v;
        --missing;
      }
    return missing > 0;
  };
  auto where = instanceDict(mem, l, objAddr);
  if (!where)
    return where.takeError();
  llvm::Error err = llvm::Error::success();
  if (where->dict)
    err = forEachDictItem(mem, l, where->dict, visit);
  else if (where->keys && where->values)
    err = forEachKeysEntry(mem, l, where->keys, where->values, visit);
  if (err)
    return std::move(err);
  return found;
}

llvm::Expected<uint64_t> instanceAttribute(MemorySource &mem, const Layout &l,
                                           uint64_t objAddr,
                                           const std::string &name) {
  auto found = instanceAttributes(mem, l, objAddr, {name});
  if (!found)
    return found.takeError();
  return found->front();
}

} // namespace stackpeek::python
