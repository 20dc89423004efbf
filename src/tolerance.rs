//! Derived error bounds (THEORY.md E).
//!
//! Every bound here is first order in the unit roundoff `u`, built from the operation sequence
//! of the op as documented on its reference function: for each operation its relative error
//! `ε` (`u` when correctly rounded, `2k·u` for a built-in allowed `k` ulp, E3) times the size of
//! its result times the condition of what follows. Sums use `γ_m = m·u/(1 − m·u)` times the sum
//! of absolute values, which holds for **any** summation order (Higham 2002, ch. 3), so
//! work-group trees need no special case.
//!
//! A bound is per element and per side: comparing backend A (in `T_A`) with the reference in f64
//! uses `bound_A + bound_f64` ([`pair`]); each side already includes rounding its own result.
//! Bounds are evaluated in f64 from the f64 reference quantities of the same (already rounded)
//! inputs. No constant here was tuned to make a test pass.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Zip};

use crate::Scalar;

/// Max error of OpenCL C built-ins in ulp (full profile, no relaxed-math options).
/// Source: OpenCL C specification, "ULP values for single/double precision built-in math
/// functions" (THEORY.md E3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UlpBudget {
    /// Allowed ulps in single precision.
    pub single: f64,
    /// Allowed ulps in double precision.
    pub double: f64,
}

/// `exp`: 3 ulp (f32 and f64).
pub const EXP: UlpBudget = UlpBudget {
    single: 3.0,
    double: 3.0,
};
/// `log`: 3 ulp.
pub const LOG: UlpBudget = UlpBudget {
    single: 3.0,
    double: 3.0,
};
/// `log1p`: 2 ulp.
pub const LOG1P: UlpBudget = UlpBudget {
    single: 2.0,
    double: 2.0,
};
/// `tanh`: 5 ulp.
pub const TANH: UlpBudget = UlpBudget {
    single: 5.0,
    double: 5.0,
};
/// `erf`: 16 ulp.
pub const ERF: UlpBudget = UlpBudget {
    single: 16.0,
    double: 16.0,
};
/// `x / y`: 2.5 ulp in f32, correctly rounded (0.5 ulp) in f64.
pub const DIVIDE: UlpBudget = UlpBudget {
    single: 2.5,
    double: 0.5,
};
/// `sqrt`: 3 ulp in f32, correctly rounded in f64.
pub const SQRT: UlpBudget = UlpBudget {
    single: 3.0,
    double: 0.5,
};

/// γ_n = n·u/(1 − n·u); `None` when n·u ≥ 1 and the bound is meaningless.
pub fn gamma(n: usize, unit_roundoff: f64) -> Option<f64> {
    let nu = n as f64 * unit_roundoff;
    (nu < 1.0).then(|| nu / (1.0 - nu))
}

/// γ_n, or +∞ when undefined (the comparison then reports "bound undefined", never a pass).
fn gamma_or_inf(n: usize, unit_roundoff: f64) -> f64 {
    gamma(n, unit_roundoff).unwrap_or(f64::INFINITY)
}

/// The arithmetic a backend is assumed to have in one scalar type: unit roundoff, the relative
/// error of each built-in, and an absolute slack for results that may be flushed to zero.
///
/// [`ArithModel::of::<T>()`] gives the OpenCL C specification's budgets, which every backend is
/// held to (the host libm gets the same budget, STYLE §4.5; glibc's `exp`/`log` are within
/// 1 ulp, so this is not a loosening for the reference).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArithModel {
    /// Unit roundoff `u` of correctly rounded `+ − ×`.
    pub unit_roundoff: f64,
    /// Relative error of `exp`: `2·k_exp·u`.
    pub exp: f64,
    /// Relative error of `log`.
    pub log: f64,
    /// Relative error of `log1p`.
    pub log1p: f64,
    /// Relative error of division.
    pub divide: f64,
    /// Absolute error a result may take by being flushed to zero (smallest normal number):
    /// OpenCL allows f32 denormals to be flushed (THEORY.md E1).
    pub underflow: f64,
}

