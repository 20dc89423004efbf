/* Losses and their gradients. Same formulas as src/reference/losses.rs. */

/* l(z, y) = (max(z,0) - z*y) + log1p(exp(-|z|)).  Bound: tolerance::bce_with_logits_element */
inline REAL bce_with_logits_element(const REAL z, const REAL y)
{
    return (fmax(z, (REAL)0) - z * y) + log1p(exp(-fabs(z)));
}

/* Two-branch stable sigmoid, as reference::sigmoid: 1 / (1 + exp(-z)) for z >= 0, else
 * exp(z) / (1 + exp(z)) (NaN takes the second branch). Both from e = exp(-|z|), which is the
 * reference's exp argument in either branch, and selected without a branch (vectorisable). */
inline REAL stable_sigmoid(const REAL z)
{
    const REAL e = exp(-fabs(z));
    const REAL positive = (REAL)1 / ((REAL)1 + e);
    const REAL negative = e / ((REAL)1 + e);
    return z >= (REAL)0 ? positive : negative;
}

/* Pass 1 of the mean, in ROW_VEC-wide vectors: item t of the grid (size T) sums the vectors
 * v = t, t + T, t + 2T, ... of ROW_VEC contiguous elements, one running sum per lane, then the
 * lanes by halving (row_lane_sum), then the tail elements i = nv + t, nv + t + T, ... in order;
 * the items of a work-group meet in the fixed tree; partial[g] = the group's sum. A fixed
 * order on every run (any order is within tolerance::bce_with_logits_mean); the vectors let a
 * CPU compiler use SIMD exp/log1p. NaN in any element propagates through the sums. */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void bce_with_logits_partial_sums(__global const REAL* restrict logits,
                                  __global const REAL* restrict labels,
                                  __global REAL* restrict partial, const uint n)
{
    __local REAL scratch[ROW_WG];
    const size_t stride = get_global_size(0);
    const size_t vectors = n / ROW_VEC;
    REALV sv = (REALV)(0);
    for (size_t v = get_global_id(0); v < vectors; v += stride) {
        const REALV z = VLOADV(v, logits);
        const REALV y = VLOADV(v, labels);
        sv += (fmax(z, (REALV)(0)) - z * y) + log1p(exp(-fabs(z)));
    }
    REAL sum = row_lane_sum(sv);
    for (size_t i = vectors * ROW_VEC + get_global_id(0); i < n; i += stride)
        sum += bce_with_logits_element(logits[i], labels[i]);
    sum = work_group_tree_sum(scratch, sum);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = sum;
}

/* Pass 2: one work-group sums partial[0..part_count) in a fixed tree; out[0] = total / n.
 * Bound: tolerance::bce_with_logits_mean */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void sum_partials_divide(__global const REAL* restrict partial, __global REAL* restrict out,
                         const uint part_count, const uint n)
{
    __local REAL scratch[ROW_WG];
    REAL sum = (REAL)0;
    for (uint i = get_local_id(0); i < part_count; i += ROW_WG) sum += partial[i];
    sum = work_group_tree_sum(scratch, sum);
    if (get_local_id(0) == 0) out[0] = sum / (REAL)n;
}

/* grad_i = ((sigma(z_i) - y_i) * grad_output) / n.  Bound: tolerance::bce_with_logits_mean_backward */
__kernel void bce_with_logits_mean_backward(__global const REAL* restrict logits,
                                            __global const REAL* restrict labels,
                                            __global REAL* restrict grad,
                                            const REAL grad_output, const uint n)
{
    const size_t i = get_global_id(0);
    if (i >= n) return; /* global size is rounded up to a work-group multiple */
    grad[i] = ((stable_sigmoid(logits[i]) - labels[i]) * grad_output) / (REAL)n;
}

/* ---- Losses with a reduction (Mean: sum then one division; Sum: the sum). ---- */

