// Test-only: what the tests that drive a ProtectedDisk's WritePath share (write_path_test.cc,
// write_path_fault_test.cc, protected_disk_test.cc). ProtectedDiskHarness keeps a backing file
// in a fresh temporary directory, opens the ProtectedDisk on it with its state beside it, and
// runs operations through the disk's WritePath on an IoRing driven on the test's thread until
// each operation's BackendDone fires; the free functions compare and make test bytes. Only
// *_test.cc files include this header: it needs GoogleTest and is part of no binary blockrep
// ships.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/byte_size.h"
#include "core/file_io.h"
#include "core/io_ring.h"
#include "core/journal_reader.h"
#include "core/test_temp_dir.h"
#include "daemon/protected_disk.h"
#include "daemon/write_path.h"
#include "nbd/backend.h"

namespace blockrep::test {

// Records the one OnDone call of an operation.
class Done : public nbd::BackendDone {
 public:
  void OnDone(int err) override {
    ++calls;
    this->err = err;
  }
  int calls = 0;
  int err = INT_MIN;
};

// Compares bytes without printing kilobytes of them: names the first difference.
inline ::testing::AssertionResult SameBytes(const std::string& actual,
                                            const std::string& expected) {
  if (actual == expected) return ::testing::AssertionSuccess();
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << actual.size() << " bytes where " << expected.size() << " were expected";
  }
  size_t i = 0;
  while (actual[i] == expected[i]) ++i;
  size_t differing = 0;
  for (size_t j = i; j < actual.size(); ++j) differing += actual[j] != expected[j];
  char buf[96];
  std::snprintf(buf, sizeof(buf), "byte %zu is 0x%02x, expected 0x%02x (%zu of %zu bytes differ)",
                i, static_cast<uint8_t>(actual[i]), static_cast<uint8_t>(expected[i]), differing,
                actual.size());
  return ::testing::AssertionFailure() << buf;
}

// `n` bytes that differ with `seed` and from one 256-byte block to the next, so a write that
// lands at the wrong offset, or another write's bytes, cannot pass for it.
inline std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 131 + seed * 7919 + (i >> 8)) & 0xFF);
  }
  return s;
}

// Creates `path` (which must not exist) holding `bytes` bytes of `fill`, written and synced so
// the file system has allocated them. A fatal failure when that fails (callers wrap it in
// ASSERT_NO_FATAL_FAILURE).
inline void MakeFilledFile(const std::string& path, uint64_t bytes, char fill) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  const std::string data(bytes, fill);
  const ssize_t n = ::pwrite(fd, data.data(), data.size(), 0);
  const int synced = ::fsync(fd);
  ::close(fd);
  ASSERT_EQ(n, static_cast<ssize_t>(bytes));
  ASSERT_EQ(synced, 0) << std::strerror(errno);
}

// A verified write record, as the journal holds it.
struct JournaledWrite {
  uint64_t seq;
  uint64_t offset;
  std::string payload;
  std::string segment;
  uint64_t file_offset;
};

// Mixed into a fixture beside ::testing::Test (or TestWithParam): its SetUp calls CreateDisk
// and its TearDown calls DestroyDisk. Not thread-safe: the ring is the test thread's. The
// helpers report problems as GoogleTest failures, so a test reads only the outcome it checks.
class ProtectedDiskHarness {
 protected:
  static constexpr char kDiskName[] = "disk0";
  // What Clobber writes: what a lost page cache leaves, as far as a test can tell.
  static constexpr char kGarbage = '\xEE';

  // Makes the temporary directory (under `base`; empty: the test temp dir), the backing file
  // disk.img of `disk_bytes` bytes of `fill`, and the ring; the disk is not opened yet. A fatal
  // failure when that fails (callers wrap it in ASSERT_NO_FATAL_FAILURE).
  void CreateDisk(uint64_t disk_bytes, char fill, const std::string& base = "") {
    dir_.emplace(base);
    if (::testing::Test::HasFatalFailure()) return;
    path_ = dir_->file("disk.img");
    ASSERT_NO_FATAL_FAILURE(MakeFilledFile(path_, disk_bytes, fill));
    state_dir_ = dir_->file("state");
    disk_dir_ = ProtectedDisk::DiskDir(state_dir_, kDiskName);
    auto ring = IoRing::Create(64);
    ASSERT_TRUE(ring.ok()) << ring.status().ToString();
    ring_ = std::move(ring).value();
  }

  // Closes a disk still open (a failed Close fails the test), then drops the ring and the
  // temporary directory with everything in it.
  void DestroyDisk() {
    if (pd_ != nullptr) {
      EXPECT_TRUE(pd_->Close().ok());
    }
    pd_.reset();
    wp_ = nullptr;
    ring_.reset();
    dir_.reset();
  }

  ProtectedDisk::Options Opts(ByteSize journal_max, FileIo* io = nullptr) const {
    ProtectedDisk::Options opts;
    opts.state_dir = state_dir_;
    opts.journal_max = journal_max;
    opts.io = io;
    return opts;
  }

  // Opens (or re-opens, after Close or Crash: a restart) the disk.
  void OpenDiskWith(const ProtectedDisk::Options& opts) {
    auto pd = ProtectedDisk::Open(kDiskName, path_, opts);
    ASSERT_TRUE(pd.ok()) << pd.status().ToString();
    pd_ = std::move(pd).value();
    wp_ = &pd_->write_path();
  }

