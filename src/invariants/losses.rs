//! Loss invariants on any backend: stable versus naive BCE (THEORY.md A3), exactly-zero
//! cross-entropy with a nonzero gradient (A4), and the softmax cross-entropy gradient (A5).

use ndarray::{arr1, Array1, Array2, ArrayView2};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use crate::reference::{self, Reduction};
use crate::tolerance::{self, ArithModel};
use crate::{Backend, Scalar};

/// `24 ln 2` (f32) or `53 ln 2` (f64): where `1 + e^{−z}` first rounds to 1 in `T`, i.e.
/// `ln(1/u)` for the unit roundoff `u = 2^−p` (THEORY.md A3 (c), A4 (a)).
pub fn one_plus_exp_rounds_to_one_above<T: Scalar>() -> f64 {
    -T::UNIT_ROUNDOFF.ln()
}

/// The naive BCE `−y·log σ(z) − (1 − y)·log(1 − σ(z))`, `σ(z) = 1/(1 + exp(−z))`, evaluated in
/// `T` with the host's operations (THEORY.md A3 (a)).
pub fn naive_bce<T: Scalar>(z: T, y: T) -> T {
    let sigma = T::one() / (T::one() + (-z).exp());
    -(y * sigma.ln()) - (T::one() - y) * (T::one() - sigma).ln()
}

/// Stable versus naive BCE (THEORY.md A3 (a)–(d)): for every finite logit `z` and label
/// `y ∈ [0, 1]`, the backend's per-element `BCEWithLogits` (a one-element
/// [`Backend::bce_with_logits`] with `Reduction::Sum`) is
/// - finite, and `ℓ̂ ≥ 0` **exactly** (`fl(z·y) ≤ z` for `z > 0`, `y ≤ 1` by monotone rounding,
///   and `log1p ≥ 0`);
/// - within `B_T(z, y) + B_f64(z, y)` of the reference evaluated in f64 on the same inputs,
///   `B` = [`tolerance::bce_with_logits_element`] (E4: `u(2|zy| + max(z,0) + |ℓ|) +
///   (2ε_exp + ε_log1p)·log1p(e^{−|z|})` plus the underflow slack) in `T`'s and f64's arithmetic;
///
/// while the naive form, in `T` on the host ([`naive_bce`]), is **not** finite for
/// `z ≥ 24 ln 2 + 0.07` (f32; `53 ln 2 + 0.07` in f64) and `y < 1` (`σ` rounds to 1, so
/// `log(1 − σ) = −∞`), and not finite for `z ≤ −(ln MAX + 0.01)` and `y > 0` (`exp(−z)`
/// overflows, `σ = 0`, `log σ = −∞`): the from-logits form is what keeps seeds 000 and 002
/// finite. The 0.07 and 0.01 margins keep the assertion 2 ulps or more away from the rounding
/// boundaries (A4 (d)(iii)); the naive side needs only correctly rounded `+`, `/` and a
/// faithful `exp`.
pub fn stable_bce_is_finite_where_naive_is_not<T: Scalar>(
    backend: &impl Backend<T>,
    cases: &[(f64, f64)],
) -> TestCaseResult {
    let model = ArithModel::of::<T>();
    let model64 = ArithModel::of::<f64>();
    let saturation = one_plus_exp_rounds_to_one_above::<T>() + 0.07;
    let overflow = T::max_value().widen().ln() + 0.01;
    for &(z, y) in cases {
        let (z, y) = (T::narrow(z), T::narrow(y.clamp(0.0, 1.0)));
        let (z64, y64) = (z.widen(), y.widen());
        let loss = backend
            .bce_with_logits(arr1(&[z]).view(), arr1(&[y]).view(), Reduction::Sum)?
            .widen();
        prop_assert!(
            loss.is_finite() && loss >= 0.0,
            "{}<{}>: BCE(z = {z64:e}, y = {y64}) = {loss:e}: expected finite and ≥ 0 exactly",
            backend.name(),
            T::NAME
        );
        let exact =
            reference::bce_with_logits(arr1(&[z64]).view(), arr1(&[y64]).view(), Reduction::Sum)?;
        let bound = tolerance::bce_with_logits_element(z64, y64, &model)
            + tolerance::bce_with_logits_element(z64, y64, &model64);
        prop_assert!(
            (loss - exact).abs() <= bound,
            "{}<{}>: BCE(z = {z64:e}, y = {y64}) = {loss:.9e}, reference<f64> {exact:.17e}, \
             |diff| = {:e} > bound {bound:e}",
            backend.name(),
            T::NAME,
            (loss - exact).abs()
        );
        let naive = naive_bce(z, y).widen();
        if (z64 >= saturation && y64 < 1.0) || (z64 <= -overflow && y64 > 0.0) {
            prop_assert!(
                !naive.is_finite(),
                "{}: naive BCE(z = {z64:e}, y = {y64}) = {naive:e} is finite beyond the \
                 saturation/overflow threshold (σ should round to 1 or 0)",
                T::NAME
            );
        }
    }
    Ok(())
}

