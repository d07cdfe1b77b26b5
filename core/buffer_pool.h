// BufferPool: page-aligned I/O buffers in power-of-two size classes, recycled.
//
// A 1 MiB write would otherwise cost an mmap, 256 page faults and an munmap each time (glibc
// serves large allocations with mmap). Freed buffers are kept up to kCachedBytesMax per pool.
// Buffers are page-aligned so they can later be used with O_DIRECT.
//
// Thread-safety: none; one pool per worker thread. Buffers must be returned to the pool that
// gave them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace blockrep {

class BufferPool {
 public:
  static constexpr size_t kMinClassBytes = 4096;
  static constexpr size_t kMaxClassBytes = 32u << 20;
  // Memory a pool keeps for reuse: enough for a deep queue of large writes.
  static constexpr size_t kCachedBytesMax = 128u << 20;

  BufferPool() = default;
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of at least `bytes` (REQUIRES bytes <= kMaxClassBytes). Never null: allocation
  // failure aborts, as with operator new.
  uint8_t* Get(size_t bytes);
  // REQUIRES: buf came from Get(bytes) on this pool (same `bytes`).
  void Put(uint8_t* buf, size_t bytes);

  size_t cached_bytes() const { return cached_bytes_; }

 private:
  static constexpr int kClasses = 14;  // 4 KiB .. 32 MiB
  static int ClassOf(size_t bytes);
  std::vector<uint8_t*> free_[kClasses];
  size_t cached_bytes_ = 0;
};

}  // namespace blockrep
