//! Conformance of embedding, dropout and attention (forward and VJP) against the reference in
//! f64.

use ndarray::{Array2, Array4, ArrayView1, ArrayView2, ArrayView4};
use proptest::test_runner::TestCaseResult;

use super::losses::{agree_dyn, Parity};
use super::{
    agree, as_property, backend_error, models, reference_error, widen2, CheckFailure, CheckResult,
};
use crate::compare::Agreement;
use crate::rng::RandomKey;
use crate::tolerance;
use crate::{reference, Backend, Error, Scalar};

fn widen4<T: Scalar>(x: ArrayView4<'_, T>) -> Array4<f64> {
    x.mapv(Scalar::widen)
}

/// Embedding lookup vs the f64 reference: a gather, so the bound is 0 (bitwise equal values).
pub fn check_embedding<T: Scalar>(
    backend: &impl Backend<T>,
    table: ArrayView2<'_, T>,
    ids: ArrayView1<'_, usize>,
) -> CheckResult {
    const OP: &str = "embedding";
    let actual = backend
        .embedding(table, ids)
        .map_err(backend_error(OP, backend))?;
    let table64 = widen2(table);
    let expected = reference::embedding(table64.view(), ids).map_err(reference_error(OP))?;
    let bound = Array2::zeros(expected.dim());
    agree(
        OP,
        backend,
        actual,
        expected,
        bound,
        &|index: &[usize]| {
            let i = index.first().copied().unwrap_or(0);
            format!("ids[{i}] = {:?}, vocab {}", ids.get(i), table64.nrows())
        },
    )
}

/// Embedding VJP (scatter-add in index order) vs the f64 reference within
/// [`tolerance::embedding_backward`] (both sides).
pub fn check_embedding_backward<T: Scalar>(
    backend: &impl Backend<T>,
    vocab: usize,
    ids: ArrayView1<'_, usize>,
    grad_output: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "embedding_backward";
    let actual = backend
        .embedding_backward(vocab, ids, grad_output)
        .map_err(backend_error(OP, backend))?;
    let g64 = widen2(grad_output);
    let expected =
        reference::embedding_backward(vocab, ids, g64.view()).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::embedding_backward(vocab, ids, g64.view(), &m_t)
        + tolerance::embedding_backward(vocab, ids, g64.view(), &m_64);
    agree(
        OP,
        backend,
        actual,
        expected,
        bound,
        &|index: &[usize]| {
            let v = index.first().copied().unwrap_or(0);
            let positions: Vec<usize> = ids
                .iter()
                .enumerate()
                .filter(|&(_, &id)| id == v)
                .map(|(i, _)| i)
                .collect();
            format!("vocabulary row {v} gathers positions {positions:?}")
        },
    )
}

/// Dropout vs the reference: the mask must equal [`reference::dropout_mask`] **bit for bit**
/// (same Philox stream), the scale must be `round_T(1/(1 − p))`, and the output must agree
/// with the f64 reference within [`tolerance::dropout`] (the f64 scale rounds differently).
pub fn check_dropout<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    p: f64,
    key: RandomKey,
) -> CheckResult {
    const OP: &str = "dropout";
    let out = backend
        .dropout(x, p, key)
        .map_err(backend_error(OP, backend))?;
    let mask = reference::dropout_mask(x.raw_dim(), p, key).map_err(reference_error(OP))?;
    let scale = reference::dropout_scale::<T>(p).map_err(reference_error(OP))?;
    let parity = |case: String| {
        Box::new(CheckFailure::ErrorParity {
            op: OP,
            case,
            expected: "the reference's mask and scale".to_string(),
            actual: format!("{}<{}>", backend.name(), T::NAME),
        })
    };
    if let Some(((index, _), _)) = out
        .mask
        .indexed_iter()
        .zip(mask.iter())
        .find(|((_, a), e)| a != e)
    {
        return Err(parity(format!(
            "mask differs at {index:?} (p = {p}, key {key:?}, shape {:?})",
            x.dim()
        )));
    }
    if out.mask.dim() != mask.dim() || out.scale.widen().to_bits() != scale.widen().to_bits() {
        return Err(parity(format!(
            "mask shape {:?} vs {:?}, scale {:e} vs {:e}",
            out.mask.dim(),
            mask.dim(),
            out.scale,
            scale
        )));
    }
    let x64 = widen2(x);
    let expected = reference::dropout(x64.view(), p, key).map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = expected
        .output
        .mapv(|y| tolerance::dropout(y, &m_t) + tolerance::dropout(y, &m_64));
    let context = super::element_context(vec![("x", &x64)]);
    agree(OP, backend, out.output, expected.output, bound, &context)
}

