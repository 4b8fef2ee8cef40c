// libFuzzer entry point for the CPython frame decoder over FakeMemory.
// Why: this stage reads bytes a target process controls; the checks live in
// FuzzTargets.h so the unit tests replay the same function on the corpus
// (tests/fuzz/corpus/python/) and on past crashes (tests/fuzz/regressions/python/).
#include "FuzzTargets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  stackpeek::fuzz::fuzzPython(data, size);
  return 0;
}
