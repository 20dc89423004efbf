//! Optimizer dynamics and Adam's step bounds (THEORY.md C1–C5, D1–D5) as invariants.
//!
//! Each takes a backend and plain inputs (a learning rate, a gradient sequence, a curvature),
//! runs the backend's optimizer entry points ([`crate::Backend::sgd_step`],
//! [`crate::Backend::adam_step`], [`crate::Backend::clip_grad_norm`]) in `T`, one call per
//! tensor and step, and asserts the THEORY.md statement with the tolerance derived in its doc
//! comment. They are the bodies of the properties in `tests/conformance/reference_optim.rs`
//! (reference) and of `backend_tests!` (every backend).
//!
//! Every Adam tolerance below that THEORY.md states as `τu` (D2) or `8u` (C4) counts correctly
//! rounded operations. A backend only promises the OpenCL C budgets (2.5-ulp `/`, 3-ulp `sqrt`
//! in f32), so each such tolerance here adds `excess = 2.5(ε_div − u) + (ε_sqrt − u)` relative
//! (15u in f32, 0 in f64; derivation on the private helper `adam_divide_sqrt_excess`). The
//! bitwise claims (C3's and C5's power-of-two scale invariance) are kept on every backend, as
//! THEORY.md C5 (d) asks: they need `/` and `sqrt` to commute with power-of-two scaling, which
//! holds for correctly rounded operations and for any implementation that works on the
//! significand (PoCL's does: the OpenCL rows of `backend_tests!` pass).

use ndarray::Array1;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult};

use super::stepper::{BackendAdam, BackendSgd};
use crate::reference::optim::{AdamHyper, LearningRateSchedule, SgdHyper};
use crate::tolerance::{self, gamma};
use crate::{Backend, Scalar};

/// Unit roundoff of f64, for the f64 evaluation of reference quantities inside an invariant.
const U64: f64 = f64::EPSILON / 2.0;

/// Seed 003's schedule: `d = 32`, `w = 3000`, factor 1, base lr 1 (THEORY.md D4).
pub const SEED_003_SCHEDULE: LearningRateSchedule = LearningRateSchedule::Noam {
    model_size: 32,
    factor: 1.0,
    warmup_steps: 3000,
};

fn invalid_betas(beta1: f64, beta2: f64) -> TestCaseError {
    TestCaseError::fail(format!(
        "Adam betas ({beta1}, {beta2}): D2's C_t needs β1, β2 ∈ [0, 1), β2 > 0 and β1² < β2"
    ))
}

/// `γ_n` in f64 for the invariants' own f64 evaluations; a failure (not a skip) when `n·u ≥ 1`.
fn gamma_u64(n: usize) -> Result<f64, TestCaseError> {
    gamma(n, U64).ok_or_else(|| TestCaseError::fail(format!("γ_{n}(u64) undefined")))
}

/// What the OpenCL C budgets add to one Adam step's relative error over the correctly rounded
/// operations that `τu` (THEORY.md D2) counts: the step `lr·((m/B1)/(sqrt(v/B2) + eps))` has two
/// divisions on its direct path, one under the sqrt (halved) and the sqrt itself, so
/// ```text
/// excess = 2.5·(ε_div − u) + (ε_sqrt − u)
/// ```
/// (`ε_div = 5u`, `ε_sqrt = 6u` in f32: `15u`; 0 in f64, where both are correctly rounded). The
/// invariants add it for every backend: the trait promises the OpenCL budgets, not more.
pub(crate) fn adam_divide_sqrt_excess<T: Scalar>() -> f64 {
    let model = tolerance::ArithModel::of::<T>();
    let u = model.unit_roundoff;
    2.5 * (model.divide - u) + (tolerance::ulp_relative_error(&model, tolerance::SQRT) - u)
}

