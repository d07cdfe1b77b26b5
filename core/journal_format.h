// HRL journal on-disk format, version 1. The byte-level specification, with the torn-record
// and corruption rules and a worked example, is docs/formats/journal.md; this header is its
// code (reading: core/journal_reader.h; writing: core/journal_writer.h). All integers
// little-endian; checksums XXH3-64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace blockrep::journal {

inline constexpr uint32_t kVersion = 1;

// journal.meta
inline constexpr char kMetaMagic[8] = {'B', 'R', 'J', 'M', 'E', 'T', 'A', '1'};
inline constexpr size_t kMetaBytes = 64;

// Segment files
inline constexpr char kSegmentMagic[8] = {'B', 'R', 'J', 'S', 'E', 'G', '0', '1'};
inline constexpr size_t kSegmentHeaderBytes = 4096;
// A new segment starts when the active one would pass this size: small enough that
// reclaiming frees space promptly, large enough that rolling (a file create) is rare.
inline constexpr uint64_t kSegmentBytesTarget = 64ull << 20;

// Records
inline constexpr uint32_t kRecordMagic = 0x314c5248;  // "HRL1" in file order
inline constexpr size_t kRecordHeaderBytes = 64;
inline constexpr size_t kRecordAlignBytes = 64;
inline constexpr size_t kChecksumOffset = 56;  // header bytes [0, 56) are checksummed
// Largest payload a record may claim; a reader refuses bigger claims without allocating.
// Writes are split by the NBD layer at 32 MiB; markers are small.
inline constexpr uint32_t kMaxPayloadBytes = 32u << 20;

enum class RecordKind : uint16_t { kWrite = 1, kZero = 2, kTrim = 3, kMarker = 4 };
// Marker subtypes (kind kMarker), with their bodies:
//   kRecoveryPoint: UTF-8 label.
//   kVoid: u64 count, then count u64 seqs that were allocated but never written (a failed
//     journal write, or records dropped as torn at a restart): not corruption.
//   kFlushCheckpoint: u64 applied_below: every record with a smaller seq is durable on the
//     backing disk.
//   kCommit (the target journal only, docs/formats/replica.md): a group of records is durable.
enum class MarkerType : uint32_t {
  kNone = 0,
  kRecoveryPoint = 1,
  kVoid = 2,
  kFlushCheckpoint = 3,
  kCommit = 4,
};
// Seqs one void marker lists at most: keeps its body small (8 KiB).
inline constexpr uint32_t kMaxVoidSeqs = 1023;
inline constexpr uint16_t kRecordFlagFua = 1 << 0;
// Target journal only: the record is a sync item (SYNC_WRITE, SYNC_ZERO), not a source record.
inline constexpr uint16_t kRecordFlagSync = 1 << 1;

struct RecordHeader {
  RecordKind kind = RecordKind::kWrite;
  uint16_t flags = 0;
  uint64_t seq = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t payload_bytes = 0;
  MarkerType marker = MarkerType::kNone;
  uint64_t timestamp_ns = 0;
  uint64_t lowest_pending_seq = 0;
  uint64_t checksum = 0;
};

// Bytes a record occupies in a segment, padding included.
inline uint64_t RecordBytes(uint32_t payload_bytes) {
  return kRecordHeaderBytes + ((uint64_t{payload_bytes} + kRecordAlignBytes - 1) & ~(kRecordAlignBytes - 1));
}

// Writes the 64-byte header, checksum included. The checksum covers header bytes [0, 56)
// followed by the payload, seeded with the journal id.
void EncodeRecord(uint64_t journal_id, const RecordHeader& h, const uint8_t* payload,
                  uint8_t out[kRecordHeaderBytes]);
// Decodes the fields of a 64-byte header. False if the magic is wrong, the kind unknown, or
// the payload claim is impossible (write payload != length, over kMaxPayloadBytes).
// Does not verify the checksum: see VerifyRecord.
bool DecodeRecordHeader(const uint8_t in[kRecordHeaderBytes], RecordHeader* h);
// True when header and payload match the header's checksum.
bool VerifyRecord(uint64_t journal_id, const uint8_t header[kRecordHeaderBytes],
                  const uint8_t* payload, uint32_t payload_bytes);

std::string EncodeVoidBody(const std::vector<uint64_t>& seqs);
// False when the body is malformed (wrong size, count over kMaxVoidSeqs).
bool DecodeVoidBody(const uint8_t* body, uint32_t bytes, std::vector<uint64_t>* seqs);
std::string EncodeCheckpointBody(uint64_t applied_below);
bool DecodeCheckpointBody(const uint8_t* body, uint32_t bytes, uint64_t* applied_below);

const char* RecordKindName(RecordKind kind);    // "write", "zero", "trim", "marker"
const char* MarkerTypeName(MarkerType type);    // "recovery-point", "void", "checkpoint"

struct SegmentHeader {
  uint64_t journal_id = 0;
  uint64_t first_seq = 0;
  uint64_t created_ns = 0;
};
void EncodeSegmentHeader(const SegmentHeader& h, uint8_t out[kSegmentHeaderBytes]);
// False on a wrong magic, version or checksum.
bool DecodeSegmentHeader(const uint8_t in[kSegmentHeaderBytes], SegmentHeader* h);

struct JournalMeta {
  uint64_t journal_id = 0;
  uint64_t disk_bytes = 0;
};
void EncodeMeta(const JournalMeta& m, uint8_t out[kMetaBytes]);
bool DecodeMeta(const uint8_t in[kMetaBytes], JournalMeta* m);

// "0000000000a3f21.hrl" for first seq 0xa3f21; ParseSegmentName inverts it.
std::string SegmentName(uint64_t first_seq);
bool ParseSegmentName(const std::string& name, uint64_t* first_seq);

}  // namespace blockrep::journal
