#include "target/point_view.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/journal_format.h"
#include "core/journal_reader.h"
#include "core/journal_index.h"
#include "core/journal_test_support.h"
#include "core/test_temp_dir.h"

namespace blockrep {
namespace {

constexpr uint64_t kJournalId = 0x5eedf00d;
constexpr uint64_t kDiskBytes = 1 << 20;

// A base image, a target journal written the way the target writes it (JournalWriter, small
// segments so that records spread over several), and a model of the disk after each record.
class PointViewTest : public ::testing::Test {
 public:  // the helpers below use them
  void SetUp() override {
    base_ = dir_.file("replica.img");
    journal_dir_ = dir_.file("journal");
    // The base holds a pattern in its first half; the second half is a hole past its end.
    std::vector<uint8_t> base(kDiskBytes / 2);
    for (size_t i = 0; i < base.size(); ++i) base[i] = static_cast<uint8_t>(i * 7 + 3);
    WriteFile(base_, base);
    model_.assign(kDiskBytes, 0);
    std::copy(base.begin(), base.end(), model_.begin());
    journal_ = std::make_unique<test::TestJournal>(journal_dir_, kJournalId);
  }

  static void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }

  // Appends one record; returns its seq and records the disk after it in states_.
  uint64_t Append(journal::RecordKind kind, uint64_t offset, uint64_t length, const uint8_t* data) {
    const uint64_t seq = journal_->Append(kind, offset, length, data);
    if (kind == journal::RecordKind::kWrite) {
      std::copy(data, data + length, model_.begin() + static_cast<long>(offset));
    } else {
      std::fill(model_.begin() + static_cast<long>(offset), model_.begin() + static_cast<long>(offset + length), 0);
    }
    states_[seq] = model_;
    return seq;
  }

  Result<std::unique_ptr<PointView>> View(uint64_t from, uint64_t through) {
    PointView::Options o;
    o.base_path = base_;
    o.journal_dir = journal_dir_;
    o.journal_id = kJournalId;
    o.disk_bytes = kDiskBytes;
    o.from_seq = from;
    o.through_seq = through;
    return PointView::Open(o);
  }

  static std::vector<uint8_t> ReadAll(const PointView& v) {
    std::vector<uint8_t> out(kDiskBytes);
    Status st = v.Read(0, kDiskBytes, out.data());
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }

  test::TempDir dir_;
  std::string base_;
  std::string journal_dir_;
  std::unique_ptr<test::TestJournal> journal_;
  std::vector<uint8_t> model_;
  std::map<uint64_t, std::vector<uint8_t>> states_;
};

// Random writes, zeroes and trims over several segments; returns their seqs.
std::vector<uint64_t> RandomHistory(PointViewTest* t, std::mt19937_64& rng) {
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 60; ++i) {
    const uint64_t length = 512 * (1 + rng() % 64);
    const uint64_t offset = (rng() % ((kDiskBytes - length) / 512)) * 512;
    const int what = static_cast<int>(rng() % 6);
    if (what == 0) {
      seqs.push_back(t->Append(journal::RecordKind::kZero, offset, length, nullptr));
    } else if (what == 1) {
      seqs.push_back(t->Append(journal::RecordKind::kTrim, offset, length, nullptr));
    } else {
      std::vector<uint8_t> data(length);
      for (auto& b : data) b = static_cast<uint8_t>(rng());
      seqs.push_back(t->Append(journal::RecordKind::kWrite, offset, length, data.data()));
    }
  }
  EXPECT_GT(t->journal_->writer().segment_count(), 3u) << "the records should span several segments";
  return seqs;
}

// The view at every seq reads exactly the disk as it was after that record, whole and in
// random pieces.
void CheckEveryPoint(PointViewTest* t, const std::vector<uint64_t>& seqs, std::mt19937_64& rng,
                     int expect_indexed_min) {
  for (uint64_t s : seqs) {
    auto v = t->View(1, s);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ((*v)->records(), s);
    if (s > seqs.back() / 2) {
      EXPECT_GE((*v)->indexed_segments(), expect_indexed_min) << "seq " << s;
    }
    const std::vector<uint8_t>& want = t->states_[s];
    ASSERT_TRUE(PointViewTest::ReadAll(**v) == want) << "view through seq " << s;
    for (int q = 0; q < 20; ++q) {
      const uint64_t off = rng() % kDiskBytes;
      const uint64_t len = 1 + rng() % std::min<uint64_t>(kDiskBytes - off, 70000);
      std::vector<uint8_t> got(len);
      ASSERT_TRUE((*v)->Read(off, len, got.data()).ok());
      ASSERT_TRUE(std::equal(got.begin(), got.end(), want.begin() + static_cast<long>(off)))
          << "seq " << s << " read at " << off << "+" << len;
    }
  }
}