impl ArithModel {
    /// The OpenCL C specification's budgets in scalar type `T`.
    pub fn of<T: Scalar>() -> Self {
        let u = T::UNIT_ROUNDOFF;
        let double = T::UNIT_ROUNDOFF < f32::EPSILON as f64 / 4.0;
        let eps = |budget: UlpBudget| 2.0 * if double { budget.double } else { budget.single } * u;
        ArithModel {
            unit_roundoff: u,
            exp: eps(EXP),
            log: eps(LOG),
            log1p: eps(LOG1P),
            divide: eps(DIVIDE),
            underflow: T::MIN_POSITIVE_NORMAL,
        }
    }

    /// γ_n in this model (+∞ when undefined).
    pub fn gamma(&self, n: usize) -> f64 {
        gamma_or_inf(n, self.unit_roundoff)
    }
}

/// Sum of the per-side bounds of two backends (THEORY.md E4: `|b − r| ≤ B_b + B_r`).
pub fn pair<D: ndarray::Dimension>(
    a: ndarray::Array<f64, D>,
    b: ndarray::Array<f64, D>,
) -> ndarray::Array<f64, D> {
    a + b
}

/// Per-row quantities of the stable row algorithm, in f64: max `m`, first max index `k`,
/// `t_j = m − x_j`, `e_j = exp(−t_j)`, `s = Σ_{j≠k} e_j`. `None` for a row with NaN or an
/// infinite max (the comparison then needs exact NaN/∞ agreement and the bound is 0).
struct RowTerms {
    max: f64,
    index: usize,
    shifts: Vec<f64>,
    exps: Vec<f64>,
    s: f64,
}

/// `t·e^{−t}` with its limit 0 where `e^{−t}` is 0 (an entry of `-∞`, or underflow): the
/// shift's rounding cannot move a zero term.
fn shift_weight(shift: f64, exp: f64) -> f64 {
    if exp == 0.0 {
        0.0
    } else {
        shift * exp
    }
}

fn row_terms(row: ArrayView1<'_, f64>) -> Option<RowTerms> {
    let mut max = f64::NEG_INFINITY;
    let mut index = 0;
    for (j, &x) in row.iter().enumerate() {
        if x.is_nan() {
            return None;
        }
        if x > max || j == 0 {
            max = x;
            index = j;
        }
    }
    if !max.is_finite() {
        return None;
    }
    let shifts: Vec<f64> = row.iter().map(|&x| max - x).collect();
    let exps: Vec<f64> = shifts.iter().map(|&t| (-t).exp()).collect();
    let s = exps
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != index)
        .map(|(_, &e)| e)
        .sum();
    Some(RowTerms {
        max,
        index,
        shifts,
        exps,
        s,
    })
}

/// Bound for [`crate::reference::log_sum_exp_rows`] computed in arithmetic `model`
/// (THEORY.md A0), per row:
/// ```text
/// |LSÊ − LSE| ≤ u|LSE| + ε_log1p·log1p(s) + (ε_exp + γ_{n−2})·s/(1+s)
///               + u·Σ_{j≠k} t_j e^{−t_j}/(1+s) + (n−1)·underflow
/// ```
/// Terms: the final add; `log1p`'s own error; the `exp`s and the sum of `n − 1` terms, through
/// `log1p' = 1/(1+s)`; rounding of each shift `x_j − m` (relative `u`, so `e_j` moves by
/// `t_j u e_j`); flushed subnormal `exp`s. Rows with NaN or an infinite max get bound 0.
pub fn log_sum_exp_rows(x: ArrayView2<'_, f64>, model: &ArithModel) -> Array1<f64> {
    let u = model.unit_roundoff;
    let n = x.ncols();
    x.rows()
        .into_iter()
        .map(|row| match row_terms(row) {
            None => 0.0,
            Some(r) => {
                let lse = r.max + r.s.ln_1p();
                let shift_term: f64 = (0..n)
                    .filter(|&j| j != r.index)
                    .map(|j| shift_weight(r.shifts[j], r.exps[j]))
                    .sum::<f64>()
                    / (1.0 + r.s);
                u * lse.abs()
                    + model.log1p * r.s.ln_1p()
                    + (model.exp + model.gamma(n.saturating_sub(2))) * r.s / (1.0 + r.s)
                    + u * shift_term
                    + (n - 1) as f64 * model.underflow
            }
        })
        .collect()
}

