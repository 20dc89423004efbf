//! Layers built from the ops: LayerNorm, embedding, dropout and scaled dot-product attention,
//! forward and VJP, in plain loops.
//!
//! NaN and ±∞ in the data propagate per IEEE 754; invalid hyperparameters (eps, p, ids) are
//! `InvalidParameter`, bad shapes `ShapeMismatch`, reductions without identity `EmptyInput`.

use ndarray::{
    s, Array, Array1, Array2, Array4, ArrayView, ArrayView1, ArrayView2, ArrayView4, Dimension, Zip,
};

use crate::reference::{matmul, softmax_rows, softmax_rows_backward};
use crate::rng::{dropout_threshold, RandomKey};
use crate::{validate, Error, Result, Scalar};

/// `n` as `T` (exact below `2^24` in f32).
fn count<T: Scalar>(n: usize) -> T {
    T::from(n).unwrap_or_else(T::infinity)
}

/// Per-row statistics of LayerNorm: `xhat = (x − μ)·rstd`, and `rstd`.
struct RowNorm<T> {
    xhat: Array1<T>,
    rstd: T,
}

/// The forward arithmetic of [`layer_norm`] for one row (see its doc for the order).
fn normalise_row<T: Scalar>(row: ArrayView1<'_, T>, eps: T) -> RowNorm<T> {
    let n = count::<T>(row.len());
    let mut sum = T::zero();
    for &v in row.iter() {
        sum = sum + v;
    }
    let mean = sum / n;
    let mut squares = T::zero();
    for &v in row.iter() {
        let d = v - mean;
        squares = squares + d * d;
    }
    let var = squares / n;
    let rstd = T::one() / (var + eps).sqrt();
    RowNorm {
        xhat: row.mapv(|v| (v - mean) * rstd),
        rstd,
    }
}

/// `eps` validated and rounded to `T` (it must stay positive there): the `eps` every backend
/// normalises with. Third-party backends call it to return the reference's error for an `eps`
/// that rounds to 0 in `T` (e.g. `1e-300` in f32).
///
/// Errors: `InvalidParameter` if `eps` rounds to 0 (or is not positive) in `T`.
pub fn layer_norm_eps<T: Scalar>(op: &'static str, eps: f64) -> Result<T> {
    let eps_t = T::narrow(eps);
    if eps_t > T::zero() {
        Ok(eps_t)
    } else {
        Err(Error::InvalidParameter {
            op,
            name: "eps",
            value: format!("{eps:e}"),
            reason: format!("rounds to 0 in {}", T::NAME),
        })
    }
}

/// LayerNorm over the last axis of `x [m, n]` (PyTorch `nn.LayerNorm(n)` with
/// `elementwise_affine=True`, `torch.nn.functional.layer_norm`):
/// ```text
/// μ = (Σ_j x_j) / n                     (sequential sum, one division)
/// var = (Σ_j (x_j − μ)·(x_j − μ)) / n   (biased: divides by n, as PyTorch)
/// rstd = 1 / sqrt(var + eps)
/// y_j = ((x_j − μ) · rstd) · γ_j + β_j
/// ```
/// `eps` is rounded to `T` (PyTorch's default is `1e-5`). PyTorch's kernels compute the
/// moments in one pass (Welford) in a wider accumulator; the two-pass form here is the
/// definition. Bound: [`crate::tolerance::layer_norm`].
///
/// Errors: `InvalidParameter` unless `eps` is finite and `> 0` (also after rounding to `T`);
/// `ShapeMismatch` if `gamma`/`beta` are not `[n]`; `EmptyInput` if `n = 0`. Zero rows give an
/// empty result.
pub fn layer_norm<T: Scalar>(
    x: ArrayView2<'_, T>,
    gamma: ArrayView1<'_, T>,
    beta: ArrayView1<'_, T>,
    eps: f64,
) -> Result<Array2<T>> {
    const OP: &str = "layer_norm";
    validate::layer_norm(OP, x, gamma, beta, eps)?;
    let eps = layer_norm_eps::<T>(OP, eps)?;
    let mut out = Array2::zeros(x.dim());
    for (row, mut out_row) in x.rows().into_iter().zip(out.rows_mut()) {
        let norm = normalise_row(row, eps);
        for j in 0..row.len() {
            out_row[j] = norm.xhat[j] * gamma[j] + beta[j];
        }
    }
    Ok(out)
}

