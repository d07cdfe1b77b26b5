#include "core/repl_wire.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/check.h"
#include "core/endian.h"
#include "core/journal_format.h"

namespace blockrep::repl {
namespace {

// Layouts pinned against the byte tables of docs/formats/replication.md.
static_assert(kFrameHeaderBytes == 4 + 2 + 2 + 4, "frame header: magic, type, flags, length");
static_assert(kBatchHeaderBytes == 8 + 8 + 4 + 4 + 4 + 4,
              "BATCH header: batch, through seq, codec, raw bytes, item count, reserved");
static_assert(kItemHeaderBytes == 1 + 1 + 2 + 4 + 8 + 8 + 8 + 8,
              "item header: type, reserved, flags, data bytes, seq, offset, length, timestamp");
static_assert(sizeof(kFrameMagic) == 4, "magic BRRP");
static_assert(kChunkBytes % kBlockBytes == 0 && kBlocksPerChunk == 256, "256 blocks a chunk");
// The journal's largest record with its item header fits a batch, and a batch sent raw
// (compression is used only when it shrinks the items) fits a frame.
static_assert(kMaxBatchRawBytes >= journal::kMaxPayloadBytes + kItemHeaderBytes,
              "a 32 MiB write fits a batch");
static_assert(kBatchHeaderBytes + kMaxBatchRawBytes <= kMaxFramePayloadBytes,
              "a raw batch fits a frame");

// Fixed parts of the payloads (the byte tables of the spec).
constexpr size_t kHelloFixedBytes = 40;
constexpr size_t kHelloReplyFixedBytes = 48;
constexpr size_t kStartBytes = 24;
constexpr size_t kAckBytes = 32;
constexpr size_t kHashesFixedBytes = 24;
constexpr size_t kVerifyHashesFixedBytes = 16;
constexpr size_t kErrorFixedBytes = 4;
constexpr size_t kStringCountBytes = 2;
constexpr size_t kHashBytes = 8;
constexpr size_t kMaxWireStringBytes = kStringCountBytes + kMaxStringBytes;
// HELLO of any version: a later version's HELLO must still reach DecodeHello so that the
// target can answer kVersion, so its limit is above version 1's largest (40 + 2 * 1026).
constexpr uint32_t kMaxHelloPayloadBytes = 4096;
static_assert(kHelloFixedBytes + 2 * kMaxWireStringBytes <= kMaxHelloPayloadBytes);

constexpr uint32_t kCodecNone = 0;
constexpr uint32_t kCodecZstd = 1;

Status Bad(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status Bad(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return Status::ProtocolError(buf);
}

bool KnownErrorCode(uint32_t v) { return v <= static_cast<uint32_t>(ErrorCode::kShutdown); }
bool KnownReplicaState(uint32_t v) { return v <= static_cast<uint32_t>(ReplicaState::kChanged); }
bool KnownStartMode(uint32_t v) {
  return v >= static_cast<uint32_t>(StartMode::kDelta) &&
         v <= static_cast<uint32_t>(StartMode::kResyncResume);
}
bool KnownMsgType(uint16_t v) {
  return v >= static_cast<uint16_t>(MsgType::kHello) && v <= static_cast<uint16_t>(MsgType::kPong);
}
bool KnownItemType(uint8_t v) {
  return v >= static_cast<uint8_t>(ItemType::kWrite) &&
         v <= static_cast<uint8_t>(ItemType::kVerifyRequest);
}

// names[value], or "?" for a value without a name (an unknown one a peer sent).
template <size_t N>
const char* NameAt(const char* const (&names)[N], uint32_t value) {
  return value < N && names[value] != nullptr ? names[value] : "?";
}

uint64_t BlocksIn(uint64_t bytes) { return (bytes + kBlockBytes - 1) / kBlockBytes; }

// A string's bytes on the wire: at most kMaxStringBytes, cut at a UTF-8 character boundary.
size_t WireStringBytes(const std::string& s) {
  if (s.size() <= kMaxStringBytes) return s.size();
  size_t n = kMaxStringBytes;
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;  // s[n] continues a char
  return n;
}
// A string's size on the wire, byte count included.
size_t WireBytes(const std::string& s) { return kStringCountBytes + WireStringBytes(s); }

// Appends little-endian fields to a payload.
class PayloadWriter {
 public:
  explicit PayloadWriter(size_t reserve_bytes) { out_.reserve(reserve_bytes); }
  void U32(uint32_t v) { StoreLe32(Grow(4), v); }
  void U64(uint64_t v) { StoreLe64(Grow(8), v); }
  void Bytes(const uint8_t* p, size_t n) {
    if (n > 0) std::memcpy(Grow(n), p, n);
  }
  void String(const std::string& s) {
    const size_t n = WireStringBytes(s);
    StoreLe16(Grow(kStringCountBytes), static_cast<uint16_t>(n));
    Bytes(reinterpret_cast<const uint8_t*>(s.data()), n);
  }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  uint8_t* Grow(size_t n) {
    out_.resize(out_.size() + n);
    return out_.data() + out_.size() - n;
  }
  std::vector<uint8_t> out_;
};

// Reads the fields of one payload. Fixed fields are read at their offset once the caller
// checked the fixed part is there (asserted); strings and the end are checked here, since
// their sizes come from the peer.
class PayloadReader {
 public:
  PayloadReader(const char* msg, const uint8_t* p, size_t n) : msg_(msg), p_(p), n_(n) {}

  Status NeedFixed(size_t fixed_bytes) const {
    if (n_ < fixed_bytes) {
      return Bad("%s: payload of %zu bytes is shorter than its fixed part (%zu)", msg_, n_,
                 fixed_bytes);
    }
    return Status::Ok();
  }
  // A fixed-size message: exactly that many bytes.
  Status NeedExactly(size_t bytes) const {
    BLOCKREP_RETURN_IF_ERROR(NeedFixed(bytes));
    return NeedEnd(bytes);
  }
  Status NeedEnd(size_t pos) const {
    if (pos != n_) {
      return Bad("%s: %zu bytes left over after the message ends at offset %zu", msg_, n_ - pos,
                 pos);
    }
    return Status::Ok();
  }
  Status NeedZero(const char* field, uint32_t v) const {
    if (v != 0) return Bad("%s: %s is %" PRIu32 ", expected 0", msg_, field, v);
    return Status::Ok();
  }

  uint32_t U32(size_t at) const {
    BLOCKREP_CHECK(at + 4 <= n_);
    return LoadLe32(p_ + at);
  }
  uint64_t U64(size_t at) const {
    BLOCKREP_CHECK(at + 8 <= n_);
    return LoadLe64(p_ + at);
  }
  DiskId Id(size_t at) const {
    BLOCKREP_CHECK(at + sizeof(DiskId) <= n_);
    DiskId id;
    std::memcpy(id.data(), p_ + at, id.size());
    return id;
  }
  // The string at *pos; advances *pos past it.
  Status String(const char* field, size_t* pos, std::string* out) const {
    if (n_ - *pos < kStringCountBytes) {
      return Bad("%s: %s at offset %zu: its byte count runs past the end of the payload (%zu)",
                 msg_, field, *pos, n_);
    }
    const size_t len = LoadLe16(p_ + *pos);
    if (len > kMaxStringBytes) {
      return Bad("%s: %s of %zu bytes is over the limit (%zu)", msg_, field, len, kMaxStringBytes);
    }
    const size_t start = *pos + kStringCountBytes;
    if (n_ - start < len) {
      return Bad("%s: %s of %zu bytes at offset %zu runs past the end of the payload (%zu)", msg_,
                 field, len, start, n_);
    }
    out->assign(reinterpret_cast<const char*>(p_ + start), len);
    *pos = start + len;
    return Status::Ok();
  }
  // `count` block hashes at `at` (count <= kBlocksPerChunk, checked by the caller), and
  // nothing after them.
  Status BlockHashes(size_t at, uint32_t count, std::vector<uint64_t>* out) const {
    const size_t end = at + kHashBytes * count;
    if (n_ < end) {
      return Bad("%s: %" PRIu32 " block hashes need %zu bytes, the payload has %zu", msg_, count,
                 end, n_);
    }
    BLOCKREP_RETURN_IF_ERROR(NeedEnd(end));
    out->clear();
    out->reserve(count);
    for (uint32_t i = 0; i < count; ++i) out->push_back(U64(at + kHashBytes * i));
    return Status::Ok();
  }

 private:
  const char* msg_;
  const uint8_t* p_;
  size_t n_;
};

Status CheckChunk(const char* msg, uint64_t chunk_offset, uint32_t chunk_length) {
  if (chunk_offset % kChunkBytes != 0) {
    return Bad("%s: chunk offset %" PRIu64 " is not a multiple of %" PRIu64, msg, chunk_offset,
               kChunkBytes);
  }
  if (chunk_length == 0 || chunk_length > kChunkBytes) {
    return Bad("%s: chunk length %" PRIu32 " is not in 1..%" PRIu64, msg, chunk_length,
               kChunkBytes);
  }
  return Status::Ok();
}

void EncodeItemHeader(const ItemHeader& h, uint8_t out[kItemHeaderBytes]) {
  out[0] = static_cast<uint8_t>(h.type);
  out[1] = 0;
  StoreLe16(out + 2, h.flags);
  StoreLe32(out + 4, h.data_bytes);
  StoreLe64(out + 8, h.seq);
  StoreLe64(out + 16, h.offset);
  StoreLe64(out + 24, h.length);
  StoreLe64(out + 32, h.timestamp_ns);
}

// zstd contexts, one per thread, kept for the thread's life (a context holds megabytes of
// tables; creating one per batch would allocate them per batch).
struct ZstdCctxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct ZstdDctxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
ZSTD_CCtx* ThreadCctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, ZstdCctxFree> ctx;
  if (!ctx) ctx.reset(ZSTD_createCCtx());
  return ctx.get();
}
ZSTD_DCtx* ThreadDctx() {
  thread_local std::unique_ptr<ZSTD_DCtx, ZstdDctxFree> ctx;
  if (!ctx) ctx.reset(ZSTD_createDCtx());
  return ctx.get();
}

}  // namespace

// ---- names -------------------------------------------------------------------------------

const char* MsgTypeName(MsgType t) {
  static constexpr const char* kNames[] = {nullptr, "HELLO", "HELLO_REPLY", "START",
                                           "BATCH", "ACK",   "HASHES",      "VERIFY_HASHES",
                                           "ERROR", "PING",  "PONG"};
  return NameAt(kNames, static_cast<uint16_t>(t));
}

bool IsFatal(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUnknownDisk:
    case ErrorCode::kIdentityNotAllowed:
    case ErrorCode::kSizeMismatch:
    case ErrorCode::kGenerationMismatch:
    case ErrorCode::kDiskIdMismatch:
    case ErrorCode::kVersion:
      return true;
    default:
      return false;  // transient, and so is an unknown code from a newer peer
  }
}

