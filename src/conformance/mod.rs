//! The conformance suite: each op of a backend against the reference in f64, within the derived
//! bound, plus error parity.
//!
//! Each op has a `check_<op>` returning the [`Agreement`] (used by `make report`) and a
//! `<op>_matches_reference` wrapper returning a proptest `TestCaseResult` (used by
//! [`crate::backend_tests!`]). The oracle is always the reference run in f64 on the backend's
//! own inputs widened exactly, and the bound is `bound_T + bound_f64` (THEORY.md E4).

mod layers;
mod losses;
pub mod training;

pub use layers::{
    attention_backward_matches_reference, attention_matches_reference, check_attention,
    check_attention_backward, check_dropout, check_dropout_backward, check_embedding,
    check_embedding_backward, dropout_backward_matches_reference, dropout_matches_reference,
    embedding_backward_matches_reference, embedding_matches_reference, AttentionBackwardAgreement,
};
pub use losses::{
    bce_with_logits_backward_matches_reference, bce_with_logits_matches_reference,
    check_bce_with_logits, check_bce_with_logits_backward, check_cross_entropy,
    check_cross_entropy_backward, check_log_softmax_rows_backward, check_mse, check_mse_backward,
    check_softmax_rows_backward, cross_entropy_backward_matches_reference,
    cross_entropy_is_exactly_zero_past_24_ln_2, cross_entropy_matches_reference,
    log_softmax_rows_backward_matches_reference, mse_backward_matches_reference,
    mse_matches_reference, softmax_rows_backward_matches_reference,
};
pub mod dispatch;

use std::fmt;

use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2};
use proptest::test_runner::{TestCaseError, TestCaseResult};

use crate::compare::{self, format_values, Agreement, Mismatch, Subject};
use crate::dump;
use crate::reference::Reduction;
use crate::tolerance::{self, ArithModel};
use crate::{reference, Backend, Error, Scalar};

mod linalg;
pub use linalg::{
    add_rows_backward_matches_reference, batched_matmul_backward_matches_reference,
    batched_matmul_matches_reference, check_add_rows_backward, check_batched_matmul,
    check_batched_matmul_backward, check_matmul_backward, check_mean_axis,
    check_mean_axis_backward, check_mul_rows, check_mul_rows_backward, check_sum_axis,
    check_sum_axis_backward, check_transpose, linalg_errors_match_reference,
    matmul_backward_matches_reference, mean_axis_backward_matches_reference,
    mean_axis_matches_reference, mul_rows_backward_matches_reference, mul_rows_matches_reference,
    sum_axis_backward_matches_reference, sum_axis_matches_reference, transpose_matches_reference,
};

mod optim;
pub use optim::{
    adam_step_matches_reference, check_adam_step, check_clip_grad_norm, check_clip_grad_value,
    check_sgd_step, check_std_corrected, check_std_corrected_backward,
    clip_grad_norm_matches_reference, clip_grad_value_matches_reference,
    optim_errors_match_reference, sgd_step_matches_reference,
    std_corrected_backward_matches_reference, std_corrected_matches_reference,
};

/// Why a conformance check failed.
#[derive(Debug)]
pub enum CheckFailure {
    /// The backend (or the reference) returned an error where the input is valid.
    Backend {
        /// Which side failed and on what.
        context: String,
        /// The error.
        error: Error,
    },
    /// Results disagree beyond the bound.
    Mismatch(Box<Mismatch>),
    /// Error parity: the backend's error differs from the reference's on invalid input.
    ErrorParity {
        /// The op.
        op: &'static str,
        /// What the input was.
        case: String,
        /// Reference result (formatted).
        expected: String,
        /// Backend result (formatted).
        actual: String,
    },
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckFailure::Backend { context, error } => write!(f, "{context}: {error}"),
            CheckFailure::Mismatch(m) => write!(f, "{m}"),
            CheckFailure::ErrorParity {
                op,
                case,
                expected,
                actual,
            } => write!(
                f,
                "{op}: error parity on {case}: reference gives {expected}, backend gives {actual}"
            ),
        }
    }
}

impl std::error::Error for CheckFailure {}

/// Outcome of one check.
pub type CheckResult = Result<Agreement, Box<CheckFailure>>;

fn subject<T: Scalar>(op: &str, backend: &impl Backend<T>) -> Subject {
    Subject {
        op: op.to_string(),
        actual: format!("{}<{}>", backend.name(), T::NAME),
        expected: "reference<f64>".to_string(),
    }
}

fn backend_error<T: Scalar>(
    op: &str,
    backend: &impl Backend<T>,
) -> impl FnOnce(Error) -> Box<CheckFailure> {
    let context = format!("{op} on {}<{}> (valid input)", backend.name(), T::NAME);
    move |error| Box::new(CheckFailure::Backend { context, error })
}

fn reference_error(op: &str) -> impl FnOnce(Error) -> Box<CheckFailure> {
    let context = format!("{op} on reference<f64> (valid input)");
    move |error| Box::new(CheckFailure::Backend { context, error })
}

fn widen2<T: Scalar>(x: ArrayView2<'_, T>) -> Array2<f64> {
    x.mapv(Scalar::widen)
}

fn widen1<T: Scalar>(x: ArrayView1<'_, T>) -> Array1<f64> {
    x.mapv(Scalar::widen)
}

fn row_context(x: &Array2<f64>) -> impl Fn(&[usize]) -> String + '_ {
    move |index: &[usize]| {
        let r = index.first().copied().unwrap_or(0);
        if r >= x.nrows() {
            return String::new();
        }
        let row = x.row(r);
        let max_abs = row.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        format!(
            "row {r} = {} (max |x| {max_abs:e})",
            format_values(row.iter().copied())
        )
    }
}

/// Bound for a result in `T` against the f64 reference: `B_T + B_f64`.
fn models<T: Scalar>() -> (ArithModel, ArithModel) {
    (ArithModel::of::<T>(), ArithModel::of::<f64>())
}

