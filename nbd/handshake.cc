#include "nbd/handshake.h"

#include <cstring>
#include <vector>

#include "core/endian.h"
#include "core/log.h"
#include "nbd/protocol.h"

namespace blockrep::nbd {

uint16_t TransmissionFlags(const BackendCapabilities& caps, bool structured_replies) {
  uint16_t flags = kFlagHasFlags | kFlagSendFlush | kFlagSendFua;
  if (caps.read_only) {
    flags |= kFlagReadOnly;
  } else {
    if (caps.can_trim) flags |= kFlagSendTrim;
    if (caps.can_zero) flags |= kFlagSendWriteZeroes;
    if (caps.can_zero && caps.can_fast_zero) flags |= kFlagSendFastZero;
  }
  if (caps.can_multi_conn) flags |= kFlagCanMultiConn;
  // We always answer a read with one data chunk, so "don't fragment" costs nothing.
  if (structured_replies) flags |= kFlagSendDf;
  return flags;
}

namespace {
// A cursor over an option's payload that refuses to read past its end.
class Reader {
 public:
  explicit Reader(const std::string& d) : d_(d) {}
  bool U16(uint16_t* v) {
    if (left() < 2) return false;
    *v = LoadBe16(p());
    pos_ += 2;
    return true;
  }
  bool U32(uint32_t* v) {
    if (left() < 4) return false;
    *v = LoadBe32(p());
    pos_ += 4;
    return true;
  }
  // A string of n bytes; refuses NUL bytes and anything over the spec's string limit.
  bool String(uint32_t n, std::string* out) {
    if (n > kMaxStringBytes || left() < n) return false;
    out->assign(d_, pos_, n);
    pos_ += n;
    return out->find('\0') == std::string::npos;
  }
  size_t left() const { return d_.size() - pos_; }

