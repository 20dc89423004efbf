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

mod losses;
pub mod training;

pub use losses::{
    bce_with_logits, bce_with_logits_backward, cross_entropy_backward, mse_backward, mse_loss,
};

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};

use crate::Scalar;

mod linalg;
pub use linalg::{batched_matmul, batched_matmul_backward, matmul_backward, mean_axis_backward};

mod optim;
pub use optim::{
    adam_step_bounds, clip_grad_norm_bounds, clip_grad_value, sgd_step_bounds, std_corrected,
    std_corrected_backward, StepBounds, Tracked,
};

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

/// Sum of the per-side bounds of two backends (THEORY.md E4: `|b − r| ≤ B_b + B_r`). Bounds of
/// different shapes have no sum: the result is then `a`'s shape filled with +∞, which a
/// comparison reports as "bound undefined", never a pass.
pub fn pair<D: ndarray::Dimension>(
    a: ndarray::Array<f64, D>,
    b: ndarray::Array<f64, D>,
) -> ndarray::Array<f64, D> {
    if a.shape() == b.shape() {
        a + b
    } else {
        a.mapv_into(|_| f64::INFINITY)
    }
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

// ---------------------------------------------------------------------------------------------
// Losses with a reduction, optimizers, clipping (THEORY.md B1, C1, C2, D2, D5)
// ---------------------------------------------------------------------------------------------

/// Bound for [`crate::reference::cross_entropy`] in arithmetic `model`:
/// ```text
/// |L̂ − L| ≤ [Σ_{i active} B_{i,c_i} + γ_{count−1}·Σ_{i active} |y_{i,c_i}|] / D + [Mean]·ε_div·|L|
/// D = count (Mean) or 1 (Sum)
/// ```
/// `B` from [`log_softmax_rows`] at each row's target entry, the sum of `count` terms in any
/// order, one division for the mean. Ignored rows contribute nothing. Rows with NaN or an
/// infinite max give 0 (exact NaN agreement required); no active row gives 0.
pub fn cross_entropy(
    logits: ArrayView2<'_, f64>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: crate::reference::Reduction,
    model: &ArithModel,
) -> f64 {
    let element_bounds = log_softmax_rows(logits, model);
    let mut bound_sum = 0.0;
    let mut absolute_sum = 0.0;
    let mut active = 0usize;
    for (row, &target) in targets.iter().enumerate() {
        if target == ignore_index {
            continue;
        }
        let Ok(class) = usize::try_from(target) else {
            continue;
        };
        if class >= logits.ncols() {
            continue;
        }
        active += 1;
        bound_sum += element_bounds[[row, class]];
        if let Some(r) = row_terms(logits.row(row)) {
            absolute_sum += r.shifts[class] + (1.0 + r.s).ln();
        }
    }
    if active == 0 {
        return 0.0;
    }
    let total = bound_sum + model.gamma(active - 1) * absolute_sum;
    match reduction {
        crate::reference::Reduction::Sum => total,
        crate::reference::Reduction::Mean => {
            let count = active as f64;
            total / count + model.divide * absolute_sum / count
        }
    }
}

/// Bound for [`crate::reference::mse`] in unit roundoff `u`, from the f64 loss value `loss`:
/// ```text
/// |L̂ − L| ≤ γ_{n+3}·L
/// ```
/// Each term `(p − t)²` carries 3 roundings (subtraction, square; relative `(1+u)³`), the sum
/// of `n` non-negative terms `γ_{n−1}`, the division for the mean one more: `n + 3` in all,
/// relative to `L` because no term is negative.
pub fn mse(element_count: usize, loss: f64, unit_roundoff: f64) -> f64 {
    gamma_or_inf(element_count + 3, unit_roundoff) * loss.abs()
}

/// Bound for [`crate::reference::bce_with_logits`] with `Reduction::Sum` in `model`:
/// ```text
/// |Ŝ − S| ≤ Σ_i B_i + γ_{n−1}·Σ_i |ℓ_i|
/// ```
/// `B_i` from [`bce_with_logits_element`]; the sum of `n` terms in any order.
pub fn bce_with_logits_sum(
    logits: ArrayView1<'_, f64>,
    labels: ArrayView1<'_, f64>,
    model: &ArithModel,
) -> f64 {
    let mut element_bounds = 0.0;
    let mut absolute_sum = 0.0;
    for (&z, &y) in logits.iter().zip(labels.iter()) {
        element_bounds += bce_with_logits_element(z, y, model);
        absolute_sum += crate::reference::bce_with_logits_element(z, y).abs();
    }
    element_bounds + model.gamma(logits.len().saturating_sub(1)) * absolute_sum
}

/// Relative bound between the `Sum` gradient and `n` times the `Mean` gradient of a loss whose
/// mean divides last (THEORY.md B1): `2u`.
/// ```text
/// grad_mean = fl(a / n),  grad_sum = a   ⇒   |fl(n·grad_mean) − grad_sum| ≤ 2u·|grad_sum|
/// ```
/// One rounding in the division, one when the test multiplies back by `n`; both are exact (so
/// the results are bitwise equal) when `n` is a power of two and nothing under- or overflows.
pub fn reduction_sum_versus_mean(unit_roundoff: f64) -> f64 {
    2.0 * unit_roundoff
}

/// `C_t` of THEORY.md D2: with `eps = 0`, every Adam step satisfies `|s_t| ≤ lr·C_t` per
/// coordinate, whatever the gradients:
/// ```text
/// C_t = (1−β1)/(1−β1^t) · sqrt((1−β2^t)/(1−β2)) · sqrt(Σ_{k<t} (β1²/β2)^k)
/// ```
/// Cauchy–Schwarz on `m = (1−β1)Σ β1^k g_{t−k}` against `v = (1−β2)Σ β2^k g²_{t−k}`, then the
/// bias corrections; equality for `g_{t−k} ∝ (β1/β2)^k`. `eps > 0` only lowers the step.
/// `C_1 = 1`; `C_t` increases to [`adam_step_factor_limit`]. `None` for `t = 0` or betas outside
/// `[0, 1)`. Requires `β2 > 0`.
pub fn adam_step_factor(beta1: f64, beta2: f64, step: u64) -> Option<f64> {
    if step == 0 || !(0.0..1.0).contains(&beta1) || !(0.0 < beta2 && beta2 < 1.0) {
        return None;
    }
    #[allow(clippy::cast_precision_loss, reason = "t < 2^53 is exact in f64")]
    let t = step as f64;
    let ratio = beta1 * beta1 / beta2;
    let geometric_sum = if (ratio - 1.0).abs() < f64::EPSILON {
        t
    } else {
        (1.0 - ratio.powf(t)) / (1.0 - ratio)
    };
    Some(
        (1.0 - beta1) / (1.0 - beta1.powf(t))
            * ((1.0 - beta2.powf(t)) / (1.0 - beta2)).sqrt()
            * geometric_sum.sqrt(),
    )
}

/// `C_∞ = (1−β1)/sqrt((1−β2)(1 − β1²/β2))` (THEORY.md D2): 1.6977494 for (0.9, 0.98),
/// 7.2702918 for (0.9, 0.999). `None` unless `β1² < β2` (otherwise `C_t` is unbounded).
pub fn adam_step_factor_limit(beta1: f64, beta2: f64) -> Option<f64> {
    let ratio = beta1 * beta1 / beta2;
    (ratio < 1.0 && (0.0..1.0).contains(&beta1) && beta2 < 1.0)
        .then(|| (1.0 - beta1) / ((1.0 - beta2) * (1.0 - ratio)).sqrt())
}

/// The rounding factor `τ` of THEORY.md D2:
/// ```text
/// τ = 8 + β1/(1−β1) + β2/(2(1−β2))      (41.5 for (0.9, 0.98), 516.5 for (0.9, 0.999))
/// ```
/// The EMAs forget their rounding errors geometrically: `m̂` errs by at most
/// `(3 + β1/(1−β1))u` relative to the C–S-bounded absolute EMA, `v` by `(3 + β2/(1−β2))u`,
/// halved by the sqrt, plus the bias-correction divisions, the sqrt, the add of eps, the final
/// divide and multiply.
pub fn adam_step_rounding_factor(beta1: f64, beta2: f64) -> f64 {
    8.0 + beta1 / (1.0 - beta1) + beta2 / (2.0 * (1.0 - beta2))
}

/// Bound on one Adam step (THEORY.md D2), per coordinate, for any `eps > 0`:
/// ```text
/// |ŝ_t| ≤ lr·C_t·(1 + τu)
/// ```
/// `lr` as the optimizer holds it (already rounded to its scalar type). `None` where `C_t` is.
///
/// Open point for THEORY.md D2: `τ` counts the roundings of the operations, not the rounding
/// of the coefficients to `T` (`b = fl(β)`, `c = fl(1−β)`; the bias corrections use the exact
/// `β`). Redoing Cauchy–Schwarz with the weights `c1·b1^k` against `c2·b2^k` changes `C_t` by a
/// factor `sqrt(c1²/c2 · (1−β2)/(1−β1)² · Σ(b1²/b2)^k / Σ(β1²/β2)^k)`, i.e. at most about
/// `(3/2)(1 + r/(1−r))u` relative with `r = β1²/β2` (≈ 8.6u for (0.9, 0.98)), which is not
/// separately in `τ`. The property tests use `τ` as THEORY.md states it; the largest measured
/// excess over `lr·C_t` was 0.094 of `τu`.
pub fn adam_step(
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    step: u64,
    unit_roundoff: f64,
) -> Option<f64> {
    adam_step_factor(beta1, beta2, step).map(|factor| {
        learning_rate * factor * (1.0 + adam_step_rounding_factor(beta1, beta2) * unit_roundoff)
    })
}

/// Relative tolerance of the post-clip norm of [`crate::reference::optim::clip_grad_norm`]
/// over `n` gradient entries (THEORY.md D5):
/// ```text
/// ‖ĝ_clipped‖ ≤ M(1 + γ_n/2 + 4u),   returned value γ_n/2 + 4u
/// ```
/// The sum of squares errs by `γ_n` (relative, non-negative terms), halved by the sqrt, plus
/// the sqrt's rounding (1u); the coefficient `M/(N + 1e-6)` two roundings (add, divide) and
/// `M`'s rounding to the scalar type (1u, shared by both sides); each scaled entry one more.
/// The same tolerance bounds the distance to `N·min(1, M/(N + 1e-6))`.
pub fn clip_grad_norm_relative(element_count: usize, unit_roundoff: f64) -> f64 {
    gamma_or_inf(element_count, unit_roundoff) / 2.0 + 4.0 * unit_roundoff
}

/// Whether clipping is certainly inactive, so gradients must come back bitwise unchanged
/// (multiplied by exactly 1.0; THEORY.md D5): `N̂ + 1e-6 < M(1 − 4u)`, with `N̂` the computed
/// norm that `clip_grad_norm` returns. Then `fl(M)/fl(fl(N̂) + fl(1e-6))` exceeds
/// `M(1−u)/((N̂ + 1e-6)(1+u)²) > 1` before its own rounding, so the clamped coefficient is
/// exactly 1. (With the exact norm `N` instead, `γ_n/2` would have to be added to the `4u`.)
/// Near the boundary the rounded coefficient may land on either side of 1 and nothing bitwise
/// is claimed.
pub fn clip_grad_norm_certainly_inactive(norm: f64, max_norm: f64, unit_roundoff: f64) -> bool {
    norm + crate::reference::optim::CLIP_NORM_OFFSET < max_norm * (1.0 - 4.0 * unit_roundoff)
}

/// Stability threshold of heavy-ball SGD (PyTorch momentum `μ`, dampening 0) on `λx²/2`
/// (THEORY.md C2): stable iff `0 < lr·λ < 2(1 + μ)`, from the Jury conditions for
/// `z² − (1 + μ − lr·λ)z + μ`.
pub fn momentum_stability_threshold(momentum: f64) -> f64 {
    2.0 * (1.0 + momentum)
}

/// Relative tolerance of `|x_k| = |1 − ηλ|^k·|x_0|` for gradient descent on `λx²/2`
/// (THEORY.md C1): one step `fl(x − fl(η·fl(λx)))` errs by `u + 2u·ηλ/|1 − ηλ|` relative to
/// `(1 − ηλ)x`, so after `k` steps (first order)
/// ```text
/// k·(1 + 2ηλ/|1 − ηλ|)·u
/// ```
pub fn gradient_descent_quadratic_relative(steps: u64, eta_lambda: f64, unit_roundoff: f64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "step counts are small")]
    let k = steps as f64;
    k * (1.0 + 2.0 * eta_lambda / (1.0 - eta_lambda).abs()) * unit_roundoff
}

