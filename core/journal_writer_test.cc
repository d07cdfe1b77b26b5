// Checks JournalWriter's bookkeeping on a real journal directory in a fresh temporary
// directory: seqs and 64-aligned file offsets handed out by Reserve, the lowest-pending seq
// under out-of-order completion, rolling to a new segment at a (small) size target, the size
// budget, dirty-segment hand-off, Reclaim (which files it deletes and which it must keep),
// and synchronous markers that ScanJournal then reads back and verifies.
#include "core/journal_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/journal_format.h"
#include "core/journal_reader.h"
#include "core/test_temp_dir.h"
#include "core/unique_fd.h"

namespace blockrep {
namespace {

using journal::kSegmentHeaderBytes;
using journal::RecordBytes;

constexpr uint64_t kJournalId = 0x5eed5eed12345678ull;
constexpr uint64_t kTargetBytes = 64 << 10;  // small segments, so tests roll quickly
constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kPayload = 4096;
// 4160-byte records after a 4096-byte header: 14 fit in a 64 KiB segment (62336 bytes),
// the 15th would pass it.
constexpr uint64_t kRecordsPerSegment = (kTargetBytes - kSegmentHeaderBytes) / (64 + kPayload);
static_assert(kRecordsPerSegment == 14);

class JournalWriterTest : public ::testing::Test {
 protected:
  // Opens writer_; a fatal failure when Open fails (callers wrap it in ASSERT_NO_FATAL_FAILURE).
  void Open(uint64_t next_seq, uint64_t max_bytes = kUnlimited,
            const std::vector<JournalWriter::Existing>& existing = {}) {
    auto w =
        JournalWriter::Open(dir_.path(), kJournalId, next_seq, existing, max_bytes, kTargetBytes);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    writer_ = std::move(w).value();
  }

  // A reservation; on failure the test fails and the slot is empty (seq 0, no segment).
  JournalWriter::Slot Reserve(uint32_t payload = kPayload) {
    auto slot = writer_->Reserve(payload);
    EXPECT_TRUE(slot.ok()) << slot.status().ToString();
    return slot.ok() ? std::move(slot).value() : JournalWriter::Slot{};
  }

  // Reserves and completes `n` records of kPayload bytes.
  void ReserveAndComplete(uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t seq = Reserve().seq;
      if (seq != 0) writer_->Complete(seq);  // 0: Reserve failed, and said so
    }
  }

  std::string SegmentPath(uint64_t first_seq) const {
    return dir_.file(journal::SegmentName(first_seq));
  }
  bool Exists(const std::string& path) const { return ::access(path.c_str(), F_OK) == 0; }
  uint64_t FileBytes(const std::string& path) const {
    struct stat st;
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return static_cast<uint64_t>(st.st_size);
  }
  // A segment file holding just a valid header, as a previous run would have left it.
  void MakeOldSegment(uint64_t first_seq, uint64_t bytes) {
    uint8_t header[kSegmentHeaderBytes];
    journal::EncodeSegmentHeader({kJournalId, first_seq, 1}, header);
    UniqueFd fd(
        ::open(SegmentPath(first_seq).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid()) << std::strerror(errno);
    ASSERT_EQ(::pwrite(fd.get(), header, sizeof(header), 0), static_cast<ssize_t>(sizeof(header)));
    ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  }

  test::TempDir dir_;
  std::unique_ptr<JournalWriter> writer_;
};

// ---- Open --------------------------------------------------------------------------------

TEST_F(JournalWriterTest, OpenCreatesASegmentNamedForNextSeqWithAValidHeader) {
  ASSERT_NO_FATAL_FAILURE(Open(42));
  const std::string path = SegmentPath(42);
  ASSERT_TRUE(Exists(path));
  EXPECT_EQ(FileBytes(path), kSegmentHeaderBytes);
  uint8_t header[kSegmentHeaderBytes];
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::pread(fd.get(), header, sizeof(header), 0), static_cast<ssize_t>(sizeof(header)));
  journal::SegmentHeader sh;
  ASSERT_TRUE(journal::DecodeSegmentHeader(header, &sh));
  EXPECT_EQ(sh.journal_id, kJournalId);
  EXPECT_EQ(sh.first_seq, 42u);
  EXPECT_GT(sh.created_ns, 0u);

