//! Conformance of the optimizer steps, gradient clipping and the corrected std: each against the
//! f64 reference on the backend's own inputs widened exactly, within the bounds of
//! [`crate::tolerance`]'s `*_bounds`/`std_*` fns for `T` plus those for f64 (THEORY.md E4).

use ndarray::{Array1, Array2, ArrayView1, Axis};
use proptest::test_runner::TestCaseResult;

use super::{
    agree, as_property, backend_error, models, reference_error, widen1, CheckFailure, CheckResult,
};
use crate::reference::optim::{self as reference_optim, AdamHyper, AdamState, SgdHyper, SgdState};
use crate::tolerance::{self, StepBounds, Tracked};
use crate::{reference, Backend, Error, Scalar};

/// Stack per-coordinate outputs as the rows of one array (so one comparison reports the worst
/// `[output, coordinate]`).
fn stack(rows: &[Array1<f64>]) -> Array2<f64> {
    let cols = rows.first().map_or(0, Array1::len);
    Array2::from_shape_fn((rows.len(), cols), |(r, c)| rows[r][c])
}

/// The rows of a [`StepBounds`] list, `B_T + B_f64`, in the order parameters, last step,
/// first moment (or momentum buffer), second moment.
fn bound_rows(bounds_t: &[StepBounds], bounds_64: &[StepBounds], rows: usize) -> Array2<f64> {
    let pick = |b: &StepBounds, r: usize| match r {
        0 => b.parameters.error,
        1 => b.last_step.error,
        2 => b.first_moment.error,
        _ => b.second_moment.error,
    };
    Array2::from_shape_fn((rows, bounds_t.len()), |(r, i)| {
        pick(&bounds_t[i], r) + pick(&bounds_64[i], r)
    })
}

const STEP_ROWS: [&str; 4] = ["parameters", "last_step", "first moment", "second moment"];

fn step_context<'a>(
    theta: &'a Array1<f64>,
    gradient: &'a Array1<f64>,
    hyper: String,
) -> impl Fn(&[usize]) -> String + 'a {
    move |index: &[usize]| {
        let (Some(&r), Some(&i)) = (index.first(), index.get(1)) else {
            return String::new();
        };
        format!(
            "{} of coordinate {i}: θ = {:e}, g = {:e}; {hyper}",
            STEP_ROWS.get(r).copied().unwrap_or("?"),
            theta.get(i).copied().unwrap_or(f64::NAN),
            gradient.get(i).copied().unwrap_or(f64::NAN),
        )
    }
}

/// One SGD step of `backend` vs the f64 reference from the same state: new parameters, last
/// step and momentum buffer within [`tolerance::sgd_step_bounds`] for `T` plus f64. (In the
/// same type the OpenCL step is bitwise equal to the reference: tests/conformance/bitwise.rs.)
pub fn check_sgd_step<T: Scalar>(
    backend: &impl Backend<T>,
    state: &SgdState<T>,
    parameters: ArrayView1<'_, T>,
    gradient: ArrayView1<'_, T>,
    hyper: &SgdHyper,
) -> CheckResult {
    const OP: &str = "sgd_step";
    let (theta, next) = backend
        .sgd_step(state, parameters, gradient, hyper)
        .map_err(backend_error(OP, backend))?;
    let (t64, g64) = (widen1(parameters), widen1(gradient));
    let state64 = SgdState {
        momentum_buffer: state.momentum_buffer.as_ref().map(|b| widen1(b.view())),
        last_step: widen1(state.last_step.view()),
    };
    let (e_theta, e_next) = reference_optim::sgd_step(&state64, t64.view(), g64.view(), hyper)
        .map_err(reference_error(OP))?;
    let uses_momentum = hyper.momentum != 0.0;
    if next.momentum_buffer.is_some() != e_next.momentum_buffer.is_some() {
        return Err(Box::new(CheckFailure::Backend {
            context: format!("{OP} on {}<{}>", backend.name(), T::NAME),
            error: Error::InvalidParameter {
                op: OP,
                name: "momentum_buffer",
                value: format!("{:?}", next.momentum_buffer.is_some()),
                reason: "the backend's state must have a momentum buffer iff momentum ≠ 0".into(),
            },
        }));
    }
    let n = t64.len();
    let zeros = Array1::<f64>::zeros(n);
    let buffer = |b: Option<Array1<f64>>| b.unwrap_or_else(|| zeros.clone());
    let actual = stack(&[
        theta.mapv(Scalar::widen),
        next.last_step.mapv(Scalar::widen),
        buffer(next.momentum_buffer.map(|b| b.mapv(Scalar::widen))),
    ]);
    let expected = stack(&[e_theta, e_next.last_step, buffer(e_next.momentum_buffer)]);
    let (m_t, m_64) = models::<T>();
    let bounds = |model| -> Vec<StepBounds> {
        (0..n)
            .map(|i| {
                let old = state64
                    .momentum_buffer
                    .as_ref()
                    .map(|b| Tracked::exact(b[i]));
                tolerance::sgd_step_bounds(
                    Tracked::exact(t64[i]),
                    Tracked::exact(g64[i]),
                    if uses_momentum { old } else { None },
                    hyper,
                    model,
                )
            })
            .collect()
    };
    let bound = bound_rows(&bounds(&m_t), &bounds(&m_64), 3);
    let context = step_context(&t64, &g64, format!("{hyper:?}"));
    agree_f64(OP, backend, actual, expected, bound, &context)
}

