// Hostile strings through both renderers, on a hand-built model.
//
// Why: the integration suite proves it end to end against one hostile
// process; this pins the exact promises per field the renderers print
// (thread name, command, module, file, function, source line, locals,
// asyncio tasks and their frames' locals, errors), so a new field printed without escaping fails here at once.
#include <gtest/gtest.h>

#include <algorithm>

#include "llvm/Support/JSON.h"

#include "../fuzz/FuzzTargets.h"
#include "render/Renderer.h"

using namespace stackpeek;

namespace {

const std::string kEvil = "\x1b[2J\x1b]0;pwn\x07\x9b\xc2\x9b\xff\r\n\t\x7f<end>";

Process evilProcess() {
  Process p;
  p.pid = 42;
  p.command = kEvil;
  p.executable = kEvil;
  p.errors = {kEvil};
  Thread t;
  t.tid = 43;
  t.name = kEvil;
  t.state = "sleeping";
  t.wchan = kEvil;
  t.errors = {kEvil};
  Frame native;
  native.function = kEvil;
  native.module = "/lib/" + kEvil;
  native.file = kEvil;
  native.line = 1;
  native.error = kEvil;
  t.frames.push_back(native);
  Thread py = t;
  py.tid = 44;
  py.pythonThreadName = kEvil;
  Frame pyFrame;
  pyFrame.kind = Frame::Kind::Python;
  pyFrame.function = kEvil;
  pyFrame.file = kEvil;
  pyFrame.line = 3;
  pyFrame.sourceLine = "  x = " + kEvil;
  pyFrame.locals = {{kEvil, kEvil}};
  pyFrame.error = kEvil;
  py.frames = {pyFrame, pyFrame};
  p.threads = {t, py};
  // A suspended task's coroutine frames carry locals too (--async --locals).
  AsyncioTask task;
  task.id = "0x2";
  task.name = kEvil;
  task.state = "pending";
  task.stack = {pyFrame, pyFrame};
  task.awaiting = kEvil;
  p.asyncio = AsyncioSnapshot{{AsyncioLoop{"0x1", 43, {task}}}, {kEvil}};
  return p;
}

std::string render(bool json, bool native) {
  RenderOptions options;
  options.native = native;
  auto r = json ? makeJsonRenderer(options) : makeTextRenderer(options);
  std::string out;
  llvm::raw_string_ostream os(out);
  r->begin(os);
  r->render(evilProcess(), os);
  r->end(os);
  os.flush();
  return out;
}

} // namespace

TEST(SafetyRender, TextShowsEveryHostileFieldEscaped) {
  stackpeek::fuzz::throwOnFailure() = true;
  for (bool native : {false, true}) {
    std::string text = render(false, native);
    EXPECT_NO_THROW(stackpeek::fuzz::checkTerminalSafe(text)) << text;
    EXPECT_NE(text.find("\\x1b[2J\\x1b]0;pwn\\x07"), std::string::npos) << text;
    EXPECT_NE(text.find("<end>"), std::string::npos);
  }
}

TEST(SafetyRender, JsonIsValidWithInvalidUtf8Replaced) {
  std::string json = render(true, false);
  ASSERT_TRUE(llvm::json::isUTF8(json));
  auto doc = llvm::json::parse(json);
  ASSERT_TRUE(bool(doc)) << llvm::toString(doc.takeError());
  const llvm::json::Object *o = doc->getAsObject();
  ASSERT_TRUE(o);
  auto command = o->getString("command");
  ASSERT_TRUE(command.hasValue());
  EXPECT_NE(command->str().find("\xef\xbf\xbd"), std::string::npos); // U+FFFD
  EXPECT_TRUE(command->startswith("\x1b[2J")); // JSON keeps the text, escaped by the encoder
}

// A task graph from a hostile target: a chain 10,000 tasks long and a
// lattice where every task of a level is awaited by both of the level
// above (2^40 paths from the top). The text tree must stay linear in the
// number of tasks and must not recurse without bound.
namespace {
std::string renderTasks(const std::vector<AsyncioTask> &tasks) {
  Process p;
  p.pid = 1;
  AsyncioLoop loop;
  loop.id = "0x1";
  loop.tasks = tasks;
  p.asyncio = AsyncioSnapshot{};
  p.asyncio->loops.push_back(loop);
  auto r = makeTextRenderer(RenderOptions{});
  std::string out;
  llvm::raw_string_ostream os(out);
  r->begin(os);
  r->render(p, os);
  r->end(os);
  os.flush();
  return out;
}
size_t lines(const std::string &s) { return std::count(s.begin(), s.end(), '\n'); }
} // namespace

TEST(SafetyRender, AsyncioTaskTreeStaysLinearAndBounded) {
  std::vector<AsyncioTask> chain(10000);
  for (size_t i = 0; i < chain.size(); ++i) {
    chain[i].id = "c" + std::to_string(i);
    chain[i].name = "Task-" + std::to_string(i);
    if (i > 0)
      chain[i].awaitedBy = {chain[i - 1].id};
  }
  std::string text = renderTasks(chain);
  EXPECT_NE(text.find("deeper than"), std::string::npos);
  EXPECT_LT(lines(text), 2 * chain.size() + 10);

  std::vector<AsyncioTask> lattice;
  for (int level = 0; level < 40; ++level)
    for (int k = 0; k < 2; ++k) {
      AsyncioTask t;
      t.id = "l" + std::to_string(level) + "." + std::to_string(k);
      t.name = t.id;
      if (level > 0)
        t.awaitedBy = {"l" + std::to_string(level - 1) + ".0",
                       "l" + std::to_string(level - 1) + ".1"};
      lattice.push_back(t);
    }
  text = renderTasks(lattice);
  EXPECT_NE(text.find("shown above"), std::string::npos);
  EXPECT_LT(lines(text), 4 * lattice.size() + 10);
}
