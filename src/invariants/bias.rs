//! Output-bias dynamics under uninformative features (THEORY.md A2) and the label-entropy floor
//! of the BCE loss when the features carry no information about the labels (A1, seed 000).
//!
//! The bias-only problem is gradient descent on `L(b) = mean_i BCE(b, y_i)` with the backend's
//! own gradient ([`Backend::bce_with_logits_mean_backward`], summed: `mean(σ(b) − y)`) and loss
//! ([`Backend::bce_with_logits_mean`]); the descent step itself is two roundings in `T`.

use std::collections::BTreeMap;

use ndarray::{Array1, ArrayView1};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::label_entropy_nats;
use crate::tolerance::{self, ArithModel};
use crate::{Backend, Scalar};

/// `(p̄, b* = logit(p̄), |b̂* − b*|)`: the label mean in f64, the prior logit, and the error of
/// its f64 evaluation (`p̄` relative `γ_n(u64)`, then `ln(p̄/(1 − p̄))`: as in A1 (d)(iii)).
fn prior_and_logit<T: Scalar>(labels: ArrayView1<'_, T>) -> (f64, f64, f64) {
    let n = labels.len().max(1);
    let mean = labels.iter().map(|v| v.widen()).sum::<f64>() / n as f64;
    let logit = (mean / (1.0 - mean)).ln();
    let g = tolerance::gamma(n + 4, f64::EPSILON / 2.0).unwrap_or(f64::INFINITY);
    (mean, logit, g * (1.0 + logit.abs()) / mean.min(1.0 - mean))
}

/// One gradient-descent step of the bias-only problem, in `T`:
/// `ĝ = Σ_i ((σ(b) − y_i)·1)/n` (`backend`'s BCE-mean VJP, summed sequentially here) and
/// `b ← b − η̂·ĝ`. Returns `(b_new, ĝ, bound on |ĝ − g|)`, the bound being the per-element
/// [`tolerance::bce_with_logits_mean_backward`] plus `γ_{n−1}·Σ|ĝ_i|` for the sum.
fn bias_step<T: Scalar>(
    backend: &impl Backend<T>,
    bias: T,
    labels: ArrayView1<'_, T>,
    learning_rate: T,
    model: &ArithModel,
) -> Result<(T, T, f64), crate::Error> {
    let n = labels.len();
    let logits = Array1::from_elem(n, bias);
    let per_element = backend.bce_with_logits_mean_backward(logits.view(), labels, T::one())?;
    let mut gradient = T::zero();
    for &g in &per_element {
        gradient = gradient + g;
    }
    let element_bound: f64 = tolerance::bce_with_logits_mean_backward(
        logits.mapv(Scalar::widen).view(),
        labels.mapv(Scalar::widen).view(),
        1.0,
        model,
    )
    .sum();
    let absolute: f64 = per_element.iter().map(|g| g.widen().abs()).sum();
    let gradient_bound = element_bound + model.gamma(n.saturating_sub(1)) * absolute;
    Ok((bias - learning_rate * gradient, gradient, gradient_bound))
}

