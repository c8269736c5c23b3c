/* Small registers, batch in the lanes (native_body.h includes this file once per real type, after its vector
 * helpers, op bank and readout tables): a group of LANES samples is worked on at once, amplitude k of every
 * sample in one vector — planes re[k], im[k] of 2^n vectors each. Every gate pairs whole vectors with per-lane
 * (per-sample) coefficients, so no qubit needs a shuffle, sums stay per sample (no horizontal reductions) and
 * a sample costs about one vector operation per amplitude and gate instead of a fixed per-sample overhead:
 * what makes n ≤ LANES_MAX_QUBITS fast. The mathematics is that of the amplitude-lane kernels above, term
 * for term. */

/* A per-lane 2×2 complex matrix: 8 vectors (m00 m01 m10 m11, re and im). */
typedef struct {
    VEC m[8];
} FN(lm);

static inline void FN(lm_splat)(const REAL *a, FN(lm) *out)
{
    for (int e = 0; e < 8; e++) out->m[e] = FN(splat)(a[e]);
}

static inline void FN(lm_mul)(const FN(lm) *a, const FN(lm) *b, FN(lm) *c)
{
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            const VEC *x = a->m + 4 * i, *y0 = b->m + 2 * k, *y1 = b->m + 4 + 2 * k;
            c->m[4 * i + 2 * k] = x[0] * y0[0] - x[1] * y0[1] + x[2] * y1[0] - x[3] * y1[1];
            c->m[4 * i + 2 * k + 1] = x[0] * y0[1] + x[1] * y0[0] + x[2] * y1[1] + x[3] * y1[0];
        }
}

static inline void FN(lm_dagger)(const FN(lm) *a, FN(lm) *d)
{
    d->m[0] = a->m[0]; d->m[1] = -a->m[1]; d->m[2] = a->m[4]; d->m[3] = -a->m[5];
    d->m[4] = a->m[2]; d->m[5] = -a->m[3]; d->m[6] = a->m[6]; d->m[7] = -a->m[7];
}

/* The tables of one group of samples. */
typedef struct {
    FN(lm) *bank, *mats, *k;
    VEC *sn, *cs, *grad_rot, *d0, *d1, *marg; /* d0, d1: 2 vectors (re, im) per qubit */
    FN(lm) *weights;
} FN(ltables);

static void FN(lanes_load)(const REAL *x, int64_t b, int count, size_t dim, VEC *re, VEC *im)
{
    for (size_t k = 0; k < dim; k++) {
        re[k] = FN(splat)(0);
        im[k] = FN(splat)(0);
    }
    for (int l = 0; l < count; l++) {
        const REAL *s = x + 2 * dim * (size_t)(b + l);
        for (size_t k = 0; k < dim; k++) {
            re[k][l] = s[2 * k];
            im[k][l] = s[2 * k + 1];
        }
    }
}

static void FN(lanes_store)(const VEC *re, const VEC *im, REAL *x, int64_t b, int count, size_t dim)
{
    for (int l = 0; l < count; l++) {
        REAL *s = x + 2 * dim * (size_t)(b + l);
        for (size_t k = 0; k < dim; k++) {
            s[2 * k] = re[k][l];
            s[2 * k + 1] = im[k][l];
        }
    }
}

static void FN(lanes_bank)(const Plan *p, const REAL *theta, int64_t b, int count, FN(ltables) *tb, double *h,
                           REAL *sn, REAL *cs)
{
    /* the group's angles transposed (th[j][l]: parameter j of lane l), then h[r·LANES + l] for every lane at
     * once, then sin/cos of all of them */
    const int P = p->n_params;
    double th[P > 0 ? P : 1][LANES];
    for (int j = 0; j < P; j++)
        for (size_t l = 0; l < LANES; l++) th[j][l] = (int)l < count ? (double)theta[(size_t)(b + (int64_t)l) * P + j] : 0;
    for (int r = 0; r < p->n_rot; r++) {
        double acc[LANES];
        for (size_t l = 0; l < LANES; l++) acc[l] = p->rot_offset[r];
        for (int e = p->rot_ptr[r]; e < p->rot_ptr[r + 1]; e++) {
            const double c = p->rot_coef[e], *t = th[p->rot_param[e]];
            for (size_t l = 0; l < LANES; l++) acc[l] += c * t[l];
        }
        for (size_t l = 0; l < LANES; l++) h[(size_t)r * LANES + l] = 0.5 * acc[l];
    }
    FN(sincos)(h, sn, cs, p->n_rot * (int)LANES);
    for (int r = 0; r < p->n_rot; r++) {
        const VEC c = LOAD(cs + (size_t)r * LANES), s = LOAD(sn + (size_t)r * LANES), zero = FN(splat)(0);
        tb->cs[r] = c;
        tb->sn[r] = s;
        FN(lm) *m = tb->bank + r;
        for (int e = 0; e < 8; e++) m->m[e] = zero;
        m->m[0] = c; m->m[6] = c;
        switch (p->rot_axis[r]) {
        case 0: m->m[3] = -s; m->m[5] = -s; break;
        case 1: m->m[2] = -s; m->m[4] = s; break;
        default: m->m[1] = -s; m->m[7] = s; break;
        }
    }
}