/// The f64 Euclidean norm of a list of tensors.
fn norm_of<T: Scalar>(tensors: &[Array1<T>]) -> f64 {
    tensors
        .iter()
        .flat_map(|t| t.iter())
        .map(|v| v.widen() * v.widen())
        .sum::<f64>()
        .sqrt()
}
/// THEORY.md D2, the largest possible Adam step: for any gradient sequence, per coordinate,
/// ```text
/// |s_t| ≤ lr·C_t·(1 + τu),   C_t = (1−β1)/(1−β1^t)·sqrt((1−β2^t)/(1−β2))·sqrt(Σ_{k<t}(β1²/β2)^k)
/// ```
/// (`tolerance::adam_step`; `τ` = `tolerance::adam_step_rounding_factor`), read from the state's
/// `last_step` (not from `θ` differences). eps = 1e-30: D2 is stated for eps = 0 and eps > 0
/// only lowers the step. Runs Adam on one coordinate fed `sequence`; returns the largest
/// `|s_t|/(lr·C_t)` so that a caller can also check that the bound is attained.
pub fn largest_adam_step_over_c_t<T: Scalar>(
    backend: &impl Backend<T>,
    (beta1, beta2): (f64, f64),
    learning_rate: f64,
    sequence: &[f64],
) -> Result<f64, TestCaseError> {
    let hyper = AdamHyper::new(learning_rate, beta1, beta2, 1e-30);
    let mut adam = BackendAdam::<T, _>::new(backend, hyper, &[1])?;
    let mut parameters = vec![Array1::from(vec![T::zero()])];
    let lr_held = T::narrow(learning_rate).widen();
    let mut largest = 0.0f64;
    for (index, &g) in sequence.iter().enumerate() {
        adam.step(&mut parameters, &[Array1::from(vec![T::narrow(g)])])?;
        let t = index as u64 + 1;
        let step = adam.states[0].last_step[0].widen().abs();
        let bound = tolerance::adam_step(lr_held, beta1, beta2, t, T::UNIT_ROUNDOFF)
            .ok_or_else(|| invalid_betas(beta1, beta2))?
            * (1.0 + adam_divide_sqrt_excess::<T>());
        let factor = tolerance::adam_step_factor(beta1, beta2, t)
            .ok_or_else(|| invalid_betas(beta1, beta2))?;
        largest = largest.max(step / (lr_held * factor));
        prop_assert!(
            step <= bound,
            "{}: Adam ({beta1}, {beta2}), lr = {learning_rate:e}, t = {t}: |s_t| = {step:e} > lr·C_t·(1+τu) = {bound:e} (C_t = {factor})",
            T::NAME
        );
    }
    Ok(largest)
}

/// THEORY.md C5, gradient-scale invariance: `Adam(2^k·g; 2^k·eps) ≡ Adam(g; eps)` **bitwise**
/// in parameters, with `m`, `v` scaled by exactly `2^k`, `4^k`, while nothing overflows or
/// becomes subnormal (every operation commutes with power-of-two scaling and
/// `sqrt(4^k v) = 2^k sqrt(v)` exactly). No tolerance. Callers keep `|g|·2^k` and `g²·4^k`
/// normal (e.g. `|g| ∈ [e^−3, e^3]`, `k ∈ [−20, 20]`).
pub fn adam_step_is_scale_invariant<T: Scalar>(
    backend: &impl Backend<T>,
    (beta1, beta2): (f64, f64),
    learning_rate: f64,
    eps: f64,
    exponent: i32,
    sequence: &[f64],
) -> TestCaseResult {
    let scale = 2f64.powi(exponent);
    let mut base = BackendAdam::<T, _>::new(
        backend,
        AdamHyper::new(learning_rate, beta1, beta2, eps),
        &[1],
    )?;
    let mut scaled = BackendAdam::<T, _>::new(
        backend,
        AdamHyper::new(learning_rate, beta1, beta2, eps * scale),
        &[1],
    )?;
    let mut theta_base = vec![Array1::from(vec![T::zero()])];
    let mut theta_scaled = theta_base.clone();
    let (scale_t, scale_sq) = (T::narrow(scale), T::narrow(scale * scale));
    for (index, &g) in sequence.iter().enumerate() {
        let g = T::narrow(g);
        base.step(&mut theta_base, &[Array1::from(vec![g])])?;
        scaled.step(&mut theta_scaled, &[Array1::from(vec![g * scale_t])])?;
        let (a, b) = (&base.states[0], &scaled.states[0]);
        let same = theta_base[0][0].widen().to_bits() == theta_scaled[0][0].widen().to_bits()
            && (a.first_moment[0] * scale_t).widen().to_bits()
                == b.first_moment[0].widen().to_bits()
            && (a.second_moment[0] * scale_sq).widen().to_bits()
                == b.second_moment[0].widen().to_bits();
        prop_assert!(
            same,
            "{}: Adam ({beta1}, {beta2}), eps = {eps:e}, scale 2^{exponent}, step {}: θ {:e} vs {:e}, m {:e}·2^k vs {:e}, v {:e}·4^k vs {:e}",
            T::NAME, index + 1, theta_base[0][0], theta_scaled[0][0], a.first_moment[0],
            b.first_moment[0], a.second_moment[0], b.second_moment[0]
        );
    }
    Ok(())
}