/// Exactly zero cross-entropy is not a zero gradient (THEORY.md A4): two-class rows with margin
/// `m = z_0 − z_1 ≥ ln(1/u) + 0.07` (`24 ln 2 = 16.6355` in f32, `53 ln 2 = 36.7368` in f64;
/// the margins are `threshold + offsets`, each offset in `[0.07, 60]`) and target class 0 give
/// **exactly 0** loss under both reductions (`log(1 + e^{−m})` with `1 + e^{−m}` rounding to
/// 1), while the other-class component of the mean-reduction gradient is
/// ```text
/// ĝ_1 = e^{−m}/(N(1 + e^{−m}))   within   (m·u + ε_exp + 2ε_div + 2u)·g_1 + underflow
/// ```
/// (`m·u` for the shift `z − max`, A0; the `exp`; the softmax division and the division by
/// `N`; the subtraction of the one-hot 0 and the product with `g = 1` are exact, `2u` covers
/// the rounding of `m` itself and of the normalisation). `m` is the margin of the rounded logits
/// (`fl(shift + m) − fl(shift)`, exact in f64). Offsets stay at most 60 above the threshold so
/// `e^{−m}/N` is a normal number in both types.
pub fn cross_entropy_is_zero_while_its_gradient_is_not<T: Scalar>(
    backend: &impl Backend<T>,
    offsets: &[f64],
    shift: f64,
) -> TestCaseResult {
    if offsets.is_empty() {
        return Ok(());
    }
    let threshold = one_plus_exp_rounds_to_one_above::<T>();
    let rows = offsets.len();
    let logits = Array2::from_shape_fn((rows, 2), |(i, j)| {
        let margin = threshold + offsets[i].clamp(0.07, 60.0);
        T::narrow(if j == 0 { shift + margin } else { shift })
    });
    let targets = Array1::<i64>::zeros(rows);
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let loss = backend
            .cross_entropy(logits.view(), targets.view(), -100, reduction)?
            .widen();
        prop_assert!(
            loss == 0.0,
            "{}<{}>: cross-entropy {loss:e} ({reduction:?}) with every margin ≥ ln(1/u) + 0.07 = \
             {:.6}: expected exactly 0 (THEORY.md A4)",
            backend.name(),
            T::NAME,
            threshold + 0.07
        );
    }
    let gradient = backend.cross_entropy_backward(
        logits.view(),
        targets.view(),
        -100,
        Reduction::Mean,
        T::one(),
    )?;
    let model = ArithModel::of::<T>();
    let u = model.unit_roundoff;
    for i in 0..rows {
        let m = logits[[i, 0]].widen() - logits[[i, 1]].widen();
        let tail = (-m).exp();
        let expected = tail / (1.0 + tail) / rows as f64;
        let other = gradient[[i, 1]].widen();
        let bound = (m * u + model.exp + 2.0 * model.divide + 2.0 * u) * expected + model.underflow;
        prop_assert!(
            other > 0.0 && (other - expected).abs() <= bound,
            "{}<{}>: loss 0 at margin {m} (row {i} of {rows}) but the other-class gradient is \
             {other:e}, expected e^-m/(N(1+e^-m)) = {expected:e} ± {bound:e} (THEORY.md A4: \
             zero loss is not zero gradient)",
            backend.name(),
            T::NAME
        );
    }
    Ok(())
}

