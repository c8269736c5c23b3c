/* Native CPU kernels of the statevector engine (see native.py, which compiles this file on first use and
 * calls it through ctypes, and kernels_native.py, which lowers a program to the Plan below). GNU C99 with
 * vector extensions (checked with gcc 12; clang has them too), no Python or torch headers. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef VBYTES /* vector width in bytes; 64 (AVX-512) measured no faster than 32 on this project's CPUs */
#define VBYTES 32
#endif

/* A compiled step and readout program (kernels_native.py builds it once per engine; the tables it points
 * into are kept alive there). REAL arrays (phase, layout-dependent) are void pointers: each real type's
 * kernels read them as their own REAL. */
typedef struct {
    int32_t n, n_seg, n_params, n_rot, n_ops, width;
    /* rotation r: h_r = ½(offset[r] + Σ_{e ∈ [rot_ptr[r], rot_ptr[r+1])} coef[e]·θ[param[e]]), axis 0/1/2 =
     * x/y/z: exp(-i·2h·P/2) = cos h·I - i sin h·P */
    const int32_t *rot_ptr, *rot_param;
    const double *rot_coef, *rot_offset;
    const int8_t *rot_axis;
    const double *consts; /* [n_ops - n_rot, 8]: constant matrices, then the identity */
    /* segment s, qubit q: chain row s·n + q of table [rows, width] (bank indices, identity padded) and
     * its flags: 1 active, 2 real (every gate real: the chain runs as a real 2×2), 4 has rotations */
    const int32_t *table;
    const uint8_t *chain_flags;
    const int64_t *const *perm, *const *inverse_perm; /* per segment, NULL where trivial */
    const void *const *phase;                          /* per segment [dim] complex, NULL where trivial */
    /* diagonal of segment s: terms [diag_ptr[s], diag_ptr[s+1]), the first diag_single[s] of them on one
     * qubit; term t is exp(-iφ/2·Z_mask[t]) with φ the rz rotation diag_rot[t] */
    const int32_t *diag_ptr, *diag_single, *diag_rot;
    const int64_t *diag_mask;
    /* rotation gradients: chain rotation i is rotation grad_rot[i] at position grad_pos[i] of row grad_row[i] */
    int32_t n_chain_rot;
    const int32_t *grad_row, *grad_pos, *grad_rot;
    /* readouts, as sparse maps (from, to, coef): z[to] += coef·rho[from] over the density matrices of the
     * qubits with one-qubit terms (rho[8q + e], 8 reals each), z[to] += coef·⟨P_from⟩ over the multi-qubit
     * terms; backward: W[to] += coef·gz[from] (W = 2 Σ w_t P_t per qubit, 8 reals each) and the terms'
     * weights w_from += coef·gz[to] */
    int32_t n_read, n_terms;
    const uint8_t *rho_qubits; /* [n]: 1 where a one-qubit term needs qubit q's density matrix */
    int32_t n_rz, n_zw, n_tz;
    const int32_t *rz_from, *rz_to, *zw_from, *zw_to, *tz_from, *tz_to;
    const double *rz_coef, *zw_coef, *tz_coef;
    const int64_t *term_x, *term_z; /* multi-qubit terms */
    const int32_t *term_y;          /* |x ∧ z| mod 4 */
    int32_t lanes; /* 1: the batch-in-lanes kernels of native_lanes.h (small n) */
} Plan;

/* Per-thread scratch, grown on demand (a thread's kernels run one at a time). */
static __thread void *scratch_buffer;
static __thread size_t scratch_bytes;

static void *scratch(size_t bytes)
{
    if (bytes > scratch_bytes) {
        free(scratch_buffer);
        const size_t size = (bytes + 4095) & ~(size_t)4095;
        if (posix_memalign(&scratch_buffer, 64, size) != 0) scratch_buffer = NULL;
        scratch_bytes = scratch_buffer ? size : 0;
    }
    return scratch_buffer;
}

static inline int parity64(uint64_t v) { return __builtin_parityll(v); }

/* sin and cos of 4 doubles: the reduction h = j·π/2 + r (|r| ≤ π/4; a two-part π/2 in fused multiply-adds)
 * and cephes' double polynomials on r, about 1 ulp for |h| ≤ 1e6 (callers take libm beyond). Written with
 * vector extensions: the compiler does not vectorise the scalar form (rounding and quadrant selects). */
typedef double d4 __attribute__((vector_size(32)));
typedef int64_t l4 __attribute__((vector_size(32)));
typedef int32_t i4 __attribute__((vector_size(16)));

/* The two-part reduction must not be reassociated into h - j·(A + B): the flags allow reassociation. */
#if defined(__clang__)
#define NO_REASSOCIATION
#elif defined(__GNUC__)
#define NO_REASSOCIATION __attribute__((optimize("no-associative-math")))
#else
#define NO_REASSOCIATION
#endif

static inline NO_REASSOCIATION void sincos4(d4 h, d4 *sine, d4 *cosine)
{
#if defined(__clang__)
#pragma clang fp reassociate(off)
#endif
    const d4 half = {0.5, 0.5, 0.5, 0.5}, one = {1, 1, 1, 1};
    d4 y = h * 0.63661977236758134308;
    const l4 big = (y > 1e9) | (y < -1e9);
    y = (d4)(((l4)y & ~big)); /* |y| ≤ 1e9 for the int32 conversion (those lanes are libm's) */
    const d4 t = __builtin_convertvector(__builtin_convertvector(y, i4), d4); /* toward zero */
    const d4 frac = y - t;
    const d4 j = t + (d4)((frac > half) & (l4)one) - (d4)((frac < -half) & (l4)one);
    const d4 x = (h - j * 1.57079632673412561417) - j * 6.07710050650619224932e-11;
    const d4 z = x * x;
    const d4 sp = x + x * z * (-1.66666666666666307295e-1 + z * (8.33333333332211858878e-3
                  + z * (-1.98412698295895385996e-4 + z * (2.75573136213857245213e-6
                  + z * (-2.50507477628578072866e-8 + z * 1.58962301576546568060e-10)))));
    const d4 cp = 1.0 - 0.5 * z + z * z * (4.16666666666665929218e-2 + z * (-1.38888888888730564116e-3
                  + z * (2.48015872888517045348e-5 + z * (-2.75573141792967388112e-7
                  + z * (2.08757008419747316778e-9 + z * -1.13585365213876817300e-11)))));
    const l4 q = __builtin_convertvector(__builtin_convertvector(j, i4) & 3, l4);
    const l4 odd = (q & 1) != 0, flip_s = (q & 2) != 0, flip_c = ((q + 1) & 2) != 0;
    const l4 sign = {INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN};
    const l4 s = ((l4)cp & odd) | ((l4)sp & ~odd), c = ((l4)sp & odd) | ((l4)cp & ~odd);
    *sine = (d4)(s ^ (flip_s & sign));
    *cosine = (d4)(c ^ (flip_c & sign));
}

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

int qrnn_native_abi(void) { return 7; }
