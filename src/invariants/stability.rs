//! Log-sum-exp and softmax invariants (THEORY.md A0).

use ndarray::ArrayView2;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use crate::tolerance::{self, ArithModel};
use crate::{Backend, Scalar};

/// Shift invariance, THEORY.md A0 (d)4: for an integer `c`,
/// ```text
/// |LSÊ(fl(x + c)) − c − LSÊ(x)| ≤ B(x + c) + B(x) + u·max_i|x_i + c| + u|LSE(x) + c|
/// ```
/// with `B` = [`tolerance::log_sum_exp_rows`] in `T`'s arithmetic. LSE has absolute condition 1 in
/// the max-norm, so rounding `x + c` to `T` passes through once (`u·max|x_i + c|`). Rows that
/// are not all finite are not generated.
pub fn log_sum_exp_is_shift_invariant<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    c: i32,
) -> TestCaseResult {
    let shift = f64::from(c);
    let shifted = x.mapv(|v| T::narrow(v.widen() + shift));
    let lse = backend.log_sum_exp_rows(x)?;
    let lse_shifted = backend.log_sum_exp_rows(shifted.view())?;
    let model = ArithModel::of::<T>();
    let u = model.unit_roundoff;
    let x64 = x.mapv(Scalar::widen);
    let shifted64 = shifted.mapv(Scalar::widen);
    let bound_x = tolerance::log_sum_exp_rows(x64.view(), &model);
    let bound_shifted = tolerance::log_sum_exp_rows(shifted64.view(), &model);
    for r in 0..x.nrows() {
        let max_shifted = shifted64
            .row(r)
            .iter()
            .fold(0.0f64, |m, v| m.max((v).abs()));
        let bound =
            bound_shifted[r] + bound_x[r] + u * max_shifted + u * (lse[r].widen() + shift).abs();
        let diff = (lse_shifted[r].widen() - shift - lse[r].widen()).abs();
        prop_assert!(
            diff <= bound,
            "{}<{}>: LSE(x + {c}) − {c} − LSE(x) = {diff:e} > bound {bound:e} in row {r} (LSE(x) = {:e})",
            backend.name(),
            T::NAME,
            lse[r].widen()
        );
    }
    Ok(())
}

/// Bounds of log-sum-exp, THEORY.md A0 (d)1–2: finite for finite rows, never below the row max
/// (**exactly**: `log1p(s) ≥ 0` and rounding is monotone), and
/// ```text
/// LSÊ ≤ max x + ln n + B(x)
/// ```
/// with `B` = [`tolerance::log_sum_exp_rows`] in `T`'s arithmetic.
pub fn log_sum_exp_lies_between_max_and_max_plus_ln_n<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> TestCaseResult {
    let lse = backend.log_sum_exp_rows(x)?;
    let x64 = x.mapv(Scalar::widen);
    let bound = tolerance::log_sum_exp_rows(x64.view(), &ArithModel::of::<T>());
    let n = x.ncols() as f64;
    for (r, row) in x64.rows().into_iter().enumerate() {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let value = lse[r].widen();
        prop_assert!(
            value.is_finite(),
            "{}<{}>: LSE of finite row {r} is {value}",
            backend.name(),
            T::NAME
        );
        prop_assert!(
            value >= max,
            "{}<{}>: LSE {value:e} < max {max:e} in row {r}",
            backend.name(),
            T::NAME
        );
        let upper = max + n.ln() + bound[r];
        prop_assert!(
            value <= upper,
            "{}<{}>: LSE {value:e} > max + ln n + B = {upper:e} in row {r} (n = {n})",
            backend.name(),
            T::NAME
        );
    }
    Ok(())
}

/// Softmax rows sum to one, THEORY.md A0 (d)1 and 5: every entry in `[0, 1 + ε_div]` and
/// ```text
/// |Σ_j ĝ_j − 1| ≤ Σ_j B_j + γ_{n−1}(u_f64)·Σ_j ĝ_j
/// ```
/// with `B_j` = [`tolerance::softmax_rows`] in `T`'s arithmetic (the sum of the per-entry errors)
/// and the last term for summing the entries in f64 here.
pub fn softmax_rows_sum_to_one<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> TestCaseResult {
    let g = backend.softmax_rows(x)?;
    let model = ArithModel::of::<T>();
    let x64 = x.mapv(Scalar::widen);
    let bound = tolerance::softmax_rows(x64.view(), &model);
    let n = x.ncols();
    let summation =
        tolerance::gamma(n.saturating_sub(1), f64::EPSILON / 2.0).unwrap_or(f64::INFINITY);
    for (r, row) in g.rows().into_iter().enumerate() {
        let mut sum = 0.0;
        for (j, &v) in row.iter().enumerate() {
            let v = v.widen();
            prop_assert!(
                (0.0..=1.0 + model.divide).contains(&v),
                "{}<{}>: softmax entry [{r}, {j}] = {v:e} outside [0, 1 + ε_div]",
                backend.name(),
                T::NAME
            );
            sum += v;
        }
        let allowed = bound.row(r).sum() + summation * sum;
        prop_assert!(
            (sum - 1.0).abs() <= allowed,
            "{}<{}>: row {r} of softmax sums to {sum:.17e}, |sum − 1| = {:e} > {allowed:e} (n = {n})",
            backend.name(),
            T::NAME,
            (sum - 1.0).abs()
        );
    }
    Ok(())
}
