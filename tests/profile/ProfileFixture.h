// ProfileFixture: one hand-built Profile shared by the writer unit tests
// (tests/unit/profile_*.cpp) and the consumer checks (check_formats.py via
// stackpeek_profile_fixture), so both test the same content.
//
// It has what real recordings have and what breaks writers: two processes,
// several threads (one only known by tid), Python frames (told apart by
// line), native frames with and without a module, synthetic thread labels
// at the outer end (as `record --threads` makes them), recursion, a
// sample with an empty stack, samples out of time order, and labels a
// hostile target could choose: ';' and newline (the collapsed separators),
// "<script>", quotes and '&' (XML), ESC (terminals), invalid UTF-8, and
// U+FFFF (not an XML character).
#pragma once

#include <string>
#include <vector>

#include "profile/Profile.h"

namespace stackpeek::fixture {

inline ProfileFrame python(std::string function, std::string file, uint32_t line) {
  ProfileFrame f;
  f.kind = Frame::Kind::Python, f.function = std::move(function), f.file = std::move(file);
  f.line = line;
  return f;
}

inline ProfileFrame native(std::string function, std::optional<std::string> module) {
  ProfileFrame f;
  f.kind = Frame::Kind::Native, f.function = std::move(function), f.module = std::move(module);
  return f;
}

inline ProfileFrame label(std::string text) {
  ProfileFrame f;
  f.function = std::move(text), f.synthetic = true;
  return f;
}

// Adds `count` samples of `outerFirst` (written outermost first for
// readability; stored innermost first as the Profile wants).
inline void addSamples(Profile &p, pid_t pid, pid_t tid, std::vector<ProfileFrame> outerFirst,
                       int count, uint64_t &clockNs) {
  std::vector<FrameId> stack;
  for (auto it = outerFirst.rbegin(); it != outerFirst.rend(); ++it)
    stack.push_back(p.internFrame(*it));
  StackId id = p.internStack(stack);
  for (int i = 0; i < count; ++i, clockNs += 10'000'000)
    p.samples.push_back({clockNs, pid, tid, id, 10'000'000});
}

inline Profile makeProfile() {
  Profile p;
  p.rateHz = 100;
  p.processes = {{100, "python3 app.py --serve"}, {200, "worker-helper \x1b[2J"}};
  p.threads = {{100, 100, "python3"}, {100, 101, "pool;worker\n1"}, {200, 200, "helper"}};
  uint64_t t = 0;
  auto mainLabel = label("thread 100 python3");
  auto workerLabel = label("thread 101 pool;worker\n1");
  auto start = native("_start", "/usr/bin/python3.11");
  auto eval = native("_PyEval_EvalFrameDefault", "/usr/lib/libpython3.11.so.1.0");
  auto module = python("<module>", "/srv/app.py", 1);
  auto run = python("run", "/srv/app.py", 10);
  auto compute = python("compute", "/srv/app.py", 20);
  auto compute21 = python("compute", "/srv/app.py", 21);
  auto fib = python("fib", "/srv/app.py", 30);

  addSamples(p, 100, 100, {mainLabel, start, eval, module, run, compute}, 7, t);
  addSamples(p, 100, 100, {mainLabel, start, eval, module, run, compute21}, 3, t);
  addSamples(p, 100, 100, {mainLabel, start, eval, module, run, fib, fib, fib}, 4, t);
  addSamples(p, 100, 100, {mainLabel, start, eval, module, run}, 2, t);
  addSamples(p, 100, 100, {mainLabel, start, eval, module,
                           python("evil;name\nnext", "/srv/x<script>alert(1)</script>.py", 5)},
             2, t);
  addSamples(p, 100, 101, {workerLabel, native("start_thread", "/lib/libc.so.6"),
                           native("epoll_wait", "/lib/libc.so.6")}, 5, t);
  addSamples(p, 100, 101, {workerLabel, native("start_thread", "/lib/libc.so.6"),
                           native("std::vector<int>::push_back(int&&)", "/srv/lib&co.so"),
                           native("a \"quoted\" 'name' & more", std::nullopt)}, 3, t);
  addSamples(p, 100, 102, {native("\x1b[31mred\x1b[0m", "/srv/bad\xff\xfe.so"),
                           native("bad\xff\xfe" "utf8 \xef\xbf\xbf end", std::nullopt)}, 2, t);
  addSamples(p, 200, 200, {native("main", "/usr/bin/helper"), native("??", std::nullopt)}, 1, t);
  addSamples(p, 200, 200, {}, 1, t); // a sample whose stack could not be read
  // Samples are not required to arrive in time order; the last one is
  // earlier than all others of thread 200.
  p.samples.back().timestampNs = 5;
  p.durationNs = t;
  return p;
}

} // namespace stackpeek::fixture
