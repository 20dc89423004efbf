//! `make report`: run the oracle on the default OpenCL device and print what it found.
//!
//! For each op, backend and scalar type: the number of generated cases, the worst
//! `|error| / bound` against the f64 reference, and pass/fail; then the invariants. Inputs come
//! from the crate's strategies with a fixed seed, so the table is the same run after run.
//!
//! `cargo run --release --example report -- [--cases N]` (default 64 cases per row).

use std::cell::Cell;

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
    ]
}

/// Rows of the losses with a reduction, the row-op VJPs, embedding, dropout and attention.
fn layer_rows<T: Scalar>(backend: &impl Backend<T>, cases: u32) -> Vec<Row> {
    let label = format!("{}<{}>", backend.name(), T::NAME);
    if let Err(e) = conformance::probe(backend, "attention") {
        return vec![Row {
            op: "layer ops".into(),
            backend: label,
            cases: 0,
            max_error_over_bound: 0.0,
            outcome: format!("SKIPPED: {e}"),
        }];
    }
    vec![
        measure(
            "softmax_rows_backward",
            label.clone(),
            cases,
            strategy::row_backward_inputs::<T>(false),
            |(y, g)| conformance::check_softmax_rows_backward(backend, y.view(), g.view()),
        ),
        measure(
            "log_softmax_rows_backward",
            label.clone(),
            cases,
            strategy::row_backward_inputs::<T>(true),
            |(y, g)| conformance::check_log_softmax_rows_backward(backend, y.view(), g.view()),
        ),
        measure(
            "bce_with_logits",
            label.clone(),
            cases,
            strategy::bce_reduction_inputs::<T>(),
            |(z, y, r)| conformance::check_bce_with_logits(backend, z.view(), y.view(), r),
        ),
        measure(
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
            "mse",
            label.clone(),
            cases,
            strategy::mse_inputs::<T>(),
            |(p, t, r)| conformance::check_mse(backend, p.view(), t.view(), r),
        ),
        measure(
            "mse_backward",
            label.clone(),
            cases,
            (strategy::mse_inputs::<T>(), strategy::grad_output()),
            |((p, t, r), g)| {
                conformance::check_mse_backward(backend, p.view(), t.view(), r, T::narrow(g))
            },
        ),
        measure(
            "cross_entropy",
            label.clone(),
            cases,
            strategy::cross_entropy_inputs::<T>(),
            |(x, t, ignore, r)| {
                conformance::check_cross_entropy(backend, x.view(), t.view(), ignore, r)
            },
        ),
        measure(
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
            "embedding",
            label.clone(),
            cases,
            strategy::embedding_inputs::<T>(),
            |(table, ids)| conformance::check_embedding(backend, table.view(), ids.view()),
        ),
        measure(
            "embedding_backward",
            label.clone(),
            cases,
            strategy::embedding_backward_inputs::<T>(),
            |(vocab, ids, g)| {
                conformance::check_embedding_backward(backend, vocab, ids.view(), g.view())
            },
        ),
        measure(
            "dropout",
            label.clone(),
            cases,
            strategy::dropout_inputs::<T>(),
            |(x, p, key)| conformance::check_dropout(backend, x.view(), p, key),
        ),
        measure(
            "dropout_backward",
            label.clone(),
            cases,
            strategy::dropout_backward_inputs::<T>(),
            |(g, mask, scale)| {
                conformance::check_dropout_backward(backend, g.view(), mask.view(), scale)
            },
        ),
        measure(
            "attention",
            label.clone(),
            cases,
            strategy::attention_inputs::<T>(),
            |(q, k, v, m)| {
                conformance::check_attention(backend, q.view(), k.view(), v.view(), m.view())
            },
        ),
        measure(
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
    let started = std::time::Instant::now();
    // `--layers`: only the loss, row-VJP, embedding, dropout and attention rows.
    let layers_only = args.iter().any(|a| a == "--layers");
    let mut rows = Vec::new();
    let mut invariant_results = Vec::new();
    if !layers_only {
        rows.extend(op_rows::<f32>(&Reference, cases));
        invariant_results.extend(invariant_rows::<f32>(&Reference, cases));
    }
    rows.extend(layer_rows::<f32>(&Reference, cases));
    match mloracle::OpenCl::new() {
        Ok(device) => {
            println!("device: {}", device.device_label());
            if !layers_only {
                rows.extend(op_rows::<f32>(&device, cases));
                rows.extend(op_rows::<f64>(&device, cases));
                invariant_results.extend(invariant_rows::<f32>(&device, cases));
                invariant_results.extend(invariant_rows::<f64>(&device, cases));
            }
            rows.extend(layer_rows::<f32>(&device, cases));
            rows.extend(layer_rows::<f64>(&device, cases));
        }
        Err(e) => println!("device: none ({e}); OpenCL rows SKIPPED"),
    }
    println!("oracle: reference<f64>; bound = derived bound of the backend's type + that of f64 (THEORY.md E4)\n");
    println!(
        "{:<32} {:<16} {:>6} {:>14}  result",
        "op", "backend", "cases", "max err/bound"
    );
    for r in &rows {
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
