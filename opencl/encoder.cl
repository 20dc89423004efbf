/* Kernels only the device encoder needs (src/opencl/train/encoder.rs): the embedding sum and
 * its position gradient, the pooled head's first-token gather/scatter, and scaled dot-product
 * attention with an optional causal mask, token-major ([batch, seq, heads*head_dim], how
 * x*W^T comes out of a matmul).  Every sum runs sequentially in index order from 0, the
 * reference's order (reference::matmul, Encoder::loss_and_gradients), FP_CONTRACT off. */

/* embedded[r, j] = (tokens[r, j] + position[r % seq, j]) + token_type[j], the reference's
 * order (Encoder::forward_cache).  Exact up to the two roundings of the reference.  One item
 * per element of the [rows, d] output. */
__kernel void encoder_embed_sum(__global const REAL* restrict tokens,
                                __global const REAL* restrict position,
                                __global const REAL* restrict token_type,
                                __global REAL* restrict out, const uint rows, const uint seq,
                                const uint d)
{
    const uint i = get_global_id(0);
    if (i >= rows * d) return;
    const uint r = i / d;
    const uint j = i % d;
    out[i] = (tokens[i] + position[(size_t)(r % seq) * d + j]) + token_type[j];
}

/* grad_position[s, j] = sum_{b=0}^{batch-1} g[b*seq + s, j] (sequential in b from 0) for
 * s < seq, 0 for seq <= s < max_positions: the reference's loop over the rows of g in order.
 * Every element of grad_position is written.  One item per element of [max_positions, d]. */
__kernel void encoder_position_grad(__global const REAL* restrict g,
                                    __global REAL* restrict grad_position, const uint batch,
                                    const uint seq, const uint max_positions, const uint d)
{
    const uint i = get_global_id(0);
    if (i >= max_positions * d) return;
    const uint s = i / d;
    const uint j = i % d;
    REAL sum = (REAL)0;
    if (s < seq) {
        for (uint b = 0; b < batch; ++b) sum = sum + g[((size_t)b * seq + s) * d + j];
    }
    grad_position[i] = sum;
}

/* first[b, j] = x[b*seq, j] (the pooled head's first token).  Exact.  One item per element of
 * [batch, d]. */
__kernel void encoder_gather_first(__global const REAL* restrict x, __global REAL* restrict first,
                                   const uint batch, const uint seq, const uint d)
{
    const uint i = get_global_id(0);
    if (i >= batch * d) return;
    const uint b = i / d;
    const uint j = i % d;
    first[i] = x[((size_t)b * seq) * d + j];
}

/* VJP of encoder_gather_first: gx[r, j] = r % seq == 0 ? g_first[r / seq, j] : 0.  Exact; every
 * element written.  One item per element of [batch*seq, d]. */
__kernel void encoder_scatter_first(__global const REAL* restrict g_first,
                                    __global REAL* restrict gx, const uint batch, const uint seq,
                                    const uint d)
{
    const uint i = get_global_id(0);
    if (i >= batch * seq * d) return;
    const uint r = i / d;
    const uint j = i % d;
    gx[i] = (r % seq == 0) ? g_first[(size_t)(r / seq) * d + j] : (REAL)0;
}

/* Token-major addressing: element (b, t, h, p) of a [batch, seq, heads*head_dim] tensor. */
#define TOKEN_MAJOR(b, t, h, p) ((((size_t)(b) * seq + (t)) * heads + (h)) * head_dim + (p))
/* Element (b, h, i, j) of a [batch, heads, seq, seq] score/probability tensor. */
#define SCORE_AT(b, h, i, j) ((((size_t)(b) * heads + (h)) * seq + (i)) * seq + (j))

/* scores[b,h,i,j] = (sum_p q[b,i,h,p] * k[b,j,h,p]) * scale + mask_ij, the sum sequential in p
 * from 0, mask_ij = (causal && j > i) ? masked : key_mask[b, j]: the reference's
 * attention_scores with Encoder::attend's causal_mask (keys after i *replaced* by `masked`,
 * = round_T(-1e9)).  Global (seq, seq, batch*heads) over (j, i, bh). */
__kernel void encoder_attention_scores(__global const REAL* restrict q,
                                       __global const REAL* restrict k,
                                       __global const REAL* restrict key_mask,
                                       __global REAL* restrict scores, const uint batch,
                                       const uint heads, const uint seq, const uint head_dim,
                                       const REAL scale, const REAL masked, const uint causal)
{
    const uint j = get_global_id(0);
    const uint i = get_global_id(1);
    const uint bh = get_global_id(2);
    if (j >= seq || i >= seq || bh >= batch * heads) return;
    const uint b = bh / heads;
    const uint h = bh % heads;
    REAL sum = (REAL)0;
    for (uint p = 0; p < head_dim; ++p) sum = sum + q[TOKEN_MAJOR(b, i, h, p)] * k[TOKEN_MAJOR(b, j, h, p)];
    const REAL mask = (causal != 0 && j > i) ? masked : key_mask[(size_t)b * seq + j];
    scores[SCORE_AT(b, h, i, j)] = sum * scale + mask;
}