/// THEORY.md D3, steps after silence: after `warm` steps and a long run of zero gradients, one
/// gradient `g` moves the coordinate by `lr(1−β1)|g|/(sqrt(1−β2)|g| + eps)` whatever `|g|`, and
/// the following zero steps add `Σ_j lr·β1^j(1−β1)|g|/(sqrt(β2^j(1−β2))|g| + eps)` (800 steps,
/// lr 1e-3; silence 20,000 steps for β2 < 0.99, else 80,000).
///
/// D3 with the tolerance derived here:
/// - first step: `(τu + δ)·s*`, `τ` of D2 and `δ` the first-order size of what the formula
///   neglects, read from the state before the spike:
///   `δ = β1|m_b|/((1−β1)|g|) + β1^t/(1−β1^t) + ½(β2·v_b/((1−β2)g²) + β2^t/(1−β2^t))`;
/// - total drift over `J` steps: `Σ_j s*_j·(τu + δ + 3j·u) + γ_J(u64)·Σ s*`: each zero step
///   multiplies `m` by `fl(β1)` and `v` by `fl(β2)` (coefficient and product: `2u` for `m`,
///   `2u/2` through the sqrt for `v`), and the test sums in f64.
pub fn adam_step_after_silence_is_set_by_the_betas<T: Scalar>(
    backend: &impl Backend<T>,
    (beta1, beta2): (f64, f64),
    warm: &[f64],
    spike: f64,
    eps: f64,
) -> TestCaseResult {
    const LEARNING_RATE: f64 = 1e-3;
    const DRIFT_STEPS: usize = 800;
    // Long enough that β2^K·v_b is far below (1−β2)·g² for g ≥ 1e-6 (δ stays ≪ u).
    let silence = if beta2 < 0.99 { 20_000 } else { 80_000 };
    let mut adam = BackendAdam::<T, _>::new(
        backend,
        AdamHyper::new(LEARNING_RATE, beta1, beta2, eps),
        &[1],
    )?;
    let mut theta = vec![Array1::from(vec![T::zero()])];
    let zero = [Array1::from(vec![T::zero()])];
    for &g in warm {
        adam.step(&mut theta, &[Array1::from(vec![T::narrow(g)])])?;
    }
    for _ in 0..silence {
        adam.step(&mut theta, &zero)?;
    }
    let before = adam.states[0].clone();
    let g = T::narrow(spike).widen();
    let (lr, eps_held) = (T::narrow(LEARNING_RATE).widen(), T::narrow(eps).widen());
    adam.step(&mut theta, &[Array1::from(vec![T::narrow(spike)])])?;
    let t = (before.step + 1) as f64;
    let u = T::UNIT_ROUNDOFF;
    let tau =
        tolerance::adam_step_rounding_factor(beta1, beta2) + adam_divide_sqrt_excess::<T>() / u;
    let delta = beta1 * before.first_moment[0].widen().abs() / ((1.0 - beta1) * g)
        + beta1.powf(t) / (1.0 - beta1.powf(t))
        + 0.5
            * (beta2 * before.second_moment[0].widen() / ((1.0 - beta2) * g * g)
                + beta2.powf(t) / (1.0 - beta2.powf(t)));
    let expected_step = |j: i32| {
        lr * beta1.powi(j) * (1.0 - beta1) * g
            / ((beta2.powi(j) * (1.0 - beta2)).sqrt() * g + eps_held)
    };
    let first = adam.states[0].last_step[0].widen();
    let first_bound = (tau * u + delta) * expected_step(0);
    prop_assert!(
        (first - expected_step(0)).abs() <= first_bound,
        "{}: ({beta1}, {beta2}), |g| = {spike:e}: first step {first:e}, expected {:e} ± {first_bound:e}",
        T::NAME, expected_step(0)
    );
    let mut drift = first;
    let mut expected_drift = expected_step(0);
    let mut weighted = 0.0;
    for j in 1..DRIFT_STEPS {
        adam.step(&mut theta, &zero)?;
        drift += adam.states[0].last_step[0].widen();
        let j = i32::try_from(j).unwrap_or(i32::MAX);
        expected_drift += expected_step(j);
        weighted += f64::from(j) * expected_step(j);
    }
    let drift_bound = (tau * u + delta) * expected_drift
        + 3.0 * u * weighted
        + gamma_u64(DRIFT_STEPS)? * expected_drift;
    prop_assert!(
        (drift - expected_drift).abs() <= drift_bound,
        "{}: ({beta1}, {beta2}), |g| = {spike:e}: drift {drift:e}, expected {expected_drift:e} ± {drift_bound:e}",
        T::NAME
    );
    Ok(())
}

