// PprofWriter: the gzipped profile.proto that `go tool pprof` reads.
//
// Domain facts (google/pprof proto/profile.proto): the file is a gzipped
// protobuf `Profile` message. Protobuf wire format: each field is a key
// varint (field_number << 3 | wire_type) followed by a varint (wire type 0)
// or by a varint length and that many bytes (wire type 2: strings,
// embedded messages, and "packed" repeated integers, which are varints
// back to back). Varints are little-endian base-128, high bit = "more".
// Strings are indexes into Profile.string_table, whose entry 0 must be "".
// Location and function ids start at 1 (0 means "none"); a sample's
// location_ids are leaf (innermost) first, as our stacks are.
//
// Mapping: every frame is one Location (id = FrameId + 1) with one Line
// (function + line); functions are deduplicated by (name, file); native
// modules become Mappings marked has_functions so pprof does not try to
// symbolize. Samples are aggregated per (stack, pid, tid) with values
// [samples/count, wall/nanoseconds] and pid/tid/thread labels. There are
// no addresses (the Profile keeps none), so address is 0.
#include <map>

#include <libdeflate.h>

#include "profile/ProfileWriterSupport.h"

namespace stackpeek::profile_writer {

namespace {

// Field numbers from profile.proto.
namespace field {
enum Profile { SampleType = 1, Sample = 2, Mapping = 3, Location = 4, Function = 5,
               StringTable = 6, DurationNanos = 10, PeriodType = 11, Period = 12, Comment = 13 };
enum ValueType { Type = 1, Unit = 2 };
enum Sample { LocationId = 1, Value = 2, Label = 3 };
enum Label { Key = 1, Str = 2, Num = 3 };
enum Mapping { MappingId = 1, MappingFilename = 5, HasFunctions = 7 };
enum Location { LocationIdField = 1, LocationMappingId = 2, LocationLine = 4 };
enum Line { LineFunctionId = 1, LineLine = 2 };
enum Function { FunctionId = 1, FunctionName = 2, SystemName = 3, Filename = 4 };
} // namespace field

// A protobuf message under construction.
class ProtoMessage {
public:
  void uint(int fieldNumber, uint64_t v) { key(fieldNumber, 0), varint(v); }
  void bytes(int fieldNumber, llvm::StringRef data) {
    key(fieldNumber, 2), varint(data.size()), buf_.append(data.data(), data.size());
  }
  void message(int fieldNumber, const ProtoMessage &m) { bytes(fieldNumber, m.buf_); }
  void packed(int fieldNumber, const std::vector<uint64_t> &values) {
    ProtoMessage body;
    for (uint64_t v : values)
      body.varint(v);
    message(fieldNumber, body);
  }
  const std::string &data() const { return buf_; }

private:
  void key(int fieldNumber, int wireType) { varint(uint64_t(fieldNumber) << 3 | wireType); }
  void varint(uint64_t v) {
    for (; v >= 0x80; v >>= 7)
      buf_ += static_cast<char>((v & 0x7f) | 0x80);
    buf_ += static_cast<char>(v);
  }
  std::string buf_;
};

// profile.proto's string_table: index 0 is "".
class StringTable {
public:
  StringTable() { index(""); }
  uint64_t index(const std::string &s) {
    auto [it, inserted] = ids_.try_emplace(s, strings_.size());
    if (inserted)
      strings_.push_back(s);
    return it->second;
  }
  const std::vector<std::string> &strings() const { return strings_; }

private:
  std::map<std::string, uint64_t> ids_;
  std::vector<std::string> strings_;
};

class PprofBuilder {
public:
  explicit PprofBuilder(const Profile &profile) : p_(profile) {}
  std::string build();

private:
  ProtoMessage valueType(const char *type, const char *unit);
  uint64_t mappingId(const std::string &module);
  uint64_t functionId(const std::string &name, const std::string &file);
  void addLocations();
  void addSamples();
  ProtoMessage label(const char *key, const std::string *str, int64_t num);