/// VJP of [`layer_norm`]: with `x̂ = (x − μ)·rstd` per row (recomputed as in the forward) and
/// `d_j = g_j·γ_j`,
/// ```text
/// a = (Σ_j d_j) / n,   b = (Σ_j d_j·x̂_j) / n
/// ∂L/∂x_j = rstd · ((d_j − a) − x̂_j · b)
/// ∂L/∂γ_j = Σ_i g_ij · x̂_ij,    ∂L/∂β_j = Σ_i g_ij      (sequential over rows i)
/// ```
/// PyTorch: `native_layer_norm_backward` (same formula, different association). Returns
/// `(grad_x, grad_gamma, grad_beta)`. Bound: [`crate::tolerance::layer_norm_backward`].
/// Errors: as [`layer_norm`], plus `ShapeMismatch` if `g` is not the shape of `x`.
pub fn layer_norm_backward<T: Scalar>(
    x: ArrayView2<'_, T>,
    gamma: ArrayView1<'_, T>,
    beta: ArrayView1<'_, T>,
    eps: f64,
    grad_output: ArrayView2<'_, T>,
) -> Result<(Array2<T>, Array1<T>, Array1<T>)> {
    const OP: &str = "layer_norm_backward";
    validate::layer_norm(OP, x, gamma, beta, eps)?;
    validate::same_shape(OP, "grad_output", grad_output.shape(), "x", x.shape())?;
    let eps = layer_norm_eps::<T>(OP, eps)?;
    let n = x.ncols();
    let n_t = count::<T>(n);
    let mut grad_x = Array2::zeros(x.dim());
    let mut grad_gamma = Array1::zeros(n);
    let mut grad_beta = Array1::zeros(n);
    for ((row, g), mut grad_row) in x
        .rows()
        .into_iter()
        .zip(grad_output.rows())
        .zip(grad_x.rows_mut())
    {
        let norm = normalise_row(row, eps);
        let d: Array1<T> = Array1::from_shape_fn(n, |j| g[j] * gamma[j]);
        let (mut sum_d, mut sum_dx) = (T::zero(), T::zero());
        for j in 0..n {
            sum_d = sum_d + d[j];
            sum_dx = sum_dx + d[j] * norm.xhat[j];
        }
        let (a, b) = (sum_d / n_t, sum_dx / n_t);
        for j in 0..n {
            grad_row[j] = norm.rstd * ((d[j] - a) - norm.xhat[j] * b);
            grad_gamma[j] = grad_gamma[j] + g[j] * norm.xhat[j];
            grad_beta[j] = grad_beta[j] + g[j];
        }
    }
    Ok((grad_x, grad_gamma, grad_beta))
}

/// Embedding lookup: row `ids[i]` of `table [V, d]` for each of the `n` ids.
/// ```text
/// Y_ij = table[ids_i, j]      (Y: [n, d])
/// ```
/// PyTorch: `torch.nn.functional.embedding(ids, table)` (no `padding_idx`, no `max_norm`).
/// Exact (a gather): backends must agree bit for bit. Errors: `InvalidParameter` if some
/// `id ≥ V` (the first offending position is reported). `n = 0` gives `[0, d]`.
pub fn embedding<T: Scalar>(
    table: ArrayView2<'_, T>,
    ids: ArrayView1<'_, usize>,
) -> Result<Array2<T>> {
    validate::embedding_ids("embedding", ids, table.nrows())?;
    let d = table.ncols();
    Ok(Array2::from_shape_fn((ids.len(), d), |(i, j)| {
        table[[ids[i], j]]
    }))
}

/// VJP of [`embedding`] with respect to the table: a scatter-add of the upstream rows into a
/// `[V, d]` zero array, **sequential in index order** (repeated ids accumulate in the order
/// they occur):
/// ```text
/// ∂L/∂table[v, j] = Σ_{i : ids_i = v} G_ij      (i = 0, 1, …, n−1)
/// ```
/// PyTorch: `embedding_dense_backward` (which may sum in another order). Bound:
/// [`crate::tolerance::embedding_backward`]. Errors: `InvalidParameter` for an `id ≥ vocab`;
/// `ShapeMismatch` if `G` does not have `n` rows.
pub fn embedding_backward<T: Scalar>(
    vocab: usize,
    ids: ArrayView1<'_, usize>,
    grad_output: ArrayView2<'_, T>,
) -> Result<Array2<T>> {
    const OP: &str = "embedding_backward";
    validate::embedding_ids(OP, ids, vocab)?;
    let d = grad_output.ncols();
    validate::same_shape(
        OP,
        "grad_output",
        grad_output.shape(),
        "output",
        &[ids.len(), d],
    )?;
    let mut grad = Array2::zeros((vocab, d));
    for (i, &id) in ids.iter().enumerate() {
        for j in 0..d {
            grad[[id, j]] = grad[[id, j]] + grad_output[[i, j]];
        }
    }
    Ok(grad)
}

