//! The `Backend` trait: what a backend must compute to be checked by the oracle.

use ndarray::{
    Array1, Array2, Array3, Array4, ArrayView1, ArrayView2, ArrayView3, ArrayView4, Ix2,
};

use crate::reference::models::{TrainingConfig, TrainingRun, TrainingTask};
use crate::reference::optim::{AdamHyper, AdamState, SgdHyper, SgdState};
use crate::reference::{DropoutOutput, Reduction};
use crate::rng::RandomKey;
use crate::{Error, Result, Scalar};

mod composed;

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
    "matmul_backward",
    "batched_matmul",
    "batched_matmul_backward",
    "transpose",
    "add_rows_backward",
    "mul_rows",
    "mul_rows_backward",
    "sum_axis",
    "sum_axis_backward",
    "mean_axis",
    "mean_axis_backward",
    "softmax_rows_backward",
    "log_softmax_rows_backward",
    "bce_with_logits",
    "bce_with_logits_backward",
    "mse",
    "mse_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "embedding",
    "embedding_backward",
    "dropout",
    "dropout_backward",
    "attention",
    "attention_backward",
    "std_corrected",
    "std_corrected_backward",
    "sgd_step",
    "adam_step",
    "clip_grad_norm",
    "clip_grad_value",
    "train",
];

/// The ops with a composed default (see [`Backend`]), each with the ops it is composed of. A
/// backend that implements those parts gets the op; one that lacks a part gets
/// [`Error::Unsupported`] for the composed op itself, its `reason` naming the part. Every other
/// op of [`OPS`] is in the required core (its default returns [`Error::Unsupported`]).
pub const COMPOSED_OPS: &[(&str, &[&str])] = &[
    ("bce_with_logits_mean", &["bce_with_logits"]),
    (
        "bce_with_logits_mean_backward",
        &["bce_with_logits_backward"],
    ),
    ("matmul_backward", &["matmul"]),
    ("batched_matmul", &["matmul"]),
    ("batched_matmul_backward", &["matmul"]),
    ("add_rows_backward", &["sum_axis"]),
    ("mul_rows_backward", &["mul_rows", "matmul"]),
    ("mean_axis", &["sum_axis"]),
    ("mean_axis_backward", &["sum_axis_backward"]),
    ("cross_entropy", &["log_softmax_rows"]),
    ("cross_entropy_backward", &["softmax_rows"]),
    ("attention", &["matmul", "softmax_rows"]),
    (
        "attention_backward",
        &["matmul", "softmax_rows", "softmax_rows_backward"],
    ),
];

/// Gradients of LayerNorm: `(grad_x, grad_gamma, grad_beta)`.
pub type LayerNormGrads<T> = (Array2<T>, Array1<T>, Array1<T>);

