// Checks FaultyFileIo on a real io_uring and a real file in a fresh temporary directory:
// without a rule (or with Fault::None) requests reach the file; Fault::Error completes a
// request with that -errno and leaves the file untouched; Fault::Short transfers exactly the
// first n bytes (across iovec boundaries) and reports n; the rule sees each request; and
// faults_injected counts the requests a rule failed or shortened.
#include "core/faulty_file_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/io_ring.h"
#include "core/test_temp_dir.h"
#include "core/unique_fd.h"

namespace blockrep {
namespace {

constexpr size_t kFileBytes = 4096;
constexpr char kOld = 'x';  // what the file holds before each test writes to it

// Records the one completion of a request.
class Done : public IoCompletion {
 public:
  void OnIoComplete(int32_t res) override {
    ++calls;
    this->res = res;
  }
  int calls = 0;
  int32_t res = INT32_MIN;
};

class FaultyFileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = UniqueFd(::open(dir_.file("file").c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd_.valid()) << std::strerror(errno);
    const std::string fill(kFileBytes, kOld);
    ASSERT_EQ(::pwrite(fd_.get(), fill.data(), fill.size(), 0), static_cast<ssize_t>(kFileBytes));
    auto ring = IoRing::Create(16);
    ASSERT_TRUE(ring.ok()) << ring.status().ToString();
    ring_ = std::move(ring).value();
  }
  void TearDown() override {
    ring_.reset();
    fd_.Reset();
  }

  // Drives the ring until `done` has its completion; a bounded number of rounds.
  int32_t Await(Done& done) {
    for (int round = 0; round < 1000 && done.calls == 0; ++round) {
      auto r = ring_->SubmitAndDispatch(1);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) break;
    }
    EXPECT_EQ(done.calls, 1);
    return done.res;
  }

  std::string Contents() {
    std::string out(kFileBytes * 2, '\0');
    const ssize_t n = ::pread(fd_.get(), out.data(), out.size(), 0);
    EXPECT_GE(n, 0);
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }
  uint64_t FileBytes() {
    struct stat st;
    EXPECT_EQ(::fstat(fd_.get(), &st), 0);
    return static_cast<uint64_t>(st.st_size);
  }

  // Writes "aaaaaaaaaa" + 20 x 'b' + 30 x 'c' (three iovecs, 60 bytes) at `offset`.
  int32_t WriteThreeIovecs(FileIo& io, uint64_t offset) {
    iovec iov[3] = {{a_.data(), a_.size()}, {b_.data(), b_.size()}, {c_.data(), c_.size()}};
    Done done;
    io.Writev(*ring_, fd_.get(), iov, 3, offset, 0, &done);
    return Await(done);
  }
  // The file as it should be after the first `n` of those 60 bytes landed at `offset`.
  std::string Expected(uint64_t offset, size_t n) {
    std::string file(kFileBytes, kOld);
    file.replace(offset, n, (a_ + b_ + c_).substr(0, n));
    return file;
  }

  test::TempDir dir_;
  UniqueFd fd_;
  std::unique_ptr<IoRing> ring_;
  FaultyFileIo io_{FileIo::Direct()};
  std::string a_ = std::string(10, 'a');
  std::string b_ = std::string(20, 'b');
  std::string c_ = std::string(30, 'c');
};

// ---- Writes -------------------------------------------------------------------------------

TEST_F(FaultyFileIoTest, WithoutARuleWritesLand) {
  EXPECT_EQ(WriteThreeIovecs(io_, 100), 60);
  EXPECT_EQ(Contents(), Expected(100, 60));
  EXPECT_EQ(io_.faults_injected(), 0);
}

TEST_F(FaultyFileIoTest, RuleReturningNoneLetsWritesLand) {
  io_.SetRule([](const FileRequest&) { return Fault::None(); });
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 60);
  EXPECT_EQ(Contents(), Expected(0, 60));
  EXPECT_EQ(io_.faults_injected(), 0);
}

TEST_F(FaultyFileIoTest, ErrorFaultCompletesWithTheErrnoAndLeavesTheFileUnchanged) {
  io_.SetRule([](const FileRequest&) { return Fault::Error(-ENOSPC); });
  EXPECT_EQ(WriteThreeIovecs(io_, 0), -ENOSPC);
  EXPECT_EQ(Contents(), std::string(kFileBytes, kOld));
  EXPECT_EQ(io_.faults_injected(), 1);
}

