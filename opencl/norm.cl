/* Row broadcasts and LayerNorm (src/reference/linalg.rs, src/reference/layers.rs). One
 * work-group of ROW_WG items per row; row sums use the fixed local-memory tree of the prelude
 * (work_group_tree_sum), so results are reproducible run to run. */

/* y_rj = x_rj + b_j.  One rounding: bitwise with the reference.  Bound: tolerance::add_rows */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void add_rows(__global const REAL* restrict x, __global const REAL* restrict b,
              __global REAL* restrict y, const uint row_count, const uint col_count)
{
    const uint r = get_group_id(0);
    if (r >= row_count) return; /* uniform per work-group */
    const size_t offset = (size_t)r * col_count;
    for (uint j = get_local_id(0); j < col_count; j += ROW_WG) y[offset + j] = x[offset + j] + b[j];
}

/* Two-pass moments of one row, known to every work item of the group:
 * mean = (sum_j x_j) / n, var = (sum_j (x_j - mean)^2) / n, rstd = 1 / sqrt(var + eps).
 * Each sum in the fixed order of reduce.cl's header: ROW_VEC-wide vectors v = l, l + ROW_WG,
 * ... per item with one running sum per lane, the lanes by halving (row_lane_sum), then the
 * tail in order, then the items' fixed tree. Any order is within tolerance::layer_norm
 * (gamma_{n-1}). col_count >= 1 (validated on the host). */
inline void row_moments(__global const REAL* restrict row, const uint col_count, const REAL eps,
                        __local REAL* scratch, REAL* mean, REAL* rstd)
{
    const REAL n = (REAL)col_count;
    const uint lid = get_local_id(0);
    const uint vectors = col_count / ROW_VEC;
    REALV sv = (REALV)(0);
    for (uint v = lid; v < vectors; v += ROW_WG) sv += VLOADV(v, row);
    REAL s = row_lane_sum(sv);
    for (uint j = vectors * ROW_VEC + lid; j < col_count; j += ROW_WG) s += row[j];
    const REAL m = work_group_tree_sum(scratch, s) / n;
    REALV qv = (REALV)(0);
    for (uint v = lid; v < vectors; v += ROW_WG) {
        const REALV d = VLOADV(v, row) - m;
        qv += d * d;
    }
    REAL q = row_lane_sum(qv);
    for (uint j = vectors * ROW_VEC + lid; j < col_count; j += ROW_WG) {
        const REAL d = row[j] - m;
        q += d * d;
    }
    const REAL var = work_group_tree_sum(scratch, q) / n;
    *mean = m;
    *rstd = (REAL)1 / sqrt(var + eps);
}

/* y_j = ((x_j - mean) * rstd) * gamma_j + beta_j per row (ROW_VEC-wide, then the tail).
 * Bound: tolerance::layer_norm */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void layer_norm(__global const REAL* restrict x, __global const REAL* restrict gamma,
                __global const REAL* restrict beta, __global REAL* restrict y, const REAL eps,
                const uint row_count, const uint col_count)
{
    __local REAL scratch[ROW_WG];
    const uint r = get_group_id(0);
    if (r >= row_count) return; /* uniform per work-group: no barrier divergence */
    const size_t offset = (size_t)r * col_count;
    REAL mean, rstd;
    row_moments(x + offset, col_count, eps, scratch, &mean, &rstd);
    const uint lid = get_local_id(0);
    const uint vectors = col_count / ROW_VEC;
    for (uint v = lid; v < vectors; v += ROW_WG)
        VSTOREV(((VLOADV(v, x + offset) - mean) * rstd) * VLOADV(v, gamma) + VLOADV(v, beta), v,
                y + offset);
    for (uint j = vectors * ROW_VEC + lid; j < col_count; j += ROW_WG)
        y[offset + j] = ((x[offset + j] - mean) * rstd) * gamma[j] + beta[j];
}

