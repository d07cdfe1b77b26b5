#include "target/view_overlay.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "core/journal_test_support.h"
#include "core/test_temp_dir.h"
#include "target/point_view.h"

namespace blockrep {
namespace {

constexpr uint64_t kJournalId = 0x0e71a7;
// Not a multiple of the block size: the last block is short.
constexpr uint64_t kDiskBytes = (256 << 10) + 1000;

class ViewOverlayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The view underneath: a patterned base and a few journal records over it.
    std::vector<uint8_t> base(kDiskBytes);
    for (size_t i = 0; i < base.size(); ++i) base[i] = static_cast<uint8_t>(i * 13 + 1);
    const std::string base_path = dir_.file("replica.img");
    int fd = ::open(base_path.c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, base.data(), base.size(), 0), static_cast<ssize_t>(base.size()));
    ::close(fd);
    model_ = base;
    test::TestJournal journal(dir_.file("journal"), kJournalId);
    std::vector<uint8_t> w(10000, 0x77);
    uint64_t last = journal.Append(journal::RecordKind::kWrite, 5000, w.size(), w.data());
    std::copy(w.begin(), w.end(), model_.begin() + 5000);
    last = journal.Append(journal::RecordKind::kZero, 100000, 20000, nullptr);
    std::fill(model_.begin() + 100000, model_.begin() + 120000, 0);
    PointView::Options o;
    o.base_path = base_path;
    o.journal_dir = dir_.file("journal");
    o.journal_id = kJournalId;
    o.disk_bytes = kDiskBytes;
    o.from_seq = 1;
    o.through_seq = last;
    auto v = PointView::Open(o);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    view_ = std::move(v).value();
    overlay_dir_ = dir_.file("views/test");
    ASSERT_EQ(::mkdir(dir_.file("views").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir(overlay_dir_.c_str(), 0700), 0);
  }

  std::unique_ptr<ViewOverlay> OpenOverlay() {
    auto o = ViewOverlay::Open(overlay_dir_, kDiskBytes);
    EXPECT_TRUE(o.ok()) << o.status().ToString();
    return o.ok() ? std::move(o).value() : nullptr;
  }

  void Write(ViewOverlay& o, uint64_t offset, const std::vector<uint8_t>& data) {
    ASSERT_TRUE(o.Write(*view_, offset, data.size(), data.data()).ok());
    std::copy(data.begin(), data.end(), model_.begin() + static_cast<long>(offset));
  }

  std::vector<uint8_t> ReadAll(const ViewOverlay& o) {
    std::vector<uint8_t> out(kDiskBytes);
    Status st = o.Read(*view_, 0, kDiskBytes, out.data());
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }

  test::TempDir dir_;
  std::unique_ptr<PointView> view_;
  std::string overlay_dir_;
  std::vector<uint8_t> model_;
};

TEST_F(ViewOverlayTest, NewOverlayReadsTheViewUnderneath) {
  auto o = OpenOverlay();
  ASSERT_TRUE(o);
  EXPECT_EQ(o->written_blocks(), 0u);
  EXPECT_TRUE(ReadAll(*o) == model_);
}

TEST_F(ViewOverlayTest, WritesReadBackOverTheViewAndLeaveItUntouched) {
  auto o = OpenOverlay();
  ASSERT_TRUE(o);
  std::vector<uint8_t> before(kDiskBytes);
  ASSERT_TRUE(view_->Read(0, kDiskBytes, before.data()).ok());
  Write(*o, 4096 * 3 + 100, std::vector<uint8_t>(50, 0xA1));       // inside one block
  Write(*o, 4096 * 10 - 7, std::vector<uint8_t>(4096 * 2 + 14, 0xB2));  // spans 4 blocks
  Write(*o, kDiskBytes - 300, std::vector<uint8_t>(300, 0xC3));     // the short last block
  EXPECT_TRUE(ReadAll(*o) == model_);
  EXPECT_EQ(o->written_blocks(), 1u + 4u + 1u);
  EXPECT_TRUE(o->Written(3));
  EXPECT_FALSE(o->Written(4));
  std::vector<uint8_t> after(kDiskBytes);
  ASSERT_TRUE(view_->Read(0, kDiskBytes, after.data()).ok());
  EXPECT_TRUE(before == after) << "the view underneath changed";
}

TEST_F(ViewOverlayTest, RandomWritesMatchTheModelAndSurviveFlushAndReopen) {
  std::mt19937_64 rng(11);
  {
    auto o = OpenOverlay();
    ASSERT_TRUE(o);
    for (int i = 0; i < 200; ++i) {
      const uint64_t off = rng() % kDiskBytes;
      const uint64_t len = 1 + rng() % std::min<uint64_t>(kDiskBytes - off, 9000);
      std::vector<uint8_t> d(len);
      for (auto& b : d) b = static_cast<uint8_t>(rng());
      Write(*o, off, d);
      if (i % 50 == 0) {
        ASSERT_TRUE(ReadAll(*o) == model_) << "after write " << i;
      }
    }
    ASSERT_TRUE(ReadAll(*o) == model_);
    ASSERT_TRUE(o->Flush().ok());
  }
  auto again = OpenOverlay();
  ASSERT_TRUE(again);
  EXPECT_GT(again->written_blocks(), 0u);
  EXPECT_TRUE(ReadAll(*again) == model_);
}

TEST_F(ViewOverlayTest, WritesNotFlushedAreNotInTheMap) {
  {
    auto o = OpenOverlay();
    ASSERT_TRUE(o);
    std::vector<uint8_t> d(4096, 0x42);
    ASSERT_TRUE(o->Write(*view_, 0, d.size(), d.data()).ok());
    ASSERT_TRUE(o->Flush().ok());
    ASSERT_TRUE(o->Write(*view_, 8192, d.size(), d.data()).ok());  // no flush after it
  }
  auto again = OpenOverlay();
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->Written(0));
  EXPECT_FALSE(again->Written(2));
  EXPECT_EQ(again->written_blocks(), 1u);
}

TEST_F(ViewOverlayTest, MapOfAnotherDiskSizeIsRefused) {
  { ASSERT_TRUE(OpenOverlay()); }
  auto o = ViewOverlay::Open(overlay_dir_, kDiskBytes + 4096);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), Status::Code::kCorruption);
  EXPECT_NE(o.status().message().find("another disk size"), std::string::npos) << o.status().ToString();
}

TEST_F(ViewOverlayTest, GarbledMapHeaderIsRefused) {
  { ASSERT_TRUE(OpenOverlay()); }
  const std::string map = overlay_dir_ + "/overlay.map";
  int fd = ::open(map.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const uint8_t x = 0xEE;
  ASSERT_EQ(::pwrite(fd, &x, 1, 20), 1);
  ::close(fd);
  auto o = ViewOverlay::Open(overlay_dir_, kDiskBytes);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), Status::Code::kCorruption);
}

}  // namespace
}  // namespace blockrep
