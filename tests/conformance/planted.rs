//! The oracle has teeth: backends with one realistic mistake each must be caught by the
//! conformance checks, on generated inputs, while the unmodified reference passes.

use mloracle::conformance::training::check_training;
use mloracle::conformance::{self, CheckResult};
use mloracle::proptest::prelude::*;
use mloracle::proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use mloracle::reference::models::mlp::{Activation, Mlp, MlpBatch, MlpConfig, MlpLoss};
use mloracle::reference::models::{
    Model, OptimizerConfig, TrainingConfig, TrainingRun, TrainingTask,
};
use mloracle::reference::optim::{
    self, AdamHyper, AdamState, GradientMode, LearningRateSchedule, SgdHyper, SgdState,
};
use mloracle::reference::{DropoutOutput, Reduction};
use mloracle::rng::RandomKey;
use mloracle::{reference, strategy, validate, Backend, Reference, Result};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Ix2};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bug {
    /// log Σ exp x without the max shift.
    LogSumExpWithoutShift,
    /// m + log(1 + s) instead of m + log1p(s).
    LogSumExpLogInsteadOfLog1p,
    /// Softmax divided by Σ_{j≠k} exp instead of the full sum.
    SoftmaxMissingMaxTerm,
    /// log_softmax as log(softmax).
    LogSoftmaxAsLogOfSoftmax,
    /// Mean BCE without the 1/n.
    BceMeanMissingDivision,
    /// BCE as −y log σ(z) − (1−y) log(1−σ(z)).
    BceNaive,
    /// Gradient without the 1/n.
    BceBackwardMissingDivision,
    /// Softmax normalised over the columns instead of the rows.
    SoftmaxOverWrongAxis,
    /// GELU's tanh approximation where the erf form is specified.
    GeluTanhApproximation,
    /// LayerNorm with the unbiased variance (divides by n − 1).
    LayerNormUnbiasedVariance,
    /// LayerNorm with eps outside the square root: (x − μ)/(σ + eps).
    LayerNormEpsOutsideSqrt,
    /// LayerNorm backward without the mean-of-gradient term `a`.
    LayerNormBackwardMissingMeanTerm,
    /// ReLU backward with derivative 1 at 0 (`x ≥ 0`).
    ReluBackwardOneAtZero,
    /// tanh backward as `g·(1 − y)` (the square forgotten).
    TanhBackwardMissingSquare,
    /// Adam with eps inside the square root: `m̂ / sqrt(v̂ + eps)`.
    AdamEpsInsideSqrt,
    /// Adam without bias correction: `m̂ = m`, `v̂ = v`.
    AdamWithoutBiasCorrection,
    /// The LambdaLR schedule read one step ahead: step `i` uses `λ(i + 1)`.
    ScheduleOffByOne,
    /// `clip_grad_norm` per tensor (each tensor scaled to its own norm) instead of global.
    ClipGradNormPerTensor,
    /// Mean MSE without the 1/N.
    MseMeanMissingDivision,
    /// Mean cross-entropy without the 1/N.
    CrossEntropyMeanMissingDivision,
    /// Mean cross-entropy divided by all rows, the ignored ones included.
    CrossEntropyMeanCountsIgnoredRows,
    /// Dropout keeps the mask but forgets the 1/(1 − p) scale on the output.
    DropoutWithoutScale,
    /// Embedding backward assigns `grad[id] = g` instead of accumulating repeated ids.
    EmbeddingBackwardOverwrites,
    /// The training loop never zeroes the gradients (`zero_grad()` forgotten).
    TrainingNeverZeroesGradients,
    /// The training loop zeroes the gradients even when accumulation is configured.
    TrainingIgnoresAccumulation,
}

struct Planted(Bug);

