// libFuzzer entry point for the ELF reader and the Symbolizer on malformed files.
// Why: this stage reads bytes a target process controls; the checks live in
// FuzzTargets.h so the unit tests replay the same function on the corpus
// (tests/fuzz/corpus/elf/) and on past crashes (tests/fuzz/regressions/elf/).
#include "FuzzTargets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  stackpeek::fuzz::fuzzElf(data, size);
  return 0;
}
