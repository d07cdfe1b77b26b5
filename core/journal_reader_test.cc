// Checks ScanJournal against the reading rules of docs/formats/journal.md ("Reading: torn
// records and corruption"): each test lays out real segment files in a fresh temporary
// directory with the format's own encoders (written byte for byte with pwrite, then torn,
// garbled, padded or left out as a crash or damage would), scans them, and checks which
// records were visited and what the summary says was dropped, forgiven or corrupt.
#include "core/journal_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/journal_format.h"
#include "core/test_temp_dir.h"
#include "core/unique_fd.h"

namespace blockrep::journal {
namespace {

constexpr uint64_t kJournalId = 0x1122334455667788ull;
constexpr uint64_t kOtherJournalId = 0x0badc0ffee15f00dull;

// One record's bytes as the writer lays them out: header, payload, zero padding.
std::string EncodeFullRecord(uint64_t journal_id, const RecordHeader& h,
                             const std::string& payload) {
  std::string out(RecordBytes(h.payload_bytes), '\0');
  EncodeRecord(journal_id, h, reinterpret_cast<const uint8_t*>(payload.data()),
               reinterpret_cast<uint8_t*>(out.data()));
  std::memcpy(out.data() + kRecordHeaderBytes, payload.data(), payload.size());
  return out;
}

RecordHeader WriteHeader(uint64_t seq, uint64_t lowest_pending, uint64_t disk_offset,
                         const std::string& data) {
  RecordHeader h;
  h.kind = RecordKind::kWrite;
  h.seq = seq;
  h.offset = disk_offset;
  h.length = data.size();
  h.payload_bytes = static_cast<uint32_t>(data.size());
  h.timestamp_ns = 1795400000000000000ull + seq;
  h.lowest_pending_seq = lowest_pending;
  return h;
}

RecordHeader MarkerHeader(uint64_t seq, uint64_t lowest_pending, MarkerType type,
                          const std::string& body) {
  RecordHeader h;
  h.kind = RecordKind::kMarker;
  h.marker = type;
  h.seq = seq;
  h.payload_bytes = static_cast<uint32_t>(body.size());
  h.timestamp_ns = 1795400000000000000ull + seq;
  h.lowest_pending_seq = lowest_pending;
  return h;
}

// A segment file being built: a header, then records appended one after another at the
// offsets the writer would give them. Each Add returns the record's file offset.
class SegmentBuilder {
 public:
  // header_first_seq: what the header claims (normally first_seq, the name's seq).
  SegmentBuilder(const std::string& dir, uint64_t first_seq, uint64_t journal_id = kJournalId,
                 uint64_t header_first_seq = 0)
      : name_(SegmentName(first_seq)), path_(dir + "/" + name_), journal_id_(journal_id) {
    fd_ = UniqueFd(::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    EXPECT_TRUE(fd_.valid()) << path_ << ": " << std::strerror(errno);
    uint8_t header[kSegmentHeaderBytes];
    EncodeSegmentHeader({journal_id, header_first_seq != 0 ? header_first_seq : first_seq, 1},
                        header);
    WriteAt(0, std::string(reinterpret_cast<const char*>(header), sizeof(header)));
    end_ = kSegmentHeaderBytes;
  }

  uint64_t AddWrite(uint64_t seq, uint64_t lowest_pending, uint64_t disk_offset,
                    const std::string& data) {
    return AddRaw(
        EncodeFullRecord(journal_id_, WriteHeader(seq, lowest_pending, disk_offset, data), data));
  }
  uint64_t AddZero(uint64_t seq, uint64_t lowest_pending, uint64_t disk_offset, uint64_t length) {
    RecordHeader h = WriteHeader(seq, lowest_pending, disk_offset, "");
    h.kind = RecordKind::kZero;
    h.length = length;
    return AddRaw(EncodeFullRecord(journal_id_, h, ""));
  }
  uint64_t AddMarker(uint64_t seq, uint64_t lowest_pending, MarkerType type,
                     const std::string& body) {
    return AddRaw(
        EncodeFullRecord(journal_id_, MarkerHeader(seq, lowest_pending, type, body), body));
  }
  // A write record encoded with another journal's id.
  uint64_t AddForeignWrite(uint64_t seq, uint64_t lowest_pending, const std::string& data) {
    return AddRaw(
        EncodeFullRecord(kOtherJournalId, WriteHeader(seq, lowest_pending, 0, data), data));
  }
  // Bytes exactly as given (a torn record, another record's copy).
  uint64_t AddRaw(const std::string& bytes) {
    const uint64_t at = end_;
    WriteAt(at, bytes);
    end_ += bytes.size();
    return at;
  }
  // Leaves `bytes` zero bytes (space reserved for a record that was never written).
  uint64_t Skip(uint64_t bytes) {
    const uint64_t at = end_;
    end_ += bytes;
    EXPECT_EQ(::ftruncate(fd_.get(), static_cast<off_t>(end_)), 0);
    return at;
  }
  void FlipByte(uint64_t offset) {
    uint8_t b = 0;
    EXPECT_EQ(::pread(fd_.get(), &b, 1, static_cast<off_t>(offset)), 1);
    b ^= 0x20;
    EXPECT_EQ(::pwrite(fd_.get(), &b, 1, static_cast<off_t>(offset)), 1);
  }
  void Truncate(uint64_t bytes) { EXPECT_EQ(::ftruncate(fd_.get(), static_cast<off_t>(bytes)), 0); }

  const std::string& name() const { return name_; }
  uint64_t end() const { return end_; }

 private:
  void WriteAt(uint64_t offset, const std::string& bytes) {
    EXPECT_EQ(::pwrite(fd_.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset)),
              static_cast<ssize_t>(bytes.size()));
  }

