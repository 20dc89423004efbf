/* Losses and their gradients. Same formulas as src/reference/losses.rs. */

/* l(z, y) = (max(z,0) - z*y) + log1p(exp(-|z|)).  Bound: tolerance::bce_with_logits_element */
inline REAL bce_with_logits_element(const REAL z, const REAL y)
{
    return (fmax(z, (REAL)0) - z * y) + log1p(exp(-fabs(z)));
}

/* Two-branch stable sigmoid, as reference::sigmoid. */
inline REAL stable_sigmoid(const REAL z)
{
    if (z >= (REAL)0) return (REAL)1 / ((REAL)1 + exp(-z));
    const REAL e = exp(z);
    return e / ((REAL)1 + e);
}

/* Pass 1 of the mean: work-group g sums the elements i = g*ROW_WG + lid + t*stride,
 * stride = group_count*ROW_WG, then a fixed tree; partial[g] = that sum.
 * NaN in any element propagates through the sums. */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void bce_with_logits_partial_sums(__global const REAL* restrict logits,
                                  __global const REAL* restrict labels,
                                  __global REAL* restrict partial, const uint n)
{
    __local REAL scratch[ROW_WG];
    const size_t stride = get_global_size(0);
    REAL sum = (REAL)0;
    for (size_t i = get_global_id(0); i < n; i += stride)
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
