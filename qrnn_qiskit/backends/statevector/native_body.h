/* Kernels of native.c for one real type: native.c includes this file twice, with REAL = float (complex64
 * states, FN(name) = name_f32) and REAL = double (complex128 states, name_f64).
 *
 * Layout. States arrive as interleaved complex numbers [B, 2^n] (index bit q = qubit q, Qiskit's order).
 * Each sample is copied into planar form (a real plane and an imaginary plane, in per-thread scratch that
 * stays in cache for n ≤ 12), worked on there with 32-byte vectors of LANES reals, and copied back. A gate
 * on qubit q with 2^q ≥ LANES pairs whole vectors; on a lower qubit it pairs lanes inside one vector (a
 * shuffle), so every qubit costs the same. 2×2 matrices are row-major, 8 reals: m00 m01 m10 m11 (re, im).
 * Every function works on the samples [b0, b1) so that callers can split a batch across threads.
 */

typedef REAL FN(vec) __attribute__((vector_size(VBYTES), aligned(sizeof(REAL))));
typedef ITYPE FN(ivec) __attribute__((vector_size(VBYTES)));
#define VEC FN(vec)
#define IVEC FN(ivec)
#define LANES ((size_t)(VBYTES / sizeof(REAL)))
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

/* total[t] += acc[t] lane by lane and acc[t] = 0, for t < k: REAL partial sums stay FLUSH_EVERY vectors short and
 * the running totals are double. */
