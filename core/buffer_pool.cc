#include "core/buffer_pool.h"

#include <cstdlib>

#include "core/check.h"

namespace blockrep {

static_assert((BufferPool::kMinClassBytes << (14 - 1)) == BufferPool::kMaxClassBytes,
              "kClasses must span kMinClassBytes..kMaxClassBytes");

BufferPool::~BufferPool() {
  for (auto& list : free_) {
    for (uint8_t* b : list) std::free(b);
  }
}

int BufferPool::ClassOf(size_t bytes) {
  int c = 0;
  size_t size = kMinClassBytes;
  while (size < bytes) {
    size <<= 1;
    ++c;
  }
  return c;
}

uint8_t* BufferPool::Get(size_t bytes) {
  BLOCKREP_CHECK(bytes <= kMaxClassBytes);
  int c = ClassOf(bytes);
  if (!free_[c].empty()) {
    uint8_t* b = free_[c].back();
    free_[c].pop_back();
    cached_bytes_ -= kMinClassBytes << c;
    return b;
  }
  void* p = std::aligned_alloc(4096, kMinClassBytes << c);
  BLOCKREP_CHECK(p != nullptr);
  return static_cast<uint8_t*>(p);
}

void BufferPool::Put(uint8_t* buf, size_t bytes) {
  int c = ClassOf(bytes);
  size_t size = kMinClassBytes << c;
  if (cached_bytes_ + size > kCachedBytesMax) {
    std::free(buf);
    return;
  }
  free_[c].push_back(buf);
  cached_bytes_ += size;
}

}  // namespace blockrep
