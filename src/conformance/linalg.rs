//! Conformance of the linear-algebra ops beyond `matmul`: the matmul VJP, batched products and
//! their VJP, transposes, row-vector broadcasts with their VJPs, axis reductions and their
//! broadcasts, each against the reference in f64 within `bound_T + bound_f64`, plus their
//! error parity.

use ndarray::{Array, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis, Dimension};
use proptest::test_runner::TestCaseResult;

use super::{
    as_property, backend_error, models, reference_error, subject, widen1, widen2, CheckFailure,
    CheckResult,
};
use crate::compare::{self, format_values, Agreement};
use crate::{reference, tolerance, Backend, Error, Scalar};

/// Compare arrays of any dimension within `bound` (per element).
fn agree_any<T: Scalar, D: Dimension>(
    op: &str,
    backend: &impl Backend<T>,
    actual: Array<T, D>,
    expected: Array<f64, D>,
    bound: Array<f64, D>,
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

/// Two outputs' agreements as one: elements added, the worst ratio kept.
fn merge(first: Agreement, second: Agreement) -> Agreement {
    Agreement {
        elements: first.elements + second.elements,
        max_error_over_bound: first.max_error_over_bound.max(second.max_error_over_bound),
    }
}

fn widen3<T: Scalar>(x: ArrayView3<'_, T>) -> Array3<f64> {
    x.mapv(Scalar::widen)
}

/// "shapes …; index …" for products.
fn shapes_context(shapes: String) -> impl Fn(&[usize]) -> String {
    move |index: &[usize]| format!("{shapes}; at {index:?}")
}

/// The lane of `x` reduced into output `index[0]` along `axis`, formatted.
fn lane_context(x: &Array2<f64>, axis: usize) -> impl Fn(&[usize]) -> String + '_ {
    move |index: &[usize]| {
        let i = index.first().copied().unwrap_or(0);
        if i >= x.len_of(Axis(1 - axis.min(1))) {
            return String::new();
        }
        let lane = x.index_axis(Axis(1 - axis.min(1)), i);
        let name = if axis == 0 { "column" } else { "row" };
        format!(
            "x [{}, {}], axis {axis}: {name} {i} = {}",
            x.nrows(),
            x.ncols(),
            format_values(lane.iter().copied())
        )
    }
}

/// Matmul VJP `(G·Bᵀ, Aᵀ·G)` vs the f64 reference within [`tolerance::matmul_backward`] (both
/// sides), `grad_a` then `grad_b`.
pub fn check_matmul_backward<T: Scalar>(
    backend: &impl Backend<T>,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "matmul_backward";
    let (grad_a, grad_b) = backend
        .matmul_backward(a, b, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (a64, b64, g64) = (widen2(a), widen2(b), widen2(grad_output));
    let (ea, eb) = reference::matmul_backward(a64.view(), b64.view(), g64.view())
        .map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let (ba_t, bb_t) = tolerance::matmul_backward(a64.view(), b64.view(), g64.view(), &m_t);
    let (ba_64, bb_64) = tolerance::matmul_backward(a64.view(), b64.view(), g64.view(), &m_64);
    let context = shapes_context(format!(
        "a {:?}, b {:?}, grad_output {:?}",
        a64.dim(),
        b64.dim(),
        g64.dim()
    ));
    let first = agree_any(
        "matmul_backward (grad_a)",
        backend,
        grad_a,
        ea,
        ba_t + ba_64,
        &context,
    )?;
    let second = agree_any(
        "matmul_backward (grad_b)",
        backend,
        grad_b,
        eb,
        bb_t + bb_64,
        &context,
    )?;
    Ok(merge(first, second))
}

/// Batched matmul vs the f64 reference within [`tolerance::batched_matmul`] (both sides).
pub fn check_batched_matmul<T: Scalar>(
    backend: &impl Backend<T>,
    a: ArrayView3<'_, T>,
    b: ArrayView3<'_, T>,
) -> CheckResult {
    const OP: &str = "batched_matmul";
    let actual = backend
        .batched_matmul(a, b)
        .map_err(backend_error(OP, backend))?;
    let (a64, b64) = (widen3(a), widen3(b));
    let expected =
        reference::batched_matmul(a64.view(), b64.view()).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::batched_matmul(a64.view(), b64.view(), &m_t),
        tolerance::batched_matmul(a64.view(), b64.view(), &m_64),
    );
    let context = shapes_context(format!("a {:?}, b {:?}", a64.dim(), b64.dim()));
    agree_any(OP, backend, actual, expected, bound, &context)
}

