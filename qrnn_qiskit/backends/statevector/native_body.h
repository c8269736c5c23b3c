/* Kernels of native.c for one real type: native.c includes this file twice, with REAL = float (complex64
 * states, FN(name) = name_f32) and REAL = double (complex128 states, name_f64).
 *
 * Layout. States arrive as interleaved complex numbers [B, 2^n] (index bit q = qubit q, Qiskit's order).
 * Each sample is copied into planar form (a real plane and an imaginary plane, in per-thread scratch that
 * stays in cache for n ≤ 12), worked on there with 32-byte vectors of LANES reals, and copied back. A gate
 * on qubit q with 2^q ≥ LANES pairs whole vectors; on a lower qubit it pairs lanes inside one vector (a
 * shuffle), so every qubit costs the same. 2×2 matrices are row-major, 8 reals: m00 m01 m10 m11 (re, im).
 *
 * One call runs a whole step for the samples [b0, b1) (callers split a batch across threads): the op bank
 * from the angles (vectorised sin/cos), each chain multiplied out, the single-qubit layer (real chains as
 * real 2×2s), the diagonal, the signed permutation and the readouts; the backward call walks ψ and
 * g = ∂L/∂ψ back through U† with the gradients of every angle.
 */

typedef REAL FN(vec) __attribute__((vector_size(VBYTES), aligned(sizeof(REAL))));
typedef ITYPE FN(ivec) __attribute__((vector_size(VBYTES)));
#define VEC FN(vec)
#define IVEC FN(ivec)
#define LANES ((size_t)(VBYTES / sizeof(REAL)))
#define LOG_LANES ((int)__builtin_ctzll(VBYTES / sizeof(REAL)))
#define LOAD(p) (*(const VEC *)(p))
#define STORE(p, v) (*(VEC *)(p) = (v))
#define FLUSH_EVERY 64 /* vectors summed in REAL before the sums move to double */

static inline VEC FN(splat)(REAL x)
{
    VEC v;
    for (size_t l = 0; l < LANES; l++) v[l] = x;
    return v;
}

/* Lane l ^ s for every lane l (s < LANES): the pair partner of each amplitude for qubit log2(s). */
static inline IVEC FN(partner_mask)(size_t s)
{
    IVEC mask;
    for (size_t l = 0; l < LANES; l++) mask[l] = (ITYPE)(l ^ s);
    return mask;
}

static inline VEC FN(partner)(VEC v, IVEC mask)
{
#if defined(__GNUC__) && !defined(__clang__)
    return __builtin_shuffle(v, mask);
#else
    VEC w;
    for (size_t l = 0; l < LANES; l++) w[l] = v[mask[l]];
    return w;
#endif
}

/* (-1)^{|l ∧ mask|} for every lane l: the sign of Z_mask on the lane bits. */
static inline VEC FN(lane_signs)(uint64_t mask)
{
    VEC v;
    for (size_t l = 0; l < LANES; l++) v[l] = parity64(l & mask) ? (REAL)-1 : (REAL)1;
    return v;
}

static inline double FN(hsum)(const double *total)
{
    double sum = 0;
    for (size_t l = 0; l < LANES; l++) sum += total[l];
    return sum;
}

/* total[t] += acc[t] lane by lane and acc[t] = 0, for t < k: REAL partial sums stay FLUSH_EVERY vectors short and
 * the running totals are double. */
static inline void FN(flush)(double total[][LANES], VEC *acc, int k)
{
    for (int t = 0; t < k; t++) {
        for (size_t l = 0; l < LANES; l++) total[t][l] += acc[t][l];
        acc[t] = FN(splat)(0);
    }
}

static void FN(to_planar)(const REAL *restrict x, REAL *restrict re, REAL *restrict im, size_t dim)
{
    for (size_t i = 0; i < dim; i++) {
        re[i] = x[2 * i];
        im[i] = x[2 * i + 1];
    }
}

static void FN(from_planar)(const REAL *restrict re, const REAL *restrict im, REAL *restrict x, size_t dim)
{
    for (size_t i = 0; i < dim; i++) {
        x[2 * i] = re[i];
        x[2 * i + 1] = im[i];
    }
}

/* ------------------------------------------------------------------------------------------------ gates */
/* o ← M x (accumulate = 0; o may be x) or o ← o + M x on qubit q. */
static void FN(gate)(const REAL *xr, const REAL *xi, REAL *or_, REAL *oi, int n, int q, const REAL *m,
                     int accumulate)
{
    const REAL ar = m[0], ai = m[1], br = m[2], bi = m[3], cr = m[4], ci = m[5], dr = m[6], di = m[7];
    const size_t dim = (size_t)1 << n, s = (size_t)1 << q;
    if (s >= LANES) {
        const VEC Ar = FN(splat)(ar), Ai = FN(splat)(ai), Br = FN(splat)(br), Bi = FN(splat)(bi);
        const VEC Cr = FN(splat)(cr), Ci = FN(splat)(ci), Dr = FN(splat)(dr), Di = FN(splat)(di);
        for (size_t block = 0; block < dim; block += 2 * s) {
            for (size_t j = block; j < block + s; j += LANES) {
                const VEC ur = LOAD(xr + j), ui = LOAD(xi + j), vr = LOAD(xr + j + s), vi = LOAD(xi + j + s);
                VEC lr = Ar * ur - Ai * ui + Br * vr - Bi * vi, li = Ar * ui + Ai * ur + Br * vi + Bi * vr;
                VEC hr = Cr * ur - Ci * ui + Dr * vr - Di * vi, hi = Cr * ui + Ci * ur + Dr * vi + Di * vr;
                if (accumulate) {
                    lr += LOAD(or_ + j); li += LOAD(oi + j); hr += LOAD(or_ + j + s); hi += LOAD(oi + j + s);
                }
                STORE(or_ + j, lr); STORE(oi + j, li); STORE(or_ + j + s, hr); STORE(oi + j + s, hi);
            }
        }
        return;
    }
    /* lanes with bit q = 0 hold the pair's first amplitude: new = a·own + b·partner; bit 1: d·own + c·partner */
    VEC Pr, Pi, Qr, Qi;
    const IVEC mask = FN(partner_mask)(s);
    for (size_t l = 0; l < LANES; l++) {
        int high = (l & s) != 0;
        Pr[l] = high ? dr : ar; Pi[l] = high ? di : ai;
        Qr[l] = high ? cr : br; Qi[l] = high ? ci : bi;
    }
    for (size_t j = 0; j < dim; j += LANES) {
        const VEC ur = LOAD(xr + j), ui = LOAD(xi + j);
        const VEC vr = FN(partner)(ur, mask), vi = FN(partner)(ui, mask);
        VEC nr = Pr * ur - Pi * ui + Qr * vr - Qi * vi, ni = Pr * ui + Pi * ur + Qr * vi + Qi * vr;
        if (accumulate) {
            nr += LOAD(or_ + j); ni += LOAD(oi + j);
        }
        STORE(or_ + j, nr); STORE(oi + j, ni);
    }
}

