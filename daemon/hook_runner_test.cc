#include "daemon/hook_runner.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <string>

#include "core/test_temp_dir.h"

namespace blockrep {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(RunHook, SuccessfulCommandIsOkWithItsOutput) {
  HookResult r;
  Status st = RunHook("freeze hook of vm1", "echo frozen", 10000, &r);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.output, "frozen\n");
}

TEST(RunHook, FailureNamesTheHookTheCommandTheStatusAndItsOutput) {
  HookResult r;
  Status st = RunHook("freeze hook of vm1", "echo 'fsfreeze: /mnt: not mounted' >&2; exit 3", 10000, &r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(r.exit_code, 3);
  const std::string& m = st.message();
  EXPECT_NE(m.find("freeze hook of vm1"), std::string::npos) << m;
  EXPECT_NE(m.find("exit 3"), std::string::npos) << m;  // the command
  EXPECT_NE(m.find("exited with status 3"), std::string::npos) << m;
  EXPECT_NE(m.find("fsfreeze: /mnt: not mounted"), std::string::npos) << m;
}

TEST(RunHook, MissingProgramIsAFailureNotACrash) {
  HookResult r;
  Status st = RunHook("thaw hook of vm1", "/nonexistent/blockrep-no-such-hook", 10000, &r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(st.message().find("not found"), std::string::npos) << st.ToString();
}

TEST(RunHook, HookPastItsTimeoutIsKilled) {
  HookResult r;
  Status st = RunHook("freeze hook of vm1", "sleep 30", 200, &r);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_NE(st.message().find("timed out"), std::string::npos) << st.ToString();
}

TEST(RunHook, HookIgnoringSigtermIsKilledWithSigkillAfterTheGrace) {
  HookResult r;
  Status st = RunHook("freeze hook of vm1", "trap '' TERM; sleep 30", 200, &r);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
}

TEST(RunHook, OnlyTheTailOfALongOutputIsKept) {
  HookResult r;
  Status st = RunHook("hook", "i=0; while [ $i -lt 1000 ]; do echo line-$i-xxxxxxxxxx; i=$((i+1)); done; exit 1",
                      10000, &r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(r.output.size(), kOutputTailBytes);
  EXPECT_NE(r.output.find("line-999-"), std::string::npos);
  EXPECT_EQ(r.output.find("line-0-"), std::string::npos);
}

class WithFrozenTest : public ::testing::Test {
 protected:
  // Each hook appends its letter to a log; the point appends 'P'.
  FreezeThaw Hooks(const std::string& freeze_extra, const std::string& thaw_extra) {
    FreezeThaw h;
    h.freeze = "echo F >> " + log_ + freeze_extra;
    h.thaw = "echo T >> " + log_ + thaw_extra;
    h.timeout_ms = 300;
    return h;
  }
  Status Take() {
    std::ofstream(log_, std::ios::app) << "P\n";
    return Status::Ok();
  }
  test::TempDir dir_;
  std::string log_ = dir_.file("log");
};

TEST_F(WithFrozenTest, PointIsTakenBetweenFreezeAndThaw) {
  Status st = WithFrozen("vm1", Hooks("", ""), [&] { return Take(); });
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Slurp(log_), "F\nP\nT\n");
}

TEST_F(WithFrozenTest, FailedFreezeTakesNoPointAndStillThaws) {
  Status st = WithFrozen("vm1", Hooks("; exit 1", ""), [&] { return Take(); });
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no recovery point was taken"), std::string::npos) << st.ToString();
  EXPECT_EQ(Slurp(log_), "F\nT\n");
}

TEST_F(WithFrozenTest, FreezeTimeoutTakesNoPointAndStillThaws) {
  Status st = WithFrozen("vm1", Hooks("; sleep 30", ""), [&] { return Take(); });
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("timed out"), std::string::npos) << st.ToString();
  EXPECT_EQ(Slurp(log_), "F\nT\n");
}

TEST_F(WithFrozenTest, FailedThawIsAnErrorButThePointStands) {
  Status st = WithFrozen("vm1", Hooks("", "; exit 2"), [&] { return Take(); });
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("may still be frozen"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("stands"), std::string::npos) << st.ToString();
  EXPECT_EQ(Slurp(log_), "F\nP\nT\n");
}

TEST_F(WithFrozenTest, FailedPointStillThawsAndReportsThePointsError) {
  Status st = WithFrozen("vm1", Hooks("", ""), [&] { return Status::IoError("journal full"); });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "journal full");
  EXPECT_EQ(Slurp(log_), "F\nT\n");
}

TEST_F(WithFrozenTest, NoHooksJustTakesThePoint) {
  bool took = false;
  Status st = WithFrozen("vm1", FreezeThaw{}, [&] {
    took = true;
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok());
  EXPECT_TRUE(took);
}

}  // namespace
}  // namespace blockrep
