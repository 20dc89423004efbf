/* Optimizers, gradient storage, gradient clipping and the corrected standard deviation.
 * Same evaluation order as src/reference/optim.rs and src/reference/statistics.rs; every scalar
 * derived from a hyperparameter (1 - beta, bias corrections, 1 - lr*wd, counts) is computed on the
 * host exactly as the reference computes it and passed already rounded to REAL.
 * Flags are uniform over the launch: branches on them never diverge per element. */

/* Bits of the `flags` argument of sgd_step and adam_step. */
#define OPTIM_L2_DECAY 1u        /* d <- d + wd*theta (SGD), g <- g + wd*theta (Adam) */
#define OPTIM_DECOUPLED_DECAY 2u /* AdamW: theta <- theta*(1 - lr*wd) */
#define OPTIM_MOMENTUM 4u        /* SGD with a momentum buffer */
#define OPTIM_FIRST_STEP 8u      /* SGD: the buffer is initialised to d */
#define OPTIM_NESTEROV 16u       /* SGD: d <- d + mu*buf */
#define OPTIM_WRITE_LAST_STEP 32u /* also store s into last_step */

/* SGD, one fused pass, in place:
 *   d = g (+ wd*theta);  buf = d (first step) or mu*buf + (1 - dampening)*d;
 *   d = buf, or d + mu*buf (Nesterov);  s = lr*d;  theta <- theta - s.
 * Only correctly rounded + - *: bitwise equal to reference::optim::sgd_step in the same type.
 * Bound: tolerance::sgd_step_bounds.  momentum_buffer and last_step are not accessed when their
 * flag is off (the host then passes `parameters` as a placeholder, hence no `restrict`). */
__kernel /* elementwise: any work-group size */
void sgd_step(__global REAL* parameters, __global const REAL* restrict gradient,
              __global REAL* momentum_buffer, __global REAL* last_step,
              const REAL learning_rate, const REAL momentum, const REAL keep,
              const REAL weight_decay, const uint flags, const uint n)
{
    const size_t i = get_global_id(0);
    if (i >= n) return; /* global size is rounded up to a work-group multiple */
    const REAL theta = parameters[i];
    REAL d = gradient[i];
    if (flags & OPTIM_L2_DECAY) d = d + weight_decay * theta;
    if (flags & OPTIM_MOMENTUM) {
        REAL b;
        if (flags & OPTIM_FIRST_STEP) {
            b = d;
        } else {
            b = momentum * momentum_buffer[i] + keep * d;
        }
        momentum_buffer[i] = b;
        if (flags & OPTIM_NESTEROV) {
            d = d + momentum * b;
        } else {
            d = b;
        }
    }
    const REAL s = learning_rate * d;
    parameters[i] = theta - s;
    if (flags & OPTIM_WRITE_LAST_STEP) last_step[i] = s;
}

/* Adam / AdamW, one fused pass over parameters, gradient and both moments, in place:
 *   theta <- theta*decay_factor (AdamW)  or  g <- g + wd*theta (Adam L2);
 *   m <- b1*m + (1-b1)*g;  v <- b2*v + (1-b2)*(g*g);
 *   s = lr*((m/bc1) / (sqrt(v/bc2) + eps));  theta <- theta - s.
 * bc1 = 1 - b1^t and bc2 = 1 - b2^t come from the host.  Bitwise equal to
 * reference::optim::adam_step in double (/ and sqrt correctly rounded); in float / and sqrt are
 * allowed 2.5 and 3 ulp.  Bound: tolerance::adam_step_bounds.  last_step is not accessed without
 * OPTIM_WRITE_LAST_STEP (then a placeholder). */
