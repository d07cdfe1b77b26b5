// Checks DirtyBitmap: which region bits Mark sets (across region and page boundaries) and
// which pages it reports, AllSet, Ranges (merged, clipped to a disk size that is not a
// multiple of the region), Merge, and the persistent form: Save/Load and WriteTo round trips
// through real files in a fresh temporary directory, and Load's refusal of a wrong disk
// size, a bad magic, a flipped header byte, an unsupported version or a short file.
#include "core/dirty_bitmap.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/test_temp_dir.h"
#include "core/unique_fd.h"

namespace blockrep {
namespace {

constexpr uint64_t kRegion = DirtyBitmap::kRegionBytes;
// Regions whose bits one page holds: 4096 bytes of 8 bits.
constexpr uint64_t kRegionsPerPage = DirtyBitmap::kPageBytes * 8;
using Pages = std::vector<uint32_t>;
using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

// ---- Bits ---------------------------------------------------------------------------------

TEST(DirtyBitmap, NewBitmapIsEmpty) {
  DirtyBitmap bm(10 * kRegion + 1);
  EXPECT_EQ(bm.regions(), 11u);
  EXPECT_EQ(bm.disk_bytes(), 10 * kRegion + 1);
  EXPECT_TRUE(bm.empty());
  EXPECT_EQ(bm.dirty_regions(), 0u);
  EXPECT_TRUE(bm.Ranges().empty());
  for (uint64_t r = 0; r < bm.regions(); ++r) EXPECT_FALSE(bm.Test(r)) << r;
}

TEST(DirtyBitmap, MarkWithinOneRegionSetsOnlyThatRegion) {
  DirtyBitmap bm(10 * kRegion);
  EXPECT_TRUE(bm.Mark(3 * kRegion + 100, 512));
  EXPECT_TRUE(bm.Test(3));
  EXPECT_FALSE(bm.Test(2));
  EXPECT_FALSE(bm.Test(4));
  EXPECT_EQ(bm.dirty_regions(), 1u);
}

TEST(DirtyBitmap, MarkAcrossARegionBoundarySetsBothRegions) {
  DirtyBitmap bm(10 * kRegion);
  EXPECT_TRUE(bm.Mark(kRegion - 1, 2));  // the last byte of region 0 and the first of region 1
  EXPECT_TRUE(bm.Test(0));
  EXPECT_TRUE(bm.Test(1));
  EXPECT_FALSE(bm.Test(2));
  EXPECT_EQ(bm.dirty_regions(), 2u);
}

TEST(DirtyBitmap, MarkEndingOnARegionBoundaryLeavesTheNextRegionClear) {
  DirtyBitmap bm(10 * kRegion);
  bm.Mark(kRegion, kRegion);
  EXPECT_FALSE(bm.Test(0));
  EXPECT_TRUE(bm.Test(1));
  EXPECT_FALSE(bm.Test(2));
  EXPECT_EQ(bm.dirty_regions(), 1u);
}

TEST(DirtyBitmap, MarkReturnsFalseWhenNothingChanged) {
  DirtyBitmap bm(10 * kRegion);
  ASSERT_TRUE(bm.Mark(0, 3 * kRegion));
  Pages pages;
  EXPECT_FALSE(bm.Mark(kRegion, kRegion, &pages));
  EXPECT_FALSE(bm.Mark(100, 2 * kRegion, &pages));
  EXPECT_TRUE(pages.empty());
  EXPECT_EQ(bm.dirty_regions(), 3u);
}

TEST(DirtyBitmap, MarkOfZeroBytesChangesNothing) {
  DirtyBitmap bm(10 * kRegion);
  Pages pages;
  EXPECT_FALSE(bm.Mark(5 * kRegion, 0, &pages));
  EXPECT_TRUE(bm.empty());
  EXPECT_TRUE(pages.empty());
}

TEST(DirtyBitmap, MarkReportsEachChangedPageOnce) {
  DirtyBitmap bm(3 * kRegionsPerPage * kRegion);  // bits fill three pages
  ASSERT_EQ(bm.pages(), 3u);
  Pages pages;
  EXPECT_TRUE(bm.Mark(0, 1000 * kRegion, &pages));  // many regions, all in page 0
  EXPECT_EQ(pages, (Pages{0}));

  pages.clear();
  // Regions 32767 and 32768: the last bit of page 0 and the first of page 1.
  EXPECT_TRUE(bm.Mark((kRegionsPerPage - 1) * kRegion, 2 * kRegion, &pages));
  EXPECT_EQ(pages, (Pages{0, 1}));
  EXPECT_TRUE(bm.Test(kRegionsPerPage - 1));
  EXPECT_TRUE(bm.Test(kRegionsPerPage));
}

TEST(DirtyBitmap, MarkReportsOnlyPagesWhoseBitsChanged) {
  DirtyBitmap bm(3 * kRegionsPerPage * kRegion);
  bm.Mark(0, kRegionsPerPage * kRegion);  // all of page 0
  Pages pages;
  EXPECT_TRUE(bm.Mark((kRegionsPerPage - 10) * kRegion, 20 * kRegion, &pages));
  EXPECT_EQ(pages, (Pages{1}));
  pages.clear();
  EXPECT_TRUE(bm.Mark(0, 3 * kRegionsPerPage * kRegion, &pages));  // page 0 and 1 partly set
  EXPECT_EQ(pages, (Pages{1, 2}));
  EXPECT_EQ(bm.dirty_regions(), 3 * kRegionsPerPage);
}

TEST(DirtyBitmap, PagesOfListsEveryPageTheRangeTouches) {
  DirtyBitmap bm(3 * kRegionsPerPage * kRegion);
  Pages pages;
  bm.PagesOf((kRegionsPerPage - 1) * kRegion, kRegionsPerPage * kRegion + 2 * kRegion, &pages);
  EXPECT_EQ(pages, (Pages{0, 1, 2}));
  pages.clear();
  bm.PagesOf(kRegion, 0, &pages);
  EXPECT_TRUE(pages.empty());
}

TEST(DirtyBitmap, AllSetOnlyWhenEveryTouchedRegionIsSet) {
  DirtyBitmap bm(10 * kRegion);
  bm.Mark(2 * kRegion, 2 * kRegion);  // regions 2, 3
  bm.Mark(5 * kRegion, 1);            // region 5
  EXPECT_TRUE(bm.AllSet(2 * kRegion, 2 * kRegion));
  EXPECT_TRUE(bm.AllSet(2 * kRegion + 10, kRegion));
  EXPECT_FALSE(bm.AllSet(2 * kRegion, 3 * kRegion));  // region 4 is clear
  EXPECT_FALSE(bm.AllSet(kRegion, 2 * kRegion));      // region 1 is clear
  EXPECT_FALSE(bm.AllSet(4 * kRegion - 1, 2));        // 3 set, 4 clear
  EXPECT_TRUE(bm.AllSet(5 * kRegion + kRegion - 1, 1));
  EXPECT_TRUE(bm.AllSet(9 * kRegion, 0));  // nothing touched
}

TEST(DirtyBitmap, RangesMergeAdjacentRegions) {
  DirtyBitmap bm(10 * kRegion);
  bm.Mark(0, 1);
  bm.Mark(kRegion, 1);
  bm.Mark(3 * kRegion, 1);
  bm.Mark(5 * kRegion, 3 * kRegion);
  EXPECT_EQ(bm.Ranges(),
            (Ranges{{0, 2 * kRegion}, {3 * kRegion, kRegion}, {5 * kRegion, 3 * kRegion}}));
}

TEST(DirtyBitmap, RangesClipAtTheDiskEnd) {
  DirtyBitmap bm(2 * kRegion + 100);  // the last region is 100 bytes long
  ASSERT_EQ(bm.regions(), 3u);
  bm.Mark(2 * kRegion + 50, 1);
  EXPECT_EQ(bm.Ranges(), (Ranges{{2 * kRegion, 100}}));
  bm.Mark(kRegion, 1);
  EXPECT_EQ(bm.Ranges(), (Ranges{{kRegion, kRegion + 100}}));
}

TEST(DirtyBitmap, MarkAllCoversTheWholeDisk) {
  DirtyBitmap bm(2 * kRegion + 100);
  bm.MarkAll();
  EXPECT_EQ(bm.dirty_regions(), 3u);
  EXPECT_EQ(bm.Ranges(), (Ranges{{0, 2 * kRegion + 100}}));
  EXPECT_TRUE(bm.AllSet(0, 2 * kRegion + 100));
}

TEST(DirtyBitmap, MarkAllOnAOneByteDisk) {
  DirtyBitmap bm(1);
  EXPECT_EQ(bm.regions(), 1u);
  bm.MarkAll();
  EXPECT_EQ(bm.dirty_regions(), 1u);
  EXPECT_TRUE(bm.Test(0));
  EXPECT_EQ(bm.Ranges(), (Ranges{{0, 1}}));
}

TEST(DirtyBitmap, MarkAllOnAnEmptyDiskDoesNothing) {
  DirtyBitmap bm(0);
  EXPECT_EQ(bm.regions(), 0u);
  bm.MarkAll();
  EXPECT_TRUE(bm.empty());
  EXPECT_TRUE(bm.Ranges().empty());
}

TEST(DirtyBitmap, MergeOrsTheBitsAndRecountsDirtyRegions) {
  DirtyBitmap a(10 * kRegion), b(10 * kRegion);
  a.Mark(0, 2 * kRegion);        // 0, 1
  b.Mark(kRegion, 2 * kRegion);  // 1, 2
  b.Mark(9 * kRegion, kRegion);  // 9
  a.Merge(b);
  EXPECT_EQ(a.dirty_regions(), 4u);
  EXPECT_EQ(a.Ranges(), (Ranges{{0, 3 * kRegion}, {9 * kRegion, kRegion}}));
  EXPECT_EQ(b.dirty_regions(), 3u);  // the other side is unchanged
}

TEST(DirtyBitmap, ClearEmptiesIt) {
  DirtyBitmap bm(10 * kRegion);
  bm.MarkAll();
  bm.Clear();
  EXPECT_TRUE(bm.empty());
  EXPECT_FALSE(bm.Test(0));
  EXPECT_TRUE(bm.Mark(0, 1));  // and it can be marked again
}

TEST(DirtyBitmap, DirtyRegionsCountsEachRegionOnce) {
  DirtyBitmap bm(100 * kRegion);
  bm.Mark(0, 10 * kRegion);
  bm.Mark(5 * kRegion, 10 * kRegion);  // 5..14, half already set
  bm.Mark(50 * kRegion, 1);
  EXPECT_EQ(bm.dirty_regions(), 16u);
}

// ---- Files --------------------------------------------------------------------------------

class DirtyBitmapFileTest : public ::testing::Test {
 protected:
  // Rewrites the file's header with `edit` applied and the checksum recomputed, so only the
  // edited field is wrong.
  template <typename Edit>
  void RewriteHeader(Edit edit) {
    UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    uint8_t h[DirtyBitmap::kHeaderBytes];
    ASSERT_EQ(::pread(fd.get(), h, sizeof(h), 0), static_cast<ssize_t>(sizeof(h)));
    edit(h);
    const uint64_t sum = XXH3_64bits_withSeed(h, 56, 0);
    std::memcpy(h + 56, &sum, 8);
    ASSERT_EQ(::pwrite(fd.get(), h, sizeof(h), 0), static_cast<ssize_t>(sizeof(h)));
  }
  void PokeByte(uint64_t offset, uint8_t value) {
    UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::pwrite(fd.get(), &value, 1, static_cast<off_t>(offset)), 1);
  }
  uint8_t PeekByte(uint64_t offset) {
    UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    uint8_t b = 0;
    EXPECT_EQ(::pread(fd.get(), &b, 1, static_cast<off_t>(offset)), 1);
    return b;
  }
  uint64_t FileBytes() {
    struct stat st;
    EXPECT_EQ(::stat(path_.c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_size);
  }

  test::TempDir dir_;
  const std::string path_ = dir_.file("bitmap");
};

TEST_F(DirtyBitmapFileTest, SaveThenLoadRoundTrip) {
  const uint64_t disk =
      3 * kRegionsPerPage * kRegion + 12345;  // four pages of bits, the last partial
  DirtyBitmap bm(disk);
  bm.Mark(0, 1);
  bm.Mark(7 * kRegion, 3 * kRegion);
  bm.Mark((kRegionsPerPage - 1) * kRegion, 2 * kRegion);
  bm.Mark(disk - 1, 1);
  ASSERT_TRUE(bm.Save(path_).ok());

  EXPECT_EQ(FileBytes(), bm.FileBytes());
  EXPECT_EQ(FileBytes(), DirtyBitmap::kHeaderBytes + 4 * DirtyBitmap::kPageBytes);
  EXPECT_NE(::access((path_ + ".tmp").c_str(), F_OK), 0);  // renamed into place

  auto loaded = DirtyBitmap::Load(path_, disk);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->dirty_regions(), bm.dirty_regions());
  EXPECT_EQ(loaded->Ranges(), bm.Ranges());
  EXPECT_EQ(loaded->disk_bytes(), disk);
}

TEST_F(DirtyBitmapFileTest, SaveReplacesAnOlderFile) {
  DirtyBitmap first(10 * kRegion);
  first.MarkAll();
  ASSERT_TRUE(first.Save(path_).ok());
  DirtyBitmap second(10 * kRegion);
  second.Mark(4 * kRegion, 1);
  ASSERT_TRUE(second.Save(path_).ok());
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->Ranges(), (Ranges{{4 * kRegion, kRegion}}));
}

