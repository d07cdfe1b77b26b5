// JournalTail against journals written by the real JournalWriter (records placed exactly
// where it reserves them): records come back in seq order and only below the limit, a seq
// whose write failed is skipped when a void marker forgives it and is corruption when not,
// a flipped byte is corruption that names the record, and reading follows the writer from
// one segment to the next, also when the segment it was reading is reclaimed under it.
#include "daemon/journal_tail.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <set>
#include <string>

#include "core/journal_format.h"
#include "core/journal_writer.h"
#include "core/test_temp_dir.h"

namespace blockrep {
namespace {

constexpr uint64_t kJournalId = 0x5eed5eed12345678ull;

class JournalTailTest : public ::testing::Test {
 protected:
  void Open(uint64_t segment_bytes = journal::kSegmentBytesTarget) {
    auto w = JournalWriter::Open(dir_.path(), kJournalId, 1, {}, 1ull << 40, segment_bytes);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    writer_ = std::move(w).value();
  }

  // Appends a write record of `bytes` bytes of `fill` at disk offset seq * 4096; returns its
  // seq. With write=false the slot is reserved but never written (a failed write).
  uint64_t Append(char fill, size_t bytes = 4096, bool write = true) {
    auto slot = writer_->Reserve(static_cast<uint32_t>(bytes));
    EXPECT_TRUE(slot.ok());
    const std::string data(bytes, fill);
    journal::RecordHeader h;
    h.kind = journal::RecordKind::kWrite;
    h.seq = slot->seq;
    h.offset = slot->seq * 4096;
    h.length = bytes;
    h.payload_bytes = static_cast<uint32_t>(bytes);
    h.timestamp_ns = 1000 + slot->seq;
    h.lowest_pending_seq = slot->lowest_pending;
    std::string rec(journal::RecordBytes(h.payload_bytes), '\0');
    journal::EncodeRecord(kJournalId, h, reinterpret_cast<const uint8_t*>(data.data()),
                          reinterpret_cast<uint8_t*>(rec.data()));
    std::memcpy(rec.data() + journal::kRecordHeaderBytes, data.data(), bytes);
    if (write) {
      EXPECT_EQ(::pwrite(slot->segment->fd.get(), rec.data(), rec.size(),
                         static_cast<off_t>(slot->file_offset)),
                static_cast<ssize_t>(rec.size()));
      writer_->MarkWritten(*slot);
    }
    writer_->Complete(slot->seq);
    offsets_[slot->seq] = {slot->segment->path, slot->file_offset};
    return slot->seq;
  }

  JournalTail Tail() {
    return JournalTail(dir_.path(), kJournalId, [this](uint64_t s) { return voided_.count(s) != 0; });
  }

  // Reads every record below limit; returns their seqs.
  std::vector<uint64_t> ReadAll(JournalTail& tail, uint64_t limit, Status* error = nullptr) {
    std::vector<uint64_t> seqs;
    while (true) {
      JournalTail::Record r;
      auto got = tail.Next(limit, &r);
      if (!got.ok()) {
        if (error != nullptr) *error = got.status();
        break;
      }
      if (got.value() == JournalTail::Got::kWait) break;
      EXPECT_EQ(r.payload[0], r.payload[r.header.payload_bytes - 1]);
      seqs.push_back(r.header.seq);
    }
    return seqs;
  }