/// Row-wise log-sum-exp of `backend` vs the f64 reference, within
/// [`tolerance::log_sum_exp_rows`] for `T` plus that for f64.
pub fn check_log_sum_exp_rows<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "log_sum_exp_rows";
    let actual = backend
        .log_sum_exp_rows(x)
        .map_err(backend_error(OP, backend))?;
    let x64 = widen2(x);
    dump::inputs::<T>(OP, &[("x", x64.view().into_dyn())]);
    let context = row_context(&x64);
    let expected = reference::log_sum_exp_rows(x64.view()).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::log_sum_exp_rows(x64.view(), &m_t),
        tolerance::log_sum_exp_rows(x64.view(), &m_64),
    );
    let actual = actual.mapv(Scalar::widen);
    compare::compare(
        &subject(OP, backend),
        actual.view().into_dyn(),
        expected.view().into_dyn(),
        bound.view().into_dyn(),
        &context,
    )
    .map_err(|m| Box::new(CheckFailure::Mismatch(m)))
}

/// Row-wise softmax vs the f64 reference within [`tolerance::softmax_rows`] (both sides).
pub fn check_softmax_rows<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "softmax_rows";
    let actual = backend
        .softmax_rows(x)
        .map_err(backend_error(OP, backend))?;
    let x64 = widen2(x);
    dump::inputs::<T>(OP, &[("x", x64.view().into_dyn())]);
    let context = row_context(&x64);
    let expected = reference::softmax_rows(x64.view()).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::softmax_rows(x64.view(), &m_t),
        tolerance::softmax_rows(x64.view(), &m_64),
    );
    let actual = actual.mapv(Scalar::widen);
    compare::compare(
        &subject(OP, backend),
        actual.view().into_dyn(),
        expected.view().into_dyn(),
        bound.view().into_dyn(),
        &context,
    )
    .map_err(|m| Box::new(CheckFailure::Mismatch(m)))
}

/// Row-wise log-softmax vs the f64 reference within [`tolerance::log_softmax_rows`].
pub fn check_log_softmax_rows<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "log_softmax_rows";
    let actual = backend
        .log_softmax_rows(x)
        .map_err(backend_error(OP, backend))?;
    let x64 = widen2(x);
    dump::inputs::<T>(OP, &[("x", x64.view().into_dyn())]);
    let context = row_context(&x64);
    let expected = reference::log_softmax_rows(x64.view()).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::log_softmax_rows(x64.view(), &m_t),
        tolerance::log_softmax_rows(x64.view(), &m_64),
    );
    let actual = actual.mapv(Scalar::widen);
    compare::compare(
        &subject(OP, backend),
        actual.view().into_dyn(),
        expected.view().into_dyn(),
        bound.view().into_dyn(),
        &context,
    )
    .map_err(|m| Box::new(CheckFailure::Mismatch(m)))
}

fn pair_context(z: &Array1<f64>, y: &Array1<f64>) -> String {
    format!(
        "logits {}; labels {}",
        format_values(z.iter().copied()),
        format_values(y.iter().copied())
    )
}

/// Mean BCE-with-logits vs the f64 reference within [`tolerance::bce_with_logits_mean`].
pub fn check_bce_with_logits_mean<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
) -> CheckResult {
    const OP: &str = "bce_with_logits_mean";
    let actual = backend
        .bce_with_logits_mean(logits, labels)
        .map_err(backend_error(OP, backend))?;
    let (z, y) = (widen1(logits), widen1(labels));
    dump::inputs::<T>(
        OP,
        &[
            ("logits", z.view().into_dyn()),
            ("labels", y.view().into_dyn()),
        ],
    );
    let expected =
        reference::bce_with_logits_mean(z.view(), y.view()).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::bce_with_logits_mean(z.view(), y.view(), &m_t)
        + tolerance::bce_with_logits_mean(z.view(), y.view(), &m_64);
    let context = pair_context(&z, &y);
    compare::compare(
        &subject(OP, backend),
        ndarray::arr0(actual.widen()).view().into_dyn(),
        ndarray::arr0(expected).view().into_dyn(),
        ndarray::arr0(bound).view().into_dyn(),
        &|_| context.clone(),
    )
    .map_err(|m| Box::new(CheckFailure::Mismatch(m)))
}

/// Gradient of mean BCE-with-logits vs the f64 reference within
/// [`tolerance::bce_with_logits_mean_backward`].
pub fn check_bce_with_logits_mean_backward<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    grad_output: T,
) -> CheckResult {
    const OP: &str = "bce_with_logits_mean_backward";
    let actual = backend
        .bce_with_logits_mean_backward(logits, labels, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (z, y, go) = (widen1(logits), widen1(labels), grad_output.widen());
    dump::inputs::<T>(
        OP,
        &[
            ("logits", z.view().into_dyn()),
            ("labels", y.view().into_dyn()),
            ("grad_output", ndarray::arr0(go).into_dyn().view()),
        ],
    );
    let expected = reference::bce_with_logits_mean_backward(z.view(), y.view(), go)
        .map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::bce_with_logits_mean_backward(z.view(), y.view(), go, &m_t),
        tolerance::bce_with_logits_mean_backward(z.view(), y.view(), go, &m_64),
    );
    let actual = actual.mapv(Scalar::widen);
    compare::compare(
        &subject(OP, backend),
        actual.view().into_dyn(),
        expected.view().into_dyn(),
        bound.view().into_dyn(),
        &|index: &[usize]| {
            let i = index.first().copied().unwrap_or(0);
            format!(
                "z[{i}] = {:e}, y[{i}] = {:e}, grad_output = {go:e}, n = {}",
                z[i],
                y[i],
                z.len()
            )
        },
    )
    .map_err(|m| Box::new(CheckFailure::Mismatch(m)))
}

/// Compare a backend result with the f64 reference within `bound` (per element).
fn agree<T: Scalar>(
    op: &str,
    backend: &impl Backend<T>,
    actual: Array2<T>,
    expected: Array2<f64>,
    bound: Array2<f64>,
    context: &dyn Fn(&[usize]) -> String,
) -> CheckResult {
    let actual = actual.mapv(Scalar::widen);
    compare::compare(
        &subject(op, backend),
        actual.view().into_dyn(),
        expected.view().into_dyn(),
        bound.view().into_dyn(),
        context,
    )
    .map_err(|m| Box::new(CheckFailure::Mismatch(m)))
}

