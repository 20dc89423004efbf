/* Row reductions: log-sum-exp, softmax, log-softmax. One work-group of ROW_WG items per row.
 * Same algorithm as src/reference/ops.rs: m = max (NaN dominating, first index k),
 * s = sum_{j != k} exp(x_j - m), summed in a fixed order (the same on every run):
 *   - the row's first nv = ROW_VEC * floor(n / ROW_VEC) elements are read as vectors of ROW_VEC;
 *     work item l takes the vectors v = l, l + ROW_WG, l + 2 ROW_WG, ... and each lane keeps its
 *     own running sum in that order (the term j = k is added as an exact 0);
 *   - the lanes are summed by halving (lanes i and i + w/2 for w = ROW_VEC, ROW_VEC/2, ..., 2:
 *     row_lane_sum); then the tail j = nv + l, nv + l + ROW_WG, ... is added in order;
 *   - the ROW_WG item sums meet in the fixed tree of work_group_tree_sum (prelude.cl).
 * ROW_VEC (2, 4, 8 or 16) and ROW_WG come from the build options (src/opencl/program.rs): a
 * CPU device gets wide vectors and few items per row, a GPU ROW_VEC = 4 and 256 items. Any
 * order is within the bounds (tolerance::log_sum_exp_rows uses gamma_{n-2}). */
#ifndef ROW_VEC
#error "ROW_VEC (vector width of the row kernels: 2, 4, 8 or 16) must be defined"
#endif
#define ROWV_CAT(a, b) a##b
#define ROWV_XCAT(a, b) ROWV_CAT(a, b)
#define REALV ROWV_XCAT(REAL, ROW_VEC)
#define VLOADV ROWV_XCAT(vload, ROW_VEC)
#define VSTOREV ROWV_XCAT(vstore, ROW_VEC)

/* Sum of the lanes by halving: (v.lo + v.hi) until one lane is left. */
inline REAL row_lane_sum(REALV v)
{
#if ROW_VEC == 16
    const ROWV_XCAT(REAL, 8) v8 = v.lo + v.hi;
    const ROWV_XCAT(REAL, 4) v4 = v8.lo + v8.hi;
#elif ROW_VEC == 8
    const ROWV_XCAT(REAL, 4) v4 = v.lo + v.hi;
#elif ROW_VEC == 4
    const ROWV_XCAT(REAL, 4) v4 = v;
#endif
#if ROW_VEC >= 4
    const ROWV_XCAT(REAL, 2) v2 = v4.lo + v4.hi;
#else
    const ROWV_XCAT(REAL, 2) v2 = v;
#endif
    return v2.lo + v2.hi;
}

/* Largest lane by fmax (a NaN lane loses to a number: NaN is tracked apart). */
inline REAL row_lane_max(REALV v)
{
#if ROW_VEC == 16
    const ROWV_XCAT(REAL, 8) v8 = fmax(v.lo, v.hi);
    const ROWV_XCAT(REAL, 4) v4 = fmax(v8.lo, v8.hi);
#elif ROW_VEC == 8
    const ROWV_XCAT(REAL, 4) v4 = fmax(v.lo, v.hi);
#elif ROW_VEC == 4
    const ROWV_XCAT(REAL, 4) v4 = v;
#endif
#if ROW_VEC >= 4
    const ROWV_XCAT(REAL, 2) v2 = fmax(v4.lo, v4.hi);
#else
    const ROWV_XCAT(REAL, 2) v2 = v;
#endif
    return fmax(v2.lo, v2.hi);
}