static inline void FN(flush)(double total[][LANES], VEC *acc, int k)
{
    for (int t = 0; t < k; t++) {
        for (size_t l = 0; l < LANES; l++) total[t][l] += acc[t][l];
        acc[t] = FN(splat)(0);
    }
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
        for (int t = 0; t < 8; t++) {
            double sum = 0;
            for (size_t l = 0; l < LANES; l++) sum += total[t][l];
            k[t] = (REAL)sum;
        }
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
        for (size_t l = 0; l < LANES; l++) {
            p0 += total[0][l]; p1 += total[1][l]; cr += total[2][l]; ci += total[3][l];
        }
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

/* out[b] = U(θ_b) in[b]: per segment s, every qubit's fused 2×2 (mats[b, s, q], when has_mats[s]), then
 * the segment's signed permutation ψ ← phase ⊙ ψ[perm]. With rho, also every qubit's reduced density matrix
 * rho[b, q] = Σ ψ_a ψ_c* of the output. Scratch: 4·2^n reals. in and out may be the same buffer. */
void FN(qrnn_forward)(const REAL *in, REAL *out, int64_t b0, int64_t b1, int n, int n_seg, const REAL *mats,
                      const uint8_t *has_mats, const int64_t *const *perms, const REAL *const *phases,
                      REAL *rho, REAL *scratch)
{
    const size_t dim = (size_t)1 << n;
    REAL *re = scratch, *im = scratch + dim, *tre = scratch + 2 * dim, *tim = scratch + 3 * dim;
    for (int64_t b = b0; b < b1; b++) {
        FN(to_planar)(in + 2 * dim * b, re, im, dim);
        for (int s = 0; s < n_seg; s++) {
            if (has_mats[s])
                for (int q = 0; q < n; q++)
                    FN(gate)(re, im, re, im, n, q, mats + 8 * (((size_t)b * n_seg + s) * n + q), 0);
            if (perms[s] || phases[s]) FN(permute)(re, im, dim, perms[s], phases[s], 0, tre, tim);
        }
        if (rho)
            for (int q = 0; q < n; q++) FN(density)(re, im, n, q, rho + 8 * ((size_t)b * n + q));
        FN(from_planar)(re, im, out + 2 * dim * b, dim);
    }
}

/* The reversible backward of qrnn_forward: psi (the step's output) and g (∂L/∂ψ in torch's convention;
 * NULL: zero) walk back through U† into psi_out and g_out. With W, first g ← g + Σ_q W[b, q] on qubit q of
 * ψ (the gradient of the readouts). Before a segment's single-qubit layer is undone, K[b, s, q] = Σ ψ_a g_c*
 * over qubit q's pairs is written (other qubits' gates leave it unchanged); the caller turns it into ∂L/∂θ.
 * Scratch: 6·2^n reals. */
void FN(qrnn_backward)(const REAL *psi, const REAL *g, REAL *psi_out, REAL *g_out, int64_t b0, int64_t b1,
                       int n, int n_seg, const REAL *mats, const uint8_t *has_mats,
                       const int64_t *const *inverse_perms, const REAL *const *phases, const REAL *W, REAL *K,
                       REAL *scratch)
{
    const size_t dim = (size_t)1 << n;
    REAL *xr = scratch, *xi = scratch + dim, *gr = scratch + 2 * dim, *gi = scratch + 3 * dim;
    REAL *tre = scratch + 4 * dim, *tim = scratch + 5 * dim;
    for (int64_t b = b0; b < b1; b++) {
        FN(to_planar)(psi + 2 * dim * b, xr, xi, dim);
        if (g) {
            FN(to_planar)(g + 2 * dim * b, gr, gi, dim);
        } else {
            memset(gr, 0, dim * sizeof(REAL));
            memset(gi, 0, dim * sizeof(REAL));
        }
        if (W)
            for (int q = 0; q < n; q++) FN(gate)(xr, xi, gr, gi, n, q, W + 8 * ((size_t)b * n + q), 1);
        for (int s = n_seg - 1; s >= 0; s--) {
            if (inverse_perms[s] || phases[s]) {
                FN(permute)(xr, xi, dim, inverse_perms[s], phases[s], 1, tre, tim);
                FN(permute)(gr, gi, dim, inverse_perms[s], phases[s], 1, tre, tim);
            }
            if (!has_mats[s]) continue;
            for (int q = 0; q < n; q++) {
                const size_t at = 8 * (((size_t)b * n_seg + s) * n + q);
                FN(undo_with_products)(xr, xi, gr, gi, n, q, mats + at, K + at);
            }
        }
        FN(from_planar)(xr, xi, psi_out + 2 * dim * b, dim);
        FN(from_planar)(gr, gi, g_out + 2 * dim * b, dim);
    }
}

/* rho[b, q] = Σ ψ_a ψ_c* over the pairs of qubit q. Scratch: 2·2^n reals. */
void FN(qrnn_rdm1)(const REAL *psi, int64_t b0, int64_t b1, int n, REAL *rho, REAL *scratch)
{
    const size_t dim = (size_t)1 << n;
    REAL *re = scratch, *im = scratch + dim;
    for (int64_t b = b0; b < b1; b++) {
        FN(to_planar)(psi + 2 * dim * b, re, im, dim);
        for (int q = 0; q < n; q++) FN(density)(re, im, n, q, rho + 8 * ((size_t)b * n + q));
    }
}

/* out[b] = Σ_q W[b, q] on qubit q of psi[b]. Scratch: 4·2^n reals. */
void FN(qrnn_apply_sum)(const REAL *psi, REAL *out, int64_t b0, int64_t b1, int n, const REAL *W, REAL *scratch)
{
    const size_t dim = (size_t)1 << n;
    REAL *xr = scratch, *xi = scratch + dim, *o_r = scratch + 2 * dim, *o_i = scratch + 3 * dim;
    for (int64_t b = b0; b < b1; b++) {
        FN(to_planar)(psi + 2 * dim * b, xr, xi, dim);
        memset(o_r, 0, dim * sizeof(REAL));
        memset(o_i, 0, dim * sizeof(REAL));
        for (int q = 0; q < n; q++) FN(gate)(xr, xi, o_r, o_i, n, q, W + 8 * ((size_t)b * n + q), 1);
        FN(from_planar)(o_r, o_i, out + 2 * dim * b, dim);
    }
}

/* c ← a·b for row-major 2×2 complex matrices (8 reals each; c must not alias a or b). */
static void FN(mul2)(const REAL *a, const REAL *b, REAL *c)
{
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            const REAL *x = a + 4 * i, *y0 = b + 2 * k, *y1 = b + 4 + 2 * k;
            c[4 * i + 2 * k] = x[0] * y0[0] - x[1] * y0[1] + x[2] * y1[0] - x[3] * y1[1];
            c[4 * i + 2 * k + 1] = x[0] * y0[1] + x[1] * y0[0] + x[2] * y1[1] + x[3] * y1[0];
        }
}

/* The op bank [B, n_rot + n_const, 2, 2]: rotation r is cos(h)·I + sin(h)·gen[r] with
 * h = (angles[b, param[r]]·coef[r] + offset[r]) / 2, then the constant matrices. */
