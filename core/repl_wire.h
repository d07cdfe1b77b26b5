// Replication protocol, version 1: constants, messages and their codec. The byte-level
// specification, with the stream's ordering rules and a worked example, is
// docs/formats/replication.md; this header is its code. All integers little-endian.
//
// Everything here is pure encoding and decoding of byte buffers (no I/O): the source's
// shipper (daemon/shipper.h) and the target's session (target/replica_session.h) move the
// bytes. Decoders validate everything a peer controls (magic, types, flags, lengths,
// counts, string sizes, item ranges) before they allocate, and return a Status naming what
// was wrong; they never crash on malformed input.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace blockrep::repl {

inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr char kFrameMagic[4] = {'B', 'R', 'R', 'P'};
inline constexpr size_t kFrameHeaderBytes = 12;
// A frame's payload at most: a batch of kMaxBatchRawBytes, even if compression grew it a
// little, plus its header.
inline constexpr uint32_t kMaxFramePayloadBytes = 40u << 20;
// Strings (disk names, versions, messages) at most.
inline constexpr size_t kMaxStringBytes = 1024;
// A batch's decoded items at most: room for one 32 MiB write (the journal's largest record,
// journal::kMaxPayloadBytes) with its item header, and a little more.
inline constexpr uint32_t kMaxBatchRawBytes = 34u << 20;
// The source closes a batch once it holds this many raw bytes.
inline constexpr uint32_t kBatchTargetBytes = 1u << 20;
inline constexpr uint32_t kMaxBatchItems = 65536;
inline constexpr size_t kBatchHeaderBytes = 32;
inline constexpr size_t kItemHeaderBytes = 40;

// Blocks and chunks (docs/formats/replication.md, "Blocks, chunks and hashes").
inline constexpr uint64_t kBlockBytes = 4096;
inline constexpr uint64_t kChunkBytes = 1u << 20;
inline constexpr uint32_t kBlocksPerChunk = static_cast<uint32_t>(kChunkBytes / kBlockBytes);

// Keepalive and timeouts.
inline constexpr int kKeepaliveMs = 5000;
inline constexpr int kPeerTimeoutMs = 30000;
// Flow control (source side).
inline constexpr uint64_t kMaxUnackedBytes = 64u << 20;
inline constexpr uint32_t kMaxUnackedBatches = 256;
inline constexpr uint32_t kMaxChunksInFlight = 32;

enum class MsgType : uint16_t {
  kHello = 1,
  kHelloReply = 2,
  kStart = 3,
  kBatch = 4,
  kAck = 5,
  kHashes = 6,
  kVerifyHashes = 7,
  kError = 8,
  kPing = 9,
  kPong = 10,
};
const char* MsgTypeName(MsgType t);  // "HELLO", ...

enum class ErrorCode : uint32_t {
  kOk = 0,
  kUnknownDisk = 1,
  kIdentityNotAllowed = 2,
  kSizeMismatch = 3,
  kGenerationMismatch = 4,
  kDiskIdMismatch = 5,
  kNoSpace = 6,
  kBusy = 7,
  kVersion = 8,
  kIoError = 9,
  kBadMessage = 10,
  kBadStream = 11,
  kShutdown = 12,
};
// Fatal errors are not retried (docs/formats/replication.md, ERROR).
bool IsFatal(ErrorCode code);
const char* ErrorCodeName(ErrorCode code);  // "unknown-disk", "no-space", ...

// kChanged: the replica image changed outside blockrep-target (restored by hand) while the
// target was stopped; only a whole-disk resync may follow.
enum class ReplicaState : uint32_t { kNew = 0, kInitialCopy = 1, kResync = 2, kInSync = 3, kChanged = 4 };
const char* ReplicaStateName(ReplicaState s);  // "new", "initial-copy", "resync", "in-sync", "changed"

enum class StartMode : uint32_t {
  kDelta = 1,
  kInitial = 2,
  kInitialResume = 3,
  kResync = 4,
  kResyncResume = 5,
};
const char* StartModeName(StartMode m);  // "delta", "initial", ...

enum class ItemType : uint8_t {
  kWrite = 1,
  kZero = 2,
  kTrim = 3,
  kSyncWrite = 4,
  kSyncZero = 5,
  kSyncCursor = 6,
  kHashRequest = 7,
  kSyncEnd = 8,
  kVerifyRequest = 9,
};
const char* ItemTypeName(ItemType t);
inline constexpr uint16_t kItemFlagFua = 1 << 0;

using DiskId = std::array<uint8_t, 16>;

// ---- frames ----------------------------------------------------------------------------

struct FrameHeader {
  MsgType type = MsgType::kPing;
  uint32_t payload_bytes = 0;
};
void EncodeFrameHeader(MsgType type, uint32_t payload_bytes, uint8_t out[kFrameHeaderBytes]);
// Checks magic, a known type, flags 0, payload_bytes <= MaxPayloadBytes(type) (so a
// receiver never allocates more than the type can need).
Status DecodeFrameHeader(const uint8_t in[kFrameHeaderBytes], FrameHeader* h);
// The largest payload a frame of this type may carry: kMaxFramePayloadBytes for BATCH, the
// largest valid version-1 payload for the others (4 KiB for HELLO, whatever its version).
uint32_t MaxPayloadBytes(MsgType type);

