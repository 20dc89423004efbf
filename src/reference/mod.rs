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

pub(crate) use layers::{attention_scale, scale_and_mask};
#[cfg(feature = "opencl")]
pub(crate) use losses::validate_mse;
pub use losses::{
    bce_with_logits, bce_with_logits_backward, bce_with_logits_element, bce_with_logits_mean,
    bce_with_logits_mean_backward, cross_entropy, cross_entropy_backward, mse, mse_backward,
    sigmoid, Reduction, DEFAULT_IGNORE_INDEX,
};
pub(crate) use losses::{
    cross_entropy_from_log_probabilities, cross_entropy_gradient_from_probabilities,
    validate_cross_entropy,
};
pub use ops::{log_softmax_rows, log_sum_exp_rows, softmax_rows};
pub use statistics::{std_corrected, std_corrected_backward, validate_std_correction};

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
pub(crate) use linalg::empty_mean;

use ndarray::{
    Array1, Array2, Array3, Array4, ArrayView1, ArrayView2, ArrayView3, ArrayView4, Ix2,
};

use crate::backend::{AttentionGrads, LayerNormGrads};
use crate::rng::RandomKey;
use crate::{Backend, Result, Scalar};
use models::{TrainingConfig, TrainingRun, TrainingTask};
use optim::{AdamHyper, AdamState, SgdHyper, SgdState};

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
    fn matmul_backward(
        &self,
        a: ArrayView2<'_, T>,
        b: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array2<T>)> {
        matmul_backward(a, b, g)
    }
    fn batched_matmul(&self, a: ArrayView3<'_, T>, b: ArrayView3<'_, T>) -> Result<Array3<T>> {
        batched_matmul(a, b)
    }
    fn batched_matmul_backward(
        &self,
        a: ArrayView3<'_, T>,
        b: ArrayView3<'_, T>,
        g: ArrayView3<'_, T>,
    ) -> Result<(Array3<T>, Array3<T>)> {
        batched_matmul_backward(a, b, g)
    }
    fn transpose(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        Ok(transpose(x))
    }
    fn add_rows_backward(&self, g: ArrayView2<'_, T>) -> Result<(Array2<T>, Array1<T>)> {
        Ok(add_rows_backward(g))
    }
    fn mul_rows(&self, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>> {
        mul_rows(x, b)
    }
    fn mul_rows_backward(
        &self,
        x: ArrayView2<'_, T>,
        b: ArrayView1<'_, T>,
        g: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array1<T>)> {
        mul_rows_backward(x, b, g)
    }
    fn sum_axis(&self, x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>> {
        sum_axis(x, axis)
    }
    fn sum_axis_backward(
        &self,
        shape: (usize, usize),
        axis: usize,
        g: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        sum_axis_backward(shape, axis, g)
    }
    fn mean_axis(&self, x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>> {
        mean_axis(x, axis)
    }
    fn mean_axis_backward(
        &self,
        shape: (usize, usize),
        axis: usize,
        g: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        mean_axis_backward(shape, axis, g)
    }
    fn softmax_rows_backward(
        &self,
        y: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        softmax_rows_backward(y, g)
    }
    fn log_softmax_rows_backward(
        &self,
        y: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        log_softmax_rows_backward(y, g)
    }
    fn bce_with_logits(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        reduction: Reduction,
    ) -> Result<T> {
        bce_with_logits(logits, labels, reduction)
    }
    fn bce_with_logits_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array1<T>> {
        bce_with_logits_backward(logits, labels, reduction, grad_output)
    }
    fn mse(
        &self,
        prediction: ArrayView2<'_, T>,
        target: ArrayView2<'_, T>,
        reduction: Reduction,
    ) -> Result<T> {
        mse(prediction, target, reduction)
    }
    fn mse_backward(
        &self,
        prediction: ArrayView2<'_, T>,
        target: ArrayView2<'_, T>,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array2<T>> {
        mse_backward(prediction, target, reduction, grad_output)
    }
    fn cross_entropy(
        &self,
        logits: ArrayView2<'_, T>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
    ) -> Result<T> {
        cross_entropy(logits, targets, ignore_index, reduction)
    }
    fn cross_entropy_backward(
        &self,
        logits: ArrayView2<'_, T>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array2<T>> {
        cross_entropy_backward(logits, targets, ignore_index, reduction, grad_output)
    }
    fn embedding(&self, table: ArrayView2<'_, T>, ids: ArrayView1<'_, usize>) -> Result<Array2<T>> {
        embedding(table, ids)
    }
    fn embedding_backward(
        &self,
        vocab: usize,
        ids: ArrayView1<'_, usize>,
        g: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        embedding_backward(vocab, ids, g)
    }
    fn dropout(
        &self,
        x: ArrayView2<'_, T>,
        p: f64,
        key: RandomKey,
    ) -> Result<DropoutOutput<T, Ix2>> {
        dropout(x, p, key)
    }
    fn dropout_backward(
        &self,
        g: ArrayView2<'_, T>,
        mask: ArrayView2<'_, bool>,
        scale: T,
    ) -> Result<Array2<T>> {
        dropout_backward(g, mask, scale)
    }
    fn attention(
        &self,
        q: ArrayView4<'_, T>,
        k: ArrayView4<'_, T>,
        v: ArrayView4<'_, T>,
        key_mask: ArrayView2<'_, T>,
    ) -> Result<Array4<T>> {
        attention(q, k, v, key_mask)
    }
    fn attention_backward(
        &self,
        q: ArrayView4<'_, T>,
        k: ArrayView4<'_, T>,
        v: ArrayView4<'_, T>,
        key_mask: ArrayView2<'_, T>,
        g: ArrayView4<'_, T>,
    ) -> Result<AttentionGrads<T>> {
        attention_backward(q, k, v, key_mask, g)
    }
    fn std_corrected(&self, values: ArrayView1<'_, T>, correction: usize) -> Result<T> {
        std_corrected(values, correction)
    }
    fn std_corrected_backward(
        &self,
        values: ArrayView1<'_, T>,
        correction: usize,
        grad_output: T,
    ) -> Result<Array1<T>> {
        std_corrected_backward(values, correction, grad_output)
    }
    fn sgd_step(
        &self,
        state: &SgdState<T>,
        parameters: ArrayView1<'_, T>,
        gradient: ArrayView1<'_, T>,
        hyper: &SgdHyper,
    ) -> Result<(Array1<T>, SgdState<T>)> {
        optim::sgd_step(state, parameters, gradient, hyper)
    }
    fn adam_step(
        &self,
        state: &AdamState<T>,
        parameters: ArrayView1<'_, T>,
        gradient: ArrayView1<'_, T>,
        hyper: &AdamHyper,
    ) -> Result<(Array1<T>, AdamState<T>)> {
        optim::adam_step(state, parameters, gradient, hyper)
    }
    fn clip_grad_norm(&self, gradients: &mut [Array1<T>], max_norm: f64) -> Result<T> {
        optim::clip_grad_norm(gradients, max_norm)
    }
    fn clip_grad_value(&self, gradients: &mut [Array1<T>], clip_value: f64) -> Result<()> {
        optim::clip_grad_value(gradients, clip_value)
    }
    fn train(
        &self,
        task: &TrainingTask<T>,
        config: &TrainingConfig,
        steps: usize,
    ) -> Result<TrainingRun<T>> {
        models::train(task, config, steps)
    }
}