/// THEORY.md C1, gradient descent on `f(x) = λx²/2`: `x_{k+1} = (1 − ηλ)x_k`, so plain SGD
/// flips the sign every step iff `ηλ > 1` and `|x_k| = |1 − ηλ|^k·|x_0|` (stable iff `ηλ < 2`).
/// Tolerance: `tolerance::gradient_descent_quadratic_relative` (`k(1 + 2ηλ/|1 − ηλ|)u`) for the
/// optimizer plus `k(2 + ηλ/|1 − ηλ|)u64 + γ_k(u64)` for the f64 evaluation of the formula; 60
/// steps, stopping before `|x|` nears the subnormal range. Callers keep `ηλ` away from 1 and 2.
pub fn gradient_descent_on_a_quadratic_follows_one_minus_rate_times_curvature<T: Scalar>(
    backend: &impl Backend<T>,
    learning_rate: f64,
    lambda: f64,
    start: f64,
) -> TestCaseResult {
    const STEPS: u64 = 60;
    let lambda_held = T::narrow(lambda);
    let eta_lambda = T::narrow(learning_rate).widen() * lambda_held.widen();
    let rho = 1.0 - eta_lambda;
    let mut sgd = BackendSgd::<T, _>::new(backend, SgdHyper::plain(learning_rate), &[1])?;
    let mut x = vec![Array1::from(vec![T::narrow(start)])];
    let x0 = x[0][0].widen();
    // Stop asserting before |x| nears the subnormal range, where relative bounds fail.
    let floor = T::MIN_POSITIVE_NORMAL * 1e8 / lambda.min(1.0);
    for k in 1..=STEPS {
        let previous = x[0][0];
        let gradient = lambda_held * previous;
        sgd.step(&mut x, &[Array1::from(vec![gradient])])?;
        let current = x[0][0];
        let expected = x0.abs() * rho.abs().powi(i32::try_from(k).unwrap_or(i32::MAX));
        if expected < floor {
            break;
        }
        let flipped = (current.widen() < 0.0) != (previous.widen() < 0.0);
        prop_assert_eq!(
            flipped,
            eta_lambda > 1.0,
            "{}: ηλ = {}, step {}: x {:e} → {:e}",
            T::NAME,
            eta_lambda,
            k,
            previous,
            current
        );
        let relative =
            tolerance::gradient_descent_quadratic_relative(k, eta_lambda, T::UNIT_ROUNDOFF)
                + k as f64 * (2.0 + eta_lambda / rho.abs()) * U64
                + gamma_u64(k as usize)?;
        let error = (current.widen().abs() - expected).abs();
        prop_assert!(
            error <= relative * expected,
            "{}: ηλ = {eta_lambda}, step {k}: |x| = {:e}, expected {expected:e} ± {:e}",
            T::NAME,
            current,
            relative * expected
        );
    }
    Ok(())
}

/// THEORY.md C2, heavy-ball momentum thresholds: PyTorch SGD momentum `μ` (dampening 0) on
/// `λx²/2` is stable iff `0 < lr·λ < 2(1 + μ)` (Jury conditions for `z² − (1 + μ − lr·λ)z + μ`).
/// At `lr·λ = 0.95·2(1+μ)` the iterate from `x0 = 1` has `|x_500| < 1e-6`; at `1.05·2(1+μ)`,
/// `|x_500| > 1e6` or non-finite. The spectral radii (≤ 0.949, ≥ 1.05 for `μ ≤ 0.9`) are far
/// from 1, so no rounding tolerance is involved.
pub fn momentum_stability_threshold_separates_convergence<T: Scalar>(
    backend: &impl Backend<T>,
    momentum: f64,
    lambda: f64,
) -> TestCaseResult {
    let threshold = tolerance::momentum_stability_threshold(momentum);
    for (factor, converges) in [(0.95, true), (1.05, false)] {
        let hyper = SgdHyper {
            momentum,
            ..SgdHyper::plain(factor * threshold / lambda)
        };
        let mut sgd = BackendSgd::<T, _>::new(backend, hyper, &[1])?;
        let mut x = vec![Array1::from(vec![T::one()])];
        let lambda_held = T::narrow(lambda);
        for _ in 0..500 {
            let gradient = lambda_held * x[0][0];
            sgd.step(&mut x, &[Array1::from(vec![gradient])])?;
        }
        let end = x[0][0].widen().abs();
        if converges {
            prop_assert!(
                end < 1e-6,
                "{}: μ = {momentum}, lr·λ = {factor}·2(1+μ): |x_500| = {end:e}",
                T::NAME
            );
        } else {
            prop_assert!(
                !end.is_finite() || end > 1e6,
                "{}: μ = {momentum}, lr·λ = {factor}·2(1+μ): |x_500| = {end:e}",
                T::NAME
            );
        }
    }
    Ok(())
}

