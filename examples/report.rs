//! `make report`: run the oracle on the default OpenCL device and report what it found and how
//! fast the device kernels are.
//!
//! 1. **ops**: for **every** op of `mloracle::backend::OPS`, backend and scalar type, the
//!    generated cases and the worst `|error| / bound` against the f64 reference (the `check_*`
//!    fns of `mloracle::conformance` on inputs from the crate's strategies, fixed seed: the same
//!    table run after run; `train` is `check_training` on the tiny MLP, GRU and seed-003 encoder
//!    of `benches/common`, one case each). A unit test asserts the table covers `OPS`;
//! 2. **invariants**: each theorem-backed property, pass/fail;
//! 3. **seeds**: the forum seed reproductions (`mloracle::seeds`) in a quick mode, with an SVG
//!    loss curve each (`SEED_RUNNERS` is the hook for more seeds);
//! 4. **bench**: the device limits (copy bandwidth, peak FMA, launch latency) and, right after, each
//!    kernel at its target size as a fraction of the limit that binds it (roofline), with the
//!    reference (and ndarray's `dot` for matmul) for comparison; `roofline.svg` plots it. Then one
//!    full training step of each model (MLP, GRU, encoder: the tiny size, which for the encoder
//!    is seed 003's model and loop; `--full` adds the small and mid sizes) on the device
//!    (`DeviceTrainer`) and on the reference, with the kernel launches per step.
//!
//! Everything is written to `target/mloracle-report/report.json`, schema `mloracle-report/1`:
//!
//! ```text
//! { "schema": "mloracle-report/1", "mode": "quick" | "full", "elapsed_seconds": f64,
//!   "device": null | { "label", "fp64": bool, "row_work_group", "elementwise_work_group" },
//!   "limits": null | { "copy_bytes_per_second", "copy_elements", "fma_flops_per_second",
//!                      "mul_add_flops_per_second", "launch_seconds" },
//!   "ops": [ { "op", "backend", "scalar", "cases", "max_error_over_bound", "outcome" } ],
//!   "invariants": [ { "name", "backend", "outcome" } ],       // outcome: "pass" | "FAIL: …"
//!   "seeds": [ { "id", "title", "steps", "final_loss", "expected", "finding",
//!                "loss": [f64], "plot" } ],
//!   "bench": [ { "op", "size", "scalar": "f32", "binding": "bandwidth" | "compute" | "latency",
//!                "seconds", "bytes", "flops", "achieved_per_second", "limit_per_second",
//!                "fraction_of_limit", "reference_seconds": null | f64,
//!                "launches_per_step"?: u64,
//!                "baseline": null | { "name": "ndarray_dot", "seconds", "fraction" },
//!                "target": null | { "metric": "fraction_of_limit" | "fraction_of_baseline",
//!                                   "value", "met": bool } } ] }
//! ```
//!
//! Field meanings: `ops[].op` is a name of `OPS`, `backend` `"reference"` or `"opencl"`, `scalar`
//! `"f32"`/`"f64"`, `cases` the inputs run, `outcome` `"pass"`, `"FAIL: …"` or `"SKIPPED: …"`.
//! `bench[].seconds` is the best time of the kernels alone (kernel rows) or of one training step
//! (`op` = `"train_step/<model>"`); `bytes` / `flops` the compulsory traffic / FLOPs of the op;
//! `fraction_of_limit` = achieved ÷ the binding limit (copy bandwidth or peak FMA, from `limits`
//! of the same run); for the `"latency"` rows (training steps) it is launches × launch latency ÷
//! step time (the share of the step that launch overhead alone explains), `bytes`, `flops` and
//! `achieved_per_second` are null and `launches_per_step` is the kernel launches of one step.
//! `target` is issue 8's target on this PoCL device (elementwise and Adam ≥ 0.8 of copy bandwidth
//! at 16M elements, row ops ≥ 0.6 at 4096 × 1024, matmul 1024³ ≥ 0.5 of ndarray's `dot`). Files
//! written next to it: `roofline.svg` and `<seed id>-loss.svg` per seed.
//!
//! Times are the best of several runs of the kernels alone (enqueue + `queue.finish()`, inputs
//! on the device, program built before), measured back to back with the limits.
//!
//! `cargo run --release --example report -- [--cases N] [--full] [--no-bench] [--out DIR]`
//! (quick: 64 cases per row, short seed runs, 3+ runs per kernel; `--full`: 256 cases, the seed
//! examples' step counts, 10+ runs).

#[path = "../benches/common/mod.rs"]
mod common;

use std::cell::Cell;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mloracle::opencl::train::DeviceTrainer;
use mloracle::opencl::{target_workloads, Binding, DeviceLimits, LimitConfig, Workload};
use mloracle::OpenCl;
use plotters::prelude::*;
use serde_json::{json, Value};

use mloracle::compare::Agreement;
use mloracle::conformance::training::check_training;
use mloracle::conformance::{self, CheckResult};
use mloracle::proptest::strategy::Strategy;
use mloracle::proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use mloracle::{invariants, strategy, Backend, Reference, Scalar};

struct Row {
    op: String,
    backend: String,
    cases: u32,
    max_error_over_bound: f64,
    outcome: String,
}

fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Run `check` over `cases` inputs from `strategy`, tracking the worst error/bound.
fn measure<S: Strategy>(
    bar: &ProgressBar,
    op: &str,
    backend: String,
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> CheckResult,
) -> Row {
    let worst = Cell::new(0.0f64);
    let count = Cell::new(0u32);
    let result = runner(cases).run(&strategy, |value| {
        count.set(count.get() + 1);
        match check(value) {
            Ok(Agreement {
                max_error_over_bound,
                ..
            }) => {
                worst.set(worst.get().max(max_error_over_bound));
                Ok(())
            }
            Err(failure) => Err(TestCaseError::fail(failure.to_string())),
        }
    });
    bar.inc(1);
    let outcome = match result {
        Ok(()) => "pass".to_string(),
        Err(e) => format!("FAIL: {}", e.to_string().lines().next().unwrap_or_default()),
    };
    Row {
        op: op.to_string(),
        backend,
        cases: count.get(),
        max_error_over_bound: worst.get(),
        outcome,
    }
}

