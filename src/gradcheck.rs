//! Checking a hand-written backward pass (a vector-Jacobian product) against central finite
//! differences in f64, along one direction (JAX's `check_vjp`).
//!
//! For `f: Rⁿ → Rᵐ`, a tangent `t ∈ Rⁿ` and a cotangent `c ∈ Rᵐ`, let `φ(h) = ⟨c, f(x + h·t)⟩`.
//! Then `φ'(0) = ⟨c, J t⟩ = ⟨Jᵀc, t⟩`, and the VJP `g = Jᵀc` must satisfy
//! ```text
//! |⟨g, t⟩ − D(h)| ≤ h²/6·M₃ + R/h + γ_n(u)·Σ|g_i t_i|,     D(h) = (φ(h) − φ(−h)) / (2h)
//! ```
//! - truncation: Taylor's theorem gives `|D(h) − φ'(0)| ≤ h²/6·max|φ'''|`; `M₃` is estimated by the
//!   five-point stencil `(φ(2H) − 2φ(H) + 2φ(−H) − φ(−2H)) / (2H³)` at a coarser step `H = 4h`,
//!   and doubled to allow for the estimate's own error (the stencil's error is `O(H²)` relative).
//! - rounding: each evaluation of `φ` errs by at most `E = γ_k(u)·Σ_i |c_i|·|f_i|` (first order,
//!   `k` = the length of the longest chain of roundings in `f`, given by the caller), so the
//!   difference quotient errs by `R/h` with `R = E`; rounding `x + h·t` moves `φ` by at most
//!   `u·Σ_i |g_i|·|x_i|` per side, added to `R`.
//! - the inner product `⟨g, t⟩` itself: `γ_n(u)·Σ|g_i t_i|`.
//!
//! The step minimises the first two terms, `h = (3R/M₃)^{1/3}`, clamped to
//! `[u^{1/2}, u^{1/4}]·max(1, ‖x‖∞)`. Nothing here is tuned: the bound is the sum of the terms.
//!
//! **Resolution.** The bound holds only where `φ` is smooth on the scale of `h`, i.e. where the
//! estimated `M₃` describes `φ` on `[−2h, 2h]`. A feature narrower than the smallest step (a
//! LayerNorm over a row whose variance is far below its eps-scale, a kink) breaks that, and then
//! the two sides disagree without either being wrong. It is detected from `D(2h)`: Taylor's
//! theorem with the same `M₃` gives `|D(2h) − D(h)| ≤ 5h²/6·(2M₃) + R/h + R/(2h)`. A point where
//! the measured difference exceeds that is reported as not resolved
//! ([`DirectionalCheck::resolved`]); a wrong VJP at a resolved point still fails, since there both
//! difference quotients agree with each other and not with it.

use std::fmt;

use crate::tolerance::gamma;

/// Unit roundoff of f64.
const U: f64 = f64::EPSILON / 2.0;

/// The numbers behind one directional check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirectionalCheck {
    /// `⟨g, t⟩` from the hand-written VJP.
    pub vjp_inner: f64,
    /// The central difference `D(h)`.
    pub finite_difference: f64,
    /// The step `h`.
    pub step: f64,
    /// The derived bound on `|vjp_inner − finite_difference|`.
    pub bound: f64,
    /// Whether `D(h)` and `D(2h)` agree within the Taylor bound that `bound` assumes (see the
    /// module doc): when false, the central difference does not resolve `φ'(0)` at this point
    /// and the comparison says nothing either way.
    pub resolved: bool,
}

impl DirectionalCheck {
    /// `|vjp_inner − finite_difference| / bound` (0 when both sides agree exactly).
    pub fn error_over_bound(&self) -> f64 {
        let diff = (self.vjp_inner - self.finite_difference).abs();
        if diff == 0.0 {
            0.0
        } else {
            diff / self.bound
        }
    }

    /// Whether the VJP agrees with the finite difference within the bound.
    pub fn passes(&self) -> bool {
        (self.vjp_inner - self.finite_difference).abs() <= self.bound
    }
}