void FN(qrnn_bank)(const REAL *angles, int64_t b0, int64_t b1, int n_params, int n_rot, const int64_t *param,
                   const REAL *coef, const REAL *offset, const REAL *gen, int n_const, const REAL *consts,
                   REAL *bank)
{
    const int n_ops = n_rot + n_const;
    for (int64_t b = b0; b < b1; b++) {
        REAL *out = bank + 8 * (size_t)b * n_ops;
        for (int r = 0; r < n_rot; r++) {
            const double h = 0.5 * ((double)angles[(size_t)b * n_params + param[r]] * coef[r] + offset[r]);
            const REAL c = (REAL)cos(h), sn = (REAL)sin(h);
            const REAL *g = gen + 8 * r;
            for (int k = 0; k < 8; k++) out[8 * r + k] = sn * g[k];
            out[8 * r] += c;
            out[8 * r + 6] += c;
        }
        memcpy(out + 8 * n_rot, consts, 8 * (size_t)n_const * sizeof(REAL));
    }
}

/* mats[b, c] = G_{w-1} ··· G_1 G_0 with G_k = bank[b, table[c, k]]: every gate chain multiplied out. */
void FN(qrnn_fuse)(const REAL *bank, int64_t b0, int64_t b1, int n_ops, const int64_t *table, int chains,
                   int width, REAL *mats)
{
    for (int64_t b = b0; b < b1; b++) {
        const REAL *ops = bank + 8 * (size_t)b * n_ops;
        for (int c = 0; c < chains; c++) {
            REAL acc[8], tmp[8];
            memcpy(acc, ops + 8 * table[(size_t)c * width], sizeof(acc));
            for (int k = 1; k < width; k++) {
                FN(mul2)(ops + 8 * table[(size_t)c * width + k], acc, tmp);
                memcpy(acc, tmp, sizeof(acc));
            }
            memcpy(mats + 8 * ((size_t)b * chains + c), acc, sizeof(acc));
        }
    }
}

/* grad[b, ops[r]] += ½ Im Tr(S P_r S† K[b, rows[r]]) for every rotation r: P_r its Pauli generator (paulis,
 * 8 reals each), sitting at position pos[r] of chain rows[r], S = G_{w-1} ··· G_{pos+1} the gates after it
 * (bank/table as in qrnn_fuse) and K[b, c] = Σ ψ_a g_c* the chain's qubit block from qrnn_backward. */
void FN(qrnn_rotation_grads)(const REAL *bank, int64_t b0, int64_t b1, int n_ops, const int64_t *table,
                             int chains, int width, const REAL *K, int n_rot, const int64_t *rows,
                             const int64_t *pos, const int64_t *ops, const REAL *paulis, int grad_width,
                             REAL *grad)
{
    for (int64_t b = b0; b < b1; b++) {
        const REAL *bk = bank + 8 * (size_t)b * n_ops;
        for (int r = 0; r < n_rot; r++) {
            const int64_t *chain = table + (size_t)rows[r] * width;
            REAL S[8] = {1, 0, 0, 0, 0, 0, 1, 0}, tmp[8], SP[8], Sd[8], Pp[8];
            for (int k = (int)pos[r] + 1; k < width; k++) {
                FN(mul2)(bk + 8 * chain[k], S, tmp);
                memcpy(S, tmp, sizeof(S));
            }
            /* S† */
            Sd[0] = S[0]; Sd[1] = -S[1]; Sd[2] = S[4]; Sd[3] = -S[5];
            Sd[4] = S[2]; Sd[5] = -S[3]; Sd[6] = S[6]; Sd[7] = -S[7];
            FN(mul2)(S, paulis + 8 * (size_t)r, SP);
            FN(mul2)(SP, Sd, Pp);
            const REAL *k = K + 8 * ((size_t)b * chains + rows[r]);
            /* Im Tr(P' K) = Im Σ_ac P'_ac K_ca */
            REAL im = 0;
            for (int a = 0; a < 2; a++)
                for (int c = 0; c < 2; c++) {
                    const REAL *p = Pp + 4 * a + 2 * c, *q = k + 4 * c + 2 * a;
                    im += p[0] * q[1] + p[1] * q[0];
                }
            grad[(size_t)b * grad_width + ops[r]] += (REAL)0.5 * im;
        }
    }
}

#undef VEC
#undef IVEC
#undef LANES
#undef LOAD
#undef STORE
#undef FLUSH_EVERY