fn op_rows<T: Scalar>(bar: &ProgressBar, backend: &impl Backend<T>, cases: u32) -> Vec<Row> {
    let label = format!("{}<{}>", backend.name(), T::NAME);
    if let Err(e) = conformance::probe(backend, "log_sum_exp_rows") {
        return vec![Row {
            op: "all ops".into(),
            backend: label,
            cases: 0,
            max_error_over_bound: 0.0,
            outcome: format!("SKIPPED: {e}"),
        }];
    }
    vec![
        measure(
            bar,
            "log_sum_exp_rows",
            label.clone(),
            cases,
            strategy::logits_matrix::<T>(),
            |x| conformance::check_log_sum_exp_rows(backend, x.view()),
        ),
        measure(
            bar,
            "softmax_rows",
            label.clone(),
            cases,
            strategy::logits_matrix::<T>(),
            |x| conformance::check_softmax_rows(backend, x.view()),
        ),
        measure(
            bar,
            "log_softmax_rows",
            label.clone(),
            cases,
            strategy::logits_matrix::<T>(),
            |x| conformance::check_log_softmax_rows(backend, x.view()),
        ),
        measure(
            bar,
            "bce_with_logits_mean",
            label.clone(),
            cases,
            strategy::bce_inputs::<T>(),
            |(z, y)| conformance::check_bce_with_logits_mean(backend, z.view(), y.view()),
        ),
        measure(
            bar,
            "bce_with_logits_mean_backward",
            label.clone(),
            cases,
            (strategy::bce_inputs::<T>(), strategy::grad_output()),
            |((z, y), g)| {
                conformance::check_bce_with_logits_mean_backward(
                    backend,
                    z.view(),
                    y.view(),
                    T::narrow(g),
                )
            },
        ),
        measure(
            bar,
            "matmul",
            label.clone(),
            cases,
            strategy::matmul_operands::<T>(),
            |(a, b)| conformance::check_matmul(backend, a.view(), b.view()),
        ),
        measure(
            bar,
            "relu",
            label.clone(),
            cases,
            strategy::activation_input::<T>(),
            |x| conformance::check_relu(backend, x.view()),
        ),
        measure(
            bar,
            "relu_backward",
            label.clone(),
            cases,
            strategy::activation_input_with_grad::<T>(),
            |(x, g)| conformance::check_relu_backward(backend, x.view(), g.view()),
        ),
        measure(
            bar,
            "leaky_relu",
            label.clone(),
            cases,
            (strategy::activation_input::<T>(), strategy::leaky_slope()),
            |(x, s)| conformance::check_leaky_relu(backend, x.view(), T::narrow(s)),
        ),
        measure(
            bar,
            "leaky_relu_backward",
            label.clone(),
            cases,
            (
                strategy::activation_input_with_grad::<T>(),
                strategy::leaky_slope(),
            ),
            |((x, g), s)| {
                conformance::check_leaky_relu_backward(backend, x.view(), g.view(), T::narrow(s))
            },
        ),
        measure(
            bar,
            "sigmoid",
            label.clone(),
            cases,
            strategy::activation_input::<T>(),
            |x| conformance::check_sigmoid(backend, x.view()),
        ),
        measure(
            bar,
            "sigmoid_backward",
            label.clone(),
            cases,
            strategy::sigmoid_output_with_grad::<T>(),
            |(y, g)| conformance::check_sigmoid_backward(backend, y.view(), g.view()),
        ),
        measure(
            bar,
            "tanh",
            label.clone(),
            cases,
            strategy::activation_input::<T>(),
            |x| conformance::check_tanh(backend, x.view()),
        ),
        measure(
            bar,
            "tanh_backward",
            label.clone(),
            cases,
            strategy::tanh_output_with_grad::<T>(),
            |(y, g)| conformance::check_tanh_backward(backend, y.view(), g.view()),
        ),
        measure(
            bar,
            "gelu",
            label.clone(),
            cases,
            strategy::activation_input::<T>(),
            |x| conformance::check_gelu(backend, x.view()),
        ),
        measure(
            bar,
            "gelu_backward",
            label.clone(),
            cases,
            strategy::activation_input_with_grad::<T>(),
            |(x, g)| conformance::check_gelu_backward(backend, x.view(), g.view()),
        ),
        measure(
            bar,
            "add_rows",
            label.clone(),
            cases,
            strategy::add_rows_inputs::<T>(),
            |(x, b)| conformance::check_add_rows(backend, x.view(), b.view()),
        ),
        measure(
            bar,
            "layer_norm",
            label.clone(),
            cases,
            strategy::layer_norm_inputs::<T>(),
            |(x, gamma, beta, eps)| {
                conformance::check_layer_norm(backend, x.view(), gamma.view(), beta.view(), eps)
            },
        ),
        measure(
            bar,
            "layer_norm_backward",
            label.clone(),
            cases,
            strategy::layer_norm_backward_inputs::<T>(),
            |((x, gamma, beta, eps), g)| {
                conformance::check_layer_norm_backward(
                    backend,
                    x.view(),
                    gamma.view(),
                    beta.view(),
                    eps,
                    g.view(),
                )
                .map(|a| Agreement {
                    elements: a.grad_x.elements + a.grad_gamma.elements + a.grad_beta.elements,
                    max_error_over_bound: a
                        .grad_x
                        .max_error_over_bound
                        .max(a.grad_gamma.max_error_over_bound)
                        .max(a.grad_beta.max_error_over_bound),
                })
            },
        ),
        measure(
            bar,
            "matmul_backward",
            label.clone(),
            cases,
            strategy::matmul_backward_operands::<T>(),
            |(a, b, g)| conformance::check_matmul_backward(backend, a.view(), b.view(), g.view()),
        ),
        measure(
            bar,
            "batched_matmul",
            label.clone(),
            cases,
            strategy::batched_matmul_operands::<T>(),
            |(a, b)| conformance::check_batched_matmul(backend, a.view(), b.view()),
        ),
        measure(
            bar,
            "batched_matmul_backward",
            label.clone(),
            cases,
            strategy::batched_matmul_backward_operands::<T>(),
            |(a, b, g)| {
                conformance::check_batched_matmul_backward(backend, a.view(), b.view(), g.view())
            },
        ),
        measure(
            bar,
            "transpose",
            label.clone(),
            cases,
            strategy::transpose_input::<T>(),
            |x| conformance::check_transpose(backend, x.view()),
        ),
        measure(
            bar,
            "add_rows_backward",
            label.clone(),
            cases,
            strategy::add_rows_backward_input::<T>(),
            |g| conformance::check_add_rows_backward(backend, g.view()),
        ),
        measure(
            bar,
            "mul_rows",
            label.clone(),
            cases,
            strategy::mul_rows_inputs::<T>(),
            |(x, b)| conformance::check_mul_rows(backend, x.view(), b.view()),
        ),
        measure(
            bar,
            "mul_rows_backward",
            label.clone(),
            cases,
            strategy::mul_rows_backward_inputs::<T>(),
            |(x, b, g)| conformance::check_mul_rows_backward(backend, x.view(), b.view(), g.view()),
        ),
        measure(
            bar,
            "sum_axis",
            label.clone(),
            cases,
            strategy::sum_axis_inputs::<T>(),
            |(x, axis)| conformance::check_sum_axis(backend, x.view(), axis),
        ),
        measure(
            bar,
            "sum_axis_backward",
            label.clone(),
            cases,
            strategy::axis_backward_inputs::<T>(false),
            |(shape, axis, g)| conformance::check_sum_axis_backward(backend, shape, axis, g.view()),
        ),
        measure(
            bar,
            "mean_axis",
            label.clone(),
            cases,
            strategy::mean_axis_inputs::<T>(),
            |(x, axis)| conformance::check_mean_axis(backend, x.view(), axis),
        ),
        measure(
            bar,
            "mean_axis_backward",
            label.clone(),
            cases,
            strategy::axis_backward_inputs::<T>(true),
            |(shape, axis, g)| {
                conformance::check_mean_axis_backward(backend, shape, axis, g.view())
            },
        ),
        measure(
            bar,
            "softmax_rows_backward",
            label.clone(),
            cases,
            strategy::row_backward_inputs::<T>(false),
            |(y, g)| conformance::check_softmax_rows_backward(backend, y.view(), g.view()),
        ),
        measure(
            bar,
            "log_softmax_rows_backward",
            label.clone(),
            cases,
            strategy::row_backward_inputs::<T>(true),
            |(y, g)| conformance::check_log_softmax_rows_backward(backend, y.view(), g.view()),
        ),
        measure(
            bar,
            "bce_with_logits",
            label.clone(),
            cases,
            strategy::bce_reduction_inputs::<T>(),
            |(z, y, r)| conformance::check_bce_with_logits(backend, z.view(), y.view(), r),
        ),
        measure(
            bar,
            "bce_with_logits_backward",
            label.clone(),
            cases,
            (
                strategy::bce_reduction_inputs::<T>(),
                strategy::grad_output(),
            ),
            |((z, y, r), g)| {
                conformance::check_bce_with_logits_backward(
                    backend,
                    z.view(),
                    y.view(),
                    r,
                    T::narrow(g),
                )
            },
        ),
        measure(
            bar,
            "mse",
            label.clone(),
            cases,
            strategy::mse_inputs::<T>(),
            |(p, t, r)| conformance::check_mse(backend, p.view(), t.view(), r),
        ),
        measure(
            bar,
            "mse_backward",
            label.clone(),
            cases,
            (strategy::mse_inputs::<T>(), strategy::grad_output()),
            |((p, t, r), g)| {
                conformance::check_mse_backward(backend, p.view(), t.view(), r, T::narrow(g))
            },
        ),
        measure(
            bar,
            "cross_entropy",
            label.clone(),
            cases,
            strategy::cross_entropy_inputs::<T>(),
            |(x, t, ignore, r)| {
                conformance::check_cross_entropy(backend, x.view(), t.view(), ignore, r)
            },
        ),
        measure(
            bar,
            "cross_entropy_backward",
            label.clone(),
            cases,
            (
                strategy::cross_entropy_inputs::<T>(),
                strategy::grad_output(),
            ),
            |((x, t, ignore, r), g)| {
                conformance::check_cross_entropy_backward(
                    backend,
                    x.view(),
                    t.view(),
                    ignore,
                    r,
                    T::narrow(g),
                )
            },
        ),
        measure(
            bar,
            "embedding",
            label.clone(),
            cases,
            strategy::embedding_inputs::<T>(),
            |(table, ids)| conformance::check_embedding(backend, table.view(), ids.view()),
        ),
        measure(
            bar,
            "embedding_backward",
            label.clone(),
            cases,
            strategy::embedding_backward_inputs::<T>(),
            |(vocab, ids, g)| {
                conformance::check_embedding_backward(backend, vocab, ids.view(), g.view())
            },
        ),
        measure(
            bar,
            "dropout",
            label.clone(),
            cases,
            strategy::dropout_inputs::<T>(),
            |(x, p, key)| conformance::check_dropout(backend, x.view(), p, key),
        ),
        measure(
            bar,
            "dropout_backward",
            label.clone(),
            cases,
            strategy::dropout_backward_inputs::<T>(),
            |(g, mask, scale)| {
                conformance::check_dropout_backward(backend, g.view(), mask.view(), scale)
            },
        ),
        measure(
            bar,
            "attention",
            label.clone(),
            cases,
            strategy::attention_inputs::<T>(),
            |(q, k, v, m)| {
                conformance::check_attention(backend, q.view(), k.view(), v.view(), m.view())
            },
        ),
        measure(
            bar,
            "attention_backward",
            label.clone(),
            cases,
            strategy::attention_backward_inputs::<T>(),
            |((q, k, v, m), g)| {
                conformance::check_attention_backward(
                    backend,
                    q.view(),
                    k.view(),
                    v.view(),
                    m.view(),
                    g.view(),
                )
                .map(|a| Agreement {
                    elements: a.grad_q.elements + a.grad_k.elements + a.grad_v.elements,
                    max_error_over_bound: a
                        .grad_q
                        .max_error_over_bound
                        .max(a.grad_k.max_error_over_bound)
                        .max(a.grad_v.max_error_over_bound),
                })
            },
        ),
        measure(
            bar,
            "std_corrected",
            label.clone(),
            cases,
            strategy::std_inputs::<T>(),
            |(values, c)| conformance::check_std_corrected(backend, values.view(), c),
        ),
        measure(
            bar,
            "std_corrected_backward",
            label.clone(),
            cases,
            (strategy::std_inputs::<T>(), strategy::grad_output()),
            |((values, c), g)| {
                conformance::check_std_corrected_backward(backend, values.view(), c, T::narrow(g))
            },
        ),
        measure(
            bar,
            "sgd_step",
            label.clone(),
            cases,
            strategy::sgd_inputs::<T>(),
            |(state, theta, g, hyper)| {
                conformance::check_sgd_step(backend, &state, theta.view(), g.view(), &hyper)
            },
        ),
        measure(
            bar,
            "adam_step",
            label.clone(),
            cases,
            strategy::adam_inputs::<T>(),
            |(state, theta, g, hyper)| {
                conformance::check_adam_step(backend, &state, theta.view(), g.view(), &hyper)
            },
        ),
        measure(
            bar,
            "clip_grad_norm",
            label.clone(),
            cases,
            strategy::clip_inputs::<T>(),
            |(grads, max_norm)| conformance::check_clip_grad_norm(backend, &grads, max_norm),
        ),
        measure(
            bar,
            "clip_grad_value",
            label.clone(),
            cases,
            strategy::clip_value_inputs::<T>(),
            |(grads, clip_value)| conformance::check_clip_grad_value(backend, &grads, clip_value),
        ),
        train_row(bar, backend, label.clone()),
    ]
}