/* x ← M x on qubit q for a real M (m's imaginary parts are zero): half the arithmetic of gate(). */
static void FN(gate_real)(REAL *xr, REAL *xi, int n, int q, const REAL *m)
{
    const size_t dim = (size_t)1 << n, s = (size_t)1 << q;
    if (s >= LANES) {
        const VEC A = FN(splat)(m[0]), B = FN(splat)(m[2]), C = FN(splat)(m[4]), D = FN(splat)(m[6]);
        for (size_t block = 0; block < dim; block += 2 * s) {
            for (size_t j = block; j < block + s; j += LANES) {
                const VEC ur = LOAD(xr + j), ui = LOAD(xi + j), vr = LOAD(xr + j + s), vi = LOAD(xi + j + s);
                STORE(xr + j, A * ur + B * vr); STORE(xi + j, A * ui + B * vi);
                STORE(xr + j + s, C * ur + D * vr); STORE(xi + j + s, C * ui + D * vi);
            }
        }
        return;
    }
    VEC P, Q;
    const IVEC mask = FN(partner_mask)(s);
    for (size_t l = 0; l < LANES; l++) {
        int high = (l & s) != 0;
        P[l] = high ? m[6] : m[0];
        Q[l] = high ? m[4] : m[2];
    }
    for (size_t j = 0; j < dim; j += LANES) {
        const VEC ur = LOAD(xr + j), ui = LOAD(xi + j);
        STORE(xr + j, P * ur + Q * FN(partner)(ur, mask));
        STORE(xi + j, P * ui + Q * FN(partner)(ui, mask));
    }
}

static inline void FN(dagger)(const REAL *m, REAL *d)
{
    d[0] = m[0]; d[1] = -m[1]; d[2] = m[4]; d[3] = -m[5];
    d[4] = m[2]; d[5] = -m[3]; d[6] = m[6]; d[7] = -m[7];
}

/* The backward's pass for qubit q: k[a][c] = Σ x_a y_c* over the qubit's pairs (row-major 2×2, 8 reals),
 * then x ← M† x and y ← M† y, in one sweep over both states. */
static void FN(undo_with_products)(REAL *xr, REAL *xi, REAL *yr, REAL *yi, int n, int q, const REAL *m, REAL *k)
{
    /* M† = [[a*, c*], [b*, d*]] */
    const REAL ar = m[0], ai = -m[1], br = m[4], bi = -m[5], cr = m[2], ci = -m[3], dr = m[6], di = -m[7];
    const size_t dim = (size_t)1 << n, s = (size_t)1 << q;
    double total[8][LANES];
    VEC acc[8];
    memset(total, 0, sizeof(total));
    for (int t = 0; t < 8; t++) acc[t] = FN(splat)(0);
    size_t count = 0;
    if (s >= LANES) { /* acc: 00 re, 00 im, 01 re, 01 im, 10 re, 10 im, 11 re, 11 im */
        const VEC Ar = FN(splat)(ar), Ai = FN(splat)(ai), Br = FN(splat)(br), Bi = FN(splat)(bi);
        const VEC Cr = FN(splat)(cr), Ci = FN(splat)(ci), Dr = FN(splat)(dr), Di = FN(splat)(di);
        for (size_t block = 0; block < dim; block += 2 * s) {
            for (size_t j = block; j < block + s; j += LANES) {
                const VEC pr = LOAD(xr + j), pi = LOAD(xi + j), hr = LOAD(xr + j + s), hi = LOAD(xi + j + s);
                const VEC ur = LOAD(yr + j), ui = LOAD(yi + j), vr = LOAD(yr + j + s), vi = LOAD(yi + j + s);
                acc[0] += pr * ur + pi * ui; acc[1] += pi * ur - pr * ui;
                acc[2] += pr * vr + pi * vi; acc[3] += pi * vr - pr * vi;
                acc[4] += hr * ur + hi * ui; acc[5] += hi * ur - hr * ui;
                acc[6] += hr * vr + hi * vi; acc[7] += hi * vr - hr * vi;
                STORE(xr + j, Ar * pr - Ai * pi + Br * hr - Bi * hi);
                STORE(xi + j, Ar * pi + Ai * pr + Br * hi + Bi * hr);
                STORE(xr + j + s, Cr * pr - Ci * pi + Dr * hr - Di * hi);
                STORE(xi + j + s, Cr * pi + Ci * pr + Dr * hi + Di * hr);
                STORE(yr + j, Ar * ur - Ai * ui + Br * vr - Bi * vi);
                STORE(yi + j, Ar * ui + Ai * ur + Br * vi + Bi * vr);
                STORE(yr + j + s, Cr * ur - Ci * ui + Dr * vr - Di * vi);
                STORE(yi + j + s, Cr * ui + Ci * ur + Dr * vi + Di * vr);
                if (++count % FLUSH_EVERY == 0) FN(flush)(total, acc, 8);
            }
        }
        FN(flush)(total, acc, 8);
        for (int t = 0; t < 8; t++) k[t] = (REAL)FN(hsum)(total[t]);
        return;
    }
    /* acc 0,1: Σ x y* lane-wise; acc 2,3: Σ x (partner y)*. A lane with bit q = a gives k[a][a] from the
     * first and k[a][1-a] from the second. The update pairs lanes as in gate(). */
    const IVEC mask = FN(partner_mask)(s);
    VEC Pr, Pi, Qr, Qi;
    for (size_t l = 0; l < LANES; l++) {
        int high = (l & s) != 0;
        Pr[l] = high ? dr : ar; Pi[l] = high ? di : ai;
        Qr[l] = high ? cr : br; Qi[l] = high ? ci : bi;
    }
    for (size_t j = 0; j < dim; j += LANES) {
        const VEC pr = LOAD(xr + j), pi = LOAD(xi + j), ur = LOAD(yr + j), ui = LOAD(yi + j);
        const VEC hr = FN(partner)(pr, mask), hi = FN(partner)(pi, mask);
        const VEC vr = FN(partner)(ur, mask), vi = FN(partner)(ui, mask);
        acc[0] += pr * ur + pi * ui; acc[1] += pi * ur - pr * ui;
        acc[2] += pr * vr + pi * vi; acc[3] += pi * vr - pr * vi;
        STORE(xr + j, Pr * pr - Pi * pi + Qr * hr - Qi * hi);
        STORE(xi + j, Pr * pi + Pi * pr + Qr * hi + Qi * hr);
        STORE(yr + j, Pr * ur - Pi * ui + Qr * vr - Qi * vi);
        STORE(yi + j, Pr * ui + Pi * ur + Qr * vi + Qi * vr);
        if (++count % FLUSH_EVERY == 0) FN(flush)(total, acc, 8);
    }
    FN(flush)(total, acc, 8);
    double sums[2][4] = {{0}};
    for (size_t l = 0; l < LANES; l++) {
        int high = (l & s) != 0;
        for (int t = 0; t < 4; t++) sums[high][t] += total[t][l];
    }
    k[0] = (REAL)sums[0][0]; k[1] = (REAL)sums[0][1]; /* 00 */
    k[2] = (REAL)sums[0][2]; k[3] = (REAL)sums[0][3]; /* 01 */
    k[4] = (REAL)sums[1][2]; k[5] = (REAL)sums[1][3]; /* 10 */
    k[6] = (REAL)sums[1][0]; k[7] = (REAL)sums[1][1]; /* 11 */
}

