//! Bounds of the matrix-product VJPs, batched products and the mean-axis broadcast (the
//! forward bounds [`super::matmul`], [`super::mul_rows`], [`super::sum_axis`] and
//! [`super::mean_axis`] are in the parent module).

use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis};

use super::{matmul, ArithModel};

/// Bounds of `(grad_a, grad_b)` of [`crate::reference::matmul_backward`]: each output is a
/// matrix product, so [`matmul`]'s `γ_ℓ·(|X||Y|) + ℓ·underflow` with its own inner length ℓ,
/// ```text
/// |∂Â − ∂A|_ip ≤ γ_n·(|G|·|Bᵀ|)_ip + n·underflow      (G [m, n], Bᵀ [n, k])
/// |∂B̂ − ∂B|_pj ≤ γ_m·(|Aᵀ|·|G|)_pj + m·underflow      (Aᵀ [k, m], G [m, n])
/// ```
/// (Higham 2002 §3.5: any summation order, the final rounding included.)
pub fn matmul_backward(
    a: ArrayView2<'_, f64>,
    b: ArrayView2<'_, f64>,
    grad_output: ArrayView2<'_, f64>,
    model: &ArithModel,
) -> (Array2<f64>, Array2<f64>) {
    (
        matmul(grad_output, b.t(), model),
        matmul(a.t(), grad_output, model),
    )
}

/// Bound of [`crate::reference::batched_matmul`]: [`matmul`]'s bound for each batch entry `s`,
/// ```text
/// |Ĉ_sij − C_sij| ≤ γ_k·(|A_s||B_s|)_ij + k·underflow
/// ```
pub fn batched_matmul(
    a: ArrayView3<'_, f64>,
    b: ArrayView3<'_, f64>,
    model: &ArithModel,
) -> Array3<f64> {
    let (batch, m, _) = a.dim();
    let n = b.dim().2;
    let mut out = Array3::zeros((batch, m, n));
    for s in 0..batch {
        out.index_axis_mut(Axis(0), s).assign(&matmul(
            a.index_axis(Axis(0), s),
            b.index_axis(Axis(0), s),
            model,
        ));
    }
    out
}

/// Bounds of `(grad_a, grad_b)` of [`crate::reference::batched_matmul_backward`]:
/// [`matmul_backward`] for each batch entry.
pub fn batched_matmul_backward(
    a: ArrayView3<'_, f64>,
    b: ArrayView3<'_, f64>,
    grad_output: ArrayView3<'_, f64>,
    model: &ArithModel,
) -> (Array3<f64>, Array3<f64>) {
    let mut grad_a = Array3::zeros(a.dim());
    let mut grad_b = Array3::zeros(b.dim());
    for s in 0..a.dim().0 {
        let (ba, bb) = matmul_backward(
            a.index_axis(Axis(0), s),
            b.index_axis(Axis(0), s),
            grad_output.index_axis(Axis(0), s),
            model,
        );
        grad_a.index_axis_mut(Axis(0), s).assign(&ba);
        grad_b.index_axis_mut(Axis(0), s).assign(&bb);
    }
    (grad_a, grad_b)
}

/// Bound of [`crate::reference::mean_axis_backward`]: each element is one division `g/ℓ` of
/// exact inputs (`ℓ` the reduced length, exact in `T` below `2^24` resp. `2^53`), so
/// ```text
/// |∂X̂_ij − ∂X_ij| ≤ ε_div·|g/ℓ| + underflow
/// ```
/// with `ε_div` the division's relative error (2.5 ulp = `5u` in OpenCL f32, `u` in f64) and
/// `underflow` for a quotient flushed to zero. `shape` is the forward input's `(m, n)`; `g` has
/// the kept length. An axis > 1 or an empty reduced axis gives an empty array.
pub fn mean_axis_backward(
    shape: (usize, usize),
    axis: usize,
    grad_output: ArrayView1<'_, f64>,
    model: &ArithModel,
) -> Array2<f64> {
    let length = match axis {
        0 => shape.0,
        1 => shape.1,
        _ => 0,
    };
    if length == 0 {
        return Array2::zeros((0, 0));
    }
    let n = length as f64;
    Array2::from_shape_fn(shape, |(i, j)| {
        let g = grad_output[if axis == 0 { j } else { i }];
        model.divide * (g / n).abs() + model.underflow
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array1};

    #[test]
    fn matmul_backward_bounds_by_hand() {
        let m = ArithModel::of::<f32>();
        // A [1, 2] = [1 2], B [2, 1] = [3; 4], G [1, 1] = [2]:
        // ∂A = G·Bᵀ = [6 8], length-1 sums: γ_1·|6|, γ_1·|8| (+ 1 underflow);
        // ∂B = Aᵀ·G = [2; 4], also length 1.
        let (ba, bb) = matmul_backward(
            array![[1.0, 2.0]].view(),
            array![[3.0], [4.0]].view(),
            array![[2.0]].view(),
            &m,
        );
        let g1 = m.gamma(1);
        assert!((ba[[0, 0]] - (g1 * 6.0 + m.underflow)).abs() < 1e-20);
        assert!((ba[[0, 1]] - (g1 * 8.0 + m.underflow)).abs() < 1e-20);
        assert!((bb[[1, 0]] - (g1 * 4.0 + m.underflow)).abs() < 1e-20);
    }

    #[test]
    fn mean_axis_backward_bound_by_hand() {
        let m = ArithModel::of::<f32>();
        // shape (4, 2), axis 0: ∂X_ij = g_j / 4; g = [8, -2] → 2, -0.5.
        let b = mean_axis_backward((4, 2), 0, Array1::from(vec![8.0, -2.0]).view(), &m);
        assert_eq!(b.dim(), (4, 2));
        assert!((b[[3, 0]] - (5.0 * m.unit_roundoff * 2.0 + m.underflow)).abs() < 1e-20);
        assert!((b[[0, 1]] - (5.0 * m.unit_roundoff * 0.5 + m.underflow)).abs() < 1e-20);
        assert_eq!(
            mean_axis_backward((0, 2), 0, Array1::zeros(2).view(), &m).len(),
            0
        );
    }
}
