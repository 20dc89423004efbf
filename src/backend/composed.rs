//! The composed defaults of [`Backend`]: ops whose reference definition is itself a
//! composition of other ops, computed from the backend's own parts.
//!
//! Each function validates its inputs with the reference's `validate` calls (so errors match
//! the reference's), calls the backend's parts, and does on the host only the arithmetic the
//! reference does there, in the same order and in `T`. The result is therefore the reference's
//! formula evaluated with the backend's parts, and the op's documented bound (derived from the
//! parts' bounds) holds whenever the parts pass. A part that is unsupported makes the composed
//! op unsupported under its own name ([`Part::call`]); a part that returns a wrongly shaped
//! array is an [`Error::Backend`] failure of the composed op, never a panic.

use std::marker::PhantomData;

use ndarray::{
    s, Array, Array1, Array2, Array3, Array4, ArrayView1, ArrayView2, ArrayView3, ArrayView4, Axis,
    Dimension,
};

use super::{AttentionGrads, Backend};
use crate::reference::{self, Reduction};
use crate::{validate, Error, Result, Scalar};

/// `n` as `T` (exact below `2^24` in f32, `2^53` in f64), as the reference's `count`.
fn count<T: Scalar>(n: usize) -> T {
    T::from(n).unwrap_or_else(T::infinity)
}

/// The calls of one composed op `op` to the parts of `backend`.
struct Part<'a, T, B: ?Sized> {
    backend: &'a B,
    op: &'static str,
    scalar: PhantomData<T>,
}

impl<'a, T: Scalar, B: Backend<T> + ?Sized> Part<'a, T, B> {
    fn of(backend: &'a B, op: &'static str) -> Self {
        Part {
            backend,
            op,
            scalar: PhantomData,
        }
    }

    /// The result of the part `needs`, with an [`Error::Unsupported`] renamed to the composed
    /// op (its reason says which part is missing); other errors pass through.
    fn call<R>(&self, needs: &'static str, result: Result<R>) -> Result<R> {
        result.map_err(|error| match error {
            Error::Unsupported {
                backend,
                scalar,
                reason,
                ..
            } => Error::Unsupported {
                backend,
                op: self.op,
                scalar,
                reason: if reason.is_empty() {
                    format!("composed default: needs `{needs}`")
                } else {
                    format!("composed default: needs `{needs}`, which is unsupported: {reason}")
                },
            },
            other => other,
        })
    }

    /// [`Part::call`] for an array result, which must have the `expected` shape.
    fn array<A, D: Dimension>(
        &self,
        needs: &'static str,
        result: Result<Array<A, D>>,
        expected: &[usize],
    ) -> Result<Array<A, D>> {
        let array = self.call(needs, result)?;
        if array.shape() == expected {
            Ok(array)
        } else {
            Err(Error::Backend {
                backend: self.backend.name(),
                op: self.op,
                message: format!(
                    "composed default: `{needs}` returned shape {:?}, expected {expected:?}",
                    array.shape()
                ),
            })
        }
    }

    /// `backend.matmul(a, b)`, checked to be `[a rows, b columns]`.
    fn matmul(&self, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.array("matmul", self.backend.matmul(a, b), &[a.nrows(), b.ncols()])
    }
}

/// `(G·Bᵀ, Aᵀ·G)` with the backend's `matmul`, as [`reference::matmul_backward`].
pub(super) fn matmul_backward<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> Result<(Array2<T>, Array2<T>)> {
    const OP: &str = "matmul_backward";
    validate::matmul_backward(OP, a, b, grad_output)?;
    let part = Part::of(backend, OP);
    Ok((
        part.matmul(grad_output, b.t())?,
        part.matmul(a.t(), grad_output)?,
    ))
}