/// Dropout VJP with a given mask and scale vs the f64 reference within
/// [`tolerance::dropout`] (both sides; `g·scale` for a kept element, exactly 0 otherwise).
pub fn check_dropout_backward<T: Scalar>(
    backend: &impl Backend<T>,
    grad_output: ArrayView2<'_, T>,
    mask: ArrayView2<'_, bool>,
    scale: T,
) -> CheckResult {
    const OP: &str = "dropout_backward";
    let actual = backend
        .dropout_backward(grad_output, mask, scale)
        .map_err(backend_error(OP, backend))?;
    let g64 = widen2(grad_output);
    let expected = reference::dropout_backward(g64.view(), mask, scale.widen())
        .map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    // The scale is given in T (already rounded): only the product rounds, u·|y| per side.
    let bound = expected
        .mapv(|y| m_t.unit_roundoff * y.abs() + m_t.underflow + m_64.unit_roundoff * y.abs());
    let context = super::element_context(vec![("grad_output", &g64)]);
    agree(OP, backend, actual, expected, bound, &context)
}

/// Agreements of the three attention gradients.
#[derive(Debug, Clone, Copy)]
pub struct AttentionBackwardAgreement {
    /// `∂L/∂q`.
    pub grad_q: Agreement,
    /// `∂L/∂k`.
    pub grad_k: Agreement,
    /// `∂L/∂v`.
    pub grad_v: Agreement,
}

fn attention_context<'a>(
    q: &'a Array4<f64>,
    k: &'a Array4<f64>,
    mask: &'a Array2<f64>,
) -> impl Fn(&[usize]) -> String + 'a {
    move |index: &[usize]| {
        let b = index.first().copied().unwrap_or(0);
        let mask_row = if b < mask.nrows() {
            format!("{}", mask.row(b))
        } else {
            String::new()
        };
        format!(
            "q {:?}, k {:?}; key_mask row {b} = {mask_row}",
            q.dim(),
            k.dim()
        )
    }
}

/// Attention vs the f64 reference within [`tolerance::attention`] (both sides).
pub fn check_attention<T: Scalar>(
    backend: &impl Backend<T>,
    q: ArrayView4<'_, T>,
    k: ArrayView4<'_, T>,
    v: ArrayView4<'_, T>,
    key_mask: ArrayView2<'_, T>,
) -> CheckResult {
    const OP: &str = "attention";
    let actual = backend
        .attention(q, k, v, key_mask)
        .map_err(backend_error(OP, backend))?;
    let (q64, k64, v64, m64) = (widen4(q), widen4(k), widen4(v), widen2(key_mask));
    let expected = reference::attention(q64.view(), k64.view(), v64.view(), m64.view())
        .map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let bound = tolerance::attention(q64.view(), k64.view(), v64.view(), m64.view(), &m_t)
        + tolerance::attention(q64.view(), k64.view(), v64.view(), m64.view(), &m_64);
    let actual = actual.mapv(Scalar::widen);
    let context = attention_context(&q64, &k64, &m64);
    agree_dyn(
        OP,
        backend,
        actual.view().into_dyn(),
        expected.view().into_dyn(),
        bound.view().into_dyn(),
        &context,
    )
}

