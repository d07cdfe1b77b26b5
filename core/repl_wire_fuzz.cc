// libFuzzer target: the input is everything a peer sends on a replication connection. It is
// cut into frames with the real DecodeFrameHeader, and every frame's payload goes through
// the real decoder for its type; a BATCH's items are walked with ItemReader against a 1 GiB
// disk, as the target does. Catches crashes, overreads, undefined behaviour and unchecked
// allocations in the code that reads untrusted bytes (the decoders must refuse, not crash).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/repl_wire.h"

using namespace blockrep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t pos = 0;
  std::vector<uint8_t> raw;
  while (size - pos >= repl::kFrameHeaderBytes) {
    repl::FrameHeader h;
    if (!repl::DecodeFrameHeader(data + pos, &h).ok()) break;
    pos += repl::kFrameHeaderBytes;
    const size_t n = std::min<size_t>(h.payload_bytes, size - pos);
    const uint8_t* p = data + pos;
    pos += n;
    switch (h.type) {
      case repl::MsgType::kHello: { repl::Hello m; (void)repl::DecodeHello(p, n, &m); break; }
      case repl::MsgType::kHelloReply: { repl::HelloReply m; (void)repl::DecodeHelloReply(p, n, &m); break; }
      case repl::MsgType::kStart: { repl::Start m; (void)repl::DecodeStart(p, n, &m); break; }
      case repl::MsgType::kAck: { repl::Ack m; (void)repl::DecodeAck(p, n, &m); break; }
      case repl::MsgType::kHashes: { repl::Hashes m; (void)repl::DecodeHashes(p, n, &m); break; }
      case repl::MsgType::kVerifyHashes: { repl::VerifyHashes m; (void)repl::DecodeVerifyHashes(p, n, &m); break; }
      case repl::MsgType::kError: { repl::Error m; (void)repl::DecodeError(p, n, &m); break; }
      case repl::MsgType::kBatch: {
        repl::BatchHeader bh;
        if (!repl::DecodeBatch(p, n, &bh, &raw).ok()) break;
        repl::ItemReader reader(raw.data(), raw.size(), bh.item_count, 1ull << 30);
        repl::ItemHeader ih;
        const uint8_t* d = nullptr;
        uint64_t sum = 0;
        while (reader.Next(&ih, &d)) {
          // Touch the item's data: an overread would show here.
          for (uint32_t i = 0; i < ih.data_bytes; i += 4096) sum += d[i];
        }
        if (sum == 0x5eed) __builtin_trap();  // keeps the loop from being optimised away
        break;
      }
      case repl::MsgType::kPing:
      case repl::MsgType::kPong:
        break;
    }
  }
  return 0;
}
