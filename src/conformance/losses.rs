//! Conformance of the losses with a reduction (BCE, MSE, cross-entropy), their gradients and
//! the row-op VJPs, against the reference in f64.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewD};
use proptest::test_runner::TestCaseResult;

use super::{
    agree, as_property, backend_error, models, reference_error, row_context, subject, widen1,
    widen2, CheckFailure, CheckResult,
};
use crate::compare::{self, format_values};
use crate::reference::Reduction;
use crate::tolerance::{self, ArithModel};
use crate::{reference, Backend, Error, Scalar};

/// The error-parity reporter of [`super::errors_match_reference`]:
/// `parity(op, case, reference result, backend result)`.
pub(super) type Parity<'a> = dyn FnMut(
        &'static str,
        &str,
        Result<String, Error>,
        Result<String, Error>,
    ) -> Result<(), Box<CheckFailure>>
    + 'a;

/// Compare one scalar result (a reduced loss) within `bound`.
fn agree_scalar<T: Scalar>(
    op: &str,
    backend: &impl Backend<T>,
    actual: T,
    expected: f64,
    bound: f64,
    context: &str,
) -> CheckResult {
    compare::compare(
        &subject(op, backend),
        ndarray::arr0(actual.widen()).view().into_dyn(),
        ndarray::arr0(expected).view().into_dyn(),
        ndarray::arr0(bound).view().into_dyn(),
        &|_| context.to_string(),
    )
    .map_err(|m| Box::new(CheckFailure::Mismatch(m)))
}

/// Compare arrays of any dimension within `bound`.
pub(super) fn agree_dyn<T: Scalar>(
    op: &str,
    backend: &impl Backend<T>,
    actual: ArrayViewD<'_, f64>,
    expected: ArrayViewD<'_, f64>,
    bound: ArrayViewD<'_, f64>,
    context: &dyn Fn(&[usize]) -> String,
) -> CheckResult {
    compare::compare(&subject(op, backend), actual, expected, bound, context)
        .map_err(|m| Box::new(CheckFailure::Mismatch(m)))
}

/// `f(T-model) + f(f64-model)` (THEORY.md E4).
fn both<R: std::ops::Add<Output = R>>(
    f: impl Fn(&ArithModel) -> R,
    models: (ArithModel, ArithModel),
) -> R {
    f(&models.0) + f(&models.1)
}