static inline void FN(lanes_op)(const Plan *p, const FN(ltables) *tb, int index, FN(lm) *out)
{
    if (index < p->n_rot)
        *out = tb->bank[index];
    else
        FN(lm_splat)((const REAL *)p->consts + 8 * (size_t)(index - p->n_rot), out);
}

static void FN(lanes_fuse)(const Plan *p, FN(ltables) *tb)
{
    const int rows = p->n_seg * p->n, identity = p->n_ops - 1;
    for (int row = 0; row < rows; row++) {
        if (!(p->chain_flags[row] & 1)) continue;
        const int32_t *chain = p->table + (size_t)row * p->width;
        FN(lm) acc, op, tmp;
        FN(lanes_op)(p, tb, chain[0], &acc);
        for (int k = 1; k < p->width && chain[k] != identity; k++) {
            FN(lanes_op)(p, tb, chain[k], &op);
            FN(lm_mul)(&op, &acc, &tmp);
            acc = tmp;
        }
        tb->mats[row] = acc;
    }
}

/* o ← M x on qubit q (accumulate: o ← o + M x), per-lane M; o may be x. */
static void FN(lanes_gate)(const VEC *xr, const VEC *xi, VEC *or_, VEC *oi, int n, int q, const FN(lm) *M,
                           int accumulate)
{
    const size_t dim = (size_t)1 << n, s = (size_t)1 << q;
    const VEC Ar = M->m[0], Ai = M->m[1], Br = M->m[2], Bi = M->m[3], Cr = M->m[4], Ci = M->m[5], Dr = M->m[6],
              Di = M->m[7];
    for (size_t block = 0; block < dim; block += 2 * s)
        for (size_t j = block; j < block + s; j++) {
            const VEC ur = xr[j], ui = xi[j], vr = xr[j + s], vi = xi[j + s];
            VEC lr = Ar * ur - Ai * ui + Br * vr - Bi * vi, li = Ar * ui + Ai * ur + Br * vi + Bi * vr;
            VEC hr = Cr * ur - Ci * ui + Dr * vr - Di * vi, hi = Cr * ui + Ci * ur + Dr * vi + Di * vr;
            if (accumulate) {
                lr += or_[j]; li += oi[j]; hr += or_[j + s]; hi += oi[j + s];
            }
            or_[j] = lr; oi[j] = li; or_[j + s] = hr; oi[j + s] = hi;
        }
}

static void FN(lanes_gate_real)(VEC *xr, VEC *xi, int n, int q, const FN(lm) *M)
{
    const size_t dim = (size_t)1 << n, s = (size_t)1 << q;
    const VEC A = M->m[0], B = M->m[2], C = M->m[4], D = M->m[6];
    for (size_t block = 0; block < dim; block += 2 * s)
        for (size_t j = block; j < block + s; j++) {
            const VEC ur = xr[j], ui = xi[j], vr = xr[j + s], vi = xi[j + s];
            xr[j] = A * ur + B * vr; xi[j] = A * ui + B * vi;
            xr[j + s] = C * ur + D * vr; xi[j + s] = C * ui + D * vi;
        }
}