  test::TempDir dir_;
  std::unique_ptr<JournalWriter> writer_;
  std::set<uint64_t> voided_;
  std::map<uint64_t, std::pair<std::string, uint64_t>> offsets_;
};

TEST_F(JournalTailTest, ReadsCompletedRecordsInSeqOrder) {
  Open();
  Append('a');
  Append('b', 100);
  Append('c', 70000);
  JournalTail tail = Tail();
  ASSERT_TRUE(tail.Seek(1).ok());
  EXPECT_EQ(ReadAll(tail, writer_->lowest_pending()), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(tail.next_seq(), 4u);
}

TEST_F(JournalTailTest, StopsAtTheLimitAndGoesOnLater) {
  Open();
  Append('a');
  Append('b');
  Append('c');
  JournalTail tail = Tail();
  ASSERT_TRUE(tail.Seek(1).ok());
  EXPECT_EQ(ReadAll(tail, 2), (std::vector<uint64_t>{1}));
  Append('d');
  EXPECT_EQ(ReadAll(tail, 5), (std::vector<uint64_t>{2, 3, 4}));
}

TEST_F(JournalTailTest, SeekSkipsEarlierRecords) {
  Open();
  for (char c = 'a'; c < 'f'; ++c) Append(c);
  JournalTail tail = Tail();
  ASSERT_TRUE(tail.Seek(4).ok());
  EXPECT_EQ(ReadAll(tail, 6), (std::vector<uint64_t>{4, 5}));
}

TEST_F(JournalTailTest, SeekBeforeTheOldestSegmentIsNotFound) {
  // A journal whose oldest segment starts at seq 10 (the earlier ones were reclaimed).
  auto w = JournalWriter::Open(dir_.path(), kJournalId, 10, {}, 1ull << 40);
  ASSERT_TRUE(w.ok());
  writer_ = std::move(w).value();
  Append('j');
  JournalTail tail = Tail();
  EXPECT_EQ(tail.Seek(5).code(), Status::Code::kNotFound);
  ASSERT_TRUE(tail.Seek(10).ok());
  EXPECT_EQ(ReadAll(tail, 11), (std::vector<uint64_t>{10}));
}

TEST_F(JournalTailTest, SkipsAVoidedSeqWhoseWriteFailed) {
  Open();
  Append('a');
  Append('b', 4096, /*write=*/false);  // reserved, never written
  Append('c');
  voided_.insert(2);
  JournalTail tail = Tail();
  ASSERT_TRUE(tail.Seek(1).ok());
  Status error;
  EXPECT_EQ(ReadAll(tail, 4, &error), (std::vector<uint64_t>{1, 3}));
  EXPECT_TRUE(error.ok()) << error.ToString();
}

TEST_F(JournalTailTest, AMissingSeqThatIsNotVoidedIsCorruption) {
  Open();
  Append('a');
  Append('b', 4096, /*write=*/false);
  Append('c');
  JournalTail tail = Tail();
  ASSERT_TRUE(tail.Seek(1).ok());
  Status error;
  EXPECT_EQ(ReadAll(tail, 4, &error), (std::vector<uint64_t>{1}));
  EXPECT_EQ(error.code(), Status::Code::kCorruption);
  EXPECT_NE(error.message().find("seq 2"), std::string::npos) << error.message();
}

TEST_F(JournalTailTest, AFlippedByteIsCorruptionNamingTheRecord) {
  Open();
  Append('a');
  Append('b');
  Append('c');
  const auto& [path, offset] = offsets_[2];
  UniqueFd fd(::open(path.c_str(), O_RDWR));
  const char flipped = 'B';
  ASSERT_EQ(::pwrite(fd.get(), &flipped, 1, static_cast<off_t>(offset + journal::kRecordHeaderBytes + 100)), 1);
  JournalTail tail = Tail();
  ASSERT_TRUE(tail.Seek(1).ok());
  Status error;
  EXPECT_EQ(ReadAll(tail, 4, &error), (std::vector<uint64_t>{1}));
  EXPECT_EQ(error.code(), Status::Code::kCorruption);
  EXPECT_NE(error.message().find("seq 2"), std::string::npos) << error.message();
  EXPECT_NE(error.message().find(journal::SegmentName(1)), std::string::npos) << error.message();
}

TEST_F(JournalTailTest, FollowsTheWriterIntoNewSegments) {
  Open(/*segment_bytes=*/16 << 10);  // a few records per segment
  std::vector<uint64_t> want;
  for (int i = 0; i < 20; ++i) want.push_back(Append(static_cast<char>('a' + i)));
  ASSERT_GT(writer_->segment_count(), 3u);
  JournalTail tail = Tail();
  ASSERT_TRUE(tail.Seek(1).ok());
  EXPECT_EQ(ReadAll(tail, writer_->lowest_pending()), want);
}

// The shipper reclaims a segment once the target acknowledged every record in it, which
// can happen while the reader still sits at the segment's end: it goes on to the next one.
TEST_F(JournalTailTest, GoesOnWhenItsSegmentIsReclaimedUnderIt) {
  Open(/*segment_bytes=*/16 << 10);  // two 4 KiB records per segment
  Append('a');
  Append('b');
  ASSERT_EQ(writer_->segment_count(), 1u);
  JournalTail tail = Tail();
  ASSERT_TRUE(tail.Seek(1).ok());
  EXPECT_EQ(ReadAll(tail, writer_->lowest_pending()), (std::vector<uint64_t>{1, 2}));
  const uint64_t c = Append('c');
  ASSERT_EQ(writer_->segment_count(), 2u);
  ASSERT_EQ(::unlink(offsets_[1].first.c_str()), 0);  // reclaimed through seq 2
  Status error;
  EXPECT_EQ(ReadAll(tail, writer_->lowest_pending(), &error), (std::vector<uint64_t>{c}));
  EXPECT_TRUE(error.ok()) << error.ToString();
}

TEST_F(JournalTailTest, AWindowReadBeforeARecordCompletedIsReadAgain) {
  Open();
  Append('a');
  JournalTail tail = Tail();
  ASSERT_TRUE(tail.Seek(1).ok());
  EXPECT_EQ(ReadAll(tail, 2), (std::vector<uint64_t>{1}));
  // The window now holds the segment as it was; the next record lands after it was read.
  Append('b');
  Append('c');
  EXPECT_EQ(ReadAll(tail, 4), (std::vector<uint64_t>{2, 3}));
}

}  // namespace
}  // namespace blockrep
