//! Losses and their gradients, in plain loops.

use ndarray::{Array, Array1, Array2, ArrayView, ArrayView1, ArrayView2, Dimension};
use num_traits::Float;

use super::ops::{log_softmax_rows, softmax_rows};
use crate::{validate, Error, Result};

/// `n` as a float of type `T` (exact for `n < 2^24` in f32, `2^53` in f64).
fn count<T: Float>(n: usize) -> T {
    T::from(n).unwrap_or_else(T::infinity)
}

/// One element of binary cross-entropy from a logit, the stable form (THEORY.md A3).
/// ```text
/// ℓ(z, y) = max(z, 0) − z·y + log1p(exp(−|z|))
/// ```
/// Finite for every finite `z`; `ℓ ≥ 0` for `y ∈ [0, 1]`. Evaluated left to right:
/// `(max(z,0) − z·y) + log1p(exp(−|z|))`.
pub fn bce_with_logits_element<T: Float>(z: T, y: T) -> T {
    (z.max(T::zero()) - z * y) + (-z.abs()).exp().ln_1p()
}

/// Mean binary cross-entropy from logits (PyTorch `binary_cross_entropy_with_logits`,
/// `reduction='mean'`, no weights).
/// ```text
/// L = (Σ_i ℓ(z_i, y_i)) / n,   ℓ as in bce_with_logits_element, summed sequentially
/// ```
/// Labels may be soft (`y ∈ [0, 1]`); values outside are not rejected (the formula is defined).
/// Bound: [`crate::tolerance::bce_with_logits_mean`]. Errors: `ShapeMismatch` for unequal
/// lengths, `EmptyInput` for `n = 0`. NaN in either input gives NaN; `z = ±∞` follows IEEE
/// (`ℓ(+∞, y<1) = +∞`, `ℓ(+∞, 1) = NaN` from `∞ − ∞`).
pub fn bce_with_logits_mean<T: Float>(
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
) -> Result<T> {
    validate::mean_loss("bce_with_logits_mean", logits, labels)?;
    let mut sum = T::zero();
    for (&z, &y) in logits.iter().zip(labels.iter()) {
        sum = sum + bce_with_logits_element(z, y);
    }
    Ok(sum / count(logits.len()))
}

/// Logistic sigmoid in the two-branch stable form.
/// ```text
/// σ(z) = 1 / (1 + e^{−z})        for z ≥ 0
///      = e^{z} / (1 + e^{z})     for z < 0
/// ```
/// PyTorch's `torch.sigmoid` uses the first branch everywhere; the second keeps full relative
/// accuracy for very negative `z` instead of returning 0 once `e^{−z}` overflows.
pub fn sigmoid<T: Float>(z: T) -> T {
    if z >= T::zero() {
        T::one() / (T::one() + (-z).exp())
    } else {
        let e = z.exp();
        e / (T::one() + e)
    }
}

/// Vector-Jacobian product of [`bce_with_logits_mean`] with respect to the logits.
/// ```text
/// ∂L/∂z_i · g = ((σ(z_i) − y_i) · g) / n
/// ```
/// Same order of operations as PyTorch's `binary_cross_entropy_with_logits_backward`.
/// Bound: [`crate::tolerance::bce_with_logits_mean_backward`]. Errors: as
/// [`bce_with_logits_mean`]. NaN in any input or in `grad_output` propagates.
pub fn bce_with_logits_mean_backward<T: Float>(
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    grad_output: T,
) -> Result<Array1<T>> {
    validate::mean_loss("bce_with_logits_mean_backward", logits, labels)?;
    let n = count::<T>(logits.len());
    Ok(logits
        .iter()
        .zip(labels.iter())
        .map(|(&z, &y)| ((sigmoid(z) - y) * grad_output) / n)
        .collect())
}

/// How a loss reduces its per-element (or per-row) terms, as PyTorch's `reduction=` argument.
///
/// `'none'` is not offered: the per-element terms are the building blocks
/// ([`bce_with_logits_element`], [`crate::reference::log_softmax_rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// `(Σ_i ℓ_i) / count`: the sum, then one division.
    Mean,
    /// `Σ_i ℓ_i`, summed sequentially in index order.
    Sum,
}