/// Row-softmax VJP (from the output `y`) vs the f64 reference within
/// [`tolerance::softmax_rows_backward`] (both sides).
pub fn check_softmax_rows_backward<T: Scalar>(
    backend: &impl Backend<T>,
    y: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "softmax_rows_backward";
    let actual = backend
        .softmax_rows_backward(y, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (y64, g64) = (widen2(y), widen2(grad_output));
    let expected =
        reference::softmax_rows_backward(y64.view(), g64.view()).map_err(reference_error(OP))?;
    let bound = both(
        |m| tolerance::softmax_rows_backward(y64.view(), g64.view(), m),
        models::<T>(),
    );
    let context = row_context(&y64);
    agree(OP, backend, actual, expected, bound, &context)
}

/// Row-log-softmax VJP (from the output `y`) vs the f64 reference within
/// [`tolerance::log_softmax_rows_backward`] (both sides).
pub fn check_log_softmax_rows_backward<T: Scalar>(
    backend: &impl Backend<T>,
    y: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "log_softmax_rows_backward";
    let actual = backend
        .log_softmax_rows_backward(y, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (y64, g64) = (widen2(y), widen2(grad_output));
    let expected = reference::log_softmax_rows_backward(y64.view(), g64.view())
        .map_err(reference_error(OP))?;
    let bound = both(
        |m| tolerance::log_softmax_rows_backward(y64.view(), g64.view(), m),
        models::<T>(),
    );
    let context = row_context(&y64);
    agree(OP, backend, actual, expected, bound, &context)
}

fn pair_summary(z: &Array1<f64>, y: &Array1<f64>, reduction: Reduction) -> String {
    format!(
        "{reduction:?}, n = {}; logits {}; labels {}",
        z.len(),
        format_values(z.iter().copied()),
        format_values(y.iter().copied())
    )
}

/// BCE-with-logits with a reduction vs the f64 reference within
/// [`tolerance::bce_with_logits`] (both sides).
pub fn check_bce_with_logits<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    reduction: Reduction,
) -> CheckResult {
    const OP: &str = "bce_with_logits";
    let actual = backend
        .bce_with_logits(logits, labels, reduction)
        .map_err(backend_error(OP, backend))?;
    let (z, y) = (widen1(logits), widen1(labels));
    let expected =
        reference::bce_with_logits(z.view(), y.view(), reduction).map_err(reference_error(OP))?;
    let bound = both(
        |m| tolerance::bce_with_logits(z.view(), y.view(), reduction, m),
        models::<T>(),
    );
    agree_scalar(
        OP,
        backend,
        actual,
        expected,
        bound,
        &pair_summary(&z, &y, reduction),
    )
}

/// Gradient of BCE-with-logits with a reduction vs the f64 reference within
/// [`tolerance::bce_with_logits_backward`] (both sides).
pub fn check_bce_with_logits_backward<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    reduction: Reduction,
    grad_output: T,
) -> CheckResult {
    const OP: &str = "bce_with_logits_backward";
    let actual = backend
        .bce_with_logits_backward(logits, labels, reduction, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (z, y, go) = (widen1(logits), widen1(labels), grad_output.widen());
    let expected = reference::bce_with_logits_backward(z.view(), y.view(), reduction, go)
        .map_err(reference_error(OP))?;
    let bound = both(
        |m| tolerance::bce_with_logits_backward(z.view(), y.view(), reduction, go, m),
        models::<T>(),
    );
    let actual = actual.mapv(Scalar::widen);
    agree_dyn(
        OP,
        backend,
        actual.view().into_dyn(),
        expected.view().into_dyn(),
        bound.view().into_dyn(),
        &|index: &[usize]| {
            let i = index.first().copied().unwrap_or(0);
            format!(
                "z[{i}] = {:e}, y[{i}] = {:e}, grad_output = {go:e}, {reduction:?}, n = {}",
                z.get(i).copied().unwrap_or(f64::NAN),
                y.get(i).copied().unwrap_or(f64::NAN),
                z.len()
            )
        },
    )
}

/// MSE with a reduction vs the f64 reference within [`tolerance::mse_loss`] (both sides).
pub fn check_mse<T: Scalar>(
    backend: &impl Backend<T>,
    prediction: ArrayView2<'_, T>,
    target: ArrayView2<'_, T>,
    reduction: Reduction,
) -> CheckResult {
    const OP: &str = "mse";
    let actual = backend
        .mse(prediction, target, reduction)
        .map_err(backend_error(OP, backend))?;
    let (p, t) = (widen2(prediction), widen2(target));
    let expected = reference::mse(p.view(), t.view(), reduction).map_err(reference_error(OP))?;
    let bound = both(
        |m| tolerance::mse_loss(p.len(), expected, reduction, m),
        models::<T>(),
    );
    let context = format!(
        "{reduction:?}, shape {:?}; prediction {}; target {}",
        p.dim(),
        format_values(p.iter().copied()),
        format_values(t.iter().copied())
    );
    agree_scalar(OP, backend, actual, expected, bound, &context)
}

/// MSE gradient vs the f64 reference within [`tolerance::mse_backward`] (both sides).
pub fn check_mse_backward<T: Scalar>(
    backend: &impl Backend<T>,
    prediction: ArrayView2<'_, T>,
    target: ArrayView2<'_, T>,
    reduction: Reduction,
    grad_output: T,
) -> CheckResult {
    const OP: &str = "mse_backward";
    let actual = backend
        .mse_backward(prediction, target, reduction, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (p, t, go) = (widen2(prediction), widen2(target), grad_output.widen());
    let expected =
        reference::mse_backward(p.view(), t.view(), reduction, go).map_err(reference_error(OP))?;
    let bound = both(
        |m| tolerance::mse_backward(p.view(), t.view(), reduction, go, m),
        models::<T>(),
    );
    let context = super::element_context(vec![("prediction", &p), ("target", &t)]);
    agree(OP, backend, actual, expected, bound, &context)
}

fn targets_summary(
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
) -> String {
    format!(
        "{reduction:?}, ignore_index {ignore_index}, targets {:?}",
        targets.iter().take(16).collect::<Vec<_>>()
    )
}

/// Cross-entropy with class targets vs the f64 reference within [`tolerance::cross_entropy`]
/// (both sides).
pub fn check_cross_entropy<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
) -> CheckResult {
    const OP: &str = "cross_entropy";
    let actual = backend
        .cross_entropy(logits, targets, ignore_index, reduction)
        .map_err(backend_error(OP, backend))?;
    let z = widen2(logits);
    let expected = reference::cross_entropy(z.view(), targets, ignore_index, reduction)
        .map_err(reference_error(OP))?;
    let bound = both(
        |m| tolerance::cross_entropy(z.view(), targets, ignore_index, reduction, m),
        models::<T>(),
    );
    let context = format!(
        "logits {:?}; {}",
        z.dim(),
        targets_summary(targets, ignore_index, reduction)
    );
    agree_scalar(OP, backend, actual, expected, bound, &context)
}

/// Cross-entropy gradient vs the f64 reference within [`tolerance::cross_entropy_backward`]
/// (both sides); ignored rows must be exactly 0.
pub fn check_cross_entropy_backward<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
    grad_output: T,
) -> CheckResult {
    const OP: &str = "cross_entropy_backward";
    let actual = backend
        .cross_entropy_backward(logits, targets, ignore_index, reduction, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (z, go) = (widen2(logits), grad_output.widen());
    let expected =
        reference::cross_entropy_backward(z.view(), targets, ignore_index, reduction, go)
            .map_err(reference_error(OP))?;
    let bound = both(
        |m| tolerance::cross_entropy_backward(z.view(), targets, ignore_index, reduction, go, m),
        models::<T>(),
    );
    let rows = row_context(&z);
    let summary = targets_summary(targets, ignore_index, reduction);
    agree(
        OP,
        backend,
        actual,
        expected,
        bound,
        &|index: &[usize]| {
            let r = index.first().copied().unwrap_or(0);
            format!("{}; target {:?}; {summary}", rows(index), targets.get(r))
        },
    )
}

/// THEORY.md A4 on a backend in f32: two-class rows with margin `m ∈ [16.7, 80]` (past
/// `24 ln 2 = 16.635532`) give a cross-entropy of **exactly 0** (the `log` form: `1 + e^{−m}`
/// rounds to 1), as the f32 reference does, while the other-class gradient is positive.
/// `margins` are the rows' margins; `scale` shifts both logits. Only meaningful in f32 (in f64
/// the threshold is `53 ln 2`): other types return `Ok` without a check.
pub fn cross_entropy_is_exactly_zero_past_24_ln_2<T: Scalar>(
    backend: &impl Backend<T>,
    margins: &[f64],
    shift: f64,
) -> TestCaseResult {
    if T::NAME != "f32" || margins.is_empty() {
        return Ok(());
    }
    let logits = Array2::from_shape_fn((margins.len(), 2), |(i, j)| {
        T::narrow(if j == 0 { shift + margins[i] } else { shift })
    });
    let targets = Array1::<i64>::zeros(margins.len());
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let device = backend
            .cross_entropy(logits.view(), targets.view(), -100, reduction)
            .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
        let own = reference::cross_entropy(logits.view(), targets.view(), -100, reduction)
            .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
        proptest::prop_assert!(
            own.widen() == 0.0 && device.widen() == 0.0,
            "{}<f32>: cross-entropy {device:e} (reference<f32> {own:e}), {reduction:?}, margins \
             {margins:?} (≥ 24 ln 2, shift {shift}): expected exactly 0 (THEORY.md A4)",
            backend.name()
        );
    }
    let grad = backend
        .cross_entropy_backward(
            logits.view(),
            targets.view(),
            -100,
            Reduction::Sum,
            T::one(),
        )
        .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
    for (i, &m) in margins.iter().enumerate() {
        let other = grad[[i, 1]].widen();
        // Positive until e^{-m} underflows (below 2^-126 at m ≈ 87.3, flushed on some devices).
        proptest::prop_assert!(
            other > 0.0 || m > 87.0,
            "{}<f32>: loss 0 at margin {m} but the other-class gradient is {other:e}, expected \
             e^-m/(1+e^-m) > 0 (THEORY.md A4: zero loss is not zero gradient)",
            backend.name()
        );
    }
    Ok(())
}

