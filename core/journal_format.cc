#include "core/journal_format.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace blockrep::journal {
namespace {

static_assert(kRecordHeaderBytes == 64 && kChecksumOffset + 8 == kRecordHeaderBytes,
              "record header layout: docs/formats/journal.md");
static_assert(kSegmentHeaderBytes % kRecordAlignBytes == 0, "records start aligned");
static_assert(kMaxPayloadBytes < kSegmentBytesTarget, "one record fits a segment");

void Put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
void Put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void Put64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint16_t Get16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
uint32_t Get32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t Get64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the format is little-endian");

uint64_t RecordChecksum(uint64_t journal_id, const uint8_t* header, const uint8_t* payload,
                        uint32_t payload_bytes) {
  XXH3_state_t state;
  // A state on the stack must be initialized before its first reset: reset skips deriving
  // the secret when the (garbage) stored seed happens to equal the new one.
  XXH3_INITSTATE(&state);
  XXH3_64bits_reset_withSeed(&state, journal_id);
  XXH3_64bits_update(&state, header, kChecksumOffset);
  if (payload_bytes > 0) XXH3_64bits_update(&state, payload, payload_bytes);
  return XXH3_64bits_digest(&state);
}

}  // namespace

void EncodeRecord(uint64_t journal_id, const RecordHeader& h, const uint8_t* payload,
                  uint8_t out[kRecordHeaderBytes]) {
  Put32(out, kRecordMagic);
  Put16(out + 4, static_cast<uint16_t>(h.kind));
  Put16(out + 6, h.flags);
  Put64(out + 8, h.seq);
  Put64(out + 16, h.offset);
  Put64(out + 24, h.length);
  Put32(out + 32, h.payload_bytes);
  Put32(out + 36, static_cast<uint32_t>(h.marker));
  Put64(out + 40, h.timestamp_ns);
  Put64(out + 48, h.lowest_pending_seq);
  Put64(out + 56, RecordChecksum(journal_id, out, payload, h.payload_bytes));
}

bool DecodeRecordHeader(const uint8_t in[kRecordHeaderBytes], RecordHeader* h) {
  if (Get32(in) != kRecordMagic) return false;
  const uint16_t kind = Get16(in + 4);
  if (kind < 1 || kind > 4) return false;
  h->kind = static_cast<RecordKind>(kind);
  h->flags = Get16(in + 6);
  h->seq = Get64(in + 8);
  h->offset = Get64(in + 16);
  h->length = Get64(in + 24);
  h->payload_bytes = Get32(in + 32);
  h->marker = static_cast<MarkerType>(Get32(in + 36));
  h->timestamp_ns = Get64(in + 40);
  h->lowest_pending_seq = Get64(in + 48);
  h->checksum = Get64(in + 56);
  if (h->payload_bytes > kMaxPayloadBytes) return false;
  if (h->kind == RecordKind::kWrite && h->payload_bytes != h->length) return false;
  if ((h->kind == RecordKind::kZero || h->kind == RecordKind::kTrim) && h->payload_bytes != 0) {
    return false;
  }
  if (h->offset + h->length < h->offset) return false;  // wraps
  return true;
}

bool VerifyRecord(uint64_t journal_id, const uint8_t header[kRecordHeaderBytes],
                  const uint8_t* payload, uint32_t payload_bytes) {
  return RecordChecksum(journal_id, header, payload, payload_bytes) == Get64(header + 56);
}

void EncodeSegmentHeader(const SegmentHeader& h, uint8_t out[kSegmentHeaderBytes]) {
  std::memset(out, 0, kSegmentHeaderBytes);
  std::memcpy(out, kSegmentMagic, 8);
  Put32(out + 8, kVersion);
  Put32(out + 12, static_cast<uint32_t>(kSegmentHeaderBytes));
  Put64(out + 16, h.journal_id);
  Put64(out + 24, h.first_seq);
  Put64(out + 32, h.created_ns);
  Put64(out + 56, XXH3_64bits_withSeed(out, 56, h.journal_id));
}

bool DecodeSegmentHeader(const uint8_t in[kSegmentHeaderBytes], SegmentHeader* h) {
  if (std::memcmp(in, kSegmentMagic, 8) != 0) return false;
  if (Get32(in + 8) != kVersion || Get32(in + 12) != kSegmentHeaderBytes) return false;
  h->journal_id = Get64(in + 16);
  h->first_seq = Get64(in + 24);
  h->created_ns = Get64(in + 32);
  return XXH3_64bits_withSeed(in, 56, h->journal_id) == Get64(in + 56);
}

void EncodeMeta(const JournalMeta& m, uint8_t out[kMetaBytes]) {
  std::memset(out, 0, kMetaBytes);
  std::memcpy(out, kMetaMagic, 8);
  Put32(out + 8, kVersion);
  Put64(out + 16, m.journal_id);
  Put64(out + 24, m.disk_bytes);
  Put64(out + 56, XXH3_64bits_withSeed(out, 56, 0));
}

bool DecodeMeta(const uint8_t in[kMetaBytes], JournalMeta* m) {
  if (std::memcmp(in, kMetaMagic, 8) != 0 || Get32(in + 8) != kVersion) return false;
  m->journal_id = Get64(in + 16);
  m->disk_bytes = Get64(in + 24);
  return XXH3_64bits_withSeed(in, 56, 0) == Get64(in + 56);
}

std::string EncodeVoidBody(const std::vector<uint64_t>& seqs) {
  std::string body(8 + 8 * seqs.size(), '\0');
  auto* p = reinterpret_cast<uint8_t*>(body.data());
  Put64(p, seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) Put64(p + 8 + 8 * i, seqs[i]);
  return body;
}

bool DecodeVoidBody(const uint8_t* body, uint32_t bytes, std::vector<uint64_t>* seqs) {
  if (bytes < 8) return false;
  const uint64_t n = Get64(body);
  if (n > kMaxVoidSeqs || bytes != 8 + 8 * n) return false;
  seqs->clear();
  for (uint64_t i = 0; i < n; ++i) seqs->push_back(Get64(body + 8 + 8 * i));
  return true;
}

std::string EncodeCheckpointBody(uint64_t applied_below) {
  std::string body(8, '\0');
  Put64(reinterpret_cast<uint8_t*>(body.data()), applied_below);
  return body;
}

bool DecodeCheckpointBody(const uint8_t* body, uint32_t bytes, uint64_t* applied_below) {
  if (bytes != 8) return false;
  *applied_below = Get64(body);
  return true;
}

const char* RecordKindName(RecordKind kind) {
  switch (kind) {
    case RecordKind::kWrite: return "write";
    case RecordKind::kZero: return "zero";
    case RecordKind::kTrim: return "trim";
    case RecordKind::kMarker: return "marker";
  }
  return "?";
}

const char* MarkerTypeName(MarkerType type) {
  switch (type) {
    case MarkerType::kNone: return "none";
    case MarkerType::kRecoveryPoint: return "recovery-point";
    case MarkerType::kVoid: return "void";
    case MarkerType::kFlushCheckpoint: return "checkpoint";
    case MarkerType::kCommit: return "commit";
  }
  return "?";
}

std::string SegmentName(uint64_t first_seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64 ".hrl", first_seq);
  return buf;
}

bool ParseSegmentName(const std::string& name, uint64_t* first_seq) {
  if (name.size() != 20 || name.compare(16, 4, ".hrl") != 0) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 16; ++i) {
    const char c = name[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *first_seq = v;
  return true;
}

}  // namespace blockrep::journal
