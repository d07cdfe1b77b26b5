#include "core/dirty_bitmap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include <cerrno>
#include <cstring>

#include "core/check.h"
#include "core/unique_fd.h"

namespace blockrep {
namespace {

static_assert(DirtyBitmap::kHeaderBytes == 4096 && DirtyBitmap::kPageBytes == 4096,
              "bitmap layout: docs/formats/bitmap.md");
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the format is little-endian");

void Put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void Put64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t Get32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t Get64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

int Popcount(uint8_t b) { return __builtin_popcount(b); }

Status WriteAll(int fd, const uint8_t* p, size_t n, uint64_t off, const std::string& what) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status::FromErrno(w < 0 ? errno : ENOSPC, what);
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

}  // namespace

DirtyBitmap::DirtyBitmap(uint64_t disk_bytes)
    : disk_bytes_(disk_bytes), regions_((disk_bytes + kRegionBytes - 1) / kRegionBytes) {
  const size_t bytes = static_cast<size_t>((regions_ + 7) / 8);
  bits_.assign((bytes + kPageBytes - 1) / kPageBytes * kPageBytes, 0);
  if (bits_.empty()) bits_.assign(kPageBytes, 0);
}

bool DirtyBitmap::Mark(uint64_t offset, uint64_t length, std::vector<uint32_t>* pages) {
  if (length == 0) return false;
  BLOCKREP_CHECK(offset + length <= disk_bytes_);
  const uint64_t first = offset / kRegionBytes;
  const uint64_t last = (offset + length - 1) / kRegionBytes;
  bool changed = false;
  int64_t last_page = -1;
  for (uint64_t r = first; r <= last; ++r) {
    uint8_t& byte = bits_[r / 8];
    const uint8_t bit = static_cast<uint8_t>(1u << (r % 8));
    if ((byte & bit) != 0) continue;
    byte |= bit;
    ++dirty_;
    changed = true;
    const int64_t page = static_cast<int64_t>(r / 8 / kPageBytes);
    if (pages != nullptr && page != last_page) {
      pages->push_back(static_cast<uint32_t>(page));
      last_page = page;
    }
  }
  return changed;
}

void DirtyBitmap::MarkAll() {
  if (regions_ > 0) Mark(0, disk_bytes_);
}

bool DirtyBitmap::AllSet(uint64_t offset, uint64_t length) const {
  if (length == 0) return true;
  BLOCKREP_CHECK(offset + length <= disk_bytes_);
  for (uint64_t r = offset / kRegionBytes; r <= (offset + length - 1) / kRegionBytes; ++r) {
    if (!Test(r)) return false;
  }
  return true;
}

void DirtyBitmap::PagesOf(uint64_t offset, uint64_t length, std::vector<uint32_t>* pages) const {
  if (length == 0) return;
  const uint64_t first = offset / kRegionBytes / 8 / kPageBytes;
  const uint64_t last = (offset + length - 1) / kRegionBytes / 8 / kPageBytes;
  for (uint64_t p = first; p <= last; ++p) pages->push_back(static_cast<uint32_t>(p));
}

void DirtyBitmap::Merge(const DirtyBitmap& other) {
  BLOCKREP_CHECK(other.disk_bytes_ == disk_bytes_);
  dirty_ = 0;
  for (size_t i = 0; i < bits_.size(); ++i) {
    bits_[i] |= other.bits_[i];
    dirty_ += static_cast<uint64_t>(Popcount(bits_[i]));
  }
}

void DirtyBitmap::Subtract(const DirtyBitmap& other) {
  BLOCKREP_CHECK(other.disk_bytes_ == disk_bytes_);
  dirty_ = 0;
  for (size_t i = 0; i < bits_.size(); ++i) {
    bits_[i] &= static_cast<uint8_t>(~other.bits_[i]);
    dirty_ += static_cast<uint64_t>(Popcount(bits_[i]));
  }
}

void DirtyBitmap::Clear() {
  std::fill(bits_.begin(), bits_.end(), 0);
  dirty_ = 0;
}

bool DirtyBitmap::Test(uint64_t region) const {
  BLOCKREP_CHECK(region < regions_);
  return (bits_[region / 8] >> (region % 8)) & 1;
}

std::vector<std::pair<uint64_t, uint64_t>> DirtyBitmap::Ranges() const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (uint64_t r = 0; r < regions_; ++r) {
    if (!Test(r)) continue;
    const uint64_t start = r * kRegionBytes;
    const uint64_t end = std::min(disk_bytes_, start + kRegionBytes);
    if (!out.empty() && out.back().first + out.back().second == start) {
      out.back().second += end - start;
    } else {
      out.emplace_back(start, end - start);
    }
  }
  return out;
}

