//! Input checks shared by every backend, so that the same bad input gives the same error
//! everywhere (error parity is itself a conformance property).

use ndarray::{ArrayView1, ArrayView2};

use crate::{Error, Result};

/// Largest length a kernel index may take: kernels index with `uint`.
pub const MAX_KERNEL_LENGTH: usize = u32::MAX as usize;

/// A row-wise op over an `rows × cols` matrix: `cols ≥ 1` (the reduced axis has no identity for
/// max/LSE/softmax), and both sizes fit a `u32` kernel index.
pub fn rows_op<T>(op: &'static str, x: ArrayView2<'_, T>) -> Result<()> {
    let (rows, cols) = x.dim();
    if cols == 0 {
        return Err(Error::EmptyInput {
            op,
            detail: format!(
                "rows of length 0 (shape [{rows}, 0]): the row reduction has no identity"
            ),
        });
    }
    fits_kernel_index(op, "row length", cols)?;
    fits_kernel_index(op, "row count", rows)?;
    fits_kernel_index(op, "element count", rows.saturating_mul(cols))?;
    Ok(())
}

/// A mean loss over `n` pairs: equal lengths and `n ≥ 1` (the mean of nothing is undefined).
pub fn mean_loss<T>(
    op: &'static str,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
) -> Result<()> {
    if logits.len() != labels.len() {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "logits [{}] vs labels [{}]: lengths must be equal",
                logits.len(),
                labels.len()
            ),
        });
    }
    if logits.is_empty() {
        return Err(Error::EmptyInput {
            op,
            detail: "no elements: the mean over 0 elements is undefined".to_string(),
        });
    }
    fits_kernel_index(op, "element count", logits.len())
}

/// A finite scalar argument (for example an upstream gradient).
pub fn finite_argument(op: &'static str, name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            op,
            name,
            value: format!("{value:e}"),
            reason: "must be finite".to_string(),
        })
    }
}

/// `value ≤ u32::MAX`: kernels index with `uint`, never a silent `as u32`.
pub fn fits_kernel_index(op: &'static str, what: &'static str, value: usize) -> Result<()> {
    if value > MAX_KERNEL_LENGTH {
        return Err(Error::TooLarge {
            op,
            what,
            value: value as u128,
            limit: MAX_KERNEL_LENGTH as u128,
        });
    }
    Ok(())
}

/// Two shapes that must be equal (an upstream gradient and the output it belongs to, or two
/// operands of an elementwise op).
pub fn same_shape(
    op: &'static str,
    what: &'static str,
    shape: &[usize],
    expected_what: &'static str,
    expected: &[usize],
) -> Result<()> {
    if shape != expected {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!("{what} {shape:?} vs {expected_what} {expected:?}: must be equal"),
        });
    }
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    fits_kernel_index(op, "element count", count.unwrap_or(usize::MAX))
}

/// A matrix product `[m, k]·[k, n]`: inner dimensions agree, every size fits a `u32` index.
/// `k = 0` is valid (the product is the zero matrix).
pub fn matmul<T>(op: &'static str, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Result<()> {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    if k != k2 {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!("[{m}, {k}]·[{k2}, {n}]: inner dimensions must agree"),
        });
    }
    fits_kernel_index(op, "element count of a", m.saturating_mul(k))?;
    fits_kernel_index(op, "element count of b", k.saturating_mul(n))?;
    fits_kernel_index(op, "element count of the product", m.saturating_mul(n))
}

/// The VJP of a matrix product: [`matmul`]'s checks, and the upstream gradient is `[m, n]`.
pub fn matmul_backward<T>(
    op: &'static str,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> Result<()> {
    matmul(op, a, b)?;
    let expected = [a.nrows(), b.ncols()];
    same_shape(op, "grad_output", grad_output.shape(), "output", &expected)
}

/// The VJP of a batched matrix product: [`batched_matmul`]'s checks, and the upstream gradient
/// is `[b, m, n]`.
pub fn batched_matmul_backward<T>(
    op: &'static str,
    a: ndarray::ArrayView3<'_, T>,
    b: ndarray::ArrayView3<'_, T>,
    grad_output: ndarray::ArrayView3<'_, T>,
) -> Result<()> {
    batched_matmul(op, a, b)?;
    let expected = [a.dim().0, a.dim().1, b.dim().2];
    same_shape(op, "grad_output", grad_output.shape(), "output", &expected)
}

