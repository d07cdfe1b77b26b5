// Checks the HRL journal format against docs/formats/journal.md: field layout (the spec's
// worked example byte for byte), checksums catching any flipped bit in header or payload,
// the journal id seeding, and the segment header, meta and file-name codecs.
#include "core/journal_format.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace blockrep::journal {
namespace {

constexpr uint64_t kJournalId = 0x1122334455667788ull;

RecordHeader WorkedExample() {
  RecordHeader h;
  h.kind = RecordKind::kWrite;
  h.seq = 5;
  h.offset = 8192;
  h.length = 4096;
  h.payload_bytes = 4096;
  h.timestamp_ns = 1795400000000000000ull;
  h.lowest_pending_seq = 5;
  return h;
}

TEST(JournalFormat, WorkedExampleMatchesSpec) {
  std::vector<uint8_t> payload(4096, 0xAB);
  uint8_t out[kRecordHeaderBytes];
  EncodeRecord(kJournalId, WorkedExample(), payload.data(), out);
  const uint8_t expected[56] = {
      0x48, 0x52, 0x4c, 0x31, 0x01, 0x00, 0x00, 0x00,  // magic, kind 1, flags 0
      0x05, 0, 0, 0, 0, 0, 0, 0,                       // seq 5
      0x00, 0x20, 0, 0, 0, 0, 0, 0,                    // offset 8192
      0x00, 0x10, 0, 0, 0, 0, 0, 0,                    // length 4096
      0x00, 0x10, 0, 0, 0, 0, 0, 0,                    // payload 4096, subtype 0
      0x00, 0x80, 0xbc, 0x9d, 0xc9, 0x8a, 0xea, 0x18,  // timestamp
      0x05, 0, 0, 0, 0, 0, 0, 0,                       // lowest pending seq 5
  };
  EXPECT_EQ(std::memcmp(out, expected, sizeof(expected)), 0);
  uint64_t checksum;
  std::memcpy(&checksum, out + 56, 8);
  // The value printed in the spec's worked example.
  EXPECT_EQ(checksum, 0x9264e3bc5a9a45b2ull) << std::hex << checksum;
  EXPECT_EQ(RecordBytes(4096), 4160u);
}

TEST(JournalFormat, RoundTrip) {
  std::vector<uint8_t> payload(100, 7);
  RecordHeader h = WorkedExample();
  h.length = h.payload_bytes = 100;
  h.flags = kRecordFlagFua;
  uint8_t out[kRecordHeaderBytes];
  EncodeRecord(kJournalId, h, payload.data(), out);
  RecordHeader d;
  ASSERT_TRUE(DecodeRecordHeader(out, &d));
  EXPECT_EQ(d.seq, 5u);
  EXPECT_EQ(d.offset, 8192u);
  EXPECT_EQ(d.length, 100u);
  EXPECT_EQ(d.flags, kRecordFlagFua);
  EXPECT_TRUE(VerifyRecord(kJournalId, out, payload.data(), 100));
  EXPECT_EQ(RecordBytes(100), 64u + 128u);
}

TEST(JournalFormat, EveryFlippedBitFailsVerification) {
  std::vector<uint8_t> payload(64, 0x5A);
  RecordHeader h = WorkedExample();
  h.length = h.payload_bytes = 64;
  uint8_t out[kRecordHeaderBytes];
  EncodeRecord(kJournalId, h, payload.data(), out);
  for (size_t bit = 0; bit < (kRecordHeaderBytes + payload.size()) * 8; ++bit) {
    uint8_t hdr[kRecordHeaderBytes];
    std::memcpy(hdr, out, sizeof(hdr));
    std::vector<uint8_t> p = payload;
    uint8_t* byte = bit / 8 < kRecordHeaderBytes ? &hdr[bit / 8] : &p[bit / 8 - kRecordHeaderBytes];
    *byte ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(VerifyRecord(kJournalId, hdr, p.data(), 64)) << "bit " << bit;
  }
}

TEST(JournalFormat, OtherJournalIdDoesNotVerify) {
  uint8_t out[kRecordHeaderBytes];
  RecordHeader h = WorkedExample();
  h.kind = RecordKind::kTrim;
  h.payload_bytes = 0;
  EncodeRecord(kJournalId, h, nullptr, out);
  EXPECT_TRUE(VerifyRecord(kJournalId, out, nullptr, 0));
  EXPECT_FALSE(VerifyRecord(kJournalId + 1, out, nullptr, 0));
}

TEST(JournalFormat, DecodeRejectsImpossibleHeaders) {
  uint8_t out[kRecordHeaderBytes];
  RecordHeader h = WorkedExample();
  std::vector<uint8_t> payload(4096);
  EncodeRecord(kJournalId, h, payload.data(), out);
  RecordHeader d;
  uint8_t bad[kRecordHeaderBytes];
  std::memcpy(bad, out, sizeof(bad));
  bad[0] ^= 1;  // magic
  EXPECT_FALSE(DecodeRecordHeader(bad, &d));
  std::memcpy(bad, out, sizeof(bad));
  bad[4] = 9;  // kind
  EXPECT_FALSE(DecodeRecordHeader(bad, &d));
  std::memcpy(bad, out, sizeof(bad));
  bad[33] = 0x11;  // write payload no longer equals its length
  EXPECT_FALSE(DecodeRecordHeader(bad, &d));
  std::memcpy(bad, out, sizeof(bad));
  uint32_t huge = kMaxPayloadBytes + 1;
  std::memcpy(bad + 32, &huge, 4);
  std::memcpy(bad + 24, &huge, 4);
  EXPECT_FALSE(DecodeRecordHeader(bad, &d));
  RecordHeader zero = h;
  zero.kind = RecordKind::kZero;
  zero.payload_bytes = 16;  // zero records carry no payload
  EncodeRecord(kJournalId, zero, payload.data(), bad);
  EXPECT_FALSE(DecodeRecordHeader(bad, &d));
}

TEST(JournalFormat, SegmentHeaderRoundTripAndCorruption) {
  uint8_t out[kSegmentHeaderBytes];
  EncodeSegmentHeader({kJournalId, 0xa3f21, 123}, out);
  SegmentHeader d;
  ASSERT_TRUE(DecodeSegmentHeader(out, &d));
  EXPECT_EQ(d.journal_id, kJournalId);
  EXPECT_EQ(d.first_seq, 0xa3f21u);
  EXPECT_EQ(d.created_ns, 123u);
  out[30] ^= 0x40;
  EXPECT_FALSE(DecodeSegmentHeader(out, &d));
}

TEST(JournalFormat, MetaRoundTripAndCorruption) {
  uint8_t out[kMetaBytes];
  EncodeMeta({kJournalId, 1ull << 30}, out);
  JournalMeta m;
  ASSERT_TRUE(DecodeMeta(out, &m));
  EXPECT_EQ(m.journal_id, kJournalId);
  EXPECT_EQ(m.disk_bytes, 1ull << 30);
  out[20] ^= 1;
  EXPECT_FALSE(DecodeMeta(out, &m));
}

TEST(JournalFormat, SegmentNames) {
  EXPECT_EQ(SegmentName(0xa3f21), "00000000000a3f21.hrl");
  uint64_t seq;
  ASSERT_TRUE(ParseSegmentName("00000000000a3f21.hrl", &seq));
  EXPECT_EQ(seq, 0xa3f21u);
  EXPECT_FALSE(ParseSegmentName("00000000000A3F21.hrl", &seq));
  EXPECT_FALSE(ParseSegmentName("0000000000a3f21.hrl", &seq));
  EXPECT_FALSE(ParseSegmentName("00000000000a3f21.tmp", &seq));
}

}  // namespace
}  // namespace blockrep::journal