void DirtyBitmap::EncodeHeader(uint8_t out[kHeaderBytes]) const {
  std::memset(out, 0, kHeaderBytes);
  std::memcpy(out, kMagic, 8);
  Put32(out + 8, kVersion);
  Put32(out + 12, static_cast<uint32_t>(kHeaderBytes));
  Put64(out + 16, kRegionBytes);
  Put64(out + 24, disk_bytes_);
  Put64(out + 32, regions_);
  Put64(out + 56, XXH3_64bits_withSeed(out, 56, 0));
}

Status DirtyBitmap::WriteTo(int fd, const std::string& path) const {
  uint8_t header[kHeaderBytes];
  EncodeHeader(header);
  BLOCKREP_RETURN_IF_ERROR(WriteAll(fd, header, kHeaderBytes, 0, "bitmap: write " + path));
  BLOCKREP_RETURN_IF_ERROR(
      WriteAll(fd, bits_.data(), bits_.size(), kHeaderBytes, "bitmap: write " + path));
  if (::fdatasync(fd) != 0) return Status::FromErrno(errno, "bitmap: fdatasync " + path);
  return Status::Ok();
}

Status DirtyBitmap::Save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::FromErrno(errno, "bitmap: create " + tmp);
  uint8_t header[kHeaderBytes];
  EncodeHeader(header);
  BLOCKREP_RETURN_IF_ERROR(WriteAll(fd.get(), header, kHeaderBytes, 0, "bitmap: write " + tmp));
  BLOCKREP_RETURN_IF_ERROR(
      WriteAll(fd.get(), bits_.data(), bits_.size(), kHeaderBytes, "bitmap: write " + tmp));
  if (::fdatasync(fd.get()) != 0) return Status::FromErrno(errno, "bitmap: fdatasync " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::FromErrno(errno, "bitmap: rename " + tmp);
  }
  const std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
  UniqueFd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid() || ::fsync(dfd.get()) != 0) {
    return Status::FromErrno(errno, "bitmap: fsync directory of " + path);
  }
  return Status::Ok();
}

Result<DirtyBitmap> DirtyBitmap::Load(const std::string& path, uint64_t disk_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "bitmap: open " + path);
  DirtyBitmap bm(disk_bytes);
  uint8_t header[kHeaderBytes];
  if (::pread(fd.get(), header, kHeaderBytes, 0) != static_cast<ssize_t>(kHeaderBytes)) {
    return Status::Corruption("bitmap " + path + ": short header");
  }
  if (std::memcmp(header, kMagic, 8) != 0) return Status::Corruption("bitmap " + path + ": bad magic");
  if (Get64(header + 56) != XXH3_64bits_withSeed(header, 56, 0)) {
    return Status::Corruption("bitmap " + path + ": header checksum mismatch");
  }
  if (Get32(header + 8) != kVersion || Get32(header + 12) != kHeaderBytes) {
    return Status::Corruption("bitmap " + path + ": unsupported version " +
                              std::to_string(Get32(header + 8)));
  }
  if (Get64(header + 16) != kRegionBytes) {
    return Status::Corruption("bitmap " + path + ": region size " +
                              std::to_string(Get64(header + 16)) + ", expected " +
                              std::to_string(kRegionBytes));
  }
  if (Get64(header + 24) != disk_bytes || Get64(header + 32) != bm.regions_) {
    return Status::Corruption("bitmap " + path + ": made for a disk of " +
                              std::to_string(Get64(header + 24)) + " bytes, the disk has " +
                              std::to_string(disk_bytes));
  }
  ssize_t n = ::pread(fd.get(), bm.bits_.data(), bm.bits_.size(), kHeaderBytes);
  if (n != static_cast<ssize_t>(bm.bits_.size())) {
    return Status::Corruption("bitmap " + path + ": short (" + std::to_string(n) + " of " +
                              std::to_string(bm.bits_.size()) + " bytes of bits)");
  }
  // Bits past the last region are padding and must be clear; count the rest.
  for (uint64_t r = bm.regions_; r < bm.bits_.size() * 8; ++r) {
    bm.bits_[r / 8] &= static_cast<uint8_t>(~(1u << (r % 8)));
  }
  for (uint8_t b : bm.bits_) bm.dirty_ += static_cast<uint64_t>(Popcount(b));
  return bm;
}

}  // namespace blockrep