TEST_F(DirtyBitmapFileTest, FileLayoutPutsRegionBitsAfterTheHeader) {
  DirtyBitmap bm(10 * kRegion);
  bm.Mark(0, 1);            // region 0: byte 0 bit 0
  bm.Mark(9 * kRegion, 1);  // region 9: byte 1 bit 1
  ASSERT_TRUE(bm.Save(path_).ok());
  EXPECT_EQ(PeekByte(DirtyBitmap::kHeaderBytes), 0x01);
  EXPECT_EQ(PeekByte(DirtyBitmap::kHeaderBytes + 1), 0x02);
  EXPECT_EQ(DirtyBitmap::PageFileOffset(1), DirtyBitmap::kHeaderBytes + DirtyBitmap::kPageBytes);
  char magic[8];
  UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_EQ(::pread(fd.get(), magic, 8, 0), 8);
  EXPECT_EQ(std::memcmp(magic, "BRBITMAP", 8), 0);
}

TEST_F(DirtyBitmapFileTest, WriteToInPlaceThenLoad) {
  DirtyBitmap bm(10 * kRegion);
  ASSERT_TRUE(bm.Save(path_).ok());
  UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  bm.Mark(2 * kRegion, 2 * kRegion);
  bm.Mark(8 * kRegion, 1);
  ASSERT_TRUE(bm.WriteTo(fd.get(), path_).ok());
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->Ranges(), (Ranges{{2 * kRegion, 2 * kRegion}, {8 * kRegion, kRegion}}));
  EXPECT_EQ(loaded->dirty_regions(), 3u);
}

