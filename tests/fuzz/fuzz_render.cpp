// libFuzzer entry point for the text and JSON renderers on hostile strings.
// Why: this stage reads bytes a target process controls; the checks live in
// FuzzTargets.h so the unit tests replay the same function on the corpus
// (tests/fuzz/corpus/render/) and on past crashes (tests/fuzz/regressions/render/).
#include "FuzzTargets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  stackpeek::fuzz::fuzzRender(data, size);
  return 0;
}