const char* ErrorCodeName(ErrorCode code) {
  static constexpr const char* kNames[] = {"ok",
                                           "unknown-disk",
                                           "identity-not-allowed",
                                           "size-mismatch",
                                           "generation-mismatch",
                                           "disk-id-mismatch",
                                           "no-space",
                                           "busy",
                                           "version",
                                           "io-error",
                                           "bad-message",
                                           "bad-stream",
                                           "shutdown"};
  return NameAt(kNames, static_cast<uint32_t>(code));
}

const char* ReplicaStateName(ReplicaState s) {
  static constexpr const char* kNames[] = {"new", "initial-copy", "resync", "in-sync", "changed"};
  return NameAt(kNames, static_cast<uint32_t>(s));
}

const char* StartModeName(StartMode m) {
  static constexpr const char* kNames[] = {nullptr,          "delta",  "initial",
                                           "initial-resume", "resync", "resync-resume"};
  return NameAt(kNames, static_cast<uint32_t>(m));
}

const char* ItemTypeName(ItemType t) {
  static constexpr const char* kNames[] = {
      nullptr,     "WRITE",       "ZERO",         "TRIM",     "SYNC_WRITE",
      "SYNC_ZERO", "SYNC_CURSOR", "HASH_REQUEST", "SYNC_END", "VERIFY_REQUEST"};
  return NameAt(kNames, static_cast<uint8_t>(t));
}