/// The backend's `matmul` of each batch entry, as [`reference::batched_matmul`].
pub(super) fn batched_matmul<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    a: ArrayView3<'_, T>,
    b: ArrayView3<'_, T>,
) -> Result<Array3<T>> {
    const OP: &str = "batched_matmul";
    validate::batched_matmul(OP, a, b)?;
    let (batch, m, _) = a.dim();
    let n = b.dim().2;
    let part = Part::of(backend, OP);
    let mut c = Array3::zeros((batch, m, n));
    for s in 0..batch {
        let product = part.matmul(a.index_axis(Axis(0), s), b.index_axis(Axis(0), s))?;
        c.index_axis_mut(Axis(0), s).assign(&product);
    }
    Ok(c)
}

/// `(G_s·B_sᵀ, A_sᵀ·G_s)` per batch entry with the backend's `matmul`, as
/// [`reference::batched_matmul_backward`].
pub(super) fn batched_matmul_backward<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    a: ArrayView3<'_, T>,
    b: ArrayView3<'_, T>,
    grad_output: ArrayView3<'_, T>,
) -> Result<(Array3<T>, Array3<T>)> {
    const OP: &str = "batched_matmul_backward";
    validate::batched_matmul_backward(OP, a, b, grad_output)?;
    let batch = a.dim().0;
    let part = Part::of(backend, OP);
    let mut grad_a = Array3::zeros(a.dim());
    let mut grad_b = Array3::zeros(b.dim());
    for s in 0..batch {
        let (a_s, b_s, g_s) = (
            a.index_axis(Axis(0), s),
            b.index_axis(Axis(0), s),
            grad_output.index_axis(Axis(0), s),
        );
        grad_a
            .index_axis_mut(Axis(0), s)
            .assign(&part.matmul(g_s, b_s.t())?);
        grad_b
            .index_axis_mut(Axis(0), s)
            .assign(&part.matmul(a_s.t(), g_s)?);
    }
    Ok((grad_a, grad_b))
}

/// `(G, sum_axis(G, 0))` with the backend's `sum_axis`, as [`reference::add_rows_backward`]
/// (whose column sums are `sum_axis` over axis 0). Total, like the reference.
pub(super) fn add_rows_backward<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    grad_output: ArrayView2<'_, T>,
) -> Result<(Array2<T>, Array1<T>)> {
    const OP: &str = "add_rows_backward";
    let part = Part::of(backend, OP);
    let grad_b = part.array(
        "sum_axis",
        backend.sum_axis(grad_output, 0),
        &[grad_output.ncols()],
    )?;
    Ok((grad_output.to_owned(), grad_b))
}

/// `(mul_rows(G, b), [Σ_i G_ij·X_ij]_j)` with the backend's `mul_rows` and, for each column
/// `j`, its `matmul` of `G[:, j]ᵀ [1, m]` by `X[:, j] [m, 1]` (a length-`m` dot product, the
/// reference's loop), as [`reference::mul_rows_backward`].
pub(super) fn mul_rows_backward<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    x: ArrayView2<'_, T>,
    b: ArrayView1<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> Result<(Array2<T>, Array1<T>)> {
    const OP: &str = "mul_rows_backward";
    validate::row_vector(OP, x, b)?;
    validate::same_shape(OP, "grad_output", grad_output.shape(), "x", x.shape())?;
    let part = Part::of(backend, OP);
    let grad_x = part.array("mul_rows", backend.mul_rows(grad_output, b), x.shape())?;
    let mut grad_b = Array1::zeros(x.ncols());
    for (j, out) in grad_b.iter_mut().enumerate() {
        let dot = part.matmul(
            grad_output.column(j).insert_axis(Axis(0)),
            x.column(j).insert_axis(Axis(1)),
        )?;
        *out = dot[[0, 0]];
    }
    Ok((grad_x, grad_b))
}

/// The reduced length of `axis` for a `shape`, or the reference's `EmptyInput` when it is 0.
fn mean_length(op: &'static str, shape: (usize, usize), axis: usize) -> Result<usize> {
    validate::axis_2d(op, axis)?;
    let length = if axis == 0 { shape.0 } else { shape.1 };
    if length == 0 {
        return Err(reference::empty_mean(op, shape, axis));
    }
    Ok(length)
}

