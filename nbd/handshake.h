// Handshake: the fixed-newstyle negotiation, from the server's greeting to the choice of an
// export (NBD_OPT_GO or NBD_OPT_EXPORT_NAME) or the client's NBD_OPT_ABORT.
//
// It runs on a blocking ByteStream on its own thread; the transmission phase that follows
// runs on a worker's io_uring loop. Every length from the client is checked against the
// limits in protocol.h before anything is allocated.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "nbd/byte_stream.h"
#include "nbd/export_catalog.h"

namespace blockrep::nbd {

// What the client and server agreed on, for the transmission phase.
struct Session {
  const Export* exp = nullptr;
  bool structured_replies = false;
  bool base_allocation = false;     // base:allocation selected with SET_META_CONTEXT
  uint16_t transmission_flags = 0;  // as sent to the client
};

// Transmission flags we advertise for an export, given what was negotiated.
uint16_t TransmissionFlags(const BackendCapabilities& caps, bool structured_replies);

class Handshake {
 public:
  Handshake(const ExportCatalog& catalog, ByteStream& stream) : catalog_(catalog), s_(stream) {}

  // A Session when the client chose an export; nullopt when it ended the negotiation
  // cleanly (NBD_OPT_ABORT); an error Status for a protocol violation or I/O failure, after
  // which the caller closes the connection (a hard disconnect).
  Result<std::optional<Session>> Run();

 private:
  Status SendReply(uint32_t option, uint32_t type, const void* data, size_t len);
  Status SendError(uint32_t option, uint32_t type, const std::string& message);
  // Each returns true in *done when the negotiation is over.
  Status HandleExportName(const std::string& data, bool* done);
  Status HandleList(const std::string& data);
  Status HandleInfoOrGo(uint32_t option, const std::string& data, bool* done);
  Status HandleMetaContext(uint32_t option, const std::string& data);
  Status SendInfo(uint32_t option, const Export& e, uint16_t info);

  const ExportCatalog& catalog_;
  ByteStream& s_;
  bool no_zeroes_ = false;
  Session session_;
  const Export* meta_export_ = nullptr;  // export named by the last SET_META_CONTEXT
};

}  // namespace blockrep::nbd
