// Checks BackingDisk::Open's refusals (missing, empty, directory, already locked) and the
// SEEK_DATA/SEEK_HOLE extent map, on real sparse files in a fresh temporary directory.
#include "daemon/backing_disk.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/test_temp_dir.h"
#include "nbd/protocol.h"

namespace blockrep {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kFileBytes = 1024 * kKiB;
constexpr uint32_t kHoleFlags = nbd::kStateHole | nbd::kStateZero;

using test::TempDir;

// A new file of `size` bytes in `dir`, all a hole, from mkstemp. Returns its path.
std::string NewSparseFile(const TempDir& dir, uint64_t size) {
  std::string tmpl = dir.file("disk.XXXXXX");
  int fd = ::mkstemp(tmpl.data());
  EXPECT_GE(fd, 0) << "mkstemp: " << std::strerror(errno);
  if (fd < 0) return tmpl;
  EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
  ::close(fd);
  return tmpl;
}

// Writes `length` bytes of 0xAB at `offset` and makes them durable, so the file system has
// allocated them by the time the extent map is read.
void WriteData(const std::string& path, uint64_t offset, uint64_t length) {
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  std::string data(length, '\xAB');
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)),
            static_cast<ssize_t>(length));
  ASSERT_EQ(::fsync(fd), 0);
  ::close(fd);
}

// True when the file system reports holes (SEEK_DATA skips them).
bool SupportsHoles(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  off_t data = ::lseek(fd, 0, SEEK_DATA);
  int err = errno;
  ::close(fd);
  return data < 0 ? err == ENXIO : data > 0;
}

std::string Describe(const std::vector<nbd::Extent>& extents) {
  std::string s;
  for (const nbd::Extent& e : extents) {
    s += "{" + std::to_string(e.length) + ", " + std::to_string(e.flags) + "} ";
  }
  return s;
}

// (length, flags) pairs, comparable with EXPECT_EQ.
using Ext = std::pair<uint64_t, uint32_t>;
std::vector<Ext> Pairs(const std::vector<nbd::Extent>& extents) {
  std::vector<Ext> out;
  for (const nbd::Extent& e : extents) out.emplace_back(e.length, e.flags);
  return out;
}

// ---- Open ------------------------------------------------------------------------------------

TEST(BackingDiskOpen, ReportsNamePathAndSize) {
  TempDir dir;
  std::string path = NewSparseFile(dir, kFileBytes);
  auto d = BackingDisk::Open("disk0", path);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->name(), "disk0");
  EXPECT_EQ(d->path(), path);
  EXPECT_EQ(d->size_bytes(), kFileBytes);
  EXPECT_FALSE(d->is_block_device());
  EXPECT_GE(d->fd(), 0);
}

TEST(BackingDiskOpen, MissingFileFails) {
  TempDir dir;
  const std::string path = dir.file("no-such-file");
  auto d = BackingDisk::Open("disk0", path);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Status::Code::kIoError);
  EXPECT_NE(d.status().message().find(path), std::string::npos) << d.status().message();
}

TEST(BackingDiskOpen, EmptyFileFails) {
  TempDir dir;
  auto d = BackingDisk::Open("disk0", NewSparseFile(dir, 0));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(d.status().message().find("empty"), std::string::npos) << d.status().message();
}

TEST(BackingDiskOpen, DirectoryFails) {
  TempDir dir;
  auto d = BackingDisk::Open("disk0", dir.path());
  EXPECT_FALSE(d.ok());
}