impl Backend<f32> for Planted {
    fn name(&self) -> String {
        format!("planted::{:?}", self.0)
    }
    fn log_sum_exp_rows(&self, x: ArrayView2<'_, f32>) -> Result<Array1<f32>> {
        match self.0 {
            Bug::LogSumExpWithoutShift => {
                Ok(x.map_axis(Axis(1), |r| r.iter().map(|v| v.exp()).sum::<f32>().ln()))
            }
            Bug::LogSumExpLogInsteadOfLog1p => Ok(x.map_axis(Axis(1), |r| {
                let m = r.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let k = r.iter().position(|&v| v == m).unwrap_or(0);
                let s: f32 = r
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != k)
                    .map(|(_, v)| (v - m).exp())
                    .sum();
                m + (1.0 + s).ln()
            })),
            _ => reference::log_sum_exp_rows(x),
        }
    }
    fn softmax_rows(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if self.0 == Bug::SoftmaxOverWrongAxis {
            let t = reference::softmax_rows(x.t())?;
            return Ok(t.t().to_owned());
        }
        let mut y = reference::softmax_rows(x)?;
        if self.0 == Bug::SoftmaxMissingMaxTerm {
            for mut row in y.rows_mut() {
                let s: f32 = row.sum();
                let top = row.iter().fold(0.0f32, |a, &b| a.max(b));
                row.mapv_inplace(|v| v / (s - top).max(f32::MIN_POSITIVE) * s);
            }
        }
        Ok(y)
    }
    fn log_softmax_rows(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if self.0 == Bug::LogSoftmaxAsLogOfSoftmax {
            return Ok(reference::softmax_rows(x)?.mapv(f32::ln));
        }
        reference::log_softmax_rows(x)
    }
    fn bce_with_logits_mean(
        &self,
        logits: ArrayView1<'_, f32>,
        labels: ArrayView1<'_, f32>,
    ) -> Result<f32> {
        let n = logits.len() as f32;
        match self.0 {
            Bug::BceMeanMissingDivision => Ok(reference::bce_with_logits_mean(logits, labels)? * n),
            Bug::BceNaive => Ok(logits
                .iter()
                .zip(labels.iter())
                .map(|(&z, &y)| {
                    let s = 1.0 / (1.0 + (-z).exp());
                    -y * s.ln() - (1.0 - y) * (1.0 - s).ln()
                })
                .sum::<f32>()
                / n),
            _ => reference::bce_with_logits_mean(logits, labels),
        }
    }
    fn bce_with_logits_mean_backward(
        &self,
        logits: ArrayView1<'_, f32>,
        labels: ArrayView1<'_, f32>,
        grad_output: f32,
    ) -> Result<Array1<f32>> {
        let g = reference::bce_with_logits_mean_backward(logits, labels, grad_output)?;
        if self.0 == Bug::BceBackwardMissingDivision {
            return Ok(g * logits.len() as f32);
        }
        Ok(g)
    }

    fn gelu(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if self.0 == Bug::GeluTanhApproximation {
            let c = (2.0f32 / std::f32::consts::PI).sqrt();
            return Ok(x.mapv(|v| 0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())));
        }
        Ok(reference::gelu(x))
    }
    fn relu_backward(&self, x: ArrayView2<'_, f32>, g: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let mut d = reference::relu_backward(x, g)?;
        if self.0 == Bug::ReluBackwardOneAtZero {
            ndarray::Zip::from(&mut d)
                .and(x)
                .and(g)
                .for_each(|d, &x, &g| {
                    if x == 0.0 {
                        *d = g;
                    }
                });
        }
        Ok(d)
    }
    fn tanh_backward(&self, y: ArrayView2<'_, f32>, g: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if self.0 == Bug::TanhBackwardMissingSquare {
            validate::same_shape("tanh_backward", "grad_output", g.shape(), "y", y.shape())?;
            let mut d = g.to_owned();
            ndarray::Zip::from(&mut d)
                .and(y)
                .for_each(|d, &y| *d *= 1.0 - y);
            return Ok(d);
        }
        reference::tanh_backward(y, g)
    }
    fn layer_norm(
        &self,
        x: ArrayView2<'_, f32>,
        gamma: ArrayView1<'_, f32>,
        beta: ArrayView1<'_, f32>,
        eps: f64,
    ) -> Result<Array2<f32>> {
        let unbiased = self.0 == Bug::LayerNormUnbiasedVariance;
        let outside = self.0 == Bug::LayerNormEpsOutsideSqrt;
        if !(unbiased || outside) {
            return reference::layer_norm(x, gamma, beta, eps);
        }
        validate::layer_norm("layer_norm", x, gamma, beta, eps)?;
        let eps = eps as f32;
        let mut y = x.to_owned();
        for mut row in y.rows_mut() {
            let n = row.len() as f32;
            let mu = row.sum() / n;
            let ss: f32 = row.iter().map(|v| (v - mu) * (v - mu)).sum();
            let var = if unbiased {
                ss / (n - 1.0).max(1.0)
            } else {
                ss / n
            };
            let scale = if outside {
                1.0 / (var.sqrt() + eps)
            } else {
                1.0 / (var + eps).sqrt()
            };
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - mu) * scale * gamma[j] + beta[j];
            }
        }
        Ok(y)
    }
    fn layer_norm_backward(
        &self,
        x: ArrayView2<'_, f32>,
        gamma: ArrayView1<'_, f32>,
        beta: ArrayView1<'_, f32>,
        eps: f64,
        g: ArrayView2<'_, f32>,
    ) -> Result<mloracle::backend::LayerNormGrads<f32>> {
        let (mut gx, gg, gb) = reference::layer_norm_backward(x, gamma, beta, eps, g)?;
        if self.0 == Bug::LayerNormBackwardMissingMeanTerm {
            // Add back rstd·a, the term the bug forgets: a = mean_j(g_j·γ_j).
            let eps = eps as f32;
            for (i, mut row) in gx.rows_mut().into_iter().enumerate() {
                let xr = x.row(i);
                let n = xr.len() as f32;
                let mu = xr.sum() / n;
                let var = xr.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / n;
                let rstd = 1.0 / (var + eps).sqrt();
                let a = g
                    .row(i)
                    .iter()
                    .zip(gamma.iter())
                    .map(|(g, c)| g * c)
                    .sum::<f32>()
                    / n;
                row.mapv_inplace(|d| d + rstd * a);
            }
        }
        Ok((gx, gg, gb))
    }
    fn mse(
        &self,
        prediction: ArrayView2<'_, f32>,
        target: ArrayView2<'_, f32>,
        reduction: Reduction,
    ) -> Result<f32> {
        if self.0 == Bug::MseMeanMissingDivision {
            return reference::mse(prediction, target, Reduction::Sum);
        }
        reference::mse(prediction, target, reduction)
    }
    fn mse_backward(
        &self,
        prediction: ArrayView2<'_, f32>,
        target: ArrayView2<'_, f32>,
        reduction: Reduction,
        grad_output: f32,
    ) -> Result<Array2<f32>> {
        reference::mse_backward(prediction, target, reduction, grad_output)
    }
    fn cross_entropy(
        &self,
        logits: ArrayView2<'_, f32>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
    ) -> Result<f32> {
        let sum = reference::cross_entropy(logits, targets, ignore_index, Reduction::Sum)?;
        match (self.0, reduction) {
            (Bug::CrossEntropyMeanMissingDivision, Reduction::Mean) => Ok(sum),
            (Bug::CrossEntropyMeanCountsIgnoredRows, Reduction::Mean) => {
                Ok(sum / targets.len() as f32)
            }
            _ => reference::cross_entropy(logits, targets, ignore_index, reduction),
        }
    }
    fn cross_entropy_backward(
        &self,
        logits: ArrayView2<'_, f32>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
        grad_output: f32,
    ) -> Result<Array2<f32>> {
        reference::cross_entropy_backward(logits, targets, ignore_index, reduction, grad_output)
    }
    fn embedding_backward(
        &self,
        vocab: usize,
        ids: ArrayView1<'_, usize>,
        g: ArrayView2<'_, f32>,
    ) -> Result<Array2<f32>> {
        let mut table = reference::embedding_backward(vocab, ids, g)?;
        if self.0 == Bug::EmbeddingBackwardOverwrites {
            // The scatter written as an assignment: the last row with each id wins.
            for (i, &id) in ids.iter().enumerate() {
                table.row_mut(id).assign(&g.row(i));
            }
        }
        Ok(table)
    }
    fn dropout(
        &self,
        x: ArrayView2<'_, f32>,
        p: f64,
        key: RandomKey,
    ) -> Result<DropoutOutput<f32, Ix2>> {
        let mut out = reference::dropout(x, p, key)?;
        if self.0 == Bug::DropoutWithoutScale {
            ndarray::Zip::from(&mut out.output)
                .and(x)
                .and(&out.mask)
                .for_each(|y, &v, &keep| *y = if keep { v } else { 0.0 });
        }
        Ok(out)
    }
    fn dropout_backward(
        &self,
        g: ArrayView2<'_, f32>,
        mask: ArrayView2<'_, bool>,
        scale: f32,
    ) -> Result<Array2<f32>> {
        reference::dropout_backward(g, mask, scale)
    }
    fn sgd_step(
        &self,
        state: &SgdState<f32>,
        parameters: ArrayView1<'_, f32>,
        gradient: ArrayView1<'_, f32>,
        hyper: &SgdHyper,
    ) -> Result<(Array1<f32>, SgdState<f32>)> {
        optim::sgd_step(state, parameters, gradient, hyper)
    }
    fn adam_step(
        &self,
        state: &AdamState<f32>,
        parameters: ArrayView1<'_, f32>,
        gradient: ArrayView1<'_, f32>,
        hyper: &AdamHyper,
    ) -> Result<(Array1<f32>, AdamState<f32>)> {
        let inside = self.0 == Bug::AdamEpsInsideSqrt;
        let uncorrected = self.0 == Bug::AdamWithoutBiasCorrection;
        if !(inside || uncorrected) {
            return optim::adam_step(state, parameters, gradient, hyper);
        }
        let n = parameters.len();
        optim::validate_adam_step(
            hyper,
            n,
            gradient.len(),
            state.first_moment.len(),
            state.second_moment.len(),
        )?;
        let step = state.step + 1;
        let (c1, c2) = if uncorrected {
            (1.0, 1.0)
        } else {
            optim::adam_bias_corrections(hyper, step)
        };
        let (b1, b2) = (hyper.beta1 as f32, hyper.beta2 as f32);
        let (lr, eps, wd) = (
            hyper.learning_rate as f32,
            hyper.eps as f32,
            hyper.weight_decay as f32,
        );
        let mut theta = parameters.to_owned();
        let mut next = AdamState::zeros(n);
        next.step = step;
        for i in 0..n {
            let mut g = gradient[i];
            if hyper.weight_decay != 0.0 {
                if hyper.decoupled {
                    theta[i] *= 1.0 - lr * wd;
                } else {
                    g += wd * theta[i];
                }
            }
            let m = b1 * state.first_moment[i] + (1.0 - b1) * g;
            let v = b2 * state.second_moment[i] + (1.0 - b2) * g * g;
            let (m_hat, v_hat) = (m / c1 as f32, v / c2 as f32);
            let s = if inside {
                lr * m_hat / (v_hat + eps).sqrt()
            } else {
                lr * m_hat / (v_hat.sqrt() + eps)
            };
            theta[i] -= s;
            next.first_moment[i] = m;
            next.second_moment[i] = v;
            next.last_step[i] = s;
        }
        Ok((theta, next))
    }
    fn clip_grad_norm(&self, gradients: &mut [Array1<f32>], max_norm: f64) -> Result<f32> {
        if self.0 != Bug::ClipGradNormPerTensor {
            return optim::clip_grad_norm(gradients, max_norm);
        }
        let total = gradients
            .iter()
            .flat_map(|g| g.iter())
            .map(|g| g * g)
            .sum::<f32>()
            .sqrt();
        for tensor in gradients.iter_mut() {
            optim::clip_grad_norm(std::slice::from_mut(tensor), max_norm)?;
        }
        Ok(total)
    }
    fn train(
        &self,
        task: &TrainingTask<f32>,
        config: &TrainingConfig,
        steps: usize,
    ) -> Result<TrainingRun<f32>> {
        match task {
            TrainingTask::Mlp { model, batch } => self.train_loop(model, batch, config, steps),
            TrainingTask::Encoder { model, batch } => self.train_loop(model, batch, config, steps),
            TrainingTask::Gru { model, batch } => self.train_loop(model, batch, config, steps),
        }
    }
}