  std::string name_;
  std::string path_;
  uint64_t journal_id_;
  UniqueFd fd_;
  uint64_t end_ = 0;
};

struct Visited {
  uint64_t seq;
  RecordKind kind;
  std::string payload;
  std::string segment;
  uint64_t file_offset;
};

class JournalReaderTest : public ::testing::Test {
 protected:
  // Scans dir_, recording every visited record in visited_. A failed scan fails the test and
  // returns an empty summary.
  ScanSummary Scan(uint64_t visit_from_seq = 0, bool skip_segments_below_visit = false) {
    visited_.clear();
    ScanOptions opt;
    opt.journal_id = kJournalId;
    opt.visit_from_seq = visit_from_seq;
    opt.skip_segments_below_visit = skip_segments_below_visit;
    opt.visitor = [this](const RecordView& r) {
      visited_.push_back(
          {r.header.seq, r.header.kind,
           std::string(reinterpret_cast<const char*>(r.payload), r.header.payload_bytes),
           *r.segment, r.file_offset});
      return Status::Ok();
    };
    auto s = ScanJournal(dir_.path(), opt);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : ScanSummary{};
  }

  std::vector<uint64_t> VisitedSeqs() const {
    std::vector<uint64_t> seqs;
    for (const Visited& v : visited_) seqs.push_back(v.seq);
    return seqs;
  }