// ---- frames ------------------------------------------------------------------------------

uint32_t MaxPayloadBytes(MsgType type) {
  switch (type) {
    case MsgType::kHello:
      return kMaxHelloPayloadBytes;
    case MsgType::kHelloReply:
      return kHelloReplyFixedBytes + kMaxWireStringBytes;
    case MsgType::kStart:
      return kStartBytes;
    case MsgType::kBatch:
      return kMaxFramePayloadBytes;
    case MsgType::kAck:
      return kAckBytes;
    case MsgType::kHashes:
      return kHashesFixedBytes + kHashBytes * kBlocksPerChunk;
    case MsgType::kVerifyHashes:
      return kVerifyHashesFixedBytes + kHashBytes * kBlocksPerChunk;
    case MsgType::kError:
      return kErrorFixedBytes + kMaxWireStringBytes;
    case MsgType::kPing:
    case MsgType::kPong:
      return 0;
  }
  return 0;
}

void EncodeFrameHeader(MsgType type, uint32_t payload_bytes, uint8_t out[kFrameHeaderBytes]) {
  std::memcpy(out, kFrameMagic, sizeof(kFrameMagic));
  StoreLe16(out + 4, static_cast<uint16_t>(type));
  StoreLe16(out + 6, 0);  // flags
  StoreLe32(out + 8, payload_bytes);
}

Status DecodeFrameHeader(const uint8_t in[kFrameHeaderBytes], FrameHeader* h) {
  if (std::memcmp(in, kFrameMagic, sizeof(kFrameMagic)) != 0) {
    return Bad("frame header: magic %02x %02x %02x %02x is not BRRP", in[0], in[1], in[2], in[3]);
  }
  const uint16_t type = LoadLe16(in + 4);
  if (!KnownMsgType(type)) return Bad("frame header: unknown message type %u", type);
  const MsgType t = static_cast<MsgType>(type);
  const uint16_t flags = LoadLe16(in + 6);
  if (flags != 0) return Bad("frame header (%s): flags 0x%04x, expected 0", MsgTypeName(t), flags);
  const uint32_t payload_bytes = LoadLe32(in + 8);
  if (payload_bytes > MaxPayloadBytes(t)) {
    return Bad("frame header (%s): payload of %" PRIu32 " bytes is over the limit (%" PRIu32 ")",
               MsgTypeName(t), payload_bytes, MaxPayloadBytes(t));
  }
  h->type = t;
  h->payload_bytes = payload_bytes;
  return Status::Ok();
}

std::vector<uint8_t> MakeFrame(MsgType type, const std::vector<uint8_t>& payload) {
  BLOCKREP_CHECK(payload.size() <= MaxPayloadBytes(type));
  std::vector<uint8_t> frame(kFrameHeaderBytes + payload.size());
  EncodeFrameHeader(type, static_cast<uint32_t>(payload.size()), frame.data());
  if (!payload.empty())
    std::memcpy(frame.data() + kFrameHeaderBytes, payload.data(), payload.size());
  return frame;
}

// ---- messages ----------------------------------------------------------------------------

std::vector<uint8_t> EncodeHello(const Hello& m) {
  PayloadWriter w(kHelloFixedBytes + WireBytes(m.disk_name) + WireBytes(m.software_version));
  w.U32(m.version);
  w.U32(0);  // reserved
  w.U64(m.disk_bytes);
  w.U64(m.generation);
  w.Bytes(m.disk_id.data(), m.disk_id.size());
  w.String(m.disk_name);
  w.String(m.software_version);
  return w.Take();
}