/// THEORY.md D5, gradient clipping: the post-clip norm (in f64 from the clipped `T` gradients)
/// is `≤ M(1 + γ_n/2 + 4u + x)` and within `M(γ_n/2 + 4u + x)` of `N·min(1, M/(N + 1e-6))`
/// (`tolerance::clip_grad_norm_relative`, plus `γ_n(u64)·M` for the invariant's f64 norms;
/// `x = (ε_sqrt − u) + (ε_div − u)` for the OpenCL budgets of the norm's sqrt and the
/// coefficient's division, 0 where they are correctly rounded); the gradients are bitwise
/// unchanged when `N̂ + 1e-6 < M(1 − 3u − ε_div)` for the returned `N̂` (as
/// `tolerance::clip_grad_norm_certainly_inactive`, whose `4u` is `3u + ε_div` with a correctly
/// rounded division: the coefficient is then `> 1` before and after its rounding).
pub fn clip_grad_norm_bounds_the_norm<T: Scalar>(
    backend: &impl Backend<T>,
    tensors: &[Vec<f64>],
    max_norm: f64,
) -> TestCaseResult {
    let original: Vec<Array1<T>> = tensors
        .iter()
        .map(|t| t.iter().map(|&v| T::narrow(v)).collect())
        .collect();
    let n: usize = original.iter().map(Array1::len).sum();
    let mut clipped = original.clone();
    let returned = backend.clip_grad_norm(&mut clipped, max_norm)?.widen();
    let norm = norm_of(&original);
    let post = norm_of(&clipped);
    let model = tolerance::ArithModel::of::<T>();
    let u = model.unit_roundoff;
    let excess = (tolerance::ulp_relative_error(&model, tolerance::SQRT) - u) + (model.divide - u);
    let relative = tolerance::clip_grad_norm_relative(n, u) + excess;
    let evaluation = gamma_u64(n.max(1))? * max_norm;
    let ceiling = max_norm * (1.0 + relative) + evaluation;
    prop_assert!(
        post <= ceiling,
        "{}: n = {n}, N = {norm:e}, M = {max_norm}: post-clip norm {post:e} > {ceiling:e}",
        T::NAME
    );
    let target = norm * (max_norm / (norm + 1e-6)).min(1.0);
    let bound = max_norm * relative + evaluation;
    prop_assert!(
        (post - target).abs() <= bound,
        "{}: n = {n}, N = {norm:e}, M = {max_norm}: post-clip norm {post:e}, formula {target:e} ± {bound:e}",
        T::NAME
    );
    let inactive = returned + crate::reference::optim::CLIP_NORM_OFFSET
        < max_norm * (1.0 - 3.0 * u - model.divide);
    if inactive {
        let unchanged = original.iter().zip(&clipped).all(|(a, b)| {
            a.iter()
                .zip(b.iter())
                .all(|(x, y)| x.widen().to_bits() == y.widen().to_bits())
        });
        prop_assert!(
            unchanged,
            "{}: N = {returned:e} < M = {max_norm}: gradients changed",
            T::NAME
        );
    }
    Ok(())
}

