/* Device limits for the benches and the report (src/opencl/bench.rs). Not conformance kernels:
 * built as their own program, f32 only, without the prelude. Each result is written so the
 * compiler cannot drop the work. */

/* y = x, one float per item, i < count: read + write bandwidth. The access pattern of the
 * elementwise kernels, which CPU compilers vectorise across items and GPUs coalesce. (A float4
 * per item measured 10-27 GB/s on PoCL, below the 22-29 GB/s of relu: its work-group
 * vectoriser interleaves the four lanes of each item.) */
__kernel void bench_copy(__global const float* restrict x, __global float* restrict y,
                         const uint count)
{
    const uint i = get_global_id(0);
    if (i >= count) return;
    y[i] = x[i];
}

/* Peak fused multiply-add rate: eight independent float8 chains per item, each step
 * v = fma(v, a, b) (2 flops per lane). With a < 1 and b small the values stay finite. */
__kernel void bench_fma(__global float* restrict out, const float a, const float b,
                        const uint iterations)
{
    const float s = (float)get_global_id(0) * 1e-7f;
    float8 v0 = (float8)(s), v1 = v0 + 1e-3f, v2 = v0 + 2e-3f, v3 = v0 + 3e-3f;
    float8 v4 = v0 + 4e-3f, v5 = v0 + 5e-3f, v6 = v0 + 6e-3f, v7 = v0 + 7e-3f;
    for (uint t = 0; t < iterations; ++t) {
        v0 = fma(v0, a, b); v1 = fma(v1, a, b); v2 = fma(v2, a, b); v3 = fma(v3, a, b);
        v4 = fma(v4, a, b); v5 = fma(v5, a, b); v6 = fma(v6, a, b); v7 = fma(v7, a, b);
    }
    const float8 t = ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7));
    out[get_global_id(0)] = ((t.s0 + t.s1) + (t.s2 + t.s3)) + ((t.s4 + t.s5) + (t.s6 + t.s7));
}

/* The same chains with an unfused multiply then add (what the conformance kernels may use:
 * FP_CONTRACT is off there). 2 flops per lane and step. */
#pragma OPENCL FP_CONTRACT OFF
__kernel void bench_mul_add(__global float* restrict out, const float a, const float b,
                            const uint iterations)
{
    const float s = (float)get_global_id(0) * 1e-7f;
    float8 v0 = (float8)(s), v1 = v0 + 1e-3f, v2 = v0 + 2e-3f, v3 = v0 + 3e-3f;
    float8 v4 = v0 + 4e-3f, v5 = v0 + 5e-3f, v6 = v0 + 6e-3f, v7 = v0 + 7e-3f;
    for (uint t = 0; t < iterations; ++t) {
        v0 = v0 * a + b; v1 = v1 * a + b; v2 = v2 * a + b; v3 = v3 * a + b;
        v4 = v4 * a + b; v5 = v5 * a + b; v6 = v6 * a + b; v7 = v7 * a + b;
    }
    const float8 t = ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7));
    out[get_global_id(0)] = ((t.s0 + t.s1) + (t.s2 + t.s3)) + ((t.s4 + t.s5) + (t.s6 + t.s7));
}

/* Launch latency: one work item that writes one value. */
__kernel void bench_empty(__global float* restrict out)
{
    if (get_global_id(0) == 0) out[0] = 0.0f;
}
