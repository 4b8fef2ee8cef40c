// Reprs: reading objects out of target memory for their reprs. See Reprs.h
// for the rules and bounds, text/PythonLiterals.h for the formatting of
// each value; the offsets come from Layout (strings, bytes, dicts, ints)
// and DepthLayout (tuples, lists, sets, floats, exceptions).
#include "python/objects/Reprs.h"

#include <algorithm>

#include "python/objects/Objects.h"
#include "python/layout/RemoteStruct.h"
#include "text/PythonLiterals.h"

namespace stackpeek::python {

namespace {

std::string unreadable(uint64_t addr) { return "<unreadable " + hexAddress(addr) + ">"; }

using Kind = ReprReader::Kind;

Kind builtinKind(const std::string &name, uint64_t flags, bool py2) {
  if (flags & kTpFlagsHeapType)
    return flags & kTpFlagsBaseExc ? Kind::Exception : Kind::Other;
  static const std::pair<const char *, Kind> kNames[] = {
      {"NoneType", Kind::None}, {"bool", Kind::Bool},   {"int", Kind::Int},
      {"float", Kind::Float},   {"tuple", Kind::Tuple}, {"list", Kind::List},
      {"dict", Kind::Dict},     {"set", Kind::Set},     {"frozenset", Kind::FrozenSet},
  };
  for (const auto &[n, k] : kNames)
    if (name == n)
      return k;
  if (name == "str")
    return py2 ? Kind::Bytes : Kind::Str;
  if (py2 && name == "unicode")
    return Kind::Unicode2;
  if (py2 && name == "long")
    return Kind::Long2;
  if (!py2 && name == "bytes")
    return Kind::Bytes;
  if (flags & kTpFlagsBaseExc)
    return Kind::Exception;
  return Kind::Other;
}

// Builds one top-level repr: tracks the path (cycles), depth, the number
// of objects visited and the output size.
class Builder {
public:
  explicit Builder(ReprReader &r) : r_(r), mem_(r.memory()), l_(r.layout()),
                                    d_(r.depthLayout()), lim_(r.limits()) {}

  std::string run(uint64_t addr) {
    value(addr, 0);
    if (out_.size() > lim_.maxReprBytes) {
      size_t cut = lim_.maxReprBytes;
      while (cut > 0 && (uint8_t(out_[cut]) & 0xC0) == 0x80)
        --cut; // keep UTF-8 whole
      out_.resize(cut);
      out_ += "...";
    }
    return out_;
  }

private:
  bool full() const {
    return out_.size() > lim_.maxReprBytes || objects_ > lim_.maxObjects;
  }

  void value(uint64_t addr, size_t depth) {
    ++objects_;
    if (addr == 0) {
      out_ += "<NULL>";
      return;
    }
    const ReprReader::TypeInfo &t = r_.typeOf(addr);
    switch (t.kind) {
    case Kind::Unreadable: out_ += unreadable(addr); return;
    case Kind::None: out_ += "None"; return;
    case Kind::Bool: boolean(addr); return;
    case Kind::Int: case Kind::Long2: integer(addr, t.kind); return;
    case Kind::Float: floating(addr); return;
    case Kind::Str: case Kind::Unicode2: text(addr, t.kind); return;
    case Kind::Bytes: bytes(addr); return;
    case Kind::Tuple: case Kind::List: sequence(addr, t.kind, depth); return;
    case Kind::Dict: dict(addr, depth); return;
    case Kind::Set: case Kind::FrozenSet: set(addr, t, depth); return;
    case Kind::Exception: exception(addr, t, depth); return;
    case Kind::Other: break;
    }
    out_ += "<" + t.name + " object at " + hexAddress(addr) + ">";
  }

  void boolean(uint64_t addr) {
    // 2.7: PyIntObject.ob_ival; 3.x: a PyLongObject with 0 or 1 digit.
    auto v = mem_.readValue<int64_t>(addr + l_.intHeader);
    if (!v) {
      llvm::consumeError(v.takeError());
      out_ += unreadable(addr);
      return;
    }
    bool truth = l_.intModel == IntModel::LvTag ? (*v & 3) != 1 && (*v >> 3) != 0
                                                : *v != 0;
    out_ += truth ? "True" : "False";
  }