/// The inputs of an elementwise op at one index, formatted for a mismatch report.
fn element_context<'a>(
    inputs: Vec<(&'static str, &'a Array2<f64>)>,
) -> impl Fn(&[usize]) -> String + 'a {
    move |index: &[usize]| {
        let (Some(&i), Some(&j)) = (index.first(), index.get(1)) else {
            return String::new();
        };
        inputs
            .iter()
            .filter_map(|(name, a)| a.get((i, j)).map(|v| format!("{name}[{i}, {j}] = {v:e}")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Per-element bound `f(model, x)` for `T` plus that for f64 (THEORY.md E4).
fn pointwise_bound<T: Scalar>(x: &Array2<f64>, f: impl Fn(&ArithModel, f64) -> f64) -> Array2<f64> {
    let (m_t, m_64) = models::<T>();
    x.mapv(|v| f(&m_t, v) + f(&m_64, v))
}

/// Per-element bound `f(model, x, g)` for `T` plus that for f64.
fn pointwise_bound2<T: Scalar>(
    x: &Array2<f64>,
    g: &Array2<f64>,
    f: impl Fn(&ArithModel, f64, f64) -> f64,
) -> Array2<f64> {
    let (m_t, m_64) = models::<T>();
    let mut out = Array2::zeros(x.dim());
    ndarray::Zip::from(&mut out)
        .and(x)
        .and(g)
        .for_each(|o, &v, &w| *o = f(&m_t, v, w) + f(&m_64, v, w));
    out
}

/// Matrix product vs the f64 reference within [`tolerance::matmul`] (`γ_k·|A||B|`, both sides).
pub fn check_matmul<T: Scalar>(
    backend: &impl Backend<T>,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "matmul";
    let actual = backend.matmul(a, b).map_err(backend_error(OP, backend))?;
    let (a64, b64) = (widen2(a), widen2(b));
    dump::inputs::<T>(
        OP,
        &[("a", a64.view().into_dyn()), ("b", b64.view().into_dyn())],
    );
    let expected = reference::matmul(a64.view(), b64.view()).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::matmul(a64.view(), b64.view(), &m_t),
        tolerance::matmul(a64.view(), b64.view(), &m_64),
    );
    let context = |index: &[usize]| {
        let (i, j) = (
            index.first().copied().unwrap_or(0),
            index.get(1).copied().unwrap_or(0),
        );
        format!(
            "a [{}, {}], b [{}, {}]; row a[{i}] = {}; column b[:, {j}] = {}",
            a64.nrows(),
            a64.ncols(),
            b64.nrows(),
            b64.ncols(),
            format_values(
                a64.row(i.min(a64.nrows().saturating_sub(1)))
                    .iter()
                    .copied()
            ),
            format_values(
                b64.column(j.min(b64.ncols().saturating_sub(1)))
                    .iter()
                    .copied()
            ),
        )
    };
    agree(OP, backend, actual, expected, bound, &context)
}

/// ReLU vs the f64 reference: exact (bound 0; NaN must stay NaN).
pub fn check_relu<T: Scalar>(backend: &impl Backend<T>, x: ArrayView2<'_, T>) -> CheckResult {
    const OP: &str = "relu";
    let actual = backend.relu(x).map_err(backend_error(OP, backend))?;
    let x64 = widen2(x);
    dump::inputs::<T>(OP, &[("x", x64.view().into_dyn())]);
    let expected = reference::relu(x64.view());
    let bound = Array2::zeros(x64.dim());
    let context = element_context(vec![("x", &x64)]);
    agree(OP, backend, actual, expected, bound, &context)
}

/// ReLU VJP (from the input, derivative 0 at 0) vs the f64 reference: exact (bound 0).
pub fn check_relu_backward<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "relu_backward";
    let actual = backend
        .relu_backward(x, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (x64, g64) = (widen2(x), widen2(grad_output));
    dump::inputs::<T>(
        OP,
        &[
            ("x", x64.view().into_dyn()),
            ("grad_output", g64.view().into_dyn()),
        ],
    );
    let expected = reference::relu_backward(x64.view(), g64.view()).map_err(reference_error(OP))?;
    let bound = Array2::zeros(x64.dim());
    let context = element_context(vec![("x", &x64), ("g", &g64)]);
    agree(OP, backend, actual, expected, bound, &context)
}

/// Leaky ReLU vs the f64 reference within [`tolerance::leaky_relu`] (both sides).
pub fn check_leaky_relu<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    slope: T,
) -> CheckResult {
    const OP: &str = "leaky_relu";
    let actual = backend
        .leaky_relu(x, slope)
        .map_err(backend_error(OP, backend))?;
    let (x64, s64) = (widen2(x), slope.widen());
    dump::inputs::<T>(
        OP,
        &[
            ("x", x64.view().into_dyn()),
            ("slope", ndarray::arr0(s64).into_dyn().view()),
        ],
    );
    let expected = reference::leaky_relu(x64.view(), s64);
    let bound = pointwise_bound::<T>(&x64, |m, v| tolerance::leaky_relu(v, s64, m));
    let context = element_context(vec![("x", &x64)]);
    agree(OP, backend, actual, expected, bound, &|i: &[usize]| {
        format!("{}, slope = {s64:e}", context(i))
    })
}

/// Leaky ReLU VJP vs the f64 reference within [`tolerance::leaky_relu_backward`].
pub fn check_leaky_relu_backward<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
    slope: T,
) -> CheckResult {
    const OP: &str = "leaky_relu_backward";
    let actual = backend
        .leaky_relu_backward(x, grad_output, slope)
        .map_err(backend_error(OP, backend))?;
    let (x64, g64, s64) = (widen2(x), widen2(grad_output), slope.widen());
    dump::inputs::<T>(
        OP,
        &[
            ("x", x64.view().into_dyn()),
            ("grad_output", g64.view().into_dyn()),
            ("slope", ndarray::arr0(s64).into_dyn().view()),
        ],
    );
    let expected =
        reference::leaky_relu_backward(x64.view(), g64.view(), s64).map_err(reference_error(OP))?;
    let bound = pointwise_bound2::<T>(&x64, &g64, |m, v, g| {
        tolerance::leaky_relu_backward(v, g, s64, m)
    });
    let context = element_context(vec![("x", &x64), ("g", &g64)]);
    agree(OP, backend, actual, expected, bound, &|i: &[usize]| {
        format!("{}, slope = {s64:e}", context(i))
    })
}

