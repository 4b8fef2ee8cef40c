// TidMap: thread ids as a process in its own pid namespace knows them,
// turned into ours. A container's first thread is 1 to itself; what it
// stores (native_thread_id, struct pthread's tid) must map to the id we
// stop it by, or its Python threads match none of its OS threads.
#include <gtest/gtest.h>

#include <unistd.h>

#include "driver/Stages.h"
#include "process/ProcFs.h"
#include "process/TidMap.h"

using namespace stackpeek;

TEST(TidMap, OwnNamespaceIdsMapToOursAndUnknownOnesToNothing) {
  TidMap map;
  map.add(21153, 1);
  map.add(21194, 42);
  EXPECT_TRUE(map.ownNamespace());
  EXPECT_EQ(map.ours(1), 21153);
  EXPECT_EQ(map.ours(42), 21194);
  EXPECT_TRUE(map.knows(42));
  // Not a thread we know: in a namespace its id means nothing here (it
  // could be another process's thread of ours).
  EXPECT_EQ(map.ours(21153), std::nullopt);
  EXPECT_FALSE(map.knows(21153));
  EXPECT_EQ(map.ours(0), std::nullopt);
  EXPECT_EQ(map.ours(-1), std::nullopt);
  EXPECT_EQ(map.ours(int64_t(1) << 40), std::nullopt);
}

TEST(TidMap, SharedNamespaceTakesIdsAsTheyAre) {
  TidMap none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.ours(777), 777);
  TidMap same{500, 501};
  EXPECT_FALSE(same.ownNamespace());
  EXPECT_TRUE(same.knows(501));
  EXPECT_FALSE(same.knows(502));
  EXPECT_EQ(same.ours(502), 502); // a thread started since: same ids
}

TEST(TidMap, AThreadIdReusedInTheNamespaceMapsToTheNewThread) {
  TidMap map;
  map.add(3000, 7);
  map.add(3050, 7); // thread 3000 exited; the namespace gave 7 to 3050
  EXPECT_EQ(map.ours(7), 3050);
}

TEST(TidMap, ReadsThisProcessAsSharingOurNamespace) {
  // /proc is our pid namespace's here: our own first NSpid entry is getpid().
  std::vector<pid_t> ids = namespaceTids(::getpid(), ::getpid());
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), ::getpid());
  TidMap map = TidMap::read(::getpid(), {::getpid()});
  EXPECT_EQ(map.ownNamespace(), ids.size() > 1);
  EXPECT_TRUE(map.knows(ids.back()));
  EXPECT_EQ(map.ours(ids.back()), ::getpid());
  EXPECT_TRUE(namespaceTids(::getpid(), 0).empty());
}

TEST(UnmatchedPythonNote, SaysWhyNoThreadStateMatchedAThread) {
  python::PythonThreadStack a, b;
  a.ownTid = 1;
  b.ownTid = 42;
  TidMap map;
  map.add(21153, 1);
  std::optional<std::string> none = unmatchedPythonNote({a, b}, {21153, 21194}, map);
  ASSERT_TRUE(none);
  EXPECT_NE(none->find("thread states name threads 1, 42, none of which"), std::string::npos)
      << *none;
  EXPECT_NE(none->find("pid namespace of its own"), std::string::npos) << *none;
  std::optional<std::string> one = unmatchedPythonNote({a}, {9}, TidMap{9});
  ASSERT_TRUE(one);
  EXPECT_NE(one->find("thread state names thread 1, which is not a thread"), std::string::npos)
      << *one;
  EXPECT_NE(one->find("shares stackpeek's pid namespace"), std::string::npos) << *one;
  a.tid = 21153;
  EXPECT_EQ(unmatchedPythonNote({a, b}, {21153, 21194}, map), std::nullopt);
  EXPECT_EQ(unmatchedPythonNote({}, {21153}, map), std::nullopt);
}
