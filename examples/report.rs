//! `make report`: run the oracle on the default OpenCL device and print what it found.
//!
//! For each op, backend and scalar type: the number of generated cases, the worst
//! `|error| / bound` against the f64 reference, and pass/fail; then the invariants. Inputs come
//! from the crate's strategies with a fixed seed, so the table is the same run after run.
//!
//! `cargo run --release --example report -- [--cases N] [--ops a,b,…] [--optim-only]`
//! (default 64 cases per row; `--ops` keeps only the named ops' rows and skips the invariants;
//! `--optim-only`: only the optimizer, clipping and std rows).

use std::cell::Cell;
use std::sync::OnceLock;

/// The `--ops` selection (`None`: every op).
static SELECTED: OnceLock<Option<Vec<String>>> = OnceLock::new();

fn selected(op: &str) -> bool {
    SELECTED
        .get()
        .and_then(Option::as_ref)
        .is_none_or(|ops| ops.iter().any(|o| o == op))
}

use mloracle::compare::Agreement;
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
    op: &str,
    backend: String,
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> CheckResult,
) -> Row {
    if !selected(op) {
        return Row {
            op: op.to_string(),
            backend,
            cases: 0,
            max_error_over_bound: 0.0,
            outcome: "not selected".to_string(),
        };
    }
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

fn op_rows<T: Scalar>(backend: &impl Backend<T>, cases: u32) -> Vec<Row> {
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
            "log_sum_exp_rows",
            label.clone(),
            cases,
            strategy::logits_matrix::<T>(),
            |x| conformance::check_log_sum_exp_rows(backend, x.view()),
        ),
        measure(
            "softmax_rows",
            label.clone(),
            cases,
            strategy::logits_matrix::<T>(),
            |x| conformance::check_softmax_rows(backend, x.view()),
        ),
        measure(
            "log_softmax_rows",
            label.clone(),
            cases,
            strategy::logits_matrix::<T>(),
            |x| conformance::check_log_softmax_rows(backend, x.view()),
        ),
        measure(
            "bce_with_logits_mean",
            label.clone(),
            cases,
            strategy::bce_inputs::<T>(),
            |(z, y)| conformance::check_bce_with_logits_mean(backend, z.view(), y.view()),
        ),
        measure(
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
            "matmul",
            label.clone(),
            cases,
            strategy::matmul_operands::<T>(),
            |(a, b)| conformance::check_matmul(backend, a.view(), b.view()),
        ),
        measure(
            "relu",
            label.clone(),
            cases,
            strategy::activation_input::<T>(),
            |x| conformance::check_relu(backend, x.view()),
        ),
        measure(
            "relu_backward",
            label.clone(),
            cases,
            strategy::activation_input_with_grad::<T>(),
            |(x, g)| conformance::check_relu_backward(backend, x.view(), g.view()),
        ),
        measure(
            "leaky_relu",
            label.clone(),
            cases,
            (strategy::activation_input::<T>(), strategy::leaky_slope()),
            |(x, s)| conformance::check_leaky_relu(backend, x.view(), T::narrow(s)),
        ),
        measure(
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
            "sigmoid",
            label.clone(),
            cases,
            strategy::activation_input::<T>(),
            |x| conformance::check_sigmoid(backend, x.view()),
        ),
        measure(
            "sigmoid_backward",
            label.clone(),
            cases,
            strategy::sigmoid_output_with_grad::<T>(),
            |(y, g)| conformance::check_sigmoid_backward(backend, y.view(), g.view()),
        ),
        measure(
            "tanh",
            label.clone(),
            cases,
            strategy::activation_input::<T>(),
            |x| conformance::check_tanh(backend, x.view()),
        ),
        measure(
            "tanh_backward",
            label.clone(),
            cases,
            strategy::tanh_output_with_grad::<T>(),
            |(y, g)| conformance::check_tanh_backward(backend, y.view(), g.view()),
        ),
        measure(
            "gelu",
            label.clone(),
            cases,
            strategy::activation_input::<T>(),
            |x| conformance::check_gelu(backend, x.view()),
        ),
        measure(
            "gelu_backward",
            label.clone(),
            cases,
            strategy::activation_input_with_grad::<T>(),
            |(x, g)| conformance::check_gelu_backward(backend, x.view(), g.view()),
        ),
        measure(
            "add_rows",
            label.clone(),
            cases,
            strategy::add_rows_inputs::<T>(),
            |(x, b)| conformance::check_add_rows(backend, x.view(), b.view()),
        ),
        measure(
            "layer_norm",
            label.clone(),
            cases,
            strategy::layer_norm_inputs::<T>(),
            |(x, gamma, beta, eps)| {
                conformance::check_layer_norm(backend, x.view(), gamma.view(), beta.view(), eps)
            },
        ),
        measure(
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
            "matmul_backward",
            label.clone(),
            cases,
            strategy::matmul_backward_operands::<T>(),
            |(a, b, g)| conformance::check_matmul_backward(backend, a.view(), b.view(), g.view()),
        ),
        measure(
            "batched_matmul",
            label.clone(),
            cases,
            strategy::batched_matmul_operands::<T>(),
            |(a, b)| conformance::check_batched_matmul(backend, a.view(), b.view()),
        ),
        measure(
            "batched_matmul_backward",
            label.clone(),
            cases,
            strategy::batched_matmul_backward_operands::<T>(),
            |(a, b, g)| {
                conformance::check_batched_matmul_backward(backend, a.view(), b.view(), g.view())
            },
        ),
        measure(
            "transpose",
            label.clone(),
            cases,
            strategy::transpose_input::<T>(),
            |x| conformance::check_transpose(backend, x.view()),
        ),
        measure(
            "add_rows_backward",
            label.clone(),
            cases,
            strategy::add_rows_backward_input::<T>(),
            |g| conformance::check_add_rows_backward(backend, g.view()),
        ),
        measure(
            "mul_rows",
            label.clone(),
            cases,
            strategy::mul_rows_inputs::<T>(),
            |(x, b)| conformance::check_mul_rows(backend, x.view(), b.view()),
        ),
        measure(
            "mul_rows_backward",
            label.clone(),
            cases,
            strategy::mul_rows_backward_inputs::<T>(),
            |(x, b, g)| conformance::check_mul_rows_backward(backend, x.view(), b.view(), g.view()),
        ),
        measure(
            "sum_axis",
            label.clone(),
            cases,
            strategy::sum_axis_inputs::<T>(),
            |(x, axis)| conformance::check_sum_axis(backend, x.view(), axis),
        ),
        measure(
            "sum_axis_backward",
            label.clone(),
            cases,
            strategy::axis_backward_inputs::<T>(false),
            |(shape, axis, g)| conformance::check_sum_axis_backward(backend, shape, axis, g.view()),
        ),
        measure(
            "mean_axis",
            label.clone(),
            cases,
            strategy::mean_axis_inputs::<T>(),
            |(x, axis)| conformance::check_mean_axis(backend, x.view(), axis),
        ),
        measure(
            "mean_axis_backward",
            label.clone(),
            cases,
            strategy::axis_backward_inputs::<T>(true),
            |(shape, axis, g)| {
                conformance::check_mean_axis_backward(backend, shape, axis, g.view())
            },
        ),
    ]
}

