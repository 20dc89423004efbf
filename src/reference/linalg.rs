//! Matrix products, transposes, row-vector broadcasts and axis reductions, with their
//! vector-Jacobian products (VJPs: given the upstream gradient `g` of the output, the gradient
//! of each input), in plain loops.
//!
//! Every sum here is sequential in index order starting from 0, so the f32 instance is
//! reproducible; the bounds in [`crate::tolerance`] hold for any order. NaN and ±∞ propagate
//! per IEEE 754 (an `∞·0` in a product gives NaN), and are never errors.

use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis};
use num_traits::Float;

use crate::{validate, Error, Result};

/// `n` as a float of type `T` (exact for `n < 2^24` in f32, `2^53` in f64).
fn count<T: Float>(n: usize) -> T {
    T::from(n).unwrap_or_else(T::infinity)
}

/// Matrix product of a `[m, k]` and a `[k, n]` matrix, each entry a sequential dot product.
/// ```text
/// C_ij = Σ_{p=0}^{k−1} A_ip · B_pj      (summed in order p = 0, 1, …, from 0)
/// ```
/// PyTorch: `torch.matmul(a, b)` / `a @ b` for 2-D operands (BLAS: blocked, so a different
/// summation order). `k = 0` gives the `[m, n]` zero matrix (the empty sum), as in PyTorch.
///
/// Bound: [`crate::tolerance::matmul`] (`γ_k·(|A|·|B|)`). Errors: `ShapeMismatch` if the inner
/// dimensions differ; `TooLarge` past `u32::MAX` elements.
pub fn matmul<T: Float>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Result<Array2<T>> {
    validate::matmul("matmul", a, b)?;
    Ok(matmul_unchecked(a, b))
}

/// The triple loop of [`matmul`] for shapes already validated.
fn matmul_unchecked<T: Float>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Array2<T> {
    let (m, k) = a.dim();
    let n = b.ncols();
    let mut c = Array2::zeros((m, n));
    for i in 0..m {
        for j in 0..n {
            let mut sum = T::zero();
            for p in 0..k {
                sum = sum + a[[i, p]] * b[[p, j]];
            }
            c[[i, j]] = sum;
        }
    }
    c
}

/// VJP of [`matmul`]: for `C = A·B` and upstream gradient `G = ∂L/∂C` (`[m, n]`),
/// ```text
/// ∂L/∂A = G·Bᵀ   ([m, n]·[n, k] = [m, k])
/// ∂L/∂B = Aᵀ·G   ([k, m]·[m, n] = [k, n])
/// ```
/// Both products are [`matmul`]'s loops (sums over `n`, resp. `m`). PyTorch: `mm`'s autograd
/// formula. Returns `(grad_a, grad_b)`.
///
/// Bound: [`crate::tolerance::matmul`] applied to `(G, Bᵀ)` and `(Aᵀ, G)`. Errors: as
/// [`matmul`], plus `ShapeMismatch` if `G` is not `[m, n]`.
pub fn matmul_backward<T: Float>(
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> Result<(Array2<T>, Array2<T>)> {
    const OP: &str = "matmul_backward";
    validate::matmul_backward(OP, a, b, grad_output)?;
    Ok((
        matmul_unchecked(grad_output, b.t()),
        matmul_unchecked(a.t(), grad_output),
    ))
}

/// Batched matrix product: [`matmul`] of each of `b` pairs `[m, k]·[k, n]`.
/// ```text
/// C_sij = Σ_p A_sip · B_spj      (sequential in p)
/// ```
/// PyTorch: `torch.bmm(a, b)`. Bound: [`crate::tolerance::matmul`] per batch entry.
/// Errors: `ShapeMismatch` if batch sizes or inner dimensions differ; `TooLarge`.
pub fn batched_matmul<T: Float>(a: ArrayView3<'_, T>, b: ArrayView3<'_, T>) -> Result<Array3<T>> {
    validate::batched_matmul("batched_matmul", a, b)?;
    let (batch, m, _) = a.dim();
    let n = b.dim().2;
    let mut c = Array3::zeros((batch, m, n));
    for s in 0..batch {
        let product = matmul_unchecked(a.index_axis(Axis(0), s), b.index_axis(Axis(0), s));
        c.index_axis_mut(Axis(0), s).assign(&product);
    }
    Ok(c)
}

/// VJP of [`batched_matmul`]: [`matmul_backward`] for each batch entry,
/// ```text
/// ∂L/∂A_s = G_s·B_sᵀ,   ∂L/∂B_s = A_sᵀ·G_s
/// ```
/// Returns `(grad_a, grad_b)`. Errors: as [`batched_matmul`], plus `ShapeMismatch` if `G` is
/// not `[b, m, n]`.
pub fn batched_matmul_backward<T: Float>(
    a: ArrayView3<'_, T>,
    b: ArrayView3<'_, T>,
    grad_output: ArrayView3<'_, T>,
) -> Result<(Array3<T>, Array3<T>)> {
    const OP: &str = "batched_matmul_backward";
    validate::batched_matmul_backward(OP, a, b, grad_output)?;
    let batch = a.dim().0;
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
            .assign(&matmul_unchecked(g_s, b_s.t()));
        grad_b
            .index_axis_mut(Axis(0), s)
            .assign(&matmul_unchecked(a_s.t(), g_s));
    }
    Ok((grad_a, grad_b))
}

