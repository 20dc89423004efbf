/* Matrix product with local-memory tiles. Built with -D TILE=<t> (t*t <= the device's max
 * work-group size); launched on a 2-D range of (round_up(n, TILE), round_up(m, TILE)) items in
 * work-groups of TILE x TILE.
 */
#ifndef TILE
#error "TILE (side of the square matmul tile) must be defined"
#endif

/* C_ij = sum_{p=0}^{k-1} A_ip * B_pj, summed in order p = 0, 1, ... from 0 (the reference's
 * order; FP_CONTRACT is off, so no product is fused).  Bound: tolerance::matmul.
 * a: [m, k], b: [k, n], c: [m, n], row-major; k >= 1 (k = 0 is handled on the host).
 * Items past m or n still load (zeros) and meet every barrier; only the store is guarded. */
__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void matmul(__global const REAL* restrict a, __global const REAL* restrict b,
            __global REAL* restrict c, const uint m, const uint k, const uint n)
{
    __local REAL a_tile[TILE][TILE];
    __local REAL b_tile[TILE][TILE];
    const uint col = get_global_id(0);
    const uint row = get_global_id(1);
    const uint lc = get_local_id(0);
    const uint lr = get_local_id(1);
    REAL sum = (REAL)0;
    for (uint p0 = 0; p0 < k; p0 += TILE) {
        const uint pa = p0 + lc; /* column of A this item loads */
        const uint pb = p0 + lr; /* row of B this item loads */
        REAL av = (REAL)0;
        REAL bv = (REAL)0;
        if (row < m && pa < k) av = a[(size_t)row * k + pa];
        if (pb < k && col < n) bv = b[(size_t)pb * n + col];
        a_tile[lr][lc] = av;
        b_tile[lr][lc] = bv;
        barrier(CLK_LOCAL_MEM_FENCE);
        const uint count = min((uint)TILE, k - p0); /* only real terms: same sum as the reference */
        for (uint q = 0; q < count; ++q) sum = sum + a_tile[lr][q] * b_tile[q][lc];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < m && col < n) c[(size_t)row * n + col] = sum;
}
