// libFuzzer entry point for the handled-exception, asyncio and locals readers
// over FakeMemory. Why: they follow pointers a target process controls
// (exception chains, tracebacks, task sets, coroutine chains); the checks
// live in FuzzTargets.h so the unit tests replay the same function on the
// corpus (tests/fuzz/corpus/python_depth/) and on past crashes.
#include "FuzzTargets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  stackpeek::fuzz::fuzzPythonDepth(data, size);
  return 0;
}
