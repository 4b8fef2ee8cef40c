// GnuDemangle: LLVM's Itanium parser with GNU printing for closure types,
// unnamed types and clone suffixes (see GnuDemangle.h for why).
//
// The parser builds every node through its allocator's makeNode<T>; ours
// builds, for the three node kinds we print differently, a node of our own
// that prints the GNU way, and every other node unchanged. Closure and
// unnamed types are subclasses of LLVM's nodes, so code in the parser that
// checks a node's kind and casts it still finds what it expects. LLVM's
// DotSuffix is final and never cast, so its replacement is a plain node.
//
// GNU facts relied on (libiberty's cp-demangle.c, checked against c++filt):
//  - a closure is "{lambda(PARAMS)#N}", an unnamed type "{unnamed type#N}",
//    where N is 1 without a discriminator and discriminator + 2 with one;
//  - a clone suffix is split into clones, each "." then [a-z0-9_]+ then any
//    number of "." digits, printed as " [clone .NAME]" one after another.
#include "symbolize/GnuDemangle.h"

#include <cctype>
#include <cstdlib>

#include "llvm/Demangle/Demangle.h"
#include "llvm/Demangle/ItaniumDemangle.h"
#include "llvm/Support/Allocator.h"

namespace stackpeek {

namespace {

namespace id = llvm::itanium_demangle;

// The mangling's discriminator as GNU's ordinal: "" -> 1, "0" -> 2, ...
// A discriminator too long to be a number is printed as it is, plus the step.
void printOrdinal(id::OutputBuffer &out, id::StringView discriminator) {
  if (discriminator.empty()) {
    out += "1";
    return;
  }
  if (discriminator.size() > 18) {
    out += discriminator;
    out += "+2";
    return;
  }
  uint64_t value = 0;
  for (char c : discriminator)
    value = value * 10 + uint64_t(c - '0');
  out << value + 2;
}

class GnuClosureTypeName final : public id::ClosureTypeName {
public:
  GnuClosureTypeName(id::NodeArray templateParams, id::NodeArray params,
                     id::StringView discriminator)
      : ClosureTypeName(templateParams, params, discriminator),
        discriminator_(discriminator) {}

  void printLeft(id::OutputBuffer &out) const override {
    out += "{lambda";
    printDeclarator(out);
    out += "#";
    printOrdinal(out, discriminator_);
    out += "}";
  }

private:
  id::StringView discriminator_;
};

class GnuUnnamedTypeName final : public id::UnnamedTypeName {
public:
  explicit GnuUnnamedTypeName(id::StringView discriminator)
      : UnnamedTypeName(discriminator), discriminator_(discriminator) {}

  void printLeft(id::OutputBuffer &out) const override {
    out += "{unnamed type#";
    printOrdinal(out, discriminator_);
    out += "}";
  }

private:
  id::StringView discriminator_;
};

bool isCloneNameChar(char c) {
  return std::islower(static_cast<unsigned char>(c)) ||
         std::isdigit(static_cast<unsigned char>(c)) || c == '_';
}

bool isDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)); }

// Length of the clone at the start of `s` (".isra.0" in ".isra.0.cold"), or
// 0 if `s` does not start with one.
size_t cloneLength(id::StringView s) {
  const char *p = s.begin(), *end = s.end();
  if (end - p < 2 || *p != '.' || !isCloneNameChar(p[1]))
    return 0;
  p += 2;
  while (p != end && isCloneNameChar(*p))
    ++p;
  while (end - p >= 2 && *p == '.' && isDigit(p[1])) {
    p += 2;
    while (p != end && isDigit(*p))
      ++p;
  }
  return size_t(p - s.begin());
}

class GnuCloneSuffix final : public id::Node {
public:
  GnuCloneSuffix(const id::Node *prefix, id::StringView suffix)
      : Node(KDotSuffix), prefix_(prefix), suffix_(suffix) {}

  template <typename Fn> void match(Fn F) const { F(prefix_, suffix_); }

  void printLeft(id::OutputBuffer &out) const override {
    prefix_->print(out);
    id::StringView rest = suffix_;
    while (!rest.empty()) {
      // Text that is not a clone (GNU would refuse the whole name) is kept
      // as one last clone rather than lost.
      size_t n = cloneLength(rest);
      if (n == 0)
        n = rest.size();
      out += " [clone ";
      out += id::StringView(rest.begin(), rest.begin() + n);
      out += "]";
      rest = id::StringView(rest.begin() + n, rest.end());
    }
  }

private:
  const id::Node *prefix_;
  id::StringView suffix_;
};

template <typename T> struct GnuSpelling { using type = T; };
template <> struct GnuSpelling<id::ClosureTypeName> { using type = GnuClosureTypeName; };
template <> struct GnuSpelling<id::UnnamedTypeName> { using type = GnuUnnamedTypeName; };
template <> struct GnuSpelling<id::DotSuffix> { using type = GnuCloneSuffix; };

class GnuNodeAllocator {
public:
  void reset() { arena_.Reset(); }

  template <typename T, typename... Args> id::Node *makeNode(Args &&...args) {
    using Built = typename GnuSpelling<T>::type;
    return new (arena_.Allocate(sizeof(Built), alignof(Built)))
        Built(std::forward<Args>(args)...);
  }

  void *allocateNodeArray(size_t count) {
    return arena_.Allocate(sizeof(id::Node *) * count, alignof(id::Node *));
  }

private:
  llvm::BumpPtrAllocator arena_;
};

using GnuParser = id::ManglingParser<GnuNodeAllocator>;

} // namespace

std::string demangleGnuStyle(std::string_view name) {
  if (name.size() < 2 || name.substr(0, 2) != "_Z")
    return llvm::demangle(std::string(name));
  GnuParser parser(name.data(), name.data() + name.size());
  id::Node *ast = parser.parse();
  id::OutputBuffer out;
  if (!ast || !id::initializeOutputBuffer(nullptr, nullptr, out, 1024))
    return llvm::demangle(std::string(name));
  ast->print(out);
  std::string result(out.getBuffer(), out.getCurrentPosition());
  std::free(out.getBuffer());
  return result;
}

} // namespace stackpeek