/// Relative error `2k·u` of a built-in allowed `k` ulp in the arithmetic of `model` (the
/// single- or double-precision column of `budget`, picked by `model.unit_roundoff`; THEORY.md §0:
/// `ulp(x)/|x| ≤ 2u`).
pub fn ulp_relative_error(model: &ArithModel, budget: UlpBudget) -> f64 {
    let double = model.unit_roundoff < f32::EPSILON as f64 / 4.0;
    2.0 * if double { budget.double } else { budget.single } * model.unit_roundoff
}

/// Bound for [`crate::reference::matmul`] in arithmetic `model`, per element (THEORY.md E2):
/// ```text
/// |Ĉ_ij − C_ij| ≤ γ_k·(|A|·|B|)_ij + k·underflow
/// ```
/// Higham (2002) §3.5: a dot product of length `k` in any order errs by at most
/// `γ_k·Σ_p |a_p b_p|` (this includes rounding the result); each of the `k` products may be
/// flushed to zero. `k = 0` gives 0 (the empty sum is exact). Also the bound of each output of
/// [`crate::reference::matmul_backward`]: `(G, Bᵀ)` and `(Aᵀ, G)`, and of
/// [`crate::reference::batched_matmul`] per batch entry.
pub fn matmul(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>, model: &ArithModel) -> Array2<f64> {
    let (m, k) = a.dim();
    let n = b.ncols();
    let gamma_k = model.gamma(k);
    Array2::from_shape_fn((m, n), |(i, j)| {
        let magnitude: f64 = (0..k).map(|p| (a[[i, p]] * b[[p, j]]).abs()).sum();
        gamma_k * magnitude + k as f64 * model.underflow
    })
}

