//! Bounds for the optimizer steps, gradient clipping and the corrected standard deviation
//! (THEORY.md C, D2, D5, B4, E4), by running each op's operation sequence on [`Tracked`]
//! values: the f64 value of a quantity together with a bound on how far a backend computing in
//! arithmetic `model` may be from it.
//!
//! Every rule of [`Tracked`] is a rigorous bound for perturbed inputs (not first order): for a
//! product `|âb̂ − ab| ≤ |a|e_b + |b|e_a + e_a e_b`; for a quotient
//! `|â/b̂ − a/b| ≤ (e_a|b| + |a|e_b)/(|b|(|b| − e_b))` while `e_b < |b|` (undefined, +∞, past
//! that); for a square root the exact worst case over `[x − e, x + e] ∩ [0, ∞)`; then the
//! operation's own rounding, `ε·(|exact| + propagated)` with `ε = u` for `+ − ×`,
//! `model.divide` for `/` and [`super::SQRT`]'s budget for `sqrt`, plus `model.underflow` (a
//! flushed or subnormal result). A hyperparameter rounded to `T` once enters with error `u|c|`.
//!
//! The scalars derived on the host in f64 (`1 − β`, `1 − β^t`, `1 − lr·wd`) are **defined** as
//! those f64 values: both the device and the f64 reference receive the same f64 number, so its
//! own error against the real `1 − β^t` is common to both sides and not counted.

use ndarray::{Array1, ArrayView1};

use super::{ulp_relative_error, ArithModel, SQRT};
use crate::reference::optim::{AdamHyper, SgdHyper, CLIP_NORM_OFFSET};

/// A quantity's value (evaluated in f64 from the f64 reference quantities) and a bound on the
/// absolute error of a backend that computes it in some arithmetic ([`ArithModel`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tracked {
    /// The value of the quantity (the f64 reference's).
    pub value: f64,
    /// Bound on `|computed − value|`.
    pub error: f64,
}

impl Tracked {
    /// An input both sides hold exactly.
    pub fn exact(value: f64) -> Self {
        Tracked { value, error: 0.0 }
    }

    /// An f64 constant rounded once to the model's type: error `u|c|` (0-ulp rounding of an f64
    /// to f64 is included at `u64|c|`, harmlessly).
    pub fn constant(value: f64, model: &ArithModel) -> Self {
        Tracked {
            value,
            error: model.unit_roundoff * value.abs() + model.underflow,
        }
    }

    fn rounded(value: f64, propagated: f64, relative: f64, model: &ArithModel) -> Self {
        Tracked {
            value,
            error: propagated + relative * (value.abs() + propagated) + model.underflow,
        }
    }

    /// `a + b`, correctly rounded.
    pub fn add(self, other: Tracked, model: &ArithModel) -> Self {
        Self::rounded(
            self.value + other.value,
            self.error + other.error,
            model.unit_roundoff,
            model,
        )
    }

    /// `a − b`, correctly rounded.
    pub fn sub(self, other: Tracked, model: &ArithModel) -> Self {
        Self::rounded(
            self.value - other.value,
            self.error + other.error,
            model.unit_roundoff,
            model,
        )
    }

    /// `a·b`, correctly rounded.
    pub fn mul(self, other: Tracked, model: &ArithModel) -> Self {
        let propagated = self.value.abs() * other.error
            + other.value.abs() * self.error
            + self.error * other.error;
        Self::rounded(
            self.value * other.value,
            propagated,
            model.unit_roundoff,
            model,
        )
    }

    /// `a/b` with the model's division error; +∞ error when `b` may be 0.
    pub fn div(self, other: Tracked, model: &ArithModel) -> Self {
        let b = other.value.abs();
        let propagated = if other.error < b {
            (self.error * b + self.value.abs() * other.error) / (b * (b - other.error))
        } else {
            f64::INFINITY
        };
        Self::rounded(self.value / other.value, propagated, model.divide, model)
    }