  EXPECT_EQ(writer_->next_seq(), 42u);
  EXPECT_EQ(writer_->lowest_pending(), 42u);
  EXPECT_TRUE(writer_->idle());
  EXPECT_EQ(writer_->bytes(), kSegmentHeaderBytes);
  EXPECT_EQ(writer_->segment_count(), 1u);
  EXPECT_EQ(writer_->checkpoint(), 42u);
}

TEST_F(JournalWriterTest, OpenFailsWhenTheFirstSegmentAlreadyExists) {
  ASSERT_NO_FATAL_FAILURE(MakeOldSegment(7, kSegmentHeaderBytes));
  auto w = JournalWriter::Open(dir_.path(), kJournalId, 7, {}, kUnlimited, kTargetBytes);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find(journal::SegmentName(7)), std::string::npos)
      << w.status().ToString();
}

TEST_F(JournalWriterTest, ExistingSegmentsCountAgainstTheBudget) {
  ASSERT_NO_FATAL_FAILURE(MakeOldSegment(1, 50000));
  ASSERT_NO_FATAL_FAILURE(MakeOldSegment(20, 30000));
  ASSERT_NO_FATAL_FAILURE(Open(31, kUnlimited, {{1, 19, 50000}, {20, 30, 30000}}));
  EXPECT_EQ(writer_->bytes(), 50000u + 30000u + kSegmentHeaderBytes);
  EXPECT_EQ(writer_->segment_count(), 3u);
}

// ---- Reserve and Complete -----------------------------------------------------------------

TEST_F(JournalWriterTest, ReserveGivesConsecutiveSeqsAndConsecutiveAlignedOffsets) {
  ASSERT_NO_FATAL_FAILURE(Open(10));
  const uint32_t payloads[] = {0, 1, 100, 4096, 64};
  uint64_t expect_offset = kSegmentHeaderBytes;
  uint64_t expect_bytes = kSegmentHeaderBytes;
  for (size_t i = 0; i < std::size(payloads); ++i) {
    JournalWriter::Slot slot = Reserve(payloads[i]);
    SCOPED_TRACE("payload " + std::to_string(payloads[i]));
    EXPECT_EQ(slot.seq, 10 + i);
    EXPECT_EQ(slot.file_offset, expect_offset);
    EXPECT_EQ(slot.file_offset % 64, 0u);
    EXPECT_EQ(slot.lowest_pending, 10u);  // nothing has completed
    ASSERT_NE(slot.segment, nullptr);
    EXPECT_EQ(slot.segment->path, SegmentPath(10));
    EXPECT_EQ(slot.segment->last_seq, slot.seq);
    expect_offset += RecordBytes(payloads[i]);
    expect_bytes += RecordBytes(payloads[i]);
    EXPECT_EQ(writer_->bytes(), expect_bytes);
  }
  // 64 + {0, 64, 128, 4096, 64}
  EXPECT_EQ(expect_offset, kSegmentHeaderBytes + 64 + 128 + 192 + 4160 + 128);
  EXPECT_EQ(writer_->next_seq(), 15u);
  EXPECT_FALSE(writer_->idle());
}

TEST_F(JournalWriterTest, LowestPendingWaitsForTheOldestIncompleteSeq) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  for (int i = 0; i < 4; ++i) Reserve();
  writer_->Complete(3);
  EXPECT_EQ(writer_->lowest_pending(), 1u);
  writer_->Complete(1);
  EXPECT_EQ(writer_->lowest_pending(), 2u);
  writer_->Complete(2);  // 3 is done already: jumps past it
  EXPECT_EQ(writer_->lowest_pending(), 4u);
  EXPECT_FALSE(writer_->idle());
  EXPECT_EQ(Reserve().lowest_pending, 4u);  // seq 5 learns that 4 is still in flight
  writer_->Complete(5);
  EXPECT_EQ(writer_->lowest_pending(), 4u);
  writer_->Complete(4);
  EXPECT_EQ(writer_->lowest_pending(), 6u);
  EXPECT_TRUE(writer_->idle());
  EXPECT_EQ(Reserve().lowest_pending, 6u);
}