/// Steps of each `train` task in the op table.
const TRAIN_STEPS: usize = 5;

/// `train`: `check_training` (every step's loss and every final parameter against the f64
/// reference, composite bound) on the tiny MLP, GRU and encoder (seed 003's model and loop) of
/// the benches, [`TRAIN_STEPS`] steps each; one case per model.
fn train_row<T: Scalar>(bar: &ProgressBar, backend: &impl Backend<T>, label: String) -> Row {
    let mut worst = 0.0f64;
    let mut cases = 0;
    let mut outcome = "pass".to_string();
    for (model, make) in common::MODELS {
        let (task, config) = make(common::StepSize::Tiny);
        cases += 1;
        match check_training(backend, &task, &config, TRAIN_STEPS) {
            Ok(a) => {
                worst = worst
                    .max(a.loss_error_over_bound)
                    .max(a.parameter_error_over_bound);
            }
            Err(e) => {
                outcome = format!(
                    "FAIL: {model}: {}",
                    e.to_string().lines().next().unwrap_or_default()
                );
                break;
            }
        }
    }
    bar.inc(1);
    Row {
        op: "train".to_string(),
        backend: label,
        cases,
        max_error_over_bound: worst,
        outcome,
    }
}

fn invariant_rows<T: Scalar>(
    bar: &ProgressBar,
    backend: &impl Backend<T>,
    cases: u32,
) -> Vec<(String, String)> {
    let label = format!("{}<{}>", backend.name(), T::NAME);
    let run = |name: &str, result: Result<(), String>| {
        bar.inc(1);
        (
            format!("{name} [{label}]"),
            result
                .map(|()| "pass".to_string())
                .unwrap_or_else(|e| format!("FAIL: {e}")),
        )
    };
    vec![
        run(
            "log_sum_exp_is_shift_invariant",
            runner(cases)
                .run(&(strategy::logits_matrix::<T>(), -64i32..=64), |(x, c)| {
                    invariants::log_sum_exp_is_shift_invariant(backend, x.view(), c)
                })
                .map_err(reason),
        ),
        run(
            "log_sum_exp_lies_between_max_and_max_plus_ln_n",
            runner(cases)
                .run(&strategy::logits_matrix::<T>(), |x| {
                    invariants::log_sum_exp_lies_between_max_and_max_plus_ln_n(backend, x.view())
                })
                .map_err(reason),
        ),
        run(
            "softmax_rows_sum_to_one",
            runner(cases)
                .run(&strategy::logits_matrix::<T>(), |x| {
                    invariants::softmax_rows_sum_to_one(backend, x.view())
                })
                .map_err(reason),
        ),
        run(
            "zero_logits_give_ln_two",
            runner(cases)
                .run(&strategy::labels::<T>(), |y| {
                    invariants::zero_logits_give_ln_two(backend, y.view())
                })
                .map_err(reason),
        ),
        run(
            "constant_logit_loss_is_at_least_label_entropy",
            runner(cases)
                .run(&(strategy::labels::<T>(), -15.0f64..=15.0), |(y, c)| {
                    invariants::constant_logit_loss_is_at_least_label_entropy(
                        backend,
                        y.view(),
                        T::narrow(c),
                    )
                })
                .map_err(reason),
        ),
        run(
            "label_prior_logit_attains_label_entropy",
            runner(cases)
                .run(&strategy::labels::<T>(), |y| {
                    invariants::label_prior_logit_attains_label_entropy(backend, y.view())
                })
                .map_err(reason),
        ),
    ]
}

