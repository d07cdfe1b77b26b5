// CHECK: programmer-error assertions that stay on in release builds (house style: cheap
// checks stay on). Operating errors are Status values, never CHECKs.
#pragma once

#include <cstdio>
#include <cstdlib>

#define BLOCKREP_CHECK(cond)                                                            \
  do {                                                                                  \
    if (__builtin_expect(!(cond), 0)) {                                                 \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
