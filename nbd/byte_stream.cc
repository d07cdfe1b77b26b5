#include "nbd/byte_stream.h"

#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace blockrep::nbd {
namespace {
int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}
}  // namespace

Status ByteStream::Skip(uint64_t n) {
  uint8_t scratch[4096];
  while (n > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, sizeof(scratch)));
    BLOCKREP_RETURN_IF_ERROR(ReadExact(scratch, chunk));
    n -= chunk;
  }
  return Status::Ok();
}

Status FdStream::WaitFor(short events) {
  if (deadline_ms_ < 0) deadline_ms_ = NowMs() + timeout_ms_;
  while (true) {
    int64_t left = deadline_ms_ - NowMs();
    if (left <= 0) return Status::IoError("handshake timed out");
    pollfd pfd{fd_, events, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(left));
    if (rc > 0) return Status::Ok();
    if (rc < 0 && errno != EINTR) return Status::FromErrno(errno, "poll");
  }
}

Status FdStream::ReadExact(void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd_, p + got, n - got, MSG_DONTWAIT);
    if (r > 0) {
      got += static_cast<size_t>(r);
    } else if (r == 0) {
      return Status::IoError("client closed the connection (" + std::to_string(got) + " of " +
                             std::to_string(n) + " bytes read)");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BLOCKREP_RETURN_IF_ERROR(WaitFor(POLLIN));
    } else if (errno != EINTR) {
      return Status::FromErrno(errno, "recv");
    }
  }
  return Status::Ok();
}

Status FdStream::WriteAll(const void* buf, size_t n) {
  const auto* p = static_cast<const uint8_t*>(buf);
  size_t sent = 0;
  while (sent < n) {
    ssize_t r = ::send(fd_, p + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0) {
      sent += static_cast<size_t>(r);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BLOCKREP_RETURN_IF_ERROR(WaitFor(POLLOUT));
    } else if (errno != EINTR) {
      return Status::FromErrno(errno, "send");
    }
  }
  return Status::Ok();
}

Status MemoryStream::ReadExact(void* buf, size_t n) {
  if (size_ - pos_ < n) {
    pos_ = size_;
    return Status::IoError("end of input");
  }
  std::memcpy(buf, data_ + pos_, n);
  pos_ += n;
  return Status::Ok();
}

Status MemoryStream::WriteAll(const void* buf, size_t n) {
  written_.append(static_cast<const char*>(buf), n);
  return Status::Ok();
}

}  // namespace blockrep::nbd
