#include "target/point_catalog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/durable_file.h"
#include "core/endian.h"

namespace blockrep {
namespace {

constexpr size_t kChecksumOffset = 56;

}  // namespace

const char* RecoveryPointTypeName(RecoveryPoint::Type type) {
  return type == RecoveryPoint::Type::kAppConsistent ? "app" : "crash";
}

void PointCatalog::Encode(const RecoveryPoint& p, uint8_t out[kEntryBytes]) {
  std::memset(out, 0, kEntryBytes);
  StoreLe32(out, kMagic);
  out[4] = static_cast<uint8_t>(p.type);
  StoreLe64(out + 8, p.id);
  StoreLe64(out + 16, p.target_seq);
  StoreLe64(out + 24, p.time_ns);
  StoreLe64(out + 32, p.lag_ns);
  std::memcpy(out + 40, p.label.data(), std::min(p.label.size(), RecoveryPoint::kLabelBytes));
  StoreLe64(out + kChecksumOffset, XXH3_64bits_withSeed(out, kChecksumOffset, 0));
}

bool PointCatalog::Decode(const uint8_t in[kEntryBytes], RecoveryPoint* p) {
  if (LoadLe32(in) != kMagic) return false;
  if (LoadLe64(in + kChecksumOffset) != XXH3_64bits_withSeed(in, kChecksumOffset, 0)) return false;
  if (in[4] != 1 && in[4] != 2) return false;
  if (in[5] != 0 || in[6] != 0 || in[7] != 0) return false;
  p->type = static_cast<RecoveryPoint::Type>(in[4]);
  p->id = LoadLe64(in + 8);
  p->target_seq = LoadLe64(in + 16);
  p->time_ns = LoadLe64(in + 24);
  p->lag_ns = LoadLe64(in + 32);
  const char* label = reinterpret_cast<const char*>(in + 40);
  p->label.assign(label, strnlen(label, RecoveryPoint::kLabelBytes));
  return true;
}

Result<std::unique_ptr<PointCatalog>> PointCatalog::Open(const std::string& path, Loaded* loaded) {
  *loaded = Loaded();
  std::unique_ptr<PointCatalog> c(new PointCatalog(path));
  c->fd_ = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!c->fd_.valid()) return Status::FromErrno(errno, "open " + path);
  std::vector<uint8_t> bytes;
  BLOCKREP_RETURN_IF_ERROR(ReadWholeFile(path, &bytes));
  const size_t whole = bytes.size() / kEntryBytes;
  size_t good = 0;
  for (size_t i = 0; i < whole; ++i) {
    RecoveryPoint p;
    if (!Decode(bytes.data() + i * kEntryBytes, &p)) {
      if (i + 1 < whole) {
        return Status::Corruption(path + ": entry " + std::to_string(i) + " (byte " +
                                  std::to_string(i * kEntryBytes) +
                                  ") does not verify, and entries follow it");
      }
      break;  // the last one: torn
    }
    if (!loaded->points.empty() && p.target_seq <= loaded->points.back().target_seq) {
      return Status::Corruption(path + ": entry " + std::to_string(i) + " (target seq " +
                                std::to_string(p.target_seq) + ") is not after the one before it");
    }
    loaded->points.push_back(p);
    ++good;
  }
  c->end_ = good * kEntryBytes;
  if (c->end_ != bytes.size()) {
    loaded->torn_tail = true;
    if (::ftruncate(c->fd_.get(), static_cast<off_t>(c->end_)) != 0 || ::fdatasync(c->fd_.get()) != 0) {
      return Status::FromErrno(errno, "truncate " + path + " after its torn last entry");
    }
  }
  return c;
}

Status PointCatalog::Append(const RecoveryPoint& point) {
  uint8_t e[kEntryBytes];
  Encode(point, e);
  BLOCKREP_RETURN_IF_ERROR(PwriteFull(fd_.get(), e, kEntryBytes, end_, path_));
  if (::fdatasync(fd_.get()) != 0) return Status::FromErrno(errno, "fdatasync " + path_);
  end_ += kEntryBytes;
  return Status::Ok();
}

Status PointCatalog::Rewrite(const std::vector<RecoveryPoint>& points) {
  std::vector<uint8_t> bytes(points.size() * kEntryBytes);
  for (size_t i = 0; i < points.size(); ++i) Encode(points[i], bytes.data() + i * kEntryBytes);
  BLOCKREP_RETURN_IF_ERROR(WriteFileDurably(path_, bytes.data(), bytes.size()));
  UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path_);
  fd_ = std::move(fd);
  end_ = bytes.size();
  return Status::Ok();
}

}  // namespace blockrep