/// Bias-only gradient descent on BCE-with-logits moves monotonically toward `b* = logit(p̄)` and
/// reaches the label entropy (THEORY.md A2 (a), (d)(ii)).
///
/// Zero features: every logit is the bias `b`, `L(b) = softplus(b) − b·p̄`, `L'(b) = σ(b) − p̄`,
/// `L'' = σ(1 − σ) ≤ 1/4`. For `η ≤ 4` the map `F(b) = b − η(σ(b) − p̄)` has `F' = 1 − ηL'' ≥ 0`
/// and `F(b*) = b*`, so `F(b) − b*` has the sign of `b − b*` and `|F(b) − b*| ≤ |b − b*|`.
/// After `K = ⌈40/(η p̄(1 − p̄))⌉` steps (40 local time constants) `L(b_K) − H(p̄) ≤ T_BCE`.
///
/// Bound per step (`b̂` in `T`, gradient from the reference):
/// ```text
/// |b̂_{k+1} − b*| ≤ |b̂_k − b*| + tol_k + 2e*,
/// tol_k = η·E_g + 2u|η̂ĝ| + u|b̂_{k+1}| + u·η|ĝ|,   sign(b̂_k − b*) = sign(b̂_0 − b*) unless
///         |b̂_k − b*| ≤ max_{j<k} tol_j + e*
/// ```
/// `E_g` bounds `|ĝ − g|` (the per-element VJP bound of [`tolerance::bce_with_logits_mean_backward`]
/// plus `γ_{n−1}Σ|ĝ_i|` for the sum), the next terms are the product, the subtraction and the
/// rounding of `η` to `T`; `e*` is the f64 error of `b*`. Final claim: `L̂(b̂_K) − H(p̄) ≤ T_BCE`
/// = [`tolerance::bce_with_logits_mean`] at `b̂_K` in `T` plus the f64 error of `H(p̄)`.
/// Requires `0 < p̄ < 1` and `0 < η ≤ 4`; other inputs are rejected (`prop_assume`).
pub fn bias_gradient_descent_moves_monotonically_to_prior_logit<T: Scalar>(
    backend: &impl Backend<T>,
    labels: ArrayView1<'_, T>,
    initial_bias: T,
    learning_rate: f64,
) -> TestCaseResult {
    let (mean, target, target_error) = prior_and_logit(labels);
    prop_assume!(mean > 0.0 && mean < 1.0 && learning_rate > 0.0 && learning_rate <= 4.0);
    let model = ArithModel::of::<T>();
    let u = T::UNIT_ROUNDOFF;
    let eta = T::narrow(learning_rate);
    let steps = (40.0 / (learning_rate * mean * (1.0 - mean))).ceil() as usize;
    let start_side = (initial_bias.widen() - target).signum();
    let mut bias = initial_bias;
    let mut worst_tolerance = 0.0_f64;
    for k in 0..steps {
        let (next, gradient, gradient_bound) = bias_step(backend, bias, labels, eta, &model)?;
        let step_size = learning_rate * gradient.widen().abs();
        let tol = learning_rate * gradient_bound
            + 3.0 * u * step_size
            + u * next.widen().abs()
            + model.underflow;
        let (before, after) = ((bias.widen() - target).abs(), (next.widen() - target).abs());
        prop_assert!(
            after <= before + tol + 2.0 * target_error,
            "{}: bias GD η = {learning_rate}, p̄ = {mean}, step {k}: |b − b*| grew from {before:e} \
             to {after:e} (tolerance {tol:e}); b* = {target}",
            T::NAME
        );
        worst_tolerance = worst_tolerance.max(tol);
        let side = (next.widen() - target) * start_side;
        prop_assert!(
            side >= -(worst_tolerance + target_error),
            "{}: bias GD η = {learning_rate}, p̄ = {mean}, step {k}: b crossed b* = {target} \
             (b − b* = {:e}, started {:e}; tolerance {worst_tolerance:e})",
            T::NAME,
            next.widen() - target,
            initial_bias.widen() - target
        );
        bias = next;
    }
    let logits = Array1::from_elem(labels.len(), bias);
    let loss = backend.bce_with_logits_mean(logits.view(), labels)?.widen();
    let entropy = label_entropy_nats(mean);
    let entropy_slack = 2.0
        * tolerance::gamma(labels.len() + 8, f64::EPSILON / 2.0).unwrap_or(f64::INFINITY)
        * (1.0 + mean.ln().abs() + (1.0 - mean).ln().abs());
    let bound = tolerance::bce_with_logits_mean(
        logits.mapv(Scalar::widen).view(),
        labels.mapv(Scalar::widen).view(),
        &model,
    ) + entropy_slack;
    prop_assert!(
        loss - entropy <= bound,
        "{}: after K = {steps} bias GD steps (η = {learning_rate}, p̄ = {mean}, b0 = {:e}): \
         L(b_K) − H(p̄) = {:e} > T_BCE = {bound:e} (b_K − b* = {:e})",
        T::NAME,
        initial_bias.widen(),
        loss - entropy,
        bias.widen() - target
    );
    Ok(())
}

/// Steps the unstable bias iteration runs before it is observed (see
/// [`bias_gradient_descent_does_not_converge_above_stability_limit`]).
pub const UNSTABLE_BIAS_WARMUP_STEPS: usize = 1000;
/// Steps over which the unstable bias iteration is observed after the warm-up.
pub const UNSTABLE_BIAS_OBSERVED_STEPS: usize = 100;