impl Planted {
    /// PyTorch's loop (see `reference::models::Trainer`) on this backend's optimizer and clipping
    /// ops, with the loop's own planted mistakes.
    fn train_loop<M: Model<f32> + Clone>(
        &self,
        model: &M,
        batch: &M::Batch,
        config: &TrainingConfig,
        steps: usize,
    ) -> Result<TrainingRun<f32>> {
        let mut model = model.clone();
        let lengths: Vec<usize> = model.parameters().iter().map(Array1::len).collect();
        let mut stored: Vec<Array1<f32>> = lengths.iter().map(|&n| Array1::zeros(n)).collect();
        let mut adam: Vec<AdamState<f32>> = lengths.iter().map(|&n| AdamState::zeros(n)).collect();
        let mut sgd: Vec<SgdState<f32>> = vec![SgdState::default(); lengths.len()];
        let mode = match self.0 {
            Bug::TrainingNeverZeroesGradients => GradientMode::Accumulate,
            Bug::TrainingIgnoresAccumulation => GradientMode::ZeroEachStep,
            _ => config.gradient_mode,
        };
        let mut losses = Vec::with_capacity(steps);
        for step in 0..steps as u64 {
            let scheduled = if self.0 == Bug::ScheduleOffByOne {
                step + 1
            } else {
                step
            };
            let lr = config
                .schedule
                .learning_rate(config.base_learning_rate, scheduled)?;
            let (loss, fresh) = model.loss_and_gradients(batch, step)?;
            optim::store_gradients(&mut stored, &fresh, mode)?;
            if let Some(max_norm) = config.clip_grad_norm {
                self.clip_grad_norm(&mut stored, max_norm)?;
            }
            let parameters = model.parameters_mut();
            for (t, theta) in parameters.iter_mut().enumerate() {
                match config.optimizer {
                    OptimizerConfig::Adam(mut hyper) => {
                        hyper.learning_rate = lr;
                        let (new, state) =
                            self.adam_step(&adam[t], theta.view(), stored[t].view(), &hyper)?;
                        *theta = new;
                        adam[t] = state;
                    }
                    OptimizerConfig::Sgd(mut hyper) => {
                        hyper.learning_rate = lr;
                        let (new, state) =
                            self.sgd_step(&sgd[t], theta.view(), stored[t].view(), &hyper)?;
                        *theta = new;
                        sgd[t] = state;
                    }
                }
            }
            losses.push(loss);
        }
        Ok(TrainingRun {
            losses,
            parameters: model.parameters().to_vec(),
            gradients: stored,
        })
    }
}

