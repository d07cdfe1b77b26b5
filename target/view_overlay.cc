#include "target/view_overlay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "core/check.h"
#include "core/durable_file.h"
#include "core/endian.h"
#include "target/point_view.h"

namespace blockrep {
namespace {

constexpr char kMapMagic[8] = {'B', 'R', 'O', 'V', 'M', 'A', 'P', '1'};
constexpr uint32_t kMapVersion = 1;
constexpr size_t kMapChecksumOffset = 56;

void EncodeMapHeader(uint64_t disk_bytes, uint8_t out[ViewOverlay::kMapHeaderBytes]) {
  std::memset(out, 0, ViewOverlay::kMapHeaderBytes);
  std::memcpy(out, kMapMagic, 8);
  StoreLe32(out + 8, kMapVersion);
  StoreLe32(out + 12, static_cast<uint32_t>(ViewOverlay::kBlockBytes));
  StoreLe64(out + 16, disk_bytes);
  StoreLe64(out + kMapChecksumOffset, XXH3_64bits_withSeed(out, kMapChecksumOffset, 0));
}

}  // namespace

Result<std::unique_ptr<ViewOverlay>> ViewOverlay::Open(const std::string& dir, uint64_t disk_bytes) {
  std::unique_ptr<ViewOverlay> o(new ViewOverlay(dir, disk_bytes));
  const std::string data_path = dir + "/overlay.img";
  const std::string map_path = dir + "/overlay.map";
  const uint64_t blocks = (disk_bytes + kBlockBytes - 1) / kBlockBytes;
  o->bits_.assign((blocks + 7) / 8, 0);

  std::vector<uint8_t> map;
  Status read = ReadWholeFile(map_path, &map);
  if (read.code() == Status::Code::kNotFound) {
    // New: the map first (empty), then the sparse data file.
    std::vector<uint8_t> fresh(kMapHeaderBytes + o->bits_.size(), 0);
    EncodeMapHeader(disk_bytes, fresh.data());
    BLOCKREP_RETURN_IF_ERROR(WriteFileDurably(map_path, fresh.data(), fresh.size()));
  } else if (!read.ok()) {
    return read;
  } else {
    uint8_t want[kMapHeaderBytes];
    EncodeMapHeader(disk_bytes, want);
    if (map.size() < kMapHeaderBytes || std::memcmp(map.data(), kMapMagic, 8) != 0 ||
        LoadLe64(map.data() + kMapChecksumOffset) != XXH3_64bits_withSeed(map.data(), kMapChecksumOffset, 0)) {
      return Status::Corruption(map_path + ": not an overlay map (bad magic or header checksum)");
    }
    if (std::memcmp(map.data(), want, kMapHeaderBytes) != 0) {
      return Status::Corruption(map_path + ": made for another disk size or block size (this disk: " +
                                std::to_string(disk_bytes) + " bytes)");
    }
    if (map.size() != kMapHeaderBytes + o->bits_.size()) {
      return Status::Corruption(map_path + ": " + std::to_string(map.size()) + " bytes, expected " +
                                std::to_string(kMapHeaderBytes + o->bits_.size()));
    }
    std::copy(map.begin() + kMapHeaderBytes, map.end(), o->bits_.begin());
    // Bits past the last block are never set.
    for (uint8_t b : o->bits_) o->written_blocks_ += static_cast<uint64_t>(std::popcount(b));
  }
  o->map_fd_ = UniqueFd(::open(map_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!o->map_fd_.valid()) return Status::FromErrno(errno, "open " + map_path);
  o->data_fd_ = UniqueFd(::open(data_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!o->data_fd_.valid()) return Status::FromErrno(errno, "open " + data_path);
  if (::ftruncate(o->data_fd_.get(), static_cast<off_t>(disk_bytes)) != 0) {
    return Status::FromErrno(errno, "truncate " + data_path);
  }
  return o;
}

bool ViewOverlay::Written(uint64_t block) const { return (bits_[block / 8] >> (block % 8)) & 1; }

void ViewOverlay::Mark(uint64_t block) {
  if (Written(block)) return;
  bits_[block / 8] = static_cast<uint8_t>(bits_[block / 8] | (1u << (block % 8)));
  dirty_pages_.insert((block / 8) / kMapPageBytes);
  ++written_blocks_;
}

Status ViewOverlay::ReadOverlay(uint64_t offset, uint64_t length, uint8_t* out) const {
  size_t got = 0;
  BLOCKREP_RETURN_IF_ERROR(PreadFull(data_fd_.get(), out, length, offset, dir_ + "/overlay.img", &got));
  std::memset(out + got, 0, length - got);  // past the sparse file's end
  return Status::Ok();
}

Status ViewOverlay::WriteOverlay(uint64_t offset, uint64_t length, const uint8_t* data) {
  return PwriteFull(data_fd_.get(), data, length, offset, dir_ + "/overlay.img");
}

Status ViewOverlay::Read(const PointView& below, uint64_t offset, uint64_t length, uint8_t* out) const {
  BLOCKREP_CHECK(offset <= disk_bytes_ && length <= disk_bytes_ - offset);
  uint64_t pos = offset;
  const uint64_t end = offset + length;
  while (pos < end) {
    // A run of blocks that are all written, or all not.
    const uint64_t block = pos / kBlockBytes;
    const bool written = Written(block);
    uint64_t run_end = std::min(end, (block + 1) * kBlockBytes);
    while (run_end < end && Written(run_end / kBlockBytes) == written) {
      run_end = std::min(end, run_end + kBlockBytes);
    }
    uint8_t* dst = out + (pos - offset);
    if (written) {
      BLOCKREP_RETURN_IF_ERROR(ReadOverlay(pos, run_end - pos, dst));
    } else {
      BLOCKREP_RETURN_IF_ERROR(below.Read(pos, run_end - pos, dst));
    }
    pos = run_end;
  }
  return Status::Ok();
}

Status ViewOverlay::Write(const PointView& below, uint64_t offset, uint64_t length, const uint8_t* data) {
  BLOCKREP_CHECK(offset <= disk_bytes_ && length <= disk_bytes_ - offset);
  if (length == 0) return Status::Ok();
  const uint64_t end = offset + length;
  const uint64_t first = offset / kBlockBytes;
  const uint64_t last = (end - 1) / kBlockBytes;
  // An edge block not yet in the overlay is completed with what the disk reads there, so
  // that the overlay always holds whole blocks.
  std::vector<uint8_t> block(kBlockBytes);
  for (uint64_t b : {first, last}) {
    const uint64_t bstart = b * kBlockBytes;
    const uint64_t bend = std::min(disk_bytes_, bstart + kBlockBytes);
    const bool partial = offset > bstart || end < bend;
    if (!partial || Written(b)) continue;
    BLOCKREP_RETURN_IF_ERROR(below.Read(bstart, bend - bstart, block.data()));
    BLOCKREP_RETURN_IF_ERROR(WriteOverlay(bstart, bend - bstart, block.data()));
    if (first == last) break;
  }
  BLOCKREP_RETURN_IF_ERROR(WriteOverlay(offset, length, data));
  for (uint64_t b = first; b <= last; ++b) Mark(b);
  return Status::Ok();
}

Status ViewOverlay::Flush() {
  if (::fdatasync(data_fd_.get()) != 0) return Status::FromErrno(errno, "fdatasync " + dir_ + "/overlay.img");
  if (dirty_pages_.empty()) return Status::Ok();
  for (size_t page : dirty_pages_) {
    const size_t start = page * kMapPageBytes;
    const size_t n = std::min(kMapPageBytes, bits_.size() - start);
    BLOCKREP_RETURN_IF_ERROR(PwriteFull(map_fd_.get(), bits_.data() + start, n, kMapHeaderBytes + start,
                                        dir_ + "/overlay.map"));
  }
  if (::fdatasync(map_fd_.get()) != 0) return Status::FromErrno(errno, "fdatasync " + dir_ + "/overlay.map");
  dirty_pages_.clear();
  return Status::Ok();
}

}  // namespace blockrep