TEST_F(JournalWriterTest, RollsToANewSegmentWhenTheTargetWouldBePassed) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  JournalWriter::Slot last_in_first;
  for (uint64_t i = 0; i < kRecordsPerSegment; ++i) last_in_first = Reserve();
  EXPECT_EQ(last_in_first.seq, kRecordsPerSegment);
  EXPECT_EQ(last_in_first.segment->path, SegmentPath(1));
  EXPECT_EQ(writer_->segment_count(), 1u);

  JournalWriter::Slot rolled = Reserve();

  EXPECT_EQ(rolled.seq, kRecordsPerSegment + 1);
  EXPECT_EQ(rolled.segment->path, SegmentPath(kRecordsPerSegment + 1));
  EXPECT_EQ(rolled.segment->first_seq, kRecordsPerSegment + 1);
  EXPECT_EQ(rolled.file_offset, kSegmentHeaderBytes);
  EXPECT_EQ(writer_->segment_count(), 2u);
  EXPECT_EQ(writer_->bytes(),
            2 * kSegmentHeaderBytes + (kRecordsPerSegment + 1) * RecordBytes(kPayload));
  EXPECT_TRUE(Exists(SegmentPath(kRecordsPerSegment + 1)));
  // The old segment keeps its bookkeeping.
  EXPECT_EQ(last_in_first.segment->last_seq, kRecordsPerSegment);
  EXPECT_EQ(last_in_first.segment->end_offset,
            kSegmentHeaderBytes + kRecordsPerSegment * RecordBytes(kPayload));
}

TEST_F(JournalWriterTest, RecordLargerThanTheTargetGetsASegmentOfItsOwn) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  constexpr uint32_t kBig = 100 << 10;  // more than the 64 KiB target
  EXPECT_EQ(Reserve(64).segment->path, SegmentPath(1));
  JournalWriter::Slot big = Reserve(kBig);
  EXPECT_EQ(big.seq, 2u);
  EXPECT_EQ(big.segment->path, SegmentPath(2));
  EXPECT_EQ(big.file_offset, kSegmentHeaderBytes);
  JournalWriter::Slot after = Reserve(64);
  EXPECT_EQ(after.segment->path, SegmentPath(3));
  EXPECT_EQ(writer_->segment_count(), 3u);
}

TEST_F(JournalWriterTest, FirstRecordOfAFreshSegmentNeverRolls) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  JournalWriter::Slot big = Reserve(100 << 10);
  EXPECT_EQ(big.segment->path, SegmentPath(1));
  EXPECT_EQ(writer_->segment_count(), 1u);
}

TEST_F(JournalWriterTest, ReserveFailsAndReservesNothingWhenTheNextSegmentCannotBeCreated) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  for (uint64_t i = 0; i < kRecordsPerSegment; ++i) Reserve();
  // Something already holds the name the next segment needs: O_EXCL refuses it.
  const std::string blocker = SegmentPath(kRecordsPerSegment + 1);
  {
    UniqueFd fd(::open(blocker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::write(fd.get(), "keep", 4), 4);
  }
  const uint64_t bytes_before = writer_->bytes();

  auto slot = writer_->Reserve(kPayload);

  ASSERT_FALSE(slot.ok());
  EXPECT_EQ(slot.status().code(), Status::Code::kIoError);
  EXPECT_NE(slot.status().message().find(journal::SegmentName(kRecordsPerSegment + 1)),
            std::string::npos)
      << slot.status().ToString();
  EXPECT_EQ(writer_->next_seq(), kRecordsPerSegment + 1);
  EXPECT_EQ(writer_->bytes(), bytes_before);
  EXPECT_EQ(writer_->segment_count(), 1u);
  EXPECT_EQ(writer_->lowest_pending(), 1u);
  EXPECT_EQ(FileBytes(blocker), 4u);  // the file in the way is left alone

  // Once the name is free the same seq is handed out.
  ASSERT_EQ(::unlink(blocker.c_str()), 0);
  JournalWriter::Slot retry = Reserve();
  EXPECT_EQ(retry.seq, kRecordsPerSegment + 1);
  EXPECT_EQ(retry.segment->path, blocker);
}

