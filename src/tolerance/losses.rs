//! Bounds of the losses with a reduction and their gradients (BCE, MSE, cross-entropy).
//!
//! Same conventions as the parent module: first order in `u`, per side, evaluated in f64 from
//! the f64 reference quantities of the (already rounded) inputs; `ε_div` is the division's
//! relative error (2.5 ulp = `5u` in OpenCL f32, `u` in f64).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Zip};

use super::{bce_with_logits_mean, bce_with_logits_sum, softmax_rows, ArithModel};
use crate::reference::Reduction;

/// Bound for [`crate::reference::bce_with_logits`] with either reduction:
/// [`bce_with_logits_mean`] for `Mean`, [`bce_with_logits_sum`] for `Sum`.
pub fn bce_with_logits(
    logits: ArrayView1<'_, f64>,
    labels: ArrayView1<'_, f64>,
    reduction: Reduction,
    model: &ArithModel,
) -> f64 {
    match reduction {
        Reduction::Mean => bce_with_logits_mean(logits, labels, model),
        Reduction::Sum => bce_with_logits_sum(logits, labels, model),
    }
}

/// Bound for [`crate::reference::bce_with_logits_backward`], per element, with `d = σ(z) − y`,
/// `D = n` (`Mean`) or `1` (`Sum`), `g = d·go/D`:
/// ```text
/// |ĝ − g| ≤ |go|·(ε_σ·σ + 2u|d|)/D + [Mean]·ε_div|g| + |go|·underflow/D
/// ε_σ = ε_div + u + ε_exp·e/(1+e) + [z < 0]·ε_exp,   e = e^{−|z|}
/// ```
/// `σ` from the two-branch form (the `exp`, `1 + e` rounded, one division, and for `z < 0` the
/// `exp` in the numerator); `σ − y` and the product with `go` add `u|d|` each; the mean's
/// division `ε_div`. (`Mean` is [`super::bce_with_logits_mean_backward`] itself.)
pub fn bce_with_logits_backward(
    logits: ArrayView1<'_, f64>,
    labels: ArrayView1<'_, f64>,
    reduction: Reduction,
    grad_output: f64,
    model: &ArithModel,
) -> Array1<f64> {
    if reduction == Reduction::Mean {
        return super::bce_with_logits_mean_backward(logits, labels, grad_output, model);
    }
    let u = model.unit_roundoff;
    let mut out = Array1::zeros(logits.len());
    Zip::from(&mut out)
        .and(logits)
        .and(labels)
        .for_each(|o, &z, &y| {
            let e = (-z.abs()).exp();
            let sigma = crate::reference::sigmoid(z);
            let eps_sigma = model.divide
                + u
                + model.exp * e / (1.0 + e)
                + if z < 0.0 { model.exp } else { 0.0 };
            let d = sigma - y;
            *o = grad_output.abs() * (eps_sigma * sigma + 2.0 * u * d.abs())
                + grad_output.abs() * model.underflow;
        });
    out
}

/// Bound for [`crate::reference::mse`] in arithmetic `model`, with `L` the f64 loss over `n`
/// elements:
/// ```text
/// |L̂ − L| ≤ (γ_{n+2} + [Mean]·ε_div)·|L| + n·underflow
/// ```
/// Each term `(p − t)²` carries the subtraction's rounding twice and the product's once (`3u`
/// relative); the sum of `n` non-negative terms in any order adds `γ_{n−1}` relative to the
/// sum, which is `L` (no cancellation); `3u + γ_{n−1} ≤ γ_{n+2}`. The mean's division adds
/// `ε_div` (2.5 ulp in OpenCL f32, which [`super::mse`]'s `γ_{n+3}` does not cover). Squares of
/// tiny differences may be flushed to zero: `n·underflow`.
pub fn mse_loss(element_count: usize, loss: f64, reduction: Reduction, model: &ArithModel) -> f64 {
    let division = match reduction {
        Reduction::Mean => model.divide,
        Reduction::Sum => 0.0,
    };
    (model.gamma(element_count + 2) + division) * loss.abs()
        + element_count as f64 * model.underflow
}

