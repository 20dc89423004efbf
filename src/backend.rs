//! The `Backend` trait: what a backend must compute to be checked by the oracle.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use crate::{Error, Result, Scalar};

/// Names of every op in the trait, in the order the suite runs them.
///
/// One name is shared by the reference fn, the kernel, the `Backend` method, the bound fn in
/// [`crate::tolerance`], the conformance fn and the bench id, so `grep` finds all of them.
pub const OPS: &[&str] = &[
    "log_sum_exp_rows",
    "softmax_rows",
    "log_softmax_rows",
    "bce_with_logits_mean",
    "bce_with_logits_mean_backward",
    "matmul",
    "relu",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
    "gelu",
    "gelu_backward",
    "add_rows",
    "layer_norm",
    "layer_norm_backward",
];

/// Gradients of LayerNorm: `(grad_x, grad_gamma, grad_beta)`.
pub type LayerNormGrads<T> = (Array2<T>, Array1<T>, Array1<T>);

/// Build the [`Error::Unsupported`] a default method returns.
pub fn unsupported<T: Scalar>(backend: &str, op: &'static str) -> Error {
    Error::Unsupported {
        backend: backend.to_string(),
        op,
        scalar: T::NAME,
        reason: String::new(),
    }
}

/// A backend computes ML ops on `ndarray` views and returns owned arrays.
///
/// Every op has a default body returning [`Error::Unsupported`], so a backend implements what
/// it has and keeps compiling as ops are added; the suite reports what is missing as
/// `SKIPPED (unsupported)`, never as passed. Implementations must validate their inputs and
/// return typed errors (see [`crate::validate`]); they must not panic.
///
/// Semantics of each op (formula, NaN/∞ policy, bound) are documented on the reference
/// functions in [`crate::reference`], which are the specification.
pub trait Backend<T: Scalar>: Send + Sync {
    /// Short stable name used in test names and reports, e.g. `"reference"` or `"opencl"`.
    fn name(&self) -> String;

    /// Row-wise log-sum-exp, `lse_r = log Σ_j exp(x_rj)`; see
    /// [`crate::reference::log_sum_exp_rows`].
    fn log_sum_exp_rows(&self, x: ArrayView2<'_, T>) -> Result<Array1<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "log_sum_exp_rows"))
    }