  const Profile &p_;
  StringTable strings_;
  ProtoMessage out_;
  std::map<std::string, uint64_t> mappings_;
  std::map<std::pair<std::string, std::string>, uint64_t> functions_;
};

ProtoMessage PprofBuilder::valueType(const char *type, const char *unit) {
  ProtoMessage m;
  m.uint(field::Type, strings_.index(type));
  m.uint(field::Unit, strings_.index(unit));
  return m;
}

uint64_t PprofBuilder::mappingId(const std::string &module) {
  auto [it, inserted] = mappings_.try_emplace(module, mappings_.size() + 1);
  if (inserted) {
    ProtoMessage m;
    m.uint(field::MappingId, it->second);
    m.uint(field::MappingFilename, strings_.index(plainText(module)));
    m.uint(field::HasFunctions, 1);
    out_.message(field::Mapping, m);
  }
  return it->second;
}

uint64_t PprofBuilder::functionId(const std::string &name, const std::string &file) {
  auto [it, inserted] = functions_.try_emplace({name, file}, functions_.size() + 1);
  if (inserted) {
    ProtoMessage m;
    m.uint(field::FunctionId, it->second);
    m.uint(field::FunctionName, strings_.index(name));
    m.uint(field::SystemName, strings_.index(name));
    m.uint(field::Filename, strings_.index(file));
    out_.message(field::Function, m);
  }
  return it->second;
}

void PprofBuilder::addLocations() {
  for (FrameId id = 0; id < p_.frames.size(); ++id) {
    const ProfileFrame &f = p_.frames[id];
    // Synthetic labels are shown whole; code frames as function + file,
    // as pprof users expect (pprof adds file:line itself).
    std::string name = f.synthetic ? plainLabel(p_, id) : plainText(f.function);
    ProtoMessage line;
    line.uint(field::LineFunctionId, functionId(name, plainText(f.file.value_or(""))));
    line.uint(field::LineLine, f.line.value_or(0));
    ProtoMessage loc;
    loc.uint(field::LocationIdField, id + 1);
    if (f.module && !f.synthetic)
      loc.uint(field::LocationMappingId, mappingId(*f.module));
    loc.message(field::LocationLine, line);
    out_.message(field::Location, loc);
  }
}

ProtoMessage PprofBuilder::label(const char *key, const std::string *str, int64_t num) {
  ProtoMessage m;
  m.uint(field::Key, strings_.index(key));
  if (str)
    m.uint(field::Str, strings_.index(*str));
  else
    m.uint(field::Num, static_cast<uint64_t>(num));
  return m;
}

void PprofBuilder::addSamples() {
  struct Totals { uint64_t count = 0, wallNs = 0; };
  std::map<std::tuple<StackId, pid_t, pid_t>, Totals> totals; // sorted: deterministic
  for (const ProfileSample &s : p_.samples) {
    Totals &t = totals[{s.stack, s.pid, s.tid}];
    ++t.count, t.wallNs += sampleWeightNs(p_, s);
  }
  std::map<std::pair<pid_t, pid_t>, std::string> names;
  for (const ProfileThread &t : p_.threads)
    names[{t.pid, t.tid}] = plainText(t.name);
  for (const auto &[key, t] : totals) {
    auto [stack, pid, tid] = key;
    std::vector<uint64_t> locations;
    for (FrameId f : p_.stacks[stack]) // innermost (leaf) first, as pprof wants
      locations.push_back(f + 1);
    ProtoMessage m;
    m.packed(field::LocationId, locations);
    m.packed(field::Value, {t.count, t.wallNs});
    m.message(field::Label, label("pid", nullptr, pid));
    m.message(field::Label, label("tid", nullptr, tid));
    if (auto it = names.find({pid, tid}); it != names.end() && !it->second.empty())
      m.message(field::Label, label("thread", &it->second, 0));
    out_.message(field::Sample, m);
  }
}

std::string PprofBuilder::build() {
  out_.message(field::SampleType, valueType("samples", "count"));
  out_.message(field::SampleType, valueType("wall", "nanoseconds"));
  addLocations();
  addSamples();
  out_.uint(field::DurationNanos, p_.durationNs);
  out_.message(field::PeriodType, valueType("wall", "nanoseconds"));
  out_.uint(field::Period, sampleWeightNs(p_, ProfileSample{}));
  out_.uint(field::Comment, strings_.index("recorded by stackpeek " STACKPEEK_VERSION));
  for (const std::string &s : strings_.strings()) // last: every index is known now
    out_.bytes(field::StringTable, s);
  return out_.data();
}

llvm::Expected<std::string> gzip(const std::string &data) {
  libdeflate_compressor *c = libdeflate_alloc_compressor(6);
  if (!c)
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "out of memory");
  std::string out(libdeflate_gzip_compress_bound(c, data.size()), '\0');
  size_t n = libdeflate_gzip_compress(c, data.data(), data.size(), out.data(), out.size());
  libdeflate_free_compressor(c);
  if (n == 0)
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "gzip compression failed");
  out.resize(n);
  return out;
}

} // namespace

llvm::Error writePprof(const Profile &profile, llvm::raw_ostream &out) {
  llvm::Expected<std::string> compressed = gzip(PprofBuilder(profile).build());
  if (!compressed)
    return compressed.takeError();
  out << *compressed;
  return llvm::Error::success();
}

} // namespace stackpeek::profile_writer
