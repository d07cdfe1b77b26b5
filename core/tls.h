// TLS 1.3 with mutual certificates for the replication link (docs/formats/replication.md,
// "Transport"), on OpenSSL 3, plus the TCP plumbing under it.
//
// TlsContext holds one side's certificate, key and CA: TLS 1.3 only (older versions refused),
// the peer must present a certificate that chains to the CA (both roles). TlsConnection is one
// session over a connected non-blocking TCP socket, driven by one thread through Pump(): bytes
// queued with Queue() go out as the socket takes them; bytes that arrive collect in input().
//
// Errors are Status values: a certificate the peer refused, or a peer certificate this side
// refused (unknown CA, expired, missing, no CN), or a peer without TLS 1.3, is
// kPermissionDenied (fatal for the caller: no retry will fix it); a refused, reset or
// timed-out connection, or an EOF, is kIoError (transient). Messages name the peer address
// and OpenSSL's reason.
//
// Thread-safety: a TlsContext may be shared by threads once created; a TlsConnection is used
// by one thread at a time.
//
// REQUIRES: the process ignores SIGPIPE (OpenSSL writes to the socket with write(), so a peer
// that has gone away would otherwise kill the process instead of failing the write).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/unique_fd.h"

namespace blockrep {

class TlsContext {
 public:
  enum class Role { kClient, kServer };
  struct Options {
    std::string cert_path;  // PEM certificate (chain) of this side
    std::string key_path;   // PEM private key
    std::string ca_path;    // PEM CA certificate(s) the peer's certificate must chain to
  };
  // Loads and checks the files (the key must match the certificate). Errors name the file.
  static Result<std::unique_ptr<TlsContext>> Create(Role role, const Options& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  Role role() const { return role_; }
  SSL_CTX* get() const { return ctx_; }
  // The CN of this side's own certificate (for logs).
  const std::string& own_identity() const { return own_identity_; }

 private:
  TlsContext(Role role, SSL_CTX* ctx) : role_(role), ctx_(ctx) {}
  Role role_;
  SSL_CTX* ctx_;
  std::string own_identity_;
};

class TlsConnection {
 public:
  // Takes a connected TCP socket (made non-blocking here). peer: "HOST:PORT" for messages.
  static Result<std::unique_ptr<TlsConnection>> Create(const TlsContext& ctx, UniqueFd fd,
                                                       std::string peer);
  ~TlsConnection();
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  // Runs the handshake (client: connect; server: accept) to completion, failure, or
  // timeout_ms (-1: no limit). Call it once, before anything else. On success peer_identity() is
  // the CN of the verified peer certificate. With TLS 1.3 a client learns that the server refused
  // its certificate only when the server's alert arrives after the client's handshake has
  // completed: that alert then fails the next Pump() with kPermissionDenied (as does any
  // certificate alert at any time).
  Status Handshake(int timeout_ms);
  const std::string& peer_identity() const { return peer_identity_; }
  const std::string& peer() const { return peer_; }

  // Queues bytes to send (copied). Nothing is sent until Pump().
  void Queue(const uint8_t* data, size_t n);
  void Queue(const std::vector<uint8_t>& bytes) { Queue(bytes.data(), bytes.size()); }
  // Queues a whole buffer without copying it (the buffer is taken over); `bytes` is left
  // empty, holding a spare buffer (one the connection is done with, when it has one) that
  // the caller may reuse: its capacity is kept.
  void Queue(std::vector<uint8_t>&& bytes);
  // Bytes not yet handed to the socket: plaintext queued, and ciphertext made but unsent.
  size_t queued_bytes() const { return out_bytes_ - out_pos_ + CipherPending(); }

  // Waits at most timeout_ms (0: do not wait; -1: forever) for the socket to become
  // readable, or writable while bytes are queued; then writes what it can and reads what
  // has arrived (appending to input(), at most a few MiB per call). Returns OK when it did
  // nothing more than wait. An error (EOF included: "connection closed by PEER") means the
  // connection is dead; every later call returns the same error. Bytes that arrived before
  // the error are always delivered first: a Pump that appended to input() returns OK and
  // the next one reports the error, so the peer's last frame (its ERROR) can be read.
  Status Pump(int timeout_ms);