// ---- Budget -------------------------------------------------------------------------------

TEST_F(JournalWriterTest, WouldExceedBudgetOnlyPastTheLimit) {
  // Room for exactly two 4096-byte records after the header.
  ASSERT_NO_FATAL_FAILURE(Open(1, kSegmentHeaderBytes + 2 * RecordBytes(kPayload)));
  EXPECT_FALSE(writer_->WouldExceedBudget(kPayload));
  Reserve();
  EXPECT_FALSE(writer_->WouldExceedBudget(kPayload));  // lands exactly on the limit
  EXPECT_TRUE(writer_->WouldExceedBudget(kPayload + 1));
  Reserve();
  EXPECT_EQ(writer_->bytes(), writer_->max_bytes());
  EXPECT_TRUE(writer_->WouldExceedBudget(0));  // even an empty record takes 64 bytes
}

TEST_F(JournalWriterTest, BudgetCountsTheHeaderOfTheSegmentAReserveWouldOpen) {
  // A Reserve that rolls adds a 4096-byte segment header as well as the record, so
  // WouldExceedBudget must count it (it once compared only bytes + RecordBytes).
  // Room for 15 records, in bytes, but the 15th needs a new segment and its header too.
  const uint64_t max_bytes = kSegmentHeaderBytes + (kRecordsPerSegment + 1) * RecordBytes(kPayload);
  ASSERT_NO_FATAL_FAILURE(Open(1, max_bytes));
  for (uint64_t i = 0; i < kRecordsPerSegment; ++i) Reserve();
  ASSERT_EQ(writer_->segment_count(), 1u);

  EXPECT_TRUE(writer_->WouldExceedBudget(kPayload));
  // What the record would really cost: a Reserve now rolls, adding a header and the record.
  const uint64_t before = writer_->bytes();
  Reserve();
  EXPECT_EQ(writer_->segment_count(), 2u);
  EXPECT_EQ(writer_->bytes(), before + kSegmentHeaderBytes + RecordBytes(kPayload));
  EXPECT_GT(writer_->bytes(), writer_->max_bytes());
}

TEST_F(JournalWriterTest, RollingRecordFitsABudgetThatHoldsItsHeaderToo) {
  const uint64_t max_bytes =
      2 * kSegmentHeaderBytes + (kRecordsPerSegment + 1) * RecordBytes(kPayload);
  ASSERT_NO_FATAL_FAILURE(Open(1, max_bytes));
  for (uint64_t i = 0; i < kRecordsPerSegment; ++i) Reserve();
  EXPECT_FALSE(writer_->WouldExceedBudget(kPayload));
  Reserve();
  EXPECT_EQ(writer_->segment_count(), 2u);
  EXPECT_EQ(writer_->bytes(), writer_->max_bytes());
}

TEST_F(JournalWriterTest, BytesCountsEveryReservedRecordAndSegmentHeader) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  Reserve(0);
  Reserve(1000);
  EXPECT_EQ(writer_->bytes(), kSegmentHeaderBytes + RecordBytes(0) + RecordBytes(1000));
  for (uint64_t i = 0; i < kRecordsPerSegment + 1; ++i) Reserve();  // the last one rolls
  EXPECT_EQ(writer_->segment_count(), 2u);
  EXPECT_EQ(writer_->bytes(), 2 * kSegmentHeaderBytes + RecordBytes(0) + RecordBytes(1000) +
                                  (kRecordsPerSegment + 1) * RecordBytes(kPayload));
}

// ---- Dirty segments -----------------------------------------------------------------------