/// The result of [`dropout`]: the output, the keep mask and the scale, so that a second
/// backend's mask can be compared bit for bit and the backward applied.
#[derive(Debug, Clone, PartialEq)]
pub struct DropoutOutput<T, D: Dimension> {
    /// `y = x · (keep ? scale : 0)`.
    pub output: Array<T, D>,
    /// `true` where the element is kept.
    pub mask: Array<bool, D>,
    /// `round_T(1 / (1 − p))`.
    pub scale: T,
}

/// The dropout keep mask for an array of `shape`, recomputable from `(p, key)` alone: element
/// at row-major logical index `i` is kept iff
/// ```text
/// key.uniform(i) ≥ p    ⇔    key.bits(i) ≥ ⌈p·2^32⌉      (crate::rng::dropout_threshold)
/// ```
/// so each element is kept with probability `1 − p` (within `2^-32`), independently of the
/// memory layout. Errors: `InvalidParameter` unless `0 ≤ p < 1`.
pub fn dropout_mask<Sh: ndarray::IntoDimension>(
    shape: Sh,
    p: f64,
    key: RandomKey,
) -> Result<Array<bool, Sh::Dim>> {
    let threshold = dropout_threshold(p)?;
    let shape = shape.into_dimension();
    let mut mask = Array::from_elem(shape, false);
    // `iter_mut` visits elements in row-major logical order.
    for (index, keep) in (0u64..).zip(mask.iter_mut()) {
        *keep = u64::from(key.bits(index)) >= threshold;
    }
    Ok(mask)
}

/// The dropout scale `round_T(1 / (1 − p))`, computed in f64 and rounded once (a kernel gets it
/// from the host). Errors: `InvalidParameter` unless `0 ≤ p < 1`.
pub fn dropout_scale<T: Scalar>(p: f64) -> Result<T> {
    validate::probability("dropout_scale", "p", p)?;
    Ok(T::narrow(1.0 / (1.0 - p)))
}

/// Inverted dropout (PyTorch `torch.nn.functional.dropout(x, p, training=True)`):
/// ```text
/// y_i = x_i · m_i,    m_i = scale if keep_i else 0,    scale = round_T(1/(1 − p))
/// keep_i = key.uniform(i) ≥ p     (i = row-major logical index; see dropout_mask)
/// ```
/// Kept values are scaled by `1/(1 − p)` so `E[y] = x`. `p = 0` is the identity (every element
/// kept, `scale = 1`). The mask comes from [`crate::rng`] (Philox), not from PyTorch's
/// generator, so masks differ from PyTorch's while the distribution is the same. As in
/// PyTorch's `x * mask * scale`, a dropped `±∞`/NaN gives NaN (`∞·0`). One rounding per kept
/// element, so given the same mask and scale, backends agree bit for bit.
///
/// Errors: `InvalidParameter` unless `0 ≤ p < 1`.
pub fn dropout<T: Scalar, D: Dimension>(
    x: ArrayView<'_, T, D>,
    p: f64,
    key: RandomKey,
) -> Result<DropoutOutput<T, D>> {
    let scale = dropout_scale::<T>(p)?;
    let mask = dropout_mask(x.raw_dim(), p, key)?;
    let mut output = Array::zeros(x.raw_dim());
    Zip::from(&mut output)
        .and(&x)
        .and(&mask)
        .for_each(|y, &v, &keep| *y = v * if keep { scale } else { T::zero() });
    Ok(DropoutOutput {
        output,
        mask,
        scale,
    })
}

/// VJP of [`dropout`]: the same mask and scale applied to the upstream gradient.
/// ```text
/// ∂L/∂x_i = g_i · m_i,    m_i = scale if keep_i else 0
/// ```
/// Errors: `ShapeMismatch` if `g` is not the shape of `mask`.
pub fn dropout_backward<T: Scalar, D: Dimension>(
    grad_output: ArrayView<'_, T, D>,
    mask: ArrayView<'_, bool, D>,
    scale: T,
) -> Result<Array<T, D>> {
    validate::same_shape(
        "dropout_backward",
        "grad_output",
        grad_output.shape(),
        "mask",
        mask.shape(),
    )?;
    let mut out = Array::zeros(grad_output.raw_dim());
    Zip::from(&mut out)
        .and(&grad_output)
        .and(&mask)
        .for_each(|o, &g, &keep| *o = g * if keep { scale } else { T::zero() });
    Ok(out)
}

