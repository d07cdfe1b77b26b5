// Small files (state files, catalogs, indexes) read whole, and replaced atomically and
// durably: written to PATH.tmp, fdatasync'ed, renamed over PATH, and the directory
// fsync'ed, so that after a crash PATH holds either the old or the new content, whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace blockrep {

Status WriteFileDurably(const std::string& path, const void* data, size_t n);
inline Status WriteFileDurably(const std::string& path, const std::string& text) {
  return WriteFileDurably(path, text.data(), text.size());
}
// pread until n bytes are read or the file ends: *got is what was read (less than n only
// at the end of the file). `what` names the file in errors.
Status PreadFull(int fd, uint8_t* out, size_t n, uint64_t offset, const std::string& what, size_t* got);
// pwrite all n bytes (a write that makes no progress is ENOSPC).
Status PwriteFull(int fd, const uint8_t* data, size_t n, uint64_t offset, const std::string& what);

// Reads a whole (small) file. NotFound when it does not exist.
Status ReadWholeFile(const std::string& path, std::vector<uint8_t>* out);
// fsync of a directory (after creating, renaming or deleting a file in it).
Status FsyncDir(const std::string& dir);

}  // namespace blockrep
