//! The reference backend: the executable specification.
//!
//! Plain loops over `ndarray` views, generic over `num_traits::Float`: the f32 instance
//! reproduces f32 behaviour, the f64 instance is the oracle. Each function's doc states its
//! formula, its PyTorch counterpart and any deviation, its bound fn and its error policy.
//! Nothing here is optimised: a reader checks each loop against its formula.
//!
//! The table of every function, its formula, PyTorch counterpart and deviations is
//! [`table`].

mod activations;
mod layers;
mod linalg;
mod losses;
pub mod models;
mod ops;
pub mod optim;
mod statistics;

/// The table of reference functions (formula, PyTorch counterpart, deviation).
#[doc = include_str!("table.md")]
pub mod table {}

pub use losses::{
    bce_with_logits, bce_with_logits_backward, bce_with_logits_element, bce_with_logits_mean,
    bce_with_logits_mean_backward, cross_entropy, cross_entropy_backward, mse, mse_backward,
    sigmoid, Reduction, DEFAULT_IGNORE_INDEX,
};
pub use ops::{log_softmax_rows, log_sum_exp_rows, softmax_rows};
pub use statistics::{std_corrected, std_corrected_backward};

pub use activations::{
    erf, gelu, gelu_backward, leaky_relu, leaky_relu_backward, log_softmax_rows_backward, relu,
    relu_backward, sigmoid_array, sigmoid_backward, softmax_rows_backward, tanh, tanh_backward,
};
pub use layers::{
    attention, attention_backward, dropout, dropout_backward, dropout_mask, dropout_scale,
    embedding, embedding_backward, layer_norm, layer_norm_backward, DropoutOutput,
};
pub use linalg::{
    add_rows, add_rows_backward, batched_matmul, batched_matmul_backward, matmul, matmul_backward,
    mean_axis, mean_axis_backward, mul_rows, mul_rows_backward, sum_axis, sum_axis_backward,
    transpose,
};

pub use layers::layer_norm_eps;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use crate::backend::LayerNormGrads;
use crate::{Backend, Result, Scalar};

/// The reference backend. Stateless: one value serves every scalar type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reference;

impl<T: Scalar> Backend<T> for Reference {
    fn name(&self) -> String {
        "reference".to_string()
    }
    fn log_sum_exp_rows(&self, x: ArrayView2<'_, T>) -> Result<Array1<T>> {
        log_sum_exp_rows(x)
    }
    fn softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        softmax_rows(x)
    }
    fn log_softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        log_softmax_rows(x)
    }
    fn bce_with_logits_mean(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
    ) -> Result<T> {
        bce_with_logits_mean(logits, labels)
    }
    fn bce_with_logits_mean_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        grad_output: T,
    ) -> Result<Array1<T>> {
        bce_with_logits_mean_backward(logits, labels, grad_output)
    }
    fn matmul(&self, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Result<Array2<T>> {
        matmul(a, b)
    }
    fn relu(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        Ok(relu(x))
    }
    fn relu_backward(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        relu_backward(x, g)
    }
    fn leaky_relu(&self, x: ArrayView2<'_, T>, slope: T) -> Result<Array2<T>> {
        Ok(leaky_relu(x, slope))
    }
    fn leaky_relu_backward(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        slope: T,
    ) -> Result<Array2<T>> {
        leaky_relu_backward(x, g, slope)
    }
    fn sigmoid(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        Ok(sigmoid_array(x))
    }
    fn sigmoid_backward(&self, y: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        sigmoid_backward(y, g)
    }
    fn tanh(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        Ok(tanh(x))
    }
    fn tanh_backward(&self, y: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        tanh_backward(y, g)
    }
    fn gelu(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        Ok(gelu(x))
    }
    fn gelu_backward(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        gelu_backward(x, g)
    }
    fn add_rows(&self, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>> {
        add_rows(x, b)
    }
    fn layer_norm(
        &self,
        x: ArrayView2<'_, T>,
        gamma: ArrayView1<'_, T>,
        beta: ArrayView1<'_, T>,
        eps: f64,
    ) -> Result<Array2<T>> {
        layer_norm(x, gamma, beta, eps)
    }
    fn layer_norm_backward(
        &self,
        x: ArrayView2<'_, T>,
        gamma: ArrayView1<'_, T>,
        beta: ArrayView1<'_, T>,
        eps: f64,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<LayerNormGrads<T>> {
        layer_norm_backward(x, gamma, beta, eps, grad_output)
    }
}