/// Batched matmul VJP vs the f64 reference within [`tolerance::batched_matmul_backward`].
pub fn check_batched_matmul_backward<T: Scalar>(
    backend: &impl Backend<T>,
    a: ArrayView3<'_, T>,
    b: ArrayView3<'_, T>,
    grad_output: ArrayView3<'_, T>,
) -> CheckResult {
    const OP: &str = "batched_matmul_backward";
    let (grad_a, grad_b) = backend
        .batched_matmul_backward(a, b, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (a64, b64, g64) = (widen3(a), widen3(b), widen3(grad_output));
    let (ea, eb) = reference::batched_matmul_backward(a64.view(), b64.view(), g64.view())
        .map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let (ba_t, bb_t) = tolerance::batched_matmul_backward(a64.view(), b64.view(), g64.view(), &m_t);
    let (ba_64, bb_64) =
        tolerance::batched_matmul_backward(a64.view(), b64.view(), g64.view(), &m_64);
    let context = shapes_context(format!(
        "a {:?}, b {:?}, grad_output {:?}",
        a64.dim(),
        b64.dim(),
        g64.dim()
    ));
    let first = agree_any(
        "batched_matmul_backward (grad_a)",
        backend,
        grad_a,
        ea,
        ba_t + ba_64,
        &context,
    )?;
    let second = agree_any(
        "batched_matmul_backward (grad_b)",
        backend,
        grad_b,
        eb,
        bb_t + bb_64,
        &context,
    )?;
    Ok(merge(first, second))
}

/// Transpose vs the f64 reference: exact (bound 0).
pub fn check_transpose<T: Scalar>(backend: &impl Backend<T>, x: ArrayView2<'_, T>) -> CheckResult {
    const OP: &str = "transpose";
    let actual = backend.transpose(x).map_err(backend_error(OP, backend))?;
    let x64 = widen2(x);
    let expected = reference::transpose(x64.view());
    let bound = Array2::zeros(expected.dim());
    let context = shapes_context(format!("x {:?}", x64.dim()));
    agree_any(OP, backend, actual, expected, bound, &context)
}

/// `add_rows` VJP `(G, Σ_rows G)` vs the f64 reference: `grad_x` exact, `grad_b` within
/// [`tolerance::sum_axis`] over axis 0 (both sides).
pub fn check_add_rows_backward<T: Scalar>(
    backend: &impl Backend<T>,
    grad_output: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "add_rows_backward";
    let (grad_x, grad_b) = backend
        .add_rows_backward(grad_output)
        .map_err(backend_error(OP, backend))?;
    let g64 = widen2(grad_output);
    let (ex, eb) = reference::add_rows_backward(g64.view());
    let (m_t, m_64) = models::<T>();
    let bound_b = tolerance::pair(
        tolerance::sum_axis(g64.view(), 0, &m_t),
        tolerance::sum_axis(g64.view(), 0, &m_64),
    );
    let context = lane_context(&g64, 0);
    let first = agree_any(
        "add_rows_backward (grad_x)",
        backend,
        grad_x,
        ex,
        Array2::zeros(g64.dim()),
        &|index: &[usize]| format!("grad_output {:?} at {index:?}", g64.dim()),
    )?;
    let second = agree_any(
        "add_rows_backward (grad_b)",
        backend,
        grad_b,
        eb,
        bound_b,
        &context,
    )?;
    Ok(merge(first, second))
}

/// Row broadcast product vs the f64 reference within [`tolerance::mul_rows`] (both sides).
pub fn check_mul_rows<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    b: ArrayView1<'_, T>,
) -> CheckResult {
    const OP: &str = "mul_rows";
    let actual = backend.mul_rows(x, b).map_err(backend_error(OP, backend))?;
    let (x64, b64) = (widen2(x), widen1(b));
    let expected = reference::mul_rows(x64.view(), b64.view()).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::mul_rows(x64.view(), b64.view(), &m_t),
        tolerance::mul_rows(x64.view(), b64.view(), &m_64),
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
    agree_any(OP, backend, actual, expected, bound, &context)
}