/// Compare arrays already widened to f64.
fn agree_f64<T: Scalar>(
    op: &str,
    backend: &impl Backend<T>,
    actual: Array2<f64>,
    expected: Array2<f64>,
    bound: Array2<f64>,
    context: &dyn Fn(&[usize]) -> String,
) -> CheckResult {
    crate::compare::compare(
        &super::subject(op, backend),
        actual.view().into_dyn(),
        expected.view().into_dyn(),
        bound.view().into_dyn(),
        context,
    )
    .map_err(|m| Box::new(CheckFailure::Mismatch(m)))
}

/// One Adam/AdamW step of `backend` vs the f64 reference from the same state: new parameters,
/// last step, `m` and `v` within [`tolerance::adam_step_bounds`] for `T` plus f64, and the same
/// step count.
pub fn check_adam_step<T: Scalar>(
    backend: &impl Backend<T>,
    state: &AdamState<T>,
    parameters: ArrayView1<'_, T>,
    gradient: ArrayView1<'_, T>,
    hyper: &AdamHyper,
) -> CheckResult {
    const OP: &str = "adam_step";
    let (theta, next) = backend
        .adam_step(state, parameters, gradient, hyper)
        .map_err(backend_error(OP, backend))?;
    let (t64, g64) = (widen1(parameters), widen1(gradient));
    let state64 = AdamState {
        step: state.step,
        first_moment: widen1(state.first_moment.view()),
        second_moment: widen1(state.second_moment.view()),
        last_step: widen1(state.last_step.view()),
    };
    let (e_theta, e_next) = reference_optim::adam_step(&state64, t64.view(), g64.view(), hyper)
        .map_err(reference_error(OP))?;
    if next.step != e_next.step {
        return Err(Box::new(CheckFailure::Backend {
            context: format!("{OP} on {}<{}>", backend.name(), T::NAME),
            error: Error::InvalidParameter {
                op: OP,
                name: "step",
                value: next.step.to_string(),
                reason: format!("the reference's state counts {} steps", e_next.step),
            },
        }));
    }
    let actual = stack(&[
        theta.mapv(Scalar::widen),
        next.last_step.mapv(Scalar::widen),
        next.first_moment.mapv(Scalar::widen),
        next.second_moment.mapv(Scalar::widen),
    ]);
    let expected = stack(&[
        e_theta,
        e_next.last_step,
        e_next.first_moment,
        e_next.second_moment,
    ]);
    let (m_t, m_64) = models::<T>();
    let bounds = |model| -> Vec<StepBounds> {
        (0..t64.len())
            .map(|i| {
                tolerance::adam_step_bounds(
                    Tracked::exact(t64[i]),
                    Tracked::exact(g64[i]),
                    Tracked::exact(state64.first_moment[i]),
                    Tracked::exact(state64.second_moment[i]),
                    hyper,
                    e_next.step,
                    model,
                )
            })
            .collect()
    };
    let bound = bound_rows(&bounds(&m_t), &bounds(&m_64), 4);
    let context = step_context(&t64, &g64, format!("t = {}, {hyper:?}", e_next.step));
    agree_f64(OP, backend, actual, expected, bound, &context)
}

