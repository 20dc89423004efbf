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
                    .map(|j| r.shifts[j] * r.exps[j])
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
            .map(|(&t, &e)| t * e)
            .sum::<f64>()
            / denominator;
        let common = u * weighted_shift
            + model.exp
            + model.exp * r.s / denominator
            + model.gamma(n.saturating_sub(1))
            + model.divide;
        for (j, o) in out_row.iter_mut().enumerate() {
            let g = r.exps[j] / denominator;
            *o = g * (u * r.shifts[j] + common) + n as f64 * model.underflow;
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
            .map(|j| r.shifts[j] * r.exps[j])
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
    Zip::from(&mut out)
        .and(logits)
        .and(labels)
        .for_each(|o, &z, &y| {
            if !(z.is_finite() && y.is_finite() && grad_output.is_finite()) {
                return;
            }
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
}