/// `mul_rows` VJP vs the f64 reference: `grad_x = G∘b` within [`tolerance::mul_rows`] (with
/// `x := G`), `grad_b = Σ_i G_ij X_ij` within [`tolerance::mul_rows_backward_grad_b`].
pub fn check_mul_rows_backward<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    b: ArrayView1<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "mul_rows_backward";
    let (grad_x, grad_b) = backend
        .mul_rows_backward(x, b, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (x64, b64, g64) = (widen2(x), widen1(b), widen2(grad_output));
    let (ex, eb) = reference::mul_rows_backward(x64.view(), b64.view(), g64.view())
        .map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound_x = tolerance::pair(
        tolerance::mul_rows(g64.view(), b64.view(), &m_t),
        tolerance::mul_rows(g64.view(), b64.view(), &m_64),
    );
    let bound_b = tolerance::pair(
        tolerance::mul_rows_backward_grad_b(x64.view(), g64.view(), &m_t),
        tolerance::mul_rows_backward_grad_b(x64.view(), g64.view(), &m_64),
    );
    let first = agree_any(
        "mul_rows_backward (grad_x)",
        backend,
        grad_x,
        ex,
        bound_x,
        &|index: &[usize]| {
            let (i, j) = (
                index.first().copied().unwrap_or(0),
                index.get(1).copied().unwrap_or(0),
            );
            match (g64.get((i, j)), b64.get(j)) {
                (Some(g), Some(b)) => format!("g[{i}, {j}] = {g:e}, b[{j}] = {b:e}"),
                _ => String::new(),
            }
        },
    )?;
    let columns = lane_context(&x64, 0);
    let second = agree_any(
        "mul_rows_backward (grad_b)",
        backend,
        grad_b,
        eb,
        bound_b,
        &|index: &[usize]| {
            let j = index.first().copied().unwrap_or(0);
            let g = if j < g64.ncols() {
                format_values(g64.column(j).iter().copied())
            } else {
                String::new()
            };
            format!("{}; g column {j} = {g}", columns(index))
        },
    )?;
    Ok(merge(first, second))
}

/// Sum over `axis` vs the f64 reference within [`tolerance::sum_axis`] (`γ_{ℓ−1}·Σ|x|`, any
/// order, both sides).
pub fn check_sum_axis<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    axis: usize,
) -> CheckResult {
    const OP: &str = "sum_axis";
    let actual = backend
        .sum_axis(x, axis)
        .map_err(backend_error(OP, backend))?;
    let x64 = widen2(x);
    let expected = reference::sum_axis(x64.view(), axis).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::sum_axis(x64.view(), axis, &m_t),
        tolerance::sum_axis(x64.view(), axis, &m_64),
    );
    let context = lane_context(&x64, axis);
    agree_any(OP, backend, actual, expected, bound, &context)
}

/// Mean over `axis` vs the f64 reference within [`tolerance::mean_axis`] (both sides).
pub fn check_mean_axis<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    axis: usize,
) -> CheckResult {
    const OP: &str = "mean_axis";
    let actual = backend
        .mean_axis(x, axis)
        .map_err(backend_error(OP, backend))?;
    let x64 = widen2(x);
    let expected = reference::mean_axis(x64.view(), axis).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::mean_axis(x64.view(), axis, &m_t),
        tolerance::mean_axis(x64.view(), axis, &m_64),
    );
    let context = lane_context(&x64, axis);
    agree_any(OP, backend, actual, expected, bound, &context)
}