/// Bound for [`crate::reference::add_rows`]: one correctly rounded addition per element,
/// ```text
/// |Ŷ_ij − Y_ij| ≤ u·|X_ij + b_j|
/// ```
pub fn add_rows(x: ArrayView2<'_, f64>, b: ArrayView1<'_, f64>, model: &ArithModel) -> Array2<f64> {
    Array2::from_shape_fn(x.dim(), |(i, j)| {
        model.unit_roundoff * (x[[i, j]] + b[j]).abs()
    })
}

/// Bound for [`crate::reference::mul_rows`] (and for `grad_x` of
/// [`crate::reference::mul_rows_backward`] with `x := G`): one correctly rounded product,
/// ```text
/// |Ŷ_ij − Y_ij| ≤ u·|X_ij · b_j| + underflow
/// ```
pub fn mul_rows(x: ArrayView2<'_, f64>, b: ArrayView1<'_, f64>, model: &ArithModel) -> Array2<f64> {
    Array2::from_shape_fn(x.dim(), |(i, j)| {
        model.unit_roundoff * (x[[i, j]] * b[j]).abs() + model.underflow
    })
}

/// Bound for `grad_b` of [`crate::reference::mul_rows_backward`], a column dot product of
/// length `m`:
/// ```text
/// |ĝ_j − g_j| ≤ γ_m·Σ_i |G_ij·X_ij| + m·underflow
/// ```
pub fn mul_rows_backward_grad_b(
    x: ArrayView2<'_, f64>,
    grad_output: ArrayView2<'_, f64>,
    model: &ArithModel,
) -> Array1<f64> {
    let m = x.nrows();
    Array1::from_shape_fn(x.ncols(), |j| {
        let magnitude: f64 = (0..m)
            .map(|i| (grad_output[[i, j]] * x[[i, j]]).abs())
            .sum();
        model.gamma(m) * magnitude + m as f64 * model.underflow
    })
}

/// Bound for [`crate::reference::sum_axis`] (and `grad_b` of
/// [`crate::reference::add_rows_backward`], axis 0): a sum of `ℓ` terms, `ℓ` the reduced length,
/// ```text
/// |ŝ − s| ≤ γ_{ℓ−1}·Σ|x|
/// ```
/// (Higham 2002 §4.2, any order; the first addition to 0 is exact.) An axis > 1 gives an empty
/// array.
pub fn sum_axis(x: ArrayView2<'_, f64>, axis: usize, model: &ArithModel) -> Array1<f64> {
    if axis > 1 {
        return Array1::zeros(0);
    }
    let length = x.len_of(Axis(axis));
    let gamma = model.gamma(length.saturating_sub(1));
    x.map_axis(Axis(axis), |lane| {
        gamma * lane.iter().map(|v| v.abs()).sum::<f64>()
    })
}

/// Bound for [`crate::reference::mean_axis`]: the sum's bound divided by `ℓ`, plus the division,
/// ```text
/// |μ̂ − μ| ≤ γ_{ℓ−1}·Σ|x|/ℓ + ε_div·|μ|
/// ```
pub fn mean_axis(x: ArrayView2<'_, f64>, axis: usize, model: &ArithModel) -> Array1<f64> {
    if axis > 1 {
        return Array1::zeros(0);
    }
    let length = x.len_of(Axis(axis)).max(1) as f64;
    let gamma = model.gamma(x.len_of(Axis(axis)).saturating_sub(1));
    x.map_axis(Axis(axis), |lane| {
        let absolute: f64 = lane.iter().map(|v| v.abs()).sum();
        let mean: f64 = lane.iter().sum::<f64>() / length;
        gamma * absolute / length + model.divide * mean.abs()
    })
}

/// Bound for [`crate::reference::leaky_relu`] at one point with the same `slope`: exact for
/// `x > 0`, one correctly rounded product otherwise,
/// ```text
/// |ŷ − y| ≤ 0 (x > 0),   u·|slope·x| + underflow (x ≤ 0)
/// ```
/// Non-finite `x` or `slope` gives 0 (exact NaN/∞ agreement required).
pub fn leaky_relu(x: f64, slope: f64, model: &ArithModel) -> f64 {
    if x > 0.0 || !x.is_finite() || !slope.is_finite() {
        return 0.0;
    }
    model.unit_roundoff * (slope * x).abs() + model.underflow
}

/// Bound for [`crate::reference::leaky_relu_backward`] at one point, given the same `x`, `g`,
/// `slope`: `g` passed through for `x > 0`, one correctly rounded product otherwise,
/// ```text
/// |r̂ − r| ≤ 0 (x > 0),   u·|g·slope| + underflow (otherwise)
/// ```
/// Non-finite `g` or `slope` gives 0 (exact NaN/∞ agreement required).
pub fn leaky_relu_backward(x: f64, g: f64, slope: f64, model: &ArithModel) -> f64 {
    if x > 0.0 || !g.is_finite() || !slope.is_finite() {
        return 0.0;
    }
    model.unit_roundoff * (g * slope).abs() + model.underflow
}