/* K = Σ x_a y_c* over qubit q's pairs, then x, y ← M† x, M† y (undo_with_products, per lane). */
static void FN(lanes_undo_products)(VEC *xr, VEC *xi, VEC *yr, VEC *yi, int n, int q, const FN(lm) *M, FN(lm) *K)
{
    const size_t dim = (size_t)1 << n, s = (size_t)1 << q;
    const VEC Ar = M->m[0], Ai = -M->m[1], Br = M->m[4], Bi = -M->m[5], Cr = M->m[2], Ci = -M->m[3], Dr = M->m[6],
              Di = -M->m[7];
    VEC acc[8];
    for (int t = 0; t < 8; t++) acc[t] = FN(splat)(0);
    for (size_t block = 0; block < dim; block += 2 * s)
        for (size_t j = block; j < block + s; j++) {
            const VEC pr = xr[j], pi = xi[j], hr = xr[j + s], hi = xi[j + s];
            const VEC ur = yr[j], ui = yi[j], vr = yr[j + s], vi = yi[j + s];
            acc[0] += pr * ur + pi * ui; acc[1] += pi * ur - pr * ui;
            acc[2] += pr * vr + pi * vi; acc[3] += pi * vr - pr * vi;
            acc[4] += hr * ur + hi * ui; acc[5] += hi * ur - hr * ui;
            acc[6] += hr * vr + hi * vi; acc[7] += hi * vr - hr * vi;
            xr[j] = Ar * pr - Ai * pi + Br * hr - Bi * hi;
            xi[j] = Ar * pi + Ai * pr + Br * hi + Bi * hr;
            xr[j + s] = Cr * pr - Ci * pi + Dr * hr - Di * hi;
            xi[j + s] = Cr * pi + Ci * pr + Dr * hi + Di * hr;
            yr[j] = Ar * ur - Ai * ui + Br * vr - Bi * vi;
            yi[j] = Ar * ui + Ai * ur + Br * vi + Bi * vr;
            yr[j + s] = Cr * ur - Ci * ui + Dr * vr - Di * vi;
            yi[j + s] = Cr * ui + Ci * ur + Dr * vi + Di * vr;
        }
    for (int t = 0; t < 8; t++) K->m[t] = acc[t];
}

/* The real-chain variant: K = [0, 0, Re K01 - Re K10, 0, …] (undo_real_with_products, per lane). */
static void FN(lanes_undo_real_products)(VEC *xr, VEC *xi, VEC *yr, VEC *yi, int n, int q, const FN(lm) *M,
                                         FN(lm) *K)
{
    const size_t dim = (size_t)1 << n, s = (size_t)1 << q;
    const VEC A = M->m[0], B = M->m[4], C = M->m[2], D = M->m[6]; /* Mᵀ */
    VEC acc = FN(splat)(0);
    for (size_t block = 0; block < dim; block += 2 * s)
        for (size_t j = block; j < block + s; j++) {
            const VEC pr = xr[j], pi = xi[j], hr = xr[j + s], hi = xi[j + s];
            const VEC ur = yr[j], ui = yi[j], vr = yr[j + s], vi = yi[j + s];
            acc += pr * vr + pi * vi - hr * ur - hi * ui;
            xr[j] = A * pr + B * hr; xi[j] = A * pi + B * hi;
            xr[j + s] = C * pr + D * hr; xi[j + s] = C * pi + D * hi;
            yr[j] = A * ur + B * vr; yi[j] = A * ui + B * vi;
            yr[j + s] = C * ur + D * vr; yi[j + s] = C * ui + D * vi;
        }
    for (int t = 0; t < 8; t++) K->m[t] = FN(splat)(0);
    K->m[2] = acc;
}

static void FN(lanes_density)(const VEC *xr, const VEC *xi, int n, int q, FN(lm) *rho)
{
    const size_t dim = (size_t)1 << n, s = (size_t)1 << q;
    VEC p0 = FN(splat)(0), p1 = p0, cr = p0, ci = p0;
    for (size_t block = 0; block < dim; block += 2 * s)
        for (size_t j = block; j < block + s; j++) {
            const VEC ar = xr[j], ai = xi[j], br = xr[j + s], bi = xi[j + s];
            p0 += ar * ar + ai * ai; p1 += br * br + bi * bi;
            cr += ar * br + ai * bi; ci += ai * br - ar * bi;
        }
    const VEC zero = FN(splat)(0);
    rho->m[0] = p0; rho->m[1] = zero; rho->m[2] = cr; rho->m[3] = ci;
    rho->m[4] = cr; rho->m[5] = -ci; rho->m[6] = p1; rho->m[7] = zero;
}