  void CloseDisk() {
    ASSERT_NE(pd_, nullptr);
    Status st = pd_->Close();
    EXPECT_TRUE(st.ok()) << st.ToString();
    pd_.reset();
    wp_ = nullptr;
    ASSERT_NO_FATAL_FAILURE(RestartRing());
  }

  // A stopped daemon's rings are gone too. io_uring's workers may hold a reference to a file
  // for a moment after its last completion, and the backing disk's flock lasts until every
  // reference is dropped: tearing the ring down (which waits for its workers) makes a
  // re-open in the same process see the lock free, as a restarted daemon would.
  void RestartRing() {
    ring_.reset();
    auto ring = IoRing::Create(64);
    ASSERT_TRUE(ring.ok()) << ring.status().ToString();
    ring_ = std::move(ring).value();
  }

  // The daemon dies: no Close, so no final checkpoint and no clean-shutdown mark. Every
  // operation has completed (the WritePath requires that of its destructor).
  void Crash() {
    ASSERT_NE(pd_, nullptr);
    ASSERT_EQ(wp_->stats().changes_in_flight, 0u);
    pd_.reset();
    wp_ = nullptr;
    ASSERT_NO_FATAL_FAILURE(RestartRing());
  }

  // Dispatches completions until `done` fires; a bounded number of rounds, so an operation
  // that resubmits forever fails the test instead of hanging it.
  int Await(Done& done) {
    for (int round = 0; round < 10000 && done.calls == 0; ++round) {
      auto r = ring_->SubmitAndDispatch(1);
      if (!r.ok()) {
        ADD_FAILURE() << r.status().ToString();
        return INT_MIN;
      }
    }
    EXPECT_EQ(done.calls, 1) << "the operation never completed";
    return done.err;
  }

  // Each runs one operation to completion and returns what the client would be told.
  int Read(uint64_t offset, uint32_t length, uint8_t* buf) {
    Done d;
    wp_->Read(*ring_, offset, length, buf, &d);
    return Await(d);
  }
  int Write(uint64_t offset, const std::string& data, bool fua = false) {
    Done d;
    wp_->Write(*ring_, offset, static_cast<uint32_t>(data.size()),
               reinterpret_cast<const uint8_t*>(data.data()), fua, &d);
    return Await(d);
  }
  int WriteZeroes(uint64_t offset, uint64_t length, bool may_trim, bool fast_only = false,
                  bool fua = false) {
    Done d;
    wp_->WriteZeroes(*ring_, offset, length, may_trim, fast_only, fua, &d);
    return Await(d);
  }
  int Trim(uint64_t offset, uint64_t length, bool fua = false) {
    Done d;
    wp_->Trim(*ring_, offset, length, fua, &d);
    return Await(d);
  }
  int Flush() {
    Done d;
    wp_->Flush(*ring_, &d);
    return Await(d);
  }

  // The backing file's bytes, read with pread on a descriptor of our own (not through the
  // WritePath).
  std::string FileBytes(uint64_t offset, uint64_t length) {
    std::string out(length, '\0');
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    if (fd < 0) return "";
    ssize_t n = ::pread(fd, out.data(), length, static_cast<off_t>(offset));
    ::close(fd);
    EXPECT_EQ(n, static_cast<ssize_t>(length));
    return out;
  }

  // Overwrites the backing file's bytes with kGarbage behind the daemon's back.
  void Clobber(uint64_t offset, uint64_t length) {
    int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::string garbage(length, kGarbage);
    EXPECT_EQ(::pwrite(fd, garbage.data(), length, static_cast<off_t>(offset)),
              static_cast<ssize_t>(length));
    ::close(fd);
  }

  // Scans the journal directory (of an open or a closed disk); records every verified write.
  journal::ScanSummary ScanJournal(std::vector<JournaledWrite>* writes = nullptr) {
    auto meta = journal::ReadJournalMeta(disk_dir_ + "/journal.meta");
    EXPECT_TRUE(meta.ok()) << meta.status().ToString();
    if (!meta.ok()) return {};
    journal::ScanOptions opts;
    opts.journal_id = meta->journal_id;
    opts.visitor = [writes](const journal::RecordView& r) {
      if (writes != nullptr && r.header.kind == journal::RecordKind::kWrite) {
        writes->push_back(
            {r.header.seq, r.header.offset,
             std::string(reinterpret_cast<const char*>(r.payload), r.header.payload_bytes),
             *r.segment, r.file_offset});
      }
      return Status::Ok();
    };
    auto scan = journal::ScanJournal(disk_dir_ + "/journal", opts);
    EXPECT_TRUE(scan.ok()) << scan.status().ToString();
    if (!scan.ok()) return {};
    return std::move(scan).value();
  }

  // Destroyed in reverse: the disk before the ring it may still hold, both before the
  // directory.
  std::optional<TempDir> dir_;
  std::string path_;       // the backing file
  std::string state_dir_;  // Options::state_dir
  std::string disk_dir_;   // the disk's own state: journal.meta, journal/, bitmap, state.json
  std::unique_ptr<IoRing> ring_;
  std::unique_ptr<ProtectedDisk> pd_;
  WritePath* wp_ = nullptr;  // pd_'s, while pd_ is open
};

}  // namespace blockrep::test
