//! The oracle has teeth: backends with one realistic mistake each must be caught by the
//! conformance checks, on generated inputs, while the unmodified reference passes.

use mloracle::conformance::{self, CheckResult};
use mloracle::proptest::prelude::*;
use mloracle::proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use mloracle::{reference, strategy, validate, Backend, Reference, Result};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

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

#[test]
fn every_planted_bug_is_caught_by_its_check_and_the_reference_passes() {
    assert!(caught_by_row_ops(&Reference).is_empty());
    assert!(caught_by_losses(&Reference).is_empty());
    assert!(caught_by_activations_and_norms(&Reference).is_empty());
    let expectations = [
        (Bug::LogSumExpWithoutShift, "log_sum_exp_rows"),
        (Bug::LogSumExpLogInsteadOfLog1p, "log_sum_exp_rows"),
        (Bug::SoftmaxMissingMaxTerm, "softmax_rows"),
        (Bug::LogSoftmaxAsLogOfSoftmax, "log_softmax_rows"),
        (Bug::BceMeanMissingDivision, "bce_with_logits_mean"),
        (Bug::BceNaive, "bce_with_logits_mean"),
        (
            Bug::BceBackwardMissingDivision,
            "bce_with_logits_mean_backward",
        ),
        (Bug::SoftmaxOverWrongAxis, "softmax_rows"),
        (Bug::GeluTanhApproximation, "gelu"),
        (Bug::LayerNormUnbiasedVariance, "layer_norm"),
        (Bug::LayerNormEpsOutsideSqrt, "layer_norm"),
        (Bug::LayerNormBackwardMissingMeanTerm, "layer_norm_backward"),
        (Bug::ReluBackwardOneAtZero, "relu_backward"),
        (Bug::TanhBackwardMissingSquare, "tanh_backward"),
    ];
    for (bug, check) in expectations {
        let backend = Planted(bug);
        let mut by = caught_by_row_ops(&backend);
        by.extend(caught_by_losses(&backend));
        by.extend(caught_by_activations_and_norms(&backend));
        assert_eq!(
            by,
            vec![check],
            "{bug:?} must be caught by exactly its own check"
        );
    }
}
