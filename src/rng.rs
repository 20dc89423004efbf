//! The one counter-based random number generator shared by every backend (STYLE §4.13).
//!
//! Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3",
//! SC 2011), as in Random123 and PyTorch's CUDA generator: a pure function of a 128-bit
//! counter and a 64-bit key, with no state and no dependence on evaluation order, so a kernel
//! work-item can compute element `i`'s random bits without reference to any other element.
//!
//! Keyed API: a [`RandomKey`] `{ seed, step, tensor_id }` names one random stream (for example
//! the dropout mask of one layer at one training step); element `i` of that stream is
//! [`RandomKey::bits`]`(i)`, and the floats are exact functions of those bits:
//! ```text
//! key'      = philox4x32_10([lo(step), hi(step), lo(tensor_id), hi(tensor_id)], [lo(seed), hi(seed)])[0..2]
//! bits(i)   = philox4x32_10([lo(i / 4), hi(i / 4), 0, 0], key')[i mod 4]
//! uniform_f32(i) = (bits(i) >> 8) as f32 · 2^-24     ∈ {0, 2^-24, …, 1 − 2^-24}
//! uniform(i)     = bits(i) as f64 · 2^-32             ∈ {0, 2^-32, …, 1 − 2^-32}
//! ```
//! `lo`/`hi` are the low and high 32-bit halves. Both conversions are exact (24 bits fit an f32
//! significand, 32 bits an f64 one) and the scaling by a power of two is exact, so OpenCL C
//! reproduces them bit for bit with integer ops and one conversion:
//! `(float)(bits >> 8) * 0x1.0p-24f` and `(double)bits * 0x1.0p-32`.
//! A dropout decision `uniform(i) ≥ p` is the integer test `bits(i) ≥ ⌈p·2^32⌉`
//! ([`dropout_threshold`]), so a device without fp64 reproduces masks exactly too.
//!
//! The derived key `key'` makes streams of distinct `(step, tensor_id)` pairs independent
//! pseudo-random keys; two pairs collide only if Philox's first two output words do (about
//! `N²/2^65` for `N` streams under one seed).

use ndarray::{Array, Dimension, IntoDimension};

use crate::{validate, Error, Result, Scalar};

/// Philox multiplier for counter word 0 (Random123 `PHILOX_M4x32_0`).
pub const PHILOX_M4X32_0: u32 = 0xD251_1F53;
/// Philox multiplier for counter word 2 (Random123 `PHILOX_M4x32_1`).
pub const PHILOX_M4X32_1: u32 = 0xCD9E_8D57;
/// Weyl increment of key word 0 (golden ratio, Random123 `PHILOX_W32_0`).
pub const PHILOX_W32_0: u32 = 0x9E37_79B9;
/// Weyl increment of key word 1 (√3 − 1, Random123 `PHILOX_W32_1`).
pub const PHILOX_W32_1: u32 = 0xBB67_AE85;

/// High and low 32-bit halves of the 64-bit product `a·b`.
const fn mul_hi_lo(a: u32, b: u32) -> (u32, u32) {
    let product = (a as u64) * (b as u64);
    ((product >> 32) as u32, product as u32)
}

/// One Philox4x32 round (Random123 `_philox4x32round`).
const fn philox_round(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (hi0, lo0) = mul_hi_lo(PHILOX_M4X32_0, counter[0]);
    let (hi1, lo1) = mul_hi_lo(PHILOX_M4X32_1, counter[2]);
    [
        hi1 ^ counter[1] ^ key[0],
        lo1,
        hi0 ^ counter[3] ^ key[1],
        lo0,
    ]
}

/// Philox4x32 with 10 rounds: a bijection of the 128-bit counter for each 64-bit key.
/// ```text
/// round(c, k) = [hi(M1·c2) ⊕ c1 ⊕ k0,  lo(M1·c2),  hi(M0·c0) ⊕ c3 ⊕ k1,  lo(M0·c0)]
/// out = round^10, the key bumped by (W0, W1) (mod 2^32) before rounds 2..10
/// M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85
/// ```
/// Random123 `philox4x32_R(10, ctr, key)`; PyTorch's CUDA generator uses the same function.
/// Checked against Random123's `kat_vectors`. Total: no input is invalid.
pub const fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = philox_round(counter, key);
    let mut k = key;
    let mut round = 1;
    while round < 10 {
        k = [
            k[0].wrapping_add(PHILOX_W32_0),
            k[1].wrapping_add(PHILOX_W32_1),
        ];
        c = philox_round(c, k);
        round += 1;
    }
    c
}