/// THEORY.md C4, the eps regime: with gradients `|g| ≪ eps`, Adam is EMA-momentum SGD with rate
/// `lr/eps`: each step equals `(lr/eps)·m̂` (from the state's own `m`) within
/// `sqrt(v̂)/eps + 8u` relative (exact factor `1/(1 + sqrt(v̂)/eps)`; 8 roundings: bias
/// corrections (2), `v̂`'s division, the sqrt, the add of eps, the divide, the multiply by lr,
/// and the invariant's own f64 `m̂`). lr 1e-3, one coordinate fed `sequence`.
pub fn adam_in_the_eps_regime_is_momentum_sgd<T: Scalar>(
    backend: &impl Backend<T>,
    (beta1, beta2): (f64, f64),
    eps: f64,
    sequence: &[f64],
) -> TestCaseResult {
    const LEARNING_RATE: f64 = 1e-3;
    let mut adam = BackendAdam::<T, _>::new(
        backend,
        AdamHyper::new(LEARNING_RATE, beta1, beta2, eps),
        &[1],
    )?;
    let mut theta = vec![Array1::from(vec![T::zero()])];
    let (lr, eps_held) = (T::narrow(LEARNING_RATE).widen(), T::narrow(eps).widen());
    let u = T::UNIT_ROUNDOFF;
    for &g in sequence {
        adam.step(&mut theta, &[Array1::from(vec![T::narrow(g)])])?;
        let state = &adam.states[0];
        let t = state.step as f64;
        let m_hat = state.first_moment[0].widen() / (1.0 - beta1.powf(t));
        let v_hat = state.second_moment[0].widen() / (1.0 - beta2.powf(t));
        let momentum_sgd = lr / eps_held * m_hat;
        let step = state.last_step[0].widen();
        let bound = (v_hat.sqrt() / eps_held + 8.0 * u + adam_divide_sqrt_excess::<T>())
            * momentum_sgd.abs();
        prop_assert!(
            (step - momentum_sgd).abs() <= bound,
            "{}: ({beta1}, {beta2}), eps = {eps:e}, t = {t}: step {step:e}, (lr/eps)·m̂ = {momentum_sgd:e} ± {bound:e}",
            T::NAME
        );
    }
    Ok(())
}

/// THEORY.md D1 (d): from a fresh state a constant gradient gives `m̂ = g`, `v̂ = g²` in exact
/// arithmetic, so every step is `lr_t·|g|/(|g| + eps)`, here with the seed-003 schedule
/// ([`SEED_003_SCHEDULE`]), betas (0.9, 0.98) and eps 1e-9. The optimizer holds `β`, `1 − β`
/// and the bias corrections rounded to `T`, and `fl(1−β) ≠ 1 − fl(β)` biases the EMA of a
/// constant by up to `u/(1−β)` relative, so the expected step is evaluated in f64 with the held
/// coefficients `b = fl(β)`, `c = fl(1−β)`, `B_t = fl(1−β^t)`:
/// `m̃ = c·g·(1−b1^t)/(1−b1)/B1_t`, `ṽ = c2·g²·(1−b2^t)/(1−b2)/B2_t`,
/// `s = lr_t·m̃/(sqrt(ṽ) + eps)`. Then only the rounding of the operations remains: per step
/// within `τu` (D2), and the drift over `steps` within `τu·Σ + γ_k(u64)·Σ`.
pub fn adam_on_a_constant_gradient_drifts_by_the_cumulative_rate<T: Scalar>(
    backend: &impl Backend<T>,
    gradient: f64,
    steps: u64,
) -> TestCaseResult {
    let (beta1, beta2, eps) = (0.9f64, 0.98f64, 1e-9);
    let mut adam = BackendAdam::<T, _>::new(backend, AdamHyper::new(1.0, beta1, beta2, eps), &[1])?;
    let mut theta = vec![Array1::from(vec![T::zero()])];
    let g = T::narrow(gradient).widen();
    let held = |value: f64| T::narrow(value).widen();
    let (b1, c1, b2, c2) = (
        held(beta1),
        held(1.0 - beta1),
        held(beta2),
        held(1.0 - beta2),
    );
    let eps_held = held(eps);
    let tau_u = tolerance::adam_step_rounding_factor(beta1, beta2) * T::UNIT_ROUNDOFF
        + adam_divide_sqrt_excess::<T>();
    let (mut drift, mut expected_drift) = (0.0, 0.0);
    for i in 0..steps {
        let rate = SEED_003_SCHEDULE.learning_rate(1.0, i)?;
        adam.hyper.learning_rate = rate;
        adam.step(&mut theta, &[Array1::from(vec![T::narrow(gradient)])])?;
        let t = (i + 1) as f64;
        let m = c1 * g * (1.0 - b1.powf(t)) / (1.0 - b1) / held(1.0 - beta1.powf(t));
        let v = c2 * g * g * (1.0 - b2.powf(t)) / (1.0 - b2) / held(1.0 - beta2.powf(t));
        let expected = held(rate) * m / (v.sqrt() + eps_held);
        let step = adam.states[0].last_step[0].widen();
        prop_assert!(
            (step - expected).abs() <= tau_u * expected.abs(),
            "{}: g = {gradient:e}, step {i}: {step:e} vs lr·m̃/(sqrt(ṽ)+eps) = {expected:e}",
            T::NAME
        );
        drift += step;
        expected_drift += expected;
    }
    let bound = (tau_u + gamma_u64(steps as usize)?) * expected_drift.abs();
    prop_assert!(
        (drift - expected_drift).abs() <= bound,
        "{}: g = {gradient:e}: drift {drift:e} vs {expected_drift:e} ± {bound:e}",
        T::NAME
    );
    Ok(())
}
/// THEORY.md D2 as a plain claim: every step of Adam on `sequence` satisfies
/// `|s_t| ≤ lr·C_t·(1 + τu)`; see [`largest_adam_step_over_c_t`].
pub fn adam_step_is_bounded_by_c_t<T: Scalar>(
    backend: &impl Backend<T>,
    betas: (f64, f64),
    learning_rate: f64,
    sequence: &[f64],
) -> TestCaseResult {
    largest_adam_step_over_c_t::<T>(backend, betas, learning_rate, sequence).map(|_| ())
}

