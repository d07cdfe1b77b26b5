#include "core/extent_map.h"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <vector>

namespace blockrep {
namespace {

using Kind = ExtentSource::Kind;

ExtentSource Data(uint32_t file, uint64_t file_offset) {
  return ExtentSource{Kind::kData, file, file_offset};
}
ExtentSource Zero() { return ExtentSource{Kind::kZero, 0, 0}; }

std::vector<ExtentMap::Piece> All(const ExtentMap& m, uint64_t offset, uint64_t length) {
  std::vector<ExtentMap::Piece> out;
  m.Lookup(offset, length, &out);
  return out;
}

TEST(ExtentMap, EmptyMapReadsEverythingFromTheBase) {
  ExtentMap m;
  auto p = All(m, 100, 50);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].offset, 100u);
  EXPECT_EQ(p[0].length, 50u);
  EXPECT_FALSE(p[0].mapped);
  EXPECT_EQ(m.extent_count(), 0u);
  EXPECT_EQ(m.mapped_bytes(), 0u);
}

TEST(ExtentMap, LookupSplitsAtExtentEdgesAndAdvancesTheFileOffset) {
  ExtentMap m;
  m.Set(4096, 8192, Data(3, 1000));
  auto p = All(m, 0, 16384);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_FALSE(p[0].mapped);
  EXPECT_EQ(p[0].length, 4096u);
  EXPECT_TRUE(p[1].mapped);
  EXPECT_EQ(p[1].offset, 4096u);
  EXPECT_EQ(p[1].length, 8192u);
  EXPECT_EQ(p[1].source, Data(3, 1000));
  EXPECT_FALSE(p[2].mapped);
  EXPECT_EQ(p[2].offset, 12288u);
  // From the middle of the extent: the file offset moves along.
  p = All(m, 5000, 100);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].source, Data(3, 1000 + (5000 - 4096)));
}

TEST(ExtentMap, LaterSetWinsAndKeepsBothEdgesOfTheOlderExtent) {
  ExtentMap m;
  m.Set(0, 10000, Data(1, 0));
  m.Set(4000, 1000, Zero());
  auto p = All(m, 0, 10000);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].source, Data(1, 0));
  EXPECT_EQ(p[0].length, 4000u);
  EXPECT_EQ(p[1].source, Zero());
  EXPECT_EQ(p[1].offset, 4000u);
  EXPECT_EQ(p[1].length, 1000u);
  EXPECT_EQ(p[2].source, Data(1, 5000));  // the tail still reads its own bytes
  EXPECT_EQ(p[2].offset, 5000u);
  EXPECT_EQ(p[2].length, 5000u);
  EXPECT_EQ(m.mapped_bytes(), 10000u);
}

TEST(ExtentMap, ASequentialStreamOfWritesStaysOneExtent) {
  ExtentMap m;
  // A journal segment whose payloads follow each other: record i at file offset 64 + i*4160
  // would not join; contiguous payloads (as a merged run would be) do.
  for (uint64_t i = 0; i < 1000; ++i) m.Set(i * 4096, 4096, Data(7, (uint64_t{1} << 20) + i * 4096));
  EXPECT_EQ(m.extent_count(), 1u);
  EXPECT_EQ(m.mapped_bytes(), 1000u * 4096);
  // Payloads with headers between them stay apart.
  ExtentMap h;
  for (uint64_t i = 0; i < 10; ++i) h.Set(i * 4096, 4096, Data(7, 64 + i * (4096 + 64)));
  EXPECT_EQ(h.extent_count(), 10u);
}

TEST(ExtentMap, AdjacentZeroRangesJoin) {
  ExtentMap m;
  m.Set(0, 100, Zero());
  m.Set(200, 100, Zero());
  m.Set(100, 100, Zero());
  EXPECT_EQ(m.extent_count(), 1u);
  auto p = All(m, 0, 300);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].source, Zero());
}

TEST(ExtentMap, SetCoveringManyExtentsReplacesThemAll) {
  ExtentMap m;
  for (uint64_t i = 0; i < 100; ++i) m.Set(i * 100, 50, Data(static_cast<uint32_t>(i), 0));
  EXPECT_EQ(m.extent_count(), 100u);
  m.Set(25, 9950, Data(500, 0));
  auto p = All(m, 0, 10000);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].source, Data(0, 0));
  EXPECT_EQ(p[0].length, 25u);
  EXPECT_EQ(p[1].source, Data(500, 0));
  EXPECT_EQ(p[1].length, 9950u);
  EXPECT_FALSE(p[2].mapped);  // [9975, 10000): the last extent ended at 9950
  EXPECT_EQ(m.mapped_bytes(), 25u + 9950u);
}