Status DecodeHello(const uint8_t* p, size_t n, Hello* m) {
  const PayloadReader r("HELLO", p, n);
  BLOCKREP_RETURN_IF_ERROR(r.NeedFixed(4));  // the version, which every version keeps first
  Hello x;
  x.version = r.U32(0);
  if (x.version != kProtocolVersion) {
    *m = std::move(x);  // another layout: the target answers kVersion from the version alone
    return Status::Ok();
  }
  BLOCKREP_RETURN_IF_ERROR(r.NeedFixed(kHelloFixedBytes));
  BLOCKREP_RETURN_IF_ERROR(r.NeedZero("reserved field at offset 4", r.U32(4)));
  x.disk_bytes = r.U64(8);
  x.generation = r.U64(16);
  x.disk_id = r.Id(24);
  size_t pos = kHelloFixedBytes;
  BLOCKREP_RETURN_IF_ERROR(r.String("disk name", &pos, &x.disk_name));
  BLOCKREP_RETURN_IF_ERROR(r.String("software version", &pos, &x.software_version));
  BLOCKREP_RETURN_IF_ERROR(r.NeedEnd(pos));
  *m = std::move(x);
  return Status::Ok();
}

std::vector<uint8_t> EncodeHelloReply(const HelloReply& m) {
  PayloadWriter w(kHelloReplyFixedBytes + WireBytes(m.message));
  w.U32(static_cast<uint32_t>(m.status));
  w.U32(static_cast<uint32_t>(m.state));
  w.U64(m.durable_through);
  w.U64(m.sync_cursor);
  w.U64(m.generation);
  w.Bytes(m.disk_id.data(), m.disk_id.size());
  w.String(m.message);
  return w.Take();
}

Status DecodeHelloReply(const uint8_t* p, size_t n, HelloReply* m) {
  const PayloadReader r("HELLO_REPLY", p, n);
  BLOCKREP_RETURN_IF_ERROR(r.NeedFixed(kHelloReplyFixedBytes));
  const uint32_t status = r.U32(0);
  if (!KnownErrorCode(status)) return Bad("HELLO_REPLY: unknown status %" PRIu32, status);
  const uint32_t state = r.U32(4);
  if (!KnownReplicaState(state)) return Bad("HELLO_REPLY: unknown replica state %" PRIu32, state);
  HelloReply x;
  x.status = static_cast<ErrorCode>(status);
  x.state = static_cast<ReplicaState>(state);
  x.durable_through = r.U64(8);
  x.sync_cursor = r.U64(16);
  x.generation = r.U64(24);
  x.disk_id = r.Id(32);
  size_t pos = kHelloReplyFixedBytes;
  BLOCKREP_RETURN_IF_ERROR(r.String("message", &pos, &x.message));
  BLOCKREP_RETURN_IF_ERROR(r.NeedEnd(pos));
  *m = std::move(x);
  return Status::Ok();
}

std::vector<uint8_t> EncodeStart(const Start& m) {
  PayloadWriter w(kStartBytes);
  w.U32(static_cast<uint32_t>(m.mode));
  w.U32(0);  // reserved
  w.U64(m.first_seq);
  w.U64(m.sync_cursor);
  return w.Take();
}

Status DecodeStart(const uint8_t* p, size_t n, Start* m) {
  const PayloadReader r("START", p, n);
  BLOCKREP_RETURN_IF_ERROR(r.NeedExactly(kStartBytes));
  const uint32_t mode = r.U32(0);
  if (!KnownStartMode(mode)) return Bad("START: unknown mode %" PRIu32, mode);
  BLOCKREP_RETURN_IF_ERROR(r.NeedZero("reserved field at offset 4", r.U32(4)));
  Start x;
  x.mode = static_cast<StartMode>(mode);
  x.first_seq = r.U64(8);
  x.sync_cursor = r.U64(16);
  const bool resumes = x.mode == StartMode::kInitialResume || x.mode == StartMode::kResyncResume;
  if (!resumes && x.sync_cursor != 0) {
    return Bad("START (%s): sync cursor %" PRIu64 ", expected 0 in a mode that does not resume",
               StartModeName(x.mode), x.sync_cursor);
  }
  *m = x;
  return Status::Ok();
}

std::vector<uint8_t> EncodeAck(const Ack& m) {
  PayloadWriter w(kAckBytes);
  w.U64(m.batch);
  w.U64(m.durable_through);
  w.U64(m.sync_cursor);
  w.U32(static_cast<uint32_t>(m.state));
  w.U32(0);  // reserved
  return w.Take();
}

Status DecodeAck(const uint8_t* p, size_t n, Ack* m) {
  const PayloadReader r("ACK", p, n);
  BLOCKREP_RETURN_IF_ERROR(r.NeedExactly(kAckBytes));
  const uint32_t state = r.U32(24);
  if (!KnownReplicaState(state)) return Bad("ACK: unknown replica state %" PRIu32, state);
  BLOCKREP_RETURN_IF_ERROR(r.NeedZero("reserved field at offset 28", r.U32(28)));
  Ack x;
  x.batch = r.U64(0);
  x.durable_through = r.U64(8);
  x.sync_cursor = r.U64(16);
  x.state = static_cast<ReplicaState>(state);
  *m = x;
  return Status::Ok();
}