/* Pass 2 of a reduced loss: one work-group sums partial[0..part_count) in a fixed tree;
 * out[0] = total / n when mean != 0, else total.  Bounds: tolerance::bce_with_logits,
 * tolerance::mse_loss */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void sum_partials_reduce(__global const REAL* restrict partial, __global REAL* restrict out,
                         const uint part_count, const uint n, const uint mean)
{
    __local REAL scratch[ROW_WG];
    REAL sum = (REAL)0;
    for (uint i = get_local_id(0); i < part_count; i += ROW_WG) sum += partial[i];
    sum = work_group_tree_sum(scratch, sum);
    if (get_local_id(0) == 0) out[0] = mean ? sum / (REAL)n : sum;
}

/* grad_i = ((sigma(z_i) - y_i) * grad_output) / n  (mean != 0), or without the division.
 * Bound: tolerance::bce_with_logits_backward */
__kernel void bce_with_logits_backward(__global const REAL* restrict logits,
                                       __global const REAL* restrict labels,
                                       __global REAL* restrict grad,
                                       const REAL grad_output, const uint n, const uint mean)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    const REAL d = (stable_sigmoid(logits[i]) - labels[i]) * grad_output;
    grad[i] = mean ? d / (REAL)n : d;
}

/* Pass 1 of MSE: partial[g] = sum of (p_i - t_i)*(p_i - t_i) over the work-group's
 * grid-stride vectors and tail, then a fixed tree (the order of bce_with_logits_partial_sums;
 * any order is within tolerance::mse). */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void mse_partial_sums(__global const REAL* restrict prediction,
                      __global const REAL* restrict target,
                      __global REAL* restrict partial, const uint n)
{
    __local REAL scratch[ROW_WG];
    const size_t stride = get_global_size(0);
    const size_t vectors = n / ROW_VEC;
    REALV sv = (REALV)(0);
    for (size_t v = get_global_id(0); v < vectors; v += stride) {
        const REALV d = VLOADV(v, prediction) - VLOADV(v, target);
        sv += d * d;
    }
    REAL sum = row_lane_sum(sv);
    for (size_t i = vectors * ROW_VEC + get_global_id(0); i < n; i += stride) {
        const REAL d = prediction[i] - target[i];
        sum += d * d;
    }
    sum = work_group_tree_sum(scratch, sum);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = sum;
}

/* grad_i = ((2 * (p_i - t_i)) * grad_output) / n  (mean != 0), or without the division.
 * Bound: tolerance::mse_backward */
__kernel void mse_backward(__global const REAL* restrict prediction,
                           __global const REAL* restrict target,
                           __global REAL* restrict grad,
                           const REAL grad_output, const uint n, const uint mean)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    const REAL d = ((REAL)2 * (prediction[i] - target[i])) * grad_output;
    grad[i] = mean ? d / (REAL)n : d;
}