/* Per row, with xhat_j = (x_j - mean) * rstd and d_j = g_j * gamma_j:
 * a = (sum_j d_j) / n, b = (sum_j d_j * xhat_j) / n (sums in the order of row_moments),
 * grad_x_j = rstd * ((d_j - a) - xhat_j * b); xhat is stored for layer_norm_param_grads.
 * Bound: tolerance::layer_norm_backward (grad_x) */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void layer_norm_backward(__global const REAL* restrict x, __global const REAL* restrict gamma,
                         __global const REAL* restrict g, __global REAL* restrict grad_x,
                         __global REAL* restrict xhat, const REAL eps, const uint row_count,
                         const uint col_count)
{
    __local REAL scratch[ROW_WG];
    const uint r = get_group_id(0);
    if (r >= row_count) return;
    const size_t offset = (size_t)r * col_count;
    REAL mean, rstd;
    row_moments(x + offset, col_count, eps, scratch, &mean, &rstd);
    const uint lid = get_local_id(0);
    const uint vectors = col_count / ROW_VEC;
    REALV dv_sum = (REALV)(0);
    REALV dxv_sum = (REALV)(0);
    for (uint v = lid; v < vectors; v += ROW_WG) {
        const REALV d = VLOADV(v, g + offset) * VLOADV(v, gamma);
        const REALV xh = (VLOADV(v, x + offset) - mean) * rstd;
        VSTOREV(xh, v, xhat + offset);
        dv_sum += d;
        dxv_sum += d * xh;
    }
    REAL sum_d = row_lane_sum(dv_sum);
    REAL sum_dx = row_lane_sum(dxv_sum);
    for (uint j = vectors * ROW_VEC + lid; j < col_count; j += ROW_WG) {
        const REAL d = g[offset + j] * gamma[j];
        const REAL xh = (x[offset + j] - mean) * rstd;
        xhat[offset + j] = xh;
        sum_d += d;
        sum_dx += d * xh;
    }
    const REAL n = (REAL)col_count;
    const REAL a = work_group_tree_sum(scratch, sum_d) / n;
    const REAL b = work_group_tree_sum(scratch, sum_dx) / n;
    for (uint v = lid; v < vectors; v += ROW_WG) {
        const REALV d = VLOADV(v, g + offset) * VLOADV(v, gamma);
        VSTOREV(rstd * ((d - a) - VLOADV(v, xhat + offset) * b), v, grad_x + offset);
    }
    for (uint j = vectors * ROW_VEC + lid; j < col_count; j += ROW_WG) {
        const REAL d = g[offset + j] * gamma[j];
        grad_x[offset + j] = rstd * ((d - a) - xhat[offset + j] * b);
    }
}

/* The column kernels below (one work item per column, each column summed sequentially in i
 * from 0: the reference's order, so the bits do not depend on the launch) put a work-group
 * barrier in the row loop. Every item of the group reaches it (no early return; items past
 * the last column only skip the loads), and on a CPU device (PoCL) a barrier inside a loop makes
 * the work-item loop run *inside* the row loop: each row's columns of the group are read
 * contiguously and vectorised, instead of every item walking its own column with a row-sized
 * stride. On a GPU the barrier is a cheap sync; the reads were coalesced already. Launched with
 * OpenCl::column_launch (work-group up to the elementwise size, global a multiple of it). */

/* grad_gamma_j = sum_i g_ij * xhat_ij, grad_beta_j = sum_i g_ij, sequential in i from 0 (the
 * reference's order). One work item per column.  Bound: tolerance::layer_norm_backward */