/// Whether `check` fails on some input among 64 deterministic cases.
fn caught<S: Strategy>(strategy: S, check: impl Fn(S::Value) -> CheckResult) -> bool {
    let config = Config {
        cases: 64,
        failure_persistence: None,
        max_shrink_iters: 0,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    runner
        .run(&strategy, |v| {
            check(v)
                .map(drop)
                .map_err(|f| TestCaseError::fail(f.to_string()))
        })
        .is_err()
}

fn caught_by_row_ops(b: &impl Backend<f32>) -> Vec<&'static str> {
    let mut by = Vec::new();
    if caught(strategy::logits_matrix::<f32>(), |x| {
        conformance::check_log_sum_exp_rows(b, x.view())
    }) {
        by.push("log_sum_exp_rows");
    }
    if caught(strategy::logits_matrix::<f32>(), |x| {
        conformance::check_softmax_rows(b, x.view())
    }) {
        by.push("softmax_rows");
    }
    if caught(strategy::logits_matrix::<f32>(), |x| {
        conformance::check_log_softmax_rows(b, x.view())
    }) {
        by.push("log_softmax_rows");
    }
    by
}

fn caught_by_losses(b: &impl Backend<f32>) -> Vec<&'static str> {
    let mut by = Vec::new();
    if caught(strategy::bce_inputs::<f32>(), |(z, y)| {
        conformance::check_bce_with_logits_mean(b, z.view(), y.view())
    }) {
        by.push("bce_with_logits_mean");
    }
    if caught(strategy::bce_inputs::<f32>(), |(z, y)| {
        conformance::check_bce_with_logits_mean_backward(b, z.view(), y.view(), 1.0)
    }) {
        by.push("bce_with_logits_mean_backward");
    }
    by
}

