// ByteStream: the blocking, whole-message I/O the handshake needs, so the handshake runs the
// same over a socket (FdStream), an in-memory buffer (unit tests, the fuzzer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace blockrep::nbd {

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Reads exactly n bytes; an error (with what was expected in the message) on EOF or failure.
  virtual Status ReadExact(void* buf, size_t n) = 0;
  // Writes all n bytes.
  virtual Status WriteAll(const void* buf, size_t n) = 0;
  // Reads and drops n bytes without buffering them all (an over-long option's payload).
  Status Skip(uint64_t n);
};

// A socket with a deadline for the whole conversation: a client that stalls in the handshake
// loses its connection rather than holding a handshake slot.
class FdStream : public ByteStream {
 public:
  // Does not own fd.
  FdStream(int fd, int timeout_ms) : fd_(fd), timeout_ms_(timeout_ms) {}
  Status ReadExact(void* buf, size_t n) override;
  Status WriteAll(const void* buf, size_t n) override;

 private:
  Status WaitFor(short events);
  int fd_;
  int timeout_ms_;
  int64_t deadline_ms_ = -1;
};

// Reads from a fixed buffer, collects writes. For tests and the fuzzer.
class MemoryStream : public ByteStream {
 public:
  MemoryStream(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  Status ReadExact(void* buf, size_t n) override;
  Status WriteAll(const void* buf, size_t n) override;
  const std::string& written() const { return written_; }
  size_t remaining() const { return size_ - pos_; }
  size_t position() const { return pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string written_;
};

}  // namespace blockrep::nbd