/// Bound for [`crate::reference::softmax_rows`] in arithmetic `model` (THEORY.md A0), per
/// element:
/// ```text
/// |ĝ_j − g_j| ≤ g_j·[ u·t_j + u·Σ_i g_i t_i + ε_exp + ε_exp·s/(1+s) + γ_{n−1} + ε_div ]
///               + n·underflow
/// ```
/// Numerator: shift (`t_j u`) and `exp`; denominator `1 + s`: shifts (weighted mean
/// `Σ g_i t_i ≤ max t`), `exp`s (weight `s/(1+s)`), a sum of `n` terms; one division.
/// This is THEORY.md's `(t_j + max t + n − 1)u + 2ε_e + ε_d` with the weights kept exact.
pub fn softmax_rows(x: ArrayView2<'_, f64>, model: &ArithModel) -> Array2<f64> {
    let u = model.unit_roundoff;
    let n = x.ncols();
    let mut out = Array2::zeros(x.dim());
    for (row, mut out_row) in x.rows().into_iter().zip(out.rows_mut()) {
        let Some(r) = row_terms(row) else { continue };
        let denominator = 1.0 + r.s;
        let weighted_shift: f64 = r
            .shifts
            .iter()
            .zip(r.exps.iter())
            .map(|(&t, &e)| shift_weight(t, e))
            .sum::<f64>()
            / denominator;
        let common = u * weighted_shift
            + model.exp
            + model.exp * r.s / denominator
            + model.gamma(n.saturating_sub(1))
            + model.divide;
        for (j, o) in out_row.iter_mut().enumerate() {
            let g = r.exps[j] / denominator;
            *o = shift_weight(u * r.shifts[j], g) + g * common + n as f64 * model.underflow;
        }
    }
    out
}

/// Bound for [`crate::reference::log_softmax_rows`] in arithmetic `model`, per element, with
/// `S = 1 + s`:
/// ```text
/// |ŷ_j − y_j| ≤ u·t_j + γ_{n−1} + (ε_exp·s + u·Σ_{i≠k} t_i e_i)/S + ε_log·log S + u|y_j|
///               + (n−1)·underflow
/// ```
/// Shift `x_j − m`; the sum `S` of `n` positive terms (relative `γ_{n−1}`), its `exp`s and
/// shifts, all through `log' = 1/S`; `log`'s own error; the final subtraction.
pub fn log_softmax_rows(x: ArrayView2<'_, f64>, model: &ArithModel) -> Array2<f64> {
    let u = model.unit_roundoff;
    let n = x.ncols();
    let mut out = Array2::zeros(x.dim());
    for (row, mut out_row) in x.rows().into_iter().zip(out.rows_mut()) {
        let Some(r) = row_terms(row) else { continue };
        let total = 1.0 + r.s;
        let shift_term: f64 = (0..n)
            .filter(|&j| j != r.index)
            .map(|j| shift_weight(r.shifts[j], r.exps[j]))
            .sum();
        let common = model.gamma(n.saturating_sub(1))
            + (model.exp * r.s + u * shift_term) / total
            + model.log * total.ln()
            + (n - 1) as f64 * model.underflow;
        for (j, o) in out_row.iter_mut().enumerate() {
            let y = -r.shifts[j] - total.ln();
            *o = u * r.shifts[j] + common + u * y.abs();
        }
    }
    out
}

/// Bound for one element of [`crate::reference::bce_with_logits_element`] (THEORY.md E4):
/// ```text
/// |ℓ̂ − ℓ| ≤ u(2|zy| + max(z,0) + |ℓ|) + (2ε_exp + ε_log1p)·log1p(e^{−|z|}) + underflow
/// ```
/// `z·y`, the subtraction and the final add are correctly rounded; `exp`'s error passes through
/// `log1p` with factor `e/(1+e) ≤ 2·log1p(e)` on `[0, 1]`. Non-finite inputs give 0 (exact
/// NaN/∞ agreement required).
pub fn bce_with_logits_element(z: f64, y: f64, model: &ArithModel) -> f64 {
    if !(z.is_finite() && y.is_finite()) {
        return 0.0;
    }
    let u = model.unit_roundoff;
    let tail = (-z.abs()).exp().ln_1p();
    let loss = z.max(0.0) - z * y + tail;
    u * (2.0 * (z * y).abs() + z.max(0.0) + loss.abs())
        + (2.0 * model.exp + model.log1p) * tail
        + model.underflow
}