/* out[b,i,h,p] = sum_j probs[b,h,i,j] * v[b,j,h,p] (sequential in j from 0): O = P*V.
 * Global (heads*head_dim, batch*seq) over (h*head_dim + p, b*seq + i). */
__kernel void encoder_attention_context(__global const REAL* restrict probs,
                                        __global const REAL* restrict v,
                                        __global REAL* restrict out, const uint batch,
                                        const uint heads, const uint seq, const uint head_dim)
{
    const uint c = get_global_id(0);
    const uint r = get_global_id(1);
    if (c >= heads * head_dim || r >= batch * seq) return;
    const uint b = r / seq;
    const uint i = r % seq;
    const uint h = c / head_dim;
    const uint p = c % head_dim;
    REAL sum = (REAL)0;
    for (uint j = 0; j < seq; ++j) sum = sum + probs[SCORE_AT(b, h, i, j)] * v[TOKEN_MAJOR(b, j, h, p)];
    out[TOKEN_MAJOR(b, i, h, p)] = sum;
}

/* The scores' gradient, one query row (b, h, i) per item (reference::attention_backward):
 *   dP_ij = sum_p g[b,i,h,p] * v[b,j,h,p]          (G*V^T, sequential in p)
 *   s_i   = sum_j dP_ij * P_ij                      (sequential in j)
 *   dS_ij = (P_ij * (dP_ij - s_i)) * scale          (softmax_rows_backward, then * scale)
 * dP is staged in grad_scores and overwritten by dS.  Global (batch*heads*seq). */
__kernel void encoder_attention_grad_scores(__global const REAL* restrict probs,
                                            __global const REAL* restrict g,
                                            __global const REAL* restrict v,
                                            __global REAL* restrict grad_scores,
                                            const uint batch, const uint heads, const uint seq,
                                            const uint head_dim, const REAL scale)
{
    const uint row = get_global_id(0);
    if (row >= batch * heads * seq) return;
    const uint i = row % seq;
    const uint bh = row / seq;
    const uint b = bh / heads;
    const uint h = bh % heads;
    REAL s = (REAL)0;
    for (uint j = 0; j < seq; ++j) {
        REAL dp = (REAL)0;
        for (uint p = 0; p < head_dim; ++p) dp = dp + g[TOKEN_MAJOR(b, i, h, p)] * v[TOKEN_MAJOR(b, j, h, p)];
        grad_scores[SCORE_AT(b, h, i, j)] = dp;
        s = s + dp * probs[SCORE_AT(b, h, i, j)];
    }
    for (uint j = 0; j < seq; ++j) {
        const size_t at = SCORE_AT(b, h, i, j);
        grad_scores[at] = (probs[at] * (grad_scores[at] - s)) * scale;
    }
}

/* dQ = dS*K, dK = dS^T*Q, dV = P^T*G, token-major, each sum sequential from 0:
 *   dq[b,t,h,p] = sum_j dS[b,h,t,j] * k[b,j,h,p]
 *   dk[b,t,h,p] = sum_i dS[b,h,i,t] * q[b,i,h,p]
 *   dv[b,t,h,p] = sum_i  P[b,h,i,t] * g[b,i,h,p]
 * Under the causal mask the reference runs one query at a time and accumulates dK, dV over the
 * queries in order from zero: the same sequential sums.  Global (heads*head_dim, batch*seq). */
__kernel void encoder_attention_grad_qkv(__global const REAL* restrict q,
                                         __global const REAL* restrict k,
                                         __global const REAL* restrict probs,
                                         __global const REAL* restrict grad_scores,
                                         __global const REAL* restrict g,
                                         __global REAL* restrict grad_q,
                                         __global REAL* restrict grad_k,
                                         __global REAL* restrict grad_v, const uint batch,
                                         const uint heads, const uint seq, const uint head_dim)
{
    const uint c = get_global_id(0);
    const uint r = get_global_id(1);
    if (c >= heads * head_dim || r >= batch * seq) return;
    const uint b = r / seq;
    const uint t = r % seq;
    const uint h = c / head_dim;
    const uint p = c % head_dim;
    REAL dq = (REAL)0;
    REAL dk = (REAL)0;
    REAL dv = (REAL)0;
    for (uint j = 0; j < seq; ++j) {
        dq = dq + grad_scores[SCORE_AT(b, h, t, j)] * k[TOKEN_MAJOR(b, j, h, p)];
        dk = dk + grad_scores[SCORE_AT(b, h, j, t)] * q[TOKEN_MAJOR(b, j, h, p)];
        dv = dv + probs[SCORE_AT(b, h, j, t)] * g[TOKEN_MAJOR(b, j, h, p)];
    }
    const size_t at = TOKEN_MAJOR(b, t, h, p);
    grad_q[at] = dq;
    grad_k[at] = dk;
    grad_v[at] = dv;
}

#undef TOKEN_MAJOR
#undef SCORE_AT
