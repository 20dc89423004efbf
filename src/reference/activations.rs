//! Elementwise activations and their VJPs, and the VJPs of the row softmax ops.
//!
//! Forward activations are total functions of any-dimensional arrays; a backward checks that the
//! upstream gradient has the shape of the array it belongs to (`ShapeMismatch` otherwise). NaN
//! and ±∞ propagate per IEEE 754 through every formula below; none is an error.
//!
//! Which forward quantity a backward takes follows PyTorch's autograd formulas: the **input**
//! `x` for ReLU, leaky ReLU and GELU, the **output** `y` for sigmoid, tanh, softmax and
//! log-softmax.

use ndarray::{Array, Array2, ArrayView, ArrayView2, Dimension, Zip};
use num_traits::Float;

use crate::{validate, Result, Scalar};

/// Apply `f(x, g)` elementwise after checking that `g` has the shape of `x`.
fn backward<T: Float, D: Dimension>(
    op: &'static str,
    forward: ArrayView<'_, T, D>,
    grad_output: ArrayView<'_, T, D>,
    f: impl Fn(T, T) -> T,
) -> Result<Array<T, D>> {
    validate::same_shape(
        op,
        "grad_output",
        grad_output.shape(),
        "forward array",
        forward.shape(),
    )?;
    let mut out = Array::zeros(forward.raw_dim());
    Zip::from(&mut out)
        .and(&forward)
        .and(&grad_output)
        .for_each(|o, &v, &g| *o = f(v, g));
    Ok(out)
}

/// Rectified linear unit.
/// ```text
/// relu(x) = max(x, 0)      (x if x > 0, else 0; NaN stays NaN)
/// ```
/// PyTorch: `torch.relu`. Exact. Total.
pub fn relu<T: Float, D: Dimension>(x: ArrayView<'_, T, D>) -> Array<T, D> {
    x.mapv(|v| {
        if v > T::zero() || v.is_nan() {
            v
        } else {
            T::zero()
        }
    })
}

/// VJP of [`relu`], with derivative **0 at exactly 0** (THEORY.md §0, PyTorch's
/// `threshold_backward`):
/// ```text
/// ∂L/∂x = 0 if x ≤ 0, else g
/// ```
/// PyTorch computes `threshold_backward(g, y, 0)` = `y ≤ 0 ? 0 : g` on the output `y`, which
/// is the same test; a NaN `x` (NaN `y`) fails `≤ 0` and passes `g` through, as in PyTorch.
/// Exact. Errors: `ShapeMismatch` if `g` is not the shape of `x`.
pub fn relu_backward<T: Float, D: Dimension>(
    x: ArrayView<'_, T, D>,
    grad_output: ArrayView<'_, T, D>,
) -> Result<Array<T, D>> {
    backward("relu_backward", x, grad_output, |v, g| {
        if v <= T::zero() {
            T::zero()
        } else {
            g
        }
    })
}

/// Leaky ReLU with negative slope `slope`.
/// ```text
/// leaky_relu(x) = x if x > 0, else slope · x
/// ```
/// PyTorch: `torch.nn.functional.leaky_relu(x, negative_slope)` (default `0.01`). One rounding
/// for `x ≤ 0` (`u·|y|`). Any `slope` is accepted (the formula is defined). Total.
pub fn leaky_relu<T: Float, D: Dimension>(x: ArrayView<'_, T, D>, slope: T) -> Array<T, D> {
    x.mapv(|v| if v > T::zero() { v } else { slope * v })
}

/// VJP of [`leaky_relu`], with derivative `slope` at exactly 0 (PyTorch's
/// `leaky_relu_backward`: `x > 0 ? g : g·slope`, so a NaN `x` gives `g·slope`):
/// ```text
/// ∂L/∂x = g if x > 0, else g · slope
/// ```
/// Errors: `ShapeMismatch` if `g` is not the shape of `x`.
pub fn leaky_relu_backward<T: Float, D: Dimension>(
    x: ArrayView<'_, T, D>,
    grad_output: ArrayView<'_, T, D>,
    slope: T,
) -> Result<Array<T, D>> {
    backward("leaky_relu_backward", x, grad_output, |v, g| {
        if v > T::zero() {
            g
        } else {
            g * slope
        }
    })
}

