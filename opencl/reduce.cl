/* Row reductions: log-sum-exp, softmax, log-softmax. One work-group of ROW_WG items per row.
 * Same algorithm as src/reference/ops.rs: m = max (NaN dominating, first index k),
 * s = sum_{j != k} exp(x_j - m) in a fixed tree order.
 */

/* First index of the row max (NaN dominating, ties to the smaller index), known to every work
 * item. col_count >= 1 is validated on the host, so the index is valid. */
inline uint row_argmax(__global const REAL* restrict row, const uint col_count,
                       __local REAL* scratch, __local uint* scratch_index)
{
    const uint lid = get_local_id(0);
    REAL m = -INFINITY;
    uint k = UINT_MAX;
    for (uint j = lid; j < col_count; j += ROW_WG) absorb_max(&m, &k, row[j], j);
    scratch[lid] = m;
    scratch_index[lid] = k;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint step = ROW_WG / 2; step > 0; step >>= 1) {
        if (lid < step) {
            REAL mm = scratch[lid];
            uint kk = scratch_index[lid];
            absorb_max(&mm, &kk, scratch[lid + step], scratch_index[lid + step]);
            scratch[lid] = mm;
            scratch_index[lid] = kk;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const uint index = scratch_index[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return index;
}

/* s = sum_{j != k} exp(x_j - m) over the row (0 when m is not finite), known to every item. */
inline REAL row_shifted_exp_sum(__global const REAL* restrict row, const uint col_count,
                                const REAL m, const uint k, __local REAL* scratch)
{
    REAL s = (REAL)0;
    if (isfinite(m)) {
        for (uint j = get_local_id(0); j < col_count; j += ROW_WG) {
            if (j != k) s += exp(row[j] - m);
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
    const REAL s = row_shifted_exp_sum(row, col_count, m, k, scratch);
    if (get_local_id(0) == 0) lse[r] = isfinite(m) ? m + log1p(s) : m;
}

/* g_rj = exp(x_rj - m) / (1 + s); NaN row or infinite max -> NaN row.
 * Bound: tolerance::softmax_rows */
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
    const REAL denominator = (REAL)1 + row_shifted_exp_sum(row, col_count, m, k, scratch);
    /* A non-finite max poisons the row with NaN. (Added, not selected per element: PoCL 3.1
     * vectorizer miscompiled the per-element select and wrote out of bounds.) */
    const REAL poison = isfinite(m) ? (REAL)0 : (REAL)NAN;
    for (uint j = get_local_id(0); j < col_count; j += ROW_WG)
        out[j] = exp(row[j] - m) / denominator + poison;
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
    const REAL log_denominator = log((REAL)1 + row_shifted_exp_sum(row, col_count, m, k, scratch));
    const REAL poison = isfinite(m) ? (REAL)0 : (REAL)NAN; /* see softmax_rows */
    for (uint j = get_local_id(0); j < col_count; j += ROW_WG)
        out[j] = ((row[j] - m) - log_denominator) + poison;
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
