/* Elementwise activations and their VJPs (src/reference/activations.rs). One work item per
 * element of a row-major array of `count` elements; the global size is rounded up to a
 * work-group multiple, so every kernel returns early past `count`.
 * Same formulas, same order of operations and same NaN conventions as the reference. Constants
 * (1/sqrt(2), 1/sqrt(2 pi)) come from the host, rounded to REAL as the reference rounds them.
 * OpenCL C reserves `tanh` and `half`, hence the kernel name tanh_forward and no `half`. */

/* y = x if x > 0 or x is NaN, else 0 (so -0 -> +0).  Exact: bitwise with the reference. */
__kernel void relu(__global const REAL* restrict x, __global REAL* restrict y, const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    const REAL v = x[i];
    if (v <= (REAL)0) y[i] = (REAL)0;
    else y[i] = v; /* v > 0 or NaN */
}

/* dx = 0 if x <= 0, else g (derivative 0 at 0; NaN x passes g).  Exact. */
__kernel void relu_backward(__global const REAL* restrict x, __global const REAL* restrict g,
                            __global REAL* restrict dx, const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    if (x[i] <= (REAL)0) dx[i] = (REAL)0;
    else dx[i] = g[i];
}

/* y = x if x > 0, else slope * x.  One rounding: bitwise with the reference. */
__kernel void leaky_relu(__global const REAL* restrict x, __global REAL* restrict y,
                         const REAL slope, const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    const REAL v = x[i];
    if (v > (REAL)0) y[i] = v;
    else y[i] = slope * v;
}

/* dx = g if x > 0, else g * slope (NaN x gives g * slope).  Bitwise with the reference. */
__kernel void leaky_relu_backward(__global const REAL* restrict x,
                                  __global const REAL* restrict g, __global REAL* restrict dx,
                                  const REAL slope, const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    if (x[i] > (REAL)0) dx[i] = g[i];
    else dx[i] = g[i] * slope;
}

/* y = 1 / (1 + exp(-x)) for x >= 0, exp(x) / (1 + exp(x)) otherwise (NaN takes the second
 * branch and stays NaN).  Both branches are computed from e = exp(-|x|), which is exp(-x) for
 * x >= 0 and exp(x) for x < 0, so each is the reference's formula with the same roundings;
 * the result is selected without a branch, which lets the work-group vectoriser run the
 * kernel in SIMD lanes.  Bound: tolerance::sigmoid */
__kernel void sigmoid(__global const REAL* restrict x, __global REAL* restrict y,
                      const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    const REAL v = x[i];
    const REAL e = exp(-fabs(v));
    const REAL positive = (REAL)1 / ((REAL)1 + e);
    const REAL negative = e / ((REAL)1 + e);
    y[i] = v >= (REAL)0 ? positive : negative;
}

/* dx = (g * (1 - y)) * y, from the output y.  Bound: tolerance::sigmoid_backward */
__kernel void sigmoid_backward(__global const REAL* restrict y, __global const REAL* restrict g,
                               __global REAL* restrict dx, const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    const REAL v = y[i];
    dx[i] = (g[i] * ((REAL)1 - v)) * v;
}

/* y = tanh(x).  Bound: tolerance::tanh (5 ulp) */
__kernel void tanh_forward(__global const REAL* restrict x, __global REAL* restrict y,
                           const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    y[i] = tanh(x[i]);
}

/* dx = g * (1 - y * y), from the output y.  Bound: tolerance::tanh_backward */
__kernel void tanh_backward(__global const REAL* restrict y, __global const REAL* restrict g,
                            __global REAL* restrict dx, const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    const REAL v = y[i];
    dx[i] = g[i] * ((REAL)1 - v * v);
}

/* y = (x * 0.5) * (1 + erf(x * inv_sqrt2)), erf 16 ulp.  Bound: tolerance::gelu */
__kernel void gelu(__global const REAL* restrict x, __global REAL* restrict y,
                   const REAL inv_sqrt2, const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    const REAL v = x[i];
    y[i] = (v * (REAL)0.5) * ((REAL)1 + erf(v * inv_sqrt2));
}

/* cdf = 0.5 * (1 + erf(x * inv_sqrt2)), pdf = exp((x * x) * -0.5) * inv_sqrt_2pi,
 * dx = g * (cdf + x * pdf), from the input x.  Bound: tolerance::gelu_backward */
__kernel void gelu_backward(__global const REAL* restrict x, __global const REAL* restrict g,
                            __global REAL* restrict dx, const REAL inv_sqrt2,
                            const REAL inv_sqrt_2pi, const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    const REAL v = x[i];
    const REAL cdf = (REAL)0.5 * ((REAL)1 + erf(v * inv_sqrt2));
    const REAL pdf = exp((v * v) * (REAL)-0.5) * inv_sqrt_2pi;
    dx[i] = g[i] * (cdf + v * pdf);
}

/* Vector helpers of device-resident training. `out` may be the same buffer as an input (no
 * restrict): each item reads its element before writing it. */

/* out_i = a_i + b_i.  One rounding. */
__kernel void vector_add(__global const REAL* a, __global const REAL* b, __global REAL* out,
                         const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    out[i] = a[i] + b[i];
}

/* out_i = x_i * alpha.  One rounding. */
__kernel void vector_scale(__global const REAL* x, __global REAL* out, const REAL alpha,
                           const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    out[i] = x[i] * alpha;
}

/* dst_i = src_i.  Exact. */
__kernel void vector_copy(__global const REAL* restrict src, __global REAL* restrict dst,
                          const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    dst[i] = src[i];
}

/* out_i = value.  Exact. */
__kernel void vector_fill(__global REAL* out, const REAL value, const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    out[i] = value;
}