/// Logistic sigmoid, elementwise: [`crate::reference::sigmoid`] (two-branch stable form).
/// ```text
/// σ(x) = 1 / (1 + e^{−x})  (x ≥ 0),   e^{x} / (1 + e^{x})  (x < 0)
/// ```
/// PyTorch: `torch.sigmoid`. Bound: [`crate::tolerance::sigmoid`]. Total.
pub fn sigmoid_array<T: Float, D: Dimension>(x: ArrayView<'_, T, D>) -> Array<T, D> {
    x.mapv(crate::reference::sigmoid)
}

/// VJP of the sigmoid from its **output** `y = σ(x)` (PyTorch's `sigmoid_backward`, same order
/// of operations):
/// ```text
/// ∂L/∂x = (g · (1 − y)) · y
/// ```
/// Bound: [`crate::tolerance::sigmoid_backward`] (`γ_3·|∂L/∂x|` for given `y`, `g`).
/// Errors: `ShapeMismatch` if `g` is not the shape of `y`.
pub fn sigmoid_backward<T: Float, D: Dimension>(
    y: ArrayView<'_, T, D>,
    grad_output: ArrayView<'_, T, D>,
) -> Result<Array<T, D>> {
    backward("sigmoid_backward", y, grad_output, |y, g| {
        g * (T::one() - y) * y
    })
}

/// Hyperbolic tangent, elementwise (the host libm's `tanh`).
/// ```text
/// tanh(x) = (e^{x} − e^{−x}) / (e^{x} + e^{−x})
/// ```
/// PyTorch: `torch.tanh`. Bound: [`crate::tolerance::tanh`] (5 ulp). Total.
pub fn tanh<T: Float, D: Dimension>(x: ArrayView<'_, T, D>) -> Array<T, D> {
    x.mapv(Float::tanh)
}

/// VJP of tanh from its **output** `y = tanh(x)` (PyTorch's `tanh_backward`):
/// ```text
/// ∂L/∂x = g · (1 − y·y)
/// ```
/// Bound: [`crate::tolerance::tanh_backward`]. Errors: `ShapeMismatch` if `g` is not the shape
/// of `y`.
pub fn tanh_backward<T: Float, D: Dimension>(
    y: ArrayView<'_, T, D>,
    grad_output: ArrayView<'_, T, D>,
) -> Result<Array<T, D>> {
    backward("tanh_backward", y, grad_output, |y, g| {
        g * (T::one() - y * y)
    })
}

/// The error function in T: computed in f64 by `libm::erf` (musl's, within 1 ulp of f64) and
/// rounded once to `T`. `num_traits::Float` has no `erf`, and the f64 detour makes the f32
/// value within about 0.5 ulp of f32.
pub fn erf<T: Scalar>(z: T) -> T {
    T::narrow(libm::erf(z.widen()))
}

/// `1/√2` rounded to `T`.
fn frac_1_sqrt_2<T: Scalar>() -> T {
    T::narrow(std::f64::consts::FRAC_1_SQRT_2)
}

/// GELU, the exact (erf) form:
/// ```text
/// gelu(x) = x·Φ(x) = (x · 0.5) · (1 + erf(x · (1/√2)))
/// ```
/// evaluated in that order, as PyTorch's CPU kernel does, with `1/√2` rounded to `T` and
/// [`erf`] computed in f64 then rounded to `T`. PyTorch: `torch.nn.functional.gelu(x)` with its
/// default `approximate='none'` (not the tanh approximation). Bound: [`crate::tolerance::gelu`].
/// Total.
pub fn gelu<T: Scalar, D: Dimension>(x: ArrayView<'_, T, D>) -> Array<T, D> {
    let half = T::narrow(0.5);
    x.mapv(|v| (v * half) * (T::one() + erf(v * frac_1_sqrt_2())))
}

