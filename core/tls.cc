// TLS 1.3 with mutual certificates over non-blocking TCP (core/tls.h). The one subtle part is
// how a failed SSL call becomes a Status: the caller retries a kIoError and gives up on a
// kPermissionDenied, so certificate and protocol-version refusals, whichever side made them
// and whenever the alert arrives, must come out as kPermissionDenied (see Failure()).
#include "core/tls.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "core/check.h"

namespace blockrep {
namespace {

// OpenSSL's read buffer with read-ahead (see TlsContext::Create).
constexpr size_t kReadBufferBytes = 256u << 10;

// The largest TLS record plaintext: one SSL_read never returns more.
constexpr size_t kReadChunkBytes = 16 * 1024;
// One Pump() reads at most this much, so a peer that sends faster than the caller consumes
// cannot grow input() without bound in a single call: the caller gets control back,
// consumes, and pumps again (what is left waits in the socket or in OpenSSL).
constexpr size_t kReadBytesPerPumpMax = 4u << 20;
// A buffer that is empty again keeps its allocation up to this size; a larger one (after a
// 40 MiB frame) is given back, so an idle connection does not pin its largest frame's memory.
constexpr size_t kIdleBufferBytesMax = 8u << 20;
// Plaintext encrypted at once, and ciphertext written to the socket at once: large enough
// that a bulk transfer makes few system calls, small enough to keep the buffers small.
constexpr size_t kCipherFlushBytes = 512u << 10;
// Close() discards at most this much unread input before close(): a socket closed with
// unread bytes sends RST, which can destroy our last alert or close_notify in flight.
constexpr size_t kCloseDrainBytesMax = 4u << 20;
constexpr int kListenBacklog = 64;
// OpenSSL's error queue can hold many entries; a handful explain any failure.
constexpr int kErrorsExaminedMax = 16;

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline` for poll() (rounded up so that we never spin on 0), or
// -1 (wait forever) when there is no deadline.
int RemainingMs(bool has_deadline, Clock::time_point deadline) {
  if (!has_deadline) return -1;
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
}

std::string ErrorString(unsigned long code) {
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

// Empties this thread's OpenSSL error queue; returns its first entries (oldest first).
std::vector<unsigned long> DrainErrors() {
  std::vector<unsigned long> codes;
  while (unsigned long code = ERR_get_error()) {
    if (codes.size() < kErrorsExaminedMax) codes.push_back(code);
  }
  return codes;
}

// The first queued OpenSSL error as text (for Create's messages), emptying the queue.
std::string DrainErrorText() {
  const std::vector<unsigned long> codes = DrainErrors();
  return codes.empty() ? std::string("unknown OpenSSL error") : ErrorString(codes.front());
}

// Keys are read at startup by a daemon with no one at a terminal: an encrypted key must
// fail to load rather than block on a passphrase prompt.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return 0; }

// The subject CN of `cert`, the identity this system gives a peer. False when there is no
// CN, more than one (which would make the identity ambiguous), or one that is empty or
// holds a NUL byte (which could make "target\0.evil" look like "target").
bool SubjectCommonName(X509* cert, std::string* cn) {
  X509_NAME* name = X509_get_subject_name(cert);
  if (name == nullptr) return false;
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return false;
  if (X509_NAME_get_index_by_NID(name, NID_commonName, index) >= 0) return false;
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n <= 0) {
    OPENSSL_free(utf8);
    return false;
  }
  cn->assign(reinterpret_cast<const char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return cn->find('\0') == std::string::npos;
}

// Alerts a peer sends when it refuses this side's certificate (RFC 8446 section 6.2;
// decrypt_error is how a CertificateVerify made with the wrong key is refused).
bool IsCertificateAlert(int alert) {
  switch (alert) {
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_DECRYPT_ERROR:
    case SSL_AD_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

// Alerts a peer sends when it will never agree to this handshake (no TLS 1.3, no common
// parameters): as permanent as a refused certificate.
bool IsHandshakeRefusalAlert(int alert) {
  return alert == SSL_AD_PROTOCOL_VERSION || alert == SSL_AD_HANDSHAKE_FAILURE ||
         alert == SSL_AD_INSUFFICIENT_SECURITY;
}

// Local reasons meaning the peer does not offer TLS 1.3.
bool IsVersionRefusal(int reason) {
  return reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_VERSION_TOO_LOW ||
         reason == SSL_R_NO_PROTOCOLS_AVAILABLE;
}

// Splits like SplitHostPort; port 0 ("any free port") is allowed when allow_port_zero.
bool ParseHostPort(const std::string& spec, bool allow_port_zero, std::string* host,
                   std::string* port) {
  std::string h;
  size_t port_start;
  if (!spec.empty() && spec[0] == '[') {
    const size_t close = spec.find(']');
    if (close == std::string::npos || close + 1 >= spec.size() || spec[close + 1] != ':') {
      return false;
    }
    h = spec.substr(1, close - 1);
    port_start = close + 2;
  } else {
    const size_t colon = spec.find(':');
    // A second colon is an IPv6 address without brackets: where its port starts is a guess.
    if (colon == std::string::npos || spec.find(':', colon + 1) != std::string::npos) {
      return false;
    }
    h = spec.substr(0, colon);
    port_start = colon + 1;
  }
  if (h.empty() || h.find_first_of("[] \t") != std::string::npos) return false;
  const std::string p = spec.substr(port_start);
  // Five digits hold 65535; more cannot be a port (and would overflow the sum below).
  if (p.empty() || p.size() > 5) return false;
  unsigned value = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535 || (value == 0 && !allow_port_zero)) return false;
  *host = std::move(h);
  *port = std::to_string(value);
  return true;
}

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const { freeaddrinfo(ai); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

Result<AddrInfoPtr> Resolve(const std::string& host, const std::string& port, int flags,
                            const std::string& context) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) {
    const std::string reason = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
    return Status::IoError(context + ": " + reason);
  }
  return AddrInfoPtr(list);
}

}  // namespace

// --- TlsContext -------------------------------------------------------------------------------

Result<std::unique_ptr<TlsContext>> TlsContext::Create(Role role, const Options& options) {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(TLS_method());
  if (raw == nullptr) return Status::IoError("SSL_CTX_new: " + DrainErrorText());
  std::unique_ptr<TlsContext> ctx(new TlsContext(role, raw));

  if (SSL_CTX_set_min_proto_version(raw, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(raw, TLS1_3_VERSION) != 1) {
    return Status::Unsupported("this OpenSSL cannot do TLS 1.3: " + DrainErrorText());
  }
  // Both roles demand a certificate that chains to the CA: the link is mutually
  // authenticated, and the CN is the identity the target authorizes disks by.
  SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  // Partial writes let WriteQueued() hand over a large queue a record at a time; the moving
  // buffer lets Queue() grow (and move) out_ between a write that wanted to be retried and
  // its retry.
  SSL_CTX_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read ahead into a large buffer: without it OpenSSL reads each record's 5-byte header and
  // its body with separate system calls (two reads per 16 KiB of a replication stream).
  SSL_CTX_set_read_ahead(raw, 1);
  SSL_CTX_set_default_read_buffer_len(raw, kReadBufferBytes);
  // Every connection makes a full handshake: no session resumption, hence no tickets (which
  // a TLS 1.3 server would otherwise send after the handshake) and no cache.
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(raw, 0);
  SSL_CTX_set_default_passwd_cb(raw, NoPassphrase);

  if (SSL_CTX_load_verify_locations(raw, options.ca_path.c_str(), nullptr) != 1) {
    return Status::InvalidArgument("TLS CA file " + options.ca_path + ": " + DrainErrorText());
  }
  if (SSL_CTX_use_certificate_chain_file(raw, options.cert_path.c_str()) != 1) {
    return Status::InvalidArgument("TLS certificate file " + options.cert_path + ": " +
                                   DrainErrorText());
  }
  if (SSL_CTX_use_PrivateKey_file(raw, options.key_path.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Status::InvalidArgument("TLS key file " + options.key_path + ": " + DrainErrorText());
  }
  if (SSL_CTX_check_private_key(raw) != 1) {
    return Status::InvalidArgument("TLS key file " + options.key_path +
                                   " does not match certificate file " + options.cert_path + ": " +
                                   DrainErrorText());
  }
  // The peer would refuse a certificate without a usable CN; say so now, naming the file.
  X509* own = SSL_CTX_get0_certificate(raw);
  if (own == nullptr || !SubjectCommonName(own, &ctx->own_identity_)) {
    return Status::InvalidArgument("TLS certificate file " + options.cert_path +
                                   ": the subject has no single, non-empty CN (the identity "
                                   "the peer knows this side by)");
  }
  return ctx;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

// --- TlsConnection ----------------------------------------------------------------------------

Result<std::unique_ptr<TlsConnection>> TlsConnection::Create(const TlsContext& ctx, UniqueFd fd,
                                                             std::string peer) {
  const int flags = fcntl(fd.get(), F_GETFL);
  if (flags < 0 || fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
    return Status::FromErrno(errno, "TLS with " + peer + ": set O_NONBLOCK");
  }
  // Frames are written whole, so Nagle would only delay small ones (ACK, PING) by a round
  // trip. Not a TCP socket (a socketpair in a test): nothing to tune.
  const int one = 1;
  if (setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 &&
      errno != EOPNOTSUPP && errno != ENOPROTOOPT) {
    return Status::FromErrno(errno, "TLS with " + peer + ": set TCP_NODELAY");
  }
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx.get());
  if (ssl == nullptr) return Status::IoError("TLS with " + peer + ": " + DrainErrorText());
  const bool client = ctx.role() == TlsContext::Role::kClient;
  std::unique_ptr<TlsConnection> conn(
      new TlsConnection(ssl, std::move(fd), std::move(peer), client));
  if (SSL_set_fd(ssl, conn->fd_.get()) != 1) {
    return Status::IoError("TLS with " + conn->peer_ + ": " + DrainErrorText());
  }
  // Reads come straight from the socket (with read-ahead); records are written to memory and
  // flushed by FlushCipher, many per system call.
  conn->wbio_ = BIO_new(BIO_s_mem());
  if (conn->wbio_ == nullptr) return Status::IoError("TLS with " + conn->peer_ + ": " + DrainErrorText());
  SSL_set0_wbio(ssl, conn->wbio_);
  if (conn->client_) {
    SSL_set_connect_state(ssl);
  } else {
    SSL_set_accept_state(ssl);
  }
  return conn;
}

TlsConnection::~TlsConnection() {
  Close();
  SSL_free(ssl_);
}

Status TlsConnection::Failure(int ssl_error, int saved_errno, const std::string& context) {
  error_ = Classify(ssl_error, saved_errno, context);
  // An alert OpenSSL wrote about it (a refused certificate, say) tells the peer why: send it
  // if the socket takes it now.
  bool blocked;
  Status st = FlushCipher(&blocked);
  (void)st;
  return error_;
}

Status TlsConnection::Classify(int ssl_error, int saved_errno, const std::string& context) {
  const std::vector<unsigned long> codes = DrainErrors();
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return Status::IoError("connection closed by " + peer_);
  for (unsigned long code : codes) {
    if (ERR_GET_LIB(code) != ERR_LIB_SSL) continue;
    const int reason = ERR_GET_REASON(code);
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      return Status::PermissionDenied(context + ": the peer's certificate was refused: " +
                                      X509_verify_cert_error_string(SSL_get_verify_result(ssl_)));
    }
    if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
      return Status::PermissionDenied(context + ": the peer sent no certificate");
    }
    if (IsVersionRefusal(reason)) {
      return Status::PermissionDenied(context + ": the peer does not offer TLS 1.3 (" +
                                      ErrorString(code) + ")");
    }
    if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
      return Status::IoError("connection closed by " + peer_);
    }
    // A received alert is reported as the reason SSL_AD_REASON_OFFSET + its code.
    if (reason > SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
      const int alert = reason - SSL_AD_REASON_OFFSET;
      const std::string what = std::string("(alert: ") + SSL_alert_desc_string_long(alert) + ")";
      if (IsCertificateAlert(alert)) {
        return Status::PermissionDenied(context + ": the peer refused our certificate " + what);
      }
      if (IsHandshakeRefusalAlert(alert)) {
        return Status::PermissionDenied(context + ": the peer refused the handshake " + what);
      }
      return Status::IoError(context + ": the peer ended the connection " + what);
    }
  }
  if (ssl_error == SSL_ERROR_SYSCALL) {
    // No errno and no queued error: the peer closed the TCP connection mid-stream.
    if (saved_errno == 0 && codes.empty()) return Status::IoError("connection closed by " + peer_);
    if (saved_errno != 0) return Status::FromErrno(saved_errno, context);
  }
  if (!codes.empty()) return Status::IoError(context + ": " + ErrorString(codes.front()));
  return Status::IoError(context + ": SSL error " + std::to_string(ssl_error));
}

Status TlsConnection::Handshake(int timeout_ms) {
  const std::string context = "TLS handshake with " + peer_;
  if (!error_.ok()) return error_;
  if (closed_) return Status::IoError(context + ": the connection is closed");
  const bool has_deadline = timeout_ms >= 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    ERR_clear_error();
    errno = 0;
    const int rc = SSL_do_handshake(ssl_);
    const int saved_errno = errno;
    const int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, rc);
    // What the step wrote (our flight, or the alert of a refusal) goes out now.
    bool blocked = false;
    Status flushed = FlushCipher(&blocked);
    if (rc == 1 && flushed.ok() && !blocked) break;
    short events = 0;
    if (rc == 1 || err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (!flushed.ok()) {
        error_ = Status::IoError(context + ": " + flushed.message());
        return error_;
      }
      if (rc != 1) events |= POLLIN;
      if (blocked) events |= POLLOUT;
      if (events == 0) events = POLLIN;
    } else {
      return Failure(err, saved_errno, context);
    }
    pollfd pfd{fd_.get(), events, 0};
    int ready;
    do {
      const int wait_ms = RemainingMs(has_deadline, deadline);
      if (wait_ms == 0) {
        error_ =
            Status::IoError(context + " timed out after " + std::to_string(timeout_ms) + " ms");
        return error_;
      }
      ready = poll(&pfd, 1, wait_ms);
    } while (ready == 0 || (ready < 0 && errno == EINTR));
    if (ready < 0) {
      error_ = Status::FromErrno(errno, context + ": poll");
      return error_;
    }
    // Readable, writable, or an error/hangup: SSL_do_handshake finds out which.
    if (rc == 1) {  // done but for our last flight: send the rest
      Status st = FlushCipher(&blocked);
      if (!st.ok()) {
        error_ = Status::IoError(context + ": " + st.message());
        return error_;
      }
      if (!blocked) break;
    }
  }

  // SSL_VERIFY_PEER has already failed the handshake for a missing or unverified
  // certificate; checked again because the identity taken from it authorizes the peer.
  X509* cert = SSL_get0_peer_certificate(ssl_);
  const long verify = SSL_get_verify_result(ssl_);
  if (cert == nullptr) {
    error_ = Status::PermissionDenied(context + ": the peer sent no certificate");
  } else if (verify != X509_V_OK) {
    error_ = Status::PermissionDenied(
        context + ": the peer's certificate was refused: " + X509_verify_cert_error_string(verify));
  } else if (!SubjectCommonName(cert, &peer_identity_)) {
    peer_identity_.clear();
    error_ = Status::PermissionDenied(
        context + ": the peer's certificate has no single, non-empty subject CN to identify it by");
  }
  if (!error_.ok()) {
    // Close cleanly (best effort): OpenSSL has no call to send an alert of our choosing.
    ERR_clear_error();
    SSL_shutdown(ssl_);
    bool blocked;
    Status st = FlushCipher(&blocked);
    (void)st;
    return error_;
  }
  handshake_done_ = true;
  // With read-ahead, the peer's first records may have arrived with its last handshake
  // flight and wait, undecrypted, in OpenSSL's buffer.
  records_may_wait_ = true;
  return Status::Ok();
}

void TlsConnection::Queue(std::vector<uint8_t>&& bytes) {
  if (bytes.empty()) return;
  out_bytes_ += bytes.size();
  out_.push_back(std::move(bytes));
  bytes.swap(out_spare_);  // out_spare_ is left empty (moved-from vectors are)
  bytes.clear();
}

void TlsConnection::Queue(const uint8_t* data, size_t n) {
  if (n == 0) return;
  // Small messages join the last buffer (it may be the one being written: the moving write
  // buffer mode lets it move, and SSL_write is always called again with what follows
  // out_pos_).
  if (out_.empty()) out_.emplace_back();  // the spare is kept for Queue(&&) to hand back
  out_.back().insert(out_.back().end(), data, data + n);
  out_bytes_ += n;
}

void TlsConnection::Consume(size_t n) {
  BLOCKREP_CHECK(n <= in_end_ - in_begin_);
  in_begin_ += n;
  if (in_begin_ == in_end_) {
    in_begin_ = in_end_ = 0;
    if (in_cap_ > kIdleBufferBytesMax) {
      in_.reset();
      in_cap_ = 0;
    }
  }
}

void TlsConnection::ReserveInput() {
  if (in_cap_ - in_end_ >= kReadChunkBytes) return;
  const size_t live = in_end_ - in_begin_;
  // Move the unconsumed bytes to the front when that frees at least as much as it moves
  // (each byte is moved at most once on average); otherwise grow.
  if (in_begin_ >= live && in_cap_ - live >= kReadChunkBytes) {
    std::memmove(in_.get(), in_.get() + in_begin_, live);
  } else {
    const size_t cap = std::max({in_cap_ * 2, live + kReadChunkBytes, 4 * kReadChunkBytes});
    std::unique_ptr<uint8_t[]> bigger(new uint8_t[cap]);
    if (live > 0) std::memcpy(bigger.get(), in_.get() + in_begin_, live);
    in_ = std::move(bigger);
    in_cap_ = cap;
  }
  in_begin_ = 0;
  in_end_ = live;
}

size_t TlsConnection::CipherPending() const {
  return cipher_len_ - cipher_pos_ + (wbio_ != nullptr ? BIO_ctrl_pending(wbio_) : 0);
}

Status TlsConnection::FlushCipher(bool* blocked) {
  *blocked = false;
  while (true) {
    if (cipher_pos_ == cipher_len_) {
      cipher_pos_ = cipher_len_ = 0;
      const size_t pending = BIO_ctrl_pending(wbio_);
      if (pending == 0) return Status::Ok();
      if (!cipher_) cipher_.reset(new uint8_t[kCipherFlushBytes]);
      const int n = BIO_read(wbio_, cipher_.get(), static_cast<int>(std::min(pending, kCipherFlushBytes)));
      if (n <= 0) return Status::IoError("TLS with " + peer_ + ": reading its memory BIO");
      cipher_len_ = static_cast<size_t>(n);
    }
    const ssize_t w = send(fd_.get(), cipher_.get() + cipher_pos_, cipher_len_ - cipher_pos_,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *blocked = true;
        return Status::Ok();
      }
      return Status::FromErrno(errno, "TLS with " + peer_ + ": send");
    }
    cipher_pos_ += static_cast<size_t>(w);
  }
}

Status TlsConnection::WriteQueued() {
  write_wants_read_ = false;
  while (true) {
    // Ciphertext first: nothing more is encrypted while the socket cannot take what is made.
    bool blocked = false;
    Status st = FlushCipher(&blocked);
    if (!st.ok()) {
      error_ = st;
      return error_;
    }
    if (blocked || out_.empty()) break;
    std::vector<uint8_t>& front = out_.front();
    // One slice at a time keeps the memory BIO small.
    size_t written = 0;
    ERR_clear_error();
    errno = 0;
    const int rc = SSL_write_ex(ssl_, front.data() + out_pos_,
                                std::min(front.size() - out_pos_, kCipherFlushBytes), &written);
    const int saved_errno = errno;
    if (rc == 1) {
      out_pos_ += written;
      if (out_pos_ == front.size()) {
        // Done with it: kept as the spare (the largest one, within reason).
        out_bytes_ -= front.size();
        if (front.capacity() > out_spare_.capacity() && front.capacity() <= kIdleBufferBytesMax) {
          front.clear();
          out_spare_.swap(front);
        }
        out_.pop_front();
        out_pos_ = 0;
      }
      continue;
    }
    const int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_WRITE) break;
    if (err == SSL_ERROR_WANT_READ) {
      write_wants_read_ = true;
      break;
    }
    return Failure(err, saved_errno, "TLS with " + peer_);
  }
  return Status::Ok();
}

Status TlsConnection::ReadAvailable(size_t* received) {
  read_wants_write_ = false;
  *received = 0;
  while (*received < kReadBytesPerPumpMax) {
    ReserveInput();
    size_t n = 0;
    ERR_clear_error();
    errno = 0;
    const int rc = SSL_read_ex(ssl_, in_.get() + in_end_, in_cap_ - in_end_, &n);
    const int saved_errno = errno;
    if (rc == 1) {
      in_end_ += n;
      *received += n;
      continue;
    }
    const int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ) {
      // Every whole record buffered is decrypted: what remains needs bytes from the socket.
      records_may_wait_ = false;
      return Status::Ok();
    }
    if (err == SSL_ERROR_WANT_WRITE) {
      read_wants_write_ = true;
      return Status::Ok();
    }
    return Failure(err, saved_errno, "TLS with " + peer_);
  }
  records_may_wait_ = true;  // stopped at the cap: records may wait in the buffer
  return Status::Ok();
}

Status TlsConnection::Pump(int timeout_ms) {
  if (!error_.ok()) return error_;
  if (closed_) return Status::IoError("TLS with " + peer_ + ": the connection is closed");
  BLOCKREP_CHECK(handshake_done_);
  // Whole records in OpenSSL's read-ahead buffer are invisible to poll(): take them first,
  // and wait below only if there were none.
  size_t early = 0;
  if (records_may_wait_) {
    Status st = ReadAvailable(&early);
    if (!st.ok()) return early > 0 ? Status::Ok() : st;  // the error stays in error_
    if (early > 0) timeout_ms = 0;
  }
  bool readable = true;
  bool writable = true;
  // Bytes OpenSSL has already decrypted are invisible to poll() too: take them without waiting.
  if (SSL_pending(ssl_) == 0) {
    short events = POLLIN;
    if (queued_bytes() > 0 || read_wants_write_) events |= POLLOUT;
    pollfd pfd{fd_.get(), events, 0};
    const int ready = poll(&pfd, 1, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) return Status::Ok();  // the caller pumps again
      error_ = Status::FromErrno(errno, "TLS with " + peer_ + ": poll");
      return error_;
    }
    if (ready == 0) return Status::Ok();
    readable = (pfd.revents & (POLLIN | POLLERR | POLLHUP)) != 0;
    writable = (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) != 0;
  }
  // Read first: when the peer has refused us and gone, its alert waits in our receive queue
  // ahead of the reset that would make a write fail with a bare EPIPE or ECONNRESET.
  size_t received = 0;
  Status status;
  if (readable || (read_wants_write_ && writable)) status = ReadAvailable(&received);
  if (status.ok() && queued_bytes() > 0 && (writable || (write_wants_read_ && readable))) {
    status = WriteQueued();
  }
  // The error stays in error_ for the next call; first the caller sees the bytes.
  if (!status.ok() && received + early > 0) return Status::Ok();
  return status;
}

void TlsConnection::Close() {
  if (closed_) return;
  closed_ = true;
  // OpenSSL forbids SSL_shutdown after a fatal error, and it means nothing before the
  // handshake. One call sends close_notify without waiting for the peer's.
  if (handshake_done_ && error_.ok()) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
    bool blocked;
    Status st = FlushCipher(&blocked);  // close_notify, and what was left of the last writes
    (void)st;
  }
  ERR_clear_error();
  uint8_t buf[64 * 1024];
  for (size_t drained = 0; drained < kCloseDrainBytesMax;) {
    const ssize_t n = recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
  fd_.Reset();
}

// --- TCP --------------------------------------------------------------------------------------

bool SplitHostPort(const std::string& spec, std::string* host, std::string* port) {
  return ParseHostPort(spec, /*allow_port_zero=*/false, host, port);
}

Result<UniqueFd> TcpConnect(const std::string& host_port, int timeout_ms) {
  const std::string context = "connect to " + host_port;
  std::string host, port;
  if (!SplitHostPort(host_port, &host, &port)) {
    return Status::InvalidArgument(context + ": not HOST:PORT (or [IPV6]:PORT, port 1..65535)");
  }
  const bool has_deadline = timeout_ms >= 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  Result<AddrInfoPtr> list = Resolve(host, port, 0, context);
  if (!list.ok()) return list.status();

  // Every address gets its chance, in getaddrinfo's order, within the one deadline; the
  // error reported is the last address's.
  Status last = Status::IoError(context + ": no address");
  for (const addrinfo* ai = list->get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = Status::FromErrno(errno, context);
      continue;
    }
    if (connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) {
      last = Status::FromErrno(errno, context);
      continue;
    }
    pollfd pfd{fd.get(), POLLOUT, 0};
    int ready;
    do {
      const int wait_ms = RemainingMs(has_deadline, deadline);
      if (wait_ms == 0) {
        return Status::IoError(context + ": timed out after " + std::to_string(timeout_ms) + " ms");
      }
      ready = poll(&pfd, 1, wait_ms);
    } while (ready == 0 || (ready < 0 && errno == EINTR));
    if (ready < 0) return Status::FromErrno(errno, context + ": poll");
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0) return fd;
    last = Status::FromErrno(err, context);
  }
  return last;
}

Result<UniqueFd> TcpListen(const std::string& host_port) {
  const std::string context = "listen on " + host_port;
  std::string host, port;
  if (!ParseHostPort(host_port, /*allow_port_zero=*/true, &host, &port)) {
    return Status::InvalidArgument(context + ": not HOST:PORT (or [IPV6]:PORT, port 0..65535)");
  }
  Result<AddrInfoPtr> list = Resolve(host, port, AI_PASSIVE, context);
  if (!list.ok()) return list.status();
  Status last = Status::IoError(context + ": no address");
  for (const addrinfo* ai = list->get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = Status::FromErrno(errno, context);
      continue;
    }
    // A restarted daemon must be able to bind again while old connections sit in TIME_WAIT.
    const int one = 1;
    if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd.get(), kListenBacklog) != 0) {
      last = Status::FromErrno(errno, context);
      continue;
    }
    return fd;
  }
  return last;
}

}  // namespace blockrep