/// The softmax cross-entropy gradient is `softmax − onehot`, divided by the row count for the
/// mean, and every row of it sums to zero (THEORY.md A5 (a), (d)): for `backend`'s
/// [`Backend::cross_entropy_backward`] (mean over `N` rows, `g = 1`, no ignored targets),
/// ```text
/// |ĝ_ij − (p_ij − [j = c_i])/N| ≤ B_T,ij + B_f64,ij
/// |Σ_j ĝ_ij| ≤ Σ_j (B_T,ij + B_f64,ij) + γ_{n−1}(u64)·Σ_j |ĝ_ij|
/// ```
/// with `p` the reference softmax in f64 of the same (rounded) logits and `B` =
/// [`tolerance::cross_entropy_backward`] in `T`'s and f64's arithmetic (A0's softmax bound,
/// the subtraction, the division by `N`); the row sum of the exact gradient is 0, so the second
/// line is the first summed, plus the rounding of this function's own f64 sum.
pub fn cross_entropy_gradient_is_softmax_minus_onehot<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView2<'_, T>,
    targets: &[usize],
) -> TestCaseResult {
    let (rows, classes) = logits.dim();
    if rows == 0 || classes == 0 {
        return Ok(());
    }
    let targets: Array1<i64> = (0..rows)
        .map(|i| i64::try_from(targets.get(i).copied().unwrap_or(0) % classes).unwrap_or(0))
        .collect();
    let gradient =
        backend.cross_entropy_backward(logits, targets.view(), -100, Reduction::Mean, T::one())?;
    let z = logits.mapv(Scalar::widen);
    let p = reference::softmax_rows(z.view())?;
    let bound = tolerance::cross_entropy_backward(
        z.view(),
        targets.view(),
        -100,
        Reduction::Mean,
        1.0,
        &ArithModel::of::<T>(),
    ) + tolerance::cross_entropy_backward(
        z.view(),
        targets.view(),
        -100,
        Reduction::Mean,
        1.0,
        &ArithModel::of::<f64>(),
    );
    let summation =
        tolerance::gamma(classes.saturating_sub(1), f64::EPSILON / 2.0).unwrap_or(f64::INFINITY);
    for i in 0..rows {
        let (mut sum, mut magnitude) = (0.0, 0.0);
        for j in 0..classes {
            let onehot = if targets[i] == j as i64 { 1.0 } else { 0.0 };
            let expected = (p[[i, j]] - onehot) / rows as f64;
            let actual = gradient[[i, j]].widen();
            prop_assert!(
                (actual - expected).abs() <= bound[[i, j]],
                "{}<{}>: ∂L/∂z[{i}, {j}] = {actual:e}, (softmax − onehot)/N = {expected:e}, \
                 |diff| = {:e} > bound {:e} (N = {rows}, {classes} classes, target {})",
                backend.name(),
                T::NAME,
                (actual - expected).abs(),
                bound[[i, j]],
                targets[i]
            );
            sum += actual;
            magnitude += actual.abs();
        }
        let allowed = bound.row(i).sum() + summation * magnitude;
        prop_assert!(
            sum.abs() <= allowed,
            "{}<{}>: row {i} of the cross-entropy gradient sums to {sum:e}, allowed {allowed:e}",
            backend.name(),
            T::NAME
        );
    }
    Ok(())
}