/// THEORY.md C3, Adam with a constant rate does not settle on `λx²/2`: with `eps = 1e-9·λη`
/// (`≪ λ|x|` on the attractor), over the last 5000 of 20,000 steps from `x0`
/// ```text
/// 0.01·η ≤ rms(x) ≤ C_∞·η
/// ```
/// (C3 (d); `C_∞` = `tolerance::adam_step_factor_limit`: no step exceeds `C_∞η`, and an
/// attractor of rms below `0.01η` would need Adam's normalised step to shrink, which it does not
/// while `eps ≪ λ|x|`, C5). The map is invariant under `(x0, η) → 2^b·(x0, η)`,
/// `(λ, eps) → (2^a·λ, 2^{a+b}·eps)`: the scaled run equals `2^b·x_k` **bitwise** at every step
/// while `(1 − β2)·g²` of both runs is normal, i.e. while
/// `λ|x| ≥ 2^{|a+b|}·sqrt(MIN_POSITIVE_NORMAL/(1 − β2))` (the comparison stops there).
/// Callers: `|x0| ∈ [η, 1000η]` (the approach moves ~η per step, so a larger start needs more
/// steps), `λ ∈ [1e-2, 1e2]`, `η ∈ [1e-4, 1e-2]`, `|a|, |b| ≤ 10`, and betas (0.9, 0.98) or
/// (0.9, 0.99): with β2 = 0.999 a stale `v̂` makes Adam SGD-like and the reference converged
/// transiently for ~10^4 steps (rms 3e-27 over steps 15,000–20,000 at λ = 1, η = 1e-2,
/// x0 = 6.6), so 2·10^4 steps do not show C3's long-run behaviour for that pair.
pub fn adam_on_a_quadratic_does_not_settle<T: Scalar>(
    backend: &impl Backend<T>,
    (beta1, beta2): (f64, f64),
    start: f64,
    lambda: f64,
    learning_rate: f64,
    (scale_lambda, scale_x): (i32, i32),
) -> TestCaseResult {
    const STEPS: usize = 20_000;
    const WINDOW: usize = 5_000;
    let run =
        |x0: f64, lambda: f64, learning_rate: f64, eps: f64| -> Result<Vec<T>, TestCaseError> {
            let mut adam = BackendAdam::<T, _>::new(
                backend,
                AdamHyper::new(learning_rate, beta1, beta2, eps),
                &[1],
            )?;
            let lambda = T::narrow(lambda);
            let mut x = vec![Array1::from(vec![T::narrow(x0)])];
            let mut trajectory = Vec::with_capacity(STEPS);
            for _ in 0..STEPS {
                let gradient = lambda * x[0][0];
                adam.step(&mut x, &[Array1::from(vec![gradient])])?;
                trajectory.push(x[0][0]);
            }
            Ok(trajectory)
        };
    let eps = 1e-9 * lambda * learning_rate;
    let base = run(start, lambda, learning_rate, eps)?;
    let tail = &base[STEPS - WINDOW..];
    let rms = (tail.iter().map(|x| x.widen() * x.widen()).sum::<f64>() / WINDOW as f64).sqrt();
    let limit = tolerance::adam_step_factor_limit(beta1, beta2)
        .ok_or_else(|| invalid_betas(beta1, beta2))?;
    prop_assert!(
        0.01 * learning_rate <= rms && rms <= limit * learning_rate,
        "{}: Adam ({beta1}, {beta2}), λ = {lambda:e}, η = {learning_rate:e}, x0 = {start:e}: \
         rms(x) over the last {WINDOW} steps = {rms:e} = {}·η, outside [0.01, C_∞ = {limit}]·η",
        T::NAME,
        rms / learning_rate
    );
    let (a, b) = (2f64.powi(scale_lambda), 2f64.powi(scale_x));
    let scaled = run(start * b, lambda * a, learning_rate * b, eps * a * b)?;
    let floor =
        2f64.powi((scale_lambda + scale_x).abs()) * (T::MIN_POSITIVE_NORMAL / (1.0 - beta2)).sqrt();
    let lambda_held = T::narrow(lambda).widen();
    let factor = T::narrow(b);
    for (k, (&x, &y)) in base.iter().zip(&scaled).enumerate() {
        if lambda_held * x.widen().abs() < floor {
            break;
        }
        prop_assert!(
            (x * factor).widen().to_bits() == y.widen().to_bits(),
            "{}: step {}: 2^{scale_x}·x = {:e} ≠ scaled run {:e} (λ·2^{scale_lambda})",
            T::NAME,
            k + 1,
            x * factor,
            y
        );
    }
    Ok(())
}

