//! The corrected standard deviation of a vector and its gradient (seed 001's `−φ·std(pred)`
//! loss term, THEORY.md B4).

use ndarray::{Array1, ArrayView1};
use num_traits::Float;

use crate::{Error, Result};

/// `n` as a float of type `T`.
fn count<T: Float>(n: usize) -> T {
    T::from(n).unwrap_or_else(T::infinity)
}

/// The check of [`std_corrected`] and [`std_corrected_backward`] (`op` names which):
/// `InvalidParameter` unless `n > correction`. Public so that device backends return the same
/// error.
pub fn validate_std_correction(op: &'static str, n: usize, correction: usize) -> Result<()> {
    if n <= correction {
        return Err(Error::InvalidParameter {
            op,
            name: "correction",
            value: format!("{correction} for n = {n}"),
            reason: "needs n > correction (the divisor n − c must be positive)".into(),
        });
    }
    Ok(())
}

/// Validate `n > c` and return `(mean, deviations d_i = p_i − mean, Σ d_i²)`, or `None` when all
/// entries are bitwise equal (the constant case, where the result is defined as exactly 0).
#[allow(clippy::type_complexity, reason = "a private helper's tuple")]
fn centred<T: Float>(
    op: &'static str,
    values: ArrayView1<'_, T>,
    correction: usize,
) -> Result<Option<(Array1<T>, T)>> {
    let n = values.len();
    validate_std_correction(op, n, correction)?;
    let first = values[0];
    if values.iter().all(|&v| v == first) {
        return Ok(None);
    }
    let mut sum = T::zero();
    for &v in values {
        sum = sum + v;
    }
    let mean = sum / count(n);
    let deviations = values.mapv(|v| v - mean);
    let mut squares = T::zero();
    for &d in &deviations {
        squares = squares + d * d;
    }
    Ok(Some((deviations, squares)))
}

/// Corrected standard deviation (PyTorch `torch.std(p, correction=c)`; `c = 1` is `torch.std`'s
/// default, `c = 0` is `np.std`'s).
/// ```text
/// m = (Σ_i p_i)/n,   d_i = p_i − m,   std_c(p) = sqrt((Σ_i d_i²)/(n − c))
/// ```
/// Two passes, sums sequential in index order. When every entry is bitwise equal the result is
/// exactly 0 (a computed mean of `n` equal values need not equal them, so the two-pass formula
/// alone could return a tiny positive value; PyTorch's Welford update returns exactly 0).
/// Bound: the mean's error enters only to second order (`Σ d_i = 0`), so
/// `|ŝ − s| ≤ (γ_{n+2}/2 + 2u)·s + n·|m̂ − m|²/(2(n − c)·s)` to first order.
/// Errors: `InvalidParameter` unless `n > c`. NaN/∞ propagate.
pub fn std_corrected<T: Float>(values: ArrayView1<'_, T>, correction: usize) -> Result<T> {
    let n = values.len();
    Ok(match centred("std_corrected", values, correction)? {
        None => T::zero(),
        Some((_, squares)) => (squares / count(n - correction)).sqrt(),
    })
}

/// Vector-Jacobian product of [`std_corrected`]:
/// ```text
/// ∂std_c/∂p_i · g = (g·d_i) / ((n − c)·s),    s = sqrt((Σ d_j²)/(n − c))
/// ```
/// with `d` and `s` exactly as the forward pass computes them. Exactly 0 when every entry is
/// bitwise equal (PyTorch returns 0, not NaN, there; THEORY.md B4) and when `Σ d_j²` is 0.
/// Because `d` and `s` come from the same computed deviations, `‖∇std_c‖ = 1/sqrt(n − c)`
/// holds up to the roundings of the sum of squares, the sqrt and the divisions alone (THEORY.md
/// B4 (d): within `γ_{3n}`), at every scale. Errors: as [`std_corrected`]; `grad_output` is not
/// checked (NaN propagates).
pub fn std_corrected_backward<T: Float>(
    values: ArrayView1<'_, T>,
    correction: usize,
    grad_output: T,
) -> Result<Array1<T>> {
    let n = values.len();
    Ok(
        match centred("std_corrected_backward", values, correction)? {
            None => Array1::zeros(n),
            Some((deviations, squares)) => {
                if squares == T::zero() {
                    return Ok(Array1::zeros(n));
                }
                let divisor = count::<T>(n - correction);
                let s = (squares / divisor).sqrt();
                deviations.mapv(|d| (grad_output * d) / (divisor * s))
            }
        },
    )
}