  void WriteFile(const std::string& name, const std::string& bytes) {
    UniqueFd fd(::open(dir_.file(name).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid()) << std::strerror(errno);
    ASSERT_EQ(::pwrite(fd.get(), bytes.data(), bytes.size(), 0),
              static_cast<ssize_t>(bytes.size()));
  }

  test::TempDir dir_;
  std::vector<Visited> visited_;
};

using Seqs = std::vector<uint64_t>;

// ---- A clean journal ---------------------------------------------------------------------

TEST_F(JournalReaderTest, EmptyDirectoryIsAnEmptyCleanJournal) {
  ScanSummary s = Scan();
  EXPECT_FALSE(s.corruption.has_value());
  EXPECT_EQ(s.records, 0u);
  EXPECT_EQ(s.first_seq, 0u);
  EXPECT_EQ(s.last_seq, 0u);
  EXPECT_EQ(s.horizon, 0u);
  EXPECT_TRUE(s.segments.empty());
  EXPECT_TRUE(visited_.empty());
}

TEST_F(JournalReaderTest, CleanJournalVisitsEveryRecordInSeqOrderWithItsPayload) {
  SegmentBuilder seg1(dir_.path(), 1);
  const uint64_t off1 = seg1.AddWrite(1, 1, 0, "alpha");
  const uint64_t off2 = seg1.AddWrite(2, 1, 4096, std::string(4096, 'b'));
  const uint64_t off3 = seg1.AddZero(3, 3, 8192, 4096);
  SegmentBuilder seg4(dir_.path(), 4);
  const uint64_t off4 = seg4.AddWrite(4, 4, 0, "delta");
  const uint64_t off5 = seg4.AddMarker(5, 5, MarkerType::kRecoveryPoint, "before-upgrade");
  const uint64_t off6 = seg4.AddWrite(6, 5, 100, "f");

  Scan();

  ASSERT_EQ(VisitedSeqs(), (Seqs{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(visited_[0].payload, "alpha");
  EXPECT_EQ(visited_[1].payload, std::string(4096, 'b'));
  EXPECT_EQ(visited_[2].kind, RecordKind::kZero);
  EXPECT_EQ(visited_[2].payload, "");
  EXPECT_EQ(visited_[3].payload, "delta");
  EXPECT_EQ(visited_[4].kind, RecordKind::kMarker);
  EXPECT_EQ(visited_[4].payload, "before-upgrade");
  EXPECT_EQ(visited_[5].payload, "f");
  EXPECT_EQ(visited_[0].segment, "0000000000000001.hrl");
  EXPECT_EQ(visited_[3].segment, "0000000000000004.hrl");
  EXPECT_EQ(off1, kSegmentHeaderBytes);
  EXPECT_EQ(off2, kSegmentHeaderBytes + RecordBytes(5));
  const std::vector<uint64_t> offsets = {off1, off2, off3, off4, off5, off6};
  for (size_t i = 0; i < offsets.size(); ++i) {
    EXPECT_EQ(visited_[i].file_offset, offsets[i]) << "seq " << visited_[i].seq;
  }
}

TEST_F(JournalReaderTest, CleanJournalSummary) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  seg1.AddWrite(2, 1, 512, "bb");
  seg1.AddWrite(3, 2, 1024, "ccc");
  SegmentBuilder seg4(dir_.path(), 4);
  seg4.AddWrite(4, 4, 0, "d");
  seg4.AddWrite(5, 4, 0, "e");

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value());
  EXPECT_EQ(s.records, 5u);
  EXPECT_EQ(s.first_seq, 1u);
  EXPECT_EQ(s.last_seq, 5u);
  EXPECT_EQ(s.horizon, 4u);  // the largest lowest-pending seq
  EXPECT_EQ(s.checkpoint_applied_below, 0u);
  EXPECT_TRUE(s.gaps.empty());
  EXPECT_TRUE(s.dropped.empty());
  EXPECT_TRUE(s.voided.empty());
  ASSERT_EQ(s.segments.size(), 2u);
  EXPECT_EQ(s.segments[0].name, "0000000000000001.hrl");
  EXPECT_EQ(s.segments[0].first_seq, 1u);
  EXPECT_EQ(s.segments[0].records, 3u);
  EXPECT_EQ(s.segments[0].last_seq, 3u);
  EXPECT_EQ(s.segments[0].end_offset, seg1.end());
  EXPECT_EQ(s.segments[0].file_bytes, seg1.end());
  EXPECT_EQ(s.segments[0].torn_tail_bytes, 0u);
  EXPECT_FALSE(s.segments[0].header_torn);
  EXPECT_EQ(s.segments[1].first_seq, 4u);
  EXPECT_EQ(s.segments[1].records, 2u);
  EXPECT_EQ(s.segments[1].last_seq, 5u);
  EXPECT_EQ(s.segments[1].end_offset, seg4.end());
}

TEST_F(JournalReaderTest, FirstSegmentMayStartAfterSeqOne) {
  // Reclaim deleted the older segments: nothing before seq 100 is missing.
  SegmentBuilder seg(dir_.path(), 100);
  seg.AddWrite(100, 100, 0, "x");
  seg.AddWrite(101, 101, 0, "y");
  ScanSummary s = Scan();
  EXPECT_FALSE(s.corruption.has_value());
  EXPECT_EQ(s.first_seq, 100u);
  EXPECT_EQ(s.last_seq, 101u);
  EXPECT_TRUE(s.gaps.empty());
  EXPECT_EQ(VisitedSeqs(), (Seqs{100, 101}));
}

TEST_F(JournalReaderTest, FlushCheckpointGivesCheckpointAppliedBelow) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddWrite(2, 1, 0, "b");
  seg.AddMarker(3, 3, MarkerType::kFlushCheckpoint, EncodeCheckpointBody(3));
  seg.AddWrite(4, 4, 0, "c");
  ScanSummary s = Scan();
  EXPECT_FALSE(s.corruption.has_value());
  EXPECT_EQ(s.checkpoint_applied_below, 3u);
  EXPECT_EQ(s.records, 4u);
}

TEST_F(JournalReaderTest, LaterFlushCheckpointMovesAppliedBelowOn) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddMarker(2, 2, MarkerType::kFlushCheckpoint, EncodeCheckpointBody(2));
  seg.AddWrite(3, 3, 0, "b");
  seg.AddMarker(4, 4, MarkerType::kFlushCheckpoint, EncodeCheckpointBody(4));
  EXPECT_EQ(Scan().checkpoint_applied_below, 4u);
}

TEST_F(JournalReaderTest, VoidMarkerSeqsAreReportedSorted) {
  // Seqs 2 and 3 were allocated but never written (failed journal writes); a void marker
  // says so.
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddMarker(4, 4, MarkerType::kVoid, EncodeVoidBody({3, 2}));
  seg.AddWrite(5, 5, 0, "b");
  ScanSummary s = Scan();
  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  EXPECT_EQ(s.voided, (Seqs{2, 3}));
  EXPECT_TRUE(s.dropped.empty());
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 4, 5}));
}

// ---- Torn tails ----------------------------------------------------------------------------

TEST_F(JournalReaderTest, TornRecordAtSegmentEnd) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddWrite(2, 2, 0, "b");
  // Seq 3's header and the first 1000 of its 4096 payload bytes reached the file.
  const std::string rec3 = EncodeFullRecord(
      kJournalId, WriteHeader(3, 3, 0, std::string(4096, 'c')), std::string(4096, 'c'));
  const uint64_t off3 = seg.AddRaw(rec3.substr(0, kRecordHeaderBytes + 1000));

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value());
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 2}));
  EXPECT_EQ(s.last_seq, 2u);
  ASSERT_EQ(s.segments.size(), 1u);
  EXPECT_EQ(s.segments[0].end_offset, off3);
  EXPECT_EQ(s.segments[0].torn_tail_bytes, kRecordHeaderBytes + 1000);
  EXPECT_TRUE(s.dropped.empty());  // the seqs of a torn tail are unknown
  EXPECT_TRUE(s.gaps.empty());
}