/// Bound for [`crate::reference::sigmoid`] at one point (the two-branch form):
/// ```text
/// |σ̂ − σ| ≤ ε_σ·σ + underflow,   ε_σ = ε_div + u + ε_exp·e/(1+e) + [z < 0]·ε_exp,   e = e^{−|z|}
/// ```
/// `1 + e` rounded (`u`) after an `exp` (relative `ε_exp` of `e`, through `e/(1+e)`), one
/// division, and for `z < 0` the `exp` in the numerator (as in
/// [`bce_with_logits_mean_backward`]). Non-finite `z` gives 0.
pub fn sigmoid(z: f64, model: &ArithModel) -> f64 {
    if !z.is_finite() {
        return 0.0;
    }
    let e = (-z.abs()).exp();
    let eps_sigma = model.divide
        + model.unit_roundoff
        + model.exp * e / (1.0 + e)
        + if z < 0.0 { model.exp } else { 0.0 };
    eps_sigma * crate::reference::sigmoid(z) + model.underflow
}

/// Bound for [`crate::reference::sigmoid_backward`] given the same `y` and `g`:
/// `(g·(1 − y))·y` is three correctly rounded operations,
/// ```text
/// |r̂ − r| ≤ γ_3·|g·(1 − y)·y| + underflow
/// ```
pub fn sigmoid_backward(y: f64, g: f64, model: &ArithModel) -> f64 {
    model.gamma(3) * (g * (1.0 - y) * y).abs() + model.underflow
}

/// Bound for [`crate::reference::tanh`] at one point: the `tanh` budget (5 ulp, OpenCL C
/// spec; the host libm gets the same, STYLE §4.5),
/// ```text
/// |t̂ − tanh x| ≤ ε_tanh·|tanh x| + underflow,    ε_tanh = 2·5·u
/// ```
pub fn tanh(x: f64, model: &ArithModel) -> f64 {
    ulp_relative_error(model, TANH) * x.tanh().abs() + model.underflow
}

/// Bound for [`crate::reference::tanh_backward`] given the same `y` and `g`:
/// `y·y` (relative `u`), `1 − y²` (`u`), the product with `g` (`u`),
/// ```text
/// |r̂ − r| ≤ |g|·(u·y² + u·|1 − y²|) + u·|r| + underflow,    r = g·(1 − y²)
/// ```
pub fn tanh_backward(y: f64, g: f64, model: &ArithModel) -> f64 {
    let u = model.unit_roundoff;
    let one_minus = 1.0 - y * y;
    g.abs() * (u * y * y + u * one_minus.abs()) + u * (g * one_minus).abs() + model.underflow
}

/// `erf'(z) = (2/√π)·e^{−z²}`.
fn erf_derivative(z: f64) -> f64 {
    std::f64::consts::FRAC_2_SQRT_PI * (-z * z).exp()
}

/// Bound for [`crate::reference::gelu`] at one point, with `z = x/√2`, `E = erf(z)`,
/// `y = (x/2)(1 + E)`:
/// ```text
/// |ŷ − y| ≤ (|x|/2)·(ε_erf·|E| + 2u·|z|·erf'(z)) + 2u·|y| + underflow
/// ```
/// `z = x·round(1/√2)`: two roundings, relative `2u`, moving `E` by `erf'(z)·|z|·2u`; `erf`'s
/// own budget (16 ulp); `1 + E` and the final product (`u` each, relative to `y`); `x·0.5` is
/// exact. `erf'(z) = (2/√π)e^{−z²}`.
pub fn gelu(x: f64, model: &ArithModel) -> f64 {
    let u = model.unit_roundoff;
    let z = x * std::f64::consts::FRAC_1_SQRT_2;
    let e = libm::erf(z);
    let y = 0.5 * x * (1.0 + e);
    0.5 * x.abs()
        * (ulp_relative_error(model, ERF) * e.abs() + 2.0 * u * z.abs() * erf_derivative(z))
        + 2.0 * u * y.abs()
        + model.underflow
}

/// Bound for [`crate::reference::gelu_backward`] at one point, with `Φ = (1 + E)/2`,
/// `φ = e^{−x²/2}/√(2π)`, `s = Φ + x·φ`, `r = g·s`:
/// ```text
/// |r̂ − r| ≤ |g|·[δΦ + |x·φ|·(ε_exp + u·x²/2 + 3u) + u·|s|] + u·|r| + underflow
/// δΦ = (ε_erf·|E| + 2u·|z|·erf'(z))/2 + u·Φ
/// ```
/// `Φ` as in [`gelu`] (`1 + E` rounded, `·0.5` exact); `φ`: `x·x` (relative `u`, moving the
/// exponent by `u·x²/2`), `·(−0.5)` exact, `exp`, the rounded constant and its product (`2u`);
/// `x·φ`, `Φ + x·φ` and `g·s` one rounding each.
pub fn gelu_backward(x: f64, g: f64, model: &ArithModel) -> f64 {
    let u = model.unit_roundoff;
    let z = x * std::f64::consts::FRAC_1_SQRT_2;
    let e = libm::erf(z);
    let cdf = 0.5 * (1.0 + e);
    let pdf = (-0.5 * x * x).exp()
        * 0.5
        * std::f64::consts::FRAC_2_SQRT_PI
        * std::f64::consts::FRAC_1_SQRT_2;
    let s = cdf + x * pdf;
    let delta_cdf = 0.5
        * (ulp_relative_error(model, ERF) * e.abs() + 2.0 * u * z.abs() * erf_derivative(z))
        + u * cdf;
    g.abs() * (delta_cdf + (x * pdf).abs() * (model.exp + u * x * x / 2.0 + 3.0 * u) + u * s.abs())
        + u * (g * s).abs()
        + model.underflow
}

/// Bound for [`crate::reference::softmax_rows_backward`] given the same `y` and `g`, per
/// element, with `s = Σ_k g_k y_k` (a dot product of `n` terms) and `r_j = y_j·(g_j − s)`:
/// ```text
/// |r̂_j − r_j| ≤ |y_j|·γ_n·Σ_k |g_k y_k| + 2u·|r_j| + n·underflow
/// ```
/// The dot product's error passes through `g_j − s` times `y_j`; the subtraction and the
/// product add `u` each (relative to `r_j`).
pub fn softmax_rows_backward(
    y: ArrayView2<'_, f64>,
    grad_output: ArrayView2<'_, f64>,
    model: &ArithModel,
) -> Array2<f64> {
    let n = y.ncols();
    let u = model.unit_roundoff;
    let mut out = Array2::zeros(y.dim());
    for ((y_row, g_row), mut out_row) in y
        .rows()
        .into_iter()
        .zip(grad_output.rows())
        .zip(out.rows_mut())
    {
        let s: f64 = y_row.iter().zip(g_row.iter()).map(|(a, b)| a * b).sum();
        let magnitude: f64 = y_row
            .iter()
            .zip(g_row.iter())
            .map(|(a, b)| (a * b).abs())
            .sum();
        for ((o, &yj), &gj) in out_row.iter_mut().zip(y_row.iter()).zip(g_row.iter()) {
            let r = yj * (gj - s);
            *o = yj.abs() * model.gamma(n) * magnitude
                + 2.0 * u * r.abs()
                + n as f64 * model.underflow;
        }
    }
    out
}