/// A batched matrix product `[b, m, k]·[b, k, n]`: batch sizes and inner dimensions agree.
pub fn batched_matmul<T>(
    op: &'static str,
    a: ndarray::ArrayView3<'_, T>,
    b: ndarray::ArrayView3<'_, T>,
) -> Result<()> {
    let ((batch, m, k), (batch2, k2, n)) = (a.dim(), b.dim());
    if batch != batch2 || k != k2 {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "[{batch}, {m}, {k}]·[{batch2}, {k2}, {n}]: batch sizes and inner dimensions must agree"
            ),
        });
    }
    fits_kernel_index(
        op,
        "element count of a",
        batch.saturating_mul(m).saturating_mul(k),
    )?;
    fits_kernel_index(
        op,
        "element count of b",
        batch.saturating_mul(k).saturating_mul(n),
    )?;
    fits_kernel_index(
        op,
        "element count of the product",
        batch.saturating_mul(m).saturating_mul(n),
    )
}

/// A row vector `b [n]` broadcast along the rows of `x [m, n]`.
pub fn row_vector<T>(op: &'static str, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<()> {
    let (m, n) = x.dim();
    if b.len() != n {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "x [{m}, {n}] with row vector [{}]: lengths must agree",
                b.len()
            ),
        });
    }
    fits_kernel_index(op, "element count", m.saturating_mul(n))
}

/// An axis of a 2-D array: 0 (reduce over rows, one result per column) or 1 (per row).
pub fn axis_2d(op: &'static str, axis: usize) -> Result<()> {
    if axis > 1 {
        return Err(Error::InvalidParameter {
            op,
            name: "axis",
            value: axis.to_string(),
            reason: "a 2-D array has axes 0 and 1".to_string(),
        });
    }
    Ok(())
}

/// A probability `p ∈ [0, 1)` (dropout: `p = 1` would scale by `1/0`).
pub fn probability(op: &'static str, name: &'static str, p: f64) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            op,
            name,
            value: format!("{p:e}"),
            reason: "must lie in [0, 1)".to_string(),
        })
    }
}

/// A finite, strictly positive parameter (LayerNorm's eps).
pub fn positive_finite(op: &'static str, name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            op,
            name,
            value: format!("{value:e}"),
            reason: "must be finite and > 0".to_string(),
        })
    }
}

/// A finite, non-negative parameter (an init bound or standard deviation).
pub fn non_negative_finite(op: &'static str, name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            op,
            name,
            value: format!("{value:e}"),
            reason: "must be finite and ≥ 0".to_string(),
        })
    }
}

/// LayerNorm over the rows of `x [m, n]` with `gamma [n]`, `beta [n]`: `n ≥ 1` (the mean of an
/// empty row is undefined), matching lengths, finite `eps > 0`.
pub fn layer_norm<T>(
    op: &'static str,
    x: ArrayView2<'_, T>,
    gamma: ArrayView1<'_, T>,
    beta: ArrayView1<'_, T>,
    eps: f64,
) -> Result<()> {
    positive_finite(op, "eps", eps)?;
    let (m, n) = x.dim();
    if gamma.len() != n || beta.len() != n {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "x [{m}, {n}] with gamma [{}] and beta [{}]: lengths must equal the row length",
                gamma.len(),
                beta.len()
            ),
        });
    }
    rows_op(op, x)
}

/// Embedding ids: each id `< vocab`. Reports the first offending position.
pub fn embedding_ids(op: &'static str, ids: ArrayView1<'_, usize>, vocab: usize) -> Result<()> {
    if let Some((position, &id)) = ids.iter().enumerate().find(|&(_, &id)| id >= vocab) {
        return Err(Error::InvalidParameter {
            op,
            name: "ids",
            value: format!("ids[{position}] = {id}"),
            reason: format!("ids must be < the vocabulary size {vocab}"),
        });
    }
    fits_kernel_index(op, "id count", ids.len())?;
    fits_kernel_index(op, "vocabulary size", vocab)
}

/// The VJP of attention: [`attention`]'s checks, and the upstream gradient is
/// `[b, h, s_q, d_v]`.
pub fn attention_backward<T>(
    op: &'static str,
    q: ndarray::ArrayView4<'_, T>,
    k: ndarray::ArrayView4<'_, T>,
    v: ndarray::ArrayView4<'_, T>,
    key_mask: ArrayView2<'_, T>,
    grad_output: ndarray::ArrayView4<'_, T>,
) -> Result<()> {
    attention(op, q, k, v, key_mask)?;
    let (batch, heads, s_q, _) = q.dim();
    let expected = [batch, heads, s_q, v.dim().3];
    same_shape(op, "grad_output", grad_output.shape(), "output", &expected)
}