TEST_F(JournalWriterTest, TakeDirtyHandsOutEachWrittenSegmentOnce) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  EXPECT_TRUE(writer_->TakeDirty().empty());
  JournalWriter::Slot a = Reserve();
  writer_->MarkWritten(a);
  writer_->MarkWritten(Reserve());  // same segment again

  auto dirty = writer_->TakeDirty();

  ASSERT_EQ(dirty.size(), 1u);
  EXPECT_EQ(dirty[0], a.segment);
  EXPECT_FALSE(a.segment->dirty);
  EXPECT_TRUE(writer_->TakeDirty().empty());
}

TEST_F(JournalWriterTest, TakeDirtyListsSegmentsOldestFirst) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  JournalWriter::Slot first = Reserve();
  for (uint64_t i = 1; i < kRecordsPerSegment; ++i) Reserve();
  JournalWriter::Slot second = Reserve();
  ASSERT_NE(first.segment, second.segment);
  writer_->MarkWritten(second);
  writer_->MarkWritten(first);
  auto dirty = writer_->TakeDirty();
  ASSERT_EQ(dirty.size(), 2u);
  EXPECT_EQ(dirty[0], first.segment);
  EXPECT_EQ(dirty[1], second.segment);
}

TEST_F(JournalWriterTest, ReturnDirtyHandsSegmentsOutAgain) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  JournalWriter::Slot a = Reserve();
  writer_->MarkWritten(a);
  auto dirty = writer_->TakeDirty();
  ASSERT_EQ(dirty.size(), 1u);
  writer_->ReturnDirty(dirty);  // the flush's fdatasync failed
  auto again = writer_->TakeDirty();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0], a.segment);
}

// ---- Reclaim ------------------------------------------------------------------------------

// Three segments of completed records: [1, 14], [15, 28] and the active [29, 29].
class JournalWriterReclaimTest : public JournalWriterTest {
 protected:
  void SetUp() override {
    JournalWriterTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(Open(1));
    ReserveAndComplete(2 * kRecordsPerSegment + 1);
    ASSERT_EQ(writer_->segment_count(), 3u);
  }
  static constexpr uint64_t kFirstLast = kRecordsPerSegment;       // 14
  static constexpr uint64_t kSecond = kRecordsPerSegment + 1;      // 15
  static constexpr uint64_t kSecondLast = 2 * kRecordsPerSegment;  // 28
  static constexpr uint64_t kActive = 2 * kRecordsPerSegment + 1;  // 29
  static constexpr uint64_t kFullSegmentBytes = kSegmentHeaderBytes + kRecordsPerSegment * 4160;
};

TEST_F(JournalWriterReclaimTest, DeletesWholeSegmentsBelowUptoAndTheCheckpoint) {
  writer_->NoteCheckpoint(kActive + 1);
  const uint64_t before = writer_->bytes();

  auto freed = writer_->Reclaim(kFirstLast);

  ASSERT_TRUE(freed.ok()) << freed.status().ToString();
  EXPECT_EQ(freed.value(), kFullSegmentBytes);
  EXPECT_EQ(writer_->bytes(), before - kFullSegmentBytes);
  EXPECT_EQ(writer_->segment_count(), 2u);
  EXPECT_FALSE(Exists(SegmentPath(1)));
  EXPECT_TRUE(Exists(SegmentPath(kSecond)));
  EXPECT_TRUE(Exists(SegmentPath(kActive)));
}

TEST_F(JournalWriterReclaimTest, KeepsASegmentWithARecordAfterUpto) {
  writer_->NoteCheckpoint(kActive + 1);
  auto freed = writer_->Reclaim(kFirstLast - 1);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(freed.value(), 0u);
  EXPECT_EQ(writer_->segment_count(), 3u);
  EXPECT_TRUE(Exists(SegmentPath(1)));
}

