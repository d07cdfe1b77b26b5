// Checks BufferPool's size classes, reuse of returned buffers, page alignment and the bound
// on cached memory by getting and putting buffers and watching pointers and cached_bytes().
#include "core/buffer_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace blockrep {
namespace {

bool PageAligned(const uint8_t* p) { return reinterpret_cast<uintptr_t>(p) % 4096 == 0; }

TEST(BufferPool, EverySizeClassIsPageAligned) {
  BufferPool pool;
  for (size_t bytes = BufferPool::kMinClassBytes; bytes <= BufferPool::kMaxClassBytes;
       bytes <<= 1) {
    uint8_t* b = pool.Get(bytes);
    ASSERT_NE(b, nullptr);
    EXPECT_TRUE(PageAligned(b)) << bytes;
    pool.Put(b, bytes);
  }
}

TEST(BufferPool, OddSizesArePageAligned) {
  BufferPool pool;
  for (size_t bytes : {size_t{1}, size_t{511}, size_t{4097}, size_t{65537}, size_t{1000000}}) {
    uint8_t* b = pool.Get(bytes);
    EXPECT_TRUE(PageAligned(b)) << bytes;
    pool.Put(b, bytes);
  }
}

TEST(BufferPool, BufferIsUsableUpToItsClassSize) {
  BufferPool pool;
  uint8_t* b = pool.Get(5000);  // class 8 KiB
  std::memset(b, 0x5A, 8192);   // AddressSanitizer flags this if the class is smaller
  EXPECT_EQ(b[8191], 0x5A);
  pool.Put(b, 5000);
}

TEST(BufferPool, NewPoolCachesNothing) {
  BufferPool pool;
  EXPECT_EQ(pool.cached_bytes(), 0u);
}

TEST(BufferPool, ReturnedBufferIsReusedForSameClass) {
  BufferPool pool;
  uint8_t* a = pool.Get(8192);
  pool.Put(a, 8192);
  uint8_t* b = pool.Get(5000);  // also the 8 KiB class
  EXPECT_EQ(a, b);
  pool.Put(b, 5000);
}

TEST(BufferPool, TinyRequestsShareTheMinimumClass) {
  BufferPool pool;
  uint8_t* a = pool.Get(1);
  pool.Put(a, 1);
  EXPECT_EQ(pool.cached_bytes(), BufferPool::kMinClassBytes);
  uint8_t* b = pool.Get(BufferPool::kMinClassBytes);
  EXPECT_EQ(a, b);
  pool.Put(b, BufferPool::kMinClassBytes);
}

TEST(BufferPool, ReturnedBufferIsNotReusedForAnotherClass) {
  BufferPool pool;
  uint8_t* small = pool.Get(4096);
  pool.Put(small, 4096);
  uint8_t* big = pool.Get(4097);
  EXPECT_NE(big, small);
  EXPECT_EQ(pool.cached_bytes(), 4096u) << "the 4 KiB buffer must stay cached";
  pool.Put(big, 4097);
}

TEST(BufferPool, CachedBytesCountClassSizeNotRequestSize) {
  BufferPool pool;
  uint8_t* b = pool.Get(5000);
  pool.Put(b, 5000);
  EXPECT_EQ(pool.cached_bytes(), 8192u);
}

TEST(BufferPool, GetFromCacheReducesCachedBytes) {
  BufferPool pool;
  uint8_t* a = pool.Get(65536);
  uint8_t* b = pool.Get(4096);
  pool.Put(a, 65536);
  pool.Put(b, 4096);
  ASSERT_EQ(pool.cached_bytes(), 65536u + 4096u);
  uint8_t* c = pool.Get(65536);
  EXPECT_EQ(c, a);
  EXPECT_EQ(pool.cached_bytes(), 4096u);
  pool.Put(c, 65536);
}

TEST(BufferPool, CachedBytesNeverExceedMax) {
  BufferPool pool;
  const size_t n = BufferPool::kCachedBytesMax / BufferPool::kMaxClassBytes + 2;
  std::vector<uint8_t*> bufs;
  for (size_t i = 0; i < n; ++i) bufs.push_back(pool.Get(BufferPool::kMaxClassBytes));
  for (uint8_t* b : bufs) {
    pool.Put(b, BufferPool::kMaxClassBytes);
    EXPECT_LE(pool.cached_bytes(), BufferPool::kCachedBytesMax);
  }
  EXPECT_EQ(pool.cached_bytes(), BufferPool::kCachedBytesMax);
  // A small buffer no longer fits either; it is freed (LeakSanitizer checks it is not lost).
  uint8_t* small = pool.Get(4096);
  pool.Put(small, 4096);
  EXPECT_EQ(pool.cached_bytes(), BufferPool::kCachedBytesMax);
}

TEST(BufferPool, BufferRefusedByFullCacheIsNotHandedOutAgain) {
  BufferPool pool;
  const size_t fits = BufferPool::kCachedBytesMax / BufferPool::kMaxClassBytes;
  std::vector<uint8_t*> bufs;
  for (size_t i = 0; i < fits + 1; ++i) bufs.push_back(pool.Get(BufferPool::kMaxClassBytes));
  for (uint8_t* b : bufs) pool.Put(b, BufferPool::kMaxClassBytes);
  // Only the first `fits` were kept; getting them back must never yield the freed one.
  for (size_t i = 0; i < fits; ++i) {
    uint8_t* b = pool.Get(BufferPool::kMaxClassBytes);
    EXPECT_NE(b, bufs.back()) << "buffer " << i;
    bufs[i] = b;
  }
  EXPECT_EQ(pool.cached_bytes(), 0u);
  for (size_t i = 0; i < fits; ++i) pool.Put(bufs[i], BufferPool::kMaxClassBytes);
}

TEST(BufferPoolDeathTest, GetOverMaxClassAborts) {
  EXPECT_DEATH(
      {
        BufferPool pool;
        pool.Get(BufferPool::kMaxClassBytes + 1);
      },
      "check failed");
}

}  // namespace
}  // namespace blockrep