    /// `sqrt(x)` (`x ≥ 0`) with the model's sqrt error (3 ulp in f32, correctly rounded in
    /// f64): exact worst case of `|sqrt(y) − sqrt(x)|` over `|y − x| ≤ e`, `y ≥ 0`.
    pub fn sqrt(self, model: &ArithModel) -> Self {
        let (x, e) = (self.value, self.error);
        let root = x.sqrt();
        let up = if e > 0.0 {
            e / ((x + e).sqrt() + root)
        } else {
            0.0
        };
        let down = if x > e {
            e / (root + (x - e).sqrt())
        } else {
            root
        };
        Self::rounded(root, up.max(down), ulp_relative_error(model, SQRT), model)
    }

    /// `min(a, 1)`: 1-Lipschitz, so the error does not grow.
    pub fn min_one(self) -> Self {
        Tracked {
            value: self.value.min(1.0),
            error: self.error,
        }
    }
}

/// Per-coordinate results of one optimizer step, each with its bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepBounds {
    /// New parameter `θ`.
    pub parameters: Tracked,
    /// The update `s` (`θ_new = θ' − s`).
    pub last_step: Tracked,
    /// SGD's momentum buffer or Adam's first moment `m` (exact 0 when unused).
    pub first_moment: Tracked,
    /// Adam's second moment `v` (exact 0 for SGD).
    pub second_moment: Tracked,
}

/// Bound for one coordinate of [`crate::reference::optim::sgd_step`] in arithmetic `model`,
/// by its operation sequence on [`Tracked`] values:
/// ```text
/// d = g (+ fl(wd)·θ);  buf = d  or  fl(μ)·buf + fl(1 − dampening)·d;  d = buf  or  d + fl(μ)·buf
/// s = fl(lr)·d;  θ ← θ − s
/// ```
/// `momentum_buffer` is the incoming buffer (`None` before the first step). Inputs carry their
/// own errors (0 for one step from a given state; the propagated bounds along a trajectory).
/// Only correctly rounded `+ − ×`: a backend evaluating in the reference's order in the same
/// type is bitwise equal to it, and this bound covers it against the f64 reference.
pub fn sgd_step_bounds(
    parameter: Tracked,
    gradient: Tracked,
    momentum_buffer: Option<Tracked>,
    hyper: &SgdHyper,
    model: &ArithModel,
) -> StepBounds {
    let c = |v: f64| Tracked::constant(v, model);
    let mut d = gradient;
    if hyper.weight_decay != 0.0 {
        d = d.add(c(hyper.weight_decay).mul(parameter, model), model);
    }
    let mut buffer = Tracked::exact(0.0);
    if hyper.momentum != 0.0 {
        buffer = match momentum_buffer {
            None => d,
            Some(old) => c(hyper.momentum)
                .mul(old, model)
                .add(c(1.0 - hyper.dampening).mul(d, model), model),
        };
        d = if hyper.nesterov {
            d.add(c(hyper.momentum).mul(buffer, model), model)
        } else {
            buffer
        };
    }
    let s = c(hyper.learning_rate).mul(d, model);
    StepBounds {
        parameters: parameter.sub(s, model),
        last_step: s,
        first_moment: buffer,
        second_moment: Tracked::exact(0.0),
    }
}