std::vector<uint8_t> EncodeHashes(const Hashes& m) {
  BLOCKREP_CHECK(m.chunk_offset % kChunkBytes == 0);
  BLOCKREP_CHECK(m.chunk_length > 0 && m.chunk_length <= kChunkBytes);
  BLOCKREP_CHECK(m.block_hashes.size() == (m.equal ? 0 : BlocksIn(m.chunk_length)));
  PayloadWriter w(kHashesFixedBytes + kHashBytes * m.block_hashes.size());
  w.U64(m.chunk_offset);
  w.U32(m.chunk_length);
  w.U32(m.equal ? 0 : 1);
  w.U32(static_cast<uint32_t>(m.block_hashes.size()));
  w.U32(0);  // reserved
  for (uint64_t h : m.block_hashes) w.U64(h);
  return w.Take();
}

Status DecodeHashes(const uint8_t* p, size_t n, Hashes* m) {
  const PayloadReader r("HASHES", p, n);
  BLOCKREP_RETURN_IF_ERROR(r.NeedFixed(kHashesFixedBytes));
  Hashes x;
  x.chunk_offset = r.U64(0);
  x.chunk_length = r.U32(8);
  BLOCKREP_RETURN_IF_ERROR(CheckChunk("HASHES", x.chunk_offset, x.chunk_length));
  const uint32_t differs = r.U32(12);
  if (differs > 1) return Bad("HASHES: comparison %" PRIu32 ", expected 0 or 1", differs);
  x.equal = differs == 0;
  BLOCKREP_RETURN_IF_ERROR(r.NeedZero("reserved field at offset 20", r.U32(20)));
  const uint32_t count = r.U32(16);
  const uint64_t expected = x.equal ? 0 : BlocksIn(x.chunk_length);
  if (count != expected) {
    return Bad("HASHES: %" PRIu32 " block hashes for a%s chunk of %" PRIu32
               " bytes, expected %" PRIu64,
               count, x.equal ? "n equal" : " differing", x.chunk_length, expected);
  }
  BLOCKREP_RETURN_IF_ERROR(r.BlockHashes(kHashesFixedBytes, count, &x.block_hashes));
  *m = std::move(x);
  return Status::Ok();
}

std::vector<uint8_t> EncodeVerifyHashes(const VerifyHashes& m) {
  BLOCKREP_CHECK(m.chunk_offset % kChunkBytes == 0);
  BLOCKREP_CHECK(m.chunk_length > 0 && m.chunk_length <= kChunkBytes);
  BLOCKREP_CHECK(m.block_hashes.size() == BlocksIn(m.chunk_length));
  PayloadWriter w(kVerifyHashesFixedBytes + kHashBytes * m.block_hashes.size());
  w.U64(m.chunk_offset);
  w.U32(m.chunk_length);
  w.U32(static_cast<uint32_t>(m.block_hashes.size()));
  for (uint64_t h : m.block_hashes) w.U64(h);
  return w.Take();
}

Status DecodeVerifyHashes(const uint8_t* p, size_t n, VerifyHashes* m) {
  const PayloadReader r("VERIFY_HASHES", p, n);
  BLOCKREP_RETURN_IF_ERROR(r.NeedFixed(kVerifyHashesFixedBytes));
  VerifyHashes x;
  x.chunk_offset = r.U64(0);
  x.chunk_length = r.U32(8);
  BLOCKREP_RETURN_IF_ERROR(CheckChunk("VERIFY_HASHES", x.chunk_offset, x.chunk_length));
  const uint32_t count = r.U32(12);
  const uint64_t expected = BlocksIn(x.chunk_length);
  if (count != expected) {
    return Bad("VERIFY_HASHES: %" PRIu32 " block hashes for a chunk of %" PRIu32
               " bytes, expected %" PRIu64,
               count, x.chunk_length, expected);
  }
  BLOCKREP_RETURN_IF_ERROR(r.BlockHashes(kVerifyHashesFixedBytes, count, &x.block_hashes));
  *m = std::move(x);
  return Status::Ok();
}

std::vector<uint8_t> EncodeError(const Error& m) {
  PayloadWriter w(kErrorFixedBytes + WireBytes(m.message));
  w.U32(static_cast<uint32_t>(m.code));
  w.String(m.message);
  return w.Take();
}

Status DecodeError(const uint8_t* p, size_t n, Error* m) {
  const PayloadReader r("ERROR", p, n);
  BLOCKREP_RETURN_IF_ERROR(r.NeedFixed(kErrorFixedBytes));
  Error x;
  const uint32_t code = r.U32(0);
  if (code == 0) return Bad("ERROR: code 0 (ok) is not an error");
  x.code = static_cast<ErrorCode>(code);  // an unknown code too: a newer peer may send one
  size_t pos = kErrorFixedBytes;
  BLOCKREP_RETURN_IF_ERROR(r.String("message", &pos, &x.message));
  BLOCKREP_RETURN_IF_ERROR(r.NeedEnd(pos));
  *m = std::move(x);
  return Status::Ok();
}