static void FN(lanes_permute)(VEC *re, VEC *im, size_t dim, const int64_t *perm, const REAL *phase, int conj_first,
                              VEC *tre, VEC *tim)
{
    if (phase && conj_first)
        for (size_t i = 0; i < dim; i++) {
            const REAL pr = phase[2 * i], pi = -phase[2 * i + 1];
            const VEC xr = re[i], xi = im[i];
            re[i] = pr * xr - pi * xi; im[i] = pr * xi + pi * xr;
        }
    if (perm) {
        for (size_t i = 0; i < dim; i++) {
            tre[i] = re[perm[i]];
            tim[i] = im[perm[i]];
        }
        memcpy(re, tre, dim * sizeof(VEC));
        memcpy(im, tim, dim * sizeof(VEC));
    }
    if (phase && !conj_first)
        for (size_t i = 0; i < dim; i++) {
            const REAL pr = phase[2 * i], pi = phase[2 * i + 1];
            const VEC xr = re[i], xi = im[i];
            re[i] = pr * xr - pi * xi; im[i] = pr * xi + pi * xr;
        }
}

/* The diagonal of segment s: the separable part D(k) = Π_q (bit q of k ? d1_q : d0_q) per lane into (dr, di),
 * or NULL when the segment has no single-qubit terms. */
static int FN(lanes_diag_build)(const Plan *p, const FN(ltables) *tb, int s, VEC *dr, VEC *di)
{
    const int first = p->diag_ptr[s], single = first + p->diag_single[s];
    if (single == first) return 0;
    const int n = p->n;
    VEC *d0 = tb->d0, *d1 = tb->d1;
    const VEC one = FN(splat)(1), zero = FN(splat)(0);
    for (int q = 0; q < n; q++) {
        d0[2 * q] = one; d0[2 * q + 1] = zero; d1[2 * q] = one; d1[2 * q + 1] = zero;
    }
    for (int t = first; t < single; t++) {
        const int q = __builtin_ctzll((uint64_t)p->diag_mask[t]);
        const VEC c = tb->cs[p->diag_rot[t]], sn = tb->sn[p->diag_rot[t]];
        VEC r = d0[2 * q] * c + d0[2 * q + 1] * sn, i = d0[2 * q + 1] * c - d0[2 * q] * sn;
        d0[2 * q] = r; d0[2 * q + 1] = i;
        r = d1[2 * q] * c - d1[2 * q + 1] * sn; i = d1[2 * q + 1] * c + d1[2 * q] * sn;
        d1[2 * q] = r; d1[2 * q + 1] = i;
    }
    VEC cr = one, ci = zero;
    for (int q = 0; q < n; q++) {
        const VEC r = cr * d0[2 * q] - ci * d0[2 * q + 1], i = cr * d0[2 * q + 1] + ci * d0[2 * q];
        cr = r; ci = i;
    }
    dr[0] = cr; di[0] = ci;
    for (int q = 0; q < n; q++) {
        const size_t half = (size_t)1 << q;
        const VEC rr = d1[2 * q] * d0[2 * q] + d1[2 * q + 1] * d0[2 * q + 1];
        const VEC ri = d1[2 * q + 1] * d0[2 * q] - d1[2 * q] * d0[2 * q + 1];
        for (size_t j = 0; j < half; j++) {
            dr[j + half] = rr * dr[j] - ri * di[j];
            di[j + half] = rr * di[j] + ri * dr[j];
        }
    }
    return 1;
}

/* ψ ← F ⊙ ψ (conj: F*) with F = D·Π_multi (c_t - i s_t σ_t); with w, also w ← Im(conj(g) ψ) and g ← F* ⊙ g. */
static void FN(lanes_diag_apply)(const Plan *p, const FN(ltables) *tb, int s, VEC *xr, VEC *xi, VEC *gr, VEC *gi,
                                 const VEC *dr, const VEC *di, int conj, VEC *w)
{
    const size_t dim = (size_t)1 << p->n;
    const int single = p->diag_ptr[s] + p->diag_single[s], last = p->diag_ptr[s + 1];
    const VEC one = FN(splat)(1), zero = FN(splat)(0);
    for (size_t k = 0; k < dim; k++) {
        VEC fr = dr ? dr[k] : one, fi = dr ? di[k] : zero;
        for (int t = single; t < last; t++) {
            const VEC c = tb->cs[p->diag_rot[t]];
            const VEC sn = parity64(k & (uint64_t)p->diag_mask[t]) ? -tb->sn[p->diag_rot[t]] : tb->sn[p->diag_rot[t]];
            const VEC r = c * fr + sn * fi, i = c * fi - sn * fr;
            fr = r; fi = i;
        }
        if (conj) fi = -fi;
        const VEC ur = xr[k], ui = xi[k];
        if (w) {
            const VEC vr = gr[k], vi = gi[k];
            w[k] = vr * ui - vi * ur;
            gr[k] = fr * vr - fi * vi; gi[k] = fr * vi + fi * vr;
        }
        xr[k] = fr * ur - fi * ui; xi[k] = fr * ui + fi * ur;
    }
}