TEST_F(DirtyBitmapFileTest, WriteToCreatesTheWholeFileInAnEmptyOne) {
  DirtyBitmap bm(10 * kRegion);
  bm.Mark(kRegion, 1);
  UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  ASSERT_TRUE(bm.WriteTo(fd.get(), path_).ok());
  EXPECT_EQ(FileBytes(), bm.FileBytes());
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->Ranges(), (Ranges{{kRegion, kRegion}}));
}

TEST_F(DirtyBitmapFileTest, LoadRejectsAWrongDiskSize) {
  DirtyBitmap bm(10 * kRegion);
  ASSERT_TRUE(bm.Save(path_).ok());
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion + 1);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kCorruption);
  EXPECT_NE(loaded.status().message().find("made for a disk of " + std::to_string(10 * kRegion) +
                                           " bytes"),
            std::string::npos)
      << loaded.status().ToString();
}

TEST_F(DirtyBitmapFileTest, LoadRejectsADiskSizeWithTheSameRegionCount) {
  DirtyBitmap bm(100);
  ASSERT_TRUE(bm.Save(path_).ok());
  auto loaded = DirtyBitmap::Load(path_, 200);  // also one region, but not the same disk
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kCorruption);
}

TEST_F(DirtyBitmapFileTest, LoadRejectsABadMagic) {
  DirtyBitmap bm(10 * kRegion);
  ASSERT_TRUE(bm.Save(path_).ok());
  PokeByte(0, 'X');
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("bad magic"), std::string::npos)
      << loaded.status().ToString();
}