/// Scaled dot-product attention: `q [b, h, s_q, d]`, `k [b, h, s_k, d]`, `v [b, h, s_k, d_v]`,
/// `key_mask [b, s_k]`; `d ≥ 1` (the scale `1/√d`) and `s_k ≥ 1` (softmax over the keys has no
/// identity).
pub fn attention<T>(
    op: &'static str,
    q: ndarray::ArrayView4<'_, T>,
    k: ndarray::ArrayView4<'_, T>,
    v: ndarray::ArrayView4<'_, T>,
    key_mask: ArrayView2<'_, T>,
) -> Result<()> {
    let (b, h, s_q, d) = q.dim();
    let (kb, kh, s_k, kd) = k.dim();
    let (vb, vh, vs, d_v) = v.dim();
    let (mb, ms) = key_mask.dim();
    if (kb, kh, kd) != (b, h, d) || (vb, vh, vs) != (b, h, s_k) || (mb, ms) != (b, s_k) {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "q [{b}, {h}, {s_q}, {d}], k [{kb}, {kh}, {s_k}, {kd}], v [{vb}, {vh}, {vs}, {d_v}], \
                 key_mask [{mb}, {ms}]: expected k [b, h, s_k, d], v [b, h, s_k, d_v], key_mask [b, s_k]"
            ),
        });
    }
    if d == 0 {
        return Err(Error::EmptyInput {
            op,
            detail: "head_dim = 0: the scale 1/√head_dim is undefined".to_string(),
        });
    }
    if s_k == 0 {
        return Err(Error::EmptyInput {
            op,
            detail: "no keys (s_k = 0): the softmax over keys has no identity".to_string(),
        });
    }
    for (what, dims) in [("q", q.shape()), ("k", k.shape()), ("v", v.shape())] {
        let count = dims.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x));
        fits_kernel_index(op, what, count.unwrap_or(usize::MAX))?;
    }
    fits_kernel_index(
        op,
        "scores",
        b.saturating_mul(h).saturating_mul(s_q).saturating_mul(s_k),
    )
}
/// Two operands of an elementwise loss: equal lengths (an empty pair is valid for a sum).
pub fn same_length(op: &'static str, first: usize, second: usize) -> Result<()> {
    if first != second {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!("operands have {first} and {second} elements: they must be equal"),
        });
    }
    fits_kernel_index(op, "element count", first)
}

/// Class-index targets of cross-entropy over `[rows, classes]` logits: one target per row,
/// each in `0..classes` or equal to `ignore_index`.
pub fn class_targets(
    op: &'static str,
    rows: usize,
    classes: usize,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
) -> Result<()> {
    if targets.len() != rows {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "logits have {rows} rows but there are {} targets: one target per row",
                targets.len()
            ),
        });
    }
    for (row, &target) in targets.iter().enumerate() {
        let in_range = usize::try_from(target).is_ok_and(|class| class < classes);
        if target != ignore_index && !in_range {
            return Err(Error::InvalidParameter {
                op,
                name: "target",
                value: format!("{target} (row {row})"),
                reason: format!(
                    "must be a class index in 0..{classes} or ignore_index = {ignore_index}"
                ),
            });
        }
    }
    Ok(())
}

/// The product of `dims` (an element count), or `TooLarge` when it overflows `usize`.
pub fn element_count(op: &'static str, what: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or(Error::TooLarge {
            op,
            what,
            value: dims
                .iter()
                .fold(1u128, |acc, &n| acc.saturating_mul(n as u128)),
            limit: usize::MAX as u128,
        })
}

/// A vector of `len` copies of `value`, or `TooLarge` when the host cannot allocate it (instead
/// of a capacity-overflow panic or an allocation-failure abort).
pub fn filled_vec<T: Clone>(op: &'static str, len: usize, value: T) -> Result<Vec<T>> {
    let mut values = Vec::new();
    values.try_reserve_exact(len).map_err(|_| Error::TooLarge {
        op,
        what: "bytes",
        value: (len as u128).saturating_mul(std::mem::size_of::<T>() as u128),
        limit: isize::MAX as u128,
    })?;
    values.resize(len, value);
    Ok(values)
}