/// Sigmoid vs the f64 reference within [`tolerance::sigmoid`] (both sides).
pub fn check_sigmoid<T: Scalar>(backend: &impl Backend<T>, x: ArrayView2<'_, T>) -> CheckResult {
    const OP: &str = "sigmoid";
    let actual = backend.sigmoid(x).map_err(backend_error(OP, backend))?;
    let x64 = widen2(x);
    dump::inputs::<T>(OP, &[("x", x64.view().into_dyn())]);
    let expected = reference::sigmoid_array(x64.view());
    let bound = pointwise_bound::<T>(&x64, |m, v| tolerance::sigmoid(v, m));
    let context = element_context(vec![("x", &x64)]);
    agree(OP, backend, actual, expected, bound, &context)
}

/// Sigmoid VJP (from the output `y`) vs the f64 reference within
/// [`tolerance::sigmoid_backward`].
pub fn check_sigmoid_backward<T: Scalar>(
    backend: &impl Backend<T>,
    y: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "sigmoid_backward";
    let actual = backend
        .sigmoid_backward(y, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (y64, g64) = (widen2(y), widen2(grad_output));
    dump::inputs::<T>(
        OP,
        &[
            ("y", y64.view().into_dyn()),
            ("grad_output", g64.view().into_dyn()),
        ],
    );
    let expected =
        reference::sigmoid_backward(y64.view(), g64.view()).map_err(reference_error(OP))?;
    let bound = pointwise_bound2::<T>(&y64, &g64, |m, y, g| tolerance::sigmoid_backward(y, g, m));
    let context = element_context(vec![("y", &y64), ("g", &g64)]);
    agree(OP, backend, actual, expected, bound, &context)
}

/// tanh vs the f64 reference within [`tolerance::tanh`] (both sides).
pub fn check_tanh<T: Scalar>(backend: &impl Backend<T>, x: ArrayView2<'_, T>) -> CheckResult {
    const OP: &str = "tanh";
    let actual = backend.tanh(x).map_err(backend_error(OP, backend))?;
    let x64 = widen2(x);
    dump::inputs::<T>(OP, &[("x", x64.view().into_dyn())]);
    let expected = reference::tanh(x64.view());
    let bound = pointwise_bound::<T>(&x64, |m, v| tolerance::tanh(v, m));
    let context = element_context(vec![("x", &x64)]);
    agree(OP, backend, actual, expected, bound, &context)
}

/// tanh VJP (from the output `y`) vs the f64 reference within [`tolerance::tanh_backward`].
pub fn check_tanh_backward<T: Scalar>(
    backend: &impl Backend<T>,
    y: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "tanh_backward";
    let actual = backend
        .tanh_backward(y, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (y64, g64) = (widen2(y), widen2(grad_output));
    dump::inputs::<T>(
        OP,
        &[
            ("y", y64.view().into_dyn()),
            ("grad_output", g64.view().into_dyn()),
        ],
    );
    let expected = reference::tanh_backward(y64.view(), g64.view()).map_err(reference_error(OP))?;
    let bound = pointwise_bound2::<T>(&y64, &g64, |m, y, g| tolerance::tanh_backward(y, g, m));
    let context = element_context(vec![("y", &y64), ("g", &g64)]);
    agree(OP, backend, actual, expected, bound, &context)
}

/// GELU (erf form) vs the f64 reference within [`tolerance::gelu`] (both sides).
pub fn check_gelu<T: Scalar>(backend: &impl Backend<T>, x: ArrayView2<'_, T>) -> CheckResult {
    const OP: &str = "gelu";
    let actual = backend.gelu(x).map_err(backend_error(OP, backend))?;
    let x64 = widen2(x);
    dump::inputs::<T>(OP, &[("x", x64.view().into_dyn())]);
    let expected = reference::gelu(x64.view());
    let bound = pointwise_bound::<T>(&x64, |m, v| tolerance::gelu(v, m));
    let context = element_context(vec![("x", &x64)]);
    agree(OP, backend, actual, expected, bound, &context)
}

/// GELU VJP (from the input) vs the f64 reference within [`tolerance::gelu_backward`].
pub fn check_gelu_backward<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "gelu_backward";
    let actual = backend
        .gelu_backward(x, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (x64, g64) = (widen2(x), widen2(grad_output));
    dump::inputs::<T>(
        OP,
        &[
            ("x", x64.view().into_dyn()),
            ("grad_output", g64.view().into_dyn()),
        ],
    );
    let expected = reference::gelu_backward(x64.view(), g64.view()).map_err(reference_error(OP))?;
    let bound = pointwise_bound2::<T>(&x64, &g64, |m, x, g| tolerance::gelu_backward(x, g, m));
    let context = element_context(vec![("x", &x64), ("g", &g64)]);
    agree(OP, backend, actual, expected, bound, &context)
}

/// Row broadcast add vs the f64 reference within [`tolerance::add_rows`] (both sides).
pub fn check_add_rows<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    b: ArrayView1<'_, T>,
) -> CheckResult {
    const OP: &str = "add_rows";
    let actual = backend.add_rows(x, b).map_err(backend_error(OP, backend))?;
    let (x64, b64) = (widen2(x), widen1(b));
    dump::inputs::<T>(
        OP,
        &[("x", x64.view().into_dyn()), ("b", b64.view().into_dyn())],
    );
    let expected = reference::add_rows(x64.view(), b64.view()).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::add_rows(x64.view(), b64.view(), &m_t),
        tolerance::add_rows(x64.view(), b64.view(), &m_64),
    );
    let context = |index: &[usize]| {
        let (i, j) = (
            index.first().copied().unwrap_or(0),
            index.get(1).copied().unwrap_or(0),
        );
        match (x64.get((i, j)), b64.get(j)) {
            (Some(x), Some(b)) => format!("x[{i}, {j}] = {x:e}, b[{j}] = {b:e}"),
            _ => String::new(),
        }
    };
    agree(OP, backend, actual, expected, bound, &context)
}

