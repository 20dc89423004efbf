/* The GRU of seed 002 on the device (src/reference/models/gru.rs, src/opencl/train/gru.rs):
 * the gate elementwise work of one cell step fused into one kernel each way, and the
 * fixed-order sums over time of backpropagation through time.
 *
 * Layout: gates G = 3H stacked r | z | n (PyTorch). Per-step arrays of the whole sequence are
 * time-major: step t, row b, column j at (t*B + b)*W + j. Every kernel has one work item per
 * output element, returns early past its count (global sizes are rounded up), and evaluates
 * the reference's formulas in the reference's order (FP_CONTRACT is OFF in the prelude). */

/* The reference's two-branch sigmoid (src/reference/losses.rs `sigmoid`). */
inline REAL gru_sigmoid(const REAL v)
{
    if (v >= (REAL)0) return (REAL)1 / ((REAL)1 + exp(-v));
    const REAL e = exp(v);
    return e / ((REAL)1 + e);
}

/* One cell step t, one work item per (b, j) of [B, H]:
 *   r = σ(gi_r + gh_r),  z = σ(gi_z + gh_z),  n = tanh(gi_n + r·gh_n),  h' = (h − n)·z + n
 * gi_all [S, B, 3H] (x·W_ihᵀ + b_ih for every step), gh [B, 3H] (h·W_hhᵀ + b_hh of this step).
 * Writes r, z, n at step t of r_all, z_all, n_all [S, B, H], h' to h_next [B, H] and, when
 * keep_history is 1, to step t + 1 of h_history [S, B, H] (the inputs h_0 … h_{S−1} of the
 * weight gradient). Bounds: tolerance::sigmoid, tolerance::tanh per gate; the model's is
 * tolerance::training::composite. */
__kernel void gru_cell_forward(__global const REAL* restrict gi_all,
                               __global const REAL* restrict gh,
                               __global const REAL* restrict h,
                               __global REAL* restrict r_all, __global REAL* restrict z_all,
                               __global REAL* restrict n_all, __global REAL* restrict h_next,
                               __global REAL* restrict h_history, const uint batch,
                               const uint hidden, const uint step, const uint keep_history)
{
    const uint i = get_global_id(0);
    if (i >= batch * hidden) return;
    const uint b = i / hidden;
    const uint j = i - b * hidden;
    const size_t gates = (size_t)3 * hidden;
    __global const REAL* gi_row = gi_all + ((size_t)step * batch + b) * gates;
    __global const REAL* gh_row = gh + (size_t)b * gates;
    const REAL r = gru_sigmoid(gi_row[j] + gh_row[j]);
    const REAL z = gru_sigmoid(gi_row[hidden + j] + gh_row[hidden + j]);
    const REAL n = tanh(gi_row[2 * hidden + j] + r * gh_row[2 * hidden + j]);
    const REAL out = (h[i] - n) * z + n;
    const size_t at = (size_t)step * batch * hidden + i;
    r_all[at] = r;
    z_all[at] = z;
    n_all[at] = n;
    h_next[i] = out;
    if (keep_history) h_history[at + (size_t)batch * hidden] = out;
}

/* VJP of one cell step t, one work item per (b, j) of [B, H]. The upstream gradient is
 * g = g_a (has_b = 0) or g = g_a + g_b (has_b = 1: ∂h_direct + ∂h_linear of step t + 1):
 *   ∂n = g·(1 − z),  ∂z = g·(h − n),  ∂h_direct = g·z
 *   a_n = ∂n·(1 − n·n)                 ∂gi_n = a_n,  ∂gh_n = a_n·r,  ∂r = a_n·gh_n
 *   ∂gi_z = ∂gh_z = (∂z·(1 − z))·z     ∂gi_r = ∂gh_r = (∂r·(1 − r))·r
 * Writes ∂gi, ∂gh at step t of grad_gi_all, grad_gh_all [S, B, 3H], ∂gh also to
 * grad_gh_step [B, 3H] (the operand of ∂h_linear = ∂gh·W_hh), and ∂h_direct [B, H].
 * Only + − × in the reference's order: bitwise with the f32 reference given the same inputs. */
