#include "core/point_marker.h"

#include "core/check.h"
#include "core/endian.h"

namespace blockrep {

std::string EncodePointMarker(const PointMarker& m) {
  BLOCKREP_CHECK(m.label.size() <= PointMarker::kMaxLabelBytes);
  std::string out(PointMarker::kFixedBytes + m.label.size(), '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  StoreLe64(p, m.id);
  StoreLe64(p + 8, m.time_ns);
  p[16] = static_cast<uint8_t>(m.type);
  StoreLe16(p + 24, static_cast<uint16_t>(m.label.size()));
  out.replace(PointMarker::kFixedBytes, m.label.size(), m.label);
  return out;
}

Result<PointMarker> DecodePointMarker(const uint8_t* body, size_t n) {
  auto bad = [](const std::string& why) { return Status::Corruption("recovery-point marker: " + why); };
  if (n < PointMarker::kFixedBytes) {
    return bad(std::to_string(n) + " bytes, shorter than its " + std::to_string(PointMarker::kFixedBytes) +
               " fixed bytes");
  }
  PointMarker m;
  m.id = LoadLe64(body);
  m.time_ns = LoadLe64(body + 8);
  if (body[16] != 1 && body[16] != 2) return bad("type " + std::to_string(body[16]));
  m.type = static_cast<PointMarker::Type>(body[16]);
  for (size_t i = 17; i < 24; ++i) {
    if (body[i] != 0) return bad("reserved byte " + std::to_string(i) + " is not 0");
  }
  const size_t label = LoadLe16(body + 24);
  if (label > PointMarker::kMaxLabelBytes) return bad("label of " + std::to_string(label) + " bytes");
  if (n != PointMarker::kFixedBytes + label) {
    return bad(std::to_string(n) + " bytes for a label of " + std::to_string(label));
  }
  m.label.assign(reinterpret_cast<const char*>(body + PointMarker::kFixedBytes), label);
  return m;
}

}  // namespace blockrep