TEST_F(DirtyBitmapFileTest, LoadRejectsAFlippedHeaderByte) {
  DirtyBitmap bm(10 * kRegion);
  ASSERT_TRUE(bm.Save(path_).ok());
  PokeByte(25, PeekByte(25) ^ 0x01);  // inside the disk size
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kCorruption);
  EXPECT_NE(loaded.status().message().find("checksum"), std::string::npos)
      << loaded.status().ToString();
}

TEST_F(DirtyBitmapFileTest, LoadRejectsAnUnsupportedVersion) {
  DirtyBitmap bm(10 * kRegion);
  ASSERT_TRUE(bm.Save(path_).ok());
  ASSERT_NO_FATAL_FAILURE(RewriteHeader([](uint8_t* h) { h[8] = 2; }));
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("unsupported version 2"), std::string::npos)
      << loaded.status().ToString();
}

TEST_F(DirtyBitmapFileTest, LoadRejectsAnotherRegionSize) {
  DirtyBitmap bm(10 * kRegion);
  ASSERT_TRUE(bm.Save(path_).ok());
  ASSERT_NO_FATAL_FAILURE(RewriteHeader([](uint8_t* h) {
    const uint64_t region = 4096;
    std::memcpy(h + 16, &region, 8);
  }));
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("region size 4096"), std::string::npos)
      << loaded.status().ToString();
}