fn caught_by_activations_and_norms(b: &impl Backend<f32>) -> Vec<&'static str> {
    let mut by = Vec::new();
    if caught(strategy::activation_input::<f32>(), |x| {
        conformance::check_gelu(b, x.view())
    }) {
        by.push("gelu");
    }
    if caught(strategy::activation_input_with_grad::<f32>(), |(x, g)| {
        conformance::check_relu_backward(b, x.view(), g.view())
    }) {
        by.push("relu_backward");
    }
    if caught(strategy::tanh_output_with_grad::<f32>(), |(y, g)| {
        conformance::check_tanh_backward(b, y.view(), g.view())
    }) {
        by.push("tanh_backward");
    }
    if caught(strategy::layer_norm_inputs::<f32>(), |(x, g, be, eps)| {
        conformance::check_layer_norm(b, x.view(), g.view(), be.view(), eps)
    }) {
        by.push("layer_norm");
    }
    if caught(
        strategy::layer_norm_backward_inputs::<f32>(),
        |((x, g, be, eps), go)| {
            conformance::check_layer_norm_backward(b, x.view(), g.view(), be.view(), eps, go.view())
                .map(|a| a.grad_x)
        },
    ) {
        by.push("layer_norm_backward");
    }
    by
}

fn caught_by_more_losses(b: &impl Backend<f32>) -> Vec<&'static str> {
    let mut by = Vec::new();
    if caught(strategy::mse_inputs::<f32>(), |(p, t, r)| {
        conformance::check_mse(b, p.view(), t.view(), r)
    }) {
        by.push("mse");
    }
    if caught(strategy::mse_inputs::<f32>(), |(p, t, r)| {
        conformance::check_mse_backward(b, p.view(), t.view(), r, 1.0)
    }) {
        by.push("mse_backward");
    }
    if caught(
        strategy::cross_entropy_inputs::<f32>(),
        |(z, t, ignore, r)| conformance::check_cross_entropy(b, z.view(), t.view(), ignore, r),
    ) {
        by.push("cross_entropy");
    }
    if caught(
        strategy::cross_entropy_inputs::<f32>(),
        |(z, t, ignore, r)| {
            conformance::check_cross_entropy_backward(b, z.view(), t.view(), ignore, r, 1.0)
        },
    ) {
        by.push("cross_entropy_backward");
    }
    by
}

