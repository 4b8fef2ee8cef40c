// Replays every fuzz seed and every input that once broke a fuzz target.
//
// Why: fuzzing runs only in the clang build (scripts/fuzz), but a crash it
// finds must stay fixed in every build. Each input under
// tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/<target>/ goes
// through the same function the fuzzer calls (tests/fuzz/FuzzTargets.h),
// with the checks turned into exceptions so a failure names its file. To add
// a regression, drop the crashing input (libFuzzer's crash-* file) into
// tests/fuzz/regressions/<target>/ under a descriptive name.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "../fuzz/FuzzTargets.h"

namespace fs = std::filesystem;
using stackpeek::fuzz::throwOnFailure;

namespace {

using FuzzFn = void (*)(const uint8_t *, size_t);

const std::map<std::string, FuzzFn> &targets() {
  static const std::map<std::string, FuzzFn> t = {
      {"maps", stackpeek::fuzz::fuzzMaps},     {"elf", stackpeek::fuzz::fuzzElf},
      {"render", stackpeek::fuzz::fuzzRender}, {"unwind", stackpeek::fuzz::fuzzUnwind},
      {"python", stackpeek::fuzz::fuzzPython},
      {"python_depth", stackpeek::fuzz::fuzzPythonDepth},
  };
  return t;
}

fs::path fuzzDir() { return fs::path(STACKPEEK_FUZZ_DIR); }

// Runs every file of <kind>/<target>/; returns how many ran.
size_t replay(const std::string &kind, const std::string &target) {
  fs::path dir = fuzzDir() / kind / target;
  if (!fs::is_directory(dir))
    return 0;
  size_t n = 0;
  for (const auto &entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file())
      continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(entry.path().string());
    throwOnFailure() = true;
    EXPECT_NO_THROW(targets().at(target)(bytes.data(), bytes.size()));
    ++n;
  }
  return n;
}

} // namespace

TEST(FuzzRegressions, EverySeedAndPastCrashStillPasses) {
  ASSERT_TRUE(fs::is_directory(fuzzDir() / "corpus")) << fuzzDir();
  for (const auto &[name, fn] : targets()) {
    size_t seeds = replay("corpus", name);
    EXPECT_GT(seeds, 0u) << "no seeds for fuzz target " << name;
    replay("regressions", name);
  }
}

TEST(FuzzRegressions, ChecksCanFail) {
  // The render check must reject what it exists to reject.
  throwOnFailure() = true;
  EXPECT_THROW(stackpeek::fuzz::checkTerminalSafe("a\x1b[2Jb"), std::runtime_error);
  EXPECT_THROW(stackpeek::fuzz::checkTerminalSafe("\xc2\x9b" "31m"), std::runtime_error);
  EXPECT_THROW(stackpeek::fuzz::checkTerminalSafe("\xff"), std::runtime_error);
  EXPECT_NO_THROW(stackpeek::fuzz::checkTerminalSafe("ok \\x1b[2J ñ\n"));
}