__kernel void gru_cell_backward(__global const REAL* restrict g_a,
                                __global const REAL* restrict g_b, const uint has_b,
                                __global const REAL* restrict r_all,
                                __global const REAL* restrict z_all,
                                __global const REAL* restrict n_all,
                                __global const REAL* restrict gh,
                                __global const REAL* restrict h,
                                __global REAL* restrict grad_gi_all,
                                __global REAL* restrict grad_gh_all,
                                __global REAL* restrict grad_gh_step,
                                __global REAL* restrict grad_h_direct, const uint batch,
                                const uint hidden, const uint step)
{
    const uint i = get_global_id(0);
    if (i >= batch * hidden) return;
    const uint b = i / hidden;
    const uint j = i - b * hidden;
    const size_t gates = (size_t)3 * hidden;
    const size_t at = (size_t)step * batch * hidden + i;
    const REAL g = has_b ? g_a[i] + g_b[i] : g_a[i];
    const REAL r = r_all[at];
    const REAL z = z_all[at];
    const REAL n = n_all[at];
    const REAL grad_n = g * ((REAL)1 - z);
    const REAL grad_z = g * (h[i] - n);
    const REAL a_n = grad_n * ((REAL)1 - n * n);
    const REAL a_z = (grad_z * ((REAL)1 - z)) * z;
    const REAL grad_r = a_n * gh[(size_t)b * gates + 2 * hidden + j];
    const REAL a_r = (grad_r * ((REAL)1 - r)) * r;
    const REAL a_hn = a_n * r;
    const size_t row = (size_t)b * gates;
    const size_t all_row = (size_t)step * batch * gates + row;
    grad_gi_all[all_row + j] = a_r;
    grad_gi_all[all_row + hidden + j] = a_z;
    grad_gi_all[all_row + 2 * hidden + j] = a_n;
    grad_gh_all[all_row + j] = a_r;
    grad_gh_all[all_row + hidden + j] = a_z;
    grad_gh_all[all_row + 2 * hidden + j] = a_hn;
    grad_gh_step[row + j] = a_r;
    grad_gh_step[row + hidden + j] = a_z;
    grad_gh_step[row + 2 * hidden + j] = a_hn;
    grad_h_direct[i] = g * z;
}

/* out_i = (…((0 + p_{S−1,i}) + p_{S−2,i}) + …) + p_{0,i} for parts [S, len]: the reference's
 * accumulation of per-step weight gradients (t = S−1 first, from zero). Exact order: bitwise
 * with the f32 reference given the same parts. */
__kernel void gru_sum_steps_reversed(__global const REAL* restrict parts,
                                     __global REAL* restrict out, const uint steps,
                                     const uint len)
{
    const uint i = get_global_id(0);
    if (i >= len) return;
    REAL acc = (REAL)0;
    for (uint s = steps; s > 0; --s) acc = acc + parts[(size_t)(s - 1) * len + i];
    out[i] = acc;
}

/* Bias gradient of a stacked gate array g [S, B, G]:
 *   out_j = Σ_{t = S−1 … 0} (Σ_{b = 0 … B−1} g_{t,b,j})
 * each inner sum sequential from zero (the reference's column sums of linear_backward), the
 * outer one as gru_sum_steps_reversed. Bound: γ_{B+S−1}·Σ|g| (tolerance::sum_axis's form). */
__kernel void gru_bias_gradient(__global const REAL* restrict grad_gates_all,
                                __global REAL* restrict out, const uint steps,
                                const uint batch, const uint gates)
{
    const uint j = get_global_id(0);
    if (j >= gates) return;
    REAL acc = (REAL)0;
    for (uint s = steps; s > 0; --s) {
        __global const REAL* block = grad_gates_all + (size_t)(s - 1) * batch * gates + j;
        REAL column = (REAL)0;
        for (uint b = 0; b < batch; ++b) column = column + block[(size_t)b * gates];
        acc = acc + column;
    }
    out[j] = acc;
}

/* Rows of a time-major [S·B, W] array in batch-major order: dst row b·S + t = src row t·B + b
 * (the order of the reference's embedding gradient rows). Exact copy. */
__kernel void gru_time_to_batch_major(__global const REAL* restrict src,
                                      __global REAL* restrict dst, const uint steps,
                                      const uint batch, const uint width)
{
    const uint i = get_global_id(0);
    if (i >= steps * batch * width) return;
    const uint row = i / width;
    const uint c = i - row * width;
    const uint b = row / steps;
    const uint t = row - b * steps;
    dst[i] = src[((size_t)t * batch + b) * width + c];
}
