// Checks Status and Result<T>: codes, messages, ToString, copies and moves, FromErrno and the
// BLOCKREP_RETURN_IF_ERROR macro, by constructing values and inspecting them.
#include "core/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

namespace blockrep {
namespace {

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(Status, OkFactoryIsOk) { EXPECT_TRUE(Status::Ok().ok()); }

TEST(Status, EachFactorySetsItsCodeAndMessage) {
  struct Case {
    Status s;
    Status::Code code;
  };
  Case cases[] = {
      {Status::InvalidArgument("m"), Status::Code::kInvalidArgument},
      {Status::NotFound("m"), Status::Code::kNotFound},
      {Status::IoError("m"), Status::Code::kIoError},
      {Status::Corruption("m"), Status::Code::kCorruption},
      {Status::ProtocolError("m"), Status::Code::kProtocolError},
      {Status::Unsupported("m"), Status::Code::kUnsupported},
      {Status::Shutdown("m"), Status::Code::kShutdown},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(c.s.ok());
    EXPECT_EQ(c.s.code(), c.code);
    EXPECT_EQ(c.s.message(), "m");
  }
}

TEST(Status, ErrorWithEmptyMessageIsNotOk) {
  Status s = Status::IoError("");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kIoError);
}

TEST(Status, ToStringPrefixesTheCategory) {
  EXPECT_EQ(Status::IoError("disk0 read at 4096").ToString(), "I/O error: disk0 read at 4096");
  EXPECT_EQ(Status::InvalidArgument("x").ToString(), "invalid argument: x");
  EXPECT_EQ(Status::NotFound("x").ToString(), "not found: x");
  EXPECT_EQ(Status::Corruption("x").ToString(), "corruption: x");
  EXPECT_EQ(Status::ProtocolError("x").ToString(), "protocol error: x");
  EXPECT_EQ(Status::Unsupported("x").ToString(), "unsupported: x");
  EXPECT_EQ(Status::Shutdown("x").ToString(), "shutting down: x");
}

TEST(Status, FromErrnoNegativeIsIoErrorWithStrerror) {
  Status s = Status::FromErrno(-EIO, "disk0 read at 4096");
  EXPECT_EQ(s.code(), Status::Code::kIoError);
  EXPECT_EQ(s.message(), std::string("disk0 read at 4096: ") + std::strerror(EIO));
}

TEST(Status, FromErrnoPositiveMatchesNegative) {
  EXPECT_EQ(Status::FromErrno(ENOENT, "open x").message(),
            Status::FromErrno(-ENOENT, "open x").message());
  EXPECT_EQ(Status::FromErrno(ENOENT, "open x").message(),
            std::string("open x: ") + std::strerror(ENOENT));
}

TEST(Status, CopyIsIndependentOfOriginal) {
  Status a = Status::NotFound("a");
  Status b = a;
  a = Status::IoError("changed");
  EXPECT_EQ(b.code(), Status::Code::kNotFound);
  EXPECT_EQ(b.message(), "a");
}

TEST(Status, CopyAssignFromOkClearsError) {
  Status s = Status::IoError("x");
  Status ok;
  s = ok;
  EXPECT_TRUE(s.ok());
}

TEST(Status, MoveCarriesTheError) {
  Status a = Status::Corruption("bad crc");
  Status b = std::move(a);
  EXPECT_EQ(b.code(), Status::Code::kCorruption);
  EXPECT_EQ(b.message(), "bad crc");
}

TEST(Result, HoldsValue) {
  Result<int> r = 42;
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  EXPECT_TRUE(r.status().ok());
}

TEST(Result, HoldsError) {
  Result<int> r = Status::NotFound("no disk");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(r.status().message(), "no disk");
}

TEST(Result, ArrowReachesMembers) {
  Result<std::string> r = std::string("abc");
  EXPECT_EQ(r->size(), 3u);
}

TEST(Result, MoveOnlyValueCanBeTakenOut) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
}

Status FailIf(bool fail) { return fail ? Status::IoError("inner") : Status::Ok(); }

Status Outer(bool fail, bool* reached_end) {
  BLOCKREP_RETURN_IF_ERROR(FailIf(fail));
  *reached_end = true;
  return Status::Ok();
}

TEST(ReturnIfError, PropagatesError) {
  bool reached_end = false;
  Status s = Outer(true, &reached_end);
  EXPECT_EQ(s.code(), Status::Code::kIoError);
  EXPECT_EQ(s.message(), "inner");
  EXPECT_FALSE(reached_end);
}

TEST(ReturnIfError, ContinuesOnOk) {
  bool reached_end = false;
  EXPECT_TRUE(Outer(false, &reached_end).ok());
  EXPECT_TRUE(reached_end);
}

}  // namespace
}  // namespace blockrep