static void FN(lanes_pauli_expect)(const VEC *xr, const VEC *xi, int n, uint64_t x, uint64_t z, int y, VEC *out)
{
    const size_t dim = (size_t)1 << n;
    VEC re = FN(splat)(0), im = re;
    for (size_t k = 0; k < dim; k++) {
        const VEC ur = xr[k], ui = xi[k], pr = xr[k ^ x], pi = xi[k ^ x];
        const VEC a = pr * ur + pi * ui, b = pr * ui - pi * ur;
        if (parity64(k & z)) {
            re -= a; im -= b;
        } else {
            re += a; im += b;
        }
    }
    switch (y & 3) {
    case 0: *out = re; break;
    case 1: *out = -im; break;
    case 2: *out = -re; break;
    default: *out = im; break;
    }
}

static void FN(lanes_readouts)(const Plan *p, const VEC *re, const VEC *im, FN(lm) *rho, REAL *z, int64_t b,
                               int count)
{
    const int n = p->n, R = p->n_read;
    VEC out[R > 0 ? R : 1], terms[p->n_terms > 0 ? p->n_terms : 1];
    for (int k = 0; k < R; k++) out[k] = FN(splat)(0);
    for (int q = 0; q < n; q++)
        if (p->rho_qubits[q]) FN(lanes_density)(re, im, n, q, rho + q);
    for (int i = 0; i < p->n_rz; i++)
        out[p->rz_to[i]] += (REAL)p->rz_coef[i] * rho[p->rz_from[i] / 8].m[p->rz_from[i] % 8];
    for (int t = 0; t < p->n_terms; t++)
        FN(lanes_pauli_expect)(re, im, n, (uint64_t)p->term_x[t], (uint64_t)p->term_z[t], p->term_y[t], terms + t);
    for (int i = 0; i < p->n_tz; i++) out[p->tz_to[i]] += (REAL)p->tz_coef[i] * terms[p->tz_from[i]];
    for (int l = 0; l < count; l++)
        for (int k = 0; k < R; k++) z[(size_t)(b + l) * R + k] = out[k][l];
}

/* (or, oi) += ∂L/∂ψ of L = Σ_k gz_k z_k (readouts_vjp_of, per lane). */
static void FN(lanes_readouts_vjp)(const Plan *p, const VEC *re, const VEC *im, const REAL *gz, int64_t b, int count,
                                   VEC *or_, VEC *oi, FN(ltables) *tb)
{
    const int n = p->n, R = p->n_read;
    const size_t dim = (size_t)1 << n;
    VEC g[R > 0 ? R : 1], terms[p->n_terms > 0 ? p->n_terms : 1];
    for (int k = 0; k < R; k++) g[k] = FN(splat)(0);
    for (int l = 0; l < count; l++)
        for (int k = 0; k < R; k++) g[k][l] = gz[(size_t)(b + l) * R + k];
    FN(lm) *W = tb->weights;
    for (int q = 0; q < n; q++)
        for (int e = 0; e < 8; e++) W[q].m[e] = FN(splat)(0);
    for (int i = 0; i < p->n_zw; i++) W[p->zw_to[i] / 8].m[p->zw_to[i] % 8] += (REAL)p->zw_coef[i] * g[p->zw_from[i]];
    for (int q = 0; q < n; q++)
        if (p->rho_qubits[q]) FN(lanes_gate)(re, im, or_, oi, n, q, W + q, 1);
    for (int t = 0; t < p->n_terms; t++) terms[t] = FN(splat)(0);
    for (int i = 0; i < p->n_tz; i++) terms[p->tz_from[i]] += (REAL)p->tz_coef[i] * g[p->tz_to[i]];
    for (int t = 0; t < p->n_terms; t++) {
        /* o += 2w·i^y σ_z(x) σ_z(j) ψ_{j⊕x} */
        const uint64_t x = (uint64_t)p->term_x[t], z = (uint64_t)p->term_z[t];
        const int y = p->term_y[t];
        const VEC a = (parity64(x & z) ? (REAL)-2 : (REAL)2) * terms[t], zero = FN(splat)(0);
        const VEC cr = (y & 1) ? zero : ((y & 2) ? -a : a), ci = (y & 1) ? ((y & 2) ? -a : a) : zero;
        for (size_t j = 0; j < dim; j++) {
            const VEC pr = re[j ^ x], pi = im[j ^ x];
            VEC dr = cr * pr - ci * pi, di = cr * pi + ci * pr;
            if (parity64(j & z)) {
                dr = -dr; di = -di;
            }
            or_[j] += dr; oi[j] += di;
        }
    }
}

