/* Native CPU kernels of the statevector engine (see native.py, which compiles this file on first use and
 * calls it through ctypes). GNU C99 with vector extensions (checked with gcc 12; clang has them too), no
 * Python or torch headers. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef VBYTES /* vector width in bytes; 64 (AVX-512) measured no faster than 32 on this project's CPUs */
#define VBYTES 32
#endif

#define REAL float
#define ITYPE int32_t
#define FN(name) name##_f32
#include "native_body.h"
#undef REAL
#undef ITYPE
#undef FN

#define REAL double
#define ITYPE int64_t
#define FN(name) name##_f64
#include "native_body.h"
#undef REAL
#undef ITYPE
#undef FN

int qrnn_native_abi(void) { return 6; }
