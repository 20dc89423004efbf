//! Row reductions: log-sum-exp, softmax and log-softmax, computed the stable way of Blanchard,
//! Higham & Higham (2021) (THEORY.md A0), in plain loops.
//!
//! Shared policy for the three row ops, applied per row before any arithmetic:
//! - `m = max_j x_j`, taken with NaN dominating (a row holding a NaN has "max" NaN), and `k` the
//!   first index where the max occurs;
//! - a row with a NaN: every output of that row is NaN;
//! - a row whose max is infinite (some `+∞`, or every entry `-∞`): log-sum-exp returns `m`
//!   itself (`+∞`, resp. `-∞ = log 0`, both exact limits), while softmax and log-softmax return
//!   NaN for the whole row (`∞/∞` and `0/0` have no value).
//!
//! Summation order (documented because THEORY.md A4 thresholds depend on it): `s` is summed
//! sequentially in index order over `j ≠ k`, starting from 0; the softmax denominator is then
//! `1 + s`. The OpenCL kernels sum the same terms in a fixed tree order; every bound used here
//! holds for any order.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use num_traits::Float;

use crate::{validate, Result};

/// What the shared policy says about one row (see the module doc).
pub(crate) enum RowMax<T> {
    /// A NaN in the row.
    Nan,
    /// The max is `±∞` (no NaN).
    Infinite(T),
    /// A finite max `m` at first index `k`.
    Finite { max: T, index: usize },
}

/// Max of a row with NaN dominating, and the first index of the max.
pub(crate) fn row_max<T: Float>(row: ArrayView1<'_, T>) -> RowMax<T> {
    let mut max = T::neg_infinity();
    let mut index = 0;
    for (j, &x) in row.iter().enumerate() {
        if x.is_nan() {
            return RowMax::Nan;
        }
        if x > max || j == 0 {
            max = x;
            index = j;
        }
    }
    if max.is_infinite() {
        RowMax::Infinite(max)
    } else {
        RowMax::Finite { max, index }
    }
}

/// `s = Σ_{j≠k} exp(x_j − m)`, sequential in index order.
fn shifted_exp_sum<T: Float>(row: ArrayView1<'_, T>, max: T, index: usize) -> T {
    let mut s = T::zero();
    for (j, &x) in row.iter().enumerate() {
        if j != index {
            s = s + (x - max).exp();
        }
    }
    s
}

/// Row-wise log-sum-exp.
/// ```text
/// lse_r = log Σ_j exp(x_rj) = m + log1p(s),   m = max_j x_rj (first at k),
///                                               s = Σ_{j≠k} exp(x_rj − m)
/// ```
/// Every exponent is ≤ 0 and `s ∈ [0, n−1]`, so nothing overflows and `log1p(s) ≥ 0`: the
/// result is finite for every finite input and never below `max x` (THEORY.md A0).
/// PyTorch: `torch.logsumexp(x, dim=1)` (which uses `log` of the full sum; we use `log1p` as
/// Blanchard, Higham & Higham recommend).
///
/// Bound: [`crate::tolerance::log_sum_exp_rows`]. Errors: `EmptyInput` if rows have length 0;
/// `TooLarge` past `u32::MAX`. NaN/∞: see the module doc. Zero rows give an empty result.
pub fn log_sum_exp_rows<T: Float>(x: ArrayView2<'_, T>) -> Result<Array1<T>> {
    validate::rows_op("log_sum_exp_rows", x)?;
    Ok(x.rows()
        .into_iter()
        .map(|row| match row_max(row) {
            RowMax::Nan => T::nan(),
            RowMax::Infinite(m) => m,
            RowMax::Finite { max, index } => max + shifted_exp_sum(row, max, index).ln_1p(),
        })
        .collect())
}

/// Row-wise softmax, divided (not `exp(x − lse)`, which loses accuracy; THEORY.md A0).
/// ```text
/// g_rj = exp(x_rj − m) / (1 + s),   m, s as in log_sum_exp_rows
/// ```
/// PyTorch: `torch.softmax(x, dim=1)`. Rows sum to 1 within the bound; each entry is in `[0, 1]`.
///
/// Bound: [`crate::tolerance::softmax_rows`]. Errors and NaN/∞ policy: as
/// [`log_sum_exp_rows`] (an infinite max gives a NaN row).
pub fn softmax_rows<T: Float>(x: ArrayView2<'_, T>) -> Result<Array2<T>> {
    validate::rows_op("softmax_rows", x)?;
    let mut out = Array2::zeros(x.dim());
    for (row, mut out_row) in x.rows().into_iter().zip(out.rows_mut()) {
        match row_max(row) {
            RowMax::Nan | RowMax::Infinite(_) => out_row.fill(T::nan()),
            RowMax::Finite { max, index } => {
                let denominator = T::one() + shifted_exp_sum(row, max, index);
                for (o, &v) in out_row.iter_mut().zip(row.iter()) {
                    *o = (v - max).exp() / denominator;
                }
            }
        }
    }
    Ok(out)
}

