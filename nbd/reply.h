// Reply encoding for the transmission phase: simple replies and structured reply chunks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nbd/backend.h"

namespace blockrep::nbd {

// 16 bytes: magic, error, cookie.
void EncodeSimpleReply(uint8_t* out, uint32_t error, uint64_t cookie);
// 20 bytes: magic, flags, type, cookie, payload length.
void EncodeChunkHeader(uint8_t* out, uint16_t flags, uint16_t type, uint64_t cookie,
                       uint32_t payload_bytes);
// NBD_REPLY_TYPE_ERROR payload: error, message length, message (truncated to fit).
std::string ErrorChunkPayload(uint32_t error, const std::string& message);
// NBD_REPLY_TYPE_BLOCK_STATUS payload: context id, then (length, flags) per extent.
std::string BlockStatusPayload(uint32_t context_id, const std::vector<Extent>& extents);

}  // namespace blockrep::nbd