fn caught_by_layers(b: &impl Backend<f32>) -> Vec<&'static str> {
    let mut by = Vec::new();
    if caught(
        strategy::embedding_backward_inputs::<f32>(),
        |(v, ids, g)| conformance::check_embedding_backward(b, v, ids.view(), g.view()),
    ) {
        by.push("embedding_backward");
    }
    if caught(strategy::dropout_inputs::<f32>(), |(x, p, key)| {
        conformance::check_dropout(b, x.view(), p, key)
    }) {
        by.push("dropout");
    }
    if caught(
        strategy::dropout_backward_inputs::<f32>(),
        |(g, mask, scale)| conformance::check_dropout_backward(b, g.view(), mask.view(), scale),
    ) {
        by.push("dropout_backward");
    }
    by
}

fn caught_by_optim(b: &impl Backend<f32>) -> Vec<&'static str> {
    let mut by = Vec::new();
    if caught(strategy::sgd_inputs::<f32>(), |(state, theta, g, hyper)| {
        conformance::check_sgd_step(b, &state, theta.view(), g.view(), &hyper)
    }) {
        by.push("sgd_step");
    }
    if caught(
        strategy::adam_inputs::<f32>(),
        |(state, theta, g, hyper)| {
            conformance::check_adam_step(b, &state, theta.view(), g.view(), &hyper)
        },
    ) {
        by.push("adam_step");
    }
    if caught(strategy::clip_inputs::<f32>(), |(grads, max_norm)| {
        conformance::check_clip_grad_norm(b, &grads, max_norm)
    }) {
        by.push("clip_grad_norm");
    }
    by
}

/// A small regression MLP (3 → 5 → 2, tanh, mean MSE) on a fixed batch of 6.
fn mlp_task() -> TrainingTask<f32> {
    let config = MlpConfig {
        widths: vec![3, 5, 2],
        hidden_activation: Activation::Tanh,
        output_activation: Activation::Identity,
        loss: MlpLoss::Mse(Reduction::Mean),
        seed: 11,
    };
    let model = Mlp::new(config).expect("a valid MLP config");
    let inputs = Array2::from_shape_fn((6, 3), |(i, j)| ((i * 3 + j) as f32 * 0.37).sin());
    let targets = Array2::from_shape_fn((6, 2), |(i, j)| ((i + 2 * j) as f32 * 0.71).cos());
    TrainingTask::Mlp {
        model,
        batch: MlpBatch { inputs, targets },
    }
}

/// The training configurations `Backend::train` is checked with, by label: Adam at a constant
/// rate; Adam with Noam warmup (λ doubles from step 1 to 2); SGD accumulating gradients
/// without `zero_grad()` and clipping their global norm (seed 003's loop).
fn training_configs() -> Vec<(&'static str, TrainingConfig)> {
    let noam = TrainingConfig {
        schedule: LearningRateSchedule::Noam {
            model_size: 4,
            factor: 1.0,
            warmup_steps: 4,
        },
        base_learning_rate: 0.5,
        ..TrainingConfig::adam(0.5)
    };
    let accumulate = TrainingConfig {
        clip_grad_norm: Some(0.05),
        gradient_mode: GradientMode::Accumulate,
        ..TrainingConfig::sgd(0.1)
    };
    vec![
        ("train(adam)", TrainingConfig::adam(1e-2)),
        ("train(noam)", noam),
        ("train(accumulate+clip)", accumulate),
    ]
}