/// Bound for [`crate::reference::log_softmax_rows_backward`] given the same `y` and `g`, per
/// element, with `p_j = exp(y_j)`, `S = Σ_k g_k` (a sum of `n` terms), `r_j = g_j − p_j·S`:
/// ```text
/// |r̂_j − r_j| ≤ p_j·γ_{n−1}·Σ_k|g_k| + (ε_exp + u)·p_j·|S| + u·|r_j| + underflow
/// ```
pub fn log_softmax_rows_backward(
    y: ArrayView2<'_, f64>,
    grad_output: ArrayView2<'_, f64>,
    model: &ArithModel,
) -> Array2<f64> {
    let n = y.ncols();
    let u = model.unit_roundoff;
    let mut out = Array2::zeros(y.dim());
    for ((y_row, g_row), mut out_row) in y
        .rows()
        .into_iter()
        .zip(grad_output.rows())
        .zip(out.rows_mut())
    {
        let s: f64 = g_row.sum();
        let magnitude: f64 = g_row.iter().map(|g| g.abs()).sum();
        for ((o, &yj), &gj) in out_row.iter_mut().zip(y_row.iter()).zip(g_row.iter()) {
            let p = yj.exp();
            let r = gj - p * s;
            *o = p * model.gamma(n.saturating_sub(1)) * magnitude
                + (model.exp + u) * p * s.abs()
                + u * r.abs()
                + model.underflow;
        }
    }
    out
}

/// Bound for [`crate::reference::layer_norm`] in arithmetic `model`, per element. With per row
/// `μ`, `d_j = x_j − μ`, `var = Σd²/n`, `v = var + eps`, `x̂_j = d_j/√v`, `y_j = x̂_j γ_j + β_j`:
/// ```text
/// E_μ   = γ_{n−1}·Σ|x|/n + ε_div·|μ|                        (sum, division)
/// E_d_j = E_μ + u·|d_j|                                      (subtraction)
/// E_v   = (Σ_j (2|d_j|·E_d_j + u·d_j²) + γ_{n−1}·Σ d²)/n + ε_div·var + u·v
/// ρ     = E_v/(2v) + ε_sqrt + ε_div                          (relative error of rstd)
/// E_x̂_j = |x̂_j|·(ρ + u) + E_d_j/√v
/// |ŷ_j − y_j| ≤ |γ_j|·E_x̂_j + u·|x̂_j γ_j| + u·|y_j| + underflow
/// ```
/// First order: the squares (`2|d|E_d` from the perturbed `d`, `u·d²` their rounding), their
/// sum and division, `+ eps`; `sqrt` halves a relative error and adds its own; `1/s` adds one
/// division; `d·rstd`, `·γ` and `+β` one rounding each. `eps` is taken as given (already
/// rounded to the backend's type). Rows with a non-finite entry get 0.
pub fn layer_norm(
    x: ArrayView2<'_, f64>,
    gamma: ArrayView1<'_, f64>,
    beta: ArrayView1<'_, f64>,
    eps: f64,
    model: &ArithModel,
) -> Array2<f64> {
    let u = model.unit_roundoff;
    let mut out = Array2::zeros(x.dim());
    for (row, mut out_row) in x.rows().into_iter().zip(out.rows_mut()) {
        let Some(terms) = layer_norm_row_terms(row, eps, model) else {
            continue;
        };
        for (j, o) in out_row.iter_mut().enumerate() {
            let xhat = terms.xhat[j];
            let y = xhat * gamma[j] + beta[j];
            *o = gamma[j].abs() * terms.e_xhat[j]
                + u * (xhat * gamma[j]).abs()
                + u * y.abs()
                + model.underflow;
        }
    }
    out
}

/// Exact `x̂`, `rstd` of one LayerNorm row and the first-order error terms `E_x̂_j`, `ρ` of
/// [`layer_norm`]'s derivation. `None` for a row with a non-finite entry.
struct NormTerms {
    xhat: Vec<f64>,
    e_xhat: Vec<f64>,
    rstd: f64,
    rho: f64,
}

fn layer_norm_row_terms(
    row: ArrayView1<'_, f64>,
    eps: f64,
    model: &ArithModel,
) -> Option<NormTerms> {
    if row.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let u = model.unit_roundoff;
    let n = row.len();
    let nf = n.max(1) as f64;
    let mu = row.sum() / nf;
    let absolute: f64 = row.iter().map(|v| v.abs()).sum();
    let e_mu = model.gamma(n.saturating_sub(1)) * absolute / nf + model.divide * mu.abs();
    let d: Vec<f64> = row.iter().map(|v| v - mu).collect();
    let e_d: Vec<f64> = d.iter().map(|dj| e_mu + u * dj.abs()).collect();
    let squares: f64 = d.iter().map(|dj| dj * dj).sum();
    let var = squares / nf;
    let v = var + eps;
    let propagated: f64 = d
        .iter()
        .zip(&e_d)
        .map(|(dj, ej)| 2.0 * dj.abs() * ej + u * dj * dj)
        .sum();
    let e_v =
        (propagated + model.gamma(n.saturating_sub(1)) * squares) / nf + model.divide * var + u * v;
    let rho = e_v / (2.0 * v) + ulp_relative_error(model, SQRT) + model.divide;
    let rstd = 1.0 / v.sqrt();
    let xhat: Vec<f64> = d.iter().map(|dj| dj * rstd).collect();
    let e_xhat = xhat
        .iter()
        .zip(&e_d)
        .map(|(xh, ed)| xh.abs() * (rho + u) + ed * rstd)
        .collect();
    Some(NormTerms {
        xhat,
        e_xhat,
        rstd,
        rho,
    })
}

