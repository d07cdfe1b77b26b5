#include "core/byte_size.h"

#include <gtest/gtest.h>

namespace blockrep {
namespace {

TEST(ParseByteSize, PlainNumberIsBytes) {
  auto r = ParseByteSize("1073741824", false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->bytes, 1073741824u);
  EXPECT_EQ(r->percent, 0u);
}

TEST(ParseByteSize, BinaryUnits) {
  EXPECT_EQ(ParseByteSize("512K", false)->bytes, 512u << 10);
  EXPECT_EQ(ParseByteSize("64M", false)->bytes, 64u << 20);
  EXPECT_EQ(ParseByteSize("64MiB", false)->bytes, 64u << 20);
  EXPECT_EQ(ParseByteSize("2g", false)->bytes, 2ull << 30);
  EXPECT_EQ(ParseByteSize("1TB", false)->bytes, 1ull << 40);
  EXPECT_EQ(ParseByteSize("4096B", false)->bytes, 4096u);
}

TEST(ParseByteSize, PercentOnlyWhereAllowed) {
  auto r = ParseByteSize("50%", true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->percent, 50u);
  EXPECT_EQ(r->Resolve(1000), 500u);
  EXPECT_FALSE(ParseByteSize("50%", false).ok());
  EXPECT_FALSE(ParseByteSize("0%", true).ok());
  EXPECT_FALSE(ParseByteSize("101%", true).ok());
}

TEST(ParseByteSize, ResolvePercentDoesNotOverflow) {
  ByteSize s{0, 50};
  EXPECT_EQ(s.Resolve(UINT64_MAX - 1), (UINT64_MAX - 1) / 2);
}

TEST(ParseByteSize, RejectsGarbageAndOverflow) {
  EXPECT_FALSE(ParseByteSize("", false).ok());
  EXPECT_FALSE(ParseByteSize("M", false).ok());
  EXPECT_FALSE(ParseByteSize("12Q", false).ok());
  EXPECT_FALSE(ParseByteSize("12MX", false).ok());
  EXPECT_FALSE(ParseByteSize("-5", false).ok());
  EXPECT_FALSE(ParseByteSize("99999999999999999999", false).ok());
  EXPECT_FALSE(ParseByteSize("99999999999T", false).ok());
  EXPECT_NE(ParseByteSize("12Q", false).status().message().find("12Q"), std::string::npos);
}

TEST(FormatBytes, HumanUnits) {
  EXPECT_EQ(FormatBytes(512), "512 bytes");
  EXPECT_EQ(FormatBytes(64u << 20), "64 MiB");
  EXPECT_EQ(FormatBytes(3ull << 29), "1.5 GiB");
}

TEST(FormatBytes, RoundingUpMovesToTheNextUnit) {
  EXPECT_EQ(FormatBytes((1u << 20) - 1), "1.0 MiB");
  EXPECT_EQ(FormatBytes((10u << 10) - 1), "10 KiB");
  EXPECT_EQ(FormatBytes(1023), "1023 bytes");
}

}  // namespace
}  // namespace blockrep