impl fmt::Display for DirectionalCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "⟨VJP, t⟩ = {:.12e}, central difference = {:.12e} (h = {:.3e}), |diff| = {:.3e}, bound = {:.3e} ({:.3}× bound){}",
            self.vjp_inner,
            self.finite_difference,
            self.step,
            (self.vjp_inner - self.finite_difference).abs(),
            self.bound,
            self.error_over_bound(),
            if self.resolved { "" } else { " (not resolved: D(h) and D(2h) disagree)" }
        )
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Check a VJP along one direction; see the module doc for the bound.
///
/// - `f` evaluates the op in f64 at a flattened input;
/// - `x` the point, `tangent` the direction (same length), `cotangent` the output weights;
/// - `vjp` = `Jᵀ·cotangent` at `x` from the backward pass under test;
/// - `rounding_chain` = `k` in the evaluation error `γ_k(u)·Σ|c_i f_i|` of one evaluation of `f`.
pub fn check_vjp(
    f: &dyn Fn(&[f64]) -> Vec<f64>,
    x: &[f64],
    tangent: &[f64],
    cotangent: &[f64],
    vjp: &[f64],
    rounding_chain: usize,
) -> DirectionalCheck {
    let scale = x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let at = |h: f64| -> (f64, f64) {
        let moved: Vec<f64> = x.iter().zip(tangent).map(|(xi, ti)| xi + h * ti).collect();
        let y = f(&moved);
        let magnitude: f64 = y
            .iter()
            .zip(cotangent)
            .map(|(yi, ci)| (yi * ci).abs())
            .sum();
        (dot(&y, cotangent), magnitude)
    };
    let gamma_k = gamma(rounding_chain.max(1), U).unwrap_or(f64::INFINITY);
    let (_, magnitude0) = at(0.0);
    let input_rounding = U * vjp.iter().zip(x).map(|(g, xi)| (g * xi).abs()).sum::<f64>();
    let rounding = gamma_k * magnitude0 + input_rounding;
    let third_derivative = |coarse: f64| -> f64 {
        let (p2, _) = at(2.0 * coarse);
        let (p1, _) = at(coarse);
        let (m1, _) = at(-coarse);
        let (m2, _) = at(-2.0 * coarse);
        ((p2 - 2.0 * p1 + 2.0 * m1 - m2) / (2.0 * coarse.powi(3))).abs()
    };
    let (low, high) = (U.sqrt() * scale, U.powf(0.25) * scale);
    // First guess from a coarse stencil, then re-estimate M₃ at H = 4h.
    let m3_coarse = third_derivative(high);
    let step_for = |m3: f64| {
        if m3 > 0.0 && rounding > 0.0 {
            (3.0 * rounding.max(U * magnitude0.max(U)) / m3)
                .cbrt()
                .clamp(low, high)
        } else {
            high
        }
    };
    let mut step = step_for(m3_coarse);
    let m3 = third_derivative(4.0 * step).max(m3_coarse.min(third_derivative(2.0 * step)));
    step = step_for(m3);
    let (plus, magnitude_plus) = at(step);
    let (minus, magnitude_minus) = at(-step);
    let finite_difference = (plus - minus) / (2.0 * step);
    let evaluation = gamma_k * magnitude_plus.max(magnitude_minus) + input_rounding;
    let vjp_inner = dot(vjp, tangent);
    let inner_rounding = gamma(vjp.len().max(1), U).unwrap_or(f64::INFINITY)
        * vjp
            .iter()
            .zip(tangent)
            .map(|(g, t)| (g * t).abs())
            .sum::<f64>();
    let bound = step * step / 6.0 * (2.0 * m3) + evaluation / step + inner_rounding;
    let (plus2, magnitude_plus2) = at(2.0 * step);
    let (minus2, magnitude_minus2) = at(-2.0 * step);
    let coarse_difference = (plus2 - minus2) / (4.0 * step);
    let evaluation2 = gamma_k * magnitude_plus2.max(magnitude_minus2) + input_rounding;
    let consistency =
        5.0 * step * step / 6.0 * (2.0 * m3) + evaluation / step + evaluation2 / (2.0 * step);
    let resolved = (coarse_difference - finite_difference).abs() <= consistency;
    DirectionalCheck {
        vjp_inner,
        finite_difference,
        step,
        bound,
        resolved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube(x: &[f64]) -> Vec<f64> {
        x.iter().map(|v| v * v * v).collect()
    }

    #[test]
    fn a_correct_vjp_passes_and_a_wrong_one_fails() {
        let x = [0.3, -1.2, 2.0];
        let t = [1.0, 0.5, -0.25];
        let c = [0.7, -1.1, 0.4];
        let good: Vec<f64> = x
            .iter()
            .zip(&c)
            .map(|(xi, ci)| 3.0 * xi * xi * ci)
            .collect();
        let check = check_vjp(&cube, &x, &t, &c, &good, 4);
        assert!(check.passes(), "{check}");
        assert!(check.bound < 1e-6, "the bound is not vacuous: {check}");
        let mut bad = good.clone();
        bad[1] *= 1.0 + 1e-5;
        let check = check_vjp(&cube, &x, &t, &c, &bad, 4);
        assert!(
            !check.passes(),
            "a relative error of 1e-5 in one entry is caught: {check}"
        );
        assert!(
            check.resolved,
            "a wrong VJP at a smooth point is resolved: {check}"
        );
    }

    /// `tanh(x/w)` with `w = 1e-10`, far below the smallest step `√u`: the exact derivative
    /// `1/w` cannot be seen by any central difference the check may take, and the check says so
    /// instead of failing the (correct) VJP or passing a wrong one.
    #[test]
    fn a_feature_narrower_than_the_step_is_not_resolved() {
        let width = 1e-10;
        let narrow = |x: &[f64]| vec![(x[0] / width).tanh()];
        let check = check_vjp(&narrow, &[0.0], &[1.0], &[1.0], &[1.0 / width], 4);
        assert!(!check.resolved, "{check}");
        let smooth = |x: &[f64]| vec![(x[0] / 0.5).tanh()];
        let check = check_vjp(
            &smooth,
            &[0.1],
            &[1.0],
            &[1.0],
            &[2.0 / (0.2f64.cosh().powi(2))],
            4,
        );
        assert!(check.resolved && check.passes(), "{check}");
    }
}