/* The scratch of one group: planes (count · 2^n vectors) and tables. */
typedef struct {
    VEC *planes;
    FN(ltables) tb;
    double *h;
    REAL *sn, *cs;
} FN(lwork);

static FN(lwork) FN(lanes_workspace)(const Plan *p, int planes)
{
    const size_t dim = (size_t)1 << p->n, rows = (size_t)p->n_seg * p->n + 1, rot = (size_t)p->n_rot + 1;
    const size_t n = (size_t)p->n + 1;
    const size_t sizes[] = {
        planes * dim * sizeof(VEC), rot * sizeof(FN(lm)), rows * sizeof(FN(lm)), rows * sizeof(FN(lm)),
        rot * sizeof(VEC), rot * sizeof(VEC), rot * sizeof(VEC), 2 * n * sizeof(VEC), 2 * n * sizeof(VEC),
        n * sizeof(VEC), n * sizeof(FN(lm)), rot * LANES * sizeof(double), rot * LANES * sizeof(REAL),
        rot * LANES * sizeof(REAL),
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) total += FN(align)(sizes[i]);
    char *at = (char *)scratch(total);
    FN(lwork) w;
#define TAKE(field, type, i) (field = (type *)at, at += FN(align)(sizes[i]))
    TAKE(w.planes, VEC, 0);
    TAKE(w.tb.bank, FN(lm), 1);
    TAKE(w.tb.mats, FN(lm), 2);
    TAKE(w.tb.k, FN(lm), 3);
    TAKE(w.tb.sn, VEC, 4);
    TAKE(w.tb.cs, VEC, 5);
    TAKE(w.tb.grad_rot, VEC, 6);
    TAKE(w.tb.d0, VEC, 7);
    TAKE(w.tb.d1, VEC, 8);
    TAKE(w.tb.marg, VEC, 9);
    TAKE(w.tb.weights, FN(lm), 10);
    TAKE(w.h, double, 11);
    TAKE(w.sn, REAL, 12);
    TAKE(w.cs, REAL, 13);
#undef TAKE
    return w;
}

static void FN(lanes_step)(const Plan *p, const REAL *theta, const REAL *in, REAL *out, REAL *z, int64_t b0,
                           int64_t b1)
{
    const int n = p->n;
    const size_t dim = (size_t)1 << n;
    FN(lwork) w = FN(lanes_workspace)(p, 6);
    VEC *re = w.planes, *im = re + dim, *tre = im + dim, *tim = tre + dim, *dr = tim + dim, *di = dr + dim;
    FN(ltables) *tb = &w.tb;
    for (int64_t b = b0; b < b1; b += (int64_t)LANES) {
        const int count = (int)(b1 - b < (int64_t)LANES ? b1 - b : (int64_t)LANES);
        FN(lanes_bank)(p, theta, b, count, tb, w.h, w.sn, w.cs);
        FN(lanes_fuse)(p, tb);
        FN(lanes_load)(in, b, count, dim, re, im);
        for (int s = 0; s < p->n_seg; s++) {
            for (int q = 0; q < n; q++) {
                const int row = s * n + q, flags = p->chain_flags[row];
                if (!(flags & 1)) continue;
                if (flags & 2)
                    FN(lanes_gate_real)(re, im, n, q, tb->mats + row);
                else
                    FN(lanes_gate)(re, im, re, im, n, q, tb->mats + row, 0);
            }
            if (p->diag_ptr[s + 1] > p->diag_ptr[s]) {
                const int separable = FN(lanes_diag_build)(p, tb, s, dr, di);
                FN(lanes_diag_apply)(p, tb, s, re, im, NULL, NULL, separable ? dr : NULL, separable ? di : NULL, 0,
                                     NULL);
            }
            if (p->perm[s] || p->phase[s])
                FN(lanes_permute)(re, im, dim, p->perm[s], (const REAL *)p->phase[s], 0, tre, tim);
        }
        if (z) FN(lanes_readouts)(p, re, im, tb->weights, z, b, count);
        FN(lanes_store)(re, im, out, b, count, dim);
    }
}

