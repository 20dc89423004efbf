/* Prepended to every mloracle program. Built once per process per scalar type with
 *   -D REAL=float|double -D REAL_IS_DOUBLE=0|1 -D ROW_WG=<power of two>
 * Conformance builds use no relaxed-math options and no native_/half_ functions. */
#ifndef REAL
#error "REAL must be defined (-D REAL=float or -D REAL=double)"
#endif
#ifndef ROW_WG
#error "ROW_WG (work-group size of row kernels, a power of two) must be defined"
#endif
#if REAL_IS_DOUBLE
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
/* The OpenCL C default is ON: a*b + c could be fused. The reference never fuses implicitly. */
#pragma OPENCL FP_CONTRACT OFF

/* Max with NaN dominating and ties going to the smaller index: (m, k) absorbs (v, j). */
inline void absorb_max(REAL* m, uint* k, REAL v, uint j)
{
    if (isnan(*m)) return;
    if (isnan(v) || v > *m || (v == *m && j < *k)) { *m = v; *k = j; }
}

/* Fixed-tree sum of ROW_WG values in local memory; every work item gets the total.
 * The tree is the same on every run: results are bitwise reproducible. */
inline REAL work_group_tree_sum(__local REAL* scratch, REAL value)
{
    const uint lid = get_local_id(0);
    scratch[lid] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint step = ROW_WG / 2; step > 0; step >>= 1) {
        if (lid < step) scratch[lid] = scratch[lid] + scratch[lid + step];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const REAL total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}
