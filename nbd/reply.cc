#include "nbd/reply.h"

#include "core/endian.h"
#include "nbd/protocol.h"

namespace blockrep::nbd {

void EncodeSimpleReply(uint8_t* out, uint32_t error, uint64_t cookie) {
  StoreBe32(out, kSimpleReplyMagic);
  StoreBe32(out + 4, error);
  StoreBe64(out + 8, cookie);
}

void EncodeChunkHeader(uint8_t* out, uint16_t flags, uint16_t type, uint64_t cookie,
                       uint32_t payload_bytes) {
  StoreBe32(out, kStructuredReplyMagic);
  StoreBe16(out + 4, flags);
  StoreBe16(out + 6, type);
  StoreBe64(out + 8, cookie);
  StoreBe32(out + 16, payload_bytes);
}

std::string ErrorChunkPayload(uint32_t error, const std::string& message) {
  // The message length field is 16 bits; the spec's string limit is lower still.
  const size_t len = message.size() < kMaxStringBytes ? message.size() : kMaxStringBytes;
  std::string p(6, '\0');
  auto* u = reinterpret_cast<uint8_t*>(p.data());
  StoreBe32(u, error);
  StoreBe16(u + 4, static_cast<uint16_t>(len));
  p.append(message, 0, len);
  return p;
}

std::string BlockStatusPayload(uint32_t context_id, const std::vector<Extent>& extents) {
  std::string p(4 + 8 * extents.size(), '\0');
  auto* u = reinterpret_cast<uint8_t*>(p.data());
  StoreBe32(u, context_id);
  for (size_t i = 0; i < extents.size(); ++i) {
    StoreBe32(u + 4 + 8 * i, static_cast<uint32_t>(extents[i].length));
    StoreBe32(u + 8 + 8 * i, extents[i].flags);
  }
  return p;
}

}  // namespace blockrep::nbd