 private:
  const uint8_t* p() const { return reinterpret_cast<const uint8_t*>(d_.data()) + pos_; }
  const std::string& d_;
  size_t pos_ = 0;
};
}  // namespace

Status Handshake::SendReply(uint32_t option, uint32_t type, const void* data, size_t len) {
  uint8_t hdr[kOptionReplyHeaderBytes];
  StoreBe64(hdr, kOptionReplyMagic);
  StoreBe32(hdr + 8, option);
  StoreBe32(hdr + 12, type);
  StoreBe32(hdr + 16, static_cast<uint32_t>(len));
  if (len == 0) return s_.WriteAll(hdr, sizeof(hdr));
  std::string msg(reinterpret_cast<const char*>(hdr), sizeof(hdr));
  msg.append(static_cast<const char*>(data), len);
  return s_.WriteAll(msg.data(), msg.size());
}

Status Handshake::SendError(uint32_t option, uint32_t type, const std::string& message) {
  return SendReply(option, type, message.data(), message.size());
}

Result<std::optional<Session>> Handshake::Run() {
  uint8_t greeting[18];
  StoreBe64(greeting, kNbdMagic);
  StoreBe64(greeting + 8, kIHaveOpt);
  StoreBe16(greeting + 16, kFlagFixedNewstyle | kFlagNoZeroes);
  BLOCKREP_RETURN_IF_ERROR(s_.WriteAll(greeting, sizeof(greeting)));

  uint8_t cflags_buf[4];
  BLOCKREP_RETURN_IF_ERROR(s_.ReadExact(cflags_buf, 4));
  uint32_t cflags = LoadBe32(cflags_buf);
  // The spec: the server MUST drop the connection on client flags it does not know.
  if (cflags & ~(kClientFlagFixedNewstyle | kClientFlagNoZeroes)) {
    return Status::ProtocolError("unknown client flags 0x" + std::to_string(cflags));
  }
  no_zeroes_ = (cflags & kClientFlagNoZeroes) != 0;

  for (uint32_t count = 0;; ++count) {
    if (count == kMaxOptions) {
      return Status::ProtocolError("more than " + std::to_string(kMaxOptions) + " options");
    }
    uint8_t hdr[kOptionHeaderBytes];
    BLOCKREP_RETURN_IF_ERROR(s_.ReadExact(hdr, sizeof(hdr)));
    if (LoadBe64(hdr) != kIHaveOpt) return Status::ProtocolError("bad option magic");
    uint32_t option = LoadBe32(hdr + 8);
    uint32_t len = LoadBe32(hdr + 12);
    if (len > kMaxOptionBytes) {
      // NBD_OPT_EXPORT_NAME cannot be answered with an error: the spec says drop the client.
      if (option == kOptExportName) return Status::ProtocolError("export name too long");
      BLOCKREP_RETURN_IF_ERROR(s_.Skip(len));
      BLOCKREP_RETURN_IF_ERROR(SendError(option, kRepErrTooBig,
                                         "option data of " + std::to_string(len) +
                                             " bytes is over the limit of " +
                                             std::to_string(kMaxOptionBytes)));
      continue;
    }
    std::string data(len, '\0');
    if (len > 0) BLOCKREP_RETURN_IF_ERROR(s_.ReadExact(data.data(), len));

    LOG_DEBUG("handshake: option %u, %u bytes", option, len);
    bool done = false;
    switch (option) {
      case kOptExportName:
        BLOCKREP_RETURN_IF_ERROR(HandleExportName(data, &done));
        break;
      case kOptAbort:
        // The spec: reply NBD_REP_ACK; the client may already have gone, so ignore errors.
        (void)SendReply(option, kRepAck, nullptr, 0);
        return std::optional<Session>();
      case kOptList:
        BLOCKREP_RETURN_IF_ERROR(HandleList(data));
        break;
      case kOptInfo:
      case kOptGo:
        BLOCKREP_RETURN_IF_ERROR(HandleInfoOrGo(option, data, &done));
        break;
      case kOptStructuredReply:
        if (len != 0) {
          BLOCKREP_RETURN_IF_ERROR(
              SendError(option, kRepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data"));
        } else {
          session_.structured_replies = true;
          BLOCKREP_RETURN_IF_ERROR(SendReply(option, kRepAck, nullptr, 0));
        }
        break;
      case kOptListMetaContext:
      case kOptSetMetaContext:
        BLOCKREP_RETURN_IF_ERROR(HandleMetaContext(option, data));
        break;
      default:
        BLOCKREP_RETURN_IF_ERROR(SendError(option, kRepErrUnsup,
                                           "option " + std::to_string(option) +
                                               " is not supported by this server"));
        break;
    }
    if (done) return std::optional<Session>(session_);
  }
}

Status Handshake::HandleExportName(const std::string& data, bool* done) {
  if (data.size() > kMaxStringBytes || data.find('\0') != std::string::npos) {
    return Status::ProtocolError("invalid export name in NBD_OPT_EXPORT_NAME");
  }
  const Export* e = catalog_.Find(data);
  // The spec: an export name that cannot be served ends the session.
  if (e == nullptr) return Status::NotFound("client asked for unknown export '" + data + "'");
  session_.exp = e;
  // Contexts chosen for another export do not carry over.
  if (meta_export_ != e) session_.base_allocation = false;
  session_.transmission_flags =
      TransmissionFlags(e->backend->capabilities(), session_.structured_replies);
  uint8_t reply[8 + 2 + 124] = {};
  StoreBe64(reply, e->backend->size_bytes());
  StoreBe16(reply + 8, session_.transmission_flags);
  BLOCKREP_RETURN_IF_ERROR(s_.WriteAll(reply, no_zeroes_ ? 10 : sizeof(reply)));
  *done = true;
  return Status::Ok();
}

Status Handshake::HandleList(const std::string& data) {
  if (!data.empty()) {
    return SendError(kOptList, kRepErrInvalid, "NBD_OPT_LIST takes no data");
  }
  for (const Export& e : catalog_.exports()) {
    std::string payload(4, '\0');
    StoreBe32(reinterpret_cast<uint8_t*>(payload.data()), static_cast<uint32_t>(e.name.size()));
    payload += e.name;
    payload += e.description;
    BLOCKREP_RETURN_IF_ERROR(SendReply(kOptList, kRepServer, payload.data(), payload.size()));
  }
  return SendReply(kOptList, kRepAck, nullptr, 0);
}

Status Handshake::SendInfo(uint32_t option, const Export& e, uint16_t info) {
  std::string p(2, '\0');
  StoreBe16(reinterpret_cast<uint8_t*>(p.data()), info);
  switch (info) {
    case kInfoExport: {
      uint8_t b[10];
      StoreBe64(b, e.backend->size_bytes());
      StoreBe16(b + 8,
                TransmissionFlags(e.backend->capabilities(), session_.structured_replies));
      p.append(reinterpret_cast<char*>(b), sizeof(b));
      break;
    }
    case kInfoName:
      p += e.name;
      break;
    case kInfoDescription:
      p += e.description;
      break;
    case kInfoBlockSize: {
      uint8_t b[12];
      StoreBe32(b, kMinBlockBytes);
      StoreBe32(b + 4, kPreferredBlockBytes);
      StoreBe32(b + 8, kMaxRequestBytes);
      p.append(reinterpret_cast<char*>(b), sizeof(b));
      break;
    }
    default:
      return Status::Ok();  // the spec: ignore info requests we do not know
  }
  return SendReply(option, kRepInfo, p.data(), p.size());
}

Status Handshake::HandleInfoOrGo(uint32_t option, const std::string& data, bool* done) {
  Reader r(data);
  uint32_t name_len;
  std::string name;
  uint16_t n_requests;
  if (!r.U32(&name_len) || !r.String(name_len, &name) || !r.U16(&n_requests) ||
      r.left() != 2u * n_requests) {
    return SendError(option, kRepErrInvalid, "malformed NBD_OPT_INFO/NBD_OPT_GO data");
  }
  std::vector<uint16_t> requests(n_requests);
  for (auto& q : requests) r.U16(&q);

  const Export* e = catalog_.Find(name);
  if (e == nullptr) return SendError(option, kRepErrUnknown, "unknown export '" + name + "'");

  BLOCKREP_RETURN_IF_ERROR(SendInfo(option, *e, kInfoExport));
  bool sent_name = false, sent_description = false;
  for (uint16_t q : requests) {
    if (q == kInfoName && !sent_name) {
      sent_name = true;
      BLOCKREP_RETURN_IF_ERROR(SendInfo(option, *e, kInfoName));
    } else if (q == kInfoDescription && !sent_description) {
      sent_description = true;
      BLOCKREP_RETURN_IF_ERROR(SendInfo(option, *e, kInfoDescription));
    }
  }
  // Block sizes go out whether asked or not (the spec allows it): a client that ignores them
  // still stays within kMaxRequestBytes, the limit every server uses.
  BLOCKREP_RETURN_IF_ERROR(SendInfo(option, *e, kInfoBlockSize));
  BLOCKREP_RETURN_IF_ERROR(SendReply(option, kRepAck, nullptr, 0));
  if (option == kOptGo) {
    session_.exp = e;
    // Contexts chosen for a different export do not carry over (the spec: the server
    // resets them when GO names another export).
    if (meta_export_ != e) session_.base_allocation = false;
    session_.transmission_flags =
        TransmissionFlags(e->backend->capabilities(), session_.structured_replies);
    *done = true;
  }
  return Status::Ok();
}

Status Handshake::HandleMetaContext(uint32_t option, const std::string& data) {
  const bool set = option == kOptSetMetaContext;
  if (!session_.structured_replies) {
    return SendError(option, kRepErrInvalid,
                     "meta contexts need NBD_OPT_STRUCTURED_REPLY first");
  }
  Reader r(data);
  uint32_t name_len, n_queries;
  std::string name;
  if (!r.U32(&name_len) || !r.String(name_len, &name) || !r.U32(&n_queries)) {
    return SendError(option, kRepErrInvalid, "malformed meta context option data");
  }
  if (n_queries > kMaxMetaQueries) {
    return SendError(option, kRepErrTooBig, "more than " + std::to_string(kMaxMetaQueries) +
                                                " meta context queries");
  }
  std::vector<std::string> queries(n_queries);
  for (auto& q : queries) {
    uint32_t qlen;
    if (!r.U32(&qlen) || !r.String(qlen, &q)) {
      return SendError(option, kRepErrInvalid, "malformed meta context query");
    }
  }
  if (r.left() != 0) return SendError(option, kRepErrInvalid, "trailing meta context data");
  const Export* e = catalog_.Find(name);
  if (e == nullptr) return SendError(option, kRepErrUnknown, "unknown export '" + name + "'");

  // base:allocation is our only context. LIST matches it for no query, "base:" or its full
  // name; SET selects it only by its full name.
  bool match = false;
  if (!set && queries.empty()) match = true;
  for (const std::string& q : queries) {
    if (q == kMetaContextBaseAllocation || (!set && q == "base:")) match = true;
  }
  if (set) {
    session_.base_allocation = match;
    meta_export_ = e;
  }
  if (match) {
    std::string p(4, '\0');
    StoreBe32(reinterpret_cast<uint8_t*>(p.data()), set ? kBaseAllocationContextId : 0);
    p += kMetaContextBaseAllocation;
    BLOCKREP_RETURN_IF_ERROR(SendReply(option, kRepMetaContext, p.data(), p.size()));
  }
  return SendReply(option, kRepAck, nullptr, 0);
}

}  // namespace blockrep::nbd
