//! Losses and their gradients, in plain loops.

use ndarray::{Array1, ArrayView1};
use num_traits::Float;

use crate::{validate, Result};

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
}