__kernel /* elementwise: any work-group size */
void adam_step(__global REAL* parameters, __global const REAL* restrict gradient,
               __global REAL* restrict first_moment, __global REAL* restrict second_moment,
               __global REAL* last_step,
               const REAL beta1, const REAL one_minus_beta1, const REAL beta2,
               const REAL one_minus_beta2, const REAL bias_correction1,
               const REAL bias_correction2, const REAL learning_rate, const REAL eps,
               const REAL weight_decay, const REAL decay_factor, const uint flags, const uint n)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    REAL theta = parameters[i];
    REAL g = gradient[i];
    if (flags & OPTIM_DECOUPLED_DECAY) theta = theta * decay_factor;
    if (flags & OPTIM_L2_DECAY) g = g + weight_decay * theta;
    const REAL m = beta1 * first_moment[i] + one_minus_beta1 * g;
    const REAL v = beta2 * second_moment[i] + one_minus_beta2 * (g * g);
    const REAL m_hat = m / bias_correction1;
    const REAL v_hat = v / bias_correction2;
    const REAL s = learning_rate * (m_hat / (sqrt(v_hat) + eps));
    parameters[i] = theta - s;
    first_moment[i] = m;
    second_moment[i] = v;
    if (flags & OPTIM_WRITE_LAST_STEP) last_step[i] = s;
}

/* PyTorch .grad semantics: stored <- fresh (accumulate = 0) or stored + fresh (accumulate = 1). */
__kernel /* elementwise: any work-group size */
void store_gradients(__global REAL* restrict stored, __global const REAL* restrict fresh,
                     const uint accumulate, const uint n)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    if (accumulate) {
        stored[i] = stored[i] + fresh[i];
    } else {
        stored[i] = fresh[i];
    }
}

/* clip_grad_norm pass 1, once per tensor: work-group g sums x_i*x_i over
 * i = g*ROW_WG + lid + k*stride (stride = global size) sequentially, then a fixed tree;
 * partial[offset + g] = that sum.  Bound: tolerance::clip_grad_norm_bounds. */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void sum_squares_partials(__global const REAL* restrict x, __global REAL* restrict partial,
                          const uint offset, const uint n)
{
    __local REAL scratch[ROW_WG];
    const size_t stride = get_global_size(0);
    REAL sum = (REAL)0;
    for (size_t i = get_global_id(0); i < n; i += stride) sum += x[i] * x[i];
    sum = work_group_tree_sum(scratch, sum);
    if (get_local_id(0) == 0) partial[offset + get_group_id(0)] = sum;
}

/* clip_grad_norm pass 2, one work-group: N = sqrt(fixed-tree sum of partial[0..count)),
 * coef = max_norm/(N + offset) clamped at 1 (NaN propagates, as reference::optim::clip_grad_norm);
 * norm[0] = N, coefficient[0] = clamped coef. */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void clip_norm_coefficient(__global const REAL* restrict partial, __global REAL* restrict norm,
                           __global REAL* restrict coefficient, const REAL max_norm,
                           const REAL offset, const uint count)
{
    __local REAL scratch[ROW_WG];
    REAL sum = (REAL)0;
    for (uint i = get_local_id(0); i < count; i += ROW_WG) sum += partial[i];
    sum = work_group_tree_sum(scratch, sum);
    if (get_local_id(0) == 0) {
        const REAL total_norm = sqrt(sum);
        REAL c = max_norm / (total_norm + offset);
        if (c > (REAL)1) c = (REAL)1;
        norm[0] = total_norm;
        coefficient[0] = c;
    }
}

/* x_i <- x_i * coefficient[0] (the clip coefficient stays on the device). Exact when it is 1. */
__kernel /* elementwise: any work-group size */
void scale_by_device_scalar(__global REAL* restrict x, __global const REAL* restrict coefficient,
                            const uint n)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    x[i] = x[i] * coefficient[0];
}

/* clip_grad_value: x_i <- min(max(x_i, -c), c) by comparisons (NaN stays NaN, +-inf -> +-c).
 * Exact: bitwise equal to reference::optim::clip_grad_value. */
__kernel /* elementwise: any work-group size */
void clip_by_value(__global REAL* restrict x, const REAL limit, const uint n)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    const REAL g = x[i];
    if (g > limit) {
        x[i] = limit;
    } else if (g < -limit) {
        x[i] = -limit;
    }
}