TEST_F(PointViewTest, ViewBeforeAnyRecordIsTheBase) {
  std::vector<uint8_t> data(4096, 0xAB);
  Append(journal::RecordKind::kWrite, 0, 4096, data.data());
  std::vector<uint8_t> base_state(kDiskBytes, 0);
  for (size_t i = 0; i < kDiskBytes / 2; ++i) base_state[i] = static_cast<uint8_t>(i * 7 + 3);
  auto v = View(1, 0);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ((*v)->records(), 0u);
  EXPECT_TRUE(ReadAll(**v) == base_state);
}

TEST_F(PointViewTest, EveryPointReadsTheDiskAsItWasThen) {
  std::mt19937_64 rng(7);
  const auto seqs = RandomHistory(this, rng);
  CheckEveryPoint(this, seqs, rng, 0);
}

TEST_F(PointViewTest, EveryPointReadsTheSameFromTheSegmentIndexes) {
  std::mt19937_64 rng(8);
  const auto seqs = RandomHistory(this, rng);
  auto written = journal::IndexSealedSegments(journal_dir_, kJournalId);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  ASSERT_GT(written.value(), 2);
  CheckEveryPoint(this, seqs, rng, 1);
}

TEST_F(PointViewTest, ACorruptIndexIsPassedOverForAScan) {
  std::mt19937_64 rng(9);
  const auto seqs = RandomHistory(this, rng);
  ASSERT_TRUE(journal::IndexSealedSegments(journal_dir_, kJournalId).ok());
  auto segments = journal::ListSegments(journal_dir_);
  ASSERT_TRUE(segments.ok());
  // Garble the second segment's index: the view reads the first from its index and scans
  // from the second on.
  const std::string idx = journal_dir_ + "/" + journal::IndexNameFor((*segments)[1].second);
  int fd = ::open(idx.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(::pwrite(fd, junk, sizeof(junk), 100), 8);
  ::close(fd);
  auto v = View(1, seqs.back());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ((*v)->indexed_segments(), 1);
  EXPECT_TRUE(ReadAll(**v) == states_[seqs.back()]);
}

TEST_F(PointViewTest, ViewPastTheJournalsEndIsRefused) {
  std::vector<uint8_t> data(4096, 1);
  const uint64_t s = Append(journal::RecordKind::kWrite, 0, 4096, data.data());
  auto v = View(1, s + 5);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("ends at seq"), std::string::npos) << v.status().ToString();
}

TEST_F(PointViewTest, CorruptRecordBelowThePointIsRefused) {
  std::vector<uint8_t> data(4096, 2);
  Append(journal::RecordKind::kWrite, 0, 4096, data.data());
  const uint64_t second = Append(journal::RecordKind::kWrite, 8192, 4096, data.data());
  Append(journal::RecordKind::kWrite, 16384, 4096, data.data());
  // Flip a payload byte of the first record: it no longer verifies, and later ones show it
  // had completed.
  auto segments = journal::ListSegments(journal_dir_);
  ASSERT_TRUE(segments.ok());
  const std::string path = journal_dir_ + "/" + segments->front().second;
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t b = 0;
  const off_t at = static_cast<off_t>(journal::kSegmentHeaderBytes + journal::kRecordHeaderBytes + 100);
  ASSERT_EQ(::pread(fd, &b, 1, at), 1);
  b ^= 0xFF;
  ASSERT_EQ(::pwrite(fd, &b, 1, at), 1);
  ::close(fd);
  auto v = View(1, second);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kCorruption) << v.status().ToString();
}

TEST_F(PointViewTest, RecordsBelowFromSeqAreLeftToTheBase) {
  std::vector<uint8_t> a(4096, 0x11), b(4096, 0x22);
  Append(journal::RecordKind::kWrite, 0, 4096, a.data());
  const uint64_t s2 = Append(journal::RecordKind::kWrite, 4096, 4096, b.data());
  // A view from seq 2 on: record 1 is taken to be in the base already (it is not, here),
  // so its range reads the base.
  auto v = View(s2, s2);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ((*v)->records(), 1u);
  std::vector<uint8_t> got(8192);
  ASSERT_TRUE((*v)->Read(0, 8192, got.data()).ok());
  for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(got[i], static_cast<uint8_t>(i * 7 + 3));
  for (size_t i = 4096; i < 8192; ++i) ASSERT_EQ(got[i], 0x22);
}

}  // namespace
}  // namespace blockrep