/// The failure reason of a property, without the (possibly huge) input.
fn reason<V>(error: mloracle::proptest::test_runner::TestError<V>) -> String {
    match error {
        mloracle::proptest::test_runner::TestError::Fail(reason, _) => reason.to_string(),
        mloracle::proptest::test_runner::TestError::Abort(reason) => reason.to_string(),
    }
}

/// Quick (default) or full run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quick,
    Full,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// One seed reproduction's outcome.
struct SeedResult {
    id: &'static str,
    title: &'static str,
    steps: usize,
    final_loss: f64,
    /// What theory says the loss should approach (NaN when there is no such number).
    expected: f64,
    finding: String,
    loss: Vec<f64>,
}

/// A seed runner: `(id, work units for the progress bar, run)`; one per seed of `mloracle::seeds`.
type SeedRunner = (
    &'static str,
    fn(Mode) -> u64,
    fn(Mode, &ProgressBar) -> Result<SeedResult, Box<dyn Error>>,
);

const SEED_RUNNERS: &[SeedRunner] = &[
    ("seed000", |m| seed000_steps(m) as u64, run_seed000),
    ("seed001", |m| seed001_steps(m) as u64, run_seed001),
    ("seed002", |m| seed002_steps(m) as u64, run_seed002),
    ("seed003", |m| seed003_steps(m) as u64, run_seed003),
];

fn seed002_steps(mode: Mode) -> usize {
    match mode {
        Mode::Quick => 300,
        Mode::Full => 2000,
    }
}

fn seed003_steps(mode: Mode) -> usize {
    match mode {
        Mode::Quick => 1000,
        Mode::Full => 10_000,
    }
}

/// Seed 002: the GRU next-item model on noisy data, Adam at a constant rate 0.05; the loss
/// floor is the conditional label entropy H(Y | X).
fn run_seed002(mode: Mode, bar: &ProgressBar) -> Result<SeedResult, Box<dyn Error>> {
    use mloracle::seeds::seed002;
    let steps = seed002_steps(mode);
    let batch = seed002::batch(0);
    let floor = seed002::conditional_entropy_nats(&batch);
    let run = seed002::train_gru(
        seed002::model::<f32>(0)?,
        &batch,
        seed002::Setting::constant(0.05),
        steps,
        |_| bar.inc(1),
    )?;
    let late = seed002::late(&run.losses, steps / 5);
    Ok(SeedResult {
        id: "seed002",
        title: "GRU + Adam lr 0.05: loss oscillation over the floor H(Y|X)",
        steps,
        final_loss: run.losses.last().copied().unwrap_or(f64::NAN),
        expected: floor,
        finding: format!(
            "late mean |ΔL| {:.3e}, peak-to-peak {:.3e} over the last {} steps; floor H(Y|X) = \
             {floor:.4}; max step / D2 allowance {:.3}",
            seed002::mean_absolute_change(late),
            seed002::peak_to_peak(late),
            late.len(),
            run.max_step_over_allowance
        ),
        loss: run.losses,
    })
}

/// Seed 003: the forum's encoder loop (Adam eps 1e-9, Noam, clip 1, gradients accumulated,
/// dropout 0.1); the loss reaches exactly 0, then jumps.
fn run_seed003(mode: Mode, bar: &ProgressBar) -> Result<SeedResult, Box<dyn Error>> {
    use mloracle::seeds::seed003;
    let steps = seed003_steps(mode);
    let run = seed003::run::<f32>(seed003::Cell::forum(0), steps, steps, |_| bar.inc(1))?;
    Ok(SeedResult {
        id: "seed003",
        title: "encoder loss hits exactly 0, then jumps (forum loop)",
        steps,
        final_loss: run.losses.last().copied().unwrap_or(f64::NAN),
        expected: 0.0,
        finding: format!(
            "first exact zero at step {:?}; {} jumps ≥ {}; largest loss after the zero {:.3}; \
             max step / allowance {:.3}, max margin / bound {:.3}",
            run.first_zero,
            run.jump_steps.len(),
            seed003::JUMP,
            run.max_loss_after_zero,
            run.max_step_over_allowance,
            run.max_margin_over_bound
        ),
        loss: run.losses,
    })
}