fn caught_by_training(b: &impl Backend<f32>) -> Vec<&'static str> {
    let task = mlp_task();
    training_configs()
        .into_iter()
        .filter(|(_, config)| check_training::<f32>(b, &task, config, 6).is_err())
        .map(|(label, _)| label)
        .collect()
}

fn caught_by_all(b: &impl Backend<f32>) -> Vec<&'static str> {
    let mut by = caught_by_row_ops(b);
    by.extend(caught_by_losses(b));
    by.extend(caught_by_activations_and_norms(b));
    by.extend(caught_by_more_losses(b));
    by.extend(caught_by_layers(b));
    by.extend(caught_by_optim(b));
    by.extend(caught_by_training(b));
    by
}

/// Each planted bug with the checks that must catch it, and no other. A mistake inside an op the
/// training loop uses (Adam, clipping) is caught by the op's check and by `train` too.
const EXPECTATIONS: &[(Bug, &[&str])] = &[
    (Bug::LogSumExpWithoutShift, &["log_sum_exp_rows"]),
    (Bug::LogSumExpLogInsteadOfLog1p, &["log_sum_exp_rows"]),
    (Bug::SoftmaxMissingMaxTerm, &["softmax_rows"]),
    (Bug::LogSoftmaxAsLogOfSoftmax, &["log_softmax_rows"]),
    (Bug::BceMeanMissingDivision, &["bce_with_logits_mean"]),
    (Bug::BceNaive, &["bce_with_logits_mean"]),
    (
        Bug::BceBackwardMissingDivision,
        &["bce_with_logits_mean_backward"],
    ),
    (Bug::SoftmaxOverWrongAxis, &["softmax_rows"]),
    (Bug::GeluTanhApproximation, &["gelu"]),
    (Bug::LayerNormUnbiasedVariance, &["layer_norm"]),
    (Bug::LayerNormEpsOutsideSqrt, &["layer_norm"]),
    (
        Bug::LayerNormBackwardMissingMeanTerm,
        &["layer_norm_backward"],
    ),
    (Bug::ReluBackwardOneAtZero, &["relu_backward"]),
    (Bug::TanhBackwardMissingSquare, &["tanh_backward"]),
    (
        Bug::AdamEpsInsideSqrt,
        &["adam_step", "train(adam)", "train(noam)"],
    ),
    (
        Bug::AdamWithoutBiasCorrection,
        &["adam_step", "train(adam)", "train(noam)"],
    ),
    (Bug::ScheduleOffByOne, &["train(noam)"]),
    (
        Bug::ClipGradNormPerTensor,
        &["clip_grad_norm", "train(accumulate+clip)"],
    ),
    (Bug::MseMeanMissingDivision, &["mse"]),
    (Bug::CrossEntropyMeanMissingDivision, &["cross_entropy"]),
    (Bug::CrossEntropyMeanCountsIgnoredRows, &["cross_entropy"]),
    (Bug::DropoutWithoutScale, &["dropout"]),
    (Bug::EmbeddingBackwardOverwrites, &["embedding_backward"]),
    (
        Bug::TrainingNeverZeroesGradients,
        &["train(adam)", "train(noam)"],
    ),
    (
        Bug::TrainingIgnoresAccumulation,
        &["train(accumulate+clip)"],
    ),
];

#[test]
fn every_planted_bug_is_caught_by_its_check_and_the_reference_passes() {
    assert_eq!(caught_by_all(&Reference), Vec::<&str>::new());
    let mut table = String::from("planted bug → checks that caught it\n");
    let mut wrong = Vec::new();
    for &(bug, expected) in EXPECTATIONS {
        let by = caught_by_all(&Planted(bug));
        table.push_str(&format!("  {bug:?} → {}\n", by.join(", ")));
        if by != expected {
            wrong.push(format!("{bug:?}: caught by {by:?}, expected {expected:?}"));
        }
    }
    println!("{table}");
    assert!(wrong.is_empty(), "{}\n{table}", wrong.join("\n"));
}