/// Error parity of the loss ops on invalid input (shape mismatches, empty means, bad targets),
/// reported through `parity(op, case, expected, actual)`.
pub(super) fn loss_error_parity<T: Scalar>(
    backend: &impl Backend<T>,
    parity: &mut Parity<'_>,
) -> Result<(), Box<CheckFailure>> {
    let reference = reference::Reference;
    let show = |r: Result<T, Error>| r.map(|v| format!("{v:?}"));
    let show1 = |r: Result<Array1<T>, Error>| r.map(|v| format!("{v:?}"));
    let show2 = |r: Result<Array2<T>, Error>| r.map(|v| format!("{v:?}"));
    let (one, two, none) = (
        Array1::<T>::zeros(1),
        Array1::<T>::zeros(2),
        Array1::<T>::zeros(0),
    );
    for reduction in [Reduction::Mean, Reduction::Sum] {
        for (case, z, y) in [("lengths 1 vs 2", &one, &two), ("length 0", &none, &none)] {
            let case = format!("{case}, {reduction:?}");
            parity(
                "bce_with_logits",
                &case,
                show(Backend::<T>::bce_with_logits(
                    &reference,
                    z.view(),
                    y.view(),
                    reduction,
                )),
                show(backend.bce_with_logits(z.view(), y.view(), reduction)),
            )?;
            parity(
                "bce_with_logits_backward",
                &case,
                show1(Backend::<T>::bce_with_logits_backward(
                    &reference,
                    z.view(),
                    y.view(),
                    reduction,
                    T::one(),
                )),
                show1(backend.bce_with_logits_backward(z.view(), y.view(), reduction, T::one())),
            )?;
        }
        let (x23, x32, x03) = (
            Array2::<T>::zeros((2, 3)),
            Array2::<T>::zeros((3, 2)),
            Array2::<T>::zeros((0, 3)),
        );
        for (case, p, t) in [
            ("[2, 3] vs [3, 2]", &x23, &x32),
            ("shape [0, 3]", &x03, &x03),
        ] {
            let case = format!("{case}, {reduction:?}");
            parity(
                "mse",
                &case,
                show(Backend::<T>::mse(&reference, p.view(), t.view(), reduction)),
                show(backend.mse(p.view(), t.view(), reduction)),
            )?;
            parity(
                "mse_backward",
                &case,
                show2(Backend::<T>::mse_backward(
                    &reference,
                    p.view(),
                    t.view(),
                    reduction,
                    T::one(),
                )),
                show2(backend.mse_backward(p.view(), t.view(), reduction, T::one())),
            )?;
        }
        let x20 = Array2::<T>::zeros((2, 0));
        for (case, x, targets) in [
            ("target 3 of 3 classes", &x23, vec![0i64, 3]),
            ("target -1 (ignore_index -100)", &x23, vec![-1, 0]),
            ("one target for two rows", &x23, vec![0]),
            ("rows of length 0", &x20, vec![0, 0]),
            ("zero rows", &x03, vec![]),
            ("every row ignored", &x23, vec![-100, -100]),
        ] {
            let case = format!("{case}, {reduction:?}");
            let targets = Array1::from(targets);
            parity(
                "cross_entropy",
                &case,
                show(Backend::<T>::cross_entropy(
                    &reference,
                    x.view(),
                    targets.view(),
                    -100,
                    reduction,
                )),
                show(backend.cross_entropy(x.view(), targets.view(), -100, reduction)),
            )?;
            parity(
                "cross_entropy_backward",
                &case,
                show2(Backend::<T>::cross_entropy_backward(
                    &reference,
                    x.view(),
                    targets.view(),
                    -100,
                    reduction,
                    T::one(),
                )),
                show2(backend.cross_entropy_backward(
                    x.view(),
                    targets.view(),
                    -100,
                    reduction,
                    T::one(),
                )),
            )?;
        }
    }
    let (x23, x32, x20) = (
        Array2::<T>::zeros((2, 3)),
        Array2::<T>::zeros((3, 2)),
        Array2::<T>::zeros((2, 0)),
    );
    for (case, y, g) in [
        ("grad_output [3, 2] for y [2, 3]", &x23, &x32),
        ("rows of length 0", &x20, &x20),
    ] {
        parity(
            "softmax_rows_backward",
            case,
            show2(Backend::<T>::softmax_rows_backward(
                &reference,
                y.view(),
                g.view(),
            )),
            show2(backend.softmax_rows_backward(y.view(), g.view())),
        )?;
        parity(
            "log_softmax_rows_backward",
            case,
            show2(Backend::<T>::log_softmax_rows_backward(
                &reference,
                y.view(),
                g.view(),
            )),
            show2(backend.log_softmax_rows_backward(y.view(), g.view())),
        )?;
    }
    Ok(())
}

