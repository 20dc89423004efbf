/* Embedding lookup and its deterministic scatter-add backward (reference::embedding,
 * reference::embedding_backward). Ids are 64-bit (`long`), validated on the host. */

/* out[i, j] = table[ids[i], j]; a 2-D range (round_up(dim, ROW_WG), count). An id outside
 * 0..vocab (rejected on the host) gives NaN instead of an out-of-bounds read.  Exact. */
__kernel void embedding(__global const REAL* restrict table, __global const long* restrict ids,
                        __global REAL* restrict out, const uint vocab, const uint dim,
                        const uint count)
{
    const size_t j = get_global_id(0);
    const size_t i = get_global_id(1);
    if (j >= dim || i >= count) return;
    const long id = ids[i];
    if (id < 0 || id >= (long)vocab) {
        out[i * dim + j] = (REAL)NAN;
        return;
    }
    out[i * dim + j] = table[(size_t)id * dim + j];
}

/* grad_table[v, j] = sum_{i : ids[i] = v} grad_output[i, j], summed in index order i = 0, 1, ...
 * from 0 (the reference's order: bitwise equal, no atomics). One work-group per vocabulary row
 * v; its items take the columns j = lid, lid + ROW_WG, ... and scan the ids through tiles of
 * ROW_WG ids in local memory.  Bound: tolerance::embedding_backward (0 against the reference
 * in the same type). */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1)))
void embedding_backward(__global const long* restrict ids,
                        __global const REAL* restrict grad_output,
                        __global REAL* restrict grad_table, const uint vocab, const uint dim,
                        const uint count)
{
    __local long tile[ROW_WG];
    const uint v = get_group_id(0);
    if (v >= vocab) return; /* uniform per work-group */
    const uint lid = get_local_id(0);
    for (uint j0 = 0; j0 < dim; j0 += ROW_WG) {
        const uint j = j0 + lid;
        REAL acc = (REAL)0;
        for (uint i0 = 0; i0 < count; i0 += ROW_WG) {
            if (i0 + lid < count) tile[lid] = ids[i0 + lid];
            barrier(CLK_LOCAL_MEM_FENCE);
            const uint len = min((uint)ROW_WG, count - i0);
            if (j < dim) {
                for (uint t = 0; t < len; ++t) {
                    if (tile[t] == (long)v) acc = acc + grad_output[(size_t)(i0 + t) * dim + j];
                }
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        if (j < dim) grad_table[(size_t)v * dim + j] = acc;
    }
}