/// `eps` as the backend sees it: rounded to `T` (then widened exactly), so the f64 reference
/// normalises with the same `eps`. Errors as the reference does (`InvalidParameter`).
fn eps_in<T: Scalar>(op: &'static str, eps: f64) -> Result<f64, Error> {
    reference::layer_norm_eps::<T>(op, eps).map(Scalar::widen)
}

/// LayerNorm vs the f64 reference (same `eps` rounded to `T`) within [`tolerance::layer_norm`]
/// for `T` plus that for f64.
pub fn check_layer_norm<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    gamma: ArrayView1<'_, T>,
    beta: ArrayView1<'_, T>,
    eps: f64,
) -> CheckResult {
    const OP: &str = "layer_norm";
    let actual = backend
        .layer_norm(x, gamma, beta, eps)
        .map_err(backend_error(OP, backend))?;
    let eps = eps_in::<T>(OP, eps).map_err(reference_error(OP))?;
    let (x64, g64, b64) = (widen2(x), widen1(gamma), widen1(beta));
    dump::inputs::<T>(
        OP,
        &[
            ("x", x64.view().into_dyn()),
            ("gamma", g64.view().into_dyn()),
            ("beta", b64.view().into_dyn()),
        ],
    );
    let expected = reference::layer_norm(x64.view(), g64.view(), b64.view(), eps)
        .map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::layer_norm(x64.view(), g64.view(), b64.view(), eps, &m_t),
        tolerance::layer_norm(x64.view(), g64.view(), b64.view(), eps, &m_64),
    );
    let rows = row_context(&x64);
    agree(
        OP,
        backend,
        actual,
        expected,
        bound,
        &|index: &[usize]| format!("{}; eps = {eps:e}", rows(index)),
    )
}

/// The three gradients of [`check_layer_norm_backward`], each as its own [`Agreement`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerNormBackwardAgreement {
    /// `∂L/∂x`.
    pub grad_x: Agreement,
    /// `∂L/∂γ`.
    pub grad_gamma: Agreement,
    /// `∂L/∂β`.
    pub grad_beta: Agreement,
}

/// LayerNorm VJP vs the f64 reference within [`tolerance::layer_norm_backward`] (both sides),
/// for `grad_x`, `grad_gamma` and `grad_beta`.
pub fn check_layer_norm_backward<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    gamma: ArrayView1<'_, T>,
    beta: ArrayView1<'_, T>,
    eps: f64,
    grad_output: ArrayView2<'_, T>,
) -> Result<LayerNormBackwardAgreement, Box<CheckFailure>> {
    const OP: &str = "layer_norm_backward";
    let (grad_x, grad_gamma, grad_beta) = backend
        .layer_norm_backward(x, gamma, beta, eps, grad_output)
        .map_err(backend_error(OP, backend))?;
    let eps = eps_in::<T>(OP, eps).map_err(reference_error(OP))?;
    let (x64, g64, b64, go64) = (widen2(x), widen1(gamma), widen1(beta), widen2(grad_output));
    dump::inputs::<T>(
        OP,
        &[
            ("x", x64.view().into_dyn()),
            ("gamma", g64.view().into_dyn()),
            ("beta", b64.view().into_dyn()),
            ("grad_output", go64.view().into_dyn()),
        ],
    );
    let (ex, eg, eb) =
        reference::layer_norm_backward(x64.view(), g64.view(), b64.view(), eps, go64.view())
            .map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let (bx_t, bg_t, bb_t) =
        tolerance::layer_norm_backward(x64.view(), g64.view(), eps, go64.view(), &m_t);
    let (bx_64, bg_64, bb_64) =
        tolerance::layer_norm_backward(x64.view(), g64.view(), eps, go64.view(), &m_64);
    let rows = row_context(&x64);
    let grad_x = agree(
        "layer_norm_backward (grad_x)",
        backend,
        grad_x,
        ex,
        bx_t + bx_64,
        &|index: &[usize]| format!("{}; eps = {eps:e}", rows(index)),
    )?;
    let columns = |index: &[usize]| {
        let j = index.first().copied().unwrap_or(0);
        format!(
            "column {j} of x [{}, {}]; eps = {eps:e}",
            x64.nrows(),
            x64.ncols()
        )
    };
    let vector = |name: &str, actual: Array1<T>, expected: Array1<f64>, bound: Array1<f64>| {
        let actual = actual.mapv(Scalar::widen);
        compare::compare(
            &subject(name, backend),
            actual.view().into_dyn(),
            expected.view().into_dyn(),
            bound.view().into_dyn(),
            &columns,
        )
        .map_err(|m| Box::new(CheckFailure::Mismatch(m)))
    };
    Ok(LayerNormBackwardAgreement {
        grad_x,
        grad_gamma: vector(
            "layer_norm_backward (grad_gamma)",
            grad_gamma,
            eg,
            bg_t + bg_64,
        )?,
        grad_beta: vector(
            "layer_norm_backward (grad_beta)",
            grad_beta,
            eb,
            bb_t + bb_64,
        )?,
    })
}

/// [`check_add_rows`] as a proptest property.
pub fn add_rows_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    b: ArrayView1<'_, T>,
) -> TestCaseResult {
    as_property(check_add_rows(backend, x, b))
}

/// [`check_layer_norm`] as a proptest property.
pub fn layer_norm_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    gamma: ArrayView1<'_, T>,
    beta: ArrayView1<'_, T>,
    eps: f64,
) -> TestCaseResult {
    as_property(check_layer_norm(backend, x, gamma, beta, eps))
}

/// [`check_layer_norm_backward`] as a proptest property.
pub fn layer_norm_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    gamma: ArrayView1<'_, T>,
    beta: ArrayView1<'_, T>,
    eps: f64,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    check_layer_norm_backward(backend, x, gamma, beta, eps, grad_output)
        .map(drop)
        .map_err(|f| TestCaseError::fail(f.to_string()))
}