/// PyTorch's default `ignore_index` for `cross_entropy` (`-100`), used by masked-LM training to
/// skip padded or unmasked positions.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// Divide by `count` for [`Reduction::Mean`], identity for [`Reduction::Sum`].
fn reduce<T: Float>(sum: T, count_value: T, reduction: Reduction) -> T {
    match reduction {
        Reduction::Mean => sum / count_value,
        Reduction::Sum => sum,
    }
}

/// Binary cross-entropy from logits with either reduction (PyTorch
/// `binary_cross_entropy_with_logits(z, y, reduction=…)`, no weights).
/// ```text
/// S = Σ_i ℓ(z_i, y_i)    (sequential, index order; ℓ as in bce_with_logits_element)
/// L = S / n   (Mean)      L = S   (Sum)
/// ```
/// `Mean` is [`bce_with_logits_mean`] itself. Bound: [`crate::tolerance::bce_with_logits_mean`]
/// for the mean; for the sum the same element bounds plus `γ_{n−1}·Σ|ℓ_i|`, without the
/// division. Errors: `ShapeMismatch` for unequal lengths; `EmptyInput` for `n = 0` with `Mean`
/// (the mean of nothing), while the `Sum` of nothing is 0. NaN/∞ as [`bce_with_logits_mean`].
pub fn bce_with_logits<T: Float>(
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    reduction: Reduction,
) -> Result<T> {
    match reduction {
        Reduction::Mean => bce_with_logits_mean(logits, labels),
        Reduction::Sum => {
            validate::same_length("bce_with_logits", logits.len(), labels.len())?;
            let mut sum = T::zero();
            for (&z, &y) in logits.iter().zip(labels.iter()) {
                sum = sum + bce_with_logits_element(z, y);
            }
            Ok(sum)
        }
    }
}

/// Vector-Jacobian product of [`bce_with_logits`] with respect to the logits.
/// ```text
/// Mean: ∂L/∂z_i · g = ((σ(z_i) − y_i) · g) / n      (= bce_with_logits_mean_backward)
/// Sum:  ∂L/∂z_i · g =  (σ(z_i) − y_i) · g
/// ```
/// The mean divides last, so `n·grad_mean = grad_sum` up to one rounding, and bitwise when `n`
/// is a power of two (THEORY.md B1). Errors and NaN policy: as [`bce_with_logits`].
pub fn bce_with_logits_backward<T: Float>(
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    reduction: Reduction,
    grad_output: T,
) -> Result<Array1<T>> {
    match reduction {
        Reduction::Mean => bce_with_logits_mean_backward(logits, labels, grad_output),
        Reduction::Sum => {
            validate::same_length("bce_with_logits_backward", logits.len(), labels.len())?;
            Ok(logits
                .iter()
                .zip(labels.iter())
                .map(|(&z, &y)| (sigmoid(z) - y) * grad_output)
                .collect())
        }
    }
}

/// Mean squared error (PyTorch `mse_loss(prediction, target, reduction=…)`), any shape.
/// ```text
/// S = Σ_i (p_i − t_i)²   (sequential, in logical (row-major) order)
/// L = S / n   (Mean, n = element count)      L = S   (Sum)
/// ```
/// With `N` rows and `D` outputs, `Sum` is exactly `N·D` times `Mean` in exact arithmetic
/// (THEORY.md B1; seed 001 used `reduction='sum'`). Bound: the squares are exact to `3u`
/// relative and all terms are non-negative, so `|L̂ − L| ≤ γ_{n+3}·L`.
/// Errors: `ShapeMismatch` when the shapes differ; `EmptyInput` for `n = 0` with `Mean` (the
/// `Sum` of nothing is 0). NaN/∞ propagate per IEEE (`∞ − ∞` gives NaN).
pub fn mse<T: Float, D: Dimension>(
    prediction: ArrayView<'_, T, D>,
    target: ArrayView<'_, T, D>,
    reduction: Reduction,
) -> Result<T> {
    validate_mse("mse", &prediction, &target, reduction)?;
    let mut sum = T::zero();
    for (&p, &t) in prediction.iter().zip(target.iter()) {
        let difference = p - t;
        sum = sum + difference * difference;
    }
    Ok(reduce(sum, count(prediction.len()), reduction))
}

