// Small files (state files, catalogs, indexes) read whole, and replaced atomically and
// durably: written to PATH.tmp, fdatasync'ed, renamed over PATH, and the directory
// fsync'ed, so that after a crash PATH holds either the old or the new content, whole.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/status.h"

namespace blockrep {

Status WriteFileDurably(const std::string& path, const void* data, size_t n);
inline Status WriteFileDurably(const std::string& path, const std::string& text) {
  return WriteFileDurably(path, text.data(), text.size());
}
// Reads a whole (small) file. NotFound when it does not exist.
Status ReadWholeFile(const std::string& path, std::vector<uint8_t>* out);
// fsync of a directory (after creating, renaming or deleting a file in it).
Status FsyncDir(const std::string& dir);

}  // namespace blockrep