/// `sum_axis(x, axis) / ℓ` with the backend's `sum_axis` and one division in `T`, as
/// [`reference::mean_axis`].
pub(super) fn mean_axis<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    x: ArrayView2<'_, T>,
    axis: usize,
) -> Result<Array1<T>> {
    const OP: &str = "mean_axis";
    let length = mean_length(OP, x.dim(), axis)?;
    let kept = x.len_of(Axis(1 - axis));
    let sums = Part::of(backend, OP).array("sum_axis", backend.sum_axis(x, axis), &[kept])?;
    let n = count::<T>(length);
    Ok(sums.mapv(|s| s / n))
}

/// `sum_axis_backward(shape, axis, g) / ℓ` with the backend's broadcast and one division in
/// `T`, as [`reference::mean_axis_backward`].
pub(super) fn mean_axis_backward<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    shape: (usize, usize),
    axis: usize,
    grad_output: ArrayView1<'_, T>,
) -> Result<Array2<T>> {
    const OP: &str = "mean_axis_backward";
    let length = mean_length(OP, shape, axis)?;
    let kept = if axis == 0 { shape.1 } else { shape.0 };
    validate::same_shape(OP, "grad_output", grad_output.shape(), "output", &[kept])?;
    let broadcast = Part::of(backend, OP).array(
        "sum_axis_backward",
        backend.sum_axis_backward(shape, axis, grad_output),
        &[shape.0, shape.1],
    )?;
    let n = count::<T>(length);
    Ok(broadcast.mapv(|g| g / n))
}

/// `bce_with_logits(z, y, Mean)`, which the reference defines as [`reference::bce_with_logits_mean`].
pub(super) fn bce_with_logits_mean<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
) -> Result<T> {
    const OP: &str = "bce_with_logits_mean";
    validate::mean_loss(OP, logits, labels)?;
    Part::of(backend, OP).call(
        "bce_with_logits",
        backend.bce_with_logits(logits, labels, Reduction::Mean),
    )
}

/// `bce_with_logits_backward(z, y, Mean, g)`, which the reference defines as
/// [`reference::bce_with_logits_mean_backward`].
pub(super) fn bce_with_logits_mean_backward<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
    grad_output: T,
) -> Result<Array1<T>> {
    const OP: &str = "bce_with_logits_mean_backward";
    validate::mean_loss(OP, logits, labels)?;
    Part::of(backend, OP).array(
        "bce_with_logits_backward",
        backend.bce_with_logits_backward(logits, labels, Reduction::Mean, grad_output),
        &[logits.len()],
    )
}

/// The backend's `log_softmax_rows`, then the reference's reduction on the host, as
/// [`reference::cross_entropy`].
pub(super) fn cross_entropy<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    logits: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
) -> Result<T> {
    const OP: &str = "cross_entropy";
    reference::validate_cross_entropy(OP, logits, targets, ignore_index, reduction)?;
    let log_probabilities = Part::of(backend, OP).array(
        "log_softmax_rows",
        backend.log_softmax_rows(logits),
        logits.shape(),
    )?;
    Ok(reference::cross_entropy_from_log_probabilities(
        log_probabilities.view(),
        targets,
        ignore_index,
        reduction,
    ))
}

/// The backend's `softmax_rows`, then the reference's `(p − onehot)·g / count` on the host, as
/// [`reference::cross_entropy_backward`].
pub(super) fn cross_entropy_backward<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    logits: ArrayView2<'_, T>,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
    reduction: Reduction,
    grad_output: T,
) -> Result<Array2<T>> {
    const OP: &str = "cross_entropy_backward";
    reference::validate_cross_entropy(OP, logits, targets, ignore_index, reduction)?;
    let probabilities = Part::of(backend, OP).array(
        "softmax_rows",
        backend.softmax_rows(logits),
        logits.shape(),
    )?;
    Ok(reference::cross_entropy_gradient_from_probabilities(
        probabilities.view(),
        targets,
        ignore_index,
        reduction,
        grad_output,
    ))
}