/// Vector-Jacobian product of [`mse`] with respect to the prediction.
/// ```text
/// Mean: ∂L/∂p_i · g = ((2·(p_i − t_i)) · g) / n
/// Sum:  ∂L/∂p_i · g =  (2·(p_i − t_i)) · g
/// ```
/// PyTorch's `mse_loss_backward` multiplies by the factor `2/n` first; the value is the same
/// and the rounding differs by at most `2u`. Dividing last keeps `N·D·grad_mean = grad_sum`
/// within one rounding and bitwise when `N·D` is a power of two (THEORY.md B1). Errors and NaN
/// policy: as [`mse`].
pub fn mse_backward<T: Float, D: Dimension>(
    prediction: ArrayView<'_, T, D>,
    target: ArrayView<'_, T, D>,
    reduction: Reduction,
    grad_output: T,
) -> Result<Array<T, D>> {
    validate_mse("mse_backward", &prediction, &target, reduction)?;
    let n = count::<T>(prediction.len());
    let two = T::one() + T::one();
    let mut gradient = Array::zeros(prediction.raw_dim());
    for ((g, &p), &t) in gradient
        .iter_mut()
        .zip(prediction.iter())
        .zip(target.iter())
    {
        *g = reduce((two * (p - t)) * grad_output, n, reduction);
    }
    Ok(gradient)
}

pub(crate) fn validate_mse<T, D: Dimension>(
    op: &'static str,
    prediction: &ArrayView<'_, T, D>,
    target: &ArrayView<'_, T, D>,
    reduction: Reduction,
) -> Result<()> {
    if prediction.shape() != target.shape() {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "prediction {:?} vs target {:?}: shapes must be equal",
                prediction.shape(),
                target.shape()
            ),
        });
    }
    if prediction.is_empty() && reduction == Reduction::Mean {
        return Err(Error::EmptyInput {
            op,
            detail: "no elements: the mean over 0 elements is undefined".to_string(),
        });
    }
    Ok(())
}

/// Rows that count in a cross-entropy reduction: targets other than `ignore_index`.
fn active_row_count(targets: ArrayView1<'_, i64>, ignore_index: i64) -> usize {
    targets.iter().filter(|&&c| c != ignore_index).count()
}

/// The class of a validated, non-ignored target.
fn class_of(target: i64) -> usize {
    usize::try_from(target).unwrap_or(usize::MAX)
}

/// Cross-entropy from logits with class-index targets (PyTorch `cross_entropy(z, c,
/// ignore_index=…, reduction=…)`, no weights, no label smoothing).
/// ```text
/// y = log_softmax_rows(z)            (PyTorch's `log` form, THEORY.md A4)
/// S = Σ_{i : c_i ≠ ignore} (−y_{i,c_i})     (sequential over rows)
/// L = S / count   (Mean, count = #{i : c_i ≠ ignore})      L = S   (Sum)
/// ```
/// Built on [`crate::reference::log_softmax_rows`], so in f32 a row with margin ≥ `24 ln 2`
/// contributes exactly 0 while its gradient does not (THEORY.md A4, seed 003).
/// All rows ignored: `Mean` is `0/0 = NaN`, as in PyTorch; `Sum` is 0.
///
/// Bound: per row [`crate::tolerance::log_softmax_rows`] at the target entry, plus
/// `γ_{count−1}·Σ|y_{i,c_i}|` for the sum and `u·|L|` for the division.
/// Errors: `ShapeMismatch` unless there is one target per row; `EmptyInput` for rows of
/// length 0 (no classes), or for 0 rows with `Mean`; `InvalidParameter` for a target outside
/// `0..classes` that is not `ignore_index`. NaN/∞ in a row: as `log_softmax_rows` (NaN row).
pub fn cross_entropy<T: Float>(
    logits: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
) -> Result<T> {
    validate_cross_entropy("cross_entropy", logits, targets, ignore_index, reduction)?;
    let log_probabilities = log_softmax_rows(logits)?;
    Ok(cross_entropy_from_log_probabilities(
        log_probabilities.view(),
        targets,
        ignore_index,
        reduction,
    ))
}