TEST_F(JournalWriterReclaimTest, KeepsASegmentWithARecordAtOrAfterTheCheckpoint) {
  // Seq 14 is not below the checkpoint: restart may still need it to repair the disk.
  writer_->NoteCheckpoint(kFirstLast);
  auto freed = writer_->Reclaim(kActive);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(freed.value(), 0u);
  EXPECT_TRUE(Exists(SegmentPath(1)));

  writer_->NoteCheckpoint(kFirstLast + 1);
  freed = writer_->Reclaim(kActive);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(freed.value(), kFullSegmentBytes);
  EXPECT_FALSE(Exists(SegmentPath(1)));
  EXPECT_TRUE(Exists(SegmentPath(kSecond)));
}

TEST_F(JournalWriterReclaimTest, CheckpointNeverMovesBack) {
  writer_->NoteCheckpoint(kActive + 1);
  writer_->NoteCheckpoint(5);
  EXPECT_EQ(writer_->checkpoint(), kActive + 1);
}

TEST_F(JournalWriterReclaimTest, NeverDeletesTheActiveSegment) {
  writer_->NoteCheckpoint(kUnlimited);
  auto freed = writer_->Reclaim(kUnlimited);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(freed.value(), 2 * kFullSegmentBytes);
  EXPECT_EQ(writer_->segment_count(), 1u);
  EXPECT_FALSE(Exists(SegmentPath(1)));
  EXPECT_FALSE(Exists(SegmentPath(kSecond)));
  EXPECT_TRUE(Exists(SegmentPath(kActive)));
  EXPECT_EQ(writer_->bytes(), kSegmentHeaderBytes + RecordBytes(kPayload));
  // The writer goes on appending to it.
  EXPECT_EQ(Reserve().segment->path, SegmentPath(kActive));
}

TEST_F(JournalWriterTest, ReclaimKeepsSegmentsWithRecordsStillInFlight) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  for (uint64_t i = 0; i < kRecordsPerSegment + 1; ++i) Reserve();  // none completed
  writer_->NoteCheckpoint(kUnlimited);
  auto freed = writer_->Reclaim(kUnlimited);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(freed.value(), 0u);
  EXPECT_TRUE(Exists(SegmentPath(1)));
  for (uint64_t seq = 1; seq <= kRecordsPerSegment; ++seq) writer_->Complete(seq);
  freed = writer_->Reclaim(kUnlimited);
  ASSERT_TRUE(freed.ok());
  EXPECT_GT(freed.value(), 0u);
  EXPECT_FALSE(Exists(SegmentPath(1)));
}

TEST_F(JournalWriterTest, ReclaimDeletesExistingSegmentsFromBeforeTheRestart) {
  ASSERT_NO_FATAL_FAILURE(MakeOldSegment(1, 20000));
  ASSERT_NO_FATAL_FAILURE(MakeOldSegment(11, 30000));
  ASSERT_NO_FATAL_FAILURE(Open(21, kUnlimited, {{1, 10, 20000}, {11, 20, 30000}}));
  // Restart replayed them: the checkpoint starts at next_seq.
  auto freed = writer_->Reclaim(10);
  ASSERT_TRUE(freed.ok()) << freed.status().ToString();
  EXPECT_EQ(freed.value(), 20000u);
  EXPECT_FALSE(Exists(SegmentPath(1)));
  EXPECT_TRUE(Exists(SegmentPath(11)));
  EXPECT_EQ(writer_->bytes(), 30000u + kSegmentHeaderBytes);
}