/// [`check_softmax_rows_backward`] as a proptest property.
pub fn softmax_rows_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    y: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_softmax_rows_backward(backend, y, grad_output))
}

/// [`check_log_softmax_rows_backward`] as a proptest property.
pub fn log_softmax_rows_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    y: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_log_softmax_rows_backward(backend, y, grad_output))
}

/// [`check_bce_with_logits`] as a proptest property.
pub fn bce_with_logits_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    reduction: Reduction,
) -> TestCaseResult {
    as_property(check_bce_with_logits(backend, logits, labels, reduction))
}

/// [`check_bce_with_logits_backward`] as a proptest property.
pub fn bce_with_logits_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    reduction: Reduction,
    grad_output: T,
) -> TestCaseResult {
    as_property(check_bce_with_logits_backward(
        backend,
        logits,
        labels,
        reduction,
        grad_output,
    ))
}

/// [`check_mse`] as a proptest property.
pub fn mse_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    prediction: ArrayView2<'_, T>,
    target: ArrayView2<'_, T>,
    reduction: Reduction,
) -> TestCaseResult {
    as_property(check_mse(backend, prediction, target, reduction))
}

/// [`check_mse_backward`] as a proptest property.
pub fn mse_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    prediction: ArrayView2<'_, T>,
    target: ArrayView2<'_, T>,
    reduction: Reduction,
    grad_output: T,
) -> TestCaseResult {
    as_property(check_mse_backward(
        backend,
        prediction,
        target,
        reduction,
        grad_output,
    ))
}

/// [`check_cross_entropy`] as a proptest property.
pub fn cross_entropy_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
) -> TestCaseResult {
    as_property(check_cross_entropy(
        backend,
        logits,
        targets,
        ignore_index,
        reduction,
    ))
}

/// [`check_cross_entropy_backward`] as a proptest property.
pub fn cross_entropy_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    logits: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
    grad_output: T,
) -> TestCaseResult {
    as_property(check_cross_entropy_backward(
        backend,
        logits,
        targets,
        ignore_index,
        reduction,
        grad_output,
    ))
}