/// A `check_*` result as a proptest result.
fn as_property(result: CheckResult) -> TestCaseResult {
    result
        .map(drop)
        .map_err(|f| TestCaseError::fail(f.to_string()))
}

/// [`check_matmul`] as a proptest property.
pub fn matmul_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_matmul(backend, a, b))
}

/// [`check_relu`] as a proptest property.
pub fn relu_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_relu(backend, x))
}

/// [`check_relu_backward`] as a proptest property.
pub fn relu_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_relu_backward(backend, x, grad_output))
}

/// [`check_leaky_relu`] as a proptest property.
pub fn leaky_relu_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    slope: T,
) -> TestCaseResult {
    as_property(check_leaky_relu(backend, x, slope))
}

/// [`check_leaky_relu_backward`] as a proptest property.
pub fn leaky_relu_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
    slope: T,
) -> TestCaseResult {
    as_property(check_leaky_relu_backward(backend, x, grad_output, slope))
}

/// [`check_sigmoid`] as a proptest property.
pub fn sigmoid_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_sigmoid(backend, x))
}

/// [`check_sigmoid_backward`] as a proptest property.
pub fn sigmoid_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    y: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_sigmoid_backward(backend, y, grad_output))
}

/// [`check_tanh`] as a proptest property.
pub fn tanh_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_tanh(backend, x))
}

/// [`check_tanh_backward`] as a proptest property.
pub fn tanh_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    y: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_tanh_backward(backend, y, grad_output))
}

/// [`check_gelu`] as a proptest property.
pub fn gelu_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_gelu(backend, x))
}

/// [`check_gelu_backward`] as a proptest property.
pub fn gelu_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_gelu_backward(backend, x, grad_output))
}

/// [`check_log_sum_exp_rows`] as a proptest property.
pub fn log_sum_exp_rows_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_log_sum_exp_rows(backend, x))
}

/// [`check_softmax_rows`] as a proptest property.
pub fn softmax_rows_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_softmax_rows(backend, x))
}

/// [`check_log_softmax_rows`] as a proptest property.
pub fn log_softmax_rows_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_log_softmax_rows(backend, x))
}

/// [`check_bce_with_logits_mean`] as a proptest property.
pub fn bce_with_logits_mean_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
) -> TestCaseResult {
    as_property(check_bce_with_logits_mean(backend, logits, labels))
}

/// [`check_bce_with_logits_mean_backward`] as a proptest property.
pub fn bce_with_logits_mean_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    grad_output: T,
) -> TestCaseResult {
    as_property(check_bce_with_logits_mean_backward(
        backend,
        logits,
        labels,
        grad_output,
    ))
}