/// Transpose of a matrix, as a new standard-layout array.
/// ```text
/// Y_ji = X_ij
/// ```
/// PyTorch: `x.t().contiguous()`. Exact (a copy). Its VJP is the transpose of the upstream
/// gradient: `transpose(g)`. Total: no input is invalid.
pub fn transpose<T: Float>(x: ArrayView2<'_, T>) -> Array2<T> {
    let (m, n) = x.dim();
    Array2::from_shape_fn((n, m), |(j, i)| x[[i, j]])
}

/// Add a row vector to every row.
/// ```text
/// Y_ij = X_ij + b_j
/// ```
/// PyTorch: `x + b` with `b` of shape `[n]` (broadcast), as in `nn.Linear`'s bias.
/// Bound: [`crate::tolerance::add_rows`] (`u·|Y|`). Errors: `ShapeMismatch` if `b` is not `[n]`.
pub fn add_rows<T: Float>(x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>> {
    validate::row_vector("add_rows", x, b)?;
    Ok(Array2::from_shape_fn(x.dim(), |(i, j)| x[[i, j]] + b[j]))
}

/// VJP of [`add_rows`]:
/// ```text
/// ∂L/∂X = G,    ∂L/∂b_j = Σ_i G_ij      (column sums, sequential in i)
/// ```
/// Returns `(grad_x, grad_b)`; `m = 0` rows gives `grad_b = 0`. Bound on `grad_b`:
/// [`crate::tolerance::sum_axis`] over axis 0. Total: no `G` is invalid (its shape defines
/// the op's shape).
pub fn add_rows_backward<T: Float>(grad_output: ArrayView2<'_, T>) -> (Array2<T>, Array1<T>) {
    (grad_output.to_owned(), column_sums(grad_output))
}

/// Multiply every row elementwise by a row vector.
/// ```text
/// Y_ij = X_ij · b_j
/// ```
/// PyTorch: `x * b` with `b` of shape `[n]` (broadcast), as in LayerNorm's `γ`.
/// Bound: [`crate::tolerance::mul_rows`] (`u·|Y|`). Errors: `ShapeMismatch` if `b` is not `[n]`.
pub fn mul_rows<T: Float>(x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>> {
    validate::row_vector("mul_rows", x, b)?;
    Ok(Array2::from_shape_fn(x.dim(), |(i, j)| x[[i, j]] * b[j]))
}

/// VJP of [`mul_rows`]:
/// ```text
/// ∂L/∂X_ij = G_ij · b_j,    ∂L/∂b_j = Σ_i G_ij · X_ij      (sequential in i)
/// ```
/// Returns `(grad_x, grad_b)`. Bounds: [`crate::tolerance::mul_rows`] with `x := G` for
/// `grad_x`, [`crate::tolerance::mul_rows_backward_grad_b`] for `grad_b`.
/// Errors: `ShapeMismatch` if `b` is not `[n]` or `G` is not the shape of `x`.
pub fn mul_rows_backward<T: Float>(
    x: ArrayView2<'_, T>,
    b: ArrayView1<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> Result<(Array2<T>, Array1<T>)> {
    const OP: &str = "mul_rows_backward";
    validate::row_vector(OP, x, b)?;
    validate::same_shape(OP, "grad_output", grad_output.shape(), "x", x.shape())?;
    let grad_x = Array2::from_shape_fn(x.dim(), |(i, j)| grad_output[[i, j]] * b[j]);
    let mut grad_b = Array1::zeros(x.ncols());
    for j in 0..x.ncols() {
        let mut sum = T::zero();
        for i in 0..x.nrows() {
            sum = sum + grad_output[[i, j]] * x[[i, j]];
        }
        grad_b[j] = sum;
    }
    Ok((grad_x, grad_b))
}

/// Column sums `Σ_i X_ij`, sequential in `i`.
fn column_sums<T: Float>(x: ArrayView2<'_, T>) -> Array1<T> {
    let mut out = Array1::zeros(x.ncols());
    for j in 0..x.ncols() {
        let mut sum = T::zero();
        for i in 0..x.nrows() {
            sum = sum + x[[i, j]];
        }
        out[j] = sum;
    }
    out
}

/// Sum over one axis of a matrix, sequential in index order.
/// ```text
/// axis 0: y_j = Σ_i X_ij   (length n)        axis 1: y_i = Σ_j X_ij   (length m)
/// ```
/// PyTorch: `x.sum(dim=axis)`. The sum over an empty axis is 0 (the empty sum), as in PyTorch.
/// Bound: [`crate::tolerance::sum_axis`]. Errors: `InvalidParameter` for `axis > 1`.
pub fn sum_axis<T: Float>(x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>> {
    validate::axis_2d("sum_axis", axis)?;
    Ok(if axis == 0 {
        column_sums(x)
    } else {
        column_sums(x.t())
    })
}

/// VJP of [`sum_axis`]: the upstream gradient broadcast back along the reduced axis.
/// ```text
/// axis 0: ∂L/∂X_ij = g_j          axis 1: ∂L/∂X_ij = g_i
/// ```
/// `shape` is the forward input's `(m, n)`. Exact (copies). Errors: `InvalidParameter` for
/// `axis > 1`; `ShapeMismatch` if `g` does not have the reduced length.
pub fn sum_axis_backward<T: Float>(
    shape: (usize, usize),
    axis: usize,
    grad_output: ArrayView1<'_, T>,
) -> Result<Array2<T>> {
    const OP: &str = "sum_axis_backward";
    validate::axis_2d(OP, axis)?;
    let kept = if axis == 0 { shape.1 } else { shape.0 };
    validate::same_shape(OP, "grad_output", grad_output.shape(), "output", &[kept])?;
    Ok(Array2::from_shape_fn(shape, |(i, j)| {
        grad_output[if axis == 0 { j } else { i }]
    }))
}

/// The EmptyInput error of a mean over an empty axis (also returned by the OpenCL backend).
pub(crate) fn empty_mean(op: &'static str, shape: (usize, usize), axis: usize) -> Error {
    Error::EmptyInput {
        op,
        detail: format!(
            "axis {axis} of shape [{}, {}] is empty: the mean over 0 elements is undefined",
            shape.0, shape.1
        ),
    }
}

/// Mean over one axis: [`sum_axis`] divided by the axis length.
/// ```text
/// axis 0: y_j = (Σ_i X_ij) / m          axis 1: y_i = (Σ_j X_ij) / n
/// ```
/// PyTorch: `x.mean(dim=axis)` (which returns NaN for an empty axis; we return an error).
/// Bound: [`crate::tolerance::mean_axis`]. Errors: `InvalidParameter` for `axis > 1`;
/// `EmptyInput` if the reduced axis has length 0.
pub fn mean_axis<T: Float>(x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>> {
    const OP: &str = "mean_axis";
    validate::axis_2d(OP, axis)?;
    let length = x.len_of(Axis(axis));
    if length == 0 {
        return Err(empty_mean(OP, x.dim(), axis));
    }
    let n = count::<T>(length);
    Ok(sum_axis(x, axis)?.mapv(|s| s / n))
}

/// VJP of [`mean_axis`]: the upstream gradient divided by the axis length and broadcast back.
/// ```text
/// axis 0: ∂L/∂X_ij = g_j / m          axis 1: ∂L/∂X_ij = g_i / n
/// ```
/// Bound: one division, `ε_div·|∂L/∂X|`. Errors: as [`sum_axis_backward`], plus `EmptyInput`
/// if the reduced axis has length 0.
pub fn mean_axis_backward<T: Float>(
    shape: (usize, usize),
    axis: usize,
    grad_output: ArrayView1<'_, T>,
) -> Result<Array2<T>> {
    const OP: &str = "mean_axis_backward";
    validate::axis_2d(OP, axis)?;
    let length = if axis == 0 { shape.0 } else { shape.1 };
    if length == 0 {
        return Err(empty_mean(OP, shape, axis));
    }
    let kept = if axis == 0 { shape.1 } else { shape.0 };
    validate::same_shape(OP, "grad_output", grad_output.shape(), "output", &[kept])?;
    let n = count::<T>(length);
    Ok(sum_axis_backward(shape, axis, grad_output)?.mapv(|g| g / n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    #[allow(clippy::float_cmp, reason = "small integers: every operation is exact")]
    fn two_by_two_matmul_by_hand() {
        // [1 2; 3 4]·[5 6; 7 8] = [1·5+2·7, 1·6+2·8; 3·5+4·7, 3·6+4·8] = [19 22; 43 50]
        let c = matmul(
            array![[1.0, 2.0], [3.0, 4.0]].view(),
            array![[5.0, 6.0], [7.0, 8.0]].view(),
        )
        .expect("valid");
        assert_eq!(c, array![[19.0, 22.0], [43.0, 50.0]]);
        // G = 1: ∂/∂A_ip = Σ_j B_pj (row sums of B: 11, 15) in every row;
        // ∂/∂B_pj = Σ_i A_ip (column sums of A: 4, 6) in every column.
        let (ga, gb) = matmul_backward(
            array![[1.0, 2.0], [3.0, 4.0]].view(),
            array![[5.0, 6.0], [7.0, 8.0]].view(),
            Array2::ones((2, 2)).view(),
        )
        .expect("valid");
        assert_eq!(ga, array![[11.0, 15.0], [11.0, 15.0]]);
        assert_eq!(gb, array![[4.0, 4.0], [6.0, 6.0]]);
    }

    #[test]
    fn inner_dimension_zero_gives_zeros_and_mismatch_is_an_error() {
        let c = matmul(
            Array2::<f32>::zeros((3, 0)).view(),
            Array2::zeros((0, 2)).view(),
        )
        .expect("k = 0 is valid");
        assert_eq!(c, Array2::zeros((3, 2)));
        assert!(matches!(
            matmul(
                Array2::<f32>::zeros((3, 2)).view(),
                Array2::zeros((3, 2)).view()
            ),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    #[allow(clippy::float_cmp, reason = "small integers: every operation is exact")]
    fn reductions_and_broadcasts_by_hand() {
        let x = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        assert_eq!(sum_axis(x.view(), 0).expect("valid"), array![5.0, 7.0, 9.0]);
        assert_eq!(sum_axis(x.view(), 1).expect("valid"), array![6.0, 15.0]);
        assert_eq!(mean_axis(x.view(), 1).expect("valid"), array![2.0, 5.0]);
        assert!(sum_axis(x.view(), 2).is_err());
        let empty = Array2::<f64>::zeros((0, 3));
        assert_eq!(sum_axis(empty.view(), 0).expect("valid"), Array1::zeros(3));
        assert!(matches!(
            mean_axis(empty.view(), 0),
            Err(Error::EmptyInput { .. })
        ));
        let b = array![10.0, 20.0, 30.0];
        assert_eq!(
            add_rows(x.view(), b.view()).expect("valid"),
            array![[11.0, 22.0, 33.0], [14.0, 25.0, 36.0]]
        );
        let (_, gb) =
            mul_rows_backward(x.view(), b.view(), Array2::ones((2, 3)).view()).expect("valid");
        assert_eq!(gb, array![5.0, 7.0, 9.0]);
        assert_eq!(
            transpose(x.view()),
            array![[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]
        );
    }
}