  void integer(uint64_t addr, Kind kind) {
    auto header = mem_.readValue<int64_t>(addr + l_.intHeader);
    if (!header) {
      llvm::consumeError(header.takeError());
      out_ += unreadable(addr);
      return;
    }
    if (l_.intModel == IntModel::Py2Int && kind == Kind::Int) {
      out_ += std::to_string(*header); // PyIntObject.ob_ival
      return;
    }
    bool negative;
    uint64_t ndigits;
    if (l_.intModel == IntModel::LvTag) {
      negative = (*header & 3) == 2;
      ndigits = uint64_t(*header) >> 3;
    } else {
      negative = *header < 0;
      ndigits = negative ? uint64_t(-(*header + 1)) + 1 : uint64_t(*header);
    }
    if (ndigits > lim_.maxIntDigits) {
      out_ += "<int of ~" + std::to_string(uint64_t(ndigits * 30 * 0.30103) + 1) +
              " digits>";
      return;
    }
    std::vector<uint32_t> digits(ndigits);
    if (ndigits && !mem_.read(addr + l_.intDigits, digits.data(), ndigits * 4)) {
      out_ += unreadable(addr);
      return;
    }
    std::string dec = digitsToDecimal(std::move(digits));
    out_ += (negative && dec != "0" ? "-" : "") + dec;
    if (kind == Kind::Long2)
      out_ += "L";
  }

  void floating(uint64_t addr) {
    auto v = mem_.readValue<double>(addr + d_.floatValue);
    if (!v) {
      llvm::consumeError(v.takeError());
      out_ += unreadable(addr);
      return;
    }
    out_ += floatRepr(*v);
  }

  // Reads at most maxStringChars code points; `total` is the full length.
  bool codePoints(uint64_t addr, Kind kind, std::vector<uint32_t> &cps,
                  uint64_t &total) {
    uint64_t data;
    unsigned width;
    auto hdr = RemoteStruct::read(mem_, addr, kind == Kind::Unicode2
                                                  ? l_.py2UnicodeData + 8
                                                  : l_.asciiObjectSize);
    if (!hdr) {
      llvm::consumeError(hdr.takeError());
      return false;
    }
    int64_t length = hdr->get<int64_t>(l_.unicodeLength).value_or(-1);
    if (length < 0 || length > (int64_t(1) << 40))
      return false;
    if (kind == Kind::Unicode2) {
      data = hdr->pointer(l_.py2UnicodeData);
      width = l_.py2UnicodeWidth;
    } else {
      StrState st = decodeStrState(l_, hdr->get<uint32_t>(l_.unicodeState).value_or(0));
      width = st.kind;
      bool compact = st.compact, ascii = st.ascii;
      if (width != 1 && width != 2 && width != 4)
        return false;
      if (compact)
        data = addr + (ascii ? l_.asciiObjectSize : l_.compactUnicodeSize);
      else if (auto any = mem_.readValue<uint64_t>(addr + l_.compactUnicodeSize))
        data = *any;
      else {
        llvm::consumeError(any.takeError());
        return false;
      }
    }
    total = uint64_t(length);
    size_t n = std::min<uint64_t>(total, lim_.maxStringChars);
    std::vector<uint8_t> raw(n * width);
    if (n && (data == 0 || !mem_.read(data, raw.data(), raw.size())))
      return false;
    cps.resize(n);
    for (size_t i = 0; i < n; ++i) {
      uint32_t cp = 0;
      for (unsigned b = 0; b < width; ++b)
        cp |= uint32_t(raw[i * width + b]) << (8 * b);
      cps[i] = cp;
    }
    return true;
  }

  void moreChars(uint64_t shown, uint64_t total) {
    if (total > shown)
      out_ += "...(" + std::to_string(total - shown) + " more chars)";
  }

  void text(uint64_t addr, Kind kind) {
    std::vector<uint32_t> cps;
    uint64_t total = 0;
    if (!codePoints(addr, kind, cps, total)) {
      out_ += unreadable(addr);
      return;
    }
    out_ += kind == Kind::Unicode2 ? unicodeRepr2(cps) : strRepr(cps);
    moreChars(cps.size(), total);
  }

  void bytes(uint64_t addr) {
    auto size = mem_.readValue<int64_t>(addr + l_.bytesSize);
    if (!size || *size < 0) {
      if (!size)
        llvm::consumeError(size.takeError());
      out_ += unreadable(addr);
      return;
    }
    size_t n = std::min<uint64_t>(uint64_t(*size), lim_.maxStringChars);
    std::vector<uint8_t> data(n);
    if (n && !mem_.read(addr + l_.bytesData, data.data(), n)) {
      out_ += unreadable(addr);
      return;
    }
    out_ += bytesRepr(data, l_.stringModel == StringModel::Py3);
    moreChars(n, uint64_t(*size));
  }

  // Whether to descend into a container: not on the current path (a cycle)
  // and not too deep. Otherwise prints CPython's "..." marker.
  bool enter(uint64_t addr, size_t depth, const char *marker) {
    if (depth >= lim_.maxDepth ||
        std::find(path_.begin(), path_.end(), addr) != path_.end()) {
      out_ += marker;
      return false;
    }
    path_.push_back(addr);
    return true;
  }

