// pprof: the output is gunzipped and decoded here with a minimal protobuf
// reader (independent of the writer's encoder), then checked against
// profile.proto's rules: string_table[0] == "", ids from 1, sample types
// samples/count and wall/nanoseconds, location ids leaf first, every
// referenced id defined. `go tool pprof` reads the same file in
// tests/profile/check_formats.py.
#include <map>

#include <gtest/gtest.h>
#include <libdeflate.h>

#include "../profile/ProfileFixture.h"
#include "../profile/WriterTestSupport.h"

using namespace stackpeek;

namespace {

// One decoded message: field number -> values (varints, or bytes).
struct Message {
  std::multimap<int, uint64_t> ints;
  std::multimap<int, std::string> bytes;
  uint64_t one(int f) const { auto it = ints.find(f); return it == ints.end() ? 0 : it->second; }
  std::vector<std::string> all(int f) const {
    std::vector<std::string> out;
    for (auto [it, end] = bytes.equal_range(f); it != end; ++it)
      out.push_back(it->second);
    return out;
  }
};

uint64_t varint(const std::string &s, size_t &i) {
  uint64_t v = 0;
  for (int shift = 0; i < s.size(); shift += 7) {
    uint8_t b = s[i++];
    v |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80))
      return v;
  }
  ADD_FAILURE() << "truncated varint";
  return v;
}

Message decode(const std::string &s) {
  Message m;
  for (size_t i = 0; i < s.size();) {
    uint64_t key = varint(s, i);
    int field = key >> 3, wire = key & 7;
    if (wire == 0) {
      m.ints.emplace(field, varint(s, i));
    } else if (wire == 2) {
      uint64_t len = varint(s, i);
      EXPECT_LE(i + len, s.size());
      m.bytes.emplace(field, s.substr(i, len));
      i += len;
    } else {
      ADD_FAILURE() << "unexpected wire type " << wire;
      break;
    }
  }
  return m;
}

std::vector<uint64_t> packed(const std::string &s) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i < s.size();)
    out.push_back(varint(s, i));
  return out;
}

std::string gunzip(const std::string &gz) {
  libdeflate_decompressor *d = libdeflate_alloc_decompressor();
  std::string out(1 << 20, '\0');
  size_t n = 0;
  auto r = libdeflate_gzip_decompress(d, gz.data(), gz.size(), out.data(), out.size(), &n);
  libdeflate_free_decompressor(d);
  EXPECT_EQ(r, LIBDEFLATE_SUCCESS);
  out.resize(n);
  return out;
}

struct Decoded {
  Message profile;
  std::vector<std::string> strings;
  std::map<uint64_t, Message> locations, functions;
  std::string str(uint64_t i) const { return i < strings.size() ? strings[i] : "<bad index>"; }
};

Decoded read(const Profile &p) {
  Decoded d;
  d.profile = decode(gunzip(writer_test::writeToString(p, ProfileFormat::Pprof)));
  d.strings = d.profile.all(6);
  for (const std::string &l : d.profile.all(4)) {
    Message m = decode(l);
    d.locations[m.one(1)] = m;
  }
  for (const std::string &f : d.profile.all(5)) {
    Message m = decode(f);
    d.functions[m.one(1)] = m;
  }
  return d;
}

} // namespace

TEST(ProfilePprof, HeaderFields) {
  Profile p = fixture::makeProfile();
  Decoded d = read(p);
  ASSERT_FALSE(d.strings.empty());
  EXPECT_EQ(d.strings[0], "");
  std::vector<std::string> types = d.profile.all(1);
  ASSERT_EQ(types.size(), 2u);
  EXPECT_EQ(d.str(decode(types[0]).one(1)), "samples");
  EXPECT_EQ(d.str(decode(types[0]).one(2)), "count");
  EXPECT_EQ(d.str(decode(types[1]).one(1)), "wall");
  EXPECT_EQ(d.str(decode(types[1]).one(2)), "nanoseconds");
  Message period = decode(d.profile.all(11).at(0));
  EXPECT_EQ(d.str(period.one(1)), "wall");
  EXPECT_EQ(d.profile.one(12), 10'000'000u); // 1/100 Hz
  EXPECT_EQ(d.profile.one(10), p.durationNs);
}

TEST(ProfilePprof, LocationsAndFunctions) {
  Profile p = fixture::makeProfile();
  Decoded d = read(p);
  ASSERT_EQ(d.locations.size(), p.frames.size());
  for (FrameId id = 0; id < p.frames.size(); ++id) {
    ASSERT_TRUE(d.locations.count(id + 1)) << id;
    Message line = decode(d.locations[id + 1].all(4).at(0));
    const ProfileFrame &f = p.frames[id];
    EXPECT_EQ(line.one(2), f.line.value_or(0));
    ASSERT_TRUE(d.functions.count(line.one(1)));
    const Message &fn = d.functions[line.one(1)];
    std::string name = f.synthetic ? writer_test::expectedLabel(p, id)
                                   : escapeForTerminal(sanitizeUtf8(f.function));
    EXPECT_EQ(d.str(fn.one(2)), name);
    EXPECT_EQ(d.str(fn.one(4)), escapeForTerminal(sanitizeUtf8(f.file.value_or(""))));
    EXPECT_EQ(d.locations[id + 1].one(2) != 0, f.module.has_value() && !f.synthetic);
  }
  EXPECT_FALSE(d.functions.count(0)); // ids start at 1
}

TEST(ProfilePprof, SamplesAggregatePerStackAndThread) {
  Profile p = fixture::makeProfile();
  std::map<std::tuple<std::vector<uint64_t>, int64_t>, std::pair<uint64_t, uint64_t>> want;
  for (const ProfileSample &s : p.samples) {
    std::vector<uint64_t> ids;
    for (FrameId f : p.stacks[s.stack]) // leaf first
      ids.push_back(f + 1);
    auto &[count, wall] = want[{ids, s.tid}];
    ++count, wall += s.weightNs;
  }
  Decoded d = read(p);
  decltype(want) got;
  for (const std::string &raw : d.profile.all(2)) {
    Message s = decode(raw);
    std::vector<uint64_t> values = packed(s.all(2).at(0));
    ASSERT_EQ(values.size(), 2u);
    int64_t tid = -1;
    for (const std::string &l : s.all(3)) {
      Message label = decode(l);
      if (d.str(label.one(1)) == "tid")
        tid = label.one(3);
    }
    auto locs = s.all(1);
    got[{locs.empty() ? std::vector<uint64_t>{} : packed(locs[0]), tid}] = {values[0], values[1]};
  }
  EXPECT_EQ(got, want);
}