/// THEORY.md D4 (d), drift under the Noam schedule: with [`SEED_003_SCHEDULE`] and betas
/// (0.9, 0.98), eps 1e-9, over 3000 steps of gradients with constant signs (a geometric burst
/// `1.089^(i mod 60)` every 500 steps, the near-worst case of D2, on three coordinates scaled
/// 1, −0.3, 1e-3), every coordinate moves by
/// ```text
/// |θ_k − θ_0| ≤ C_∞·Σ_{i<k} lr_i·(1 + τu) + Σ_i u·|θ_i|
/// ```
/// (the last sum is the rounding of each `θ − s`), and, as D1 predicts for a constant-sign
/// input, by more than `Σlr/2`: the drift is of the order of the cumulative rate.
pub fn adam_drift_under_noam_is_bounded_by_cumulative_rate<T: Scalar>(
    backend: &impl Backend<T>,
) -> TestCaseResult {
    let (beta1, beta2) = (0.9, 0.98);
    let mut adam =
        BackendAdam::<T, _>::new(backend, AdamHyper::new(1.0, beta1, beta2, 1e-9), &[3])?;
    let mut theta = vec![Array1::from(vec![
        T::narrow(0.5),
        T::narrow(-1.0),
        T::zero(),
    ])];
    let start = theta[0].clone();
    let limit = tolerance::adam_step_factor_limit(beta1, beta2)
        .ok_or_else(|| invalid_betas(beta1, beta2))?;
    let u = T::UNIT_ROUNDOFF;
    let tau =
        tolerance::adam_step_rounding_factor(beta1, beta2) + adam_divide_sqrt_excess::<T>() / u;
    let mut cumulative = 0.0f64;
    let mut rounding = [0.0f64; 3];
    for i in 0..3000u64 {
        let rate = SEED_003_SCHEDULE.learning_rate(1.0, i)?;
        adam.hyper.learning_rate = rate;
        cumulative += T::narrow(rate).widen();
        let burst = 1.089f64.powi(((i % 500) % 60) as i32);
        let gradient = Array1::from(vec![
            T::narrow(burst),
            T::narrow(-0.3 * burst),
            T::narrow(1e-3),
        ]);
        adam.step(&mut theta, &[gradient])?;
        for (r, v) in rounding.iter_mut().zip(theta[0].iter()) {
            *r += u * v.widen().abs();
        }
    }
    for i in 0..3 {
        let drift = (theta[0][i].widen() - start[i].widen()).abs();
        let bound = limit * cumulative * (1.0 + tau * u) + rounding[i];
        prop_assert!(
            drift <= bound,
            "{}: coordinate {i}: drift {drift} > C_∞·Σlr bound {bound} (Σlr = {cumulative})",
            T::NAME
        );
        prop_assert!(
            drift > 0.5 * cumulative,
            "{}: coordinate {i}: drift {drift} is not of the order of Σlr = {cumulative}",
            T::NAME
        );
    }
    Ok(())
}