/* Fixed-tree minimum of ROW_WG indices in local memory; every work item gets it. */
inline uint work_group_tree_min(__local uint* scratch, uint value)
{
    const uint lid = get_local_id(0);
    scratch[lid] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint step = ROW_WG / 2; step > 0; step >>= 1) {
        if (lid < step) scratch[lid] = min(scratch[lid], scratch[lid + step]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const uint total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

/* First index of the row max (NaN dominating: the first NaN; ties, including -0 and +0, to the
 * smaller index), known to every work item. Pass 1 finds the max value (fmax, NaN apart), pass 2
 * the first index holding it. col_count >= 1 is validated on the host, so the index is valid. */
inline uint row_argmax(__global const REAL* restrict row, const uint col_count,
                       __local REAL* scratch, __local uint* scratch_index)
{
    const uint lid = get_local_id(0);
    const uint vectors = col_count / ROW_VEC;
    const uint nv = vectors * ROW_VEC;
    REALV mv = (REALV)(-INFINITY);
    REALV nan_seen = (REALV)(0);
    for (uint v = lid; v < vectors; v += ROW_WG) {
        const REALV x = VLOADV(v, row);
        mv = fmax(mv, x);
        nan_seen = fmax(nan_seen, select((REALV)(0), (REALV)(1), isnan(x)));
    }
    REAL m = row_lane_max(mv);
    REAL has_nan = row_lane_max(nan_seen);
    for (uint j = nv + lid; j < col_count; j += ROW_WG) {
        m = fmax(m, row[j]);
        if (isnan(row[j])) has_nan = (REAL)1;
    }
    /* Work-group max: NaN flag first, then the value (fmax, no NaN left in m). */
    scratch[lid] = has_nan;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint step = ROW_WG / 2; step > 0; step >>= 1) {
        if (lid < step) scratch[lid] = fmax(scratch[lid], scratch[lid + step]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const bool find_nan = scratch[0] > (REAL)0;
    barrier(CLK_LOCAL_MEM_FENCE);
    scratch[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint step = ROW_WG / 2; step > 0; step >>= 1) {
        if (lid < step) scratch[lid] = fmax(scratch[lid], scratch[lid + step]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const REAL target = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    /* Pass 2: this item's first index holding the max (or a NaN). */
    uint first = UINT_MAX;
    for (uint v = lid; v < vectors && first == UINT_MAX; v += ROW_WG) {
        for (uint l = 0; l < ROW_VEC; ++l) {
            const REAL x = row[v * ROW_VEC + l];
            if (find_nan ? isnan(x) : x == target) { first = v * ROW_VEC + l; break; }
        }
    }
    for (uint j = nv + lid; j < col_count && first == UINT_MAX; j += ROW_WG) {
        const REAL x = row[j];
        if (find_nan ? isnan(x) : x == target) first = j;
    }
    return work_group_tree_min(scratch_index, first);
}

/* s = sum_{j != k} exp(x_j - m) over the row (0 when m is not finite), known to every item, in
 * the order of the header. If `store` is not null, exp(x_j - m) is also written to store[j] for
 * every j (including k: exp(0) = 1), so softmax need not evaluate exp twice. */
inline REAL row_shifted_exp_sum(__global const REAL* restrict row, const uint col_count,
                                const REAL m, const uint k, __local REAL* scratch,
                                __global REAL* restrict store)
{
    const uint lid = get_local_id(0);
    const uint vectors = col_count / ROW_VEC;
    const uint nv = vectors * ROW_VEC;
    REAL s = (REAL)0;
    if (isfinite(m)) {
        REALV sv = (REALV)(0);
        for (uint v = lid; v < vectors; v += ROW_WG) {
            REALV e = exp(VLOADV(v, row) - m);
            if (store) VSTOREV(e, v, store);
            const uint offset = k - v * ROW_VEC; /* wraps past ROW_VEC unless k is here */
            if (offset < ROW_VEC) {
                REAL lanes[ROW_VEC];
                VSTOREV(e, 0, lanes);
                lanes[offset] = (REAL)0; /* the term j = k, added as an exact 0 */
                e = VLOADV(0, lanes);
            }
            sv += e;
        }
        s = row_lane_sum(sv);
        for (uint j = nv + lid; j < col_count; j += ROW_WG) {
            const REAL e = exp(row[j] - m);
            if (store) store[j] = e;
            if (j != k) s += e;
        }
    }
    return work_group_tree_sum(scratch, s);
}

/* lse_r = m + log1p(s); NaN row -> NaN; infinite max -> m.  Bound: tolerance::log_sum_exp_rows */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void log_sum_exp_rows(__global const REAL* restrict x, __global REAL* restrict lse,
                      const uint row_count, const uint col_count)
{
    __local REAL scratch[ROW_WG];
    __local uint scratch_index[ROW_WG];
    const uint r = get_group_id(0);
    if (r >= row_count) return; /* uniform per work-group: no barrier divergence */
    __global const REAL* row = x + (size_t)r * col_count;
    const uint k = row_argmax(row, col_count, scratch, scratch_index);
    const REAL m = row[k];
    const REAL s = row_shifted_exp_sum(row, col_count, m, k, scratch, 0);
    if (get_local_id(0) == 0) lse[r] = isfinite(m) ? m + log1p(s) : m;
}

/* g_rj = exp(x_rj - m) / (1 + s); NaN row or infinite max -> NaN row.
 * exp(x_rj - m) is stored by the sum pass and divided in place.  Bound: tolerance::softmax_rows */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void softmax_rows(__global const REAL* restrict x, __global REAL* restrict y,
                  const uint row_count, const uint col_count)
{
    __local REAL scratch[ROW_WG];
    __local uint scratch_index[ROW_WG];
    const uint r = get_group_id(0);
    if (r >= row_count) return;
    __global const REAL* row = x + (size_t)r * col_count;
    __global REAL* out = y + (size_t)r * col_count;
    const uint k = row_argmax(row, col_count, scratch, scratch_index);
    const REAL m = row[k];
    const REAL denominator = (REAL)1 + row_shifted_exp_sum(row, col_count, m, k, scratch, out);
    const uint lid = get_local_id(0);
    const uint vectors = col_count / ROW_VEC;
    if (!isfinite(m)) { /* a non-finite max poisons the row with NaN */
        for (uint j = lid; j < col_count; j += ROW_WG) out[j] = (REAL)NAN;
        return;
    }
    /* Each item divides the entries it stored itself: no barrier needed. */
    for (uint v = lid; v < vectors; v += ROW_WG) VSTOREV(VLOADV(v, out) / denominator, v, out);
    for (uint j = vectors * ROW_VEC + lid; j < col_count; j += ROW_WG) out[j] = out[j] / denominator;
}

/* y_rj = (x_rj - m) - log(1 + s), PyTorch's log form (THEORY.md A4); NaN row or infinite
 * max -> NaN row.  Bound: tolerance::log_softmax_rows */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void log_softmax_rows(__global const REAL* restrict x, __global REAL* restrict y,
                      const uint row_count, const uint col_count)
{
    __local REAL scratch[ROW_WG];
    __local uint scratch_index[ROW_WG];
    const uint r = get_group_id(0);
    if (r >= row_count) return;
    __global const REAL* row = x + (size_t)r * col_count;
    __global REAL* out = y + (size_t)r * col_count;
    const uint k = row_argmax(row, col_count, scratch, scratch_index);
    const REAL m = row[k];
    const REAL log_denominator =
        log((REAL)1 + row_shifted_exp_sum(row, col_count, m, k, scratch, 0));
    const uint lid = get_local_id(0);
    const uint vectors = col_count / ROW_VEC;
    if (!isfinite(m)) {
        for (uint j = lid; j < col_count; j += ROW_WG) out[j] = (REAL)NAN;
        return;
    }
    for (uint v = lid; v < vectors; v += ROW_WG)
        VSTOREV((VLOADV(v, row) - m) - log_denominator, v, out);
    for (uint j = vectors * ROW_VEC + lid; j < col_count; j += ROW_WG)
        out[j] = (row[j] - m) - log_denominator;
}

/* VJP of softmax_rows from its output y, one work-group per row (fixed tree for the dot):
 * s_r = sum_k g_rk * y_rk,  dx_rj = (y_rj * (g_rj - s_r)) * scale.
 * scale = 1 for the op itself (an exact product); attention passes its 1/sqrt(d).
 * Bound: tolerance::softmax_rows_backward */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void softmax_rows_backward(__global const REAL* restrict y, __global const REAL* restrict g,
                           __global REAL* restrict dx, const REAL scale,
                           const uint row_count, const uint col_count)
{
    __local REAL scratch[ROW_WG];
    const uint r = get_group_id(0);
    if (r >= row_count) return; /* uniform per work-group */
    const size_t offset = (size_t)r * col_count;
    REAL partial = (REAL)0;
    for (uint j = get_local_id(0); j < col_count; j += ROW_WG)
        partial += g[offset + j] * y[offset + j];
    const REAL s = work_group_tree_sum(scratch, partial);
    for (uint j = get_local_id(0); j < col_count; j += ROW_WG)
        dx[offset + j] = (y[offset + j] * (g[offset + j] - s)) * scale;
}

/* VJP of log_softmax_rows from its output y, one work-group per row:
 * s_r = sum_k g_rk (fixed tree),  dx_rj = g_rj - exp(y_rj) * s_r.
 * Bound: tolerance::log_softmax_rows_backward */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void log_softmax_rows_backward(__global const REAL* restrict y, __global const REAL* restrict g,
                               __global REAL* restrict dx,
                               const uint row_count, const uint col_count)
{
    __local REAL scratch[ROW_WG];
    const uint r = get_group_id(0);
    if (r >= row_count) return;
    const size_t offset = (size_t)r * col_count;
    REAL partial = (REAL)0;
    for (uint j = get_local_id(0); j < col_count; j += ROW_WG) partial += g[offset + j];
    const REAL s = work_group_tree_sum(scratch, partial);
    for (uint j = get_local_id(0); j < col_count; j += ROW_WG)
        dx[offset + j] = g[offset + j] - exp(y[offset + j]) * s;
}