fn seed000_steps(mode: Mode) -> usize {
    match mode {
        Mode::Quick => 300,
        Mode::Full => 1000,
    }
}

fn seed001_steps(mode: Mode) -> usize {
    match mode {
        Mode::Quick => 100,
        Mode::Full => 200,
    }
}

/// Seed 000: BCE stuck near ln 2 on features independent of the labels; the loss goes to the
/// label entropy H(p̄) and no lower.
fn run_seed000(mode: Mode, bar: &ProgressBar) -> Result<SeedResult, Box<dyn Error>> {
    use mloracle::seeds::seed000;
    let steps = seed000_steps(mode);
    let (batch, _) = seed000::uninformative_batch::<f32>(0);
    let (_, records) = seed000::train(seed000::model::<f32>(0)?, &batch, 1e-3, steps, |_| {
        bar.inc(1)
    })?;
    let entropy = mloracle::invariants::label_entropy_nats(seed000::PRIOR);
    let last = records.last().map_or(f64::NAN, |r| r.loss);
    Ok(SeedResult {
        id: "seed000",
        title: "BCE stuck at 0.693: uninformative features, Adam lr 1e-3",
        steps,
        final_loss: last,
        expected: entropy,
        finding: format!(
            "loss {:.6} -> {last:.6}; floor H(p̄ = 0.2) = {entropy:.6} (L - H = {:+.2e}); \
             mean logit {:.4} -> logit(p̄) = {:.4}",
            records.first().map_or(f64::NAN, |r| r.loss),
            last - entropy,
            records.last().map_or(f64::NAN, |r| r.mean_logit),
            (0.2f64 / 0.8).ln()
        ),
        loss: records.iter().map(|r| r.loss).collect(),
    })
}

/// Seed 001: MSE with reduction='sum' and SGD lr 0.5 kills the ReLU layers; predictions collapse
/// to one constant row.
fn run_seed001(mode: Mode, bar: &ProgressBar) -> Result<SeedResult, Box<dyn Error>> {
    use mloracle::reference::Reduction;
    use mloracle::seeds::seed001;
    let steps = seed001_steps(mode);
    let batch = seed001::batch::<f32>(0);
    let (model, records) = seed001::train(
        seed001::model::<f32>(Reduction::Sum, 0)?,
        &batch,
        0.5,
        steps,
        |_| bar.inc(1),
    )?;
    let collapse = records.iter().position(|r| r.dead.contains(&1.0));
    let prediction = model.forward(batch.inputs.view())?.activations;
    let identical = prediction.last().is_some_and(seed001::rows_identical);
    Ok(SeedResult {
        id: "seed001",
        title: "regression collapses: MSE sum, SGD lr 0.5",
        steps,
        final_loss: records.last().map_or(f64::NAN, |r| r.loss),
        expected: f64::NAN,
        finding: match collapse {
            Some(k) => format!(
                "a hidden layer is dead on every row from step {k}; rows identical at the end: \
                 {identical}"
            ),
            None => format!("no all-dead layer within {steps} steps"),
        },
        loss: records.iter().map(|r| r.loss).collect(),
    })
}

