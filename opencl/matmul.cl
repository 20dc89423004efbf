/* Matrix product C = A B, a: [m, k], b: [k, n], c: [m, n], row-major; k >= 1 (k = 0 is handled
 * on the host). Two launch shapes of the one kernel `matmul`, chosen at build time
 * (src/opencl/program.rs: MATMUL_REGISTER_BLOCKED, launch geometry program::matmul_geometry):
 *   - GPU-like devices (MATMUL_REGISTER_BLOCKED = 0): local-memory tiles, TILE x TILE
 *     work-groups over (round_up(n, TILE), round_up(m, TILE)) items, one element per item.
 *   - CPU devices (MATMUL_REGISTER_BLOCKED = 1): each work item computes a micro-tile of
 *     MATMUL_MR rows x 16 columns in registers (float16 vectors of B, A broadcast), work-groups of
 *     one item over (ceil(n / 16), ceil(m / MATMUL_MR)) items; the caches do the tiling.
 * Either way C_ij = sum_{p=0}^{k-1} A_ip * B_pj is summed in order p = 0, 1, ... from 0, one
 * product and one sum per step (the reference's order; FP_CONTRACT is off, so no product is
 * fused): bitwise equal to the reference in the same type.  Bound: tolerance::matmul. */
#ifndef TILE
#error "TILE (side of the square matmul tile) must be defined"
#endif
#ifndef MATMUL_REGISTER_BLOCKED
#define MATMUL_REGISTER_BLOCKED 0
#endif
#define MATMUL_MR 8

#if MATMUL_REGISTER_BLOCKED
#define MM_REAL16 ROWV_XCAT(REAL, 16)
/* Rows row0 .. row0 + MATMUL_MR - 1 (clamped to m - 1 for the loads; only real rows are
 * stored), columns col0 .. col0 + 15: vectors when the 16 columns exist, else one column at a
 * time. Every element's sum runs p = 0, 1, ..., k - 1 from 0 in both paths. */
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void matmul_blocked(__global const REAL* restrict a, __global const REAL* restrict b,
            __global REAL* restrict c, const uint m, const uint k, const uint n)
{
    const uint col0 = get_global_id(0) * 16;
    const uint row0 = get_global_id(1) * MATMUL_MR;
    if (row0 >= m || col0 >= n) return;
    __global const REAL* arow[MATMUL_MR];
    for (uint r = 0; r < MATMUL_MR; ++r) arow[r] = a + (size_t)min(row0 + r, m - 1) * k;
    if (col0 + 16 <= n) {
        MM_REAL16 acc0 = (MM_REAL16)(0), acc1 = (MM_REAL16)(0), acc2 = (MM_REAL16)(0),
                  acc3 = (MM_REAL16)(0), acc4 = (MM_REAL16)(0), acc5 = (MM_REAL16)(0),
                  acc6 = (MM_REAL16)(0), acc7 = (MM_REAL16)(0);
        __global const REAL* bp = b + col0;
        for (uint p = 0; p < k; ++p, bp += n) {
            const MM_REAL16 bv = vload16(0, bp);
            acc0 = acc0 + arow[0][p] * bv;
            acc1 = acc1 + arow[1][p] * bv;
            acc2 = acc2 + arow[2][p] * bv;
            acc3 = acc3 + arow[3][p] * bv;
            acc4 = acc4 + arow[4][p] * bv;
            acc5 = acc5 + arow[5][p] * bv;
            acc6 = acc6 + arow[6][p] * bv;
            acc7 = acc7 + arow[7][p] * bv;
        }
        const MM_REAL16 acc[MATMUL_MR] = {acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7};
        for (uint r = 0; r < MATMUL_MR && row0 + r < m; ++r)
            vstore16(acc[r], 0, c + (size_t)(row0 + r) * n + col0);
    } else {
        for (uint col = col0; col < n; ++col) {
            for (uint r = 0; r < MATMUL_MR && row0 + r < m; ++r) {
                REAL sum = (REAL)0;
                for (uint p = 0; p < k; ++p) sum = sum + arow[r][p] * b[(size_t)p * n + col];
                c[(size_t)(row0 + r) * n + col] = sum;
            }
        }
    }
}
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