/// Scores of one (batch, head): `S = (Q·Kᵀ)·scale + mask` (mask broadcast over query rows).
fn attention_scores<T: Scalar>(
    q: ArrayView2<'_, T>,
    k: ArrayView2<'_, T>,
    mask: ArrayView1<'_, T>,
    scale: T,
) -> Result<Array2<T>> {
    Ok(scale_and_mask(matmul(q, k.t())?, mask, scale))
}

/// `S_ij = P_ij·scale + mask_j` from the product `P = Q·Kᵀ`, in place. Shared with the composed
/// default of [`crate::Backend::attention`], so both do the same host arithmetic.
pub(crate) fn scale_and_mask<T: Scalar>(
    mut product: Array2<T>,
    mask: ArrayView1<'_, T>,
    scale: T,
) -> Array2<T> {
    for mut row in product.rows_mut() {
        for (s, &m) in row.iter_mut().zip(mask.iter()) {
            *s = *s * scale + m;
        }
    }
    product
}

/// `round_T(1/√head_dim)`, computed in f64.
pub(crate) fn attention_scale<T: Scalar>(head_dim: usize) -> T {
    T::narrow(1.0 / (head_dim as f64).sqrt())
}

/// Scaled dot-product attention on already-projected heads, `q [b, h, s_q, d]`,
/// `k [b, h, s_k, d]`, `v [b, h, s_k, d_v]`, additive key mask `key_mask [b, s_k]` (0 keeps a
/// key, a large negative value drops it), for each batch entry and head:
/// ```text
/// S = (Q·Kᵀ) · scale + 1·maskᵀ,   scale = round_T(1/√d)      ([s_q, s_k])
/// P = softmax_rows(S)
/// O = P·V                                                    ([s_q, d_v])
/// ```
/// composed from [`matmul`] and [`softmax_rows`]. PyTorch:
/// `torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask)` with a float mask
/// broadcast to `[b, 1, 1, s_k]`, no dropout, not causal (its documented reference
/// implementation `softmax(q @ kᵀ * scale + mask) @ v`). A query row whose keys are all `−∞`
/// gives NaN (softmax's policy); a finite large negative mask (e.g. `−1e9`, or `−1e4` in f32
/// BERT code) gives weight 0 after underflow.
///
/// Bound: [`crate::tolerance::attention`] (composed from the parts' bounds). Errors:
/// `ShapeMismatch` for inconsistent shapes; `EmptyInput` if `d = 0` or `s_k = 0`.
/// `s_q = 0`, `b = 0` or `h = 0` give an empty result.
pub fn attention<T: Scalar>(
    q: ArrayView4<'_, T>,
    k: ArrayView4<'_, T>,
    v: ArrayView4<'_, T>,
    key_mask: ArrayView2<'_, T>,
) -> Result<Array4<T>> {
    validate::attention("attention", q, k, v, key_mask)?;
    let (batch, heads, s_q, d) = q.dim();
    let d_v = v.dim().3;
    let scale = attention_scale::<T>(d);
    let mut out = Array4::zeros((batch, heads, s_q, d_v));
    for b in 0..batch {
        for h in 0..heads {
            let scores = attention_scores(
                q.slice(s![b, h, .., ..]),
                k.slice(s![b, h, .., ..]),
                key_mask.row(b),
                scale,
            )?;
            let weights = softmax_rows(scores.view())?;
            let o = matmul(weights.view(), v.slice(s![b, h, .., ..]))?;
            out.slice_mut(s![b, h, .., ..]).assign(&o);
        }
    }
    Ok(out)
}