TEST_F(JournalReaderTest, GarbledLastRecordIsATornTail) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddWrite(2, 2, 0, "b");
  const uint64_t off3 = seg.AddWrite(3, 2, 0, std::string(300, 'c'));
  seg.FlipByte(off3 + kRecordHeaderBytes + 150);

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value());
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 2}));
  ASSERT_EQ(s.segments.size(), 1u);
  EXPECT_EQ(s.segments[0].end_offset, off3);
  EXPECT_EQ(s.segments[0].torn_tail_bytes, RecordBytes(300));
  EXPECT_TRUE(s.dropped.empty());
}

TEST_F(JournalReaderTest, PartialRecordHeaderAtSegmentEndIsATornTail) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  const std::string rec2 = EncodeFullRecord(kJournalId, WriteHeader(2, 2, 0, "b"), "b");
  const uint64_t off2 = seg.AddRaw(rec2.substr(0, 40));  // less than a record header

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value());
  EXPECT_EQ(VisitedSeqs(), (Seqs{1}));
  ASSERT_EQ(s.segments.size(), 1u);
  EXPECT_EQ(s.segments[0].end_offset, off2);
  EXPECT_EQ(s.segments[0].torn_tail_bytes, 40u);
}

TEST_F(JournalReaderTest, ZeroPaddingAfterTheLastRecordIsACleanEnd) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddWrite(2, 2, 0, "b");
  const uint64_t end = seg.end();
  seg.Truncate(end + (64 << 10));  // the file was extended, nothing written there

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value());
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 2}));
  ASSERT_EQ(s.segments.size(), 1u);
  EXPECT_EQ(s.segments[0].file_bytes, end + (64 << 10));
  EXPECT_EQ(s.segments[0].end_offset, end);
  EXPECT_EQ(s.segments[0].torn_tail_bytes, 0u);
  EXPECT_TRUE(s.gaps.empty());
}

TEST_F(JournalReaderTest, ZeroBytesShorterThanARecordHeaderAreACleanEnd) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.Truncate(seg.end() + 10);
  ScanSummary s = Scan();
  EXPECT_FALSE(s.corruption.has_value());
  ASSERT_EQ(s.segments.size(), 1u);
  EXPECT_EQ(s.segments[0].torn_tail_bytes, 0u);
  EXPECT_EQ(VisitedSeqs(), (Seqs{1}));
}

TEST_F(JournalReaderTest, SegmentWithOnlyAHeaderIsClean) {
  SegmentBuilder seg(dir_.path(), 1);
  ScanSummary s = Scan();
  EXPECT_FALSE(s.corruption.has_value());
  EXPECT_EQ(s.records, 0u);
  ASSERT_EQ(s.segments.size(), 1u);
  EXPECT_EQ(s.segments[0].records, 0u);
  EXPECT_EQ(s.segments[0].end_offset, kSegmentHeaderBytes);
  EXPECT_FALSE(s.segments[0].header_torn);
}

// ---- Holes: dropped or corrupt ------------------------------------------------------------

TEST_F(JournalReaderTest, GarbledRecordAtOrAboveTheHorizonIsDropped) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddWrite(2, 2, 0, "b");
  const uint64_t off3 = seg.AddWrite(3, 3, 0, std::string(100, 'c'));
  seg.FlipByte(off3 + kRecordHeaderBytes + 7);
  // Seq 3 was still in flight when 4 and 5 were submitted.
  const uint64_t off4 = seg.AddWrite(4, 3, 0, "d");
  seg.AddWrite(5, 3, 0, "e");

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  EXPECT_EQ(s.horizon, 3u);
  EXPECT_EQ(s.dropped, (Seqs{3}));
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 2, 4, 5}));
  ASSERT_EQ(s.gaps.size(), 1u);
  EXPECT_EQ(s.gaps[0].first_seq, 3u);
  EXPECT_EQ(s.gaps[0].last_seq, 3u);
  EXPECT_EQ(s.gaps[0].segment, seg.name());
  EXPECT_EQ(s.gaps[0].offset, off3);
  EXPECT_EQ(s.gaps[0].bytes, off4 - off3);
  EXPECT_EQ(s.segments[0].torn_tail_bytes, 0u);
}

TEST_F(JournalReaderTest, NeverWrittenRecordAboveTheHorizonIsDropped) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.Skip(RecordBytes(200));  // seq 2's space, all zero: its write never happened
  seg.AddWrite(3, 2, 0, "c");
  seg.AddWrite(4, 2, 0, "d");

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  EXPECT_EQ(s.dropped, (Seqs{2}));
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 3, 4}));
}

TEST_F(JournalReaderTest, SeveralAdjacentTornRecordsAreAllDropped) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  const uint64_t off2 = seg.AddWrite(2, 2, 0, "b");
  const uint64_t off3 = seg.AddWrite(3, 2, 0, "c");
  seg.FlipByte(off2 + 8);  // seq field
  seg.FlipByte(off3 + kRecordHeaderBytes);
  seg.AddWrite(4, 2, 0, "d");

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  EXPECT_EQ(s.dropped, (Seqs{2, 3}));
  ASSERT_EQ(s.gaps.size(), 1u);
  EXPECT_EQ(s.gaps[0].first_seq, 2u);
  EXPECT_EQ(s.gaps[0].last_seq, 3u);
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 4}));
}