/// One kernel's timing at its target size.
struct BenchRow {
    workload: Workload,
    seconds: f64,
    reference_seconds: Option<f64>,
    baseline: Option<(&'static str, f64)>,
}

/// The target of a workload on this project's PoCL device (issue 8): `(metric, value)`.
fn target(workload: &Workload) -> Option<(&'static str, f64)> {
    match workload {
        Workload::Elementwise { len, .. } | Workload::AdamStep { len } if *len >= 1 << 24 => {
            Some(("fraction_of_limit", 0.8))
        }
        Workload::Rows { .. } | Workload::LayerNorm { .. } | Workload::LayerNormBackward { .. } => {
            Some(("fraction_of_limit", 0.6))
        }
        Workload::Matmul { .. } => Some(("fraction_of_baseline", 0.5)),
        _ => None,
    }
}

fn best_host_time(min_runs: usize, min_total: Duration, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut best = f64::INFINITY;
    let mut runs = 0;
    while runs < min_runs || started.elapsed() < min_total {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    best
}

/// The limits, the kernel rows and the training-step rows of the bench section.
type BenchResults = (DeviceLimits, Vec<BenchRow>, Vec<StepRow>);

fn bench_rows(
    device: &OpenCl,
    mode: Mode,
    bar: &ProgressBar,
) -> Result<BenchResults, Box<dyn Error>> {
    let (runs, min_total) = match mode {
        Mode::Quick => (3, Duration::from_millis(200)),
        Mode::Full => (10, Duration::from_secs(1)),
    };
    let mut config = LimitConfig::quick();
    config.runs = runs.max(config.runs);
    bar.set_message("device limits");
    let limits = device.measure_limits(&config)?;
    bar.inc(1);
    let mut rows = Vec::new();
    for workload in target_workloads() {
        bar.set_message(workload.label());
        let kernels = device.prepare::<f32>(workload)?;
        let seconds = kernels.best_time(runs, min_total)?.as_secs_f64();
        let inputs = common::inputs(&workload);
        // The triple-loop reference takes seconds at 1024³: timed in full mode only.
        let reference_seconds =
            if mode == Mode::Full || !matches!(workload, Workload::Matmul { .. }) {
                let mut failed = None;
                let t = best_host_time(1, Duration::ZERO, || {
                    if let Err(e) = common::call(&Reference, &workload, &inputs) {
                        failed = Some(e);
                    }
                });
                if let Some(e) = failed {
                    return Err(e.into());
                }
                Some(t)
            } else {
                None
            };
        let baseline = matches!(workload, Workload::Matmul { .. }).then(|| {
            let t = best_host_time(runs, min_total, || {
                std::hint::black_box(inputs.x.dot(&inputs.y));
            });
            ("ndarray_dot", t)
        });
        rows.push(BenchRow {
            workload,
            seconds,
            reference_seconds,
            baseline,
        });
        bar.inc(1);
    }
    bar.set_message("training steps");
    let (sizes, steps): (&[common::StepSize], usize) = match mode {
        Mode::Quick => (&[common::StepSize::Tiny], 20),
        Mode::Full => (&common::StepSize::ALL, 3),
    };
    let steps_rows = train_step_rows(device, sizes, steps)?;
    bar.inc(1);
    Ok((limits, rows, steps_rows))
}

/// One training step of a model on the device ([`DeviceTrainer`]) against the reference
/// `Trainer`: best per-step wall time of each and the kernel launches of one step.
struct StepRow {
    model: &'static str,
    size: String,
    seconds: f64,
    reference_seconds: f64,
    launches: usize,
}

/// Time `steps` device steps (best) and `steps` reference steps (best) of each model at `sizes`.
fn train_step_rows(
    device: &OpenCl,
    sizes: &[common::StepSize],
    steps: usize,
) -> Result<Vec<StepRow>, Box<dyn Error>> {
    let mut rows = Vec::new();
    for &size in sizes {
        for (model, make) in common::MODELS {
            let (task, config) = make(size);
            let mut trainer = DeviceTrainer::new(device, &task, &config)?;
            trainer.step()?; // builds the programs
            let before = device.kernel_launches();
            trainer.step()?;
            let launches = device.kernel_launches() - before;
            let mut failed = None;
            let seconds = best_host_time(steps, Duration::ZERO, || {
                if let Err(e) = trainer.step() {
                    failed = Some(e);
                }
            });
            let mut reference = common::reference_stepper(&task, &config)?;
            let reference_seconds = best_host_time(steps.min(3), Duration::ZERO, || {
                if let Err(e) = reference() {
                    failed = Some(e);
                }
            });
            if let Some(e) = failed {
                return Err(e.into());
            }
            let label = if model == "encoder" && size == common::StepSize::Tiny {
                "tiny (seed 003)".to_string()
            } else {
                size.name().to_string()
            };
            rows.push(StepRow {
                model,
                size: label,
                seconds,
                reference_seconds,
                launches,
            });
        }
    }
    Ok(rows)
}

/// A training step as a bench row: binding `"latency"`, `fraction_of_limit` = launches × launch
/// latency ÷ step time (the share of the step that launch overhead alone accounts for).
fn step_json(limits: &DeviceLimits, row: &StepRow) -> Value {
    let fraction = if row.seconds > 0.0 {
        row.launches as f64 * limits.launch_seconds / row.seconds
    } else {
        0.0
    };
    json!({
        "op": format!("train_step/{}", row.model),
        "size": row.size,
        "scalar": "f32",
        "binding": "latency",
        "seconds": row.seconds,
        "bytes": null,
        "flops": null,
        "achieved_per_second": null,
        "limit_per_second": limits.launch_seconds,
        "fraction_of_limit": fraction,
        "reference_seconds": row.reference_seconds,
        "launches_per_step": row.launches,
        "baseline": null,
        "target": null,
    })
}

fn bench_json(limits: &DeviceLimits, row: &BenchRow) -> Value {
    let w = &row.workload;
    let label = w.label();
    let size = label.split_once(' ').map_or("", |(_, s)| s).to_string();
    let amount = match w.binding() {
        Binding::Compute => w.flops() as f64,
        _ => w.bytes(4) as f64,
    };
    let fraction = limits.fraction(w, 4, row.seconds);
    let baseline_fraction = row.baseline.map(|(_, t)| t / row.seconds);
    let target = target(w).map(|(metric, value)| {
        let reached = if metric == "fraction_of_baseline" {
            baseline_fraction.unwrap_or(0.0)
        } else {
            fraction
        };
        json!({ "metric": metric, "value": value, "met": reached >= value })
    });
    json!({
        "op": w.op(),
        "size": size,
        "scalar": "f32",
        "binding": w.binding().as_str(),
        "seconds": row.seconds,
        "bytes": w.bytes(4),
        "flops": w.flops(),
        "achieved_per_second": amount / row.seconds,
        "limit_per_second": limits.limit(w.binding()),
        "fraction_of_limit": fraction,
        "reference_seconds": row.reference_seconds,
        "baseline": row.baseline.map(|(name, t)| json!({
            "name": name, "seconds": t, "fraction": t / row.seconds
        })),
        "target": target,
    })
}

fn split_label(label: &str) -> (&str, &str) {
    label
        .split_once('<')
        .map_or((label, ""), |(b, s)| (b, s.trim_end_matches('>')))
}

/// The whole report as JSON (schema `mloracle-report/1`, see the module doc).
/// What the report found, section by section.
struct Findings<'a> {
    rows: &'a [Row],
    invariants: &'a [(String, String)],
    seeds: &'a [(SeedResult, String)],
    bench: &'a [Value],
}

fn report_json(
    mode: Mode,
    elapsed: f64,
    device: Value,
    limits: Option<&DeviceLimits>,
    findings: &Findings<'_>,
) -> Value {
    let Findings {
        rows,
        invariants: invariant_results,
        seeds,
        bench,
    } = findings;
    json!({
        "schema": "mloracle-report/1",
        "mode": mode.name(),
        "elapsed_seconds": elapsed,
        "device": device,
        "limits": limits.map(|l| json!({
            "copy_bytes_per_second": l.copy_bytes_per_second,
            "copy_elements": l.copy_elements,
            "fma_flops_per_second": l.fma_flops_per_second,
            "mul_add_flops_per_second": l.mul_add_flops_per_second,
            "launch_seconds": l.launch_seconds,
        })),
        "ops": rows.iter().map(|r| {
            let (backend, scalar) = split_label(&r.backend);
            json!({
                "op": r.op, "backend": backend, "scalar": scalar, "cases": r.cases,
                "max_error_over_bound": r.max_error_over_bound, "outcome": r.outcome,
            })
        }).collect::<Vec<_>>(),
        "invariants": invariant_results.iter().map(|(name, outcome)| {
            let (name, backend) = name
                .split_once(" [")
                .map_or((name.as_str(), ""), |(n, b)| (n, b.trim_end_matches(']')));
            json!({ "name": name, "backend": backend, "outcome": outcome })
        }).collect::<Vec<_>>(),
        "seeds": seeds.iter().map(|(s, plot)| json!({
            "id": s.id, "title": s.title, "steps": s.steps,
            "final_loss": finite_or_null(s.final_loss), "expected": finite_or_null(s.expected),
            "finding": s.finding, "loss": s.loss.iter().map(|&l| finite_or_null(l)).collect::<Vec<_>>(),
            "plot": plot,
        })).collect::<Vec<_>>(),
        "bench": bench,
    })
}

/// JSON has no NaN or ∞: they are written as null.
fn finite_or_null(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// Write `report` as pretty JSON to `dir/report.json`; returns the path.
fn write_json(dir: &Path, report: &Value) -> Result<PathBuf, Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(report)?)?;
    Ok(path)
}

/// The loss curve of one seed run.
fn plot_loss(dir: &Path, seed: &SeedResult) -> Result<PathBuf, Box<dyn Error>> {
    let path = dir.join(format!("{}-loss.svg", seed.id));
    let root = SVGBackend::new(path.as_path(), (800, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let finite: Vec<f64> = seed
        .loss
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .collect();
    let hi = finite
        .iter()
        .copied()
        .fold(f64::MIN, f64::max)
        .max(seed.expected.max(0.0));
    let lo = finite
        .iter()
        .copied()
        .fold(f64::MAX, f64::min)
        .min(if seed.expected.is_finite() {
            seed.expected
        } else {
            f64::MAX
        });
    let (lo, hi) = if lo < hi { (lo, hi) } else { (0.0, 1.0) };
    let pad = 0.05 * (hi - lo);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{}: {}", seed.id, seed.title), ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0f64..seed.loss.len().max(2) as f64 - 1.0,
            (lo - pad)..(hi + pad),
        )?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            seed.loss
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite())
                .map(|(k, &l)| (k as f64, l)),
            &BLUE,
        ))?
        .label("loss")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    if seed.expected.is_finite() {
        let steps = seed.loss.len() as f64;
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, seed.expected), (steps, seed.expected)],
                &BLACK,
            ))?
            .label("theory")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    drop(chart);
    drop(root);
    Ok(path)
}