/// Bounds for [`crate::reference::layer_norm_backward`] in arithmetic `model`, given the same
/// `x, γ, g`: `(grad_x, grad_gamma, grad_beta)`. With `x̂_j`, `rstd` and their errors `E_x̂_j`,
/// `ρ` from [`layer_norm`]'s derivation, `d_j = g_j γ_j`, `a = Σd/n`, `b = Σ d x̂/n`,
/// `t_j = d_j − a`, `w_j = x̂_j·b`, `z_j = t_j − w_j`, first order:
/// ```text
/// E_a   = (γ_{n−1}·Σ|d| + u·Σ|d|)/n + ε_div·|a|
/// E_b   = (Σ_j |d_j|·E_x̂_j + (u + γ_n)·Σ|d_j x̂_j|)/n + ε_div·|b|
/// E_z_j = u|d_j| + E_a + u|t_j| + |x̂_j|·E_b + |b|·E_x̂_j + u|w_j| + u|z_j|
/// |∂̂x_j − ∂x_j| ≤ rstd·E_z_j + rstd·|z_j|·ρ + u·rstd·|z_j| + underflow
/// |∂̂γ_j − ∂γ_j| ≤ Σ_i |g_ij|·E_x̂_ij + γ_m·Σ_i |g_ij x̂_ij| + m·underflow
/// |∂̂β_j − ∂β_j| ≤ γ_{m−1}·Σ_i |g_ij|
/// ```
/// `d_j` one product (`u`); the sums and divisions of `a`, `b` (the products `d x̂` carry
/// `E_x̂` and one rounding); each subtraction and product one rounding; `rstd`'s relative error
/// `ρ`. Rows with a non-finite entry get 0.
pub fn layer_norm_backward(
    x: ArrayView2<'_, f64>,
    gamma: ArrayView1<'_, f64>,
    eps: f64,
    grad_output: ArrayView2<'_, f64>,
    model: &ArithModel,
) -> (Array2<f64>, Array1<f64>, Array1<f64>) {
    let u = model.unit_roundoff;
    let (m, n) = x.dim();
    let nf = n.max(1) as f64;
    let mut grad_x = Array2::zeros(x.dim());
    let mut gamma_error = Array1::<f64>::zeros(n);
    let mut gamma_magnitude = Array1::<f64>::zeros(n);
    let mut beta_magnitude = Array1::<f64>::zeros(n);
    for ((row, g), mut out_row) in x
        .rows()
        .into_iter()
        .zip(grad_output.rows())
        .zip(grad_x.rows_mut())
    {
        for j in 0..n {
            beta_magnitude[j] += g[j].abs();
        }
        let Some(terms) = layer_norm_row_terms(row, eps, model) else {
            continue;
        };
        let d: Vec<f64> = (0..n).map(|j| g[j] * gamma[j]).collect();
        let sum_abs_d: f64 = d.iter().map(|v| v.abs()).sum();
        let a = d.iter().sum::<f64>() / nf;
        let b = (0..n).map(|j| d[j] * terms.xhat[j]).sum::<f64>() / nf;
        let e_a = (model.gamma(n.saturating_sub(1)) * sum_abs_d + u * sum_abs_d) / nf
            + model.divide * a.abs();
        let dx_abs: f64 = (0..n).map(|j| (d[j] * terms.xhat[j]).abs()).sum();
        let propagated: f64 = (0..n).map(|j| d[j].abs() * terms.e_xhat[j]).sum();
        let e_b = (propagated + (u + model.gamma(n)) * dx_abs) / nf + model.divide * b.abs();
        for (j, o) in out_row.iter_mut().enumerate() {
            let t = d[j] - a;
            let w = terms.xhat[j] * b;
            let z = t - w;
            let e_z = u * d[j].abs()
                + e_a
                + u * t.abs()
                + terms.xhat[j].abs() * e_b
                + b.abs() * terms.e_xhat[j]
                // Second order: |x̂̂ b̂ − x̂ b| also has E_x̂·E_b. It dominates on (near-)constant
                // rows, where x̂ = b = 0 exactly but the rounded mean leaves x̂̂ ≈ E_μ·rstd
                // with rstd ≈ eps^{-1/2}.
                + terms.e_xhat[j] * e_b
                + u * w.abs()
                + u * z.abs();
            *o = terms.rstd * e_z
                + terms.rstd * z.abs() * terms.rho
                + u * terms.rstd * z.abs()
                + model.underflow;
            gamma_error[j] += g[j].abs() * terms.e_xhat[j];
            gamma_magnitude[j] += (g[j] * terms.xhat[j]).abs();
        }
    }
    let grad_gamma = Array1::from_shape_fn(n, |j| {
        gamma_error[j] + model.gamma(m) * gamma_magnitude[j] + m as f64 * model.underflow
    });
    let grad_beta = beta_magnitude.mapv(|s| model.gamma(m.saturating_sub(1)) * s);
    (grad_x, grad_gamma, grad_beta)
}

/// Bound for [`crate::reference::embedding_backward`], per table entry: a sum of the `c_v`
/// upstream rows with id `v` into a zero start (the first addition is exact),
/// ```text
/// |Ĝ_vj − G_vj| ≤ γ_{c_v − 1}·Σ_{i: ids_i = v} |g_ij|
/// ```
/// Ids `≥ vocab` are skipped (the op rejects them).
pub fn embedding_backward(
    vocab: usize,
    ids: ArrayView1<'_, usize>,
    grad_output: ArrayView2<'_, f64>,
    model: &ArithModel,
) -> Array2<f64> {
    let d = grad_output.ncols();
    let mut counts = vec![0usize; vocab];
    let mut magnitude = Array2::<f64>::zeros((vocab, d));
    for (i, &id) in ids.iter().enumerate() {
        if id < vocab {
            counts[id] += 1;
            for j in 0..d {
                magnitude[[id, j]] += grad_output[[i, j]].abs();
            }
        }
    }
    Array2::from_shape_fn((vocab, d), |(v, j)| {
        model.gamma(counts[v].saturating_sub(1)) * magnitude[[v, j]]
    })
}

/// Bound for [`crate::reference::dropout`] (and its backward with `x := g`) against the exact
/// `x·m/(1 − p)` for a kept element: the scale `round_T(1/(1 − p))` (relative `u`) and one
/// product (`u`),
/// ```text
/// |ŷ − y| ≤ γ_2·|y| + underflow        (dropped elements: exactly 0)
/// ```
pub fn dropout(y: f64, model: &ArithModel) -> f64 {
    model.gamma(2) * y.abs() + model.underflow
}