TEST_F(JournalReaderTest, ChecksumMismatchMidJournal) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddWrite(2, 2, 0, "b");
  const uint64_t off3 = seg.AddWrite(3, 3, 0, std::string(100, 'c'));
  seg.FlipByte(off3 + kRecordHeaderBytes + 50);
  // Seq 3 had completed before seq 4 was submitted: it was acknowledged.
  seg.AddWrite(4, 4, 0, "d");
  seg.AddWrite(5, 5, 0, "e");

  ScanSummary s = Scan();

  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("segment 0000000000000001.hrl offset " + std::to_string(off3)),
            std::string::npos)
      << *s.corruption;
  EXPECT_NE(s.corruption->find("seq 3"), std::string::npos) << *s.corruption;
  EXPECT_TRUE(s.dropped.empty());
}

TEST_F(JournalReaderTest, MissingSeqBelowTheHorizonIsCorruption) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddWrite(2, 2, 0, "b");
  const uint64_t off4 = seg.AddWrite(4, 4, 0, "d");  // no bytes at all for seq 3

  ScanSummary s = Scan();

  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("segment 0000000000000001.hrl offset " + std::to_string(off4)),
            std::string::npos)
      << *s.corruption;
  EXPECT_NE(s.corruption->find("seq 3"), std::string::npos) << *s.corruption;
}

TEST_F(JournalReaderTest, VoidedSeqBelowTheHorizonIsNotCorruption) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddWrite(2, 2, 0, "b");
  const uint64_t off3 = seg.AddWrite(3, 3, 0, "c");
  seg.FlipByte(off3 + kRecordHeaderBytes);
  seg.AddMarker(4, 4, MarkerType::kVoid, EncodeVoidBody({3}));
  seg.AddWrite(5, 5, 0, "e");

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  EXPECT_EQ(s.horizon, 5u);
  EXPECT_EQ(s.voided, (Seqs{3}));
  EXPECT_TRUE(s.dropped.empty());
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 2, 4, 5}));
}

TEST_F(JournalReaderTest, VoidMarkerForgivesOnlyTheSeqsItLists) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddMarker(4, 4, MarkerType::kVoid, EncodeVoidBody({3}));  // 2 is missing too
  ScanSummary s = Scan();
  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("seq 2"), std::string::npos) << *s.corruption;
}

TEST_F(JournalReaderTest, MalformedVoidMarkerBodyIsCorruption) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  const uint64_t off2 = seg.AddMarker(2, 2, MarkerType::kVoid, "12345");  // not 8 + 8n bytes
  ScanSummary s = Scan();
  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("offset " + std::to_string(off2)), std::string::npos)
      << *s.corruption;
  EXPECT_NE(s.corruption->find("void marker seq 2"), std::string::npos) << *s.corruption;
}

TEST_F(JournalReaderTest, StaleCopyOfAnEarlierRecordIsSkipped) {
  // Bytes that verify but carry an old seq are not the next record; the scan looks on.
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  seg.AddWrite(2, 2, 0, "b");
  seg.AddRaw(EncodeFullRecord(kJournalId, WriteHeader(1, 1, 0, "a"), "a"));
  seg.AddWrite(3, 3, 0, "c");

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 2, 3}));
  EXPECT_TRUE(s.dropped.empty());
  EXPECT_EQ(s.records, 3u);
}

// ---- Segments -------------------------------------------------------------------------------

TEST_F(JournalReaderTest, SegmentMissingFromTheMiddleBelowTheHorizonIsCorruption) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  seg1.AddWrite(2, 2, 0, "b");
  seg1.AddWrite(3, 3, 0, "c");
  // Segment 4 (seqs 4..6) is gone; seq 7 says everything before it had completed.
  SegmentBuilder seg7(dir_.path(), 7);
  seg7.AddWrite(7, 7, 0, "g");
  seg7.AddWrite(8, 8, 0, "h");

  ScanSummary s = Scan();

  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("seq 4"), std::string::npos) << *s.corruption;
  EXPECT_NE(s.corruption->find("segment 0000000000000001.hrl offset " + std::to_string(seg1.end())),
            std::string::npos)
      << *s.corruption;
}

TEST_F(JournalReaderTest, SegmentGapAboveTheHorizonIsDropped) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  seg1.AddWrite(2, 2, 0, "b");
  seg1.AddWrite(3, 3, 0, "c");
  SegmentBuilder seg7(dir_.path(), 7);
  seg7.AddWrite(7, 4, 0, "g");  // seqs 4..6 were still in flight
  seg7.AddWrite(8, 4, 0, "h");

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  EXPECT_EQ(s.dropped, (Seqs{4, 5, 6}));
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 2, 3, 7, 8}));
  ASSERT_EQ(s.gaps.size(), 1u);
  EXPECT_EQ(s.gaps[0].segment, seg1.name());
  EXPECT_EQ(s.gaps[0].offset, seg1.end());
}