TEST_F(JournalWriterTest, DeleteAllRemovesEverySegmentFile) {
  ASSERT_NO_FATAL_FAILURE(MakeOldSegment(1, kSegmentHeaderBytes));
  ASSERT_NO_FATAL_FAILURE(Open(5, kUnlimited, {{1, 4, kSegmentHeaderBytes}}));
  ReserveAndComplete(kRecordsPerSegment + 1);
  ASSERT_EQ(writer_->segment_count(), 3u);
  ASSERT_TRUE(writer_->DeleteAll().ok());
  EXPECT_EQ(writer_->segment_count(), 0u);
  EXPECT_EQ(writer_->bytes(), 0u);
  auto list = journal::ListSegments(dir_.path());
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

// ---- Synchronous markers ------------------------------------------------------------------

TEST_F(JournalWriterTest, AppendMarkerSyncWritesRecordsScanJournalVerifies) {
  ASSERT_NO_FATAL_FAILURE(Open(10));
  auto a = writer_->AppendMarkerSync(journal::MarkerType::kVoid, journal::EncodeVoidBody({8, 9}));
  auto b = writer_->AppendMarkerSync(journal::MarkerType::kRecoveryPoint, "before-upgrade");
  auto c = writer_->AppendMarkerSync(journal::MarkerType::kFlushCheckpoint,
                                     journal::EncodeCheckpointBody(12));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a.value(), 10u);
  EXPECT_EQ(b.value(), 11u);
  EXPECT_EQ(c.value(), 12u);
  EXPECT_TRUE(writer_->idle());  // each marker is complete when the call returns
  EXPECT_EQ(writer_->lowest_pending(), 13u);

  struct Seen {
    uint64_t seq;
    journal::MarkerType marker;
    uint64_t lowest_pending;
    std::string body;
    uint64_t file_offset;
  };
  std::vector<Seen> seen;
  journal::ScanOptions opt;
  opt.journal_id = kJournalId;
  opt.visitor = [&](const journal::RecordView& r) {
    seen.push_back({r.header.seq, r.header.marker, r.header.lowest_pending_seq,
                    std::string(reinterpret_cast<const char*>(r.payload), r.header.payload_bytes),
                    r.file_offset});
    return Status::Ok();
  };
  auto scan = journal::ScanJournal(dir_.path(), opt);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_FALSE(scan->corruption.has_value()) << *scan->corruption;
  EXPECT_EQ(scan->records, 3u);
  EXPECT_EQ(scan->voided, (std::vector<uint64_t>{8, 9}));
  EXPECT_EQ(scan->checkpoint_applied_below, 12u);
  EXPECT_EQ(scan->segments[0].torn_tail_bytes, 0u);
  EXPECT_EQ(scan->segments[0].end_offset, writer_->bytes());
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].marker, journal::MarkerType::kVoid);
  EXPECT_EQ(seen[1].marker, journal::MarkerType::kRecoveryPoint);
  EXPECT_EQ(seen[1].body, "before-upgrade");
  EXPECT_EQ(seen[2].marker, journal::MarkerType::kFlushCheckpoint);
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].seq, 10 + i);
    EXPECT_EQ(seen[i].lowest_pending, 10 + i);  // the earlier markers had completed
  }
  EXPECT_EQ(seen[0].file_offset, kSegmentHeaderBytes);
  EXPECT_EQ(seen[1].file_offset, kSegmentHeaderBytes + RecordBytes(24));
}

TEST_F(JournalWriterTest, AppendMarkerSyncAfterARollLandsInTheNewSegment) {
  ASSERT_NO_FATAL_FAILURE(Open(1));
  ReserveAndComplete(kRecordsPerSegment);
  auto seq =
      writer_->AppendMarkerSync(journal::MarkerType::kRecoveryPoint, std::string(kPayload, 'L'));
  ASSERT_TRUE(seq.ok()) << seq.status().ToString();
  EXPECT_EQ(seq.value(), kRecordsPerSegment + 1);
  EXPECT_EQ(FileBytes(SegmentPath(kRecordsPerSegment + 1)),
            kSegmentHeaderBytes + RecordBytes(kPayload));

  // Seqs 1..14 were only reserved, never written, so read from the marker's segment on.
  std::vector<uint64_t> seen;
  journal::ScanOptions opt;
  opt.journal_id = kJournalId;
  opt.visit_from_seq = kRecordsPerSegment + 1;
  opt.skip_segments_below_visit = true;
  opt.visitor = [&](const journal::RecordView& r) {
    seen.push_back(r.header.seq);
    return Status::Ok();
  };
  auto scan = journal::ScanJournal(dir_.path(), opt);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_FALSE(scan->corruption.has_value()) << *scan->corruption;
  EXPECT_EQ(seen, (std::vector<uint64_t>{kRecordsPerSegment + 1}));
}

}  // namespace
}  // namespace blockrep