/// `clip_grad_norm` of `backend` vs the f64 reference over the same tensors: the returned norm
/// (index `[0, 0]`) and every clipped entry (`[0, 1 + flat index]`) within
/// [`tolerance::clip_grad_norm_bounds`] for `T` plus f64.
pub fn check_clip_grad_norm<T: Scalar>(
    backend: &impl Backend<T>,
    gradients: &[Array1<T>],
    max_norm: f64,
) -> CheckResult {
    const OP: &str = "clip_grad_norm";
    let mut clipped = gradients.to_vec();
    let norm = backend
        .clip_grad_norm(&mut clipped, max_norm)
        .map_err(backend_error(OP, backend))?;
    let widened: Vec<Array1<f64>> = gradients.iter().map(|g| widen1(g.view())).collect();
    let mut expected_grads = widened.clone();
    let expected_norm = reference_optim::clip_grad_norm(&mut expected_grads, max_norm)
        .map_err(reference_error(OP))?;
    let views: Vec<ArrayView1<'_, f64>> = widened.iter().map(|g| g.view()).collect();
    let (m_t, m_64) = models::<T>();
    let (norm_t, grads_t) = tolerance::clip_grad_norm_bounds(&views, max_norm, &m_t);
    let (norm_64, grads_64) = tolerance::clip_grad_norm_bounds(&views, max_norm, &m_64);
    let flat = |first: f64, rest: Vec<f64>| {
        let mut all = vec![first];
        all.extend(rest);
        Array1::from(all).insert_axis(Axis(0))
    };
    let actual = flat(
        norm.widen(),
        clipped
            .iter()
            .flat_map(|g| g.iter().map(|v| v.widen()))
            .collect(),
    );
    let expected = flat(
        expected_norm,
        expected_grads
            .iter()
            .flat_map(|g| g.iter().copied())
            .collect(),
    );
    let bound = flat(
        norm_t.error + norm_64.error,
        grads_t
            .iter()
            .zip(&grads_64)
            .flat_map(|(a, b)| (a + b).to_vec())
            .collect(),
    );
    let lengths: Vec<usize> = gradients.iter().map(Array1::len).collect();
    let context = move |index: &[usize]| {
        let j = index.get(1).copied().unwrap_or(0);
        let where_ = if j == 0 {
            "the returned norm".to_string()
        } else {
            let mut k = j - 1;
            let mut tensor = 0;
            while tensor < lengths.len() && k >= lengths[tensor] {
                k -= lengths[tensor];
                tensor += 1;
            }
            format!("tensor {tensor} entry {k}")
        };
        format!(
            "{where_}; tensor lengths {lengths:?}, max_norm = {max_norm:e}, norm {expected_norm:e}"
        )
    };
    agree_f64(OP, backend, actual, expected, bound, &context)
}

/// `clip_grad_value` of `backend` vs the f64 reference: entries not clamped are exact; a
/// clamped entry is `±fl(c)`, within [`tolerance::clip_grad_value`] of `±c`.
pub fn check_clip_grad_value<T: Scalar>(
    backend: &impl Backend<T>,
    gradients: &[Array1<T>],
    clip_value: f64,
) -> CheckResult {
    const OP: &str = "clip_grad_value";
    let mut clipped = gradients.to_vec();
    backend
        .clip_grad_value(&mut clipped, clip_value)
        .map_err(backend_error(OP, backend))?;
    let mut expected: Vec<Array1<f64>> = gradients.iter().map(|g| widen1(g.view())).collect();
    reference_optim::clip_grad_value(&mut expected, clip_value).map_err(reference_error(OP))?;
    let actual: Vec<f64> = clipped
        .iter()
        .flat_map(|g| g.iter().map(|v| v.widen()))
        .collect();
    let expected: Vec<f64> = expected.iter().flat_map(|g| g.iter().copied()).collect();
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::clip_grad_value(clip_value, &m_t)
        + tolerance::clip_grad_value(clip_value, &m_64);
    let n = actual.len();
    let actual = Array1::from(actual).insert_axis(Axis(0));
    let expected = Array1::from(expected).insert_axis(Axis(0));
    let context = |index: &[usize]| {
        format!(
            "flat entry {}; clip_value = {clip_value:e}",
            index.get(1).copied().unwrap_or(0)
        )
    };
    agree_f64(
        OP,
        backend,
        actual,
        expected,
        Array2::from_elem((1, n), bound),
        &context,
    )
}

/// The std of `backend` vs the f64 reference within [`tolerance::std_corrected`] for `T` plus
/// f64 (exact 0 for constant input).
pub fn check_std_corrected<T: Scalar>(
    backend: &impl Backend<T>,
    values: ArrayView1<'_, T>,
    correction: usize,
) -> CheckResult {
    const OP: &str = "std_corrected";
    let actual = backend
        .std_corrected(values, correction)
        .map_err(backend_error(OP, backend))?;
    let v64 = widen1(values);
    let expected = reference::std_corrected(v64.view(), correction).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::std_corrected(v64.view(), correction, &m_t)
        + tolerance::std_corrected(v64.view(), correction, &m_64);
    let context = |_: &[usize]| {
        format!(
            "n = {}, correction = {correction}, values {}",
            v64.len(),
            crate::compare::format_values(v64.iter().copied())
        )
    };
    agree(
        OP,
        backend,
        Array2::from_elem((1, 1), actual),
        Array2::from_elem((1, 1), expected),
        Array2::from_elem((1, 1), bound),
        &context,
    )
}