  void items(const std::vector<uint64_t> &addrs, size_t depth) {
    for (size_t i = 0; i < addrs.size(); ++i) {
      if (i)
        out_ += ", ";
      if (full()) {
        out_ += "...";
        return;
      }
      value(addrs[i], depth + 1);
    }
  }

  void more(uint64_t shown, uint64_t total) {
    if (total > shown)
      out_ += (shown ? ", ...(" : "...(") + std::to_string(total - shown) + " more)";
  }

  void sequence(uint64_t addr, Kind kind, size_t depth) {
    bool tuple = kind == Kind::Tuple;
    auto size = mem_.readValue<int64_t>(addr + d_.varSize);
    if (!size || *size < 0 || *size > (int64_t(1) << 40)) {
      if (!size)
        llvm::consumeError(size.takeError());
      out_ += unreadable(addr);
      return;
    }
    if (!enter(addr, depth, tuple ? "(...)" : "[...]"))
      return;
    uint64_t itemsAt = addr + d_.tupleItems;
    if (!tuple) {
      auto p = mem_.readValue<uint64_t>(addr + d_.listItems);
      itemsAt = p ? *p : 0;
      if (!p)
        llvm::consumeError(p.takeError());
    }
    size_t n = std::min<uint64_t>(uint64_t(*size), lim_.maxItems);
    std::vector<uint64_t> addrs(n);
    out_ += tuple ? "(" : "[";
    if (n && (itemsAt == 0 || !mem_.read(itemsAt, addrs.data(), n * 8)))
      out_ += unreadable(itemsAt);
    else
      items(addrs, depth);
    more(n, uint64_t(*size));
    if (tuple && *size == 1)
      out_ += ",";
    out_ += tuple ? ")" : "]";
    path_.pop_back();
  }

  void dict(uint64_t addr, size_t depth) {
    auto used = mem_.readValue<int64_t>(addr + l_.dictUsed);
    if (!used || *used < 0) {
      if (!used)
        llvm::consumeError(used.takeError());
      out_ += unreadable(addr);
      return;
    }
    if (!enter(addr, depth, "{...}"))
      return;
    std::vector<std::pair<uint64_t, uint64_t>> entries;
    llvm::Error err = forEachDictItem(mem_, l_, addr, [&](uint64_t k, uint64_t v) {
      entries.emplace_back(k, v);
      return entries.size() < lim_.maxItems;
    });
    out_ += "{";
    if (err) {
      llvm::consumeError(std::move(err));
      out_ += unreadable(addr);
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i)
        out_ += ", ";
      if (full()) {
        out_ += "...";
        break;
      }
      value(entries[i].first, depth + 1);
      out_ += ": ";
      value(entries[i].second, depth + 1);
    }
    more(entries.size(), uint64_t(*used));
    out_ += "}";
    path_.pop_back();
  }

  // Set tables: {key, hash} entries; a deleted slot holds the dummy key,
  // whose hash is -1 in 3.x and which is the str "<dummy key>" in 2.7.
  bool isDummy(uint64_t key, int64_t hash) {
    if (l_.stringModel == StringModel::Py3)
      return hash == -1;
    if (r_.typeOf(key).kind != Kind::Bytes)
      return false;
    char buf[12];
    return mem_.read(key + l_.bytesData, buf, 12) &&
           std::string(buf, 12) == std::string("<dummy key>\0", 12);
  }

  void set(uint64_t addr, const ReprReader::TypeInfo &t, size_t depth) {
    bool frozen = t.kind == Kind::FrozenSet, py2 = l_.stringModel == StringModel::Py2;
    auto s = RemoteStruct::read(mem_, addr, d_.setTable + 8);
    if (!s) {
      llvm::consumeError(s.takeError());
      out_ += unreadable(addr);
      return;
    }
    int64_t used = s->get<int64_t>(d_.setUsed).value_or(-1);
    uint64_t mask = s->pointer(d_.setMask), table = s->pointer(d_.setTable);
    if (used < 0 || mask > (uint64_t(1) << 32)) {
      out_ += unreadable(addr);
      return;
    }
    std::string name = frozen ? "frozenset" : "set";
    if (used == 0) {
      out_ += name + (py2 ? "([])" : "()");
      return;
    }
    if (!enter(addr, depth, (name + "(...)").c_str()))
      return;
    std::vector<uint64_t> keys;
    bool ok = true;
    constexpr size_t kChunk = 64;
    for (uint64_t slot = 0; slot <= mask && keys.size() < lim_.maxItems && ok;
         slot += kChunk) {
      size_t n = std::min<uint64_t>(kChunk, mask + 1 - slot);
      std::vector<uint64_t> raw(2 * n);
      ok = mem_.read(table + slot * 16, raw.data(), n * 16);
      for (size_t i = 0; ok && i < n && keys.size() < lim_.maxItems; ++i) {
        uint64_t key = raw[2 * i + d_.setEntryKey / 8];
        int64_t hash = int64_t(raw[2 * i + d_.setEntryHash / 8]);
        if (key && !isDummy(key, hash))
          keys.push_back(key);
      }
    }
    if (frozen || py2)
      out_ += name + "(";
    out_ += py2 ? "[" : "{";
    if (!ok)
      out_ += unreadable(table);
    items(keys, depth);
    more(keys.size(), uint64_t(used));
    out_ += py2 ? "]" : "}";
    if (frozen || py2)
      out_ += ")";
    path_.pop_back();
  }