/// `sum_axis` VJP (a broadcast) vs the f64 reference: exact (bound 0).
pub fn check_sum_axis_backward<T: Scalar>(
    backend: &impl Backend<T>,
    shape: (usize, usize),
    axis: usize,
    grad_output: ArrayView1<'_, T>,
) -> CheckResult {
    const OP: &str = "sum_axis_backward";
    let actual = backend
        .sum_axis_backward(shape, axis, grad_output)
        .map_err(backend_error(OP, backend))?;
    let g64 = widen1(grad_output);
    let expected =
        reference::sum_axis_backward(shape, axis, g64.view()).map_err(reference_error(OP))?;
    let bound = Array2::zeros(expected.dim());
    let context = shapes_context(format!("shape {shape:?}, axis {axis}"));
    agree_any(OP, backend, actual, expected, bound, &context)
}

/// `mean_axis` VJP vs the f64 reference within [`tolerance::mean_axis_backward`] (both sides).
pub fn check_mean_axis_backward<T: Scalar>(
    backend: &impl Backend<T>,
    shape: (usize, usize),
    axis: usize,
    grad_output: ArrayView1<'_, T>,
) -> CheckResult {
    const OP: &str = "mean_axis_backward";
    let actual = backend
        .mean_axis_backward(shape, axis, grad_output)
        .map_err(backend_error(OP, backend))?;
    let g64 = widen1(grad_output);
    let expected =
        reference::mean_axis_backward(shape, axis, g64.view()).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::pair(
        tolerance::mean_axis_backward(shape, axis, g64.view(), &m_t),
        tolerance::mean_axis_backward(shape, axis, g64.view(), &m_64),
    );
    let context = |index: &[usize]| {
        let (i, j) = (
            index.first().copied().unwrap_or(0),
            index.get(1).copied().unwrap_or(0),
        );
        let k = if axis == 0 { j } else { i };
        let g = g64.get(k).copied().unwrap_or(f64::NAN);
        format!("shape {shape:?}, axis {axis}: g[{k}] = {g:e}")
    };
    agree_any(OP, backend, actual, expected, bound, &context)
}

/// [`check_matmul_backward`] as a proptest property.
pub fn matmul_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_matmul_backward(backend, a, b, grad_output))
}

/// [`check_batched_matmul`] as a proptest property.
pub fn batched_matmul_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    a: ArrayView3<'_, T>,
    b: ArrayView3<'_, T>,
) -> TestCaseResult {
    as_property(check_batched_matmul(backend, a, b))
}

/// [`check_batched_matmul_backward`] as a proptest property.
pub fn batched_matmul_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    a: ArrayView3<'_, T>,
    b: ArrayView3<'_, T>,
    grad_output: ArrayView3<'_, T>,
) -> TestCaseResult {
    as_property(check_batched_matmul_backward(backend, a, b, grad_output))
}

/// [`check_transpose`] as a proptest property.
pub fn transpose_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_transpose(backend, x))
}

/// [`check_add_rows_backward`] as a proptest property.
pub fn add_rows_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_add_rows_backward(backend, grad_output))
}

/// [`check_mul_rows`] as a proptest property.
pub fn mul_rows_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    b: ArrayView1<'_, T>,
) -> TestCaseResult {
    as_property(check_mul_rows(backend, x, b))
}

/// [`check_mul_rows_backward`] as a proptest property.
pub fn mul_rows_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    b: ArrayView1<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_mul_rows_backward(backend, x, b, grad_output))
}

/// [`check_sum_axis`] as a proptest property.
pub fn sum_axis_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    axis: usize,
) -> TestCaseResult {
    as_property(check_sum_axis(backend, x, axis))
}