/// VJP of [`attention`] with respect to `q`, `k` and `v` (the mask is a constant), per batch
/// entry and head, recomputing `P` as in the forward:
/// ```text
/// ∂L/∂V = Pᵀ·G
/// ∂L/∂P = G·Vᵀ
/// ∂L/∂S = softmax_rows_backward(P, ∂L/∂P)       = P ∘ (∂L/∂P − rowsum(∂L/∂P ∘ P))
/// ∂L/∂Q = ((∂L/∂S)·scale)·K
/// ∂L/∂K = ((∂L/∂S)·scale)ᵀ·Q
/// ```
/// Returns `(grad_q, grad_k, grad_v)`. Bound: [`crate::tolerance::attention_backward`].
/// Errors: as [`attention`], plus `ShapeMismatch` if `G` is not `[b, h, s_q, d_v]`.
pub fn attention_backward<T: Scalar>(
    q: ArrayView4<'_, T>,
    k: ArrayView4<'_, T>,
    v: ArrayView4<'_, T>,
    key_mask: ArrayView2<'_, T>,
    grad_output: ArrayView4<'_, T>,
) -> Result<(Array4<T>, Array4<T>, Array4<T>)> {
    const OP: &str = "attention_backward";
    validate::attention_backward(OP, q, k, v, key_mask, grad_output)?;
    let (batch, heads, _, d) = q.dim();
    let scale = attention_scale::<T>(d);
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
            let scores = attention_scores(q_bh, k_bh, key_mask.row(b), scale)?;
            let weights = softmax_rows(scores.view())?;
            grad_v
                .slice_mut(s![b, h, .., ..])
                .assign(&matmul(weights.t(), g)?);
            let grad_weights = matmul(g, v_bh.t())?;
            let grad_scores =
                softmax_rows_backward(weights.view(), grad_weights.view())?.mapv(|x| x * scale);
            grad_q
                .slice_mut(s![b, h, .., ..])
                .assign(&matmul(grad_scores.view(), k_bh)?);
            grad_k
                .slice_mut(s![b, h, .., ..])
                .assign(&matmul(grad_scores.t(), q_bh)?);
        }
    }
    Ok((grad_q, grad_k, grad_v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array3};

    #[test]
    fn layer_norm_of_a_known_vector() {
        // x = [1, 2, 3, 4]: μ = 2.5, var = (2.25 + 0.25 + 0.25 + 2.25)/4 = 1.25;
        // with eps = 0.0 + tiny: y_j = (x_j − 2.5)/√(1.25 + eps)·γ_j + β_j.
        let x = array![[1.0f64, 2.0, 3.0, 4.0]];
        let gamma = array![1.0, 2.0, 1.0, 1.0];
        let beta = array![0.0, 0.0, 0.5, 0.0];
        let eps = 0.75; // var + eps = 2 → rstd = 1/√2
        let y = layer_norm(x.view(), gamma.view(), beta.view(), eps).expect("valid");
        let r = std::f64::consts::FRAC_1_SQRT_2;
        let expected = [-1.5 * r, -0.5 * r * 2.0, 0.5 * r + 0.5, 1.5 * r];
        for (a, e) in y.iter().zip(expected) {
            assert!((a - e).abs() <= 4.0 * f64::EPSILON, "{a} vs {e}");
        }
        // The mean of each output row with γ = 1, β = 0 is 0 and its biased variance var/(var+eps).
        let y = layer_norm(
            x.view(),
            Array1::ones(4).view(),
            Array1::zeros(4).view(),
            1e-5,
        )
        .expect("valid");
        assert!(y.sum().abs() < 1e-15);
        let v = y.iter().map(|t| t * t).sum::<f64>() / 4.0;
        assert!((v - 1.25 / (1.25 + 1e-5)).abs() < 1e-15);
    }

    #[test]
    fn layer_norm_rejects_bad_eps_and_shapes() {
        let x = Array2::<f32>::zeros((2, 3));
        let (g, b) = (Array1::<f32>::ones(3), Array1::<f32>::zeros(3));
        for eps in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-60] {
            assert!(
                matches!(
                    layer_norm(x.view(), g.view(), b.view(), eps),
                    Err(Error::InvalidParameter { .. })
                ),
                "eps = {eps}"
            );
        }
        assert!(matches!(
            layer_norm(x.view(), Array1::ones(2).view(), b.view(), 1e-5),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            layer_norm(
                Array2::<f32>::zeros((2, 0)).view(),
                Array1::ones(0).view(),
                Array1::zeros(0).view(),
                1e-5
            ),
            Err(Error::EmptyInput { .. })
        ));
        // A constant row normalises to 0 (var = 0, rstd = 1/√eps finite).
        let y = layer_norm(x.view(), g.view(), b.view(), 1e-5).expect("valid");
        assert!(y.iter().all(|&v| v == 0.0));
    }

    #[test]
    #[allow(
        clippy::float_cmp,
        reason = "gathers and single additions of small integers are exact"
    )]
    fn embedding_gathers_and_scatters_in_order() {
        let table = array![[0.0f32, 1.0], [10.0, 11.0], [20.0, 21.0]];
        let ids = array![2usize, 0, 2];
        let y = embedding(table.view(), ids.view()).expect("valid");
        assert_eq!(y, array![[20.0, 21.0], [0.0, 1.0], [20.0, 21.0]]);
        let g = array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
        let grad = embedding_backward(3, ids.view(), g.view()).expect("valid");
        assert_eq!(grad, array![[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]]);
        assert!(matches!(
            embedding(table.view(), array![3usize].view()),
            Err(Error::InvalidParameter { .. })
        ));
        assert_eq!(
            embedding(table.view(), Array1::<usize>::zeros(0).view())
                .expect("valid")
                .dim(),
            (0, 2)
        );
    }

    #[test]
    #[allow(clippy::float_cmp, reason = "p = 0 is the identity, exactly")]
    fn dropout_identity_errors_and_backward() {
        let key = RandomKey {
            seed: 3,
            step: 4,
            tensor_id: 5,
        };
        let x = Array3::from_shape_fn((2, 3, 4), |(a, b, c)| (a * 12 + b * 4 + c) as f32 - 7.5);
        let out = dropout(x.view(), 0.0, key).expect("valid");
        assert_eq!(out.output, x);
        assert!(out.mask.iter().all(|&m| m));
        for p in [1.0, -0.1, f64::NAN] {
            assert!(matches!(
                dropout(x.view(), p, key),
                Err(Error::InvalidParameter { .. })
            ));
        }
        let out = dropout(x.view(), 0.25, key).expect("valid");
        assert_eq!(out.scale, (1.0f64 / 0.75) as f32);
        let g = Array3::<f32>::ones((2, 3, 4));
        let back = dropout_backward(g.view(), out.mask.view(), out.scale).expect("valid");
        for ((&b, &m), (&y, &v)) in back
            .iter()
            .zip(out.mask.iter())
            .zip(out.output.iter().zip(x.iter()))
        {
            assert_eq!(b, if m { out.scale } else { 0.0 });
            assert_eq!(y, if m { v * out.scale } else { 0.0 });
        }
        // The mask depends on the logical index only, not on the memory layout.
        let xt = x.t();
        let out_t = dropout(xt.view(), 0.25, key).expect("valid");
        let mask_t = dropout_mask(xt.raw_dim(), 0.25, key).expect("valid");
        assert_eq!(out_t.mask, mask_t);
    }

    #[test]
    fn attention_with_one_key_copies_its_value_and_masked_keys_get_no_weight() {
        // One key: softmax over one score is 1, so O = v for every query.
        let q = Array4::from_shape_fn((1, 2, 3, 4), |(_, h, i, j)| (h + i) as f64 - j as f64 * 0.5);
        let k = Array4::from_shape_fn((1, 2, 1, 4), |(_, h, _, j)| h as f64 + j as f64);
        let v = Array4::from_shape_fn((1, 2, 1, 5), |(_, h, _, j)| 10.0 * h as f64 + j as f64);
        let o =
            attention(q.view(), k.view(), v.view(), Array2::zeros((1, 1)).view()).expect("valid");
        for ((_, h, _, j), &val) in o.indexed_iter() {
            assert!((val - (10.0 * h as f64 + j as f64)).abs() < 1e-14);
        }
        // Two keys, the second masked with −1e9: only the first value remains.
        let k2 = Array4::from_shape_fn((1, 1, 2, 2), |(_, _, i, j)| (i + j) as f64);
        let v2 =
            Array4::from_shape_fn((1, 1, 2, 1), |(_, _, i, _)| if i == 0 { 3.0 } else { -7.0 });
        let q2 = Array4::from_elem((1, 1, 2, 2), 0.3);
        let o2 =
            attention(q2.view(), k2.view(), v2.view(), array![[0.0, -1e9]].view()).expect("valid");
        assert!(o2.iter().all(|&x| x == 3.0));
        assert!(matches!(
            attention(
                Array4::<f64>::zeros((1, 1, 2, 0)).view(),
                Array4::zeros((1, 1, 2, 0)).view(),
                v2.view(),
                array![[0.0, 0.0]].view()
            ),
            Err(Error::EmptyInput { .. })
        ));
        assert!(matches!(
            attention(
                q2.view(),
                k2.view(),
                v2.view(),
                array![[0.0, 0.0, 0.0]].view()
            ),
            Err(Error::ShapeMismatch { .. })
        ));
    }
}