/// The reduction of [`cross_entropy`] from `y = log_softmax_rows(z)` (targets validated, `y` of
/// the logits' shape): `S = Σ_{i : c_i ≠ ignore} (−y_{i,c_i})` sequentially, then `S / count`
/// or `S`. Shared with the composed default of [`crate::Backend::cross_entropy`].
pub(crate) fn cross_entropy_from_log_probabilities<T: Float>(
    log_probabilities: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
) -> T {
    let mut sum = T::zero();
    for (row, &target) in targets.iter().enumerate() {
        if target != ignore_index {
            sum = sum - log_probabilities[[row, class_of(target)]];
        }
    }
    reduce(
        sum,
        count(active_row_count(targets, ignore_index)),
        reduction,
    )
}

/// Vector-Jacobian product of [`cross_entropy`] with respect to the logits.
/// ```text
/// p = softmax_rows(z)
/// Mean: ∂L/∂z_ij · g = ((p_ij − [j = c_i]) · g) / count     (0 for ignored rows)
/// Sum:  ∂L/∂z_ij · g =  (p_ij − [j = c_i]) · g
/// ```
/// `p` is the divided softmax ([`crate::reference::softmax_rows`]), as PyTorch's
/// `log_softmax_backward` computes `exp(y)` instead; the values agree within the softmax bound.
/// The target component is exactly 0 when `p` rounds to 1, the others are not (THEORY.md A4).
/// Ignored rows are exactly 0, also when every row is ignored and the `Mean` loss is NaN:
/// PyTorch's `nll_loss_backward` writes nothing for an ignored row.
/// Bound: [`crate::tolerance::softmax_rows`] per entry plus `u·|p − onehot|` for the
/// subtraction, `u` for each product and division. Errors: as [`cross_entropy`].
pub fn cross_entropy_backward<T: Float>(
    logits: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
    grad_output: T,
) -> Result<Array2<T>> {
    validate_cross_entropy(
        "cross_entropy_backward",
        logits,
        targets,
        ignore_index,
        reduction,
    )?;
    let probabilities = softmax_rows(logits)?;
    Ok(cross_entropy_gradient_from_probabilities(
        probabilities.view(),
        targets,
        ignore_index,
        reduction,
        grad_output,
    ))
}

/// The gradient of [`cross_entropy_backward`] from `p = softmax_rows(z)` (targets validated,
/// `p` of the logits' shape): `((p_ij − [j = c_i])·g) / count` or `(p_ij − [j = c_i])·g` on
/// active rows, 0 on ignored rows. Shared with the composed default of
/// [`crate::Backend::cross_entropy_backward`].
pub(crate) fn cross_entropy_gradient_from_probabilities<T: Float>(
    probabilities: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
    grad_output: T,
) -> Array2<T> {
    let active = count::<T>(active_row_count(targets, ignore_index));
    let mut gradient = Array2::zeros(probabilities.dim());
    for (row, &target) in targets.iter().enumerate() {
        if target == ignore_index {
            // Structural zero, as PyTorch's `nll_loss_backward` writes nothing for the row.
            continue;
        }
        let class = class_of(target);
        for (j, g) in gradient.row_mut(row).iter_mut().enumerate() {
            let onehot = if j == class { T::one() } else { T::zero() };
            *g = reduce(
                (probabilities[[row, j]] - onehot) * grad_output,
                active,
                reduction,
            );
        }
    }
    gradient
}