TEST_F(FaultyFileIoTest, ShortWriteAcrossThreeIovecsWritesExactlyTheFirstNBytes) {
  io_.SetRule([](const FileRequest&) { return Fault::Short(25); });  // all of a, half of b
  EXPECT_EQ(WriteThreeIovecs(io_, 200), 25);
  EXPECT_EQ(Contents(), Expected(200, 25));
  EXPECT_EQ(io_.faults_injected(), 1);
}

TEST_F(FaultyFileIoTest, ShortWriteEndingOnAnIovecBoundary) {
  io_.SetRule([](const FileRequest&) { return Fault::Short(30); });  // a and b, none of c
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 30);
  EXPECT_EQ(Contents(), Expected(0, 30));
}

TEST_F(FaultyFileIoTest, ShortWriteWithinTheFirstIovec) {
  io_.SetRule([](const FileRequest&) { return Fault::Short(3); });
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 3);
  EXPECT_EQ(Contents(), Expected(0, 3));
}

TEST_F(FaultyFileIoTest, ShortWriteOfZeroBytesWritesNothing) {
  io_.SetRule([](const FileRequest&) { return Fault::Short(0); });
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 0);
  EXPECT_EQ(Contents(), std::string(kFileBytes, kOld));
  EXPECT_EQ(io_.faults_injected(), 1);
}

TEST_F(FaultyFileIoTest, ShortLongerThanTheWriteWritesItAllAndIsNoFault) {
  io_.SetRule([](const FileRequest&) { return Fault::Short(1000); });
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 60);
  EXPECT_EQ(Contents(), Expected(0, 60));
  EXPECT_EQ(io_.faults_injected(), 0);  // nothing was shortened
}

TEST_F(FaultyFileIoTest, ShortOfExactlyTheWriteIsNoFault) {
  io_.SetRule([](const FileRequest&) { return Fault::Short(60); });
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 60);
  EXPECT_EQ(Contents(), Expected(0, 60));
  EXPECT_EQ(io_.faults_injected(), 0);
}

TEST_F(FaultyFileIoTest, ShortSingleIovecWrite) {
  io_.SetRule([](const FileRequest&) { return Fault::Short(7); });
  std::string data(100, 'z');
  iovec iov = {data.data(), data.size()};
  Done done;
  io_.Writev(*ring_, fd_.get(), &iov, 1, 50, 0, &done);
  EXPECT_EQ(Await(done), 7);
  std::string expect(kFileBytes, kOld);
  expect.replace(50, 7, std::string(7, 'z'));
  EXPECT_EQ(Contents(), expect);
}

TEST_F(FaultyFileIoTest, RuleSeesEachRequest) {
  std::vector<FileRequest> seen;
  io_.SetRule([&](const FileRequest& r) {
    seen.push_back(r);
    return Fault::None();
  });
  WriteThreeIovecs(io_, 300);
  char buf[16];
  Done read_done, sync_done, alloc_done;
  io_.Read(*ring_, fd_.get(), buf, sizeof(buf), 40, &read_done);
  Await(read_done);
  io_.Fsync(*ring_, fd_.get(), &sync_done);
  Await(sync_done);
  io_.Fallocate(*ring_, fd_.get(), 0, 8192, 4096, &alloc_done);
  Await(alloc_done);

  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].op, FileOp::kWrite);
  EXPECT_EQ(seen[0].fd, fd_.get());
  EXPECT_EQ(seen[0].offset, 300u);
  EXPECT_EQ(seen[0].length, 60u);  // the iovecs' total
  EXPECT_EQ(seen[1].op, FileOp::kRead);
  EXPECT_EQ(seen[1].offset, 40u);
  EXPECT_EQ(seen[1].length, 16u);
  EXPECT_EQ(seen[2].op, FileOp::kFsync);
  EXPECT_EQ(seen[3].op, FileOp::kFallocate);
  EXPECT_EQ(seen[3].offset, 8192u);
  EXPECT_EQ(seen[3].length, 4096u);
}

