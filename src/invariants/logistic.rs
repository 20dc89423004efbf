//! Logistic-loss invariants: zero logits give ln 2; a constant logit cannot beat the label
//! entropy, and attains it at `logit(p̄)` (THEORY.md A1).

use ndarray::{Array1, ArrayView1};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use crate::tolerance::{self, ArithModel};
use crate::{Backend, Scalar};

/// Entropy of a Bernoulli(p) label in nats, `H(p) = −p ln p − (1−p) ln(1−p)`, with `H(0) = H(1) = 0`.
pub fn label_entropy_nats(p: f64) -> f64 {
    let term = |q: f64| if q > 0.0 { -q * q.ln() } else { 0.0 };
    term(p) + term(1.0 - p)
}

/// Label mean `p̄` in f64 and a bound on the f64 evaluation error of `H(p̄)`:
/// `p̄` has relative error `γ_n(u64)`, each `ln` is within 3 ulp (`6u64`) and each product and
/// the sum add `u64`, so `|Ĥ − H| ≤ 2·γ_{n+8}(u64)·(1 + |ln p̄| + |ln(1 − p̄)|)` (first order;
/// the factor 2 covers the two terms of `H`).
fn label_mean_and_entropy_slack<T: Scalar>(labels: ArrayView1<'_, T>) -> (f64, f64) {
    let n = labels.len();
    let mean = labels.iter().map(|v| v.widen()).sum::<f64>() / n.max(1) as f64;
    let g = tolerance::gamma(n + 8, f64::EPSILON / 2.0).unwrap_or(f64::INFINITY);
    let log_size = |q: f64| if q > 0.0 { q.ln().abs() } else { 0.0 };
    (
        mean,
        2.0 * g * (1.0 + log_size(mean) + log_size(1.0 - mean)),
    )
}

/// Zero logits give ln 2 for every label vector, hard or soft (THEORY.md A1 (a), (d)(i)):
/// `ℓ(0, y) = max(0,0) − 0·y + log1p(e^0) = ln 2` exactly, so the mean is ln 2. Bound:
/// [`tolerance::bce_with_logits_mean`] at `z = 0` in `T`'s arithmetic (it also covers a
/// non-exact `exp(0)`, which the spec's 3-ulp `exp` allows).
pub fn zero_logits_give_ln_two<T: Scalar>(
    backend: &impl Backend<T>,
    labels: ArrayView1<'_, T>,
) -> TestCaseResult {
    let logits = Array1::<T>::zeros(labels.len());
    let loss_nats = backend.bce_with_logits_mean(logits.view(), labels)?.widen();
    let bound = tolerance::bce_with_logits_mean(
        logits.mapv(Scalar::widen).view(),
        labels.mapv(Scalar::widen).view(),
        &ArithModel::of::<T>(),
    );
    prop_assert!(
        (loss_nats - std::f64::consts::LN_2).abs() <= bound,
        "{}<{}>: mean BCE(0, y) = {loss_nats:.9e}, expected ln 2 ± {bound:e}, n = {}",
        backend.name(),
        T::NAME,
        labels.len()
    );
    Ok(())
}

/// A constant logit cannot beat the label entropy (THEORY.md A1 (a), (d)(ii)):
/// `L(c) = softplus(c) − c·p̄ = H(p̄) + KL(p̄ ‖ σ(c)) ≥ H(p̄)`. Asserted as
/// `L̂(c) ≥ H(p̄) − B(c, y) − slack_H`, `B` = [`tolerance::bce_with_logits_mean`] in `T`'s
/// arithmetic, `slack_H` the f64 evaluation error of `H(p̄)` (see the source).
pub fn constant_logit_loss_is_at_least_label_entropy<T: Scalar>(
    backend: &impl Backend<T>,
    labels: ArrayView1<'_, T>,
    logit: T,
) -> TestCaseResult {
    let logits = Array1::from_elem(labels.len(), logit);
    let loss_nats = backend.bce_with_logits_mean(logits.view(), labels)?.widen();
    let (mean, slack) = label_mean_and_entropy_slack(labels);
    let entropy = label_entropy_nats(mean);
    let bound = tolerance::bce_with_logits_mean(
        logits.mapv(Scalar::widen).view(),
        labels.mapv(Scalar::widen).view(),
        &ArithModel::of::<T>(),
    );
    prop_assert!(
        loss_nats >= entropy - bound - slack,
        "{}<{}>: L(c = {:e}) = {loss_nats:.9e} < H(p̄ = {mean:e}) = {entropy:.9e} − bound {:e}",
        backend.name(),
        T::NAME,
        logit.widen(),
        bound + slack
    );
    Ok(())
}

/// The constant logit `c* = logit(p̄)` attains the label entropy (THEORY.md A1 (d)(iii)):
/// `L(c*) = H(p̄)`. The backend gets `ĉ = fl_T(c*)`; since `L'' = σ(1 − σ) ≤ 1/4`,
/// `0 ≤ L(ĉ) − H(p̄) ≤ (ĉ − c*)²/8`, so
/// ```text
/// −B − slack_H ≤ L̂(ĉ) − H(p̄) ≤ (ĉ − c*)²/8 + B + slack_H
/// ```
/// with `|ĉ − c*| ≤ u_T|c*| + γ_{n+4}(u64)(1 + |c*|)/min(p̄, 1 − p̄)` (rounding to `T`, and the
/// f64 evaluation of `ln(p̄/(1 − p̄))`). For `p̄ ∈ {0, 1}` the infimum is not attained and there is
/// nothing to assert.
pub fn label_prior_logit_attains_label_entropy<T: Scalar>(
    backend: &impl Backend<T>,
    labels: ArrayView1<'_, T>,
) -> TestCaseResult {
    let (mean, slack) = label_mean_and_entropy_slack(labels);
    if mean <= 0.0 || mean >= 1.0 {
        return Ok(());
    }
    let exact_logit = (mean / (1.0 - mean)).ln();
    let logit = T::narrow(exact_logit);
    let n = labels.len();
    let g = tolerance::gamma(n + 4, f64::EPSILON / 2.0).unwrap_or(f64::INFINITY);
    let logit_error =
        T::UNIT_ROUNDOFF * exact_logit.abs() + g * (1.0 + exact_logit.abs()) / mean.min(1.0 - mean);
    let logits = Array1::from_elem(n, logit);
    let loss_nats = backend.bce_with_logits_mean(logits.view(), labels)?.widen();
    let entropy = label_entropy_nats(mean);
    let bound = tolerance::bce_with_logits_mean(
        logits.mapv(Scalar::widen).view(),
        labels.mapv(Scalar::widen).view(),
        &ArithModel::of::<T>(),
    ) + slack;
    let excess = loss_nats - entropy;
    prop_assert!(
        excess >= -bound && excess <= logit_error * logit_error / 8.0 + bound,
        "{}<{}>: L(logit(p̄)) − H(p̄) = {excess:e} outside [−{bound:e}, {:e}] (p̄ = {mean}, n = {n})",
        backend.name(),
        T::NAME,
        logit_error * logit_error / 8.0 + bound
    );
    Ok(())
}