/// The std VJP of `backend` vs the f64 reference within [`tolerance::std_corrected_backward`]
/// for `T` plus f64 (exact zeros for constant input).
pub fn check_std_corrected_backward<T: Scalar>(
    backend: &impl Backend<T>,
    values: ArrayView1<'_, T>,
    correction: usize,
    grad_output: T,
) -> CheckResult {
    const OP: &str = "std_corrected_backward";
    let actual = backend
        .std_corrected_backward(values, correction, grad_output)
        .map_err(backend_error(OP, backend))?;
    let v64 = widen1(values);
    let g = grad_output.widen();
    let expected = reference::std_corrected_backward(v64.view(), correction, g)
        .map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::std_corrected_backward(v64.view(), correction, g, &m_t)
        + tolerance::std_corrected_backward(v64.view(), correction, g, &m_64);
    let n = v64.len();
    let row = |a: Array1<f64>| a.insert_axis(Axis(0));
    let context = |index: &[usize]| {
        let i = index.get(1).copied().unwrap_or(0);
        format!(
            "p[{i}] = {:e}; n = {n}, correction = {correction}, grad_output = {g:e}",
            v64.get(i).copied().unwrap_or(f64::NAN)
        )
    };
    agree_f64(
        OP,
        backend,
        row(actual.mapv(Scalar::widen)),
        row(expected),
        row(bound),
        &context,
    )
}

/// [`check_sgd_step`] as a proptest property.
pub fn sgd_step_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    state: &SgdState<T>,
    parameters: ArrayView1<'_, T>,
    gradient: ArrayView1<'_, T>,
    hyper: &SgdHyper,
) -> TestCaseResult {
    as_property(check_sgd_step(backend, state, parameters, gradient, hyper))
}

/// [`check_adam_step`] as a proptest property.
pub fn adam_step_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    state: &AdamState<T>,
    parameters: ArrayView1<'_, T>,
    gradient: ArrayView1<'_, T>,
    hyper: &AdamHyper,
) -> TestCaseResult {
    as_property(check_adam_step(backend, state, parameters, gradient, hyper))
}

/// [`check_clip_grad_norm`] as a proptest property.
pub fn clip_grad_norm_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    gradients: &[Array1<T>],
    max_norm: f64,
) -> TestCaseResult {
    as_property(check_clip_grad_norm(backend, gradients, max_norm))
}

/// [`check_clip_grad_value`] as a proptest property.
pub fn clip_grad_value_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    gradients: &[Array1<T>],
    clip_value: f64,
) -> TestCaseResult {
    as_property(check_clip_grad_value(backend, gradients, clip_value))
}

/// [`check_std_corrected`] as a proptest property.
pub fn std_corrected_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    values: ArrayView1<'_, T>,
    correction: usize,
) -> TestCaseResult {
    as_property(check_std_corrected(backend, values, correction))
}

/// [`check_std_corrected_backward`] as a proptest property.
pub fn std_corrected_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    values: ArrayView1<'_, T>,
    correction: usize,
    grad_output: T,
) -> TestCaseResult {
    as_property(check_std_corrected_backward(
        backend,
        values,
        correction,
        grad_output,
    ))
}