TEST_F(FaultyFileIoTest, FaultsInjectedCountsOnlyFaultedRequests) {
  int n = 0;
  // Every other request fails.
  io_.SetRule(
      [&](const FileRequest&) { return n++ % 2 == 1 ? Fault::Error(-EIO) : Fault::None(); });
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 60);
  EXPECT_EQ(WriteThreeIovecs(io_, 0), -EIO);
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 60);
  EXPECT_EQ(WriteThreeIovecs(io_, 0), -EIO);
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 60);
  EXPECT_EQ(io_.faults_injected(), 2);
}

TEST_F(FaultyFileIoTest, RuleForAnotherFdLetsThisOnePass) {
  const int other_fd = fd_.get() + 1000;
  io_.SetRule(
      [&](const FileRequest& r) { return r.fd == other_fd ? Fault::Error(-EIO) : Fault::None(); });
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 60);
  EXPECT_EQ(io_.faults_injected(), 0);
}

TEST_F(FaultyFileIoTest, ClearingTheRuleStopsFaults) {
  io_.SetRule([](const FileRequest&) { return Fault::Error(-EIO); });
  EXPECT_EQ(WriteThreeIovecs(io_, 0), -EIO);
  io_.SetRule(nullptr);
  EXPECT_EQ(WriteThreeIovecs(io_, 0), 60);
  EXPECT_EQ(io_.faults_injected(), 1);
}

// ---- Fsync, fallocate, read ---------------------------------------------------------------

TEST_F(FaultyFileIoTest, FsyncErrorFault) {
  Done ok;
  io_.Fsync(*ring_, fd_.get(), &ok);
  EXPECT_EQ(Await(ok), 0);
  io_.SetRule([](const FileRequest& r) {
    return r.op == FileOp::kFsync ? Fault::Error(-EIO) : Fault::None();
  });
  Done failed;
  io_.Fsync(*ring_, fd_.get(), &failed);
  EXPECT_EQ(Await(failed), -EIO);
  EXPECT_EQ(io_.faults_injected(), 1);
}

TEST_F(FaultyFileIoTest, ShortOnAnFsyncIsNoFault) {
  io_.SetRule([](const FileRequest&) { return Fault::Short(1); });
  Done done;
  io_.Fsync(*ring_, fd_.get(), &done);
  EXPECT_EQ(Await(done), 0);
  EXPECT_EQ(io_.faults_injected(), 0);
}

TEST_F(FaultyFileIoTest, FallocateErrorFaultLeavesTheFileAlone) {
  io_.SetRule([](const FileRequest& r) {
    return r.op == FileOp::kFallocate ? Fault::Error(-ENOSPC) : Fault::None();
  });
  Done failed;
  io_.Fallocate(*ring_, fd_.get(), 0, kFileBytes, 65536, &failed);
  EXPECT_EQ(Await(failed), -ENOSPC);
  EXPECT_EQ(FileBytes(), kFileBytes);

  io_.SetRule(nullptr);
  Done ok;
  io_.Fallocate(*ring_, fd_.get(), 0, kFileBytes, 65536, &ok);
  EXPECT_EQ(Await(ok), 0);
  EXPECT_EQ(FileBytes(), kFileBytes + 65536);  // mode 0 extends the file
}

TEST_F(FaultyFileIoTest, ReadWithoutARuleReadsTheFile) {
  std::string buf(64, '\0');
  Done done;
  io_.Read(*ring_, fd_.get(), buf.data(), 64, 0, &done);
  EXPECT_EQ(Await(done), 64);
  EXPECT_EQ(buf, std::string(64, kOld));
}

TEST_F(FaultyFileIoTest, ShortReadFillsOnlyTheFirstNBytes) {
  io_.SetRule([](const FileRequest&) { return Fault::Short(16); });
  std::string buf(64, '-');
  Done done;
  io_.Read(*ring_, fd_.get(), buf.data(), 64, 0, &done);
  EXPECT_EQ(Await(done), 16);
  EXPECT_EQ(buf, std::string(16, kOld) + std::string(48, '-'));
  EXPECT_EQ(io_.faults_injected(), 1);
}

TEST_F(FaultyFileIoTest, ReadErrorFaultLeavesTheBufferAlone) {
  io_.SetRule([](const FileRequest&) { return Fault::Error(-EIO); });
  std::string buf(64, '-');
  Done done;
  io_.Read(*ring_, fd_.get(), buf.data(), 64, 0, &done);
  EXPECT_EQ(Await(done), -EIO);
  EXPECT_EQ(buf, std::string(64, '-'));
}

}  // namespace
}  // namespace blockrep