/// Same error on invalid input: a backend must return the same error as the reference (same
/// variant and fields) for empty rows, zero-length losses and length mismatches, for every op.
pub fn errors_match_reference<T: Scalar>(
    backend: &impl Backend<T>,
) -> Result<usize, Box<CheckFailure>> {
    let reference = reference::Reference;
    let mut checked = 0;
    let mut parity = |op: &'static str,
                      case: &str,
                      expected: Result<String, Error>,
                      actual: Result<String, Error>| {
        checked += 1;
        // Unsupported ops are reported as skipped elsewhere, not as parity failures.
        if matches!(&actual, Err(e) if e.is_unsupported()) {
            return Ok(());
        }
        let same = match (&expected, &actual) {
            (Err(e), Err(a)) => e == a,
            (Ok(_), Ok(_)) => true,
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(Box::new(CheckFailure::ErrorParity {
                op,
                case: case.to_string(),
                expected: format!("{expected:?}"),
                actual: format!("{actual:?}"),
            }))
        }
    };
    let empty_rows = Array2::<T>::zeros((3, 0));
    let no_rows = Array2::<T>::zeros((0, 0));
    for (case, x) in [
        ("rows of length 0", &empty_rows),
        ("shape [0, 0]", &no_rows),
    ] {
        let ok = |r: Result<Array1<T>, Error>| r.map(|a| format!("{a:?}"));
        let ok2 = |r: Result<Array2<T>, Error>| r.map(|a| format!("{a:?}"));
        parity(
            "log_sum_exp_rows",
            case,
            ok(Backend::<T>::log_sum_exp_rows(&reference, x.view())),
            ok(backend.log_sum_exp_rows(x.view())),
        )?;
        parity(
            "softmax_rows",
            case,
            ok2(Backend::<T>::softmax_rows(&reference, x.view())),
            ok2(backend.softmax_rows(x.view())),
        )?;
        parity(
            "log_softmax_rows",
            case,
            ok2(Backend::<T>::log_softmax_rows(&reference, x.view())),
            ok2(backend.log_softmax_rows(x.view())),
        )?;
    }
    let zero_rows = Array2::<T>::zeros((0, 5));
    parity(
        "softmax_rows",
        "shape [0, 5]",
        Backend::<T>::softmax_rows(&reference, zero_rows.view()).map(|a| format!("{:?}", a.dim())),
        backend
            .softmax_rows(zero_rows.view())
            .map(|a| format!("{:?}", a.dim())),
    )?;
    let one = Array1::<T>::zeros(1);
    let two = Array1::<T>::zeros(2);
    let none = Array1::<T>::zeros(0);
    for (case, z, y) in [("lengths 1 vs 2", &one, &two), ("length 0", &none, &none)] {
        parity(
            "bce_with_logits_mean",
            case,
            Backend::<T>::bce_with_logits_mean(&reference, z.view(), y.view())
                .map(|v| format!("{v:?}")),
            backend
                .bce_with_logits_mean(z.view(), y.view())
                .map(|v| format!("{v:?}")),
        )?;
        parity(
            "bce_with_logits_mean_backward",
            case,
            Backend::<T>::bce_with_logits_mean_backward(&reference, z.view(), y.view(), T::one())
                .map(|v| format!("{v:?}")),
            backend
                .bce_with_logits_mean_backward(z.view(), y.view(), T::one())
                .map(|v| format!("{v:?}")),
        )?;
    }
    let show = |r: Result<Array2<T>, Error>| r.map(|a| format!("{a:?}"));
    let x23 = Array2::<T>::zeros((2, 3));
    let x32 = Array2::<T>::zeros((3, 2));
    let x20 = Array2::<T>::zeros((2, 0));
    let x03 = Array2::<T>::zeros((0, 3));
    for (case, a, b) in [
        ("[2, 3]·[2, 3]", &x23, &x23),
        ("[2, 0]·[0, 3] (k = 0: zeros)", &x20, &x03),
        ("[0, 3]·[3, 2]", &x03, &x32),
    ] {
        parity(
            "matmul",
            case,
            show(Backend::<T>::matmul(&reference, a.view(), b.view())),
            show(backend.matmul(a.view(), b.view())),
        )?;
    }
    let slope = T::narrow(0.01);
    for (case, x, g) in [
        ("grad_output [3, 2] for x [2, 3]", &x23, &x32),
        ("shape [0, 3]", &x03, &x03),
    ] {
        type Vjp<'a, T> = &'a dyn Fn(&dyn Backend<T>) -> Result<Array2<T>, Error>;
        let (x, g) = (x.view(), g.view());
        let vjps: [(&'static str, Vjp<'_, T>); 5] = [
            ("relu_backward", &|b| b.relu_backward(x, g)),
            ("leaky_relu_backward", &|b| {
                b.leaky_relu_backward(x, g, slope)
            }),
            ("sigmoid_backward", &|b| b.sigmoid_backward(x, g)),
            ("tanh_backward", &|b| b.tanh_backward(x, g)),
            ("gelu_backward", &|b| b.gelu_backward(x, g)),
        ];
        for (op, vjp) in vjps {
            parity(op, case, show(vjp(&reference)), show(vjp(backend)))?;
        }
    }
    let forwards: [(&'static str, Vjp1<'_, T>); 5] = [
        ("relu", &|b, x| b.relu(x)),
        ("leaky_relu", &|b, x| b.leaky_relu(x, slope)),
        ("sigmoid", &|b, x| b.sigmoid(x)),
        ("tanh", &|b, x| b.tanh(x)),
        ("gelu", &|b, x| b.gelu(x)),
    ];
    for (op, forward) in forwards {
        parity(
            op,
            "shape [0, 3]",
            show(forward(&reference, x03.view())),
            show(forward(backend, x03.view())),
        )?;
    }
    let b2 = Array1::<T>::zeros(2);
    let b3 = Array1::<T>::zeros(3);
    for (case, x, b) in [
        ("x [2, 3] with b [2]", &x23, &b2),
        ("x [0, 3] with b [3]", &x03, &b3),
    ] {
        parity(
            "add_rows",
            case,
            show(Backend::<T>::add_rows(&reference, x.view(), b.view())),
            show(backend.add_rows(x.view(), b.view())),
        )?;
    }
    let grads = |r: Result<crate::backend::LayerNormGrads<T>, Error>| r.map(|a| format!("{a:?}"));
    for (case, x, gamma, eps, g) in [
        ("gamma [2] for rows of 3", &x23, &b2, 1e-5, &x23),
        ("rows of length 0", &x20, &Array1::<T>::zeros(0), 1e-5, &x20),
        ("eps = 0", &x23, &b3, 0.0, &x23),
        ("eps = 1e-300 (0 in f32)", &x23, &b3, 1e-300, &x23),
        ("eps = NaN", &x23, &b3, f64::NAN, &x23),
        ("zero rows", &x03, &b3, 1e-5, &x03),
        ("grad_output [3, 2] for x [2, 3]", &x23, &b3, 1e-5, &x32),
    ] {
        let (x, gamma, g) = (x.view(), gamma.view(), g.view());
        if g.dim() == x.dim() {
            parity(
                "layer_norm",
                case,
                show(Backend::<T>::layer_norm(&reference, x, gamma, gamma, eps)),
                show(backend.layer_norm(x, gamma, gamma, eps)),
            )?;
        }
        parity(
            "layer_norm_backward",
            case,
            grads(Backend::<T>::layer_norm_backward(
                &reference, x, gamma, gamma, eps, g,
            )),
            grads(backend.layer_norm_backward(x, gamma, gamma, eps, g)),
        )?;
    }
    losses::loss_error_parity(backend, &mut parity)?;
    layers::layer_error_parity(backend, &mut parity)?;
    let mut total = checked;
    total += linalg_errors_match_reference(backend)?;
    total += optim::optim_errors_match_reference(backend)?;
    Ok(total)
}

