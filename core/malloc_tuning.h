// Allocator settings for the daemons' bulk buffers.
//
// Replication moves data in buffers of about a MiB (batches, frames, chunks) that are
// allocated and freed many times a second; a group of them is freed at once at each commit.
// glibc's defaults give such a burst back to the kernel (trimming the heap, or unmapping a
// chunk above the mmap threshold), and the next one faults every page in again, zeroed:
// measured, page faults and page clearing were ~10% of both daemons' CPU in an initial
// copy. Keeping up to kMallocRetainBytes of freed heap avoids that; the memory stays counted in
// the daemon's RSS (its peak is what it was anyway).
#pragma once

#include <cstddef>

namespace blockrep {

inline constexpr size_t kMallocRetainBytes = 64u << 20;

// Call once at the start of main(), before other threads exist.
void TuneMallocForBulkBuffers();

}  // namespace blockrep