pub(crate) fn validate_cross_entropy<T>(
    op: &'static str,
    logits: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
) -> Result<()> {
    validate::rows_op(op, logits)?;
    validate::class_targets(op, logits.nrows(), logits.ncols(), targets, ignore_index)?;
    if logits.nrows() == 0 && reduction == Reduction::Mean {
        return Err(Error::EmptyInput {
            op,
            detail: "0 rows: the mean over 0 rows is undefined".to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn bce_at_zero_logits_is_ln_two() {
        let loss = bce_with_logits_mean(
            array![0.0f64, 0.0, 0.0].view(),
            array![0.0, 1.0, 0.3].view(),
        )
        .expect("valid");
        assert!((loss - std::f64::consts::LN_2).abs() <= 2.0 * f64::EPSILON);
    }

    #[test]
    fn bce_values_from_theory_a3() {
        // BCEWithLogits(17, 0) = 17 + log1p(e^-17); at z = ±1e30, y = 0.3: 7e29 and 3e29.
        assert!(
            (bce_with_logits_element(17.0f64, 0.0) - (17.0 + (-17f64).exp().ln_1p())).abs() < 1e-14
        );
        assert!((bce_with_logits_element(1e30f32, 0.3) - 7e29).abs() <= 7e29 * 1e-6);
        assert!((bce_with_logits_element(-1e30f32, 0.3) - 3e29).abs() <= 3e29 * 1e-6);
    }

    #[test]
    fn gradient_is_sigmoid_minus_label_over_n() {
        let g =
            bce_with_logits_mean_backward(array![0.0f64, 2.0].view(), array![1.0, 0.0].view(), 1.0)
                .expect("valid");
        assert!((g[0] - (-0.25)).abs() < 1e-16);
        assert!((g[1] - 1.0 / (1.0 + (-2f64).exp()) / 2.0).abs() < 1e-16);
    }

    #[test]
    fn sigmoid_keeps_relative_accuracy_for_negative_logits() {
        let s = sigmoid(-100.0f64);
        assert!((s / (-100f64).exp() - 1.0).abs() < 1e-15);
        assert_eq!(sigmoid(0.0f32), 0.5);
    }

    #[test]
    fn cross_entropy_hand_case_with_ignored_row() {
        // Row 0: logits [0, ln 3], target 1: p = [1/4, 3/4], loss −ln(3/4).
        // Row 1 ignored. Mean over the one active row.
        let logits = array![[0.0f64, 3f64.ln()], [5.0, -5.0]];
        let targets = array![1i64, DEFAULT_IGNORE_INDEX];
        let mean =
            cross_entropy(logits.view(), targets.view(), -100, Reduction::Mean).expect("valid");
        assert!((mean - (-(0.75f64).ln())).abs() <= 4.0 * f64::EPSILON);
        let g = cross_entropy_backward(logits.view(), targets.view(), -100, Reduction::Mean, 2.0)
            .expect("valid");
        assert!((g[[0, 0]] - 0.5).abs() <= 4.0 * f64::EPSILON);
        assert!((g[[0, 1]] + 0.5).abs() <= 4.0 * f64::EPSILON);
        assert_eq!(g.row(1).to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn cross_entropy_all_ignored_mean_is_nan_sum_is_zero() {
        let logits = array![[1.0f32, 2.0], [3.0, 4.0]];
        let targets = array![-100i64, -100];
        let mean =
            cross_entropy(logits.view(), targets.view(), -100, Reduction::Mean).expect("valid");
        assert!(mean.is_nan());
        let sum = cross_entropy(logits.view(), targets.view(), -100, Reduction::Sum).expect("ok");
        assert_eq!(sum, 0.0);
        let g = cross_entropy_backward(logits.view(), targets.view(), -100, Reduction::Mean, 1.0)
            .expect("valid");
        assert!(g.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn cross_entropy_rejects_bad_targets_and_shapes() {
        let logits = array![[1.0f64, 2.0, 3.0]];
        for bad in [3i64, -1, -101] {
            assert!(matches!(
                cross_entropy(logits.view(), array![bad].view(), -100, Reduction::Mean),
                Err(Error::InvalidParameter { .. })
            ));
        }
        assert!(matches!(
            cross_entropy(logits.view(), array![0i64, 1].view(), -100, Reduction::Sum),
            Err(Error::ShapeMismatch { .. })
        ));
        let no_rows = Array2::<f64>::zeros((0, 3));
        let none = Array1::<i64>::zeros(0);
        assert!(matches!(
            cross_entropy(no_rows.view(), none.view(), -100, Reduction::Mean),
            Err(Error::EmptyInput { .. })
        ));
        assert_eq!(
            cross_entropy(no_rows.view(), none.view(), -100, Reduction::Sum).expect("ok"),
            0.0
        );
        // A custom ignore_index may be any value, also a valid-looking negative one.
        let loss = cross_entropy(logits.view(), array![-1i64].view(), -1, Reduction::Sum)
            .expect("ignored");
        assert_eq!(loss, 0.0);
    }

    #[test]
    fn f32_cross_entropy_is_zero_but_gradient_is_not() {
        // THEORY.md A4: margin 17 ≥ 24 ln 2: loss exactly 0, other-class gradient
        // e^{-17}/(1 + e^{-17}) = 4.14e-8 (relative bound (m + 2k_e + 2k_d + 2)u, k = 1/2).
        let logits = array![[17.0f32, 0.0]];
        let loss = cross_entropy(logits.view(), array![0i64].view(), -100, Reduction::Mean)
            .expect("valid");
        assert_eq!(loss, 0.0);
        let g = cross_entropy_backward(
            logits.view(),
            array![0i64].view(),
            -100,
            Reduction::Mean,
            1.0,
        )
        .expect("valid");
        assert_eq!(g[[0, 0]], 0.0);
        let expected = (-17f64).exp() / (1.0 + (-17f64).exp());
        let bound = (17.0 + 4.0) * 2f64.powi(-24) * expected;
        assert!((f64::from(g[[0, 1]]) - expected).abs() <= bound);
    }

    #[test]
    fn mse_hand_case_and_errors() {
        let p = array![[1.0f64, 2.0], [3.0, 5.0]];
        let t = array![[0.0f64, 2.0], [1.0, 5.0]];
        assert_eq!(mse(p.view(), t.view(), Reduction::Sum).expect("ok"), 5.0);
        assert_eq!(mse(p.view(), t.view(), Reduction::Mean).expect("ok"), 1.25);
        let g = mse_backward(p.view(), t.view(), Reduction::Mean, 1.0).expect("ok");
        assert_eq!(g, array![[0.5, 0.0], [1.0, 0.0]]);
        let wrong = array![[1.0f64, 2.0]];
        assert!(matches!(
            mse(p.view(), wrong.view(), Reduction::Sum),
            Err(Error::ShapeMismatch { .. })
        ));
        let empty = Array1::<f64>::zeros(0);
        assert!(matches!(
            mse(empty.view(), empty.view(), Reduction::Mean),
            Err(Error::EmptyInput { .. })
        ));
        assert_eq!(
            mse(empty.view(), empty.view(), Reduction::Sum).expect("ok"),
            0.0
        );
    }

    #[test]
    fn bce_sum_is_n_times_mean_at_zero_logits() {
        let z = Array1::<f64>::zeros(4);
        let y = array![0.0f64, 1.0, 0.5, 0.25];
        let sum = bce_with_logits(z.view(), y.view(), Reduction::Sum).expect("ok");
        let mean = bce_with_logits(z.view(), y.view(), Reduction::Mean).expect("ok");
        assert_eq!(sum, 4.0 * mean);
        let gs = bce_with_logits_backward(z.view(), y.view(), Reduction::Sum, 1.0).expect("ok");
        let gm = bce_with_logits_backward(z.view(), y.view(), Reduction::Mean, 1.0).expect("ok");
        assert_eq!(gs, gm * 4.0);
        assert_eq!(gs, array![0.5, -0.5, 0.0, 0.25]);
    }
}