/* undo_with_products for a real M, with only what real chains' gradients read: Re K01 - Re K10, written as
 * k = [0, 0, Re K01 - Re K10, 0, 0, 0, 0, 0] (P' = ±Y for every rotation of a real chain, and
 * Im Tr(±Y K) = ±(Re K01 - Re K10)). x, y ← Mᵀ x, Mᵀ y. */
static void FN(undo_real_with_products)(REAL *xr, REAL *xi, REAL *yr, REAL *yi, int n, int q, const REAL *m,
                                        REAL *k)
{
    const size_t dim = (size_t)1 << n, s = (size_t)1 << q;
    double total[1][LANES];
    VEC acc[1] = {FN(splat)(0)};
    memset(total, 0, sizeof(total));
    size_t count = 0;
    if (s >= LANES) { /* Mᵀ = [[a, c], [b, d]] */
        const VEC A = FN(splat)(m[0]), B = FN(splat)(m[4]), C = FN(splat)(m[2]), D = FN(splat)(m[6]);
        for (size_t block = 0; block < dim; block += 2 * s) {
            for (size_t j = block; j < block + s; j += LANES) {
                const VEC pr = LOAD(xr + j), pi = LOAD(xi + j), hr = LOAD(xr + j + s), hi = LOAD(xi + j + s);
                const VEC ur = LOAD(yr + j), ui = LOAD(yi + j), vr = LOAD(yr + j + s), vi = LOAD(yi + j + s);
                acc[0] += pr * vr + pi * vi - hr * ur - hi * ui;
                STORE(xr + j, A * pr + B * hr); STORE(xi + j, A * pi + B * hi);
                STORE(xr + j + s, C * pr + D * hr); STORE(xi + j + s, C * pi + D * hi);
                STORE(yr + j, A * ur + B * vr); STORE(yi + j, A * ui + B * vi);
                STORE(yr + j + s, C * ur + D * vr); STORE(yi + j + s, C * ui + D * vi);
                if (++count % FLUSH_EVERY == 0) FN(flush)(total, acc, 1);
            }
        }
    } else { /* lane with bit q = 0: +x·(partner y); bit 1: -x·(partner y) */
        const IVEC mask = FN(partner_mask)(s);
        VEC P, Q, sign;
        for (size_t l = 0; l < LANES; l++) {
            int high = (l & s) != 0;
            P[l] = high ? m[6] : m[0];
            Q[l] = high ? m[2] : m[4];
            sign[l] = high ? (REAL)-1 : (REAL)1;
        }
        for (size_t j = 0; j < dim; j += LANES) {
            const VEC pr = LOAD(xr + j), pi = LOAD(xi + j), ur = LOAD(yr + j), ui = LOAD(yi + j);
            const VEC hr = FN(partner)(pr, mask), hi = FN(partner)(pi, mask);
            const VEC vr = FN(partner)(ur, mask), vi = FN(partner)(ui, mask);
            acc[0] += sign * (pr * vr + pi * vi);
            STORE(xr + j, P * pr + Q * hr); STORE(xi + j, P * pi + Q * hi);
            STORE(yr + j, P * ur + Q * vr); STORE(yi + j, P * ui + Q * vi);
            if (++count % FLUSH_EVERY == 0) FN(flush)(total, acc, 1);
        }
    }
    FN(flush)(total, acc, 1);
    memset(k, 0, 8 * sizeof(REAL));
    k[2] = (REAL)FN(hsum)(total[0]);
}

/* rho = Σ x_a x_c* over the pairs of qubit q (the products of undo_with_products for y = x, half the work). */
static void FN(density)(const REAL *xr, const REAL *xi, int n, int q, REAL *rho)
{
    const size_t dim = (size_t)1 << n, s = (size_t)1 << q;
    double total[4][LANES];
    VEC acc[4];
    memset(total, 0, sizeof(total));
    for (int t = 0; t < 4; t++) acc[t] = FN(splat)(0);
    size_t count = 0;
    double p0 = 0, p1 = 0, cr = 0, ci = 0;
    if (s >= LANES) { /* acc: |a|², |c|², Re a c*, Im a c* */
        for (size_t block = 0; block < dim; block += 2 * s) {
            for (size_t j = block; j < block + s; j += LANES) {
                const VEC ar = LOAD(xr + j), ai = LOAD(xi + j), br = LOAD(xr + j + s), bi = LOAD(xi + j + s);
                acc[0] += ar * ar + ai * ai; acc[1] += br * br + bi * bi;
                acc[2] += ar * br + ai * bi; acc[3] += ai * br - ar * bi;
                if (++count % FLUSH_EVERY == 0) FN(flush)(total, acc, 4);
            }
        }
        FN(flush)(total, acc, 4);
        p0 = FN(hsum)(total[0]); p1 = FN(hsum)(total[1]); cr = FN(hsum)(total[2]); ci = FN(hsum)(total[3]);
    } else { /* acc 0: |x|² lane-wise; acc 2, 3: x (partner x)*, whose lanes with bit q = 0 sum to a c* */
        const IVEC mask = FN(partner_mask)(s);
        for (size_t j = 0; j < dim; j += LANES) {
            const VEC ar = LOAD(xr + j), ai = LOAD(xi + j);
            const VEC br = FN(partner)(ar, mask), bi = FN(partner)(ai, mask);
            acc[0] += ar * ar + ai * ai;
            acc[2] += ar * br + ai * bi; acc[3] += ai * br - ar * bi;
            if (++count % FLUSH_EVERY == 0) FN(flush)(total, acc, 4);
        }
        FN(flush)(total, acc, 4);
        for (size_t l = 0; l < LANES; l++) {
            if (l & s) {
                p1 += total[0][l];
            } else {
                p0 += total[0][l]; cr += total[2][l]; ci += total[3][l];
            }
        }
    }
    rho[0] = (REAL)p0; rho[1] = 0; rho[2] = (REAL)cr; rho[3] = (REAL)ci;
    rho[4] = (REAL)cr; rho[5] = (REAL)-ci; rho[6] = (REAL)p1; rho[7] = 0;
}