// A whole frame (header + payload) for a message whose payload is given.
std::vector<uint8_t> MakeFrame(MsgType type, const std::vector<uint8_t>& payload);

// ---- messages (payloads) ---------------------------------------------------------------
// Encode*() returns the payload (a string over kMaxStringBytes is cut to that, at a UTF-8
// character boundary); Decode*() parses one, rejecting short payloads, strings over
// kMaxStringBytes or past the end, bytes left over after the message, nonzero reserved
// fields, and unknown enum values. On error *m is left unchanged.

struct Hello {
  uint32_t version = kProtocolVersion;
  uint64_t disk_bytes = 0;
  uint64_t generation = 0;
  DiskId disk_id{};
  std::string disk_name;
  std::string software_version;
};
std::vector<uint8_t> EncodeHello(const Hello& m);
// Accepts any version number (the target answers kVersion itself). A HELLO of another
// version may have another layout: only its version is decoded (the rest is left default).
Status DecodeHello(const uint8_t* p, size_t n, Hello* m);

struct HelloReply {
  ErrorCode status = ErrorCode::kOk;
  ReplicaState state = ReplicaState::kNew;
  uint64_t durable_through = 0;
  uint64_t sync_cursor = 0;
  uint64_t generation = 0;
  DiskId disk_id{};
  std::string message;
};
std::vector<uint8_t> EncodeHelloReply(const HelloReply& m);
Status DecodeHelloReply(const uint8_t* p, size_t n, HelloReply* m);

struct Start {
  StartMode mode = StartMode::kDelta;
  uint64_t first_seq = 0;
  uint64_t sync_cursor = 0;
};
std::vector<uint8_t> EncodeStart(const Start& m);
// Also checks sync_cursor is 0 in the modes that do not resume (1, 2, 4).
Status DecodeStart(const uint8_t* p, size_t n, Start* m);

struct Ack {
  uint64_t batch = 0;
  uint64_t durable_through = 0;
  uint64_t sync_cursor = 0;
  ReplicaState state = ReplicaState::kNew;
};
std::vector<uint8_t> EncodeAck(const Ack& m);
Status DecodeAck(const uint8_t* p, size_t n, Ack* m);

struct Hashes {
  uint64_t chunk_offset = 0;
  uint32_t chunk_length = 0;
  bool equal = false;
  std::vector<uint64_t> block_hashes;  // empty when equal
};
// REQUIRES: m passes the checks of DecodeHashes.
std::vector<uint8_t> EncodeHashes(const Hashes& m);
// Checks: equal => no hashes; differ => exactly ceil(chunk_length / kBlockBytes) hashes;
// chunk_length in (0, kChunkBytes]; chunk_offset % kChunkBytes == 0.
Status DecodeHashes(const uint8_t* p, size_t n, Hashes* m);

struct VerifyHashes {
  uint64_t chunk_offset = 0;
  uint32_t chunk_length = 0;
  std::vector<uint64_t> block_hashes;  // ceil(chunk_length / kBlockBytes)
};
// REQUIRES: m passes the checks of DecodeVerifyHashes.
std::vector<uint8_t> EncodeVerifyHashes(const VerifyHashes& m);
// Checks: exactly ceil(chunk_length / kBlockBytes) hashes; chunk_length in (0, kChunkBytes];
// chunk_offset % kChunkBytes == 0.
Status DecodeVerifyHashes(const uint8_t* p, size_t n, VerifyHashes* m);

struct Error {
  ErrorCode code = ErrorCode::kOk;
  std::string message;
};
std::vector<uint8_t> EncodeError(const Error& m);
// Unknown codes decode (as that number): a newer peer may send one; callers treat an
// unknown code as transient. Code 0 (kOk) is rejected: an ERROR always carries an error.
Status DecodeError(const uint8_t* p, size_t n, Error* m);

// ---- batches -----------------------------------------------------------------------------

struct ItemHeader {
  ItemType type = ItemType::kWrite;
  uint16_t flags = 0;
  uint32_t data_bytes = 0;
  uint64_t seq = 0;  // record seq, or a sync item's barrier, or 0
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t timestamp_ns = 0;
};