// A scan lists at most 2^20 dropped seqs (kMaxDroppedSeqs in journal_reader.cc): more than
// a daemon can have in flight means damage, not a crash.
constexpr uint64_t kMaxDroppedSeqs = 1u << 20;

TEST_F(JournalReaderTest, AsManyDroppedSeqsAsTheLimitAreListed) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  SegmentBuilder seg2(dir_.path(), kMaxDroppedSeqs + 2);  // seqs 2 .. kMax + 1 missing
  seg2.AddWrite(kMaxDroppedSeqs + 2, 2, 0, "b");
  ScanSummary s = Scan();
  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  ASSERT_EQ(s.dropped.size(), kMaxDroppedSeqs);
  EXPECT_EQ(s.dropped.front(), 2u);
  EXPECT_EQ(s.dropped.back(), kMaxDroppedSeqs + 1);
}

TEST_F(JournalReaderTest, MoreMissingSeqsThanTheDroppedLimitIsCorruption) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  SegmentBuilder seg2(dir_.path(), kMaxDroppedSeqs + 3);  // one seq more missing
  seg2.AddWrite(kMaxDroppedSeqs + 3, 2, 0, "b");
  ScanSummary s = Scan();
  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("more than 1048576 records missing"), std::string::npos)
      << *s.corruption;
}

TEST_F(JournalReaderTest, TornTailOfAnEarlierSegmentIsDroppedByTheNextSegmentsName) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  const uint64_t off2 = seg1.AddWrite(2, 2, 0, std::string(500, 'b'));
  seg1.Truncate(off2 + 100);  // seq 2 torn at the end of segment 1
  SegmentBuilder seg3(dir_.path(), 3);
  seg3.AddWrite(3, 2, 0, "c");

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  EXPECT_EQ(s.dropped, (Seqs{2}));
  EXPECT_EQ(s.segments[0].torn_tail_bytes, 100u);
  ASSERT_EQ(s.gaps.size(), 1u);
  EXPECT_EQ(s.gaps[0].offset, off2);
  EXPECT_EQ(s.gaps[0].bytes, 100u);
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 3}));
}

TEST_F(JournalReaderTest, TornHeaderInTheLastSegmentIsNotCorruption) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  seg1.AddWrite(2, 2, 0, "b");
  uint8_t header[kSegmentHeaderBytes];
  EncodeSegmentHeader({kJournalId, 3, 1}, header);
  WriteFile(SegmentName(3), std::string(reinterpret_cast<const char*>(header), 100));  // short

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  ASSERT_EQ(s.segments.size(), 2u);
  EXPECT_FALSE(s.segments[0].header_torn);
  EXPECT_TRUE(s.segments[1].header_torn);
  EXPECT_EQ(s.segments[1].records, 0u);
  EXPECT_EQ(s.records, 2u);
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 2}));
}

TEST_F(JournalReaderTest, ZeroHeaderInTheLastSegmentIsNotCorruption) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  WriteFile(SegmentName(2), std::string(kSegmentHeaderBytes, '\0'));

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  ASSERT_EQ(s.segments.size(), 2u);
  EXPECT_TRUE(s.segments[1].header_torn);
  EXPECT_EQ(s.segments[1].file_bytes, kSegmentHeaderBytes);
}

TEST_F(JournalReaderTest, EmptyLastSegmentFileIsATornHeader) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  WriteFile(SegmentName(2), "");
  ScanSummary s = Scan();
  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  ASSERT_EQ(s.segments.size(), 2u);
  EXPECT_TRUE(s.segments[1].header_torn);
}

TEST_F(JournalReaderTest, DamagedHeaderOfALastSegmentHoldingRecordsIsCorruption) {
  // The writer makes a segment's header durable before it reserves a record there, so a
  // last segment with records after a header that does not verify was damaged, not torn:
  // its records were acknowledged and must not be silently discarded.
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  SegmentBuilder seg2(dir_.path(), 2);
  seg2.AddWrite(2, 2, 0, "b");
  seg2.AddWrite(3, 3, 0, "c");
  seg2.FlipByte(30);  // the header's first seq field

  ScanSummary s = Scan();

  ASSERT_TRUE(s.corruption.has_value()) << "segments: " << s.segments.size();
  EXPECT_NE(s.corruption->find("segment 0000000000000002.hrl"), std::string::npos) << *s.corruption;
  EXPECT_NE(s.corruption->find("header does not verify"), std::string::npos) << *s.corruption;
}

TEST_F(JournalReaderTest, HalfWrittenHeaderOfALastSegmentWithOnlyZeroesAfterItIsTorn) {
  // The file was extended (say by a preallocation) but the header write never finished.
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  uint8_t header[kSegmentHeaderBytes];
  EncodeSegmentHeader({kJournalId, 2, 1}, header);
  std::string file(3 * kSegmentHeaderBytes, '\0');
  std::memcpy(file.data(), header, 40);  // the checksum never reached the disk
  WriteFile(SegmentName(2), file);

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  ASSERT_EQ(s.segments.size(), 2u);
  EXPECT_TRUE(s.segments[1].header_torn);
  EXPECT_EQ(VisitedSeqs(), (Seqs{1}));
}