/// Names one random stream: a seed, a training step and a tensor (for example one dropout
/// layer or one parameter). See the module doc for how the three become a Philox key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RandomKey {
    /// The run's seed.
    pub seed: u64,
    /// The training step (or 0 for initialisation).
    pub step: u64,
    /// Which tensor or layer draws from the stream.
    pub tensor_id: u64,
}

const fn split(value: u64) -> (u32, u32) {
    (value as u32, (value >> 32) as u32)
}

impl RandomKey {
    /// The Philox key of this stream:
    /// ```text
    /// key' = philox4x32_10([lo(step), hi(step), lo(tensor_id), hi(tensor_id)], [lo(seed), hi(seed)])[0..2]
    /// ```
    pub const fn philox_key(&self) -> [u32; 2] {
        let (step_lo, step_hi) = split(self.step);
        let (tensor_lo, tensor_hi) = split(self.tensor_id);
        let (seed_lo, seed_hi) = split(self.seed);
        let out = philox4x32_10([step_lo, step_hi, tensor_lo, tensor_hi], [seed_lo, seed_hi]);
        [out[0], out[1]]
    }

    /// The 32 random bits of element `index`:
    /// ```text
    /// bits(i) = philox4x32_10([lo(i / 4), hi(i / 4), 0, 0], key')[i mod 4]
    /// ```
    /// Consecutive groups of four indices share one Philox call (as PyTorch's generator does).
    pub const fn bits(&self, index: u64) -> u32 {
        let (block_lo, block_hi) = split(index / 4);
        philox4x32_10([block_lo, block_hi, 0, 0], self.philox_key())[(index % 4) as usize]
    }

    /// A uniform f32 in `[0, 1)` with 24 random bits, exactly:
    /// ```text
    /// uniform_f32(i) = (bits(i) >> 8) as f32 · 2^-24
    /// ```
    /// OpenCL C: `(float)(bits >> 8) * 0x1.0p-24f` (both operations exact).
    pub fn uniform_f32(&self, index: u64) -> f32 {
        (self.bits(index) >> 8) as f32 * TWO_POW_MINUS_24
    }

    /// A uniform f64 in `[0, 1)` with 32 random bits, exactly:
    /// ```text
    /// uniform(i) = bits(i) as f64 · 2^-32
    /// ```
    /// OpenCL C: `(double)bits * 0x1.0p-32` (both operations exact). Used by dropout masks
    /// (through the equivalent integer test of [`dropout_threshold`]) and by the initialisers.
    pub fn uniform(&self, index: u64) -> f64 {
        f64::from(self.bits(index)) * TWO_POW_MINUS_32
    }
}

/// `2^-24`, exact in f32.
const TWO_POW_MINUS_24: f32 = 1.0 / 16_777_216.0;
/// `2^-32`, exact in f64.
const TWO_POW_MINUS_32: f64 = 1.0 / 4_294_967_296.0;

/// The integer form of the dropout test `uniform(i) ≥ p`:
/// ```text
/// uniform(i) ≥ p  ⇔  bits(i) ≥ t,   t = ⌈p·2^32⌉ ∈ [0, 2^32]
/// ```
/// Exact because `uniform(i) = bits(i)·2^-32` and `p·2^32` are both exact in f64. A kernel
/// receives `t` from the host and compares integers. Keep probability `(2^32 − t)/2^32`, within
/// `2^-32` of `1 − p`. Errors: `InvalidParameter` unless `0 ≤ p < 1`.
pub fn dropout_threshold(p: f64) -> Result<u64> {
    validate::probability("dropout_threshold", "p", p)?;
    let scaled = (p * 4_294_967_296.0).ceil();
    // 0 ≤ scaled ≤ 2^32 after validation, so the conversion is exact.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "0 ≤ scaled ≤ 2^32 is an integer"
    )]
    Ok(scaled as u64)
}