  // Bytes received and not yet consumed. The span is valid until the next Pump() or Consume().
  std::span<const uint8_t> input() const {
    return std::span<const uint8_t>(in_.get() + in_begin_, in_end_ - in_begin_);
  }
  // Drops the first n bytes of input(). REQUIRES: n <= input().size().
  void Consume(size_t n);

  // Sends close_notify (best effort, without waiting) and closes the socket. Idempotent; the
  // destructor calls it.
  void Close();
  int fd() const { return fd_.get(); }

 private:
  TlsConnection(SSL* ssl, UniqueFd fd, std::string peer, bool client)
      : ssl_(ssl), fd_(std::move(fd)), peer_(std::move(peer)), client_(client) {}
  Status WriteQueued();
  Status ReadAvailable(size_t* received);
  // Writes the ciphertext OpenSSL made (it writes into a memory BIO, so that many records go
  // out in one write(2) rather than one system call per 16 KiB record) to the socket, as far
  // as the socket takes it. *blocked: the socket is full.
  Status FlushCipher(bool* blocked);
  size_t CipherPending() const;
  // The Status for a failed SSL call (SSL_get_error code, errno right after the call),
  // recorded in error_. context: "TLS handshake with PEER" or "TLS with PEER".
  Status Failure(int ssl_error, int saved_errno, const std::string& context);
  // Failure's verdict, from the error queue (which it empties) and the verify result.
  Status Classify(int ssl_error, int saved_errno, const std::string& context);

  SSL* ssl_;
  UniqueFd fd_;
  std::string peer_;
  bool client_;
  std::string peer_identity_;
  // Plaintext to send: buffers in order; out_pos_ bytes of the front one are encrypted.
  std::deque<std::vector<uint8_t>> out_;
  size_t out_pos_ = 0;
  size_t out_bytes_ = 0;           // the sum of out_'s sizes
  std::vector<uint8_t> out_spare_;  // a sent buffer, handed back by Queue(&&)
  // Received plaintext: OpenSSL decrypts straight into in_[in_end_, in_cap_); input() is
  // [in_begin_, in_end_). Not a vector: growing it must not zero-fill what SSL_read overwrites.
  std::unique_ptr<uint8_t[]> in_;
  size_t in_cap_ = 0;
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
  // Makes room for at least kReadChunkBytes after in_end_ (compacting or growing in_).
  void ReserveInput();
  bool closed_ = false;
  bool handshake_done_ = false;
  Status error_;                   // the first failure (sticky); after it no SSL call but SSL_free
  bool read_wants_write_ = false;  // SSL_read needs the socket writable to go on
  bool write_wants_read_ = false;  // SSL_write needs the socket readable to go on
  // OpenSSL's read-ahead buffer may hold whole records it has not decrypted yet (read along
  // with the handshake's last flight, or left when ReadAvailable stopped at its cap): poll()
  // cannot see them and SSL_pending() does not count them, so the next Pump reads first.
  bool records_may_wait_ = false;
  BIO* wbio_ = nullptr;             // memory BIO OpenSSL writes records to (owned by ssl_)
  // Ciphertext taken from wbio_, not yet written: [cipher_pos_, cipher_len_) of a buffer of
  // kCipherFlushBytes, allocated at the first write (not zero-filled: every byte of it that
  // is read was written by BIO_read first).
  std::unique_ptr<uint8_t[]> cipher_;
  size_t cipher_len_ = 0;
  size_t cipher_pos_ = 0;
};

// TCP: connect to "HOST:PORT" (a name, an IPv4 address, or [IPv6]) within timeout_ms (-1: no
// limit; name resolution is not bounded by it). Returns a non-blocking, close-on-exec socket.
// Refused, unreachable and timed-out connects are kIoError naming the address; a malformed
// address is kInvalidArgument.
Result<UniqueFd> TcpConnect(const std::string& host_port, int timeout_ms);
// A listening TCP socket on "HOST:PORT" (SO_REUSEADDR; backlog 64; close-on-exec). Port 0
// picks a free port (tests read it back with getsockname). Errors name the address.
Result<UniqueFd> TcpListen(const std::string& host_port);
// Splits "HOST:PORT" / "[V6]:PORT"; false when malformed or the port is not 1..65535.
bool SplitHostPort(const std::string& spec, std::string* host, std::string* port);

}  // namespace blockrep
