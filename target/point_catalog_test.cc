#include "target/point_catalog.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/test_temp_dir.h"

namespace blockrep {
namespace {

RecoveryPoint Point(uint64_t target_seq, RecoveryPoint::Type type = RecoveryPoint::Type::kCrashConsistent,
                    std::string label = "policy") {
  RecoveryPoint p;
  p.type = type;
  p.id = target_seq * 10;
  p.target_seq = target_seq;
  p.time_ns = 1'765'000'000'000'000'000ull + target_seq;
  p.lag_ns = 1234 * target_seq;
  p.label = std::move(label);
  return p;
}

off_t FileSize(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_size;
}

void FlipByte(const std::string& path, off_t at) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, at), 1);
  b ^= 0x40;
  ASSERT_EQ(::pwrite(fd, &b, 1, at), 1);
  ::close(fd);
}

class PointCatalogTest : public ::testing::Test {
 protected:
  std::unique_ptr<PointCatalog> Open(PointCatalog::Loaded* loaded) {
    auto c = PointCatalog::Open(path_, loaded);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  test::TempDir dir_;
  std::string path_ = dir_.file("points.log");
};

TEST(PointCatalogCodec, EntryRoundTripsAndLongLabelsAreCut) {
  uint8_t e[PointCatalog::kEntryBytes];
  RecoveryPoint p = Point(42, RecoveryPoint::Type::kAppConsistent, "before-upgrade-of-the-database");
  PointCatalog::Encode(p, e);
  RecoveryPoint q;
  ASSERT_TRUE(PointCatalog::Decode(e, &q));
  EXPECT_EQ(q.label, "before-upgrade-o");  // the first 16 bytes
  q.label = p.label;
  EXPECT_EQ(q, p);
}

TEST(PointCatalogCodec, EveryFlippedByteIsCaught) {
  uint8_t e[PointCatalog::kEntryBytes];
  PointCatalog::Encode(Point(7), e);
  for (size_t i = 0; i < PointCatalog::kEntryBytes; ++i) {
    uint8_t f[PointCatalog::kEntryBytes];
    std::memcpy(f, e, sizeof(f));
    f[i] ^= 0x01;
    RecoveryPoint q;
    EXPECT_FALSE(PointCatalog::Decode(f, &q)) << "byte " << i;
  }
}

TEST_F(PointCatalogTest, NewCatalogIsEmptyAndAppendsSurviveReopening) {
  PointCatalog::Loaded loaded;
  auto c = Open(&loaded);
  ASSERT_TRUE(c);
  EXPECT_TRUE(loaded.points.empty());
  EXPECT_FALSE(loaded.torn_tail);
  ASSERT_TRUE(c->Append(Point(5)).ok());
  ASSERT_TRUE(c->Append(Point(9, RecoveryPoint::Type::kAppConsistent, "nightly")).ok());
  c.reset();
  auto d = Open(&loaded);
  ASSERT_TRUE(d);
  ASSERT_EQ(loaded.points.size(), 2u);
  EXPECT_EQ(loaded.points[0], Point(5));
  EXPECT_EQ(loaded.points[1], Point(9, RecoveryPoint::Type::kAppConsistent, "nightly"));
}

TEST_F(PointCatalogTest, TornLastEntryIsCutOffAndTheNextAppendLandsInItsPlace) {
  PointCatalog::Loaded loaded;
  auto c = Open(&loaded);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Append(Point(1)).ok());
  ASSERT_TRUE(c->Append(Point(2)).ok());
  c.reset();
  // Half of a third entry, as a crash mid-append leaves it.
  uint8_t e[PointCatalog::kEntryBytes];
  PointCatalog::Encode(Point(3), e);
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, e, 30), 30);
  ::close(fd);
  auto d = Open(&loaded);
  ASSERT_TRUE(d);
  EXPECT_TRUE(loaded.torn_tail);
  EXPECT_EQ(loaded.points.size(), 2u);
  EXPECT_EQ(FileSize(path_), 2 * 64);
  ASSERT_TRUE(d->Append(Point(4)).ok());
  d.reset();
  auto e2 = Open(&loaded);
  ASSERT_TRUE(e2);
  EXPECT_FALSE(loaded.torn_tail);
  ASSERT_EQ(loaded.points.size(), 3u);
  EXPECT_EQ(loaded.points[2], Point(4));
}

TEST_F(PointCatalogTest, GarbledLastEntryIsTornNotCorrupt) {
  PointCatalog::Loaded loaded;
  auto c = Open(&loaded);
  ASSERT_TRUE(c->Append(Point(1)).ok());
  ASSERT_TRUE(c->Append(Point(2)).ok());
  c.reset();
  FlipByte(path_, 64 + 20);
  auto d = Open(&loaded);
  ASSERT_TRUE(d);
  EXPECT_TRUE(loaded.torn_tail);
  ASSERT_EQ(loaded.points.size(), 1u);
}

TEST_F(PointCatalogTest, BadEntryWithEntriesAfterItIsCorruption) {
  PointCatalog::Loaded loaded;
  auto c = Open(&loaded);
  for (uint64_t s = 1; s <= 3; ++s) ASSERT_TRUE(c->Append(Point(s)).ok());
  c.reset();
  FlipByte(path_, 64 + 9);
  auto d = PointCatalog::Open(path_, &loaded);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Status::Code::kCorruption);
  EXPECT_NE(d.status().message().find("entry 1"), std::string::npos) << d.status().ToString();
}

TEST_F(PointCatalogTest, EntriesOutOfOrderAreCorruption) {
  PointCatalog::Loaded loaded;
  auto c = Open(&loaded);
  ASSERT_TRUE(c->Append(Point(8)).ok());
  ASSERT_TRUE(c->Append(Point(3)).ok());  // a caller bug the next load must not accept
  c.reset();
  auto d = PointCatalog::Open(path_, &loaded);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Status::Code::kCorruption);
}

TEST_F(PointCatalogTest, RewriteReplacesTheCatalogAndAppendsGoOnAfterIt) {
  PointCatalog::Loaded loaded;
  auto c = Open(&loaded);
  for (uint64_t s = 1; s <= 5; ++s) ASSERT_TRUE(c->Append(Point(s)).ok());
  ASSERT_TRUE(c->Rewrite({Point(4), Point(5)}).ok());  // points 1-3 merged away
  ASSERT_TRUE(c->Append(Point(6)).ok());
  c.reset();
  auto d = Open(&loaded);
  ASSERT_TRUE(d);
  ASSERT_EQ(loaded.points.size(), 3u);
  EXPECT_EQ(loaded.points[0], Point(4));
  EXPECT_EQ(loaded.points[2], Point(6));
  EXPECT_FALSE(::access((path_ + ".tmp").c_str(), F_OK) == 0) << "the temporary file is left";
}

}  // namespace
}  // namespace blockrep
