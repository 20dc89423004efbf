//! Agreement of whole training runs (device vs reference): the bound of a composite of many ops.
//!
//! A training step is a composition of a few hundred ops, each checked on its own against its
//! derived per-op bound by the op conformance tests. For the composite, first-order error
//! analysis (Higham 2002, §3) gives
//! ```text
//! value_T − value_exact = Σ_i S_i·δ_i,   |δ_i| ≤ c_i·u_T           (S_i: sensitivity of op i)
//! ```
//! with the same sensitivities `S_i` for any two implementations of the same op sequence: only
//! the realised per-op errors `δ_i` differ (reduction orders, built-in `exp`/`erf` ulps). The
//! reference run in f32 realises one such error vector, `E_32 = |ref_32 − ref_64|`, which
//! measures `Σ_i |S_i|·c_i·u_32` up to the cancellation between terms. So a second
//! implementation in precision `T` agrees with the f64 reference within
//! ```text
//! |dev_T − ref_64| ≤ SAFETY · (u_T/u_32) · E_32  +  FLOOR · u_T · scale
//! ```
//! where `SAFETY` covers the ratio between two realisations of the per-op errors (different
//! reduction trees and built-ins allowed different ulps; the per-op bounds in
//! [`crate::tolerance`] are at most 2–3× the errors observed per op, so a realisation differs
//! from another by at most that ratio per op; 16 leaves a factor ≥ 5 for cancellation in
//! `E_32`) and the floor covers components where `E_32` happens to vanish (both f32 and f64 of
//! the reference round to the same value): `FLOOR · u_T` relative to the tensor's scale (its
//! max absolute f64 value), with `FLOOR = 64` as a few roundings of the final update.
//! For f64 device runs `u_T/u_32 = 2^−29`: the same first-order propagation, scaled.
//!
//! Over a trajectory the same argument holds step by step as long as the dynamics are not
//! chaotic on the horizon (the sensitivities stay those of the linearisation); training runs
//! checked this way use short horizons (≤ 100 steps) with smooth losses, where the f32
//! reference itself stays close to f64. A wiring bug (wrong transpose, missing bias, wrong
//! dropout key, wrong step count) makes an O(1) relative error, far beyond this bound.
//!
//! This is the one estimate in the crate calibrated by a measurement, and the measurement is of
//! the **reference** (never of the implementation under test).

/// Safety factor between two realisations of the per-op errors (see the module doc).
pub const SAFETY: f64 = 16.0;
/// Floor in units of `u_T` relative to a tensor's scale (see the module doc).
pub const FLOOR: f64 = 64.0;

/// The bound on `|dev_T − ref_64|` for one value: `reference_f32_error = |ref_32 − ref_64|` and
/// `scale` the tensor's max absolute f64 value; `unit_roundoff` is `u_T` of the device run.
pub fn composite(reference_f32_error: f64, scale: f64, unit_roundoff: f64) -> f64 {
    let ratio = unit_roundoff / (f64::from(f32::EPSILON) / 2.0);
    SAFETY * ratio * reference_f32_error + FLOOR * unit_roundoff * scale
}