/// Attention VJP vs the f64 reference within [`tolerance::attention_backward`] (both sides),
/// for `grad_q`, `grad_k` and `grad_v`.
pub fn check_attention_backward<T: Scalar>(
    backend: &impl Backend<T>,
    q: ArrayView4<'_, T>,
    k: ArrayView4<'_, T>,
    v: ArrayView4<'_, T>,
    key_mask: ArrayView2<'_, T>,
    grad_output: ArrayView4<'_, T>,
) -> Result<AttentionBackwardAgreement, Box<CheckFailure>> {
    const OP: &str = "attention_backward";
    let (gq, gk, gv) = backend
        .attention_backward(q, k, v, key_mask, grad_output)
        .map_err(backend_error(OP, backend))?;
    let (q64, k64, v64, m64, g64) = (
        widen4(q),
        widen4(k),
        widen4(v),
        widen2(key_mask),
        widen4(grad_output),
    );
    let (eq, ek, ev) =
        reference::attention_backward(q64.view(), k64.view(), v64.view(), m64.view(), g64.view())
            .map_err(reference_error(OP))?;
    let (m_t, m_64) = models::<T>();
    let (bq_t, bk_t, bv_t) = tolerance::attention_backward(
        q64.view(),
        k64.view(),
        v64.view(),
        m64.view(),
        g64.view(),
        &m_t,
    );
    let (bq_64, bk_64, bv_64) = tolerance::attention_backward(
        q64.view(),
        k64.view(),
        v64.view(),
        m64.view(),
        g64.view(),
        &m_64,
    );
    let context = attention_context(&q64, &k64, &m64);
    let one = |name: &str, actual: Array4<T>, expected: Array4<f64>, bound: Array4<f64>| {
        let actual = actual.mapv(Scalar::widen);
        agree_dyn(
            name,
            backend,
            actual.view().into_dyn(),
            expected.view().into_dyn(),
            bound.view().into_dyn(),
            &context,
        )
    };
    Ok(AttentionBackwardAgreement {
        grad_q: one("attention_backward (grad_q)", gq, eq, bq_t + bq_64)?,
        grad_k: one("attention_backward (grad_k)", gk, ek, bk_t + bk_64)?,
        grad_v: one("attention_backward (grad_v)", gv, ev, bv_t + bv_64)?,
    })
}

/// Error parity of embedding, dropout and attention on invalid input (ids out of range, bad
/// `p`, inconsistent shapes, empty head dims), through `parity(op, case, expected, actual)`.
pub(super) fn layer_error_parity<T: Scalar>(
    backend: &impl Backend<T>,
    parity: &mut Parity<'_>,
) -> Result<(), Box<CheckFailure>> {
    let reference = reference::Reference;
    let show2 = |r: Result<Array2<T>, Error>| r.map(|v| format!("{v:?}"));
    let table = Array2::<T>::zeros((3, 2));
    for (case, ids) in [
        ("id 3 of vocabulary 3", vec![0usize, 3]),
        ("no ids", vec![]),
    ] {
        let ids = ndarray::Array1::from(ids);
        parity(
            "embedding",
            case,
            show2(Backend::<T>::embedding(
                &reference,
                table.view(),
                ids.view(),
            )),
            show2(backend.embedding(table.view(), ids.view())),
        )?;
        let g = Array2::<T>::zeros((ids.len(), 2));
        parity(
            "embedding_backward",
            case,
            show2(Backend::<T>::embedding_backward(
                &reference,
                3,
                ids.view(),
                g.view(),
            )),
            show2(backend.embedding_backward(3, ids.view(), g.view())),
        )?;
    }
    let ids = ndarray::arr1(&[0usize, 1]);
    let g3 = Array2::<T>::zeros((3, 2));
    parity(
        "embedding_backward",
        "grad_output with 3 rows for 2 ids",
        show2(Backend::<T>::embedding_backward(
            &reference,
            3,
            ids.view(),
            g3.view(),
        )),
        show2(backend.embedding_backward(3, ids.view(), g3.view())),
    )?;
    let key = RandomKey {
        seed: 1,
        step: 2,
        tensor_id: 3,
    };
    let x = Array2::<T>::zeros((2, 3));
    for p in [1.0, -0.1, f64::NAN] {
        parity(
            "dropout",
            &format!("p = {p}"),
            Backend::<T>::dropout(&reference, x.view(), p, key).map(|o| format!("{o:?}")),
            backend.dropout(x.view(), p, key).map(|o| format!("{o:?}")),
        )?;
    }
    let mask = Array2::from_elem((3, 2), true);
    parity(
        "dropout_backward",
        "mask [3, 2] for grad_output [2, 3]",
        show2(Backend::<T>::dropout_backward(
            &reference,
            x.view(),
            mask.view(),
            T::one(),
        )),
        show2(backend.dropout_backward(x.view(), mask.view(), T::one())),
    )?;
    let q = Array4::<T>::zeros((1, 2, 3, 4));
    let k = Array4::<T>::zeros((1, 2, 5, 4));
    let v = Array4::<T>::zeros((1, 2, 5, 6));
    let m = Array2::<T>::zeros((1, 5));
    let q0 = Array4::<T>::zeros((1, 2, 3, 0));
    let k0 = Array4::<T>::zeros((1, 2, 0, 4));
    let v0 = Array4::<T>::zeros((1, 2, 0, 6));
    let m0 = Array2::<T>::zeros((1, 0));
    let m4 = Array2::<T>::zeros((1, 4));
    let g = Array4::<T>::zeros((1, 2, 3, 6));
    let k_bad = Array4::<T>::zeros((1, 2, 5, 3));
    for (case, q, k, v, m) in [
        ("key_mask [1, 4] for 5 keys", &q, &k, &v, &m4),
        ("k head_dim 3 for q head_dim 4", &q, &k_bad, &v, &m),
        ("head_dim 0", &q0, &Array4::<T>::zeros((1, 2, 5, 0)), &v, &m),
        ("no keys", &q, &k0, &v0, &m0),
    ] {
        parity(
            "attention",
            case,
            Backend::<T>::attention(&reference, q.view(), k.view(), v.view(), m.view())
                .map(|o| format!("{o:?}")),
            backend
                .attention(q.view(), k.view(), v.view(), m.view())
                .map(|o| format!("{o:?}")),
        )?;
        parity(
            "attention_backward",
            case,
            Backend::<T>::attention_backward(
                &reference,
                q.view(),
                k.view(),
                v.view(),
                m.view(),
                g.view(),
            )
            .map(|o| format!("{o:?}")),
            backend
                .attention_backward(q.view(), k.view(), v.view(), m.view(), g.view())
                .map(|o| format!("{o:?}")),
        )?;
    }
    let g_bad = Array4::<T>::zeros((1, 2, 3, 5));
    parity(
        "attention_backward",
        "grad_output [1, 2, 3, 5] for output [1, 2, 3, 6]",
        Backend::<T>::attention_backward(
            &reference,
            q.view(),
            k.view(),
            v.view(),
            m.view(),
            g_bad.view(),
        )
        .map(|o| format!("{o:?}")),
        backend
            .attention_backward(q.view(), k.view(), v.view(), m.view(), g_bad.view())
            .map(|o| format!("{o:?}")),
    )?;
    Ok(())
}

