/* Matrix product with local-memory tiles. Built with -D TILE=<t> (t*t <= the device's max
 * work-group size); launched on a 2-D range of (round_up(n, TILE), round_up(m, TILE)) items in
 * work-groups of TILE x TILE.
 */
#ifndef TILE
#error "TILE (side of the square matmul tile) must be defined"
#endif

/* C_ij = sum_{p=0}^{k-1} op(A)_ip * op(B)_pj, summed in order p = 0, 1, ... from 0 (the
 * reference's order; FP_CONTRACT is off, so no product is fused).  Bound: tolerance::matmul.
 * op(A) [m, k] is a stored row-major [m, k], or its transpose when transpose_a (a stored
 * [k, m]); op(B) [k, n] is b stored [k, n], or its transpose when transpose_b (b stored [n, k]).
 * c: [m, n] row-major. Batches: get_global_id(2) = s selects the s-th contiguous matrix of
 * a, b and c. k = 0 stores zeros (the empty sum).
 * Items past m or n still load (zeros) and meet every barrier; only the store is guarded. */
__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void matmul(__global const REAL* restrict a, __global const REAL* restrict b,
            __global REAL* restrict c, const uint m, const uint k, const uint n,
            const uint transpose_a, const uint transpose_b)
{
    __local REAL a_tile[TILE][TILE];
    __local REAL b_tile[TILE][TILE];
    const uint col = get_global_id(0);
    const uint row = get_global_id(1);
    const size_t batch = get_global_id(2);
    a += batch * m * k;
    b += batch * k * n;
    c += batch * m * n;
    const uint lc = get_local_id(0);
    const uint lr = get_local_id(1);
    REAL sum = (REAL)0;
    for (uint p0 = 0; p0 < k; p0 += TILE) {
        const uint pa = p0 + lc; /* column of A this item loads */
        const uint pb = p0 + lr; /* row of B this item loads */
        REAL av = (REAL)0;
        REAL bv = (REAL)0;
        if (row < m && pa < k) av = transpose_a ? a[(size_t)pa * m + row] : a[(size_t)row * k + pa];
        if (pb < k && col < n) bv = transpose_b ? b[(size_t)col * k + pb] : b[(size_t)pb * n + col];
        a_tile[lr][lc] = av;
        b_tile[lr][lc] = bv;
        barrier(CLK_LOCAL_MEM_FENCE);
        const uint count = min((uint)TILE, k - p0); /* only real terms: same sum as the reference */
        for (uint q = 0; q < count; ++q) sum = sum + a_tile[lr][q] * b_tile[q][lc];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < m && col < n) c[(size_t)row * n + col] = sum;
}

/* y_ji = x_ij: x [rows, cols] row-major into y [cols, rows].  Exact (a copy): bitwise with
 * the reference.  Through a TILE x (TILE + 1) local tile (the padding column avoids bank
 * conflicts), so both the loads and the stores are coalesced. Launched on
 * (round_up(cols, TILE), round_up(rows, TILE)) items in TILE x TILE work-groups; padded items
 * meet the barrier and skip their guarded load and store. */
__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void transpose(__global const REAL* restrict x, __global REAL* restrict y, const uint rows,
               const uint cols)
{
    __local REAL tile[TILE][TILE + 1];
    const uint lc = get_local_id(0);
    const uint lr = get_local_id(1);
    const uint col0 = get_group_id(0) * TILE;
    const uint row0 = get_group_id(1) * TILE;
    if (row0 + lr < rows && col0 + lc < cols) tile[lr][lc] = x[(size_t)(row0 + lr) * cols + col0 + lc];
    barrier(CLK_LOCAL_MEM_FENCE);
    /* y row col0 + lr, column row0 + lc holds x[row0 + lc][col0 + lr] */
    if (col0 + lr < cols && row0 + lc < rows) y[(size_t)(col0 + lr) * rows + row0 + lc] = tile[lc][lr];
}