/* (re, im) ← phase ⊙ (re, im)[perm], or with conj_first: ← (phase* ⊙ (re, im))[perm]; either may be NULL. */
static void FN(permute)(REAL *re, REAL *im, size_t dim, const int64_t *perm, const REAL *phase, int conj_first,
                        REAL *tmp_re, REAL *tmp_im)
{
    if (phase && conj_first) {
        for (size_t i = 0; i < dim; i++) {
            REAL pr = phase[2 * i], pi = -phase[2 * i + 1], xr = re[i], xi = im[i];
            re[i] = pr * xr - pi * xi;
            im[i] = pr * xi + pi * xr;
        }
    }
    if (perm) {
        for (size_t i = 0; i < dim; i++) {
            tmp_re[i] = re[perm[i]];
            tmp_im[i] = im[perm[i]];
        }
        memcpy(re, tmp_re, dim * sizeof(REAL));
        memcpy(im, tmp_im, dim * sizeof(REAL));
    }
    if (phase && !conj_first) {
        for (size_t i = 0; i < dim; i++) {
            REAL pr = phase[2 * i], pi = phase[2 * i + 1], xr = re[i], xi = im[i];
            re[i] = pr * xr - pi * xi;
            im[i] = pr * xi + pi * xr;
        }
    }
}

/* ------------------------------------------------------------------------------------------------ diagonal */
/* The separable part of a diagonal, D(k) = Π_q (bit q of k ? d1[q] : d0[q]) (complex d0, d1: 2 reals each),
 * into the planes (dr, di), by doubling: about one complex multiply per amplitude. */
static void FN(diag_build)(REAL *dr, REAL *di, int n, const double *d0, const double *d1)
{
    double cr = 1, ci = 0; /* Π over the vector bits of d0 */
    for (int q = LOG_LANES; q < n; q++) {
        double r = cr * d0[2 * q] - ci * d0[2 * q + 1], i = cr * d0[2 * q + 1] + ci * d0[2 * q];
        cr = r; ci = i;
    }
    for (size_t l = 0; l < LANES; l++) {
        double r = cr, i = ci;
        for (int q = 0; q < LOG_LANES; q++) {
            const double *d = ((l >> q) & 1) ? d1 : d0;
            double nr = r * d[2 * q] - i * d[2 * q + 1], ni = r * d[2 * q + 1] + i * d[2 * q];
            r = nr; i = ni;
        }
        dr[l] = (REAL)r; di[l] = (REAL)i;
    }
    for (int q = LOG_LANES; q < n; q++) {
        const size_t s = (size_t)1 << q;
        /* ratio d1/d0 = d1·conj(d0) (|d0| = 1) */
        const double rr = d1[2 * q] * d0[2 * q] + d1[2 * q + 1] * d0[2 * q + 1];
        const double ri = d1[2 * q + 1] * d0[2 * q] - d1[2 * q] * d0[2 * q + 1];
        const VEC Rr = FN(splat)((REAL)rr), Ri = FN(splat)((REAL)ri);
        for (size_t j = 0; j < s; j += LANES) {
            const VEC ur = LOAD(dr + j), ui = LOAD(di + j);
            STORE(dr + j + s, Rr * ur - Ri * ui);
            STORE(di + j + s, Rr * ui + Ri * ur);
        }
    }
}

/* One diagonal term: the cos/sin of its half angle, its mask split into vector bits and lane signs. */
typedef struct {
    REAL c, s;
    uint64_t high;
    VEC lanes;
} FN(zterm);

/* ψ ← F ⊙ ψ (conj: F*) with F = D·Π_t (c_t - i s_t σ_t) (D: the separable planes, or NULL for 1); with w, also
 * w ← Im(conj(g) ψ) of the pair (ψ, g) — unchanged by F — and g ← F* ⊙ g. */
static void FN(diag_apply)(REAL *xr, REAL *xi, REAL *gr, REAL *gi, int n, const REAL *dr, const REAL *di,
                           const FN(zterm) *terms, int n_terms, int conj, REAL *w)
{
    const size_t dim = (size_t)1 << n;
    const VEC one = FN(splat)(1), zero = FN(splat)(0);
    const REAL sgn = conj ? (REAL)-1 : (REAL)1;
    for (size_t j = 0; j < dim; j += LANES) {
        VEC fr = dr ? LOAD(dr + j) : one, fi = dr ? LOAD(di + j) : zero;
        for (int t = 0; t < n_terms; t++) {
            const VEC sigma = parity64(j & terms[t].high) ? -terms[t].lanes : terms[t].lanes;
            const VEC c = FN(splat)(terms[t].c), s = sigma * terms[t].s;
            const VEC r = c * fr + s * fi, i = c * fi - s * fr;
            fr = r; fi = i;
        }
        fi = fi * sgn;
        const VEC ur = LOAD(xr + j), ui = LOAD(xi + j);
        if (w) {
            const VEC vr = LOAD(gr + j), vi = LOAD(gi + j);
            STORE(w + j, vr * ui - vi * ur);
            STORE(gr + j, fr * vr - fi * vi); STORE(gi + j, fr * vi + fi * vr);
        }
        STORE(xr + j, fr * ur - fi * ui); STORE(xi + j, fr * ui + fi * ur);
    }
}

/* Σ_k σ(k)·w_k for σ = (-1)^{|k ∧ mask|}. */
static double FN(signed_sum)(const REAL *w, int n, uint64_t high, VEC lanes)
{
    const size_t dim = (size_t)1 << n;
    double total[1][LANES];
    VEC acc[1] = {FN(splat)(0)};
    memset(total, 0, sizeof(total));
    size_t count = 0;
    for (size_t j = 0; j < dim; j += LANES) {
        acc[0] += (parity64(j & high) ? -lanes : lanes) * LOAD(w + j);
        if (++count % FLUSH_EVERY == 0) FN(flush)(total, acc, 1);
    }
    FN(flush)(total, acc, 1);
    return FN(hsum)(total[0]);
}