/// Fill an array of `shape` from element values `value(i)` at row-major logical index `i`.
fn fill<T: Scalar, D: Dimension>(
    op: &'static str,
    shape: D,
    value: impl Fn(u64) -> f64,
) -> Result<Array<T, D>> {
    let count = shape.size_checked().ok_or(Error::TooLarge {
        op,
        what: "element count",
        value: u128::MAX,
        limit: usize::MAX as u128,
    })?;
    let mut values: Vec<T> = Vec::new();
    // An allocation the host cannot make is a typed error, not an abort or a capacity panic.
    values
        .try_reserve_exact(count)
        .map_err(|_| Error::TooLarge {
            op,
            what: "bytes",
            value: (count as u128) * (std::mem::size_of::<T>() as u128),
            limit: isize::MAX as u128,
        })?;
    values.extend((0..count as u64).map(|i| T::narrow(value(i))));
    Array::from_shape_vec(shape, values).map_err(|e| match e.kind() {
        // ndarray also bounds the product of the non-zero axis lengths by isize::MAX.
        ndarray::ErrorKind::Overflow => Error::TooLarge {
            op,
            what: "element count",
            value: u128::MAX,
            limit: isize::MAX as u128,
        },
        _ => Error::ShapeMismatch {
            op,
            detail: e.to_string(),
        },
    })
}

/// Parameter initialisation from the uniform distribution `U(−bound, bound)`, element `i` (row-major
/// logical index) from stream `key`:
/// ```text
/// w_i = round_T((2·uniform(i) − 1) · bound)        (computed in f64, rounded once to T)
/// ```
/// PyTorch `nn.Linear`'s default (Kaiming-uniform with `a = √5`) draws weight **and** bias from
/// `U(−1/√fan_in, 1/√fan_in)`: pass `bound = 1/√fan_in`. The values differ from PyTorch's (a
/// different generator); the distribution is the same. Values lie in `[−bound, bound)`.
/// Errors: `InvalidParameter` unless `bound` is finite and `≥ 0`; `TooLarge` when the element count
/// overflows or the host cannot allocate it.
pub fn init_uniform<T: Scalar, Sh: IntoDimension>(
    shape: Sh,
    bound: f64,
    key: RandomKey,
) -> Result<Array<T, Sh::Dim>> {
    validate::non_negative_finite("init_uniform", "bound", bound)?;
    fill("init_uniform", shape.into_dimension(), |i| {
        (2.0 * key.uniform(i) - 1.0) * bound
    })
}