/* Fixed-tree count over a work-group; every item gets the total. */
inline uint work_group_tree_count(__local uint* scratch, uint value)
{
    const uint lid = get_local_id(0);
    scratch[lid] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint step = ROW_WG / 2; step > 0; step >>= 1) {
        if (lid < step) scratch[lid] = scratch[lid] + scratch[lid + step];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const uint total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

/* Cross-entropy, pass 1, one work-group per row r with target c = targets[r]:
 * term[r] = -((x_rc - m) - log(1 + s))   (log_softmax_rows' log form: exactly 0 in f32 once
 * the margin reaches 24 ln 2, THEORY.md A4); 0 for an ignored row; NaN for a row with NaN or an
 * infinite max. Targets are validated on the host (0 <= c < col_count or ignore_index); an
 * out-of-range target gives NaN instead of reading out of bounds. Every item of every row
 * reaches the barriers (no early return on loaded data: PoCL 3.1 hung on that), only the
 * store depends on the target. */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void cross_entropy_rows(__global const REAL* restrict logits, __global const long* restrict targets,
                        __global REAL* restrict terms, const uint row_count,
                        const uint col_count, const long ignore_index)
{
    __local REAL scratch[ROW_WG];
    __local uint scratch_index[ROW_WG];
    const uint r = get_group_id(0);
    if (r >= row_count) return; /* uniform per work-group (group id only) */
    __global const REAL* row = logits + (size_t)r * col_count;
    const uint k = row_argmax(row, col_count, scratch, scratch_index);
    const REAL m = row[k];
    const REAL log_denominator = log((REAL)1 + row_shifted_exp_sum(row, col_count, m, k, scratch, 0));
    const REAL poison = isfinite(m) ? (REAL)0 : (REAL)NAN; /* see softmax_rows */
    if (get_local_id(0) == 0) {
        const long target = targets[r];
        if (target == ignore_index) {
            terms[r] = (REAL)0;
        } else if (target < 0 || target >= (long)col_count) {
            terms[r] = (REAL)NAN;
        } else {
            terms[r] = -((row[target] - m) - log_denominator) + poison;
        }
    }
}

/* Cross-entropy, pass 2, one work-group: S = sum of term[r] (fixed tree; ignored rows hold 0),
 * count = #{r : targets[r] != ignore_index} (fixed tree, on the device);
 * out[0] = S / count (mean != 0; 0/0 = NaN when every row is ignored) or S.
 * Bound: tolerance::cross_entropy */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void cross_entropy_reduce(__global const REAL* restrict terms,
                          __global const long* restrict targets, __global REAL* restrict out,
                          const uint row_count, const long ignore_index, const uint mean)
{
    __local REAL scratch[ROW_WG];
    __local uint scratch_count[ROW_WG];
    REAL sum = (REAL)0;
    uint active = 0;
    for (uint r = get_local_id(0); r < row_count; r += ROW_WG) {
        sum += terms[r];
        active += (targets[r] != ignore_index) ? 1u : 0u;
    }
    sum = work_group_tree_sum(scratch, sum);
    active = work_group_tree_count(scratch_count, active);
    if (get_local_id(0) == 0) out[0] = mean ? sum / (REAL)active : sum;
}

/* count[0] = (REAL)#{r : targets[r] != ignore_index}, one work-group, fixed tree. */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void count_active_targets(__global const long* restrict targets, __global REAL* restrict count,
                          const uint row_count, const long ignore_index)
{
    __local uint scratch_count[ROW_WG];
    uint active = 0;
    for (uint r = get_local_id(0); r < row_count; r += ROW_WG)
        active += (targets[r] != ignore_index) ? 1u : 0u;
    active = work_group_tree_count(scratch_count, active);
    if (get_local_id(0) == 0) count[0] = (REAL)active;
}

/* Cross-entropy VJP, one work-group per row: p = exp(x - m)/(1 + s) (softmax_rows' divided
 * form), grad_rj = ((p_rj - [j = c_r]) * grad_output) / count (mean != 0) or without the
 * division; ignored rows are exactly 0. count comes from count_active_targets.
 * Bound: tolerance::cross_entropy_backward */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void cross_entropy_backward(__global const REAL* restrict logits,
                            __global const long* restrict targets,
                            __global const REAL* restrict count, __global REAL* restrict grad,
                            const REAL grad_output, const uint row_count, const uint col_count,
                            const long ignore_index, const uint mean)
{
    __local REAL scratch[ROW_WG];
    __local uint scratch_index[ROW_WG];
    const uint r = get_group_id(0);
    if (r >= row_count) return; /* uniform per work-group (group id only) */
    __global REAL* out = grad + (size_t)r * col_count;
    __global const REAL* row = logits + (size_t)r * col_count;
    /* Every item reaches the barriers of the row statistics, ignored row or not (see
     * cross_entropy_rows); the target only selects what is stored. */
    const uint k = row_argmax(row, col_count, scratch, scratch_index);
    const REAL m = row[k];
    const REAL denominator = (REAL)1 + row_shifted_exp_sum(row, col_count, m, k, scratch, 0);
    const long target = targets[r];
    if (target == ignore_index) {
        for (uint j = get_local_id(0); j < col_count; j += ROW_WG) out[j] = (REAL)0;
        return;
    }
    /* An out-of-range target (rejected on the host) poisons the row. */
    const REAL bad = (target < 0 || target >= (long)col_count) ? (REAL)NAN : (REAL)0;
    const REAL poison = (isfinite(m) ? (REAL)0 : (REAL)NAN) + bad;
    const REAL active = count[0];
    for (uint j = get_local_id(0); j < col_count; j += ROW_WG) {
        const REAL p = exp(row[j] - m) / denominator + poison;
        const REAL d = (p - (REAL)((long)j == target)) * grad_output;
        out[j] = mean ? d / active : d;
    }
}