// ---- batches -----------------------------------------------------------------------------

void BatchBuilder::Reset(uint64_t batch_number, size_t expected_raw_bytes) {
  batch_ = batch_number;
  if (raw_.capacity() < kPrefixBytes && spare_.capacity() > raw_.capacity()) raw_.swap(spare_);
  raw_.resize(kPrefixBytes);
  raw_.reserve(kPrefixBytes + expected_raw_bytes);
  items_ = 0;
}

void BatchBuilder::Recycle(std::vector<uint8_t>&& spare) {
  if (spare.capacity() > spare_.capacity()) spare_.swap(spare);
  spare.clear();
}

bool BatchBuilder::Fits(uint32_t data_bytes) const {
  return items_ < kMaxBatchItems &&
         raw_bytes() + kItemHeaderBytes + data_bytes <= kMaxBatchRawBytes;
}

void BatchBuilder::Add(const ItemHeader& h, const uint8_t* data) {
  BLOCKREP_CHECK(Fits(h.data_bytes));
  BLOCKREP_CHECK(h.data_bytes == 0 || data != nullptr);
  BLOCKREP_CHECK(raw_.size() >= kPrefixBytes);
  // insert, not resize and copy: resize would zero the bytes first.
  uint8_t header[kItemHeaderBytes];
  EncodeItemHeader(h, header);
  raw_.insert(raw_.end(), header, header + kItemHeaderBytes);
  if (h.data_bytes > 0) raw_.insert(raw_.end(), data, data + h.data_bytes);
  ++items_;
}

Result<bool> BatchBuilder::Compress(int zstd_level, std::vector<uint8_t>* z) const {
  if (zstd_level <= 0 || raw_bytes() == 0) return false;
  ZSTD_CCtx* cctx = ThreadCctx();
  if (cctx == nullptr) {
    return Status::IoError("BATCH " + std::to_string(batch_) +
                           ": cannot create a zstd compression context (out of memory)");
  }
  z->resize(ZSTD_compressBound(raw_bytes()));
  const size_t n = ZSTD_compressCCtx(cctx, z->data(), z->size(), raw_.data() + kPrefixBytes,
                                     raw_bytes(), zstd_level);
  if (ZSTD_isError(n)) {
    return Status::IoError("BATCH " + std::to_string(batch_) + ": zstd level " +
                           std::to_string(zstd_level) + " on " + std::to_string(raw_bytes()) +
                           " bytes failed: " + ZSTD_getErrorName(n));
  }
  if (n >= raw_bytes()) return false;
  z->resize(n);
  return true;
}

void BatchBuilder::EncodeBatchHeader(uint64_t through_seq, uint32_t codec, uint8_t* out) const {
  StoreLe64(out, batch_);
  StoreLe64(out + 8, through_seq);
  StoreLe32(out + 16, codec);
  StoreLe32(out + 20, static_cast<uint32_t>(raw_bytes()));
  StoreLe32(out + 24, items_);
  StoreLe32(out + 28, 0);  // reserved
}

Result<std::vector<uint8_t>> BatchBuilder::Finish(uint64_t through_seq, int zstd_level) {
  thread_local std::vector<uint8_t> z;
  auto compressed = Compress(zstd_level, &z);
  if (!compressed.ok()) return compressed.status();
  // Copied into a payload of its own size: the caller may hold it until it is acknowledged.
  std::vector<uint8_t> out(kBatchHeaderBytes);
  if (compressed.value()) {
    out.insert(out.end(), z.begin(), z.end());
  } else {  // level 0, or zstd could not shrink the items
    out.insert(out.end(), raw_.begin() + kPrefixBytes, raw_.end());
  }
  EncodeBatchHeader(through_seq, compressed.value() ? kCodecZstd : kCodecNone, out.data());
  return out;
}

Status BatchBuilder::FinishFrame(uint64_t through_seq, int zstd_level, std::vector<uint8_t>* frame) {
  thread_local std::vector<uint8_t> z;
  auto compressed = Compress(zstd_level, &z);
  if (!compressed.ok()) return compressed.status();
  if (compressed.value()) {
    frame->resize(kPrefixBytes + z.size());
    std::memcpy(frame->data() + kPrefixBytes, z.data(), z.size());
    EncodeBatchHeader(through_seq, kCodecZstd, frame->data() + kFrameHeaderBytes);
    EncodeFrameHeader(MsgType::kBatch, static_cast<uint32_t>(kBatchHeaderBytes + z.size()), frame->data());
    raw_.resize(kPrefixBytes);  // keeps its capacity for the next batch
  } else {
    EncodeBatchHeader(through_seq, kCodecNone, raw_.data() + kFrameHeaderBytes);
    EncodeFrameHeader(MsgType::kBatch, static_cast<uint32_t>(kBatchHeaderBytes + raw_bytes()),
                      raw_.data());
    Recycle(std::move(*frame));
    frame->swap(raw_);  // the items' buffer is the frame; raw_ is empty until Reset
  }
  items_ = 0;
  return Status::Ok();
}