/// Roofline as fractions: one bar per kernel (achieved ÷ the limit that binds it), the target
/// as a black tick, 100% as the dashed line.
fn plot_roofline(dir: &Path, device: &str, bench: &[Value]) -> Result<PathBuf, Box<dyn Error>> {
    let path = dir.join("roofline.svg");
    let height = 80 + 26 * bench.len() as u32;
    let root = SVGBackend::new(path.as_path(), (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let fractions: Vec<f64> = bench
        .iter()
        .map(|b| b["fraction_of_limit"].as_f64().unwrap_or(0.0))
        .collect();
    let x_max = fractions.iter().copied().fold(1.2, f64::max) * 1.05;
    let n = bench.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("fraction of the binding limit (copy BW or peak FMA): {device}"),
            ("sans-serif", 14),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(260)
        .build_cartesian_2d(0f64..x_max, 0f64..n)?;
    let labels: Vec<String> = bench
        .iter()
        .map(|b| {
            format!(
                "{} {} ({})",
                b["op"].as_str().unwrap_or(""),
                b["size"].as_str().unwrap_or(""),
                b["binding"].as_str().unwrap_or("")
            )
        })
        .collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bench.len().max(1))
        .y_label_formatter(&|y| {
            let i = (n - y - 0.5).round();
            if i >= 0.0 && (i as usize) < labels.len() && (y - y.floor() - 0.5).abs() < 0.01 {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc("achieved / limit")
        .draw()?;
    for (i, (f, b)) in fractions.iter().zip(bench).enumerate() {
        let y = n - i as f64 - 1.0;
        let met = b["target"]["met"].as_bool();
        let color = match met {
            Some(true) => GREEN.mix(0.7),
            Some(false) => RED.mix(0.7),
            None => BLUE.mix(0.5),
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y + 0.15), (*f, y + 0.85)],
            color.filled(),
        )))?;
        if b["target"]["metric"].as_str() == Some("fraction_of_limit") {
            let t = b["target"]["value"].as_f64().unwrap_or(0.0);
            chart.draw_series(LineSeries::new(vec![(t, y + 0.05), (t, y + 0.95)], &BLACK))?;
        }
    }
    chart.draw_series(LineSeries::new(
        vec![(1.0, 0.0), (1.0, n)],
        BLACK.stroke_width(1),
    ))?;
    root.present()?;
    drop(chart);
    drop(root);
    Ok(path)
}