/// Parameter initialisation from the normal distribution `N(0, std²)` by Box–Muller, element `i`
/// (row-major logical index) from stream `key`:
/// ```text
/// u1 = 1 − uniform(2i) ∈ (0, 1],   u2 = uniform(2i + 1) ∈ [0, 1)
/// w_i = round_T(std · sqrt(−2·ln u1) · cos(2π·u2))      (in f64, rounded once to T)
/// ```
/// Only the cosine branch is used, so element `i` depends on two uniforms and nothing else.
/// `u1 > 0` keeps the logarithm finite; `|w_i| ≤ std·sqrt(2·32·ln 2) ≈ 6.66·std`, since
/// `u1 ≥ 2^-32`. BERT-like models use `std = 0.02`. The `ln`/`cos` are the host libm's, so a
/// device reproduces these values only within its ULP budgets: initialise on the host.
/// Errors: `InvalidParameter` unless `std` is finite and `≥ 0`; `TooLarge` when the element count
/// overflows or the host cannot allocate it.
pub fn init_normal<T: Scalar, Sh: IntoDimension>(
    shape: Sh,
    std: f64,
    key: RandomKey,
) -> Result<Array<T, Sh::Dim>> {
    validate::non_negative_finite("init_normal", "std", std)?;
    fill("init_normal", shape.into_dimension(), |i| {
        let u1 = 1.0 - key.uniform(2 * i);
        let u2 = key.uniform(2 * i + 1);
        std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123 `examples/kat_vectors`, the three `philox4x32 10` lines:
    /// counter (4 words), key (2 words), expected output (4 words).
    const KAT: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0, 0, 0, 0],
            [0, 0],
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
        ),
        (
            [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
            [0xa409_3822, 0x299f_31d0],
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
        ),
    ];

    #[test]
    fn philox_known_answers() {
        for (counter, key, expected) in KAT {
            assert_eq!(
                philox4x32_10(counter, key),
                expected,
                "counter {counter:08x?}"
            );
        }
    }

    #[test]
    fn philox_is_usable_in_const_context() {
        const OUT: [u32; 4] = philox4x32_10([0; 4], [0; 2]);
        assert_eq!(OUT, KAT[0].2);
    }

    #[test]
    fn bits_follow_the_documented_layout() {
        let key = RandomKey {
            seed: 0x0123_4567_89ab_cdef,
            step: 7,
            tensor_id: 3,
        };
        let k = philox4x32_10([7, 0, 3, 0], [0x89ab_cdef, 0x0123_4567]);
        assert_eq!(key.philox_key(), [k[0], k[1]]);
        let block = philox4x32_10([1, 0, 0, 0], [k[0], k[1]]);
        for lane in 0..4 {
            assert_eq!(key.bits(4 + lane), block[lane as usize]);
        }
        let far = philox4x32_10([0, 1, 0, 0], [k[0], k[1]]);
        assert_eq!(key.bits((4 << 32) | 2), far[2]);
    }

    #[test]
    #[allow(
        clippy::float_cmp,
        reason = "the conversions are exact by construction"
    )]
    fn uniforms_are_exact_functions_of_the_bits() {
        let key = RandomKey {
            seed: 42,
            step: 1,
            tensor_id: 9,
        };
        for i in 0..1000 {
            let bits = key.bits(i);
            let u32_ = key.uniform_f32(i);
            let u64_ = key.uniform(i);
            assert!((0.0..1.0).contains(&u32_) && (0.0..1.0).contains(&u64_));
            assert_eq!(f64::from(u32_) * 16_777_216.0, f64::from(bits >> 8));
            assert_eq!(u64_ * 4_294_967_296.0, f64::from(bits));
        }
    }

    #[test]
    fn streams_differ_by_step_and_tensor() {
        let a = RandomKey {
            seed: 1,
            step: 0,
            tensor_id: 0,
        };
        let b = RandomKey { step: 1, ..a };
        let c = RandomKey { tensor_id: 1, ..a };
        let first = |k: RandomKey| (0..8).map(|i| k.bits(i)).collect::<Vec<_>>();
        assert_ne!(first(a), first(b));
        assert_ne!(first(a), first(c));
        assert_ne!(first(b), first(c));
    }

    #[test]
    fn dropout_threshold_is_the_integer_form_of_the_float_test() {
        assert_eq!(dropout_threshold(0.0), Ok(0));
        assert_eq!(dropout_threshold(0.5), Ok(1 << 31));
        assert_eq!(dropout_threshold(0.1), Ok(429_496_730)); // ⌈0.1·2^32⌉
        assert!(dropout_threshold(1.0).is_err());
        assert!(dropout_threshold(-0.1).is_err());
        assert!(dropout_threshold(f64::NAN).is_err());
        let key = RandomKey::default();
        for p in [0.1, 0.5, 0.9, 1.0 - 1e-12] {
            let t = dropout_threshold(p).expect("valid p");
            for i in 0..2000 {
                assert_eq!(u64::from(key.bits(i)) >= t, key.uniform(i) >= p);
            }
        }
    }

    #[test]
    #[allow(
        clippy::float_cmp,
        reason = "f32 values are the rounded f64 values, exactly"
    )]
    fn initialisers_have_the_documented_range_and_moments() {
        let key = RandomKey {
            seed: 5,
            step: 0,
            tensor_id: 2,
        };
        let bound = 0.125;
        let w = init_uniform::<f64, _>((200, 50), bound, key).expect("valid");
        assert!(w.iter().all(|&v| (-bound..bound).contains(&v)));
        // Mean of n = 10^4 uniforms: std bound/√(3n) = 7.2e-4; 6 standard deviations.
        let n = w.len() as f64;
        let mean = w.sum() / n;
        assert!(mean.abs() < 6.0 * bound / (3.0 * n).sqrt(), "mean {mean}");
        let z = init_normal::<f64, _>((100, 100), 0.02, key).expect("valid");
        let mean = z.sum() / n;
        let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        // std of the mean 2e-4; the sample variance's std is σ²·√(2/n) = 5.7e-6.
        assert!(mean.abs() < 6.0 * 0.02 / n.sqrt(), "mean {mean}");
        assert!(
            (var - 4e-4).abs() < 6.0 * 4e-4 * (2.0 / n).sqrt(),
            "var {var}"
        );
        let bound_normal = 0.02 * (64.0 * std::f64::consts::LN_2).sqrt();
        assert!(z.iter().all(|v| v.abs() <= bound_normal));
        // Reproducible bit for bit, and f32 is the rounded f64.
        let z2 = init_normal::<f64, _>((100, 100), 0.02, key).expect("valid");
        assert!(z
            .iter()
            .zip(z2.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let z32 = init_normal::<f32, _>((100, 100), 0.02, key).expect("valid");
        assert!(z32.iter().zip(z.iter()).all(|(&a, &b)| a == b as f32));
        assert!(init_uniform::<f32, _>(3, f64::NAN, key).is_err());
        assert!(init_normal::<f32, _>(3, -1.0, key).is_err());
    }
}