/// [`check_mean_axis`] as a proptest property.
pub fn mean_axis_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    axis: usize,
) -> TestCaseResult {
    as_property(check_mean_axis(backend, x, axis))
}

/// [`check_sum_axis_backward`] as a proptest property.
pub fn sum_axis_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    shape: (usize, usize),
    axis: usize,
    grad_output: ArrayView1<'_, T>,
) -> TestCaseResult {
    as_property(check_sum_axis_backward(backend, shape, axis, grad_output))
}

/// [`check_mean_axis_backward`] as a proptest property.
pub fn mean_axis_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    shape: (usize, usize),
    axis: usize,
    grad_output: ArrayView1<'_, T>,
) -> TestCaseResult {
    as_property(check_mean_axis_backward(backend, shape, axis, grad_output))
}

/// `Ok` when both results are errors and equal, or both are `Ok`; unsupported ops pass (they
/// are reported as skipped elsewhere).
fn same_outcome<A, B>(
    op: &'static str,
    case: &str,
    expected: Result<A, Error>,
    actual: Result<B, Error>,
) -> Result<(), Box<CheckFailure>> {
    if matches!(&actual, Err(e) if e.is_unsupported()) {
        return Ok(());
    }
    let same = match (&expected, &actual) {
        (Err(e), Err(a)) => e == a,
        (Ok(_), Ok(_)) => true,
        _ => false,
    };
    if same {
        return Ok(());
    }
    let show = |r: &Result<_, Error>| match r {
        Ok(_) => "Ok(..)".to_string(),
        Err(e) => format!("Err({e:?})"),
    };
    Err(Box::new(CheckFailure::ErrorParity {
        op,
        case: case.to_string(),
        expected: show(&expected.map(drop)),
        actual: show(&actual.map(drop)),
    }))
}

