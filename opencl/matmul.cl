/* Matrix product C = op(A) op(B), op(A): [m, k], op(B): [k, n], c: [m, n], row-major, either
 * operand possibly stored transposed, in batches; k >= 1 (k = 0 is handled on the host). Two
 * kernels, chosen at build time
 * (src/opencl/program.rs: MATMUL_REGISTER_BLOCKED, launch geometry program::matmul_geometry):
 *   - GPU-like devices (MATMUL_REGISTER_BLOCKED = 0): local-memory tiles, TILE x TILE
 *     work-groups over (round_up(n, TILE), round_up(m, TILE)) items, one element per item.
 *   - CPU devices (MATMUL_REGISTER_BLOCKED = 1): `matmul_blocked`, each work item computes a
 *     micro-tile of MATMUL_MR rows x 16 columns in registers (float16 vectors of B, A
 *     broadcast), work-groups of one item over (ceil(n / 16), ceil(m / MATMUL_MR), batch)
 *     items; the caches do the tiling.
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
/* A_ip and B_pj of the (possibly transposed) operands: a stored [m, k] (or [k, m] when
 * transpose_a), b stored [k, n] (or [n, k] when transpose_b). */
#define MM_A(i, p) (transpose_a ? a[(size_t)(p) * m + (i)] : a[(size_t)(i) * k + (p)])
#define MM_B(p, j) (transpose_b ? b[(size_t)(j) * k + (p)] : b[(size_t)(p) * n + (j)])
/* The micro-tile's p loop: 8 rows x 16 columns, one product and one sum per element per step,
 * p = 0, 1, ..., k - 1 from 0. A_AT(r) is A at row row0 + r (clamped) and column p; B_VEC is
 * the 16 values B_p,col0..col0+15. */
#define MM_MICRO_TILE(A_AT, B_VEC, B_NEXT)                                                   \
    for (uint p = 0; p < k; ++p) {                                                         \
        const MM_REAL16 bv = B_VEC;                                                        \
        acc0 = acc0 + A_AT(0) * bv;                                                        \
        acc1 = acc1 + A_AT(1) * bv;                                                        \
        acc2 = acc2 + A_AT(2) * bv;                                                        \
        acc3 = acc3 + A_AT(3) * bv;                                                        \
        acc4 = acc4 + A_AT(4) * bv;                                                        \
        acc5 = acc5 + A_AT(5) * bv;                                                        \
        acc6 = acc6 + A_AT(6) * bv;                                                        \
        acc7 = acc7 + A_AT(7) * bv;                                                        \
        B_NEXT;                                                                            \
    }
/* A stored [m, k]: row pointers; stored [k, m]: the clamped row index into row p. */
#define MM_A_ROWS(r) arow[r][p]
#define MM_A_COLS(r) a[(size_t)p * m + ridx[r]]
/* B stored [k, n]: one contiguous vector per p; stored [n, k]: 16 strided loads (the 16
 * columns' rows stay in cache across consecutive p). */
#define MM_B_ROWS vload16(0, bp)
inline MM_REAL16 mm_b_columns(__global const REAL* restrict b, const uint col0, const uint k,
                              const uint p)
{
    __global const REAL* q = b + (size_t)col0 * k + p;
    const size_t s = k;
    return (MM_REAL16)(q[0], q[s], q[2 * s], q[3 * s], q[4 * s], q[5 * s], q[6 * s], q[7 * s],
                       q[8 * s], q[9 * s], q[10 * s], q[11 * s], q[12 * s], q[13 * s],
                       q[14 * s], q[15 * s]);
}
#define MM_B_COLS mm_b_columns(b, col0, k, p)

/* Rows row0 .. row0 + MATMUL_MR - 1 (clamped to m - 1 for the loads; only real rows are
 * stored), columns col0 .. col0 + 15 of the product s = get_global_id(2) of a batch of
 * contiguous matrices (a + s m k, b + s k n, c + s m n): vectors when the 16 columns exist,
 * else one column at a time. Every element's sum runs p = 0, 1, ..., k - 1 from 0 in every
 * path and for every transposition, so the result is bitwise the reference's. */
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void matmul_blocked(__global const REAL* restrict a, __global const REAL* restrict b,
            __global REAL* restrict c, const uint m, const uint k, const uint n,
            const uint transpose_a, const uint transpose_b)
{
    const uint col0 = get_global_id(0) * 16;
    const uint row0 = get_global_id(1) * MATMUL_MR;
    const size_t batch = get_global_id(2);
    if (row0 >= m || col0 >= n) return;
    a += batch * m * k;
    b += batch * k * n;
    c += batch * m * n;
    uint ridx[MATMUL_MR];
    __global const REAL* arow[MATMUL_MR];
    for (uint r = 0; r < MATMUL_MR; ++r) {
        ridx[r] = min(row0 + r, m - 1);
        arow[r] = a + (size_t)ridx[r] * k;
    }
    if (col0 + 16 <= n) {
        MM_REAL16 acc0 = (MM_REAL16)(0), acc1 = (MM_REAL16)(0), acc2 = (MM_REAL16)(0),
                  acc3 = (MM_REAL16)(0), acc4 = (MM_REAL16)(0), acc5 = (MM_REAL16)(0),
                  acc6 = (MM_REAL16)(0), acc7 = (MM_REAL16)(0);
        if (!transpose_b) {
            __global const REAL* bp = b + col0;
            if (!transpose_a) {
                MM_MICRO_TILE(MM_A_ROWS, MM_B_ROWS, bp += n)
            } else {
                MM_MICRO_TILE(MM_A_COLS, MM_B_ROWS, bp += n)
            }
        } else if (!transpose_a) {
            MM_MICRO_TILE(MM_A_ROWS, MM_B_COLS, (void)0)
        } else {
            MM_MICRO_TILE(MM_A_COLS, MM_B_COLS, (void)0)
        }
        const MM_REAL16 acc[MATMUL_MR] = {acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7};
        for (uint r = 0; r < MATMUL_MR && row0 + r < m; ++r)
            vstore16(acc[r], 0, c + (size_t)(row0 + r) * n + col0);
    } else {
        for (uint col = col0; col < n; ++col) {
            for (uint r = 0; r < MATMUL_MR && row0 + r < m; ++r) {
                REAL sum = (REAL)0;
                for (uint p = 0; p < k; ++p) sum = sum + MM_A(row0 + r, p) * MM_B(p, col);
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