/* out[q] = Σ_k (-1)^{bit q of k}·w_k for every qubit, by folding the upper half of each bit onto the lower
 * (destroys w). */
static void FN(marginals)(REAL *w, int n, double *out)
{
    double upper[64];
    for (int q = n - 1; q >= LOG_LANES; q--) {
        const size_t s = (size_t)1 << q;
        double total[1][LANES];
        VEC acc[1] = {FN(splat)(0)};
        memset(total, 0, sizeof(total));
        size_t count = 0;
        for (size_t j = 0; j < s; j += LANES) {
            const VEC hi = LOAD(w + j + s);
            acc[0] += hi;
            STORE(w + j, LOAD(w + j) + hi);
            if (++count % FLUSH_EVERY == 0) FN(flush)(total, acc, 1);
        }
        FN(flush)(total, acc, 1);
        upper[q] = FN(hsum)(total[0]);
    }
    double all = 0;
    for (size_t l = 0; l < LANES; l++) all += w[l];
    for (int q = 0; q < n; q++) {
        double up = 0;
        if (q >= LOG_LANES) {
            up = upper[q];
        } else {
            for (size_t l = 0; l < LANES; l++)
                if ((l >> q) & 1) up += w[l];
        }
        out[q] = all - 2 * up;
    }
}

/* ------------------------------------------------------------------------------------------------ Paulis */
/* ⟨ψ|P|ψ⟩ for P = i^y X^x Z^z: Re(i^y Σ_k σ_z(k) conj(ψ_{k⊕x}) ψ_k). */
static double FN(pauli_expect)(const REAL *xr, const REAL *xi, int n, uint64_t x, uint64_t z, int y)
{
    const size_t dim = (size_t)1 << n;
    const size_t xh = (size_t)(x & ~(uint64_t)(LANES - 1));
    const IVEC mask = FN(partner_mask)((size_t)(x & (LANES - 1)));
    const VEC lanes = FN(lane_signs)(z);
    double total[2][LANES];
    VEC acc[2] = {FN(splat)(0), FN(splat)(0)};
    memset(total, 0, sizeof(total));
    size_t count = 0;
    for (size_t j = 0; j < dim; j += LANES) {
        const VEC sigma = parity64(j & z) ? -lanes : lanes;
        const VEC ur = LOAD(xr + j), ui = LOAD(xi + j);
        const VEC pr = FN(partner)(LOAD(xr + (j ^ xh)), mask), pi = FN(partner)(LOAD(xi + (j ^ xh)), mask);
        acc[0] += sigma * (pr * ur + pi * ui);
        acc[1] += sigma * (pr * ui - pi * ur);
        if (++count % FLUSH_EVERY == 0) FN(flush)(total, acc, 2);
    }
    FN(flush)(total, acc, 2);
    const double re = FN(hsum)(total[0]), im = FN(hsum)(total[1]);
    switch (y & 3) {
    case 0: return re;
    case 1: return -im;
    case 2: return -re;
    default: return im;
    }
}

/* o ← o + α·P ψ for P = i^y X^x Z^z and a real α: (Pψ)_j = i^y σ_z(j ⊕ x) ψ_{j⊕x}. */
static void FN(pauli_accumulate)(const REAL *xr, const REAL *xi, REAL *or_, REAL *oi, int n, uint64_t x,
                                 uint64_t z, int y, double alpha)
{
    const size_t dim = (size_t)1 << n;
    const size_t xh = (size_t)(x & ~(uint64_t)(LANES - 1));
    const IVEC mask = FN(partner_mask)((size_t)(x & (LANES - 1)));
    const VEC lanes = FN(lane_signs)(z);
    /* σ_z(j ⊕ x) = σ_z(j)·σ_z(x); coefficient α·i^y·σ_z(x) = cr + i·ci */
    const double a = parity64(x & z) ? -alpha : alpha;
    const REAL cr = (REAL)((y & 1) ? 0 : ((y & 2) ? -a : a)), ci = (REAL)((y & 1) ? ((y & 2) ? -a : a) : 0);
    for (size_t j = 0; j < dim; j += LANES) {
        const VEC sigma = parity64(j & z) ? -lanes : lanes;
        const VEC pr = FN(partner)(LOAD(xr + (j ^ xh)), mask), pi = FN(partner)(LOAD(xi + (j ^ xh)), mask);
        STORE(or_ + j, LOAD(or_ + j) + sigma * (cr * pr - ci * pi));
        STORE(oi + j, LOAD(oi + j) + sigma * (cr * pi + ci * pr));
    }
}

/* ------------------------------------------------------------------------------------------------ op bank */
/* sin and cos of h[i], i < count (sincos4 of native.c; libm where |h| > 1e6). Rounded to float, they are
 * unit-modulus to float precision, which keeps the reversible backward's round-off at plain autograd's. */
static void FN(sincos)(const double *h, REAL *sn, REAL *cs, int count)
{
    int i = 0;
    for (; i + 4 <= count; i += 4) {
        d4 v, s, c;
        memcpy(&v, h + i, sizeof(v));
        sincos4(v, &s, &c);
        for (int l = 0; l < 4; l++) {
            sn[i + l] = (REAL)s[l];
            cs[i + l] = (REAL)c[l];
        }
    }
    if (i < count) {
        d4 v = {0, 0, 0, 0}, s, c;
        for (int l = 0; i + l < count; l++) v[l] = h[i + l];
        sincos4(v, &s, &c);
        for (int l = 0; i + l < count; l++) {
            sn[i + l] = (REAL)s[l];
            cs[i + l] = (REAL)c[l];
        }
    }
    for (i = 0; i < count; i++) {
        if (fabs(h[i]) > 1e6) {
            sn[i] = (REAL)sin(h[i]);
            cs[i] = (REAL)cos(h[i]);
        }
    }
}

/* c ← a·b for row-major 2×2 complex matrices (8 reals each; c must not alias a or b). */
static inline void FN(mul2)(const REAL *a, const REAL *b, REAL *c)
{
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            const REAL *x = a + 4 * i, *y0 = b + 2 * k, *y1 = b + 4 + 2 * k;
            c[4 * i + 2 * k] = x[0] * y0[0] - x[1] * y0[1] + x[2] * y1[0] - x[3] * y1[1];
            c[4 * i + 2 * k + 1] = x[0] * y0[1] + x[1] * y0[0] + x[2] * y1[1] + x[3] * y1[0];
        }
}

/* The scratch of one sample's tables: angles' half values, sin/cos, the rotations' matrices, every chain's
 * fused matrix, K blocks and the rotations' gradients. */