/// Error parity of the linear-algebra ops (part of [`super::errors_match_reference`]): shape
/// mismatches of the products, VJPs and broadcasts, `axis > 1`, means over an empty axis, and
/// the valid empty cases (which must not be errors). Returns the number of cases checked.
pub fn linalg_errors_match_reference<T: Scalar>(
    backend: &impl Backend<T>,
) -> Result<usize, Box<CheckFailure>> {
    let r = reference::Reference;
    let mut checked = 0;
    let mut parity = |op, case: &str, expected, actual| {
        checked += 1;
        same_outcome::<(), ()>(op, case, expected, actual)
    };
    let x23 = Array2::<T>::zeros((2, 3));
    let x32 = Array2::<T>::zeros((3, 2));
    let x03 = Array2::<T>::zeros((0, 3));
    let x30 = Array2::<T>::zeros((3, 0));
    let (v2, v3, v0) = (
        Array1::<T>::zeros(2),
        Array1::<T>::zeros(3),
        Array1::<T>::zeros(0),
    );
    for (case, a, b, g) in [
        ("g [2, 3] for [2, 3]·[3, 2]", &x23, &x32, &x23),
        ("[2, 3]·[2, 3]", &x23, &x23, &x23),
        (
            "[0, 3]·[3, 2] (empty)",
            &x03,
            &x32,
            &Array2::<T>::zeros((0, 2)),
        ),
        (
            "[3, 0]·[0, 3] (k = 0)",
            &x30,
            &x03,
            &Array2::<T>::zeros((3, 3)),
        ),
    ] {
        parity(
            "matmul_backward",
            case,
            Backend::<T>::matmul_backward(&r, a.view(), b.view(), g.view()).map(drop),
            backend
                .matmul_backward(a.view(), b.view(), g.view())
                .map(drop),
        )?;
    }
    let a3 = Array3::<T>::zeros((2, 2, 3));
    let b3 = Array3::<T>::zeros((2, 3, 4));
    for (case, a, b, g) in [
        (
            "batch 2 vs 3",
            &a3,
            &Array3::<T>::zeros((3, 3, 4)),
            &Array3::<T>::zeros((2, 2, 4)),
        ),
        (
            "inner 3 vs 2",
            &a3,
            &Array3::<T>::zeros((2, 2, 4)),
            &Array3::<T>::zeros((2, 2, 4)),
        ),
        ("g [2, 2, 3] for [2, 2, 4]", &a3, &b3, &a3),
        (
            "batch 0",
            &Array3::<T>::zeros((0, 2, 3)),
            &Array3::<T>::zeros((0, 3, 4)),
            &Array3::<T>::zeros((0, 2, 4)),
        ),
    ] {
        parity(
            "batched_matmul",
            case,
            Backend::<T>::batched_matmul(&r, a.view(), b.view()).map(drop),
            backend.batched_matmul(a.view(), b.view()).map(drop),
        )?;
        parity(
            "batched_matmul_backward",
            case,
            Backend::<T>::batched_matmul_backward(&r, a.view(), b.view(), g.view()).map(drop),
            backend
                .batched_matmul_backward(a.view(), b.view(), g.view())
                .map(drop),
        )?;
    }
    for (case, x) in [("shape [0, 3]", &x03), ("shape [3, 0]", &x30)] {
        parity(
            "transpose",
            case,
            Backend::<T>::transpose(&r, x.view()).map(drop),
            backend.transpose(x.view()).map(drop),
        )?;
        parity(
            "add_rows_backward",
            case,
            Backend::<T>::add_rows_backward(&r, x.view()).map(drop),
            backend.add_rows_backward(x.view()).map(drop),
        )?;
    }
    for (case, x, b, g) in [
        ("b [2] for rows of 3", &x23, &v2, &x23),
        ("g [3, 2] for x [2, 3]", &x23, &v3, &x32),
        ("rows of length 0", &x30, &v0, &x30),
        ("zero rows", &x03, &v3, &x03),
    ] {
        parity(
            "mul_rows",
            case,
            Backend::<T>::mul_rows(&r, x.view(), b.view()).map(drop),
            backend.mul_rows(x.view(), b.view()).map(drop),
        )?;
        parity(
            "mul_rows_backward",
            case,
            Backend::<T>::mul_rows_backward(&r, x.view(), b.view(), g.view()).map(drop),
            backend
                .mul_rows_backward(x.view(), b.view(), g.view())
                .map(drop),
        )?;
    }
    for (case, x, axis) in [
        ("axis 2", &x23, 2),
        ("axis 0 of [0, 3]", &x03, 0),
        ("axis 1 of [0, 3]", &x03, 1),
        ("axis 1 of [3, 0]", &x30, 1),
        ("axis 0 of [3, 0]", &x30, 0),
    ] {
        parity(
            "sum_axis",
            case,
            Backend::<T>::sum_axis(&r, x.view(), axis).map(drop),
            backend.sum_axis(x.view(), axis).map(drop),
        )?;
        parity(
            "mean_axis",
            case,
            Backend::<T>::mean_axis(&r, x.view(), axis).map(drop),
            backend.mean_axis(x.view(), axis).map(drop),
        )?;
    }
    for (case, shape, axis, g) in [
        ("axis 2", (2, 3), 2, &v3),
        ("g [2] for axis 0 of [2, 3]", (2, 3), 0, &v2),
        ("g [3] for axis 1 of [2, 3]", (2, 3), 1, &v3),
        ("axis 0 of [0, 3]", (0, 3), 0, &v3),
        ("axis 1 of [0, 3]", (0, 3), 1, &v0),
        ("axis 1 of [3, 0]", (3, 0), 1, &v3),
    ] {
        parity(
            "sum_axis_backward",
            case,
            Backend::<T>::sum_axis_backward(&r, shape, axis, g.view()).map(drop),
            backend.sum_axis_backward(shape, axis, g.view()).map(drop),
        )?;
        parity(
            "mean_axis_backward",
            case,
            Backend::<T>::mean_axis_backward(&r, shape, axis, g.view()).map(drop),
            backend.mean_axis_backward(shape, axis, g.view()).map(drop),
        )?;
    }
    Ok(checked)
}
