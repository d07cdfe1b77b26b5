#include "core/journal_index.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "core/journal_reader.h"
#include "core/journal_test_support.h"
#include "core/test_temp_dir.h"

namespace blockrep::journal {
namespace {

constexpr uint64_t kId = 0xab5c155a;

class JournalIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<uint8_t> data(20000, 0x5a);
    for (int i = 0; i < 30; ++i) {
      const uint64_t off = static_cast<uint64_t>(i) * 8192;
      if (i % 5 == 4) {
        journal_.Append(RecordKind::kZero, off, 4096, nullptr, 1000 + i);
      } else {
        journal_.Append(RecordKind::kWrite, off, 4096 + 512 * (i % 7), data.data(), 1000 + i);
      }
    }
    auto list = ListSegments(journal_.dir());
    ASSERT_TRUE(list.ok());
    segments_ = list.value();
    ASSERT_GE(segments_.size(), 3u);
  }

  // What a scan says the records of segment i are, as index entries.
  std::vector<IndexEntry> Scanned(size_t i) {
    std::vector<IndexEntry> out;
    ScanOptions o;
    o.journal_id = kId;
    o.visitor = [&](const RecordView& r) -> Status {
      if (*r.segment != segments_[i].second) return Status::Ok();
      out.push_back(IndexEntryOf(r));
      return Status::Ok();
    };
    EXPECT_TRUE(ScanJournal(journal_.dir(), o).ok());
    return out;
  }

  void Poke(const std::string& path, off_t at) {
    int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t b = 0;
    ASSERT_EQ(::pread(fd, &b, 1, at), 1);
    b ^= 0x10;
    ASSERT_EQ(::pwrite(fd, &b, 1, at), 1);
    ::close(fd);
  }

  std::string IndexPath(size_t i) { return journal_.dir() + "/" + IndexNameFor(segments_[i].second); }

  test::TempDir dir_;
  test::TestJournal journal_{dir_.file("journal"), kId};
  std::vector<std::pair<uint64_t, std::string>> segments_;
};

TEST(JournalIndexName, ReplacesTheExtension) {
  EXPECT_EQ(IndexNameFor("0000000000000001.hrl"), "0000000000000001.idx");
}

TEST_F(JournalIndexTest, IndexesEverySealedSegmentWithWhatAScanFinds) {
  auto n = IndexSealedSegments(journal_.dir(), kId);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n.value(), static_cast<int>(segments_.size()) - 1);  // not the newest
  for (size_t i = 0; i + 1 < segments_.size(); ++i) {
    auto idx = ReadSegmentIndex(journal_.dir(), segments_[i].second, kId);
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    EXPECT_EQ(idx->first_seq, segments_[i].first);
    EXPECT_FALSE(idx->entries.empty());
    EXPECT_TRUE(idx->entries == Scanned(i)) << "segment " << i;
  }
  auto newest = ReadSegmentIndex(journal_.dir(), segments_.back().second, kId);
  EXPECT_EQ(newest.status().code(), Status::Code::kNotFound);
  // Again: everything is indexed already.
  auto again = IndexSealedSegments(journal_.dir(), kId);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), 0);
}

TEST_F(JournalIndexTest, CorruptHeaderOrEntriesAreCaughtAndRebuilt) {
  ASSERT_TRUE(IndexSealedSegments(journal_.dir(), kId).ok());
  Poke(IndexPath(0), 20);                         // the header's first seq
  Poke(IndexPath(1), kIndexHeaderBytes + 50);     // an entry
  EXPECT_EQ(ReadSegmentIndex(journal_.dir(), segments_[0].second, kId).status().code(), Status::Code::kCorruption);
  auto bad = ReadSegmentIndex(journal_.dir(), segments_[1].second, kId);
  EXPECT_EQ(bad.status().code(), Status::Code::kCorruption);
  EXPECT_NE(bad.status().message().find("entries checksum"), std::string::npos) << bad.status().ToString();
  auto n = IndexSealedSegments(journal_.dir(), kId);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n.value(), 2);
  for (size_t i : {0u, 1u}) {
    auto idx = ReadSegmentIndex(journal_.dir(), segments_[i].second, kId);
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    EXPECT_TRUE(idx->entries == Scanned(i));
  }
}

TEST_F(JournalIndexTest, IndexOfASegmentThatGrewIsStale) {
  ASSERT_TRUE(IndexSealedSegments(journal_.dir(), kId).ok());
  const std::string seg = journal_.dir() + "/" + segments_[0].second;
  ASSERT_EQ(::truncate(seg.c_str(), 1 << 20), 0);
  auto idx = ReadSegmentIndex(journal_.dir(), segments_[0].second, kId);
  EXPECT_EQ(idx.status().code(), Status::Code::kCorruption);
  EXPECT_NE(idx.status().message().find("stale"), std::string::npos) << idx.status().ToString();
}

TEST_F(JournalIndexTest, AnotherJournalsIndexIsRefused) {
  ASSERT_TRUE(IndexSealedSegments(journal_.dir(), kId).ok());
  auto idx = ReadSegmentIndex(journal_.dir(), segments_[0].second, kId + 1);
  EXPECT_EQ(idx.status().code(), Status::Code::kCorruption);
}

TEST_F(JournalIndexTest, IndexTruncatedByACrashIsRefused) {
  ASSERT_TRUE(IndexSealedSegments(journal_.dir(), kId).ok());
  ASSERT_EQ(::truncate(IndexPath(0).c_str(), kIndexHeaderBytes + kIndexEntryBytes), 0);
  EXPECT_EQ(ReadSegmentIndex(journal_.dir(), segments_[0].second, kId).status().code(),
            Status::Code::kCorruption);
}

TEST_F(JournalIndexTest, CorruptJournalIsNotIndexed) {
  // A payload byte of the first segment's first record: later records show it completed.
  Poke(journal_.dir() + "/" + segments_[0].second, kSegmentHeaderBytes + kRecordHeaderBytes + 10);
  auto n = IndexSealedSegments(journal_.dir(), kId);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), Status::Code::kCorruption);
}

}  // namespace
}  // namespace blockrep::journal