TEST(ExtentMap, ZeroLengthSetAndLookupDoNothing) {
  ExtentMap m;
  m.Set(10, 0, Data(1, 0));
  EXPECT_EQ(m.extent_count(), 0u);
  std::vector<ExtentMap::Piece> out;
  m.Lookup(10, 0, &out);
  EXPECT_TRUE(out.empty());
}

// Against a model that remembers, for every byte, where it reads from: random writes,
// zeroes and lookups, with joins and splits everywhere.
TEST(ExtentMap, MatchesAByteModelUnderRandomOperations) {
  constexpr uint64_t kDisk = 1 << 14;
  std::mt19937_64 rng(20261207);
  for (int trial = 0; trial < 20; ++trial) {
    ExtentMap m;
    std::vector<std::optional<ExtentSource>> model(kDisk);
    uint64_t file_cursor = 0;
    for (int op = 0; op < 400; ++op) {
      const uint64_t offset = rng() % kDisk;
      const uint64_t length = 1 + rng() % std::min<uint64_t>(kDisk - offset, 2000);
      ExtentSource s;
      if (rng() % 4 == 0) {
        s = Zero();
      } else {
        // Often continue the previous payload, so that joins happen.
        if (rng() % 2 == 0) file_cursor += rng() % 100;
        s = Data(static_cast<uint32_t>(rng() % 2), file_cursor);
        file_cursor += length;
      }
      m.Set(offset, length, s);
      for (uint64_t b = 0; b < length; ++b) {
        ExtentSource bs = s;
        if (bs.kind == Kind::kData) bs.file_offset += b;
        model[offset + b] = bs;
      }
    }
    // The whole disk: every byte as the model says, pieces contiguous, none that could
    // have been joined with its neighbour.
    auto p = All(m, 0, kDisk);
    uint64_t pos = 0;
    uint64_t mapped = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      ASSERT_EQ(p[i].offset, pos);
      ASSERT_GT(p[i].length, 0u);
      for (uint64_t b = 0; b < p[i].length; ++b) {
        const auto& want = model[pos + b];
        ASSERT_EQ(p[i].mapped, want.has_value()) << "byte " << pos + b;
        if (!want) continue;
        ExtentSource got = p[i].source;
        if (got.kind == Kind::kData) got.file_offset += b;
        ASSERT_EQ(got, *want) << "byte " << pos + b;
      }
      if (p[i].mapped) mapped += p[i].length;
      if (i > 0 && p[i].mapped && p[i - 1].mapped) {
        const ExtentSource& a = p[i - 1].source;
        const ExtentSource& b = p[i].source;
        const bool joinable = a.kind == b.kind &&
                              (a.kind == Kind::kZero ||
                               (a.file == b.file && a.file_offset + p[i - 1].length == b.file_offset));
        EXPECT_FALSE(joinable) << "extents at " << p[i - 1].offset << " and " << p[i].offset
                               << " continue each other but were not joined";
      }
      pos += p[i].length;
    }
    EXPECT_EQ(pos, kDisk);
    EXPECT_EQ(m.mapped_bytes(), mapped);
    // Random sub-ranges agree with the whole-disk answer.
    for (int q = 0; q < 50; ++q) {
      const uint64_t offset = rng() % kDisk;
      const uint64_t length = 1 + rng() % (kDisk - offset);
      auto sub = All(m, offset, length);
      uint64_t at = offset;
      for (const auto& piece : sub) {
        ASSERT_EQ(piece.offset, at);
        for (uint64_t b = 0; b < piece.length; b += 97) {
          const auto& want = model[at + b];
          ASSERT_EQ(piece.mapped, want.has_value());
          if (!want) continue;
          ExtentSource got = piece.source;
          if (got.kind == Kind::kData) got.file_offset += b;
          ASSERT_EQ(got, *want);
        }
        at += piece.length;
      }
      EXPECT_EQ(at, offset + length);
    }
  }
}

}  // namespace
}  // namespace blockrep
