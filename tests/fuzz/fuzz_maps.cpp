// libFuzzer entry point for the /proc/PID/maps parser (parseMaps, findMapping).
// Why: this stage reads bytes a target process controls; the checks live in
// FuzzTargets.h so the unit tests replay the same function on the corpus
// (tests/fuzz/corpus/maps/) and on past crashes (tests/fuzz/regressions/maps/).
#include "FuzzTargets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  stackpeek::fuzz::fuzzMaps(data, size);
  return 0;
}