TEST(BackingDiskOpen, SecondOpenOfSameFileFailsOnLock) {
  TempDir dir;
  std::string path = NewSparseFile(dir, kFileBytes);
  auto first = BackingDisk::Open("disk0", path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = BackingDisk::Open("disk1", path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(second.status().message().find("locked"), std::string::npos)
      << second.status().message();
}

TEST(BackingDiskOpen, ReopenAfterCloseSucceeds) {
  TempDir dir;
  std::string path = NewSparseFile(dir, kFileBytes);
  {
    auto first = BackingDisk::Open("disk0", path);
    ASSERT_TRUE(first.ok());
  }
  auto again = BackingDisk::Open("disk0", path);
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

TEST(BackingDiskOpen, MovedDiskKeepsItsLock) {
  TempDir dir;
  std::string path = NewSparseFile(dir, kFileBytes);
  std::optional<BackingDisk> held;
  {
    auto r = BackingDisk::Open("disk0", path);
    ASSERT_TRUE(r.ok());
    held.emplace(std::move(r).value());
  }
  EXPECT_GE(held->fd(), 0);
  EXPECT_FALSE(BackingDisk::Open("disk1", path).ok());
}

TEST(BackingDisk, SyncSucceeds) {
  TempDir dir;
  auto d = BackingDisk::Open("disk0", NewSparseFile(dir, kFileBytes));
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->Sync().ok());
}

// ---- Extents ---------------------------------------------------------------------------------

// A 1 MiB file whose only data is [256 KiB, 320 KiB).
class ExtentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = NewSparseFile(dir_, kFileBytes);
    WriteData(path_, 256 * kKiB, 64 * kKiB);
    if (HasFatalFailure()) return;
    if (!SupportsHoles(path_)) GTEST_SKIP() << "no holes on the file system of " << dir_.path();
    auto d = BackingDisk::Open("disk0", path_);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    disk_.emplace(std::move(d).value());
  }

  std::vector<nbd::Extent> Extents(uint64_t offset, uint64_t length, uint32_t max) {
    std::vector<nbd::Extent> out = {{1, 1}};  // must be cleared
    Status s = disk_->Extents(offset, length, max, &out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  TempDir dir_;
  std::string path_;
  std::optional<BackingDisk> disk_;
};

TEST_F(ExtentsTest, SparseFileReportsHoleDataHole) {
  auto e = Extents(0, kFileBytes, nbd::kMaxBlockStatusExtents);
  std::vector<Ext> want = {
      {256 * kKiB, kHoleFlags}, {64 * kKiB, 0}, {704 * kKiB, kHoleFlags}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST_F(ExtentsTest, MaxExtentsTwoStopsAfterData) {
  auto e = Extents(0, kFileBytes, 2);
  std::vector<Ext> want = {{256 * kKiB, kHoleFlags}, {64 * kKiB, 0}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST_F(ExtentsTest, MaxExtentsOneReportsOnlyTheFirst) {
  auto e = Extents(0, kFileBytes, 1);
  std::vector<Ext> want = {{256 * kKiB, kHoleFlags}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST_F(ExtentsTest, MaxExtentsOneStartingInDataReportsOnlyData) {
  auto e = Extents(256 * kKiB, 512 * kKiB, 1);
  std::vector<Ext> want = {{64 * kKiB, 0}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST_F(ExtentsTest, RangeInsideDataIsOneDataExtent) {
  auto e = Extents(260 * kKiB, 8 * kKiB, 16);
  std::vector<Ext> want = {{8 * kKiB, 0}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST_F(ExtentsTest, RangeInsideHoleIsOneHoleExtent) {
  auto e = Extents(512 * kKiB, 64 * kKiB, 16);
  std::vector<Ext> want = {{64 * kKiB, kHoleFlags}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST_F(ExtentsTest, RangeFromHoleIntoDataStopsAtRangeEnd) {
  auto e = Extents(128 * kKiB, 160 * kKiB, 16);
  std::vector<Ext> want = {{128 * kKiB, kHoleFlags}, {32 * kKiB, 0}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST_F(ExtentsTest, TrailingHoleRunsToEndOfFile) {
  auto e = Extents(300 * kKiB, kFileBytes - 300 * kKiB, 16);
  std::vector<Ext> want = {{20 * kKiB, 0}, {704 * kKiB, kHoleFlags}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST_F(ExtentsTest, ExtentsCoverTheWholeRangeExactly) {
  for (uint64_t offset : {uint64_t{0}, 4 * kKiB, 255 * kKiB, 319 * kKiB, 1000 * kKiB}) {
    uint64_t length = kFileBytes - offset;
    auto e = Extents(offset, length, nbd::kMaxBlockStatusExtents);
    uint64_t total = 0;
    for (const nbd::Extent& x : e) {
      EXPECT_GT(x.length, 0u);
      total += x.length;
    }
    EXPECT_EQ(total, length) << "offset " << offset << ": " << Describe(e);
  }
}

TEST(BackingDiskExtents, DataRunningToEndOfFile) {
  TempDir dir;
  std::string path = NewSparseFile(dir, kFileBytes);
  WriteData(path, kFileBytes - 64 * kKiB, 64 * kKiB);
  if (!SupportsHoles(path)) GTEST_SKIP() << "no holes on this file system";
  auto d = BackingDisk::Open("disk0", path);
  ASSERT_TRUE(d.ok());
  std::vector<nbd::Extent> e;
  ASSERT_TRUE(d->Extents(0, kFileBytes, 16, &e).ok());
  std::vector<Ext> want = {{kFileBytes - 64 * kKiB, kHoleFlags}, {64 * kKiB, 0}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST(BackingDiskExtents, FullyWrittenFileIsOneDataExtent) {
  TempDir dir;
  std::string path = NewSparseFile(dir, kFileBytes);
  WriteData(path, 0, kFileBytes);
  auto d = BackingDisk::Open("disk0", path);
  ASSERT_TRUE(d.ok());
  std::vector<nbd::Extent> e;
  ASSERT_TRUE(d->Extents(0, kFileBytes, 16, &e).ok());
  std::vector<Ext> want = {{kFileBytes, 0}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST(BackingDiskExtents, AllHoleFileIsOneHoleExtent) {
  TempDir dir;
  std::string path = NewSparseFile(dir, kFileBytes);
  if (!SupportsHoles(path)) GTEST_SKIP() << "no holes on this file system";
  auto d = BackingDisk::Open("disk0", path);
  ASSERT_TRUE(d.ok());
  std::vector<nbd::Extent> e;
  ASSERT_TRUE(d->Extents(0, kFileBytes, 16, &e).ok());
  std::vector<Ext> want = {{kFileBytes, kHoleFlags}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST(BackingDiskExtents, HoleOver4GiBIsSplitIntoExtentsThatFitU32) {
  // Extent lengths are 32 bits on the wire; a 10 GiB hole must come back in pieces.
  constexpr uint64_t kHuge = 10ull << 30;
  constexpr uint64_t kMaxPiece = 0xFFFFF000ull;  // 4 GiB - 4 KiB: under 2^32, 4 KiB aligned
  TempDir dir;
  std::string path = NewSparseFile(dir, kHuge);
  if (!SupportsHoles(path)) GTEST_SKIP() << "no holes on this file system";
  auto d = BackingDisk::Open("disk0", path);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  std::vector<nbd::Extent> e;
  ASSERT_TRUE(d->Extents(0, kHuge, 16, &e).ok());
  std::vector<Ext> want = {
      {kMaxPiece, kHoleFlags}, {kMaxPiece, kHoleFlags}, {kHuge - 2 * kMaxPiece, kHoleFlags}};
  EXPECT_EQ(Pairs(e), want) << Describe(e);
}

TEST(BackingDiskExtents, SplitHoleRespectsMaxExtents) {
  constexpr uint64_t kHuge = 10ull << 30;
  TempDir dir;
  std::string path = NewSparseFile(dir, kHuge);
  if (!SupportsHoles(path)) GTEST_SKIP() << "no holes on this file system";
  auto d = BackingDisk::Open("disk0", path);
  ASSERT_TRUE(d.ok());
  std::vector<nbd::Extent> e;
  ASSERT_TRUE(d->Extents(0, kHuge, 1, &e).ok());
  ASSERT_EQ(e.size(), 1u);
  EXPECT_LE(e[0].length, 0xFFFFFFFFull);
  EXPECT_EQ(e[0].flags, kHoleFlags);
}

}  // namespace
}  // namespace blockrep
