/* Scaled dot-product attention on the device (reference::attention, attention_backward).
 * Every product of the forward and the backward is one launch of attention_matmul over the
 * (batch, head) pairs; the softmax and its VJP are the row kernels of reduce.cl. */

/* C[b,h](i, j) = sum_{p=0}^{k-1} A[b,h](i, p) * B[b,h](p, j), summed in order p = 0, 1, ...
 * from 0 (the reference matmul's order, FP_CONTRACT off), with local-memory TILE x TILE tiles.
 * Each operand is addressed by strides: X[b,h](r, c) = X[b*x_sb + h*x_sh + r*x_sr + c*x_sc],
 * so transposes and the token-major layout [batch, seq, heads*head_dim] need no copy.
 * mode 0: C = sum.  mode 1 (scores): C = sum * scale + mask[b*n + j] (the reference's
 * `s * scale + m`, mask [batch, n]).  Launched on (round_up(n, TILE), round_up(m, TILE),
 * batch*heads) items in TILE x TILE x 1 work-groups, k >= 1; padded items load zeros and meet
 * every barrier, only the store is guarded.  Bound: tolerance::attention(_backward). */
__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void attention_matmul(__global const REAL* restrict a, __global const REAL* restrict b,
                      __global REAL* restrict c, __global const REAL* restrict mask,
                      const uint m, const uint k, const uint n, const uint heads,
                      const uint a_sb, const uint a_sh, const uint a_sr, const uint a_sc,
                      const uint b_sb, const uint b_sh, const uint b_sr, const uint b_sc,
                      const uint c_sb, const uint c_sh, const uint c_sr, const uint c_sc,
                      const REAL scale, const uint mode)
{
    __local REAL a_tile[TILE][TILE];
    __local REAL b_tile[TILE][TILE];
    const uint col = get_global_id(0);
    const uint row = get_global_id(1);
    const uint z = get_global_id(2);
    const uint batch = z / heads;
    const uint head = z % heads;
    const uint lc = get_local_id(0);
    const uint lr = get_local_id(1);
    const size_t a0 = (size_t)batch * a_sb + (size_t)head * a_sh;
    const size_t b0 = (size_t)batch * b_sb + (size_t)head * b_sh;
    REAL sum = (REAL)0;
    for (uint p0 = 0; p0 < k; p0 += TILE) {
        const uint pa = p0 + lc;
        const uint pb = p0 + lr;
        REAL av = (REAL)0;
        REAL bv = (REAL)0;
        if (row < m && pa < k) av = a[a0 + (size_t)row * a_sr + (size_t)pa * a_sc];
        if (pb < k && col < n) bv = b[b0 + (size_t)pb * b_sr + (size_t)col * b_sc];
        a_tile[lr][lc] = av;
        b_tile[lr][lc] = bv;
        barrier(CLK_LOCAL_MEM_FENCE);
        const uint len = min((uint)TILE, k - p0);
        for (uint q = 0; q < len; ++q) sum = sum + a_tile[lr][q] * b_tile[q][lc];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < m && col < n) {
        const size_t at = (size_t)batch * c_sb + (size_t)head * c_sh + (size_t)row * c_sr
                          + (size_t)col * c_sc;
        if (mode == 1) {
            c[at] = sum * scale + mask[(size_t)batch * n + col];
        } else {
            c[at] = sum;
        }
    }
}