/// Bound for [`crate::reference::bce_with_logits_mean`] in arithmetic `model`:
/// ```text
/// |L̂ − L| ≤ (Σ_i B_i)/n + γ_{n−1}·Σ_i|ℓ_i|/n + ε_div·|L|
/// ```
/// Element bounds `B_i` from [`bce_with_logits_element`], the sum of `n` terms in any order,
/// one division by `n`.
pub fn bce_with_logits_mean(
    logits: ArrayView1<'_, f64>,
    labels: ArrayView1<'_, f64>,
    model: &ArithModel,
) -> f64 {
    let n = logits.len().max(1) as f64;
    let mut element_bounds = 0.0;
    let mut absolute_sum = 0.0;
    for (&z, &y) in logits.iter().zip(labels.iter()) {
        element_bounds += bce_with_logits_element(z, y, model);
        absolute_sum += crate::reference::bce_with_logits_element(z, y).abs();
    }
    let mean = absolute_sum / n;
    element_bounds / n + model.gamma(logits.len().saturating_sub(1)) * mean + model.divide * mean
}

/// Bound for [`crate::reference::bce_with_logits_mean_backward`] in arithmetic `model`, per
/// element, with `d = σ(z) − y`, `g = d·go/n`:
/// ```text
/// |ĝ − g| ≤ |go|·(ε_σ·σ + 2u|d|)/n + ε_div|g| + |go|·underflow/n
/// ε_σ = ε_div + u + ε_exp·e/(1+e) + [z < 0]·ε_exp,   e = e^{−|z|}
/// ```
/// `σ` from the two-branch form (`1 + e` rounded, one division, and for `z < 0` an `exp` in the
/// numerator); the subtraction and the product with `go` are correctly rounded; one division
/// by `n`.
pub fn bce_with_logits_mean_backward(
    logits: ArrayView1<'_, f64>,
    labels: ArrayView1<'_, f64>,
    grad_output: f64,
    model: &ArithModel,
) -> Array1<f64> {
    let u = model.unit_roundoff;
    let n = logits.len().max(1) as f64;
    let mut out = Array1::zeros(logits.len());
    // Evaluated for infinite z too (σ(±∞) is exact); where the expected value is NaN or ±∞ the
    // comparison requires an exact match and ignores the bound.
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
            let g = d * grad_output / n;
            *o = grad_output.abs() * (eps_sigma * sigma + 2.0 * u * d.abs()) / n
                + model.divide * g.abs()
                + grad_output.abs() * model.underflow / n;
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn gamma_matches_definition_and_is_undefined_past_one() {
        let u = 2f64.powi(-24);
        assert_eq!(gamma(0, u), Some(0.0));
        let g = gamma(10, u).expect("defined");
        assert!((g - 10.0 * u / (1.0 - 10.0 * u)).abs() < 1e-30);
        assert_eq!(gamma(1 << 24, u), None);
    }

    #[test]
    fn opencl_f32_budgets_follow_the_spec() {
        let m = ArithModel::of::<f32>();
        let u = 2f64.powi(-24);
        assert_eq!(m.exp, 6.0 * u);
        assert_eq!(m.log1p, 4.0 * u);
        assert_eq!(m.divide, 5.0 * u);
        let d = ArithModel::of::<f64>();
        assert_eq!(d.divide, 2f64.powi(-53));
    }

    #[test]
    fn lse_bound_on_a_hand_case() {
        // x = [0, 0]: m = 0, s = 1, lse = ln 2, shifts 0.
        let m = ArithModel::of::<f32>();
        let b = log_sum_exp_rows(array![[0.0, 0.0]].view(), &m);
        let u = m.unit_roundoff;
        let expected = u * 2f64.ln() + m.log1p * 2f64.ln() + (m.exp + 0.0) * 0.5 + m.underflow;
        assert!((b[0] - expected).abs() < 1e-20);
        // A single entry is exact up to the final add of log1p(0) = 0.
        let b1 = log_sum_exp_rows(array![[3.0]].view(), &m);
        assert!((b1[0] - 3.0 * u).abs() < 1e-20);
    }
}
