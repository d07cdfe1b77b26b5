// Test-only: a journal written the way the daemons write one (JournalWriter reserving slots,
// records encoded and written at them), for tests of code that reads journals. Only
// *_test.cc files include this header (it uses GoogleTest assertions).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "core/journal_format.h"
#include "core/journal_writer.h"

namespace blockrep::test {

class TestJournal {
 public:
  // A journal in `dir` (created), starting at seq 1, with small segments so that a few
  // records span several.
  TestJournal(std::string dir, uint64_t journal_id, uint64_t segment_bytes = 64 << 10)
      : dir_(std::move(dir)), journal_id_(journal_id) {
    EXPECT_EQ(::mkdir(dir_.c_str(), 0700), 0) << dir_;
    auto w = JournalWriter::Open(dir_, journal_id_, 1, {}, 1ull << 30, segment_bytes);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    if (w.ok()) writer_ = std::move(w).value();
  }

  // Appends one complete record (data: `length` bytes for a write, else unused); its seq.
  uint64_t Append(journal::RecordKind kind, uint64_t offset, uint64_t length, const uint8_t* data,
                  uint64_t timestamp_ns = 0) {
    const uint32_t payload = kind == journal::RecordKind::kWrite ? static_cast<uint32_t>(length) : 0;
    auto slot = writer_->Reserve(payload);
    EXPECT_TRUE(slot.ok());
    if (!slot.ok()) return 0;
    journal::RecordHeader h;
    h.kind = kind;
    h.seq = slot->seq;
    h.offset = offset;
    h.length = length;
    h.payload_bytes = payload;
    h.timestamp_ns = timestamp_ns;
    h.lowest_pending_seq = slot->lowest_pending;
    uint8_t header[journal::kRecordHeaderBytes];
    journal::EncodeRecord(journal_id_, h, data, header);
    const int fd = slot->segment->fd.get();
    EXPECT_EQ(::pwrite(fd, header, sizeof(header), static_cast<off_t>(slot->file_offset)),
              static_cast<ssize_t>(sizeof(header)));
    if (payload > 0) {
      EXPECT_EQ(::pwrite(fd, data, payload, static_cast<off_t>(slot->file_offset + sizeof(header))),
                static_cast<ssize_t>(payload));
    }
    writer_->Complete(slot->seq);
    return slot->seq;
  }

  const std::string& dir() const { return dir_; }
  uint64_t journal_id() const { return journal_id_; }
  JournalWriter& writer() { return *writer_; }

 private:
  std::string dir_;
  uint64_t journal_id_;
  std::unique_ptr<JournalWriter> writer_;
};

}  // namespace blockrep::test
