/* Native CPU kernels of the statevector engine (see native.py, which compiles this file on first use and
 * calls it through ctypes). GNU C99 (vector extensions), no Python or torch headers; gcc and clang build it. */
#include <stdint.h>
#include <string.h>

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

int qrnn_native_abi(void) { return 3; }
