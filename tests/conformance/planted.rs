//! The oracle has teeth: backends with one realistic mistake each must be caught by the
//! conformance checks, on generated inputs, while the unmodified reference passes.

use mloracle::conformance::{self, CheckResult};
use mloracle::proptest::prelude::*;
use mloracle::proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use mloracle::{reference, strategy, Backend, Reference, Result};
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

#[test]
fn every_planted_bug_is_caught_by_its_check_and_the_reference_passes() {
    assert!(caught_by_row_ops(&Reference).is_empty());
    assert!(caught_by_losses(&Reference).is_empty());
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
    ];
    for (bug, check) in expectations {
        let backend = Planted(bug);
        let mut by = caught_by_row_ops(&backend);
        by.extend(caught_by_losses(&backend));
        assert_eq!(
            by,
            vec![check],
            "{bug:?} must be caught by exactly its own check"
        );
    }
}