typedef struct {
    double *h, *grad_rot, *d0, *d1, *marg;
    REAL *sn, *cs, *bank, *mats, *k, *weights;
} FN(tables);

static inline const REAL *FN(op)(const Plan *p, const FN(tables) *tb, int index)
{
    return index < p->n_rot ? tb->bank + 8 * (size_t)index : (const REAL *)p->consts + 8 * (size_t)(index - p->n_rot);
}

static void FN(bank)(const Plan *p, const REAL *theta, FN(tables) *tb)
{
    for (int r = 0; r < p->n_rot; r++) {
        double a = p->rot_offset[r];
        for (int e = p->rot_ptr[r]; e < p->rot_ptr[r + 1]; e++) a += p->rot_coef[e] * (double)theta[p->rot_param[e]];
        tb->h[r] = 0.5 * a;
    }
    FN(sincos)(tb->h, tb->sn, tb->cs, p->n_rot);
    for (int r = 0; r < p->n_rot; r++) {
        REAL *m = tb->bank + 8 * (size_t)r;
        const REAL c = tb->cs[r], s = tb->sn[r];
        memset(m, 0, 8 * sizeof(REAL));
        m[0] = c; m[6] = c;
        switch (p->rot_axis[r]) {
        case 0: m[3] = -s; m[5] = -s; break;  /* -i s X */
        case 1: m[2] = -s; m[4] = s; break;   /* -i s Y = s [[0, -1], [1, 0]] */
        default: m[1] = -s; m[7] = s; break;  /* -i s Z */
        }
    }
}

static void FN(fuse)(const Plan *p, FN(tables) *tb)
{
    const int rows = p->n_seg * p->n, identity = p->n_ops - 1;
    for (int row = 0; row < rows; row++) {
        if (!(p->chain_flags[row] & 1)) continue;
        const int32_t *chain = p->table + (size_t)row * p->width;
        REAL acc[8], tmp[8];
        memcpy(acc, FN(op)(p, tb, chain[0]), sizeof(acc));
        for (int k = 1; k < p->width && chain[k] != identity; k++) {
            FN(mul2)(FN(op)(p, tb, chain[k]), acc, tmp);
            memcpy(acc, tmp, sizeof(acc));
        }
        memcpy(tb->mats + 8 * (size_t)row, acc, sizeof(acc));
    }
}

static void FN(diag_factors)(const Plan *p, const FN(tables) *tb, int s, double *d0, double *d1, FN(zterm) *terms,
                             int *n_multi)
{
    const int first = p->diag_ptr[s], single = first + p->diag_single[s], last = p->diag_ptr[s + 1];
    for (int q = 0; q < p->n; q++) {
        d0[2 * q] = 1; d0[2 * q + 1] = 0; d1[2 * q] = 1; d1[2 * q + 1] = 0;
    }
    for (int t = first; t < single; t++) {
        const int q = __builtin_ctzll((uint64_t)p->diag_mask[t]);
        const double c = tb->cs[p->diag_rot[t]], sn = tb->sn[p->diag_rot[t]];
        /* d0 *= c - i s, d1 *= c + i s */
        double r = d0[2 * q] * c + d0[2 * q + 1] * sn, i = d0[2 * q + 1] * c - d0[2 * q] * sn;
        d0[2 * q] = r; d0[2 * q + 1] = i;
        r = d1[2 * q] * c - d1[2 * q + 1] * sn; i = d1[2 * q + 1] * c + d1[2 * q] * sn;
        d1[2 * q] = r; d1[2 * q + 1] = i;
    }
    *n_multi = last - single;
    for (int t = single; t < last; t++) {
        FN(zterm) *z = terms + (t - single);
        z->c = tb->cs[p->diag_rot[t]];
        z->s = tb->sn[p->diag_rot[t]];
        z->high = (uint64_t)p->diag_mask[t] & ~(uint64_t)(LANES - 1);
        z->lanes = FN(lane_signs)((uint64_t)p->diag_mask[t]);
    }
}

/* ------------------------------------------------------------------------------------------------ scratch */
typedef struct {
    REAL *planes; /* count · dim */
    FN(tables) tb;
    FN(zterm) *terms;
} FN(work);