/// VJP of [`gelu`] from its input (PyTorch's `GeluBackward` with `approximate='none'`):
/// ```text
/// Φ(x) = 0.5 · (1 + erf(x · (1/√2)))
/// φ(x) = exp((x · x) · (−0.5)) · (1/√(2π))
/// ∂L/∂x = g · (Φ(x) + x · φ(x))
/// ```
/// evaluated in that order, constants rounded to `T`. Bound:
/// [`crate::tolerance::gelu_backward`]. Errors: `ShapeMismatch` if `g` is not the shape of `x`.
pub fn gelu_backward<T: Scalar, D: Dimension>(
    x: ArrayView<'_, T, D>,
    grad_output: ArrayView<'_, T, D>,
) -> Result<Array<T, D>> {
    let half = T::narrow(0.5);
    let inv_sqrt_2pi =
        T::narrow(0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2);
    backward("gelu_backward", x, grad_output, |v, g| {
        let cdf = half * (T::one() + erf(v * frac_1_sqrt_2()));
        let pdf = (v * v * (-half)).exp() * inv_sqrt_2pi;
        g * (cdf + v * pdf)
    })
}

/// VJP of [`crate::reference::softmax_rows`] from its **output** `y` (PyTorch's
/// `_softmax_backward_data`):
/// ```text
/// ∂L/∂x_rj = y_rj · (g_rj − s_r),    s_r = Σ_k g_rk · y_rk   (sequential in k)
/// ```
/// (`J = diag(y) − y yᵀ`, THEORY.md A5; each row of the result sums to 0 in exact arithmetic.)
/// Bound: [`crate::tolerance::softmax_rows_backward`]. Errors: `ShapeMismatch` if `g` is not
/// the shape of `y`; `EmptyInput` for rows of length 0 (as the forward op).
pub fn softmax_rows_backward<T: Float>(
    y: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> Result<Array2<T>> {
    const OP: &str = "softmax_rows_backward";
    validate::rows_op(OP, y)?;
    validate::same_shape(OP, "grad_output", grad_output.shape(), "y", y.shape())?;
    let mut out = Array2::zeros(y.dim());
    for ((y_row, g_row), mut out_row) in y
        .rows()
        .into_iter()
        .zip(grad_output.rows())
        .zip(out.rows_mut())
    {
        let mut s = T::zero();
        for (&yk, &gk) in y_row.iter().zip(g_row.iter()) {
            s = s + gk * yk;
        }
        for ((o, &yj), &gj) in out_row.iter_mut().zip(y_row.iter()).zip(g_row.iter()) {
            *o = yj * (gj - s);
        }
    }
    Ok(out)
}

/// VJP of [`crate::reference::log_softmax_rows`] from its **output** `y` (PyTorch's
/// `_log_softmax_backward_data`):
/// ```text
/// ∂L/∂x_rj = g_rj − exp(y_rj) · s_r,    s_r = Σ_k g_rk   (sequential in k)
/// ```
/// (`exp(y) = softmax(x)`.) Bound: [`crate::tolerance::log_softmax_rows_backward`].
/// Errors: `ShapeMismatch` if `g` is not the shape of `y`; `EmptyInput` for rows of length 0.
pub fn log_softmax_rows_backward<T: Float>(
    y: ArrayView2<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> Result<Array2<T>> {
    const OP: &str = "log_softmax_rows_backward";
    validate::rows_op(OP, y)?;
    validate::same_shape(OP, "grad_output", grad_output.shape(), "y", y.shape())?;
    let mut out = Array2::zeros(y.dim());
    for ((y_row, g_row), mut out_row) in y
        .rows()
        .into_iter()
        .zip(grad_output.rows())
        .zip(out.rows_mut())
    {
        let mut s = T::zero();
        for &gk in g_row.iter() {
            s = s + gk;
        }
        for ((o, &yj), &gj) in out_row.iter_mut().zip(y_row.iter()).zip(g_row.iter()) {
            *o = gj - yj.exp() * s;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    #[allow(clippy::float_cmp, reason = "exact by the formula")]
    fn relu_family_at_and_around_zero() {
        let x = array![-2.0f64, -0.0, 0.0, 3.0];
        assert_eq!(relu(x.view()), array![0.0, 0.0, 0.0, 3.0]);
        let g = array![1.0, 1.0, 1.0, 1.0];
        assert_eq!(
            relu_backward(x.view(), g.view()).expect("valid"),
            array![0.0, 0.0, 0.0, 1.0]
        );
        assert_eq!(leaky_relu(x.view(), 0.5), array![-1.0, 0.0, 0.0, 3.0]);
        assert_eq!(
            leaky_relu_backward(x.view(), g.view(), 0.5).expect("valid"),
            array![0.5, 0.5, 0.5, 1.0]
        );
        assert!(relu(array![f64::NAN].view())[0].is_nan());
        // PyTorch: threshold_backward passes g where y = NaN (NaN ≤ 0 is false).
        let d = relu_backward(array![f64::NAN].view(), array![2.0].view()).expect("valid");
        assert_eq!(d[0], 2.0);
        assert!(relu_backward(x.view(), array![1.0].view()).is_err());
    }

    #[test]
    fn gelu_at_known_points() {
        // gelu(x) = x·Φ(x), Φ the standard normal CDF: Φ(0) = 1/2, Φ(1) = 0.8413447460685429,
        // Φ(−1) = 0.15865525393145707, Φ(2) = 0.9772498680518208 (tables / mpmath).
        let x = array![0.0f64, 1.0, -1.0, 2.0];
        let y = gelu(x.view());
        let expected = [
            0.0,
            0.8413447460685429,
            -0.15865525393145707,
            1.9544997361036416,
        ];
        for (&a, &e) in y.iter().zip(expected.iter()) {
            assert!((a - e).abs() <= 4.0 * f64::EPSILON * e.abs(), "{a} vs {e}");
        }
        // gelu'(0) = Φ(0) = 1/2; gelu'(1) = Φ(1) + φ(1), φ(1) = e^{−1/2}/√(2π) = 0.24197072451914337.
        let d = gelu_backward(array![0.0f64, 1.0].view(), array![1.0, 1.0].view()).expect("valid");
        assert!((d[0] - 0.5).abs() <= f64::EPSILON);
        assert!((d[1] - (0.8413447460685429 + 0.24197072451914337)).abs() <= 4.0 * f64::EPSILON);
        // f32: the f64 erf rounded once.
        let y32 = gelu(array![1.0f32].view());
        assert!((f64::from(y32[0]) - expected[1]).abs() <= 2.0 * f64::from(f32::EPSILON));
    }

    #[test]
    fn softmax_backward_rows_sum_to_zero_and_log_softmax_backward_matches() {
        // y = softmax([0, ln 3]) = [1/4, 3/4]; g = [1, 0]: s = 1/4,
        // ∂L/∂x = [1/4·(1 − 1/4), 3/4·(0 − 1/4)] = [3/16, −3/16].
        let y = array![[0.25f64, 0.75]];
        let d = softmax_rows_backward(y.view(), array![[1.0, 0.0]].view()).expect("valid");
        assert!((d[[0, 0]] - 3.0 / 16.0).abs() < 1e-16 && (d[[0, 1]] + 3.0 / 16.0).abs() < 1e-16);
        // log-softmax: y = ln[1/4, 3/4], g = [1, 0]: ∂L/∂x = [1 − 1/4, −3/4].
        let ly = y.mapv(f64::ln);
        let d = log_softmax_rows_backward(ly.view(), array![[1.0, 0.0]].view()).expect("valid");
        assert!((d[[0, 0]] - 0.75).abs() < 1e-15 && (d[[0, 1]] + 0.75).abs() < 1e-15);
        assert!(softmax_rows_backward(
            Array2::<f64>::zeros((2, 0)).view(),
            Array2::zeros((2, 0)).view()
        )
        .is_err());
    }
}
