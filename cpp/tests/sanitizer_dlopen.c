/* Linked into the sanitizer builds' tests only. oneTBB (inside OpenVINO) loads libtbbbind with RTLD_DEEPBIND, which
 * AddressSanitizer refuses and aborts on (google/sanitizers#611); this dlopen, found before the sanitizer's own
 * interceptor, drops that flag and passes everything else on. */
#define _GNU_SOURCE
#include <dlfcn.h>

void* dlopen(const char* file, int mode) {
  static void* (*next)(const char*, int) = 0;
  if (!next) next = (void* (*)(const char*, int))dlsym(RTLD_NEXT, "dlopen");
  return next(file, mode & ~RTLD_DEEPBIND);
}
