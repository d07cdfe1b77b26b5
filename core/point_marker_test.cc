#include "core/point_marker.h"

#include <gtest/gtest.h>

#include <string>

namespace blockrep {
namespace {

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

TEST(PointMarker, RoundTripsWithAndWithoutALabel) {
  for (const std::string& label : {std::string(), std::string("before-upgrade"), std::string(256, 'x')}) {
    PointMarker m;
    m.id = 123456789;
    m.time_ns = 1'765'000'000'123'456'789ull;
    m.type = PointMarker::Type::kAppConsistent;
    m.label = label;
    const std::string body = EncodePointMarker(m);
    EXPECT_EQ(body.size(), PointMarker::kFixedBytes + label.size());
    auto d = DecodePointMarker(Bytes(body), body.size());
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d.value(), m);
  }
}

TEST(PointMarker, LayoutMatchesTheSpec) {
  PointMarker m;
  m.id = 0x0102030405060708ull;
  m.time_ns = 0x1112131415161718ull;
  m.type = PointMarker::Type::kCrashConsistent;
  m.label = "ab";
  const std::string b = EncodePointMarker(m);
  const std::string want("\x08\x07\x06\x05\x04\x03\x02\x01"   // id
                         "\x18\x17\x16\x15\x14\x13\x12\x11"   // time
                         "\x01\0\0\0\0\0\0\0"                 // type 1, reserved
                         "\x02\0"                             // label bytes
                         "ab",
                         28);
  EXPECT_EQ(b, want);
}

TEST(PointMarker, MalformedBodiesAreCorruptionSayingWhy) {
  PointMarker m;
  m.label = "x";
  const std::string good = EncodePointMarker(m);
  auto expect_bad = [](std::string body, const std::string& why) {
    auto d = DecodePointMarker(Bytes(body), body.size());
    ASSERT_FALSE(d.ok()) << why;
    EXPECT_EQ(d.status().code(), Status::Code::kCorruption);
    EXPECT_NE(d.status().message().find(why), std::string::npos) << d.status().ToString();
  };
  expect_bad(good.substr(0, 10), "shorter than");
  std::string t = good;
  t[16] = 3;
  expect_bad(t, "type 3");
  t = good;
  t[20] = 1;
  expect_bad(t, "reserved byte 20");
  t = good;
  t[24] = 2;  // says 2 label bytes, has 1
  expect_bad(t, "for a label of 2");
  t = good;
  t[24] = 0x01;
  t[25] = 0x01;  // 257 bytes
  expect_bad(t, "label of 257 bytes");
}

}  // namespace
}  // namespace blockrep