// Builds one BATCH payload. Items are appended raw; Finish() compresses them (zstd at the
// given level; level 0 (or below) sends them uncompressed, and so does a frame zstd could not
// shrink). Not thread-safe; one builder per connection.
class BatchBuilder {
 public:
  // Starts a new batch (clears any previous one), with room for expected_raw_bytes of
  // items, so that a batch filled up to about that size is never moved while it grows.
  void Reset(uint64_t batch_number, size_t expected_raw_bytes = 0);
  // REQUIRES: h.data_bytes == the size of data; raw_bytes() + kItemHeaderBytes +
  // h.data_bytes <= kMaxBatchRawBytes; item_count() < kMaxBatchItems.
  void Add(const ItemHeader& h, const uint8_t* data);
  size_t raw_bytes() const { return raw_.size() - kPrefixBytes; }
  uint32_t item_count() const { return items_; }
  bool empty() const { return items_ == 0; }
  // Room for an item with this much data?
  bool Fits(uint32_t data_bytes) const;
  // The BATCH payload, header included. through_seq: see the spec. Fails only if zstd does
  // (out of memory). Leaves the builder as it was (Reset() starts the next batch).
  Result<std::vector<uint8_t>> Finish(uint64_t through_seq, int zstd_level);
  // The same as a whole BATCH frame (frame header included) in *frame, built without
  // copying the items when they go uncompressed: the items' buffer becomes the frame, and
  // *frame's old buffer is kept to build the next batch in. Unlike Finish, it leaves the
  // builder empty (Reset() starts the next batch).
  Status FinishFrame(uint64_t through_seq, int zstd_level, std::vector<uint8_t>* frame);
  // Gives the builder a spare buffer to build the next batch in (its capacity is what
  // counts: the shipper hands back the buffers the connection is done with).
  void Recycle(std::vector<uint8_t>&& spare);

 private:
  // raw_ keeps room for a frame header and the batch header before the items, so that an
  // uncompressed batch goes out as one buffer.
  static constexpr size_t kPrefixBytes = kFrameHeaderBytes + kBatchHeaderBytes;
  // Compresses the items into *z (reused); false when zstd could not shrink them.
  Result<bool> Compress(int zstd_level, std::vector<uint8_t>* z) const;
  void EncodeBatchHeader(uint64_t through_seq, uint32_t codec, uint8_t* out) const;

  uint64_t batch_ = 0;
  std::vector<uint8_t> raw_ = std::vector<uint8_t>(kPrefixBytes);
  std::vector<uint8_t> spare_;
  uint32_t items_ = 0;
};

struct BatchHeader {
  uint64_t batch = 0;
  uint64_t through_seq = 0;
  uint32_t codec = 0;  // 0 none, 1 zstd
  uint32_t raw_bytes = 0;
  uint32_t item_count = 0;
};

// Decodes a BATCH payload: checks the header (codec known, raw_bytes <=
// kMaxBatchRawBytes, item_count <= kMaxBatchItems, item_count item headers fit in
// raw_bytes, reserved 0), decompresses into *raw (reused across calls; never more than
// raw_bytes; codec 1 is exactly one zstd frame with nothing after it) and checks the result
// has exactly raw_bytes bytes. Items are then read with ItemReader. Uses a thread-local
// zstd context: safe to call from several threads at once.
//
// With `items`, an uncompressed batch is not copied: *items points at its items inside p
// (and *raw is left empty); a compressed one is decoded into *raw and *items points there.
Status DecodeBatch(const uint8_t* p, size_t n, BatchHeader* h, std::vector<uint8_t>* raw,
                   std::span<const uint8_t>* items = nullptr);

// Walks the items of a decoded batch, validating each against the disk's size:
//  - a known type, reserved byte 0, flags only kItemFlagFua;
//  - data_bytes: length for kWrite and kSyncWrite (which must then be <= kMaxBatchRawBytes),
//    8 for kHashRequest, 0 for the others; and present in full in the buffer;
//  - offset + length <= disk_bytes, without overflow; kWrite/kZero/kTrim/kSyncWrite/
//    kSyncZero need length > 0;
//  - kHashRequest and kVerifyRequest name one chunk: offset % kChunkBytes == 0, offset <
//    disk_bytes and length == min(kChunkBytes, disk_bytes - offset);
//  - kSyncCursor: offset <= disk_bytes and length 0;
//  - exactly `count` items, and no bytes left over after the last.
class ItemReader {
 public:
  ItemReader(const uint8_t* raw, size_t n, uint32_t count, uint64_t disk_bytes)
      : p_(raw), n_(n), count_(count), disk_bytes_(disk_bytes) {}
  // True and *h, *data (pointing into the buffer) for the next item; false at the end or on
  // an error (then status() says what was wrong and where: "BATCH item 3 (WRITE): ...",
  // items numbered from 0). Once it returned false it keeps returning false.
  bool Next(ItemHeader* h, const uint8_t** data);
  const Status& status() const { return status_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  uint32_t count_;
  uint32_t index_ = 0;
  uint64_t disk_bytes_;
  Status status_;
};

// ---- hashes -------------------------------------------------------------------------------

uint64_t BlockHash(const uint8_t* data, size_t n);  // XXH3-64, seed 0
// XXH3-64 of the block hashes as 8 little-endian bytes each, in order.
uint64_t ChunkHash(const uint64_t* block_hashes, size_t count);
// Block hashes of a chunk's bytes (n <= kChunkBytes): ceil(n / kBlockBytes) of them.
void BlockHashes(const uint8_t* data, size_t n, std::vector<uint64_t>* out);
// Length of the chunk at offset on a disk of disk_bytes (kChunkBytes but for the last).
// REQUIRES: offset <= disk_bytes.
inline uint64_t ChunkLength(uint64_t offset, uint64_t disk_bytes) {
  return disk_bytes - offset < kChunkBytes ? disk_bytes - offset : kChunkBytes;
}

}  // namespace blockrep::repl