fn bar_for(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{elapsed:>4} [{bar:40}] {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mode = if args.iter().any(|a| a == "--full") {
        Mode::Full
    } else {
        Mode::Quick
    };
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let cases = value_of("--cases")
        .and_then(|v| v.parse().ok())
        .unwrap_or(match mode {
            Mode::Quick => 64u32,
            Mode::Full => 256,
        });
    let run_bench = !args.iter().any(|a| a == "--no-bench");
    let dir = value_of("--out").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/mloracle-report"),
        PathBuf::from,
    );
    let started = Instant::now();
    let device = OpenCl::new();
    match &device {
        Ok(d) => println!("device: {}", d.device_label()),
        Err(e) => println!("device: none ({e}); OpenCL rows SKIPPED"),
    }
    let ops = mloracle::backend::OPS.len() as u64;
    const INVARIANTS: u64 = 6;
    let backends = if device.is_ok() { 3 } else { 1 };
    let total = backends * (ops + INVARIANTS)
        + SEED_RUNNERS
            .iter()
            .map(|(_, units, _)| units(mode))
            .sum::<u64>()
        + if run_bench && device.is_ok() {
            2 + target_workloads().len() as u64
        } else {
            0
        };
    let bar = bar_for(total);

    bar.set_message("conformance and invariants");
    let mut rows = Vec::new();
    let mut invariant_results = Vec::new();
    rows.extend(op_rows::<f32>(&bar, &Reference, cases));
    invariant_results.extend(invariant_rows::<f32>(&bar, &Reference, cases));
    if let Ok(device) = &device {
        rows.extend(op_rows::<f32>(&bar, device, cases));
        rows.extend(op_rows::<f64>(&bar, device, cases));
        invariant_results.extend(invariant_rows::<f32>(&bar, device, cases));
        invariant_results.extend(invariant_rows::<f64>(&bar, device, cases));
    }
    std::fs::create_dir_all(&dir)?;
    let mut seeds = Vec::new();
    for (id, _, run) in SEED_RUNNERS {
        bar.set_message(format!("seed reproduction {id}"));
        let result = run(mode, &bar)?;
        let plot = plot_loss(&dir, &result)?;
        seeds.push((result, plot.display().to_string()));
    }
    let mut limits = None;
    let mut bench = Vec::new();
    if let (true, Ok(device)) = (run_bench, &device) {
        let (l, timed, steps) = bench_rows(device, mode, &bar)?;
        bench = timed.iter().map(|r| bench_json(&l, r)).collect();
        bench.extend(steps.iter().map(|r| step_json(&l, r)));
        limits = Some(l);
    }
    bar.finish_and_clear();

    println!("oracle: reference<f64>; bound = derived bound of the backend's type + that of f64 (THEORY.md E4)\n");
    println!(
        "{:<32} {:<16} {:>6} {:>14}  result",
        "op", "backend", "cases", "max err/bound"
    );
    for r in rows.iter().filter(|r| r.outcome != "not selected") {
        println!(
            "{:<32} {:<16} {:>6} {:>14.3e}  {}",
            r.op, r.backend, r.cases, r.max_error_over_bound, r.outcome
        );
    }
    println!("\ninvariants ({cases} cases each):");
    for (name, outcome) in &invariant_results {
        println!("  {name:<70} {outcome}");
    }
    println!(
        "\nseed reproductions ({} mode, reference f32):",
        mode.name()
    );
    for (s, plot) in &seeds {
        println!(
            "  {} ({} steps): {}\n    plot: {plot}",
            s.id, s.steps, s.finding
        );
    }
    if let Some(l) = &limits {
        println!(
            "\nlimits: copy {:.2} GB/s (read + write, {} f32), peak FMA {:.1} GFLOP/s, unfused \
             mul+add {:.1} GFLOP/s, launch {:.1} µs",
            l.copy_bytes_per_second / 1e9,
            l.copy_elements,
            l.fma_flops_per_second / 1e9,
            l.mul_add_flops_per_second / 1e9,
            l.launch_seconds * 1e6
        );
        println!(
            "{:<30} {:>10} {:>10} {:>12} {:>9} {:>9}  target",
            "kernel (f32)", "size", "time ms", "achieved", "of limit", "vs ref"
        );
        for b in &bench {
            let binding = b["binding"].as_str().unwrap_or("");
            if binding == "latency" {
                let (t, r) = (
                    b["seconds"].as_f64().unwrap_or(f64::NAN),
                    b["reference_seconds"].as_f64().unwrap_or(f64::NAN),
                );
                println!(
                    "{:<30} {:>10} {:>10.3} {:>5} launches {:>7.1}% {:>8.1}x  \
                     (launch share of the step; reference {:.3} ms)",
                    b["op"].as_str().unwrap_or(""),
                    b["size"].as_str().unwrap_or(""),
                    1e3 * t,
                    b["launches_per_step"].as_u64().unwrap_or(0),
                    100.0 * b["fraction_of_limit"].as_f64().unwrap_or(0.0),
                    r / t,
                    1e3 * r
                );
                continue;
            }
            let achieved = b["achieved_per_second"].as_f64().unwrap_or(0.0);
            let unit = if binding == "compute" {
                "GFLOP/s"
            } else {
                "GB/s"
            };
            let speedup = b["reference_seconds"]
                .as_f64()
                .map_or("-".to_string(), |r| {
                    format!("{:.1}x", r / b["seconds"].as_f64().unwrap_or(f64::NAN))
                });
            let target = match (
                b["target"]["metric"].as_str(),
                b["target"]["value"].as_f64(),
            ) {
                (Some(metric), Some(value)) => {
                    let met = if b["target"]["met"].as_bool() == Some(true) {
                        "met"
                    } else {
                        "BELOW"
                    };
                    let of = if metric == "fraction_of_baseline" {
                        format!(
                            "{:.0}% of ndarray dot (is {:.0}%)",
                            100.0 * value,
                            100.0 * b["baseline"]["fraction"].as_f64().unwrap_or(0.0)
                        )
                    } else {
                        format!("{:.0}% of limit", 100.0 * value)
                    };
                    format!("≥ {of}: {met}")
                }
                _ => String::new(),
            };
            println!(
                "{:<30} {:>10} {:>10.3} {:>6.1} {:<7} {:>8.1}% {:>9}  {target}",
                b["op"].as_str().unwrap_or(""),
                b["size"].as_str().unwrap_or(""),
                1e3 * b["seconds"].as_f64().unwrap_or(0.0),
                achieved / 1e9,
                unit,
                100.0 * b["fraction_of_limit"].as_f64().unwrap_or(0.0),
                speedup
            );
        }
    }
    let device_json = match &device {
        Ok(d) => json!({
            "label": d.device_label(),
            "fp64": d.has_fp64(),
            "row_work_group": d.row_work_group(),
            "elementwise_work_group": d.elementwise_work_group(),
        }),
        Err(_) => Value::Null,
    };
    let elapsed = started.elapsed().as_secs_f64();
    let report = report_json(
        mode,
        elapsed,
        device_json,
        limits.as_ref(),
        &Findings {
            rows: &rows,
            invariants: &invariant_results,
            seeds: &seeds,
            bench: &bench,
        },
    );
    let path = write_json(&dir, &report)?;
    if !bench.is_empty() {
        let label = device
            .as_ref()
            .map(|d| d.device_label())
            .unwrap_or_default();
        let plot = plot_roofline(&dir, &label, &bench)?;
        println!("roofline: {}", plot.display());
    }
    println!("report: {}", path.display());
    let failures = rows
        .iter()
        .filter(|r| r.outcome.starts_with("FAIL"))
        .count()
        + invariant_results
            .iter()
            .filter(|(_, o)| o.starts_with("FAIL"))
            .count();
    println!("\n{failures} failure(s); {elapsed:.1} s");
    if failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_report() -> Value {
        let rows = vec![Row {
            op: "relu".into(),
            backend: "opencl<f32>".into(),
            cases: 3,
            max_error_over_bound: 0.25,
            outcome: "pass".into(),
        }];
        let invariants = vec![(
            "zero_logits_give_ln_two [reference<f32>]".to_string(),
            "pass".to_string(),
        )];
        let seeds = vec![(
            SeedResult {
                id: "seed000",
                title: "t",
                steps: 2,
                final_loss: 0.5,
                expected: f64::NAN,
                finding: "f".into(),
                loss: vec![0.7, f64::NAN, 0.5],
            },
            "p.svg".to_string(),
        )];
        let limits = DeviceLimits {
            copy_bytes_per_second: 1e10,
            copy_elements: 16,
            fma_flops_per_second: 1e11,
            mul_add_flops_per_second: 5e10,
            launch_seconds: 1e-5,
        };
        let bench = vec![bench_json(
            &limits,
            &BenchRow {
                workload: Workload::Elementwise {
                    kernel: "relu",
                    len: 1 << 24,
                },
                seconds: 0.016,
                reference_seconds: Some(0.1),
                baseline: None,
            },
        )];
        report_json(
            Mode::Quick,
            1.0,
            Value::Null,
            Some(&limits),
            &Findings {
                rows: &rows,
                invariants: &invariants,
                seeds: &seeds,
                bench: &bench,
            },
        )
    }

    #[test]
    fn the_op_table_covers_every_op_of_the_backend_trait() {
        let rows = op_rows::<f32>(&ProgressBar::hidden(), &Reference, 1);
        let names: Vec<&str> = rows.iter().map(|r| r.op.as_str()).collect();
        for op in mloracle::backend::OPS {
            assert!(
                names.contains(op),
                "{op} missing from the report's op table"
            );
        }
        assert_eq!(names.len(), mloracle::backend::OPS.len(), "{names:?}");
        for row in &rows {
            assert_eq!(row.outcome, "pass", "{}", row.op);
        }
    }

    #[test]
    fn report_json_is_written_and_parses_with_the_documented_keys() {
        let dir = std::env::temp_dir().join(format!("mloracle-report-test-{}", std::process::id()));
        let path = write_json(&dir, &tiny_report()).expect("write");
        let text = std::fs::read_to_string(&path).expect("read back");
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed["schema"], "mloracle-report/1");
        for key in ["device", "limits", "ops", "invariants", "seeds", "bench"] {
            assert!(parsed.get(key).is_some(), "missing {key}");
        }
        assert_eq!(parsed["ops"][0]["backend"], "opencl");
        assert_eq!(parsed["ops"][0]["scalar"], "f32");
        assert_eq!(parsed["invariants"][0]["backend"], "reference<f32>");
        assert!(
            parsed["seeds"][0]["loss"][1].is_null(),
            "NaN is written as null"
        );
        // relu at 16M: 2 × 64 MiB in 16 ms against 10 GB/s = 0.839.
        let f = parsed["bench"][0]["fraction_of_limit"]
            .as_f64()
            .expect("a number");
        assert!(
            (f - 2.0 * 4.0 * 16_777_216.0 / 0.016 / 1e10).abs() < 1e-12,
            "{f}"
        );
        assert_eq!(parsed["bench"][0]["target"]["met"], true);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
