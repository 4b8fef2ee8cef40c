// libFuzzer entry point for the Unwinder over a forged module and stack.
// Why: this stage reads bytes a target process controls; the checks live in
// FuzzTargets.h so the unit tests replay the same function on the corpus
// (tests/fuzz/corpus/unwind/) and on past crashes (tests/fuzz/regressions/unwind/).
#include "FuzzTargets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  stackpeek::fuzz::fuzzUnwind(data, size);
  return 0;
}