/// Bound for one coordinate of [`crate::reference::optim::adam_step`] (Adam or AdamW) at step
/// `t = step` (the count after the update) in arithmetic `model`, by its operation sequence:
/// ```text
/// θ' = θ·fl(1 − lr·wd) (AdamW)        g' = g + fl(wd)·θ (Adam, wd ≠ 0)
/// m = fl(β1)·m₀ + fl(1 − β1)·g'       v = fl(β2)·v₀ + fl(1 − β2)·(g'·g')
/// m̂ = m/fl(1 − β1^t)   v̂ = v/fl(1 − β2^t)   r = sqrt(v̂)   q = m̂/(r + fl(eps))
/// s = fl(lr)·q   θ_new = θ' − s
/// ```
/// Each hyperparameter-derived scalar is rounded once (error `u`), `/` carries `model.divide`
/// (2.5 ulp in f32 OpenCL, correctly rounded in f64) and sqrt its budget (3 ulp in f32); the
/// quotient and sqrt rules are exact worst cases, so a nearly-zero `v̂` or a cancelling `m`
/// gives an honest (large) absolute bound rather than a wrong first-order one. Unlike
/// [`super::adam_step`] (THEORY.md D2, a bound on `|s|` itself), this bounds the distance of a
/// computed step to the f64 one. Inputs carry their own errors, so the same fn propagates
/// bounds along a trajectory (the EMAs then shrink inherited errors by `β1`, `β2` per step).
pub fn adam_step_bounds(
    parameter: Tracked,
    gradient: Tracked,
    first_moment: Tracked,
    second_moment: Tracked,
    hyper: &AdamHyper,
    step: u64,
    model: &ArithModel,
) -> StepBounds {
    let c = |v: f64| Tracked::constant(v, model);
    let (correction1, correction2) = crate::reference::optim::adam_bias_corrections(hyper, step);
    let mut theta = parameter;
    let mut g = gradient;
    if hyper.weight_decay != 0.0 {
        if hyper.decoupled {
            theta = theta.mul(c(1.0 - hyper.learning_rate * hyper.weight_decay), model);
        } else {
            g = g.add(c(hyper.weight_decay).mul(theta, model), model);
        }
    }
    let m = c(hyper.beta1)
        .mul(first_moment, model)
        .add(c(1.0 - hyper.beta1).mul(g, model), model);
    let v = c(hyper.beta2)
        .mul(second_moment, model)
        .add(c(1.0 - hyper.beta2).mul(g.mul(g, model), model), model);
    let m_hat = m.div(c(correction1), model);
    let v_hat = v.div(c(correction2), model);
    let denominator = v_hat.sqrt(model).add(c(hyper.eps), model);
    let s = c(hyper.learning_rate).mul(m_hat.div(denominator, model), model);
    StepBounds {
        parameters: theta.sub(s, model),
        last_step: s,
        first_moment: m,
        second_moment: v,
    }
}