/// [`check_embedding`] as a proptest property.
pub fn embedding_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    table: ArrayView2<'_, T>,
    ids: ArrayView1<'_, usize>,
) -> TestCaseResult {
    as_property(check_embedding(backend, table, ids))
}

/// [`check_embedding_backward`] as a proptest property.
pub fn embedding_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    vocab: usize,
    ids: ArrayView1<'_, usize>,
    grad_output: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_embedding_backward(backend, vocab, ids, grad_output))
}

/// [`check_dropout`] as a proptest property.
pub fn dropout_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    x: ArrayView2<'_, T>,
    p: f64,
    key: RandomKey,
) -> TestCaseResult {
    as_property(check_dropout(backend, x, p, key))
}

/// [`check_dropout_backward`] as a proptest property.
pub fn dropout_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    grad_output: ArrayView2<'_, T>,
    mask: ArrayView2<'_, bool>,
    scale: T,
) -> TestCaseResult {
    as_property(check_dropout_backward(backend, grad_output, mask, scale))
}

/// [`check_attention`] as a proptest property.
pub fn attention_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    q: ArrayView4<'_, T>,
    k: ArrayView4<'_, T>,
    v: ArrayView4<'_, T>,
    key_mask: ArrayView2<'_, T>,
) -> TestCaseResult {
    as_property(check_attention(backend, q, k, v, key_mask))
}

/// [`check_attention_backward`] as a proptest property.
pub fn attention_backward_matches_reference<T: Scalar>(
    backend: &impl Backend<T>,
    q: ArrayView4<'_, T>,
    k: ArrayView4<'_, T>,
    v: ArrayView4<'_, T>,
    key_mask: ArrayView2<'_, T>,
    grad_output: ArrayView4<'_, T>,
) -> TestCaseResult {
    check_attention_backward(backend, q, k, v, key_mask, grad_output)
        .map(drop)
        .map_err(|f| proptest::test_runner::TestCaseError::fail(f.to_string()))
}