Status DecodeBatch(const uint8_t* p, size_t n, BatchHeader* h, std::vector<uint8_t>* raw,
                   std::span<const uint8_t>* items) {
  const PayloadReader r("BATCH", p, n);
  BLOCKREP_RETURN_IF_ERROR(r.NeedFixed(kBatchHeaderBytes));
  BatchHeader x;
  x.batch = r.U64(0);
  x.through_seq = r.U64(8);
  x.codec = r.U32(16);
  x.raw_bytes = r.U32(20);
  x.item_count = r.U32(24);
  if (r.U32(28) != 0) {
    return Bad("BATCH %" PRIu64 ": reserved field at offset 28 is %" PRIu32 ", expected 0", x.batch,
               r.U32(28));
  }
  if (x.codec != kCodecNone && x.codec != kCodecZstd) {
    return Bad("BATCH %" PRIu64 ": unknown codec %" PRIu32, x.batch, x.codec);
  }
  if (x.raw_bytes > kMaxBatchRawBytes) {
    return Bad("BATCH %" PRIu64 ": raw bytes %" PRIu32 " is over the limit (%" PRIu32 ")", x.batch,
               x.raw_bytes, kMaxBatchRawBytes);
  }
  if (x.item_count > kMaxBatchItems) {
    return Bad("BATCH %" PRIu64 ": %" PRIu32 " items is over the limit (%" PRIu32 ")", x.batch,
               x.item_count, kMaxBatchItems);
  }
  if (uint64_t{x.item_count} * kItemHeaderBytes > x.raw_bytes) {
    return Bad("BATCH %" PRIu64 ": %" PRIu32 " items do not fit in raw bytes %" PRIu32, x.batch,
               x.item_count, x.raw_bytes);
  }
  const uint8_t* body = p + kBatchHeaderBytes;
  const size_t body_bytes = n - kBatchHeaderBytes;
  if (x.codec == kCodecNone) {
    if (body_bytes != x.raw_bytes) {
      return Bad("BATCH %" PRIu64 ": %zu bytes of items, the header says raw bytes %" PRIu32,
                 x.batch, body_bytes, x.raw_bytes);
    }
    if (items != nullptr) {
      raw->clear();
      *items = std::span<const uint8_t>(body, body_bytes);
    } else {
      raw->assign(body, body + body_bytes);
    }
    *h = x;
    return Status::Ok();
  }

  // zstd: exactly one frame, whose declared size (when it has one) is raw bytes; decoded
  // into a buffer of raw bytes, so a frame that would decode to more fails instead of
  // allocating.
  const size_t frame_bytes = ZSTD_findFrameCompressedSize(body, body_bytes);
  if (ZSTD_isError(frame_bytes)) {
    return Bad("BATCH %" PRIu64 ": the items are not a zstd frame: %s", x.batch,
               ZSTD_getErrorName(frame_bytes));
  }
  if (frame_bytes != body_bytes) {
    return Bad("BATCH %" PRIu64 ": %zu bytes after the zstd frame of %zu", x.batch,
               body_bytes - frame_bytes, frame_bytes);
  }
  const unsigned long long content_bytes = ZSTD_getFrameContentSize(body, body_bytes);
  if (content_bytes == ZSTD_CONTENTSIZE_ERROR) {
    return Bad("BATCH %" PRIu64 ": the items are not a zstd frame", x.batch);
  }
  if (content_bytes != ZSTD_CONTENTSIZE_UNKNOWN && content_bytes != x.raw_bytes) {
    return Bad("BATCH %" PRIu64 ": zstd frame holds %llu bytes, the header says raw bytes %" PRIu32,
               x.batch, content_bytes, x.raw_bytes);
  }
  ZSTD_DCtx* dctx = ThreadDctx();
  if (dctx == nullptr) {
    return Status::IoError("BATCH " + std::to_string(x.batch) +
                           ": cannot create a zstd decompression context (out of memory)");
  }
  raw->resize(x.raw_bytes);
  const size_t got = ZSTD_decompressDCtx(dctx, raw->data(), x.raw_bytes, body, body_bytes);
  if (ZSTD_isError(got)) {
    return Bad("BATCH %" PRIu64 ": zstd frame does not decode into raw bytes %" PRIu32 ": %s",
               x.batch, x.raw_bytes, ZSTD_getErrorName(got));
  }
  if (got != x.raw_bytes) {
    return Bad("BATCH %" PRIu64
               ": zstd frame decodes to %zu bytes, the header says raw bytes %" PRIu32,
               x.batch, got, x.raw_bytes);
  }
  if (items != nullptr) *items = std::span<const uint8_t>(*raw);
  *h = x;
  return Status::Ok();
}