static size_t FN(align)(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

static FN(work) FN(workspace)(const Plan *p, int planes)
{
    const size_t dim = (size_t)1 << p->n, rows = (size_t)p->n_seg * p->n, rot = (size_t)p->n_rot + 1;
    const size_t sizes[] = {
        planes * dim * sizeof(REAL),         /* planes */
        rot * sizeof(double),                /* h */
        rot * sizeof(double),                /* grad_rot */
        2 * (size_t)p->n * sizeof(double),   /* d0 */
        2 * (size_t)p->n * sizeof(double),   /* d1 */
        (size_t)p->n * sizeof(double),       /* marg */
        rot * sizeof(REAL),                  /* sn */
        rot * sizeof(REAL),                  /* cs */
        8 * rot * sizeof(REAL),              /* bank */
        8 * rows * sizeof(REAL),             /* mats */
        8 * rows * sizeof(REAL),             /* k */
        8 * (size_t)p->n * sizeof(REAL),     /* weights */
    };
    size_t max_terms = 1;
    for (int s = 0; s < p->n_seg; s++) {
        size_t t = (size_t)(p->diag_ptr[s + 1] - p->diag_ptr[s]);
        if (t > max_terms) max_terms = t;
    }
    const size_t count = sizeof(sizes) / sizeof(sizes[0]);
    size_t total = 0;
    for (size_t i = 0; i < count; i++) total += FN(align)(sizes[i]);
    total += FN(align)(max_terms * sizeof(FN(zterm)));
    char *base = (char *)scratch(total);
    char *at = base;
    FN(work) w;
#define TAKE(field, type, i) (field = (type *)at, at += FN(align)(sizes[i]))
    TAKE(w.planes, REAL, 0);
    TAKE(w.tb.h, double, 1);
    TAKE(w.tb.grad_rot, double, 2);
    TAKE(w.tb.d0, double, 3);
    TAKE(w.tb.d1, double, 4);
    TAKE(w.tb.marg, double, 5);
    TAKE(w.tb.sn, REAL, 6);
    TAKE(w.tb.cs, REAL, 7);
    TAKE(w.tb.bank, REAL, 8);
    TAKE(w.tb.mats, REAL, 9);
    TAKE(w.tb.k, REAL, 10);
    TAKE(w.tb.weights, REAL, 11);
#undef TAKE
    w.terms = (FN(zterm) *)at;
    return w;
}

/* ------------------------------------------------------------------------------------------------ readouts */
static void FN(readouts_of)(const Plan *p, const REAL *re, const REAL *im, REAL *rho, REAL *z)
{
    const int n = p->n, R = p->n_read;
    double out[R > 0 ? R : 1], terms[p->n_terms > 0 ? p->n_terms : 1];
    for (int k = 0; k < R; k++) out[k] = 0;
    for (int q = 0; q < n; q++)
        if (p->rho_qubits[q]) FN(density)(re, im, n, q, rho + 8 * q);
    for (int i = 0; i < p->n_rz; i++) out[p->rz_to[i]] += p->rz_coef[i] * (double)rho[p->rz_from[i]];
    for (int t = 0; t < p->n_terms; t++)
        terms[t] = FN(pauli_expect)(re, im, n, (uint64_t)p->term_x[t], (uint64_t)p->term_z[t], p->term_y[t]);
    for (int i = 0; i < p->n_tz; i++) out[p->tz_to[i]] += p->tz_coef[i] * terms[p->tz_from[i]];
    for (int k = 0; k < R; k++) z[k] = (REAL)out[k];
}

/* (or, oi) += ∂L/∂ψ of L = Σ_k gz_k z_k at the state (re, im): Σ_q W_q ψ + Σ_t 2 w_t P_t ψ. */
static void FN(readouts_vjp_of)(const Plan *p, const REAL *re, const REAL *im, const REAL *gz, REAL *or_, REAL *oi,
                                REAL *weights)
{
    const int n = p->n;
    double w[8 * n], terms[p->n_terms > 0 ? p->n_terms : 1];
    for (int e = 0; e < 8 * n; e++) w[e] = 0;
    for (int i = 0; i < p->n_zw; i++) w[p->zw_to[i]] += p->zw_coef[i] * (double)gz[p->zw_from[i]];
    for (int q = 0; q < n; q++) {
        if (!p->rho_qubits[q]) continue;
        for (int e = 0; e < 8; e++) weights[e] = (REAL)w[8 * q + e];
        FN(gate)(re, im, or_, oi, n, q, weights, 1);
    }
    for (int t = 0; t < p->n_terms; t++) terms[t] = 0;
    for (int i = 0; i < p->n_tz; i++) terms[p->tz_from[i]] += p->tz_coef[i] * (double)gz[p->tz_to[i]];
    for (int t = 0; t < p->n_terms; t++)
        if (terms[t] != 0)
            FN(pauli_accumulate)(re, im, or_, oi, n, (uint64_t)p->term_x[t], (uint64_t)p->term_z[t], p->term_y[t],
                                 2 * terms[t]);
}

#include "native_lanes.h"

/* ------------------------------------------------------------------------------------------------ entries */
/* out[b] = V(θ_b) in[b] (the global phase is the caller's) and, with z, its readouts z[b]. in and out may be
 * the same buffer. */
void FN(qrnn_step)(const Plan *p, const REAL *theta, const REAL *in, REAL *out, REAL *z, int64_t b0, int64_t b1)
{
    if (p->lanes) {
        FN(lanes_step)(p, theta, in, out, z, b0, b1);
        return;
    }
    const int n = p->n;
    const size_t dim = (size_t)1 << n;
    FN(work) w = FN(workspace)(p, 6);
    REAL *re = w.planes, *im = re + dim, *tre = im + dim, *tim = tre + dim, *dr = tim + dim, *di = dr + dim;
    FN(tables) *tb = &w.tb;
    for (int64_t b = b0; b < b1; b++) {
        FN(bank)(p, theta + (size_t)b * p->n_params, tb);
        FN(fuse)(p, tb);
        FN(to_planar)(in + 2 * dim * b, re, im, dim);
        for (int s = 0; s < p->n_seg; s++) {
            for (int q = 0; q < n; q++) {
                const int row = s * n + q, flags = p->chain_flags[row];
                if (!(flags & 1)) continue;
                if (flags & 2)
                    FN(gate_real)(re, im, n, q, tb->mats + 8 * (size_t)row);
                else
                    FN(gate)(re, im, re, im, n, q, tb->mats + 8 * (size_t)row, 0);
            }
            if (p->diag_ptr[s + 1] > p->diag_ptr[s]) {
                int n_multi;
                FN(diag_factors)(p, tb, s, tb->d0, tb->d1, w.terms, &n_multi);
                const int separable = p->diag_single[s] > 0;
                if (separable) FN(diag_build)(dr, di, n, tb->d0, tb->d1);
                FN(diag_apply)(re, im, NULL, NULL, n, separable ? dr : NULL, separable ? di : NULL, w.terms, n_multi,
                               0, NULL);
            }
            if (p->perm[s] || p->phase[s])
                FN(permute)(re, im, dim, p->perm[s], (const REAL *)p->phase[s], 0, tre, tim);
        }
        if (z) FN(readouts_of)(p, re, im, tb->weights, z + (size_t)b * p->n_read);
        FN(from_planar)(re, im, out + 2 * dim * b, dim);
    }
}

/* The reversible backward of qrnn_step: psi (the step's output) and g (∂L/∂ψ in torch's convention; NULL:
 * zero) walk back through V† into psi_out and g_out; gz (NULL: none) are the gradients of the step's
 * readouts, added to g first. grad[b] = ∂L/∂θ_b. */
void FN(qrnn_step_back)(const Plan *p, const REAL *theta, const REAL *psi, const REAL *g, const REAL *gz,
                        REAL *psi_out, REAL *g_out, REAL *grad, int64_t b0, int64_t b1)
{
    if (p->lanes) {
        FN(lanes_step_back)(p, theta, psi, g, gz, psi_out, g_out, grad, b0, b1);
        return;
    }
    const int n = p->n;
    const size_t dim = (size_t)1 << n;
    FN(work) w = FN(workspace)(p, 9);
    REAL *xr = w.planes, *xi = xr + dim, *gr = xi + dim, *gi = gr + dim, *tre = gi + dim, *tim = tre + dim;
    REAL *dr = tim + dim, *di = dr + dim, *wp = di + dim;
    FN(tables) *tb = &w.tb;
    const REAL *pauli[3] = {(const REAL[8]){0, 0, 1, 0, 1, 0, 0, 0}, (const REAL[8]){0, 0, 0, -1, 0, 1, 0, 0},
                            (const REAL[8]){1, 0, 0, 0, 0, 0, -1, 0}};
    for (int64_t b = b0; b < b1; b++) {
        const REAL *th = theta + (size_t)b * p->n_params;
        FN(bank)(p, th, tb);
        FN(fuse)(p, tb);
        for (int r = 0; r < p->n_rot; r++) tb->grad_rot[r] = 0;
        FN(to_planar)(psi + 2 * dim * b, xr, xi, dim);
        if (g) {
            FN(to_planar)(g + 2 * dim * b, gr, gi, dim);
        } else {
            memset(gr, 0, dim * sizeof(REAL));
            memset(gi, 0, dim * sizeof(REAL));
        }
        if (gz) FN(readouts_vjp_of)(p, xr, xi, gz + (size_t)b * p->n_read, gr, gi, tb->weights);
        for (int s = p->n_seg - 1; s >= 0; s--) {
            if (p->inverse_perm[s] || p->phase[s]) {
                FN(permute)(xr, xi, dim, p->inverse_perm[s], (const REAL *)p->phase[s], 1, tre, tim);
                FN(permute)(gr, gi, dim, p->inverse_perm[s], (const REAL *)p->phase[s], 1, tre, tim);
            }
            const int first = p->diag_ptr[s], last = p->diag_ptr[s + 1];
            if (last > first) {
                int n_multi;
                FN(diag_factors)(p, tb, s, tb->d0, tb->d1, w.terms, &n_multi);
                const int separable = p->diag_single[s] > 0;
                if (separable) FN(diag_build)(dr, di, n, tb->d0, tb->d1);
                FN(diag_apply)(xr, xi, gr, gi, n, separable ? dr : NULL, separable ? di : NULL, w.terms, n_multi, 1, wp);
                const int single = first + p->diag_single[s];
                for (int t = single; t < last; t++)
                    tb->grad_rot[p->diag_rot[t]] += 0.5 * FN(signed_sum)(wp, n, w.terms[t - single].high,
                                                                         w.terms[t - single].lanes);
                if (separable) {
                    FN(marginals)(wp, n, tb->marg);
                    for (int t = first; t < single; t++)
                        tb->grad_rot[p->diag_rot[t]] += 0.5 * tb->marg[__builtin_ctzll((uint64_t)p->diag_mask[t])];
                }
            }
            for (int q = 0; q < n; q++) {
                const int row = s * n + q, flags = p->chain_flags[row];
                if (!(flags & 1)) continue;
                const REAL *m = tb->mats + 8 * (size_t)row;
                REAL *k = tb->k + 8 * (size_t)row;
                if ((flags & 6) == 6) {
                    FN(undo_real_with_products)(xr, xi, gr, gi, n, q, m, k);
                } else if (flags & 4) {
                    FN(undo_with_products)(xr, xi, gr, gi, n, q, m, k);
                } else {
                    REAL d[8];
                    FN(dagger)(m, d);
                    FN(gate)(xr, xi, xr, xi, n, q, d, 0);
                    FN(gate)(gr, gi, gr, gi, n, q, d, 0);
                }
            }
        }
        /* ∂L/∂φ_r = ½ Im Tr(S P S† K) for every chain rotation: S the gates after it in its chain */
        const int identity = p->n_ops - 1;
        for (int i = 0; i < p->n_chain_rot; i++) {
            const int row = p->grad_row[i], r = p->grad_rot[i];
            const int32_t *chain = p->table + (size_t)row * p->width;
            REAL S[8] = {1, 0, 0, 0, 0, 0, 1, 0}, tmp[8], SP[8], Sd[8], Pp[8];
            for (int k = p->grad_pos[i] + 1; k < p->width && chain[k] != identity; k++) {
                FN(mul2)(FN(op)(p, tb, chain[k]), S, tmp);
                memcpy(S, tmp, sizeof(S));
            }
            FN(dagger)(S, Sd);
            FN(mul2)(S, pauli[p->rot_axis[r]], SP);
            FN(mul2)(SP, Sd, Pp);
            const REAL *k = tb->k + 8 * (size_t)row;
            double im = 0; /* Im Tr(P' K) = Im Σ_ac P'_ac K_ca */
            for (int a = 0; a < 2; a++)
                for (int c = 0; c < 2; c++) {
                    const REAL *pp = Pp + 4 * a + 2 * c, *kk = k + 4 * c + 2 * a;
                    im += (double)pp[0] * kk[1] + (double)pp[1] * kk[0];
                }
            tb->grad_rot[r] += 0.5 * im;
        }
        REAL *out = grad + (size_t)b * p->n_params;
        for (int j = 0; j < p->n_params; j++) out[j] = 0;
        for (int r = 0; r < p->n_rot; r++)
            for (int e = p->rot_ptr[r]; e < p->rot_ptr[r + 1]; e++)
                out[p->rot_param[e]] += (REAL)(p->rot_coef[e] * tb->grad_rot[r]);
        FN(from_planar)(xr, xi, psi_out + 2 * dim * b, dim);
        FN(from_planar)(gr, gi, g_out + 2 * dim * b, dim);
    }
}

/* z[b] = the readouts of psi[b]. */
void FN(qrnn_readouts)(const Plan *p, const REAL *psi, REAL *z, int64_t b0, int64_t b1)
{
    if (p->lanes) {
        FN(lanes_readouts_only)(p, psi, z, b0, b1);
        return;
    }
    const size_t dim = (size_t)1 << p->n;
    FN(work) w = FN(workspace)(p, 2);
    REAL *re = w.planes, *im = re + dim;
    for (int64_t b = b0; b < b1; b++) {
        FN(to_planar)(psi + 2 * dim * b, re, im, dim);
        FN(readouts_of)(p, re, im, w.tb.weights, z + (size_t)b * p->n_read);
    }
}

/* out[b] = ∂L/∂ψ of L = Σ_k gz[b, k] z_k(psi[b]). */
void FN(qrnn_readouts_vjp)(const Plan *p, const REAL *psi, const REAL *gz, REAL *out, int64_t b0, int64_t b1)
{
    if (p->lanes) {
        FN(lanes_readouts_vjp_only)(p, psi, gz, out, b0, b1);
        return;
    }
    const size_t dim = (size_t)1 << p->n;
    FN(work) w = FN(workspace)(p, 4);
    REAL *re = w.planes, *im = re + dim, *o_r = im + dim, *o_i = o_r + dim;
    for (int64_t b = b0; b < b1; b++) {
        FN(to_planar)(psi + 2 * dim * b, re, im, dim);
        memset(o_r, 0, dim * sizeof(REAL));
        memset(o_i, 0, dim * sizeof(REAL));
        FN(readouts_vjp_of)(p, re, im, gz + (size_t)b * p->n_read, o_r, o_i, w.tb.weights);
        FN(from_planar)(o_r, o_i, out + 2 * dim * b, dim);
    }
}

#undef VEC
#undef IVEC
#undef LANES
#undef LOG_LANES
#undef LOAD
#undef STORE
#undef FLUSH_EVERY