static void FN(lanes_step_back)(const Plan *p, const REAL *theta, const REAL *psi, const REAL *g, const REAL *gz,
                                REAL *psi_out, REAL *g_out, REAL *grad, int64_t b0, int64_t b1)
{
    const int n = p->n;
    const size_t dim = (size_t)1 << n;
    FN(lwork) w = FN(lanes_workspace)(p, 9);
    VEC *xr = w.planes, *xi = xr + dim, *gr = xi + dim, *gi = gr + dim, *tre = gi + dim, *tim = tre + dim;
    VEC *dr = tim + dim, *di = dr + dim, *wp = di + dim;
    FN(ltables) *tb = &w.tb;
    const REAL pauli[3][8] = {{0, 0, 1, 0, 1, 0, 0, 0}, {0, 0, 0, -1, 0, 1, 0, 0}, {1, 0, 0, 0, 0, 0, -1, 0}};
    const int identity = p->n_ops - 1;
    for (int64_t b = b0; b < b1; b += (int64_t)LANES) {
        const int count = (int)(b1 - b < (int64_t)LANES ? b1 - b : (int64_t)LANES);
        FN(lanes_bank)(p, theta, b, count, tb, w.h, w.sn, w.cs);
        FN(lanes_fuse)(p, tb);
        for (int r = 0; r < p->n_rot; r++) tb->grad_rot[r] = FN(splat)(0);
        FN(lanes_load)(psi, b, count, dim, xr, xi);
        if (g) {
            FN(lanes_load)(g, b, count, dim, gr, gi);
        } else {
            memset(gr, 0, dim * sizeof(VEC));
            memset(gi, 0, dim * sizeof(VEC));
        }
        if (gz) FN(lanes_readouts_vjp)(p, xr, xi, gz, b, count, gr, gi, tb);
        for (int s = p->n_seg - 1; s >= 0; s--) {
            if (p->inverse_perm[s] || p->phase[s]) {
                FN(lanes_permute)(xr, xi, dim, p->inverse_perm[s], (const REAL *)p->phase[s], 1, tre, tim);
                FN(lanes_permute)(gr, gi, dim, p->inverse_perm[s], (const REAL *)p->phase[s], 1, tre, tim);
            }
            const int first = p->diag_ptr[s], last = p->diag_ptr[s + 1];
            if (last > first) {
                const int single = first + p->diag_single[s];
                const int separable = FN(lanes_diag_build)(p, tb, s, dr, di);
                FN(lanes_diag_apply)(p, tb, s, xr, xi, gr, gi, separable ? dr : NULL, separable ? di : NULL, 1, wp);
                for (int t = single; t < last; t++) { /* ½ Σ_k σ_t(k) w_k */
                    VEC acc = FN(splat)(0);
                    for (size_t k = 0; k < dim; k++) acc += parity64(k & (uint64_t)p->diag_mask[t]) ? -wp[k] : wp[k];
                    tb->grad_rot[p->diag_rot[t]] += (REAL)0.5 * acc;
                }
                if (separable) { /* Σ_k (-1)^{bit q} w_k by folding the upper half of each bit */
                    VEC upper[64];
                    for (int q = n - 1; q >= 0; q--) {
                        const size_t half = (size_t)1 << q;
                        VEC acc = FN(splat)(0);
                        for (size_t j = 0; j < half; j++) {
                            acc += wp[j + half];
                            wp[j] += wp[j + half];
                        }
                        upper[q] = acc;
                    }
                    for (int t = first; t < single; t++) {
                        const int q = __builtin_ctzll((uint64_t)p->diag_mask[t]);
                        tb->grad_rot[p->diag_rot[t]] += (REAL)0.5 * (wp[0] - (REAL)2 * upper[q]);
                    }
                }
            }
            for (int q = 0; q < n; q++) {
                const int row = s * n + q, flags = p->chain_flags[row];
                if (!(flags & 1)) continue;
                const FN(lm) *M = tb->mats + row;
                if ((flags & 6) == 6) {
                    FN(lanes_undo_real_products)(xr, xi, gr, gi, n, q, M, tb->k + row);
                } else if (flags & 4) {
                    FN(lanes_undo_products)(xr, xi, gr, gi, n, q, M, tb->k + row);
                } else {
                    FN(lm) d;
                    FN(lm_dagger)(M, &d);
                    FN(lanes_gate)(xr, xi, xr, xi, n, q, &d, 0);
                    FN(lanes_gate)(gr, gi, gr, gi, n, q, &d, 0);
                }
            }
        }
        for (int i = 0; i < p->n_chain_rot; i++) { /* ∂L/∂φ_r = ½ Im Tr(S P S† K) */
            const int row = p->grad_row[i], r = p->grad_rot[i], pos = p->grad_pos[i];
            const int32_t *chain = p->table + (size_t)row * p->width;
            FN(lm) Pp;
            if (pos + 1 >= p->width || chain[pos + 1] == identity) { /* the chain's last gate: S = I */
                FN(lm_splat)(pauli[p->rot_axis[r]], &Pp);
            } else {
                FN(lm) S, tmp, op, SP, Sd, P;
                FN(lm_splat)((const REAL[8]){1, 0, 0, 0, 0, 0, 1, 0}, &S);
                for (int k = pos + 1; k < p->width && chain[k] != identity; k++) {
                    FN(lanes_op)(p, tb, chain[k], &op);
                    FN(lm_mul)(&op, &S, &tmp);
                    S = tmp;
                }
                FN(lm_dagger)(&S, &Sd);
                FN(lm_splat)(pauli[p->rot_axis[r]], &P);
                FN(lm_mul)(&S, &P, &SP);
                FN(lm_mul)(&SP, &Sd, &Pp);
            }
            const FN(lm) *K = tb->k + row;
            VEC im = FN(splat)(0);
            for (int a = 0; a < 2; a++)
                for (int c = 0; c < 2; c++)
                    im += Pp.m[4 * a + 2 * c] * K->m[4 * c + 2 * a + 1] + Pp.m[4 * a + 2 * c + 1] * K->m[4 * c + 2 * a];
            tb->grad_rot[r] += (REAL)0.5 * im;
        }
        {
            const int P = p->n_params;
            VEC acc[P > 0 ? P : 1];
            for (int j = 0; j < P; j++) acc[j] = FN(splat)(0);
            for (int r = 0; r < p->n_rot; r++)
                for (int e = p->rot_ptr[r]; e < p->rot_ptr[r + 1]; e++)
                    acc[p->rot_param[e]] += (REAL)p->rot_coef[e] * tb->grad_rot[r];
            for (int l = 0; l < count; l++) {
                REAL *o = grad + (size_t)(b + l) * P;
                for (int j = 0; j < P; j++) o[j] = acc[j][l];
            }
        }
        FN(lanes_store)(xr, xi, psi_out, b, count, dim);
        FN(lanes_store)(gr, gi, g_out, b, count, dim);
    }
}