  // BaseException.__repr__: Name(arg) for one argument, else Name(args...)
  // (3.x); 2.7 prints the args tuple as is: Name('a',).
  void exception(uint64_t addr, const ReprReader::TypeInfo &t, size_t depth) {
    auto args = mem_.readValue<uint64_t>(addr + d_.excArgs);
    if (!args || r_.typeOf(*args).kind != Kind::Tuple) {
      if (!args)
        llvm::consumeError(args.takeError());
      out_ += "<" + t.name + " object at " + hexAddress(addr) + ">";
      return;
    }
    std::string name = t.name.substr(t.name.rfind('.') + 1);
    out_ += name;
    auto n = mem_.readValue<int64_t>(*args + d_.varSize);
    if (n && *n == 1 && l_.stringModel == StringModel::Py3) {
      auto item = mem_.readValue<uint64_t>(*args + d_.tupleItems);
      if (item) {
        out_ += "(";
        value(*item, depth + 1);
        out_ += ")";
        return;
      }
      llvm::consumeError(item.takeError());
    } else if (!n) {
      llvm::consumeError(n.takeError());
    }
    value(*args, depth);
  }

  ReprReader &r_;
  MemorySource &mem_;
  const Layout &l_;
  const DepthLayout &d_;
  const ReprLimits &lim_;
  std::string out_;
  std::vector<uint64_t> path_;
  size_t objects_ = 0;
};

} // namespace

ReprReader::ReprReader(MemorySource &mem, const Layout &layout,
                       const DepthLayout &depth, ReprLimits limits)
    : mem_(mem), l_(layout), d_(depth), limits_(limits) {}

const ReprReader::TypeInfo &ReprReader::typeOf(uint64_t addr) {
  auto type = mem_.readValue<uint64_t>(addr + l_.obType);
  if (!type) {
    llvm::consumeError(type.takeError());
    return unreadable_;
  }
  auto it = types_.find(*type);
  if (it != types_.end())
    return it->second;
  TypeInfo info;
  auto t = RemoteStruct::read(mem_, *type, l_.tpFlags + 8);
  if (t) {
    auto name = mem_.readCString(t->pointer(l_.tpName), 256);
    if (name) {
      info.name = *name;
      info.flags = t->pointer(l_.tpFlags);
      info.kind = builtinKind(info.name, info.flags,
                              l_.stringModel == StringModel::Py2);
    } else {
      llvm::consumeError(name.takeError());
    }
  } else {
    llvm::consumeError(t.takeError());
  }
  return types_.emplace(*type, std::move(info)).first->second;
}

ValueRepr ReprReader::repr(uint64_t addr) {
  ValueRepr out;
  out.repr = Builder(*this).run(addr);
  if (addr) {
    const TypeInfo &t = typeOf(addr);
    if (t.kind != Kind::Unreadable)
      out.type = t.name;
  }
  return out;
}

std::string ReprReader::str(uint64_t addr) {
  if (addr == 0)
    return "";
  const TypeInfo &t = typeOf(addr);
  if (t.kind == Kind::Str || t.kind == Kind::Unicode2) {
    auto s = readString(mem_, l_, addr);
    if (s)
      return s->size() > limits_.maxReprBytes ? s->substr(0, limits_.maxReprBytes) + "..."
                                              : *s;
    llvm::consumeError(s.takeError());
  }
  if (t.kind == Kind::Bytes && l_.stringModel == StringModel::Py2) {
    auto b = readBytes(mem_, l_, addr, limits_.maxReprBytes);
    if (b)
      return std::string(b->begin(), b->end());
    llvm::consumeError(b.takeError());
  }
  return repr(addr).repr;
}

} // namespace stackpeek::python