TEST_F(JournalReaderTest, TornFirstRecordOfASegmentIsFoundByTheSegmentsName) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  SegmentBuilder seg2(dir_.path(), 2);
  const uint64_t off2 = seg2.AddWrite(2, 2, 0, std::string(100, 'b'));
  seg2.FlipByte(off2 + kRecordHeaderBytes + 1);
  seg2.AddWrite(3, 2, 0, "c");

  ScanSummary s = Scan();

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  EXPECT_EQ(s.dropped, (Seqs{2}));
  ASSERT_EQ(s.gaps.size(), 1u);
  EXPECT_EQ(s.gaps[0].segment, seg2.name());
  EXPECT_EQ(s.gaps[0].offset, kSegmentHeaderBytes);
  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 3}));
}

TEST_F(JournalReaderTest, TornHeaderInAnEarlierSegmentIsCorruption) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  WriteFile(SegmentName(2), std::string(kSegmentHeaderBytes, '\0'));
  SegmentBuilder seg3(dir_.path(), 3);
  seg3.AddWrite(3, 3, 0, "c");

  ScanSummary s = Scan();

  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("segment 0000000000000002.hrl"), std::string::npos) << *s.corruption;
  EXPECT_NE(s.corruption->find("header does not verify"), std::string::npos) << *s.corruption;
  EXPECT_EQ(VisitedSeqs(), (Seqs{1}));  // the scan stops at the damaged segment
}

TEST_F(JournalReaderTest, ShortHeaderInAnEarlierSegmentIsCorruption) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  WriteFile(SegmentName(2), std::string(100, '\0'));
  SegmentBuilder seg3(dir_.path(), 3);
  seg3.AddWrite(3, 3, 0, "c");
  ScanSummary s = Scan();
  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("segment 0000000000000002.hrl"), std::string::npos) << *s.corruption;
}

TEST_F(JournalReaderTest, SegmentOfAnotherJournalIsCorruption) {
  SegmentBuilder seg1(dir_.path(), 1);
  seg1.AddWrite(1, 1, 0, "a");
  SegmentBuilder foreign(dir_.path(), 2, kOtherJournalId);  // verifies, but with another id
  foreign.AddWrite(2, 2, 0, "b");

  ScanSummary s = Scan();

  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("segment 0000000000000002.hrl"), std::string::npos) << *s.corruption;
  EXPECT_NE(s.corruption->find("another journal"), std::string::npos) << *s.corruption;
  EXPECT_EQ(VisitedSeqs(), (Seqs{1}));
}

TEST_F(JournalReaderTest, RecordsOfAnotherJournalNeverVerify) {
  SegmentBuilder seg(dir_.path(), 1);
  seg.AddWrite(1, 1, 0, "a");
  const uint64_t off2 = seg.AddForeignWrite(2, 2, "b");
  seg.AddWrite(3, 3, 0, "c");

  ScanSummary s = Scan();

  EXPECT_EQ(VisitedSeqs(), (Seqs{1, 3}));
  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("offset " + std::to_string(off2)), std::string::npos)
      << *s.corruption;
  EXPECT_NE(s.corruption->find("seq 2"), std::string::npos) << *s.corruption;
}

TEST_F(JournalReaderTest, SegmentHeaderFirstSeqMustMatchTheFileName) {
  SegmentBuilder seg(dir_.path(), 5, kJournalId, /*header_first_seq=*/6);
  seg.AddWrite(5, 5, 0, "a");
  ScanSummary s = Scan();
  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("segment 0000000000000005.hrl"), std::string::npos) << *s.corruption;
  EXPECT_NE(s.corruption->find("first seq 6"), std::string::npos) << *s.corruption;
  EXPECT_TRUE(visited_.empty());
}

TEST_F(JournalReaderTest, SegmentStartingBeforeThePreviousOnesLastSeqIsCorruption) {
  SegmentBuilder seg1(dir_.path(), 1);
  for (uint64_t seq = 1; seq <= 5; ++seq) seg1.AddWrite(seq, seq, 0, "x");
  SegmentBuilder seg3(dir_.path(), 3);  // overlaps seqs 3..5 of segment 1
  seg3.AddWrite(6, 6, 0, "y");
  ScanSummary s = Scan();
  ASSERT_TRUE(s.corruption.has_value());
  EXPECT_NE(s.corruption->find("segment 0000000000000003.hrl: first seq 3 is not after seq 5"),
            std::string::npos)
      << *s.corruption;
}

// ---- Visiting from a seq ------------------------------------------------------------------

class JournalReaderVisitFromTest : public JournalReaderTest {
 protected:
  void SetUp() override {
    JournalReaderTest::SetUp();
    SegmentBuilder seg1(dir_.path(), 1);
    for (uint64_t seq = 1; seq <= 3; ++seq) seg1.AddWrite(seq, seq, 0, "a");
    SegmentBuilder seg4(dir_.path(), 4);
    for (uint64_t seq = 4; seq <= 6; ++seq) seg4.AddWrite(seq, seq, 0, "b");
  }
};