namespace {

// The rules of ItemReader (repl_wire.h) for one item whose header is x, with data_left bytes
// in the buffer after its header.
Status CheckItem(const ItemHeader& x, uint8_t reserved, size_t data_left, uint32_t index,
                 uint64_t disk_bytes) {
  const char* name = ItemTypeName(x.type);
  if (reserved != 0) {
    return Bad("BATCH item %" PRIu32 " (%s): reserved byte is %u, expected 0", index, name,
               reserved);
  }
  if ((x.flags & ~kItemFlagFua) != 0) {
    return Bad("BATCH item %" PRIu32 " (%s): unknown flags 0x%04x", index, name, x.flags);
  }
  uint64_t data_expected = 0;
  switch (x.type) {
    case ItemType::kWrite:
    case ItemType::kSyncWrite:
      if (x.length > kMaxBatchRawBytes) {
        return Bad("BATCH item %" PRIu32 " (%s): length %" PRIu64
                   " is over the batch limit (%" PRIu32 ")",
                   index, name, x.length, kMaxBatchRawBytes);
      }
      data_expected = x.length;
      break;
    case ItemType::kHashRequest:
      data_expected = kHashBytes;
      break;
    default:
      break;
  }
  if (x.data_bytes != data_expected) {
    return Bad("BATCH item %" PRIu32 " (%s): %" PRIu32 " data bytes, expected %" PRIu64, index,
               name, x.data_bytes, data_expected);
  }
  if (x.data_bytes > data_left) {
    return Bad("BATCH item %" PRIu32 " (%s): data of %" PRIu32
               " bytes runs past the end of the batch (%zu bytes left)",
               index, name, x.data_bytes, data_left);
  }
  if (x.length > disk_bytes || x.offset > disk_bytes - x.length) {  // no overflow
    return Bad("BATCH item %" PRIu32 " (%s): range %" PRIu64 "+%" PRIu64
               " ends past the disk (%" PRIu64 " bytes)",
               index, name, x.offset, x.length, disk_bytes);
  }
  switch (x.type) {
    case ItemType::kWrite:
    case ItemType::kZero:
    case ItemType::kTrim:
    case ItemType::kSyncWrite:
    case ItemType::kSyncZero:
      if (x.length == 0) {
        return Bad("BATCH item %" PRIu32 " (%s): empty range at %" PRIu64, index, name, x.offset);
      }
      break;
    case ItemType::kHashRequest:
    case ItemType::kVerifyRequest:
      if (x.offset % kChunkBytes != 0 || x.offset >= disk_bytes ||
          x.length != ChunkLength(x.offset, disk_bytes)) {
        return Bad("BATCH item %" PRIu32 " (%s): range %" PRIu64 "+%" PRIu64
                   " is not one chunk of the disk (%" PRIu64 " bytes)",
                   index, name, x.offset, x.length, disk_bytes);
      }
      break;
    case ItemType::kSyncCursor:
      if (x.length != 0) {
        return Bad("BATCH item %" PRIu32 " (%s): length %" PRIu64 ", expected 0", index, name,
                   x.length);
      }
      break;
    case ItemType::kSyncEnd:
      break;
  }
  return Status::Ok();
}

}  // namespace

bool ItemReader::Next(ItemHeader* h, const uint8_t** data) {
  if (!status_.ok()) return false;
  if (index_ == count_) {
    if (pos_ != n_) {
      status_ =
          Bad("BATCH: %zu bytes left over after the last of %" PRIu32 " items", n_ - pos_, count_);
    }
    return false;
  }
  const size_t left = n_ - pos_;
  if (left < kItemHeaderBytes) {
    status_ = Bad("BATCH item %" PRIu32
                  ": header of %zu bytes at raw offset %zu runs past the end "
                  "(%zu bytes left)",
                  index_, kItemHeaderBytes, pos_, left);
    return false;
  }
  const uint8_t* q = p_ + pos_;
  if (!KnownItemType(q[0])) {
    status_ = Bad("BATCH item %" PRIu32 ": unknown type %u", index_, q[0]);
    return false;
  }
  ItemHeader x;
  x.type = static_cast<ItemType>(q[0]);
  x.flags = LoadLe16(q + 2);
  x.data_bytes = LoadLe32(q + 4);
  x.seq = LoadLe64(q + 8);
  x.offset = LoadLe64(q + 16);
  x.length = LoadLe64(q + 24);
  x.timestamp_ns = LoadLe64(q + 32);
  status_ = CheckItem(x, q[1], left - kItemHeaderBytes, index_, disk_bytes_);
  if (!status_.ok()) return false;
  *h = x;
  *data = q + kItemHeaderBytes;
  pos_ += kItemHeaderBytes + x.data_bytes;
  ++index_;
  return true;
}

// ---- hashes ------------------------------------------------------------------------------

uint64_t BlockHash(const uint8_t* data, size_t n) { return XXH3_64bits(data, n); }

uint64_t ChunkHash(const uint64_t* block_hashes, size_t count) {
  // The hashes as little-endian bytes, a chunk's worth at a time.
  XXH3_state_t state;
  // A state on the stack must be initialized before its first reset (see journal_format.cc).
  XXH3_INITSTATE(&state);
  XXH3_64bits_reset(&state);
  uint8_t buf[kBlocksPerChunk * kHashBytes];
  for (size_t done = 0; done < count;) {
    const size_t k = std::min<size_t>(count - done, kBlocksPerChunk);
    for (size_t i = 0; i < k; ++i) StoreLe64(buf + kHashBytes * i, block_hashes[done + i]);
    XXH3_64bits_update(&state, buf, kHashBytes * k);
    done += k;
  }
  return XXH3_64bits_digest(&state);
}

void BlockHashes(const uint8_t* data, size_t n, std::vector<uint64_t>* out) {
  BLOCKREP_CHECK(n <= kChunkBytes);
  out->clear();
  for (size_t at = 0; at < n; at += kBlockBytes) {
    out->push_back(BlockHash(data + at, std::min<size_t>(n - at, kBlockBytes)));
  }
}

}  // namespace blockrep::repl