/// Error parity for the optimizer, clipping and std ops (part of
/// [`super::errors_match_reference`]): mismatched lengths, invalid hyperparameters, `n ≤ c`.
/// Returns the number of cases checked.
pub fn optim_errors_match_reference<T: Scalar>(
    backend: &impl Backend<T>,
) -> Result<usize, Box<CheckFailure>> {
    let reference = reference::Reference;
    let mut checked = 0;
    let mut parity = |op: &'static str,
                      case: &str,
                      expected: Result<String, Error>,
                      actual: Result<String, Error>| {
        checked += 1;
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
    let show = |r: Result<(Array1<T>, SgdState<T>), Error>| r.map(|a| format!("{a:?}"));
    let one = Array1::<T>::zeros(1);
    let two = Array1::<T>::zeros(2);
    let sgd = SgdHyper {
        learning_rate: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    };
    let fresh = SgdState::<T>::default();
    let short_buffer = SgdState {
        momentum_buffer: Some(Array1::zeros(1)),
        last_step: Array1::zeros(2),
    };
    for (case, state, p, g, hyper) in [
        ("gradient of 1 for parameters of 2", &fresh, &two, &one, sgd),
        ("momentum buffer of 1 for 2", &short_buffer, &two, &two, sgd),
        (
            "learning_rate = -1",
            &fresh,
            &two,
            &two,
            SgdHyper {
                learning_rate: -1.0,
                ..sgd
            },
        ),
        (
            "momentum = 1",
            &fresh,
            &two,
            &two,
            SgdHyper {
                momentum: 1.0,
                ..sgd
            },
        ),
        (
            "nesterov with momentum 0",
            &fresh,
            &two,
            &two,
            SgdHyper {
                momentum: 0.0,
                nesterov: true,
                ..sgd
            },
        ),
        (
            "empty tensors",
            &fresh,
            &Array1::zeros(0),
            &Array1::zeros(0),
            sgd,
        ),
    ] {
        parity(
            "sgd_step",
            case,
            show(Backend::<T>::sgd_step(
                &reference,
                state,
                p.view(),
                g.view(),
                &hyper,
            )),
            show(backend.sgd_step(state, p.view(), g.view(), &hyper)),
        )?;
    }
    let show = |r: Result<(Array1<T>, AdamState<T>), Error>| r.map(|a| format!("{a:?}"));
    let adam = AdamHyper::new(1e-3, 0.9, 0.999, 1e-8);
    let zeros2 = AdamState::<T>::zeros(2);
    let mut short_v = AdamState::<T>::zeros(2);
    short_v.second_moment = Array1::zeros(1);
    for (case, state, g, hyper) in [
        ("gradient of 1 for parameters of 2", &zeros2, &one, adam),
        ("second moment of 1 for 2", &short_v, &two, adam),
        ("eps = 0", &zeros2, &two, AdamHyper { eps: 0.0, ..adam }),
        ("beta1 = 1", &zeros2, &two, AdamHyper { beta1: 1.0, ..adam }),
        (
            "learning_rate = NaN",
            &zeros2,
            &two,
            AdamHyper {
                learning_rate: f64::NAN,
                ..adam
            },
        ),
    ] {
        parity(
            "adam_step",
            case,
            show(Backend::<T>::adam_step(
                &reference,
                state,
                two.view(),
                g.view(),
                &hyper,
            )),
            show(backend.adam_step(state, two.view(), g.view(), &hyper)),
        )?;
    }
    for (case, limit) in [
        ("-1", -1.0),
        ("NaN", f64::NAN),
        ("+inf", f64::INFINITY),
        ("1 (valid)", 1.0),
    ] {
        for (what, tensors) in [
            ("one tensor", vec![two.clone()]),
            ("no tensors", Vec::new()),
            ("an empty tensor", vec![Array1::zeros(0)]),
        ] {
            let case = format!("{what}, limit {case}");
            let (mut a, mut b) = (tensors.clone(), tensors.clone());
            parity(
                "clip_grad_norm",
                &case,
                Backend::<T>::clip_grad_norm(&reference, &mut a, limit).map(|v| format!("{v:?}")),
                backend
                    .clip_grad_norm(&mut b, limit)
                    .map(|v| format!("{v:?}")),
            )?;
            let (mut a, mut b) = (tensors.clone(), tensors);
            parity(
                "clip_grad_value",
                &case,
                Backend::<T>::clip_grad_value(&reference, &mut a, limit).map(|v| format!("{v:?}")),
                backend
                    .clip_grad_value(&mut b, limit)
                    .map(|v| format!("{v:?}")),
            )?;
        }
    }
    let none = Array1::<T>::zeros(0);
    for (case, values, correction) in [
        ("n = 1, correction 1", &one, 1),
        ("n = 0, correction 0", &none, 0),
        ("n = 2, correction 3", &two, 3),
    ] {
        parity(
            "std_corrected",
            case,
            Backend::<T>::std_corrected(&reference, values.view(), correction)
                .map(|v| format!("{v:?}")),
            backend
                .std_corrected(values.view(), correction)
                .map(|v| format!("{v:?}")),
        )?;
        parity(
            "std_corrected_backward",
            case,
            Backend::<T>::std_corrected_backward(&reference, values.view(), correction, T::one())
                .map(|v| format!("{v:?}")),
            backend
                .std_corrected_backward(values.view(), correction, T::one())
                .map(|v| format!("{v:?}")),
        )?;
    }
    Ok(checked)
}