/// Bound for [`crate::reference::attention`] in arithmetic `model`, per output element, built
/// from the bounds of its parts (first order). Per batch entry and head, with exact
/// `S = (Q·Kᵀ)·c + mask` (`c = 1/√d`), `P = softmax_rows(S)`, `O = P·V`:
/// ```text
/// δS_ij = c·γ_d·(|Q|·|K|ᵀ)_ij + 2u·|c·(QKᵀ)_ij| + u·|S_ij| + d·underflow
/// δP_ij = P_ij·(δS_ij + Σ_l P_il·δS_il) + softmax_rows bound(S)_ij
/// |Ô − O|_ij ≤ γ_{s_k}·(|P|·|V|)_ij + (δP·|V|)_ij + s_k·underflow
/// ```
/// `δS`: the dot products (E2), rounding `c` and the product with it (`2u`), the mask addition
/// (`u`). `δP`: softmax's sensitivity `∂P_j/∂S_l = P_j(δ_jl − P_l)` (so
/// `|δP_j| ≤ P_j(|δS_j| + Σ_l P_l|δS_l|)`) plus the softmax's own rounding
/// ([`softmax_rows`]). `O`: the product's own error (E2) plus the perturbed weights.
/// Shapes are taken as valid (the op validates); rows with NaN get the softmax bound 0.
pub fn attention(
    q: ndarray::ArrayView4<'_, f64>,
    k: ndarray::ArrayView4<'_, f64>,
    v: ndarray::ArrayView4<'_, f64>,
    key_mask: ArrayView2<'_, f64>,
    model: &ArithModel,
) -> ndarray::Array4<f64> {
    let (batch, heads, s_q, _) = q.dim();
    let (s_k, d_v) = (k.dim().2, v.dim().3);
    let mut out = ndarray::Array4::zeros((batch, heads, s_q, d_v));
    for b in 0..batch {
        for h in 0..heads {
            let w = attention_weights(q, k, key_mask, b, h, model);
            for i in 0..s_q {
                for e in 0..d_v {
                    let (mut magnitude, mut perturbed) = (0.0, 0.0);
                    for j in 0..s_k {
                        magnitude += w.p[[i, j]] * v[[b, h, j, e]].abs();
                        perturbed += w.delta_p[[i, j]] * v[[b, h, j, e]].abs();
                    }
                    out[[b, h, i, e]] =
                        model.gamma(s_k) * magnitude + perturbed + s_k as f64 * model.underflow;
                }
            }
        }
    }
    out
}

/// Exact attention weights `P` of one (batch, head) and their first-order error `δP` (see
/// [`attention`]).
struct AttentionWeights {
    p: Array2<f64>,
    delta_p: Array2<f64>,
}