static void FN(lanes_readouts_only)(const Plan *p, const REAL *psi, REAL *z, int64_t b0, int64_t b1)
{
    const size_t dim = (size_t)1 << p->n;
    FN(lwork) w = FN(lanes_workspace)(p, 2);
    VEC *re = w.planes, *im = re + dim;
    for (int64_t b = b0; b < b1; b += (int64_t)LANES) {
        const int count = (int)(b1 - b < (int64_t)LANES ? b1 - b : (int64_t)LANES);
        FN(lanes_load)(psi, b, count, dim, re, im);
        FN(lanes_readouts)(p, re, im, w.tb.weights, z, b, count);
    }
}

static void FN(lanes_readouts_vjp_only)(const Plan *p, const REAL *psi, const REAL *gz, REAL *out, int64_t b0,
                                        int64_t b1)
{
    const size_t dim = (size_t)1 << p->n;
    FN(lwork) w = FN(lanes_workspace)(p, 4);
    VEC *re = w.planes, *im = re + dim, *o_r = im + dim, *o_i = o_r + dim;
    for (int64_t b = b0; b < b1; b += (int64_t)LANES) {
        const int count = (int)(b1 - b < (int64_t)LANES ? b1 - b : (int64_t)LANES);
        FN(lanes_load)(psi, b, count, dim, re, im);
        memset(o_r, 0, dim * sizeof(VEC));
        memset(o_i, 0, dim * sizeof(VEC));
        FN(lanes_readouts_vjp)(p, re, im, gz, b, count, o_r, o_i, &w.tb);
        FN(lanes_store)(o_r, o_i, out, b, count, dim);
    }
}