/// An elementwise forward op called through `dyn Backend` (for the parity table).
type Vjp1<'a, T> = &'a dyn Fn(&dyn Backend<T>, ArrayView2<'_, T>) -> Result<Array2<T>, Error>;

/// Call `op` once on a small valid input; `Err` if the backend reports it unsupported (or fails).
/// Used by the harness to report unsupported ops as skipped, by name.
pub fn probe<T: Scalar>(backend: &impl Backend<T>, op: &str) -> Result<(), Error> {
    let x = Array2::<T>::zeros((1, 2));
    let z = Array1::<T>::zeros(2);
    match op {
        "log_sum_exp_rows" => backend.log_sum_exp_rows(x.view()).map(drop),
        "softmax_rows" => backend.softmax_rows(x.view()).map(drop),
        "log_softmax_rows" => backend.log_softmax_rows(x.view()).map(drop),
        "bce_with_logits_mean" => backend.bce_with_logits_mean(z.view(), z.view()).map(drop),
        "bce_with_logits_mean_backward" => backend
            .bce_with_logits_mean_backward(z.view(), z.view(), T::one())
            .map(drop),
        "matmul" => backend.matmul(x.view(), x.t()).map(drop),
        "relu" => backend.relu(x.view()).map(drop),
        "relu_backward" => backend.relu_backward(x.view(), x.view()).map(drop),
        "leaky_relu" => backend.leaky_relu(x.view(), T::one()).map(drop),
        "leaky_relu_backward" => backend
            .leaky_relu_backward(x.view(), x.view(), T::one())
            .map(drop),
        "sigmoid" => backend.sigmoid(x.view()).map(drop),
        "sigmoid_backward" => backend.sigmoid_backward(x.view(), x.view()).map(drop),
        "tanh" => backend.tanh(x.view()).map(drop),
        "tanh_backward" => backend.tanh_backward(x.view(), x.view()).map(drop),
        "gelu" => backend.gelu(x.view()).map(drop),
        "gelu_backward" => backend.gelu_backward(x.view(), x.view()).map(drop),
        "add_rows" => backend.add_rows(x.view(), z.view()).map(drop),
        "layer_norm" => backend
            .layer_norm(x.view(), z.view(), z.view(), 1e-5)
            .map(drop),
        "layer_norm_backward" => backend
            .layer_norm_backward(x.view(), z.view(), z.view(), 1e-5, x.view())
            .map(drop),
        "matmul_backward" => backend
            .matmul_backward(x.view(), x.t(), Array2::zeros((1, 1)).view())
            .map(drop),
        "batched_matmul" => {
            let a = Array3::<T>::zeros((2, 1, 2));
            let b = Array3::<T>::zeros((2, 2, 3));
            backend.batched_matmul(a.view(), b.view()).map(drop)
        }
        "batched_matmul_backward" => {
            let a = Array3::<T>::zeros((2, 1, 2));
            let b = Array3::<T>::zeros((2, 2, 3));
            let g = Array3::<T>::zeros((2, 1, 3));
            backend
                .batched_matmul_backward(a.view(), b.view(), g.view())
                .map(drop)
        }
        "transpose" => backend.transpose(x.view()).map(drop),
        "add_rows_backward" => backend.add_rows_backward(x.view()).map(drop),
        "mul_rows" => backend.mul_rows(x.view(), z.view()).map(drop),
        "mul_rows_backward" => backend
            .mul_rows_backward(x.view(), z.view(), x.view())
            .map(drop),
        "sum_axis" => backend.sum_axis(x.view(), 0).map(drop),
        "sum_axis_backward" => backend.sum_axis_backward((1, 2), 0, z.view()).map(drop),
        "mean_axis" => backend.mean_axis(x.view(), 1).map(drop),
        "mean_axis_backward" => backend
            .mean_axis_backward((2, 1), 0, Array1::zeros(1).view())
            .map(drop),
        "softmax_rows_backward" => backend.softmax_rows_backward(x.view(), x.view()).map(drop),
        "log_softmax_rows_backward" => backend
            .log_softmax_rows_backward(x.view(), x.view())
            .map(drop),
        "bce_with_logits" => backend
            .bce_with_logits(z.view(), z.view(), Reduction::Sum)
            .map(drop),
        "bce_with_logits_backward" => backend
            .bce_with_logits_backward(z.view(), z.view(), Reduction::Sum, T::one())
            .map(drop),
        "mse" => backend.mse(x.view(), x.view(), Reduction::Mean).map(drop),
        "mse_backward" => backend
            .mse_backward(x.view(), x.view(), Reduction::Mean, T::one())
            .map(drop),
        "cross_entropy" => backend
            .cross_entropy(
                x.view(),
                ndarray::arr1(&[1i64]).view(),
                -100,
                Reduction::Mean,
            )
            .map(drop),
        "cross_entropy_backward" => backend
            .cross_entropy_backward(
                x.view(),
                ndarray::arr1(&[1i64]).view(),
                -100,
                Reduction::Mean,
                T::one(),
            )
            .map(drop),
        "embedding" => backend
            .embedding(x.view(), ndarray::arr1(&[0usize, 0]).view())
            .map(drop),
        "embedding_backward" => backend
            .embedding_backward(1, ndarray::arr1(&[0usize]).view(), x.view())
            .map(drop),
        "dropout" => backend
            .dropout(
                x.view(),
                0.5,
                crate::rng::RandomKey {
                    seed: 1,
                    step: 0,
                    tensor_id: 0,
                },
            )
            .map(drop),
        "dropout_backward" => backend
            .dropout_backward(x.view(), Array2::from_elem((1, 2), true).view(), T::one())
            .map(drop),
        "attention" | "attention_backward" => {
            let q = ndarray::Array4::<T>::zeros((1, 1, 2, 2));
            let mask = Array2::<T>::zeros((1, 2));
            if op == "attention" {
                backend
                    .attention(q.view(), q.view(), q.view(), mask.view())
                    .map(drop)
            } else {
                backend
                    .attention_backward(q.view(), q.view(), q.view(), mask.view(), q.view())
                    .map(drop)
            }
        }
        "std_corrected" => backend.std_corrected(z.view(), 1).map(drop),
        "std_corrected_backward" => backend
            .std_corrected_backward(z.view(), 1, T::one())
            .map(drop),
        "sgd_step" => backend
            .sgd_step(
                &crate::reference::optim::SgdState::default(),
                z.view(),
                z.view(),
                &crate::reference::optim::SgdHyper::plain(0.1),
            )
            .map(drop),
        "adam_step" => backend
            .adam_step(
                &crate::reference::optim::AdamState::zeros(2),
                z.view(),
                z.view(),
                &crate::reference::optim::AdamHyper::new(0.1, 0.9, 0.999, 1e-8),
            )
            .map(drop),
        "clip_grad_norm" => backend.clip_grad_norm(&mut [z.clone()], 1.0).map(drop),
        "clip_grad_value" => backend.clip_grad_value(&mut [z.clone()], 1.0).map(drop),
        "train" => {
            let config = crate::reference::models::mlp::MlpConfig {
                widths: vec![2, 1],
                hidden_activation: crate::reference::models::mlp::Activation::Identity,
                output_activation: crate::reference::models::mlp::Activation::Identity,
                loss: crate::reference::models::mlp::MlpLoss::BceWithLogits,
                seed: 0,
            };
            let task = crate::reference::models::TrainingTask::Mlp {
                model: crate::reference::models::mlp::Mlp::new(config)?,
                batch: crate::reference::models::mlp::MlpBatch {
                    inputs: x.clone(),
                    targets: Array2::zeros((1, 1)),
                },
            };
            backend
                .train(
                    &task,
                    &crate::reference::models::TrainingConfig::sgd(0.1),
                    1,
                )
                .map(drop)
        }
        _ => Err(Error::InvalidParameter {
            op: "probe",
            name: "op",
            value: op.to_string(),
            reason: "not a name in mloracle::backend::OPS".into(),
        }),
    }
}