    /// Row-wise softmax; see [`crate::reference::softmax_rows`].
    fn softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "softmax_rows"))
    }

    /// Row-wise log-softmax; see [`crate::reference::log_softmax_rows`].
    fn log_softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "log_softmax_rows"))
    }

    /// Mean binary cross-entropy from logits; see [`crate::reference::bce_with_logits_mean`].
    fn bce_with_logits_mean(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
    ) -> Result<T> {
        let _ = (logits, labels);
        Err(unsupported::<T>(&self.name(), "bce_with_logits_mean"))
    }

    /// Gradient of [`Backend::bce_with_logits_mean`] with respect to the logits, times the
    /// upstream gradient `grad_output`; see [`crate::reference::bce_with_logits_mean_backward`].
    fn bce_with_logits_mean_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        grad_output: T,
    ) -> Result<Array1<T>> {
        let _ = (logits, labels, grad_output);
        Err(unsupported::<T>(
            &self.name(),
            "bce_with_logits_mean_backward",
        ))
    }

    /// Matrix product `[m, k]·[k, n]`; see [`crate::reference::matmul`] (`k = 0` gives zeros).
    fn matmul(&self, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let _ = (a, b);
        Err(unsupported::<T>(&self.name(), "matmul"))
    }

    /// ReLU, elementwise; see [`crate::reference::relu`].
    fn relu(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "relu"))
    }

    /// VJP of ReLU from the **input** `x` (derivative 0 at 0); see
    /// [`crate::reference::relu_backward`].
    fn relu_backward(
        &self,
        x: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        let _ = (x, grad_output);
        Err(unsupported::<T>(&self.name(), "relu_backward"))
    }

    /// Leaky ReLU with negative slope `slope`; see [`crate::reference::leaky_relu`].
    fn leaky_relu(&self, x: ArrayView2<'_, T>, slope: T) -> Result<Array2<T>> {
        let _ = (x, slope);
        Err(unsupported::<T>(&self.name(), "leaky_relu"))
    }

    /// VJP of leaky ReLU from the **input** `x`; see [`crate::reference::leaky_relu_backward`].
    fn leaky_relu_backward(
        &self,
        x: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
        slope: T,
    ) -> Result<Array2<T>> {
        let _ = (x, grad_output, slope);
        Err(unsupported::<T>(&self.name(), "leaky_relu_backward"))
    }

    /// Logistic sigmoid, elementwise; see [`crate::reference::sigmoid_array`].
    fn sigmoid(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "sigmoid"))
    }

    /// VJP of the sigmoid from its **output** `y`; see [`crate::reference::sigmoid_backward`].
    fn sigmoid_backward(
        &self,
        y: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        let _ = (y, grad_output);
        Err(unsupported::<T>(&self.name(), "sigmoid_backward"))
    }

    /// Hyperbolic tangent, elementwise; see [`crate::reference::tanh`].
    fn tanh(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "tanh"))
    }

    /// VJP of tanh from its **output** `y`; see [`crate::reference::tanh_backward`].
    fn tanh_backward(
        &self,
        y: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        let _ = (y, grad_output);
        Err(unsupported::<T>(&self.name(), "tanh_backward"))
    }

    /// GELU (exact erf form), elementwise; see [`crate::reference::gelu`].
    fn gelu(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "gelu"))
    }

    /// VJP of GELU from the **input** `x`; see [`crate::reference::gelu_backward`].
    fn gelu_backward(
        &self,
        x: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        let _ = (x, grad_output);
        Err(unsupported::<T>(&self.name(), "gelu_backward"))
    }

    /// Add the row vector `b [n]` to every row of `x [m, n]`; see
    /// [`crate::reference::add_rows`].
    fn add_rows(&self, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>> {
        let _ = (x, b);
        Err(unsupported::<T>(&self.name(), "add_rows"))
    }

    /// LayerNorm over the rows of `x`; see [`crate::reference::layer_norm`].
    fn layer_norm(
        &self,
        x: ArrayView2<'_, T>,
        gamma: ArrayView1<'_, T>,
        beta: ArrayView1<'_, T>,
        eps: f64,
    ) -> Result<Array2<T>> {
        let _ = (x, gamma, beta, eps);
        Err(unsupported::<T>(&self.name(), "layer_norm"))
    }

    /// VJP of LayerNorm, `(grad_x, grad_gamma, grad_beta)`; see
    /// [`crate::reference::layer_norm_backward`].
    fn layer_norm_backward(
        &self,
        x: ArrayView2<'_, T>,
        gamma: ArrayView1<'_, T>,
        beta: ArrayView1<'_, T>,
        eps: f64,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<LayerNormGrads<T>> {
        let _ = (x, gamma, beta, eps, grad_output);
        Err(unsupported::<T>(&self.name(), "layer_norm_backward"))
    }
}

impl<T: Scalar, B: Backend<T> + ?Sized> Backend<T> for &B {
    fn name(&self) -> String {
        (**self).name()
    }
    fn log_sum_exp_rows(&self, x: ArrayView2<'_, T>) -> Result<Array1<T>> {
        (**self).log_sum_exp_rows(x)
    }
    fn softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).softmax_rows(x)
    }
    fn log_softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).log_softmax_rows(x)
    }
    fn bce_with_logits_mean(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
    ) -> Result<T> {
        (**self).bce_with_logits_mean(logits, labels)
    }
    fn bce_with_logits_mean_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        grad_output: T,
    ) -> Result<Array1<T>> {
        (**self).bce_with_logits_mean_backward(logits, labels, grad_output)
    }
    fn matmul(&self, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).matmul(a, b)
    }
    fn relu(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).relu(x)
    }
    fn relu_backward(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).relu_backward(x, g)
    }
    fn leaky_relu(&self, x: ArrayView2<'_, T>, slope: T) -> Result<Array2<T>> {
        (**self).leaky_relu(x, slope)
    }
    fn leaky_relu_backward(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        slope: T,
    ) -> Result<Array2<T>> {
        (**self).leaky_relu_backward(x, g, slope)
    }
    fn sigmoid(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).sigmoid(x)
    }
    fn sigmoid_backward(&self, y: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).sigmoid_backward(y, g)
    }
    fn tanh(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).tanh(x)
    }
    fn tanh_backward(&self, y: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).tanh_backward(y, g)
    }
    fn gelu(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).gelu(x)
    }
    fn gelu_backward(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).gelu_backward(x, g)
    }
    fn add_rows(&self, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>> {
        (**self).add_rows(x, b)
    }
    fn layer_norm(
        &self,
        x: ArrayView2<'_, T>,
        gamma: ArrayView1<'_, T>,
        beta: ArrayView1<'_, T>,
        eps: f64,
    ) -> Result<Array2<T>> {
        (**self).layer_norm(x, gamma, beta, eps)
    }
    fn layer_norm_backward(
        &self,
        x: ArrayView2<'_, T>,
        gamma: ArrayView1<'_, T>,
        beta: ArrayView1<'_, T>,
        eps: f64,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<LayerNormGrads<T>> {
        (**self).layer_norm_backward(x, gamma, beta, eps, grad_output)
    }
}