TEST_F(DirtyBitmapFileTest, LoadRejectsAFileWithShortBits) {
  DirtyBitmap bm(10 * kRegion);
  bm.MarkAll();
  ASSERT_TRUE(bm.Save(path_).ok());
  ASSERT_EQ(::truncate(path_.c_str(), DirtyBitmap::kHeaderBytes + 100), 0);
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kCorruption);
  EXPECT_NE(loaded.status().message().find("short (100 of 4096 bytes of bits)"), std::string::npos)
      << loaded.status().ToString();
}

TEST_F(DirtyBitmapFileTest, LoadRejectsAFileShorterThanItsHeader) {
  DirtyBitmap bm(10 * kRegion);
  ASSERT_TRUE(bm.Save(path_).ok());
  ASSERT_EQ(::truncate(path_.c_str(), 100), 0);
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("short header"), std::string::npos)
      << loaded.status().ToString();
}

TEST_F(DirtyBitmapFileTest, LoadOfAMissingFileIsAnIoError) {
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kIoError);
  EXPECT_NE(loaded.status().message().find(path_), std::string::npos);
}

TEST_F(DirtyBitmapFileTest, LoadIgnoresPaddingBitsPastTheLastRegion) {
  DirtyBitmap bm(10 * kRegion);  // regions 0..9: byte 0 and bits 0-1 of byte 1
  bm.Mark(9 * kRegion, 1);
  ASSERT_TRUE(bm.Save(path_).ok());
  PokeByte(DirtyBitmap::kHeaderBytes + 1, 0xFE);    // region 9 and padding bits 10..15
  PokeByte(DirtyBitmap::kHeaderBytes + 100, 0xFF);  // all padding
  auto loaded = DirtyBitmap::Load(path_, 10 * kRegion);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->dirty_regions(), 1u);
  EXPECT_EQ(loaded->Ranges(), (Ranges{{9 * kRegion, kRegion}}));
}

}  // namespace
}  // namespace blockrep