/// Row-wise log-softmax in PyTorch's form, with `log` (not `log1p`) of the full sum.
/// ```text
/// y_rj = (x_rj − m) − log(1 + s),   m, s as in log_sum_exp_rows
/// ```
/// The `log` form is PyTorch's (`torch.log_softmax`) and is what makes f32 cross-entropy
/// **exactly 0** once the margin reaches `24 ln 2` while its gradient is not (THEORY.md A4,
/// seed 003); a `log1p` form would stay positive. Cross-entropy is built on this op.
///
/// Bound: [`crate::tolerance::log_softmax_rows`]. Errors and NaN/∞ policy: as
/// [`log_sum_exp_rows`] (an infinite max gives a NaN row).
pub fn log_softmax_rows<T: Float>(x: ArrayView2<'_, T>) -> Result<Array2<T>> {
    validate::rows_op("log_softmax_rows", x)?;
    let mut out = Array2::zeros(x.dim());
    for (row, mut out_row) in x.rows().into_iter().zip(out.rows_mut()) {
        match row_max(row) {
            RowMax::Nan | RowMax::Infinite(_) => out_row.fill(T::nan()),
            RowMax::Finite { max, index } => {
                let log_denominator = (T::one() + shifted_exp_sum(row, max, index)).ln();
                for (o, &v) in out_row.iter_mut().zip(row.iter()) {
                    *o = (v - max) - log_denominator;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn log_sum_exp_of_known_rows() {
        let x = array![[0.0f64, 0.0], [89.0, 0.0], [-104.0, -105.0], [3.0, 3.0]];
        let lse = log_sum_exp_rows(x.view()).expect("valid input");
        assert!((lse[0] - 2f64.ln()).abs() < 1e-15);
        assert!((lse[1] - (89.0 + (-89f64).exp().ln_1p())).abs() < 1e-13);
        // THEORY.md A0: shifted LSE(-104, -105) = -103.68674 in f32.
        let lse32 = log_sum_exp_rows(array![[-104.0f32, -105.0]].view()).expect("valid input");
        assert!((lse32[0] - (-103.68674f32)).abs() <= 1e-5);
        assert!((lse[3] - (3.0 + 2f64.ln())).abs() < 1e-15);
    }

    #[test]
    fn nan_and_infinity_policy() {
        let inf = f64::INFINITY;
        let x = array![[1.0, f64::NAN], [inf, 1.0], [-inf, -inf], [inf, inf]];
        let lse = log_sum_exp_rows(x.view()).expect("valid input");
        assert!(lse[0].is_nan());
        assert_eq!(lse[1], inf);
        assert_eq!(lse[2], -inf);
        assert_eq!(lse[3], inf);
        let sm = softmax_rows(x.view()).expect("valid input");
        assert!(sm.iter().all(|v| v.is_nan()));
        let lsm = log_softmax_rows(x.view()).expect("valid input");
        assert!(lsm.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn empty_rows_are_an_error_and_zero_rows_are_empty() {
        let x = Array2::<f64>::zeros((3, 0));
        assert!(matches!(
            log_sum_exp_rows(x.view()),
            Err(crate::Error::EmptyInput { .. })
        ));
        let y = Array2::<f64>::zeros((0, 4));
        assert_eq!(softmax_rows(y.view()).expect("valid").dim(), (0, 4));
    }

    #[test]
    fn f32_log_softmax_is_exactly_zero_past_24_ln_2() {
        // THEORY.md A4: margin m ≥ 24 ln 2 = 16.635532 → fl(1 + e^-m) = 1 → loss exactly 0.
        let y = log_softmax_rows(array![[17.0f32, 0.0]].view()).expect("valid");
        assert_eq!(y[[0, 0]], 0.0);
        let y = log_softmax_rows(array![[16.0f32, 0.0]].view()).expect("valid");
        assert!(y[[0, 0]] < 0.0);
    }
}