/// Rows of the optimizer family (src/conformance/optim.rs).
fn optim_rows<T: Scalar>(backend: &impl Backend<T>, cases: u32) -> Vec<Row> {
    let label = format!("{}<{}>", backend.name(), T::NAME);
    if let Err(e) = conformance::probe(backend, "adam_step") {
        return vec![Row {
            op: "optimizer ops".into(),
            backend: label,
            cases: 0,
            max_error_over_bound: 0.0,
            outcome: format!("SKIPPED: {e}"),
        }];
    }
    vec![
        measure(
            "sgd_step",
            label.clone(),
            cases,
            strategy::sgd_inputs::<T>(),
            |(state, theta, g, hyper)| {
                conformance::check_sgd_step(backend, &state, theta.view(), g.view(), &hyper)
            },
        ),
        measure(
            "adam_step",
            label.clone(),
            cases,
            strategy::adam_inputs::<T>(),
            |(state, theta, g, hyper)| {
                conformance::check_adam_step(backend, &state, theta.view(), g.view(), &hyper)
            },
        ),
        measure(
            "clip_grad_norm",
            label.clone(),
            cases,
            strategy::clip_inputs::<T>(),
            |(grads, max_norm)| conformance::check_clip_grad_norm(backend, &grads, max_norm),
        ),
        measure(
            "clip_grad_value",
            label.clone(),
            cases,
            strategy::clip_value_inputs::<T>(),
            |(grads, c)| conformance::check_clip_grad_value(backend, &grads, c),
        ),
        measure(
            "std_corrected",
            label.clone(),
            cases,
            strategy::std_inputs::<T>(),
            |(values, c)| conformance::check_std_corrected(backend, values.view(), c),
        ),
        measure(
            "std_corrected_backward",
            label.clone(),
            cases,
            (strategy::std_inputs::<T>(), strategy::grad_output()),
            |((values, c), g)| {
                conformance::check_std_corrected_backward(backend, values.view(), c, T::narrow(g))
            },
        ),
    ]
}

fn invariant_rows<T: Scalar>(backend: &impl Backend<T>, cases: u32) -> Vec<(String, String)> {
    let label = format!("{}<{}>", backend.name(), T::NAME);
    let run = |name: &str, result: Result<(), String>| {
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cases = args
        .iter()
        .position(|a| a == "--cases")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(64u32);
    let ops = args
        .iter()
        .position(|a| a == "--ops")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>());
    let filtered = ops.is_some();
    SELECTED.get_or_init(|| ops);
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    let mut invariant_results = Vec::new();
    let only_optim = args.iter().any(|a| a == "--optim-only");
    if !only_optim {
        rows.extend(op_rows::<f32>(&Reference, cases));
    }
    rows.extend(optim_rows::<f32>(&Reference, cases));
    if !filtered && !only_optim {
        invariant_results.extend(invariant_rows::<f32>(&Reference, cases));
    }
    match mloracle::OpenCl::new() {
        Ok(device) => {
            println!("device: {}", device.device_label());
            if !only_optim {
                rows.extend(op_rows::<f32>(&device, cases));
                rows.extend(op_rows::<f64>(&device, cases));
            }
            rows.extend(optim_rows::<f32>(&device, cases));
            rows.extend(optim_rows::<f64>(&device, cases));
            if !filtered && !only_optim {
                invariant_results.extend(invariant_rows::<f32>(&device, cases));
                invariant_results.extend(invariant_rows::<f64>(&device, cases));
            }
        }
        Err(e) => println!("device: none ({e}); OpenCL rows SKIPPED"),
    }
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
    let failures = rows
        .iter()
        .filter(|r| r.outcome.starts_with("FAIL"))
        .count()
        + invariant_results
            .iter()
            .filter(|(_, o)| o.starts_with("FAIL"))
            .count();
    println!(
        "\n{failures} failure(s); {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if failures > 0 {
        std::process::exit(1);
    }
}