fn attention_weights(
    q: ndarray::ArrayView4<'_, f64>,
    k: ndarray::ArrayView4<'_, f64>,
    key_mask: ArrayView2<'_, f64>,
    b: usize,
    h: usize,
    model: &ArithModel,
) -> AttentionWeights {
    let u = model.unit_roundoff;
    let (s_q, d) = (q.dim().2, q.dim().3);
    let s_k = k.dim().2;
    let c = 1.0 / (d.max(1) as f64).sqrt();
    let mut scores = Array2::zeros((s_q, s_k));
    let mut delta_s = Array2::zeros((s_q, s_k));
    for i in 0..s_q {
        for j in 0..s_k {
            let (mut dot, mut magnitude) = (0.0, 0.0);
            for p in 0..d {
                dot += q[[b, h, i, p]] * k[[b, h, j, p]];
                magnitude += (q[[b, h, i, p]] * k[[b, h, j, p]]).abs();
            }
            let s = dot * c + key_mask[[b, j]];
            scores[[i, j]] = s;
            delta_s[[i, j]] = c * model.gamma(d) * magnitude
                + 2.0 * u * (c * dot).abs()
                + u * s.abs()
                + d as f64 * model.underflow;
        }
    }
    let softmax_bound = softmax_rows(scores.view(), model);
    let mut p = Array2::zeros((s_q, s_k));
    let mut delta_p = Array2::zeros((s_q, s_k));
    for i in 0..s_q {
        let row = scores.row(i);
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        let weights: Vec<f64> = row.iter().map(|&x| (x - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        for j in 0..s_k {
            p[[i, j]] = weights[j] / total;
        }
        let mean_delta: f64 = (0..s_k).map(|l| p[[i, l]] * delta_s[[i, l]]).sum();
        for j in 0..s_k {
            delta_p[[i, j]] = p[[i, j]] * (delta_s[[i, j]] + mean_delta) + softmax_bound[[i, j]];
        }
    }
    AttentionWeights { p, delta_p }
}

/// Bounds for [`crate::reference::attention_backward`] in arithmetic `model`, given the same
/// `q, k, v, mask, G`: `(grad_q, grad_k, grad_v)`. Per (batch, head), with `P`, `δP` from
/// [`attention`]'s derivation, `c = 1/√d`, `R = G·Vᵀ`, `s_i = Σ_l R_il P_il`,
/// `Z = P ∘ (R − s)`, first order:
/// ```text
/// grad_v:  γ_{s_q}·(|P|ᵀ|G|) + |δP|ᵀ·|G| + s_q·underflow
/// δR     = γ_{d_v}·(|G|·|V|ᵀ) + d_v·underflow
/// δs_i   = Σ_l (δR_il·P_il + |R_il|·δP_il) + γ_{s_k}·Σ_l |R_il P_il|
/// δZ_ij  = δP_ij·|R_ij − s_i| + P_ij·(δR_ij + δs_i + u·|R_ij − s_i|) + u·|Z_ij|
/// δZc    = c·δZ + 2u·c·|Z|                                  (c rounded, one product)
/// grad_q:  γ_{s_k}·(c|Z|·|K|) + δZc·|K| + s_k·underflow
/// grad_k:  γ_{s_q}·(c|Z|ᵀ·|Q|) + δZcᵀ·|Q| + s_q·underflow
/// ```
/// Each product of the backward is a matmul (E2) whose inputs carry the propagated errors.
pub fn attention_backward(
    q: ndarray::ArrayView4<'_, f64>,
    k: ndarray::ArrayView4<'_, f64>,
    v: ndarray::ArrayView4<'_, f64>,
    key_mask: ArrayView2<'_, f64>,
    grad_output: ndarray::ArrayView4<'_, f64>,
    model: &ArithModel,
) -> (
    ndarray::Array4<f64>,
    ndarray::Array4<f64>,
    ndarray::Array4<f64>,
) {
    let u = model.unit_roundoff;
    let (batch, heads, s_q, d) = q.dim();
    let (s_k, d_v) = (k.dim().2, v.dim().3);
    let c = 1.0 / (d.max(1) as f64).sqrt();
    let mut grad_q = ndarray::Array4::zeros(q.raw_dim());
    let mut grad_k = ndarray::Array4::zeros(k.raw_dim());
    let mut grad_v = ndarray::Array4::zeros(v.raw_dim());
    for b in 0..batch {
        for h in 0..heads {
            let w = attention_weights(q, k, key_mask, b, h, model);
            let g = grad_output.slice(ndarray::s![b, h, .., ..]);
            let (qm, km, vm) = (
                q.slice(ndarray::s![b, h, .., ..]),
                k.slice(ndarray::s![b, h, .., ..]),
                v.slice(ndarray::s![b, h, .., ..]),
            );
            for l in 0..s_k {
                for e in 0..d_v {
                    let (mut magnitude, mut perturbed) = (0.0, 0.0);
                    for i in 0..s_q {
                        magnitude += w.p[[i, l]] * g[[i, e]].abs();
                        perturbed += w.delta_p[[i, l]] * g[[i, e]].abs();
                    }
                    grad_v[[b, h, l, e]] =
                        model.gamma(s_q) * magnitude + perturbed + s_q as f64 * model.underflow;
                }
            }
            let mut z = Array2::<f64>::zeros((s_q, s_k));
            let mut delta_zc = Array2::<f64>::zeros((s_q, s_k));
            for i in 0..s_q {
                let mut r = vec![0.0; s_k];
                let mut delta_r = vec![0.0; s_k];
                for l in 0..s_k {
                    let (mut dot, mut magnitude) = (0.0, 0.0);
                    for e in 0..d_v {
                        dot += g[[i, e]] * vm[[l, e]];
                        magnitude += (g[[i, e]] * vm[[l, e]]).abs();
                    }
                    r[l] = dot;
                    delta_r[l] = model.gamma(d_v) * magnitude + d_v as f64 * model.underflow;
                }
                let s: f64 = (0..s_k).map(|l| r[l] * w.p[[i, l]]).sum();
                let delta_s: f64 = (0..s_k)
                    .map(|l| delta_r[l] * w.p[[i, l]] + r[l].abs() * w.delta_p[[i, l]])
                    .sum::<f64>()
                    + model.gamma(s_k) * (0..s_k).map(|l| (r[l] * w.p[[i, l]]).abs()).sum::<f64>();
                for j in 0..s_k {
                    let centred = r[j] - s;
                    let zij = w.p[[i, j]] * centred;
                    let delta_z = w.delta_p[[i, j]] * centred.abs()
                        + w.p[[i, j]] * (delta_r[j] + delta_s + u * centred.abs())
                        + u * zij.abs();
                    z[[i, j]] = zij;
                    delta_zc[[i, j]] = c * delta_z + 2.0 * u * c * zij.abs();
                }
            }
            for i in 0..s_q {
                for p in 0..d {
                    let (mut magnitude, mut perturbed) = (0.0, 0.0);
                    for j in 0..s_k {
                        magnitude += c * z[[i, j]].abs() * km[[j, p]].abs();
                        perturbed += delta_zc[[i, j]] * km[[j, p]].abs();
                    }
                    grad_q[[b, h, i, p]] =
                        model.gamma(s_k) * magnitude + perturbed + s_k as f64 * model.underflow;
                }
            }
            for j in 0..s_k {
                for p in 0..d {
                    let (mut magnitude, mut perturbed) = (0.0, 0.0);
                    for i in 0..s_q {
                        magnitude += c * z[[i, j]].abs() * qm[[i, p]].abs();
                        perturbed += delta_zc[[i, j]] * qm[[i, p]].abs();
                    }
                    grad_k[[b, h, j, p]] =
                        model.gamma(s_q) * magnitude + perturbed + s_q as f64 * model.underflow;
                }
            }
        }
    }
    (grad_q, grad_k, grad_v)
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
    fn leaky_relu_bounds_on_hand_cases() {
        let m = ArithModel::of::<f32>();
        let u = m.unit_roundoff;
        assert_eq!(leaky_relu(3.0, 0.01, &m), 0.0);
        assert_eq!(leaky_relu(-2.0, 0.5, &m), u * 1.0 + m.underflow);
        assert_eq!(leaky_relu_backward(1.0, 4.0, 0.1, &m), 0.0);
        assert_eq!(
            leaky_relu_backward(0.0, 4.0, 0.5, &m),
            u * 2.0 + m.underflow
        );
        assert_eq!(leaky_relu(f64::NAN, 0.5, &m), 0.0);
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

    #[test]
    fn adam_step_factors_match_theory_d2() {
        // THEORY.md D2 (c): C_∞ and C_t tables.
        let limit = adam_step_factor_limit(0.9, 0.98).expect("β1² < β2");
        assert!((limit - 1.6977494).abs() < 5e-8);
        let limit = adam_step_factor_limit(0.9, 0.999).expect("β1² < β2");
        assert!((limit - 7.2702918).abs() < 5e-8);
        assert_eq!(adam_step_factor(0.9, 0.98, 1), Some(1.0));
        for (t, expected) in [(10, 1.02857), (100, 1.58121), (1000, 1.69775)] {
            let c = adam_step_factor(0.9, 0.98, t).expect("valid");
            assert!((c - expected).abs() < 5e-6, "C_{t} = {c}");
        }
        for (t, expected) in [
            (10, 1.04311),
            (100, 2.24336),
            (1000, 5.78116),
            (10_000, 7.27013),
        ] {
            let c = adam_step_factor(0.9, 0.999, t).expect("valid");
            assert!((c - expected).abs() < 5e-6, "C_{t} = {c}");
        }
        // THEORY.md quotes these rounded down: 41 and 516.
        assert!((adam_step_rounding_factor(0.9, 0.98) - 41.5).abs() < 1e-9);
        assert!((adam_step_rounding_factor(0.9, 0.999) - 516.5).abs() < 1e-9);
        assert_eq!(adam_step_factor(0.9, 0.98, 0), None);
    }

    #[test]
    fn matmul_bound_on_a_hand_case() {
        // [1, −2]·[3; 4] = −5 with |A||B| = 3 + 8 = 11: bound γ_2·11 + 2·underflow.
        let m = ArithModel::of::<f32>();
        let b = matmul(array![[1.0, -2.0]].view(), array![[3.0], [4.0]].view(), &m);
        let expected = m.gamma(2) * 11.0 + 2.0 * m.underflow;
        assert!((b[[0, 0]] - expected).abs() < 1e-22);
        // k = 0: the empty sum is exact.
        let b0 = matmul(
            Array2::zeros((2, 0)).view(),
            Array2::zeros((0, 3)).view(),
            &m,
        );
        assert!(b0.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn elementwise_bounds_on_hand_cases() {
        let m = ArithModel::of::<f32>();
        let u = m.unit_roundoff;
        // gelu(0) = 0 exactly: only the underflow slack remains.
        assert_eq!(gelu(0.0, &m), m.underflow);
        // tanh: 5 ulp = 10u relative.
        assert!((tanh(1.0, &m) - (10.0 * u * 1f64.tanh() + m.underflow)).abs() < 1e-22);
        assert_eq!(ulp_relative_error(&m, ERF), 32.0 * u);
        assert_eq!(
            ulp_relative_error(&ArithModel::of::<f64>(), SQRT),
            2f64.powi(-53)
        );
    }
}