/// Bound for [`crate::reference::mse_backward`], per element, with `g = (2(p − t))·go/D`
/// (`D = n` for `Mean`, `1` for `Sum`):
/// ```text
/// |ĝ − g| ≤ (2u + [Mean]·ε_div)·|g| + underflow
/// ```
/// The subtraction and the product with `go` round (`u` each); doubling is exact; the mean's
/// division `ε_div`.
pub fn mse_backward(
    prediction: ArrayView2<'_, f64>,
    target: ArrayView2<'_, f64>,
    reduction: Reduction,
    grad_output: f64,
    model: &ArithModel,
) -> Array2<f64> {
    let n = prediction.len().max(1) as f64;
    let (divisor, division) = match reduction {
        Reduction::Mean => (n, model.divide),
        Reduction::Sum => (1.0, 0.0),
    };
    let mut out = Array2::zeros(prediction.dim());
    Zip::from(&mut out)
        .and(prediction)
        .and(target)
        .for_each(|o, &p, &t| {
            let g = 2.0 * (p - t) * grad_output / divisor;
            *o = (2.0 * model.unit_roundoff + division) * g.abs() + model.underflow;
        });
    out
}

/// Bound for [`crate::reference::cross_entropy_backward`], per element of an active row `i`
/// (ignored rows are exactly 0: bound 0), with `p` the softmax, `B_p` its bound
/// ([`softmax_rows`]), `c` the target, `D = count` (`Mean`) or `1` (`Sum`),
/// `g_ij = (p_ij − [j = c])·go/D`:
/// ```text
/// |ĝ_ij − g_ij| ≤ |go|·(B_p,ij + 2u·|p_ij − [j = c]|)/D + [Mean]·ε_div·|g_ij|
/// ```
/// The perturbed `p̂` passes through the subtraction unchanged; the subtraction and the
/// product with `go` add `u|p − onehot|` each; the division `ε_div`. `B_p` already carries the
/// `n·underflow` slack. Rows with NaN or an infinite max get 0 (exact NaN agreement).
pub fn cross_entropy_backward(
    logits: ArrayView2<'_, f64>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
    grad_output: f64,
    model: &ArithModel,
) -> Array2<f64> {
    let u = model.unit_roundoff;
    let softmax_bound = softmax_rows(logits, model);
    let active = targets.iter().filter(|&&c| c != ignore_index).count();
    let (divisor, division) = match reduction {
        Reduction::Mean => (active.max(1) as f64, model.divide),
        Reduction::Sum => (1.0, 0.0),
    };
    let probabilities = crate::reference::softmax_rows(logits)
        .unwrap_or_else(|_| Array2::from_elem(logits.dim(), f64::NAN));
    let mut out = Array2::zeros(logits.dim());
    for (row, &target) in targets.iter().enumerate() {
        if target == ignore_index || row >= logits.nrows() {
            continue;
        }
        for j in 0..logits.ncols() {
            let onehot = if i64::try_from(j) == Ok(target) {
                1.0
            } else {
                0.0
            };
            let centred = (probabilities[[row, j]] - onehot).abs();
            let g = centred * grad_output.abs() / divisor;
            let value = grad_output.abs() * (softmax_bound[[row, j]] + 2.0 * u * centred) / divisor
                + division * g;
            out[[row, j]] = if value.is_finite() { value } else { 0.0 };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn mse_loss_bound_is_relative_with_the_division_in_f32() {
        let m32 = ArithModel::of::<f32>();
        let u = m32.unit_roundoff;
        let b = mse_loss(4, 2.0, Reduction::Mean, &m32);
        // (6u + 5u)·2 to first order, plus 4 smallest normals.
        assert!((b - 22.0 * u - 4.0 * m32.underflow).abs() <= 1e-3 * b);
        assert!(mse_loss(4, 2.0, Reduction::Sum, &m32) < b);
    }

    #[test]
    fn cross_entropy_backward_bound_is_zero_on_ignored_rows() {
        let m = ArithModel::of::<f64>();
        let x = array![[0.0, 1.0], [2.0, 3.0]];
        let b = cross_entropy_backward(
            x.view(),
            array![1i64, -100].view(),
            -100,
            Reduction::Mean,
            1.0,
            &m,
        );
        assert!(b.row(0).iter().all(|&v| v > 0.0 && v < 1e-14));
        assert!(b.row(1).iter().all(|&v| v == 0.0));
    }
}