/// Bounds for [`crate::reference::optim::clip_grad_norm`] over `gradients` (values in f64) in
/// arithmetic `model` (THEORY.md D5, E2): `(norm, per-tensor bounds of the clipped entries)`.
/// ```text
/// Q = Σ g_i²          |Q̂ − Q| ≤ γ_n·Q + n·underflow     (any summation order: two-pass trees
///                                                       and the sequential sum alike)
/// N = sqrt(Q)         the sqrt rule (3 ulp in f32)
/// coef = min(fl(M)/(N + fl(1e-6)), 1)                    (clamping does not grow the error)
/// g_i·coef            one more rounding
/// ```
/// `n` is the total entry count over all tensors.
pub fn clip_grad_norm_bounds(
    gradients: &[ArrayView1<'_, f64>],
    max_norm: f64,
    model: &ArithModel,
) -> (Tracked, Vec<Array1<f64>>) {
    let n: usize = gradients.iter().map(|g| g.len()).sum();
    let squares: f64 = gradients
        .iter()
        .flat_map(|g| g.iter())
        .map(|&x| x * x)
        .sum();
    let sum = Tracked {
        value: squares,
        error: model.gamma(n) * squares + n as f64 * model.underflow,
    };
    let norm = sum.sqrt(model);
    let coefficient = Tracked::constant(max_norm, model)
        .div(
            norm.add(Tracked::constant(CLIP_NORM_OFFSET, model), model),
            model,
        )
        .min_one();
    let scaled = gradients
        .iter()
        .map(|g| g.mapv(|x| Tracked::exact(x).mul(coefficient, model).error))
        .collect();
    (norm, scaled)
}

/// Bound for [`crate::reference::optim::clip_grad_value`] in arithmetic `model`: the clamp is
/// exact, but a clamped entry becomes `±fl(c)`, the limit rounded once to the model's type:
/// `u·|c|` (+ underflow). Entries inside the limit are bitwise unchanged.
pub fn clip_grad_value(clip_value: f64, model: &ArithModel) -> f64 {
    Tracked::constant(clip_value, model).error
}

/// Mean and its error, and `Q = Σ(p_i − m)²` with the bound of its computed value, for the
/// std bounds. `None` when all values are equal (the result is exactly 0 on both sides).
fn std_terms(values: ArrayView1<'_, f64>, model: &ArithModel) -> Option<(Tracked, Tracked)> {
    let n = values.len();
    let first = *values.first()?;
    if values.iter().all(|&v| v == first) {
        return None;
    }
    let sum: f64 = values.sum();
    let absolute: f64 = values.iter().map(|v| v.abs()).sum();
    let mean = Tracked {
        value: sum,
        error: model.gamma(n.saturating_sub(1)) * absolute,
    }
    .div(Tracked::constant(n as f64, model), model);
    let q: f64 = values.iter().map(|&p| (p - mean.value).powi(2)).sum();
    // Σ(p_i − m̂)² = Q + n·δ² exactly (Σ(p_i − m) = 0), δ = m̂ − m; each computed term has
    // ≤ 3 roundings (subtract, square, then the sum's ≤ n − 1): γ_{n+2} of the shifted sum.
    let shift = n as f64 * mean.error * mean.error;
    let squares = Tracked {
        value: q,
        error: shift + model.gamma(n + 2) * (q + shift) + n as f64 * model.underflow,
    };
    Some((mean, squares))
}

/// Bound for [`crate::reference::std_corrected`] in arithmetic `model` (THEORY.md B4):
/// ```text
/// S = Σp_i: γ_{n−1}Σ|p_i|;  m̂ = S/n (the division rule);  δ = |m̂ − m|
/// Q̂ = Σ(p_i − m̂)²:  |Q̂ − Q| ≤ nδ² + γ_{n+2}(Q + nδ²) + n·underflow
/// std = sqrt(Q̂/(n − c))   (division and sqrt rules)
/// ```
/// The mean's error enters only to second order because `Σ(p_i − m) = 0`. 0 when all values
/// are equal (both sides return exactly 0).
pub fn std_corrected(values: ArrayView1<'_, f64>, correction: usize, model: &ArithModel) -> f64 {
    match std_terms(values, model) {
        None => 0.0,
        Some((_, squares)) => {
            let divisor = Tracked::constant((values.len() - correction) as f64, model);
            squares.div(divisor, model).sqrt(model).error
        }
    }
}

/// Bound for [`crate::reference::std_corrected_backward`] in arithmetic `model`, per element:
/// ```text
/// d̂_i = fl(p_i − m̂): |d̂_i − d_i| ≤ δ + u(|d_i| + δ)
/// grad_i = (g·d̂_i)/((n − c)·ŝ)    (ŝ with the bound of [`std_corrected`])
/// ```
/// 0 when all values are equal. `grad_output` is exact (the same value on both sides).
pub fn std_corrected_backward(
    values: ArrayView1<'_, f64>,
    correction: usize,
    grad_output: f64,
    model: &ArithModel,
) -> Array1<f64> {
    let Some((mean, squares)) = std_terms(values, model) else {
        return Array1::zeros(values.len());
    };
    let divisor = Tracked::constant((values.len() - correction) as f64, model);
    let s = squares.div(divisor, model).sqrt(model);
    let denominator = divisor.mul(s, model);
    let g = Tracked::exact(grad_output);
    values.mapv(|p| {
        let d = Tracked::exact(p).sub(mean, model);
        g.mul(d, model).div(denominator, model).error
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::optim::adam_step;
    use crate::reference::optim::AdamState;
    use ndarray::array;

    #[test]
    fn tracked_rules_on_hand_cases() {
        let m = ArithModel::of::<f32>();
        let u = m.unit_roundoff;
        // An exact product: only its rounding (plus the underflow floor).
        let p = Tracked::exact(3.0).mul(Tracked::exact(2.0), &m);
        assert!((p.error - (6.0 * u + m.underflow)).abs() < 1e-20);
        // sqrt of an exact 4: the 3-ulp budget, 6u relative, on 2.
        let r = Tracked::exact(4.0).sqrt(&m);
        assert!((r.error - (2.0 * 6.0 * u + m.underflow)).abs() < 1e-20);
        // Dividing by something that may be 0 is unbounded.
        let q = Tracked::exact(1.0).div(
            Tracked {
                value: 1e-3,
                error: 1e-3,
            },
            &m,
        );
        assert!(q.error.is_infinite());
        // sqrt near 0: never below the true worst case sqrt(e) at x = 0.
        let z = Tracked {
            value: 0.0,
            error: 1e-12,
        }
        .sqrt(&m);
        assert!(z.error >= 1e-6);
    }

    #[test]
    fn f32_adam_step_is_within_its_bound_of_f64() {
        // A hand case run in f32 and f64 by the reference itself: the f32 result must lie
        // within B_f32 + B_f64 of the f64 one, and the bound must not be vacuous.
        let mut hyper = AdamHyper::new(1e-3, 0.9, 0.999, 1e-8);
        hyper.weight_decay = 0.01;
        let theta = [0.5f32, -1.25, 3.0];
        let grad = [1e-3f32, -2.0, 0.3];
        let mut s32 = AdamState::<f32>::zeros(3);
        s32.step = 4;
        s32.first_moment = array![0.01f32, -0.5, 0.2];
        s32.second_moment = array![1e-6f32, 3.0, 0.04];
        let s64 = AdamState {
            step: 4,
            first_moment: s32.first_moment.mapv(f64::from),
            second_moment: s32.second_moment.mapv(f64::from),
            last_step: Array1::zeros(3),
        };
        let t32 = ndarray::Array1::from(theta.to_vec());
        let g32 = ndarray::Array1::from(grad.to_vec());
        let (p32, n32) = adam_step(&s32, t32.view(), g32.view(), &hyper).expect("valid");
        let (p64, n64) = adam_step(
            &s64,
            t32.mapv(f64::from).view(),
            g32.mapv(f64::from).view(),
            &hyper,
        )
        .expect("valid");
        let (m32, m64) = (ArithModel::of::<f32>(), ArithModel::of::<f64>());
        for i in 0..3 {
            let bound = |model| {
                adam_step_bounds(
                    Tracked::exact(f64::from(theta[i])),
                    Tracked::exact(f64::from(grad[i])),
                    Tracked::exact(s64.first_moment[i]),
                    Tracked::exact(s64.second_moment[i]),
                    &hyper,
                    5,
                    model,
                )
            };
            let (b32, b64) = (bound(&m32), bound(&m64));
            let limit = b32.parameters.error + b64.parameters.error;
            let diff = (f64::from(p32[i]) - p64[i]).abs();
            assert!(diff <= limit, "θ[{i}]: {diff:e} > {limit:e}");
            let step_limit = b32.last_step.error + b64.last_step.error;
            let step_diff = (f64::from(n32.last_step[i]) - n64.last_step[i]).abs();
            assert!(
                step_diff <= step_limit,
                "s[{i}]: {step_diff:e} > {step_limit:e}"
            );
            assert!(
                step_limit <= 100.0 * m32.unit_roundoff * n64.last_step[i].abs(),
                "s[{i}] bound {step_limit:e} is vacuous"
            );
        }
    }

    #[test]
    fn std_bound_is_zero_for_constant_input_and_small_otherwise() {
        let m = ArithModel::of::<f32>();
        assert_eq!(std_corrected(array![2.5, 2.5, 2.5].view(), 1, &m), 0.0);
        let values = array![1.0, 2.0, 4.0, 7.0];
        let s = crate::reference::std_corrected(values.view(), 1).expect("n > c");
        let bound = std_corrected(values.view(), 1, &m);
        assert!(
            bound > 0.0 && bound < 30.0 * m.unit_roundoff * s,
            "{bound:e}"
        );
    }
}