/// Gradients of attention with respect to `(q, k, v)`, each `[batch, heads, seq, head_dim]`.
pub type AttentionGrads<T> = (Array4<T>, Array4<T>, Array4<T>);

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
/// The trait has a small **required core** and **composed defaults**; a backend implements
/// what it has and keeps compiling as ops are added.
///
/// - **Required core**: every op not listed below (`log_sum_exp_rows`, `softmax_rows`,
///   `log_softmax_rows`, `matmul`, the activations and their VJPs, `add_rows`, `layer_norm`
///   and its VJP, `transpose`, `mul_rows`, `sum_axis`, `sum_axis_backward`,
///   `softmax_rows_backward`, `log_softmax_rows_backward`, `bce_with_logits` and `mse` and
///   their VJPs, `embedding`, `dropout` and their VJPs, `std_corrected` and its VJP, the
///   optimizer steps, the two clippings and `train`). Their default body returns
///   [`Error::Unsupported`].
/// - **Composed defaults** ([`COMPOSED_OPS`]), for the ops whose reference definition is
///   itself a composition of other ops: `matmul_backward`, `batched_matmul`,
///   `batched_matmul_backward` (from `matmul`), `add_rows_backward` (`sum_axis`),
///   `mul_rows_backward` (`mul_rows`, `matmul`), `mean_axis` (`sum_axis`),
///   `mean_axis_backward` (`sum_axis_backward`), `bce_with_logits_mean` (`bce_with_logits`),
///   `bce_with_logits_mean_backward` (`bce_with_logits_backward`), `cross_entropy`
///   (`log_softmax_rows`), `cross_entropy_backward` (`softmax_rows`), `attention` (`matmul`,
///   `softmax_rows`) and `attention_backward` (`matmul`, `softmax_rows`,
///   `softmax_rows_backward`). Each validates its inputs as the reference does, calls the
///   backend's own parts and does on the host only the arithmetic the reference does there,
///   in the same order and in `T`: it is the reference's formula evaluated with the backend's
///   parts, so the op's documented bound holds whenever the parts pass. A backend without a
///   fused kernel therefore still passes; one with a fused kernel overrides the default.
///
/// An op whose part is missing is [`Error::Unsupported`] under its own name (the `reason`
/// names the part). The suite reports every unsupported op as `SKIPPED (unsupported)` by name,
/// never as passed. Implementations must validate their inputs and return typed errors (see
/// [`crate::validate`]); they must not panic.
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
    ///
    /// Composed default: `bce_with_logits(z, y, Mean)`, which the reference defines as this op
    /// (the same sum and division), so the bound is the reference's,
    /// [`crate::tolerance::bce_with_logits_mean`].
    fn bce_with_logits_mean(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
    ) -> Result<T> {
        composed::bce_with_logits_mean(self, logits, labels)
    }

    /// Gradient of [`Backend::bce_with_logits_mean`] with respect to the logits, times the
    /// upstream gradient `grad_output`; see [`crate::reference::bce_with_logits_mean_backward`].
    ///
    /// Composed default: `bce_with_logits_backward(z, y, Mean, g)`, which the reference defines
    /// as this op, so the bound is the reference's,
    /// [`crate::tolerance::bce_with_logits_mean_backward`].
    fn bce_with_logits_mean_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        grad_output: T,
    ) -> Result<Array1<T>> {
        composed::bce_with_logits_mean_backward(self, logits, labels, grad_output)
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

    /// VJP of [`Backend::matmul`]: `(g·Bᵀ, Aᵀ·g)`; see [`crate::reference::matmul_backward`].
    ///
    /// Composed default: `(matmul(g, b.t()), matmul(a.t(), g))`, the reference's formula, so the
    /// bound is the reference's, [`crate::tolerance::matmul_backward`].
    fn matmul_backward(
        &self,
        a: ArrayView2<'_, T>,
        b: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array2<T>)> {
        composed::matmul_backward(self, a, b, grad_output)
    }

    /// Batched matrix product `[B, m, k]·[B, k, n]`; see [`crate::reference::batched_matmul`].
    ///
    /// Composed default: `matmul(a_s, b_s)` for each batch entry `s`, the reference's formula,
    /// so the bound is the reference's, [`crate::tolerance::batched_matmul`].
    fn batched_matmul(&self, a: ArrayView3<'_, T>, b: ArrayView3<'_, T>) -> Result<Array3<T>> {
        composed::batched_matmul(self, a, b)
    }

    /// VJP of [`Backend::batched_matmul`]; see [`crate::reference::batched_matmul_backward`].
    ///
    /// Composed default: `(matmul(g_s, b_s.t()), matmul(a_s.t(), g_s))` for each batch entry,
    /// the reference's formula, so the bound is the reference's,
    /// [`crate::tolerance::batched_matmul_backward`].
    fn batched_matmul_backward(
        &self,
        a: ArrayView3<'_, T>,
        b: ArrayView3<'_, T>,
        grad_output: ArrayView3<'_, T>,
    ) -> Result<(Array3<T>, Array3<T>)> {
        composed::batched_matmul_backward(self, a, b, grad_output)
    }

    /// Transpose, materialised row-major; see [`crate::reference::transpose`].
    fn transpose(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "transpose"))
    }

    /// VJP of [`Backend::add_rows`]: `(g, Σ_rows g)`; see [`crate::reference::add_rows_backward`].
    ///
    /// Composed default: `(g, sum_axis(g, 0))` (the reference's column sums are `sum_axis` over
    /// axis 0), so the bound is the reference's: `grad_x` exact, `grad_b`
    /// [`crate::tolerance::sum_axis`] over axis 0.
    fn add_rows_backward(&self, grad_output: ArrayView2<'_, T>) -> Result<(Array2<T>, Array1<T>)> {
        composed::add_rows_backward(self, grad_output)
    }

    /// Multiply every row of `x [m, n]` by `b [n]`; see [`crate::reference::mul_rows`].
    fn mul_rows(&self, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>> {
        let _ = (x, b);
        Err(unsupported::<T>(&self.name(), "mul_rows"))
    }

    /// VJP of [`Backend::mul_rows`]; see [`crate::reference::mul_rows_backward`].
    ///
    /// Composed default: `grad_x = mul_rows(g, b)` (`g_ij·b_j`) and, per column `j`,
    /// `grad_b_j = matmul(g[:, j]ᵀ, x[:, j])`, the length-`m` dot product `Σ_i g_ij·x_ij` of the
    /// reference. The same formula, so the bounds are the reference's:
    /// [`crate::tolerance::mul_rows`] (with `x := g`) and
    /// [`crate::tolerance::mul_rows_backward_grad_b`] (= `matmul`'s bound for that product).
    fn mul_rows_backward(
        &self,
        x: ArrayView2<'_, T>,
        b: ArrayView1<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array1<T>)> {
        composed::mul_rows_backward(self, x, b, grad_output)
    }

    /// Sum over `axis` (0: columns' sums, 1: rows' sums); see [`crate::reference::sum_axis`].
    fn sum_axis(&self, x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>> {
        let _ = (x, axis);
        Err(unsupported::<T>(&self.name(), "sum_axis"))
    }

    /// VJP of [`Backend::sum_axis`] (a broadcast); see [`crate::reference::sum_axis_backward`].
    fn sum_axis_backward(
        &self,
        shape: (usize, usize),
        axis: usize,
        grad_output: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        let _ = (shape, axis, grad_output);
        Err(unsupported::<T>(&self.name(), "sum_axis_backward"))
    }

    /// Mean over `axis`; see [`crate::reference::mean_axis`].
    ///
    /// Composed default: `sum_axis(x, axis)` then one division by the axis length in `T`, the
    /// reference's formula (with its `EmptyInput` for an empty axis), so the bound is the
    /// reference's, [`crate::tolerance::mean_axis`].
    fn mean_axis(&self, x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>> {
        composed::mean_axis(self, x, axis)
    }

    /// VJP of [`Backend::mean_axis`]; see [`crate::reference::mean_axis_backward`].
    ///
    /// Composed default: `sum_axis_backward(shape, axis, g)` then one division by the axis
    /// length in `T`, the reference's formula, so the bound is the reference's,
    /// [`crate::tolerance::mean_axis_backward`].
    fn mean_axis_backward(
        &self,
        shape: (usize, usize),
        axis: usize,
        grad_output: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        composed::mean_axis_backward(self, shape, axis, grad_output)
    }

    /// VJP of the row softmax from its **output** `y`; see
    /// [`crate::reference::softmax_rows_backward`].
    fn softmax_rows_backward(
        &self,
        y: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        let _ = (y, grad_output);
        Err(unsupported::<T>(&self.name(), "softmax_rows_backward"))
    }

    /// VJP of the row log-softmax from its **output** `y`; see
    /// [`crate::reference::log_softmax_rows_backward`].
    fn log_softmax_rows_backward(
        &self,
        y: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        let _ = (y, grad_output);
        Err(unsupported::<T>(&self.name(), "log_softmax_rows_backward"))
    }

    /// BCE from logits with a reduction; see [`crate::reference::bce_with_logits`].
    fn bce_with_logits(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        reduction: Reduction,
    ) -> Result<T> {
        let _ = (logits, labels, reduction);
        Err(unsupported::<T>(&self.name(), "bce_with_logits"))
    }

    /// Gradient of [`Backend::bce_with_logits`]; see
    /// [`crate::reference::bce_with_logits_backward`].
    fn bce_with_logits_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array1<T>> {
        let _ = (logits, labels, reduction, grad_output);
        Err(unsupported::<T>(&self.name(), "bce_with_logits_backward"))
    }

    /// Mean squared error (or sum); see [`crate::reference::mse`].
    fn mse(
        &self,
        prediction: ArrayView2<'_, T>,
        target: ArrayView2<'_, T>,
        reduction: Reduction,
    ) -> Result<T> {
        let _ = (prediction, target, reduction);
        Err(unsupported::<T>(&self.name(), "mse"))
    }

    /// Gradient of [`Backend::mse`] with respect to the prediction; see
    /// [`crate::reference::mse_backward`].
    fn mse_backward(
        &self,
        prediction: ArrayView2<'_, T>,
        target: ArrayView2<'_, T>,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array2<T>> {
        let _ = (prediction, target, reduction, grad_output);
        Err(unsupported::<T>(&self.name(), "mse_backward"))
    }

    /// Softmax cross-entropy from logits `[n, c]` and class targets with `ignore_index`; see
    /// [`crate::reference::cross_entropy`].
    ///
    /// Composed default: `y = log_softmax_rows(z)`, then on the host the reference's sequential
    /// sum of `−y_{i,c_i}` over the active rows and its division: the reference's formula, so
    /// the bound is the reference's, [`crate::tolerance::cross_entropy`] (built on
    /// `log_softmax_rows`'s bound).
    fn cross_entropy(
        &self,
        logits: ArrayView2<'_, T>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
    ) -> Result<T> {
        composed::cross_entropy(self, logits, targets, ignore_index, reduction)
    }

    /// Gradient of [`Backend::cross_entropy`] with respect to the logits; see
    /// [`crate::reference::cross_entropy_backward`].
    ///
    /// Composed default: `p = softmax_rows(z)`, then on the host the reference's
    /// `((p_ij − [j = c_i])·g) / count` (0 on ignored rows): the reference's formula, so the
    /// bound is the reference's, [`crate::tolerance::cross_entropy_backward`] (built on
    /// `softmax_rows`'s bound).
    fn cross_entropy_backward(
        &self,
        logits: ArrayView2<'_, T>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array2<T>> {
        composed::cross_entropy_backward(
            self,
            logits,
            targets,
            ignore_index,
            reduction,
            grad_output,
        )
    }

    /// Embedding lookup `table[ids]`; see [`crate::reference::embedding`].
    fn embedding(&self, table: ArrayView2<'_, T>, ids: ArrayView1<'_, usize>) -> Result<Array2<T>> {
        let _ = (table, ids);
        Err(unsupported::<T>(&self.name(), "embedding"))
    }

    /// Gradient of the embedding table (scatter-add in index order); see
    /// [`crate::reference::embedding_backward`].
    fn embedding_backward(
        &self,
        vocab: usize,
        ids: ArrayView1<'_, usize>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        let _ = (vocab, ids, grad_output);
        Err(unsupported::<T>(&self.name(), "embedding_backward"))
    }

    /// Dropout with the counter-based mask of `key`; see [`crate::reference::dropout`]. The mask
    /// must be bitwise the reference's.
    fn dropout(
        &self,
        x: ArrayView2<'_, T>,
        p: f64,
        key: RandomKey,
    ) -> Result<DropoutOutput<T, Ix2>> {
        let _ = (x, p, key);
        Err(unsupported::<T>(&self.name(), "dropout"))
    }

    /// VJP of dropout; see [`crate::reference::dropout_backward`].
    fn dropout_backward(
        &self,
        grad_output: ArrayView2<'_, T>,
        mask: ArrayView2<'_, bool>,
        scale: T,
    ) -> Result<Array2<T>> {
        let _ = (grad_output, mask, scale);
        Err(unsupported::<T>(&self.name(), "dropout_backward"))
    }

    /// Scaled dot-product attention per batch and head, `[batch, heads, seq, head_dim]`, with an
    /// additive key mask `[batch, seq]`; see [`crate::reference::attention`].
    ///
    /// Composed default, per batch entry and head: `S = matmul(Q, Kᵀ)`, then on the host
    /// `S_ij·scale + mask_j` with `scale = round_T(1/√d)` (the reference's arithmetic), then
    /// `P = softmax_rows(S)` and `O = matmul(P, V)`: the reference's formula, so the bound is
    /// the reference's, [`crate::tolerance::attention`] (composed from the parts' bounds).
    fn attention(
        &self,
        q: ArrayView4<'_, T>,
        k: ArrayView4<'_, T>,
        v: ArrayView4<'_, T>,
        key_mask: ArrayView2<'_, T>,
    ) -> Result<Array4<T>> {
        composed::attention(self, q, k, v, key_mask)
    }

    /// VJP of [`Backend::attention`]; see [`crate::reference::attention_backward`].
    ///
    /// Composed default, per batch entry and head, recomputing `P` as [`Backend::attention`]'s
    /// default does: `∂V = matmul(Pᵀ, G)`, `∂P = matmul(G, Vᵀ)`,
    /// `∂S = softmax_rows_backward(P, ∂P)·scale` (the product on the host),
    /// `∂Q = matmul(∂S, K)`, `∂K = matmul(∂Sᵀ, Q)`: the reference's formula, so the bound is
    /// the reference's, [`crate::tolerance::attention_backward`].
    fn attention_backward(
        &self,
        q: ArrayView4<'_, T>,
        k: ArrayView4<'_, T>,
        v: ArrayView4<'_, T>,
        key_mask: ArrayView2<'_, T>,
        grad_output: ArrayView4<'_, T>,
    ) -> Result<AttentionGrads<T>> {
        composed::attention_backward(self, q, k, v, key_mask, grad_output)
    }

    /// Standard deviation with Bessel-style `correction`; see
    /// [`crate::reference::std_corrected`].
    fn std_corrected(&self, values: ArrayView1<'_, T>, correction: usize) -> Result<T> {
        let _ = (values, correction);
        Err(unsupported::<T>(&self.name(), "std_corrected"))
    }

    /// Gradient of [`Backend::std_corrected`]; see
    /// [`crate::reference::std_corrected_backward`].
    fn std_corrected_backward(
        &self,
        values: ArrayView1<'_, T>,
        correction: usize,
        grad_output: T,
    ) -> Result<Array1<T>> {
        let _ = (values, correction, grad_output);
        Err(unsupported::<T>(&self.name(), "std_corrected_backward"))
    }

    /// One SGD step on one tensor: `(new parameters, new state)`; see
    /// [`crate::reference::optim::sgd_step`].
    fn sgd_step(
        &self,
        state: &SgdState<T>,
        parameters: ArrayView1<'_, T>,
        gradient: ArrayView1<'_, T>,
        hyper: &SgdHyper,
    ) -> Result<(Array1<T>, SgdState<T>)> {
        let _ = (state, parameters, gradient, hyper);
        Err(unsupported::<T>(&self.name(), "sgd_step"))
    }

    /// One Adam/AdamW step on one tensor: `(new parameters, new state)`; see
    /// [`crate::reference::optim::adam_step`].
    fn adam_step(
        &self,
        state: &AdamState<T>,
        parameters: ArrayView1<'_, T>,
        gradient: ArrayView1<'_, T>,
        hyper: &AdamHyper,
    ) -> Result<(Array1<T>, AdamState<T>)> {
        let _ = (state, parameters, gradient, hyper);
        Err(unsupported::<T>(&self.name(), "adam_step"))
    }

    /// `clip_grad_norm_` over all `gradients` (global norm), in place; returns the norm before
    /// clipping; see [`crate::reference::optim::clip_grad_norm`].
    fn clip_grad_norm(&self, gradients: &mut [Array1<T>], max_norm: f64) -> Result<T> {
        let _ = (gradients, max_norm);
        Err(unsupported::<T>(&self.name(), "clip_grad_norm"))
    }

    /// `clip_grad_value_`, in place; see [`crate::reference::optim::clip_grad_value`].
    fn clip_grad_value(&self, gradients: &mut [Array1<T>], clip_value: f64) -> Result<()> {
        let _ = (gradients, clip_value);
        Err(unsupported::<T>(&self.name(), "clip_grad_value"))
    }

    /// Train `task` for `steps` steps with `config` (PyTorch's loop, see
    /// [`crate::reference::models::Trainer`]); the loss trace, final parameters and the
    /// gradients the optimizer saw last. A device backend keeps the state resident between steps.
    fn train(
        &self,
        task: &TrainingTask<T>,
        config: &TrainingConfig,
        steps: usize,
    ) -> Result<TrainingRun<T>> {
        let _ = (task, config, steps);
        Err(unsupported::<T>(&self.name(), "train"))
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
    fn matmul_backward(
        &self,
        a: ArrayView2<'_, T>,
        b: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array2<T>)> {
        (**self).matmul_backward(a, b, g)
    }
    fn batched_matmul(&self, a: ArrayView3<'_, T>, b: ArrayView3<'_, T>) -> Result<Array3<T>> {
        (**self).batched_matmul(a, b)
    }
    fn batched_matmul_backward(
        &self,
        a: ArrayView3<'_, T>,
        b: ArrayView3<'_, T>,
        g: ArrayView3<'_, T>,
    ) -> Result<(Array3<T>, Array3<T>)> {
        (**self).batched_matmul_backward(a, b, g)
    }
    fn transpose(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).transpose(x)
    }
    fn add_rows_backward(&self, g: ArrayView2<'_, T>) -> Result<(Array2<T>, Array1<T>)> {
        (**self).add_rows_backward(g)
    }
    fn mul_rows(&self, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>> {
        (**self).mul_rows(x, b)
    }
    fn mul_rows_backward(
        &self,
        x: ArrayView2<'_, T>,
        b: ArrayView1<'_, T>,
        g: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array1<T>)> {
        (**self).mul_rows_backward(x, b, g)
    }
    fn sum_axis(&self, x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>> {
        (**self).sum_axis(x, axis)
    }
    fn sum_axis_backward(
        &self,
        shape: (usize, usize),
        axis: usize,
        g: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        (**self).sum_axis_backward(shape, axis, g)
    }
    fn mean_axis(&self, x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>> {
        (**self).mean_axis(x, axis)
    }
    fn mean_axis_backward(
        &self,
        shape: (usize, usize),
        axis: usize,
        g: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        (**self).mean_axis_backward(shape, axis, g)
    }
    fn softmax_rows_backward(
        &self,
        y: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        (**self).softmax_rows_backward(y, g)
    }
    fn log_softmax_rows_backward(
        &self,
        y: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        (**self).log_softmax_rows_backward(y, g)
    }
    fn bce_with_logits(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        reduction: Reduction,
    ) -> Result<T> {
        (**self).bce_with_logits(logits, labels, reduction)
    }
    fn bce_with_logits_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array1<T>> {
        (**self).bce_with_logits_backward(logits, labels, reduction, grad_output)
    }
    fn mse(
        &self,
        prediction: ArrayView2<'_, T>,
        target: ArrayView2<'_, T>,
        reduction: Reduction,
    ) -> Result<T> {
        (**self).mse(prediction, target, reduction)
    }
    fn mse_backward(
        &self,
        prediction: ArrayView2<'_, T>,
        target: ArrayView2<'_, T>,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array2<T>> {
        (**self).mse_backward(prediction, target, reduction, grad_output)
    }
    fn cross_entropy(
        &self,
        logits: ArrayView2<'_, T>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
    ) -> Result<T> {
        (**self).cross_entropy(logits, targets, ignore_index, reduction)
    }
    fn cross_entropy_backward(
        &self,
        logits: ArrayView2<'_, T>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array2<T>> {
        (**self).cross_entropy_backward(logits, targets, ignore_index, reduction, grad_output)
    }
    fn embedding(&self, table: ArrayView2<'_, T>, ids: ArrayView1<'_, usize>) -> Result<Array2<T>> {
        (**self).embedding(table, ids)
    }
    fn embedding_backward(
        &self,
        vocab: usize,
        ids: ArrayView1<'_, usize>,
        g: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        (**self).embedding_backward(vocab, ids, g)
    }
    fn dropout(
        &self,
        x: ArrayView2<'_, T>,
        p: f64,
        key: RandomKey,
    ) -> Result<DropoutOutput<T, Ix2>> {
        (**self).dropout(x, p, key)
    }
    fn dropout_backward(
        &self,
        g: ArrayView2<'_, T>,
        mask: ArrayView2<'_, bool>,
        scale: T,
    ) -> Result<Array2<T>> {
        (**self).dropout_backward(g, mask, scale)
    }
    fn attention(
        &self,
        q: ArrayView4<'_, T>,
        k: ArrayView4<'_, T>,
        v: ArrayView4<'_, T>,
        key_mask: ArrayView2<'_, T>,
    ) -> Result<Array4<T>> {
        (**self).attention(q, k, v, key_mask)
    }
    fn attention_backward(
        &self,
        q: ArrayView4<'_, T>,
        k: ArrayView4<'_, T>,
        v: ArrayView4<'_, T>,
        key_mask: ArrayView2<'_, T>,
        g: ArrayView4<'_, T>,
    ) -> Result<AttentionGrads<T>> {
        (**self).attention_backward(q, k, v, key_mask, g)
    }
    fn std_corrected(&self, values: ArrayView1<'_, T>, correction: usize) -> Result<T> {
        (**self).std_corrected(values, correction)
    }
    fn std_corrected_backward(
        &self,
        values: ArrayView1<'_, T>,
        correction: usize,
        grad_output: T,
    ) -> Result<Array1<T>> {
        (**self).std_corrected_backward(values, correction, grad_output)
    }
    fn sgd_step(
        &self,
        state: &SgdState<T>,
        parameters: ArrayView1<'_, T>,
        gradient: ArrayView1<'_, T>,
        hyper: &SgdHyper,
    ) -> Result<(Array1<T>, SgdState<T>)> {
        (**self).sgd_step(state, parameters, gradient, hyper)
    }
    fn adam_step(
        &self,
        state: &AdamState<T>,
        parameters: ArrayView1<'_, T>,
        gradient: ArrayView1<'_, T>,
        hyper: &AdamHyper,
    ) -> Result<(Array1<T>, AdamState<T>)> {
        (**self).adam_step(state, parameters, gradient, hyper)
    }
    fn clip_grad_norm(&self, gradients: &mut [Array1<T>], max_norm: f64) -> Result<T> {
        (**self).clip_grad_norm(gradients, max_norm)
    }
    fn clip_grad_value(&self, gradients: &mut [Array1<T>], clip_value: f64) -> Result<()> {
        (**self).clip_grad_value(gradients, clip_value)
    }
    fn train(
        &self,
        task: &TrainingTask<T>,
        config: &TrainingConfig,
        steps: usize,
    ) -> Result<TrainingRun<T>> {
        (**self).train(task, config, steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composed_ops_are_ops_built_from_core_ops_only() {
        let composed: Vec<&str> = COMPOSED_OPS.iter().map(|(op, _)| *op).collect();
        for (op, needs) in COMPOSED_OPS {
            assert!(OPS.contains(op), "{op} is not in OPS");
            assert!(!needs.is_empty(), "{op} needs nothing");
            for need in *needs {
                assert!(OPS.contains(need), "{op} needs {need}, not in OPS");
                assert!(
                    !composed.contains(need),
                    "{op} needs {need}, itself composed: parts must be core ops"
                );
            }
        }
        let mut unique = composed.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), composed.len(), "an op is listed twice");
    }
}