__kernel void layer_norm_param_grads(__global const REAL* restrict g,
                                     __global const REAL* restrict xhat,
                                     __global REAL* restrict grad_gamma,
                                     __global REAL* restrict grad_beta, const uint row_count,
                                     const uint col_count)
{
    const uint j = get_global_id(0);
    const bool active = j < col_count;
    REAL gg = (REAL)0;
    REAL gb = (REAL)0;
    for (uint i = 0; i < row_count; ++i) {
        if (active) {
            const size_t k = (size_t)i * col_count + j;
            gg = gg + g[k] * xhat[k];
            gb = gb + g[k];
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* see the comment above: a row per work-item loop */
    }
    if (active) {
        grad_gamma[j] = gg;
        grad_beta[j] = gb;
    }
}

/* y_rj = x_rj * b_j (also grad_x = g_rj * b_j of mul_rows_backward).  One rounding: bitwise with
 * the reference.  Bound: tolerance::mul_rows */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void mul_rows(__global const REAL* restrict x, __global const REAL* restrict b,
              __global REAL* restrict y, const uint row_count, const uint col_count)
{
    const uint r = get_group_id(0);
    if (r >= row_count) return; /* uniform per work-group */
    const size_t offset = (size_t)r * col_count;
    for (uint j = get_local_id(0); j < col_count; j += ROW_WG) y[offset + j] = x[offset + j] * b[j];
}

/* grad_b_j = sum_i g_ij * x_ij, sequential in i from 0 (the reference's order; FP_CONTRACT off,
 * so each product is rounded): bitwise with the reference.  One work item per column, so
 * neighbouring items read neighbouring addresses.  Bound: tolerance::mul_rows_backward_grad_b */
__kernel void mul_rows_grad_b(__global const REAL* restrict g, __global const REAL* restrict x,
                              __global REAL* restrict grad_b, const uint row_count,
                              const uint col_count)
{
    const uint j = get_global_id(0);
    const bool active = j < col_count;
    REAL sum = (REAL)0;
    for (uint i = 0; i < row_count; ++i) {
        if (active) {
            const size_t k = (size_t)i * col_count + j;
            sum = sum + g[k] * x[k];
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* a row per work-item loop (see layer_norm_param_grads) */
    }
    if (active) grad_b[j] = sum;
}

/* Axis-0 reduction: y_j = sum_i x_ij, sequential in i from 0 (the reference's order: bitwise
 * with it), divided by row_count when `mean` (mean_axis: one division, 2.5 ulp in f32).
 * row_count = 0 gives the empty sum 0 (mean requires row_count >= 1, checked on the host).
 * One work item per column (coalesced reads).  Bounds: tolerance::sum_axis, tolerance::mean_axis */
__kernel void sum_columns(__global const REAL* restrict x, __global REAL* restrict y,
                          const uint row_count, const uint col_count, const uint mean)
{
    const uint j = get_global_id(0);
    const bool active = j < col_count;
    REAL sum = (REAL)0;
    for (uint i = 0; i < row_count; ++i) {
        if (active) sum = sum + x[(size_t)i * col_count + j];
        barrier(CLK_LOCAL_MEM_FENCE); /* a row per work-item loop (see layer_norm_param_grads) */
    }
    if (!active) return;
    if (mean) {
        y[j] = sum / (REAL)row_count;
    } else {
        y[j] = sum;
    }
}

/* Axis-1 reduction: y_r = sum_j x_rj (divided by col_count when `mean`), one work-group of
 * ROW_WG items per row, in a fixed order: item l sums x_rj for j = l, l + ROW_WG, l + 2 ROW_WG,
 * ... sequentially from 0, then the ROW_WG partial sums meet in work_group_tree_sum (halving
 * tree, depth log2 ROW_WG).  Each x_rj passes through at most ceil(n / ROW_WG) - 1 + log2 ROW_WG
 * <= n - 1 additions, so tolerance::sum_axis (gamma_{n-1} sum |x|) covers it; run to run the
 * bits are the same.  col_count = 0 gives 0.  Bounds: tolerance::sum_axis, tolerance::mean_axis */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void sum_rows(__global const REAL* restrict x, __global REAL* restrict y, const uint row_count,
              const uint col_count, const uint mean)
{
    __local REAL scratch[ROW_WG];
    const uint r = get_group_id(0);
    if (r >= row_count) return; /* uniform per work-group: no barrier divergence */
    const size_t offset = (size_t)r * col_count;
    REAL s = (REAL)0;
    for (uint j = get_local_id(0); j < col_count; j += ROW_WG) s = s + x[offset + j];
    const REAL total = work_group_tree_sum(scratch, s);
    if (get_local_id(0) == 0) {
        if (mean) {
            y[r] = total / (REAL)col_count;
        } else {
            y[r] = total;
        }
    }
}

/* VJP of the axis reductions, a broadcast over `count` = rows * cols elements:
 * axis 0: y_ij = g_j, axis 1: y_ij = g_i (sum_axis_backward: exact copies); when `mean`, each
 * divided by the reduced length (mean_axis_backward: one division, 2.5 ulp in f32).
 * Bound: 0 (sum), tolerance::linalg::mean_axis_backward (mean) */
__kernel void broadcast_axis(__global const REAL* restrict g, __global REAL* restrict y,
                             const uint row_count, const uint col_count, const uint axis,
                             const uint mean, const uint count)
{
    const uint e = get_global_id(0);
    if (e >= count) return; /* count >= 1 implies col_count >= 1 */
    const uint i = e / col_count;
    const uint j = e - i * col_count;
    const REAL v = axis == 0 ? g[j] : g[i];
    if (mean) {
        y[e] = v / (REAL)(axis == 0 ? row_count : col_count);
    } else {
        y[e] = v;
    }
}