TEST_F(JournalReaderVisitFromTest, VisitsOnlyRecordsFromTheSeqButSummarizesAll) {
  ScanSummary s = Scan(/*visit_from_seq=*/5);
  EXPECT_EQ(VisitedSeqs(), (Seqs{5, 6}));
  EXPECT_EQ(s.records, 6u);
  EXPECT_EQ(s.first_seq, 1u);
  EXPECT_EQ(s.segments.size(), 2u);
}

TEST_F(JournalReaderVisitFromTest, SkipSegmentsBelowVisitDoesNotReadThem) {
  // Damage segment 1's header: read, it would be corruption (it is not the last segment).
  {
    UniqueFd fd(::open(dir_.file(SegmentName(1)).c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::pwrite(fd.get(), "XX", 2, 0), 2);
  }
  ASSERT_TRUE(Scan().corruption.has_value());

  ScanSummary s = Scan(/*visit_from_seq=*/4, /*skip_segments_below_visit=*/true);

  EXPECT_FALSE(s.corruption.has_value()) << *s.corruption;
  EXPECT_EQ(VisitedSeqs(), (Seqs{4, 5, 6}));
  ASSERT_EQ(s.segments.size(), 1u);
  EXPECT_EQ(s.segments[0].first_seq, 4u);
  EXPECT_EQ(s.first_seq, 4u);
  EXPECT_EQ(s.records, 3u);
}

TEST_F(JournalReaderVisitFromTest, SkipStillReadsTheSegmentHoldingTheFromSeq) {
  ScanSummary s = Scan(/*visit_from_seq=*/3, /*skip_segments_below_visit=*/true);
  EXPECT_EQ(VisitedSeqs(), (Seqs{3, 4, 5, 6}));
  EXPECT_EQ(s.segments.size(), 2u);
  EXPECT_EQ(s.first_seq, 1u);
}

TEST_F(JournalReaderVisitFromTest, VisitorErrorStopsTheScanAndIsReturned) {
  std::vector<uint64_t> seen;
  ScanOptions opt;
  opt.journal_id = kJournalId;
  opt.visitor = [&](const RecordView& r) {
    seen.push_back(r.header.seq);
    return r.header.seq == 2 ? Status::IoError("replay failed at seq 2") : Status::Ok();
  };
  auto s = ScanJournal(dir_.path(), opt);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "replay failed at seq 2");
  EXPECT_EQ(seen, (Seqs{1, 2}));
}

// ---- Directory and meta -------------------------------------------------------------------

TEST_F(JournalReaderTest, MissingDirectoryIsAnError) {
  ScanOptions opt;
  opt.journal_id = kJournalId;
  auto s = ScanJournal(dir_.file("nonexistent"), opt);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Status::Code::kIoError);
  EXPECT_NE(s.status().message().find(dir_.file("nonexistent")), std::string::npos);
}

TEST_F(JournalReaderTest, ListSegmentsSortsBySeqAndIgnoresOtherFiles) {
  WriteFile("0000000000000010.hrl", "");
  WriteFile("0000000000000002.hrl", "");
  WriteFile("journal.meta", "");
  WriteFile("0000000000000003.hrl.tmp", "");
  WriteFile("000000000000000A.hrl", "");
  auto list = ListSegments(dir_.path());
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  using Entry = std::pair<uint64_t, std::string>;
  EXPECT_EQ(list.value(),
            (std::vector<Entry>{{2, "0000000000000002.hrl"}, {16, "0000000000000010.hrl"}}));
}

TEST_F(JournalReaderTest, ReadJournalMetaRoundTrip) {
  uint8_t meta[kMetaBytes];
  EncodeMeta({kJournalId, 1ull << 30}, meta);
  WriteFile("journal.meta", std::string(reinterpret_cast<const char*>(meta), sizeof(meta)));
  auto m = ReadJournalMeta(dir_.file("journal.meta"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->journal_id, kJournalId);
  EXPECT_EQ(m->disk_bytes, 1ull << 30);
}

TEST_F(JournalReaderTest, ReadJournalMetaRejectsAFlippedByte) {
  uint8_t meta[kMetaBytes];
  EncodeMeta({kJournalId, 1ull << 30}, meta);
  meta[17] ^= 1;
  WriteFile("journal.meta", std::string(reinterpret_cast<const char*>(meta), sizeof(meta)));
  auto m = ReadJournalMeta(dir_.file("journal.meta"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Status::Code::kCorruption);
}

TEST_F(JournalReaderTest, ReadJournalMetaRejectsAShortFile) {
  uint8_t meta[kMetaBytes];
  EncodeMeta({kJournalId, 1ull << 30}, meta);
  WriteFile("journal.meta", std::string(reinterpret_cast<const char*>(meta), 63));
  auto m = ReadJournalMeta(dir_.file("journal.meta"));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("short file"), std::string::npos);
}

}  // namespace
}  // namespace blockrep::journal
