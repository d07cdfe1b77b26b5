// libFuzzer target: the input is everything a client sends. The real Handshake negotiates
// over it (in memory); if the client reaches transmission, the rest of the input is parsed
// as requests with the real ParseRequestHeader/ValidateRequest, skipping each write's
// payload as the server does. Catches crashes, overreads and undefined behaviour in the code
// that reads untrusted bytes.
#include <cstddef>
#include <cstdint>

#include "core/check.h"
#include "nbd/byte_stream.h"
#include "nbd/export_catalog.h"
#include "nbd/handshake.h"
#include "nbd/protocol.h"
#include "nbd/request.h"

namespace {
using namespace blockrep;

class FixedBackend : public nbd::Backend {
 public:
  uint64_t size_bytes() const override { return 1 << 20; }
  nbd::BackendCapabilities capabilities() const override { return {}; }
  void Read(IoRing&, uint64_t, uint32_t, uint8_t*, nbd::BackendDone*) override {}
  void Write(IoRing&, uint64_t, uint32_t, const uint8_t*, bool, nbd::BackendDone*) override {}
  void WriteZeroes(IoRing&, uint64_t, uint64_t, bool, bool, bool, nbd::BackendDone*) override {}
  void Trim(IoRing&, uint64_t, uint64_t, bool, nbd::BackendDone*) override {}
  void Flush(IoRing&, nbd::BackendDone*) override {}
  Status BlockStatus(uint64_t, uint64_t, uint32_t, std::vector<nbd::Extent>*) override {
    return Status::Ok();
  }
};

const nbd::ExportCatalog& Catalog() {
  static FixedBackend backend;
  static nbd::ExportCatalog* catalog = [] {
    auto* c = new nbd::ExportCatalog();
    (void)c->Add({"disk0", "first", &backend});
    (void)c->Add({"d", "second", &backend});
    return c;
  }();
  return *catalog;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nbd::MemoryStream stream(data, size);
  nbd::Handshake hs(Catalog(), stream);
  auto result = hs.Run();
  if (!result.ok() || !result.value().has_value()) return 0;
  const nbd::Session session = *result.value();
  BLOCKREP_CHECK(session.exp != nullptr);

  const uint64_t export_bytes = session.exp->backend->size_bytes();
  size_t pos = stream.position();
  while (size - pos >= nbd::kRequestHeaderBytes) {
    nbd::Request r;
    if (!nbd::ParseRequestHeader(data + pos, &r)) break;  // the server disconnects here
    pos += nbd::kRequestHeaderBytes;
    const uint32_t error = nbd::ValidateRequest(r, session, export_bytes);
    if (error == 0 && r.type != nbd::kCmdFlush && r.type != nbd::kCmdDisc) {
      // What the backend may rely on for a request that passed validation.
      BLOCKREP_CHECK(r.length > 0);
      BLOCKREP_CHECK(r.offset + r.length <= export_bytes);
    }
    const uint64_t payload = nbd::PayloadBytes(r);
    if (payload > size - pos) break;
    pos += static_cast<size_t>(payload);
  }
  return 0;
}