/// Above the local stability limit `η p̄(1 − p̄) = 2` bias-only gradient descent does not converge
/// (THEORY.md A2 (a), (d)(iii)): at `η p̄(1 − p̄) = 2.05` the fixed point `b*` repels
/// (`|F'(b*)| = 1.05`), so after [`UNSTABLE_BIAS_WARMUP_STEPS`] steps, and for each of the next
/// [`UNSTABLE_BIAS_OBSERVED_STEPS`], `|b_k − b*| ≥ 1e-3`.
///
/// THEORY.md states this at `K = ⌈40/(η p̄(1 − p̄))⌉ = 20` steps; that is false as stated: an orbit
/// may pass close to the repelling `b*` while it is still in transit (measured in f64: `|b_20 − b*|
/// = 3.7e-4` for `p̄ = 0.387`, `b0 = −3.567`). After 400 steps, over 2000 random
/// `(p̄ ∈ [0.05, 0.95], b0 ∈ [−10, 10], |b0 − b*| ≥ 0.1)` every orbit stayed at least 0.257 from
/// `b*` (at `p̄ = 1/2` the attracting period-2 orbit is `b = ±0.54`, the solution of
/// `2b = η(σ(b) − 1/2)` with `η = 8.2`), so `1e-3` leaves a factor 257 for rounding and the transient. Inputs with
/// `|b0 − b*| < 0.1` or `p̄ ∉ [0.05, 0.95]` are rejected (`prop_assume`).
pub fn bias_gradient_descent_does_not_converge_above_stability_limit<T: Scalar>(
    backend: &impl Backend<T>,
    labels: ArrayView1<'_, T>,
    initial_bias: T,
) -> TestCaseResult {
    let (mean, target, _) = prior_and_logit(labels);
    prop_assume!((0.05..=0.95).contains(&mean) && (initial_bias.widen() - target).abs() >= 0.1);
    let learning_rate = 2.05 / (mean * (1.0 - mean));
    let model = ArithModel::of::<T>();
    let eta = T::narrow(learning_rate);
    let mut bias = initial_bias;
    for k in 0..UNSTABLE_BIAS_WARMUP_STEPS + UNSTABLE_BIAS_OBSERVED_STEPS {
        bias = bias_step(backend, bias, labels, eta, &model)?.0;
        if k >= UNSTABLE_BIAS_WARMUP_STEPS {
            let distance = (bias.widen() - target).abs();
            prop_assert!(
                distance >= 1e-3,
                "{}: bias GD at η p̄(1 − p̄) = 2.05 (η = {learning_rate}, p̄ = {mean}, b0 = {:e}) \
                 came within {distance:e} of b* = {target} at step {}",
                T::NAME,
                initial_bias.widen(),
                k + 1
            );
        }
    }
    Ok(())
}

/// No predictor beats the conditional label entropy (THEORY.md A1, seed 000): if rows with the
/// same input (the same `groups` id) get the same logit, as any function of the input does, then
/// ```text
/// L = (1/n) Σ_x Σ_{i ∈ x} ℓ(z_x, y_i) = Σ_x (n_x/n)·[softplus(z_x) − z_x p̄_x]
///   = Σ_x (n_x/n)·[H(p̄_x) + KL(p̄_x ‖ σ(z_x))] ≥ H(Y | X) := Σ_x (n_x/n)·H(p̄_x).
/// ```
/// With labels independent of the inputs in the sample (`p̄_x = p̄` for every `x`) the floor is
/// `H(p̄)`: the loss plateau of seed 000 cannot be left without information in the features.
/// Bound: `L̂ ≥ H(Y|X) − T_BCE`, `T_BCE` = [`tolerance::bce_with_logits_mean`] in `T` plus the f64
/// error of the entropies (`2γ_{n+8}(u64)(1 + |ln p̄_x| + |ln(1 − p̄_x)|)` each). Asserts the
/// precondition too: equal groups must carry bitwise-equal logits.
pub fn bce_loss_is_at_least_conditional_label_entropy<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    groups: &[usize],
) -> TestCaseResult {
    let n = labels.len();
    prop_assert_eq!(groups.len(), n, "one group id per row");
    let mut by_group: BTreeMap<usize, (T, f64, usize)> = BTreeMap::new();
    for ((&z, &y), &g) in logits.iter().zip(labels.iter()).zip(groups) {
        let entry = by_group.entry(g).or_insert((z, 0.0, 0));
        prop_assert!(
            entry.0.widen().to_bits() == z.widen().to_bits(),
            "group {g} has two different logits {:e} and {:e}: not a function of the input",
            entry.0.widen(),
            z.widen()
        );
        entry.1 += y.widen();
        entry.2 += 1;
    }
    let g = tolerance::gamma(n + 8, f64::EPSILON / 2.0).unwrap_or(f64::INFINITY);
    let log_size = |q: f64| if q > 0.0 { q.ln().abs() } else { 0.0 };
    let (mut floor, mut slack) = (0.0, 0.0);
    for &(_, sum, count) in by_group.values() {
        let p = sum / count as f64;
        let weight = count as f64 / n as f64;
        floor += weight * label_entropy_nats(p);
        slack += weight * 2.0 * g * (1.0 + log_size(p) + log_size(1.0 - p));
    }
    let loss = backend.bce_with_logits_mean(logits, labels)?.widen();
    let bound = tolerance::bce_with_logits_mean(
        logits.mapv(Scalar::widen).view(),
        labels.mapv(Scalar::widen).view(),
        &ArithModel::of::<T>(),
    ) + slack;
    prop_assert!(
        loss >= floor - bound,
        "{}: BCE {loss:.9e} below the conditional label entropy H(Y|X) = {floor:.9e} − {bound:e} \
         ({} groups, n = {n})",
        T::NAME,
        by_group.len()
    );
    Ok(())
}
