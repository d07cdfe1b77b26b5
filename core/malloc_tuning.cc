#include "core/malloc_tuning.h"

#include <malloc.h>

namespace blockrep {

void TuneMallocForBulkBuffers() {
  // Buffers up to 32 MiB (a batch is at most 34 MiB raw) come from the heap rather than
  // from their own mappings, and the heap keeps up to kMallocRetainBytes free at its top.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(kMallocRetainBytes));
}

}  // namespace blockrep