/// The attention weights `P = softmax_rows((Q·Kᵀ)·scale + mask)` of one (batch, head), with the
/// backend's `matmul` and `softmax_rows` and the reference's scale and mask on the host.
fn attention_weights<T: Scalar, B: Backend<T> + ?Sized>(
    part: &Part<'_, T, B>,
    q: ArrayView2<'_, T>,
    k: ArrayView2<'_, T>,
    mask: ArrayView1<'_, T>,
    scale: T,
) -> Result<Array2<T>> {
    let scores = reference::scale_and_mask(part.matmul(q, k.t())?, mask, scale);
    let shape = [q.nrows(), k.nrows()];
    part.array(
        "softmax_rows",
        part.backend.softmax_rows(scores.view()),
        &shape,
    )
}

/// `softmax_rows((Q·Kᵀ)·scale + mask)·V` per batch entry and head with the backend's `matmul`
/// and `softmax_rows`, as [`reference::attention`].
pub(super) fn attention<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    q: ArrayView4<'_, T>,
    k: ArrayView4<'_, T>,
    v: ArrayView4<'_, T>,
    key_mask: ArrayView2<'_, T>,
) -> Result<Array4<T>> {
    const OP: &str = "attention";
    validate::attention(OP, q, k, v, key_mask)?;
    let (batch, heads, s_q, d) = q.dim();
    let d_v = v.dim().3;
    let scale = reference::attention_scale::<T>(d);
    let part = Part::of(backend, OP);
    let mut out = Array4::zeros((batch, heads, s_q, d_v));
    for b in 0..batch {
        for h in 0..heads {
            let weights = attention_weights(
                &part,
                q.slice(s![b, h, .., ..]),
                k.slice(s![b, h, .., ..]),
                key_mask.row(b),
                scale,
            )?;
            let o = part.matmul(weights.view(), v.slice(s![b, h, .., ..]))?;
            out.slice_mut(s![b, h, .., ..]).assign(&o);
        }
    }
    Ok(out)
}

/// The VJP of attention per batch entry and head with the backend's `matmul`, `softmax_rows`
/// and `softmax_rows_backward` and the reference's scale on the host, as
/// [`reference::attention_backward`].
pub(super) fn attention_backward<T: Scalar, B: Backend<T> + ?Sized>(
    backend: &B,
    q: ArrayView4<'_, T>,
    k: ArrayView4<'_, T>,
    v: ArrayView4<'_, T>,
    key_mask: ArrayView2<'_, T>,
    grad_output: ArrayView4<'_, T>,
) -> Result<AttentionGrads<T>> {
    const OP: &str = "attention_backward";
    validate::attention_backward(OP, q, k, v, key_mask, grad_output)?;
    let (batch, heads, _, d) = q.dim();
    let scale = reference::attention_scale::<T>(d);
    let part = Part::of(backend, OP);
    let mut grad_q = Array4::zeros(q.raw_dim());
    let mut grad_k = Array4::zeros(k.raw_dim());
    let mut grad_v = Array4::zeros(v.raw_dim());
    for b in 0..batch {
        for h in 0..heads {
            let (q_bh, k_bh, v_bh) = (
                q.slice(s![b, h, .., ..]),
                k.slice(s![b, h, .., ..]),
                v.slice(s![b, h, .., ..]),
            );
            let g = grad_output.slice(s![b, h, .., ..]);
            let weights = attention_weights(&part, q_bh, k_bh, key_mask.row(b), scale)?;
            grad_v
                .slice_mut(s![b, h, .., ..])
                .assign(&part.matmul(weights.t(), g)?);
            let grad_weights = part.matmul(g, v_bh.t())?;
            let grad_scores = part
                .array(
                    "softmax_rows_backward",
                    backend.softmax_rows_backward(weights.view(), grad_weights.view()),
                    weights.shape(),
                )?
                .mapv(|x| x * scale);
            grad_q
                .slice_mut(s![b, h, .., ..])
                .assign(&part.matmul(grad_scores.view(), k_bh)?);
            grad_k
                .slice_mut(s![b, h, .., ..])
                .assign(&part.matmul(grad_scores.t(), q_bh)?);
        }
    }
    Ok((grad_q, grad_k, grad_v))
}
