/* Counter-based random numbers: Philox4x32-10, bit for bit src/rng.rs (Random123
 * philox4x32_R(10, ctr, key)). The stream key' = RandomKey::philox_key() is derived on the host
 * (rng.rs) and passed as two words; element i of the stream is
 *   bits(i) = philox4x32_10([lo(i / 4), hi(i / 4), 0, 0], key')[i mod 4].
 * Integer arithmetic only: the bits, and the dropout masks made from them, are exact. */

#define PHILOX_M4X32_0 0xD2511F53u
#define PHILOX_M4X32_1 0xCD9E8D57u
#define PHILOX_W32_0 0x9E3779B9u
#define PHILOX_W32_1 0xBB67AE85u

/* One round: [hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)]. */
inline uint4 philox_round(const uint4 c, const uint k0, const uint k1)
{
    const uint hi0 = mul_hi(PHILOX_M4X32_0, c.x);
    const uint lo0 = PHILOX_M4X32_0 * c.x;
    const uint hi1 = mul_hi(PHILOX_M4X32_1, c.z);
    const uint lo1 = PHILOX_M4X32_1 * c.z;
    return (uint4)(hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0);
}

/* Ten rounds, the key bumped by (W0, W1) mod 2^32 before rounds 2..10. */
inline uint4 philox4x32_10(uint4 c, uint k0, uint k1)
{
    c = philox_round(c, k0, k1);
    for (uint round = 1; round < 10; ++round) {
        k0 += PHILOX_W32_0;
        k1 += PHILOX_W32_1;
        c = philox_round(c, k0, k1);
    }
    return c;
}

/* The four words of counter block `block` (elements 4*block .. 4*block + 3). */
inline uint4 philox_block(const ulong block, const uint k0, const uint k1)
{
    return philox4x32_10((uint4)((uint)block, (uint)(block >> 32), 0u, 0u), k0, k1);
}

inline uint philox_word(const uint4 words, const uint lane)
{
    return lane == 0 ? words.x : lane == 1 ? words.y : lane == 2 ? words.z : words.w;
}

/* out[t] = bits(offset + t), t < n (for the bit-for-bit tests against rng.rs). */
__kernel void random_bits(__global uint* restrict out, const uint k0, const uint k1,
                          const ulong offset, const uint n)
{
    const size_t t = get_global_id(0);
    if (t >= n) return;
    const ulong index = offset + (ulong)t;
    out[t] = philox_word(philox_block(index / 4, k0, k1), (uint)(index % 4));
}

/* Inverted dropout, one work-item per counter block of four elements:
 *   y_i = x_i * m_i,  m_i = scale if bits(i) >= threshold else 0,  threshold = ceil(p 2^32)
 * (reference::dropout; the mask is never stored: the backward calls this kernel on the
 * upstream gradient with the same key). m_i = (REAL)keep * scale is exact, so y_i has one
 * rounding, as in the reference.  Bound: tolerance::dropout (bitwise equal in the same type). */
__kernel void dropout(__global const REAL* restrict x, __global REAL* restrict y,
                      const uint k0, const uint k1, const ulong threshold, const REAL scale,
                      const uint n)
{
    const size_t block = get_global_id(0);
    const size_t first = block * 4;
    if (first >= n) return;
    const uint4 words = philox_block((ulong)block, k0, k1);
    const uint w[4] = {words.x, words.y, words.z, words.w};
    for (uint lane = 0; lane < 4; ++lane) {
        const size_t i = first + lane;
        if (i < n) y[i] = x[i] * ((REAL)((ulong)w[lane] >= threshold) * scale);
    }
}

/* The keep mask of dropout as bytes (1 = kept), for the Backend API's returned mask. */
__kernel void dropout_mask(__global uchar* restrict mask, const uint k0, const uint k1,
                           const ulong threshold, const uint n)
{
    const size_t block = get_global_id(0);
    const size_t first = block * 4;
    if (first >= n) return;
    const uint4 words = philox_block((ulong)block, k0, k1);
    const uint w[4] = {words.x, words.y, words.z, words.w};
    for (uint lane = 0; lane < 4; ++lane) {
        const size_t i = first + lane;
        if (i < n) mask[i] = (uchar)((ulong)w[lane] >= threshold);
    }
}

/* dropout_backward with a given mask: dx_i = g_i * ((REAL)(mask_i != 0) * scale). */
__kernel void dropout_backward_masked(__global const REAL* restrict g,
                                      __global const uchar* restrict mask,
                                      __global REAL* restrict dx, const REAL scale, const uint n)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    dx[i] = g[i] * ((REAL)(mask[i] != 0) * scale);
}