/* std pass 1: partial[g] = fixed-tree sum of values over group g's strided elements;
 * differs[g] > 0 iff some value of the group differs from values[0] (NaN differs). */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void std_partial_sums(__global const REAL* restrict values, __global REAL* restrict partial,
                      __global REAL* restrict differs, const uint n)
{
    __local REAL scratch[ROW_WG];
    const size_t stride = get_global_size(0);
    const REAL first = values[0]; /* n >= 1: validated on the host */
    REAL sum = (REAL)0;
    REAL count = (REAL)0;
    for (size_t i = get_global_id(0); i < n; i += stride) {
        const REAL v = values[i];
        sum += v;
        if (v != first) count = (REAL)1;
    }
    sum = work_group_tree_sum(scratch, sum);
    count = work_group_tree_sum(scratch, count); /* a sum of 0/1 flags: > 0 iff any is 1 */
    if (get_local_id(0) == 0) {
        partial[get_group_id(0)] = sum;
        differs[get_group_id(0)] = count;
    }
}

/* std pass 2, one work-group: stats[0] = mean = (fixed-tree sum of partials)/n_real,
 * stats[3] = 1 if the values are not all equal, else 0. */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void std_mean(__global const REAL* restrict partial, __global const REAL* restrict differs,
              __global REAL* restrict stats, const REAL n_real, const uint count)
{
    __local REAL scratch[ROW_WG];
    REAL sum = (REAL)0;
    REAL flags = (REAL)0;
    for (uint i = get_local_id(0); i < count; i += ROW_WG) {
        sum += partial[i];
        flags += differs[i];
    }
    sum = work_group_tree_sum(scratch, sum);
    flags = work_group_tree_sum(scratch, flags);
    if (get_local_id(0) == 0) {
        stats[0] = sum / n_real;
        stats[3] = flags > (REAL)0 ? (REAL)1 : (REAL)0;
    }
}

/* std pass 3: partial[g] = fixed-tree sum of (v_i - mean)^2 over group g's strided elements. */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void std_partial_squares(__global const REAL* restrict values, __global const REAL* restrict stats,
                         __global REAL* restrict partial, const uint n)
{
    __local REAL scratch[ROW_WG];
    const size_t stride = get_global_size(0);
    const REAL mean = stats[0];
    REAL sum = (REAL)0;
    for (size_t i = get_global_id(0); i < n; i += stride) {
        const REAL d = values[i] - mean;
        sum += d * d;
    }
    sum = work_group_tree_sum(scratch, sum);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = sum;
}

/* std pass 4, one work-group: stats[1] = Q = fixed-tree sum of the partials,
 * stats[2] = std = sqrt(Q/divisor) (exactly 0 when all values are equal), out[0] = std.
 * Bound: tolerance::std_corrected. */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void std_finish(__global const REAL* restrict partial, __global REAL* stats,
                __global REAL* restrict out, const REAL divisor, const uint count)
{
    __local REAL scratch[ROW_WG];
    REAL sum = (REAL)0;
    for (uint i = get_local_id(0); i < count; i += ROW_WG) sum += partial[i];
    sum = work_group_tree_sum(scratch, sum);
    if (get_local_id(0) == 0) {
        REAL s = (REAL)0;
        if (stats[3] > (REAL)0) s = sqrt(sum / divisor);
        stats[1] = sum;
        stats[2] = s;
        out[0] = s;
    }
}

/* VJP of std: grad_i = (g*d_i)/(divisor*s), d_i = v_i - mean, with mean, Q and s from the
 * forward passes (stats); exactly 0 when the values are all equal or Q = 0.
 * Bound: tolerance::std_corrected_backward. */
__kernel /* elementwise: any work-group size */
void std_backward(__global const REAL* restrict values, __global const REAL* restrict stats,
                  __global REAL* restrict grad, const REAL grad_output, const REAL divisor,
                  const uint n)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    if (stats[3] > (REAL)0 && stats[1] != (REAL)0) {
        const REAL d = values[i] - stats[0];
        grad[i] = (grad_output * d) / (divisor * stats[2]);
    } else {
        grad[i] = (REAL)0;
    }
}
