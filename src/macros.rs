//! `backend_tests!`: one `#[test]` per conformance check and per invariant, for one backend and
//! scalar type.

/// Expand to a module `$suite` holding one `#[test]` per conformance check and invariant of the
/// crate, run against the backend that `$make` creates (an expression of type
/// `mloracle::Result<B>` with `B: Backend<$scalar>`, evaluated once per test; keep it cheap).
///
/// ```ignore
/// mloracle::backend_tests!(my_backend_f32, f32, Ok(MyBackend::new()));
/// ```
///
/// Test names carry the suite (`my_backend_f32::softmax_rows_matches_reference`), so
/// `cargo test f64` or `cargo test softmax` selects a slice. If `$make` fails the tests are
/// reported `SKIPPED` on standard error (or fail under `MLORACLE_REQUIRE_OPENCL=1`); ops the
/// backend does not support are reported `SKIPPED (unsupported)` by name. Failing seeds persist
/// next to the calling file.
#[macro_export]
macro_rules! backend_tests {
    ($suite:ident, $scalar:ty, $make:expr) => {
        mod $suite {
            #[allow(unused_imports)]
            use super::*;
            use $crate::proptest::prelude::*;
            use $crate::{conformance, harness, invariants, strategy};

            fn name(test: &str) -> String {
                format!("{}::{}", stringify!($suite), test)
            }

            #[test]
            fn log_sum_exp_rows_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("log_sum_exp_rows_matches_reference"),
                    file!(),
                    $make,
                    &["log_sum_exp_rows"],
                    strategy::logits_matrix::<$scalar>(),
                    |b, x| conformance::log_sum_exp_rows_matches_reference(b, x.view()),
                );
            }

            #[test]
            fn softmax_rows_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("softmax_rows_matches_reference"),
                    file!(),
                    $make,
                    &["softmax_rows"],
                    strategy::logits_matrix::<$scalar>(),
                    |b, x| conformance::softmax_rows_matches_reference(b, x.view()),
                );
            }

            #[test]
            fn log_softmax_rows_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("log_softmax_rows_matches_reference"),
                    file!(),
                    $make,
                    &["log_softmax_rows"],
                    strategy::logits_matrix::<$scalar>(),
                    |b, x| conformance::log_softmax_rows_matches_reference(b, x.view()),
                );
            }

            #[test]
            fn bce_with_logits_mean_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("bce_with_logits_mean_matches_reference"),
                    file!(),
                    $make,
                    &["bce_with_logits_mean"],
                    strategy::bce_inputs::<$scalar>(),
                    |b, (z, y)| {
                        conformance::bce_with_logits_mean_matches_reference(b, z.view(), y.view())
                    },
                );
            }

            #[test]
            fn bce_with_logits_mean_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("bce_with_logits_mean_backward_matches_reference"),
                    file!(),
                    $make,
                    &["bce_with_logits_mean_backward"],
                    (strategy::bce_inputs::<$scalar>(), strategy::grad_output()),
                    |b, ((z, y), g)| {
                        conformance::bce_with_logits_mean_backward_matches_reference(
                            b,
                            z.view(),
                            y.view(),
                            <$scalar as $crate::Scalar>::narrow(g),
                        )
                    },
                );
            }

            #[test]
            fn matmul_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("matmul_matches_reference"),
                    file!(),
                    $make,
                    &["matmul"],
                    strategy::matmul_operands::<$scalar>(),
                    |b, (x, y)| conformance::matmul_matches_reference(b, x.view(), y.view()),
                );
            }

            #[test]
            fn relu_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("relu_matches_reference"),
                    file!(),
                    $make,
                    &["relu"],
                    strategy::activation_input::<$scalar>(),
                    |b, x| conformance::relu_matches_reference(b, x.view()),
                );
            }

            #[test]
            fn relu_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("relu_backward_matches_reference"),
                    file!(),
                    $make,
                    &["relu_backward"],
                    strategy::activation_input_with_grad::<$scalar>(),
                    |b, (x, g)| conformance::relu_backward_matches_reference(b, x.view(), g.view()),
                );
            }

            #[test]
            fn leaky_relu_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("leaky_relu_matches_reference"),
                    file!(),
                    $make,
                    &["leaky_relu"],
                    (
                        strategy::activation_input::<$scalar>(),
                        strategy::leaky_slope(),
                    ),
                    |b, (x, s)| {
                        conformance::leaky_relu_matches_reference(
                            b,
                            x.view(),
                            <$scalar as $crate::Scalar>::narrow(s),
                        )
                    },
                );
            }

            #[test]
            fn leaky_relu_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("leaky_relu_backward_matches_reference"),
                    file!(),
                    $make,
                    &["leaky_relu_backward"],
                    (
                        strategy::activation_input_with_grad::<$scalar>(),
                        strategy::leaky_slope(),
                    ),
                    |b, ((x, g), s)| {
                        conformance::leaky_relu_backward_matches_reference(
                            b,
                            x.view(),
                            g.view(),
                            <$scalar as $crate::Scalar>::narrow(s),
                        )
                    },
                );
            }

            #[test]
            fn sigmoid_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("sigmoid_matches_reference"),
                    file!(),
                    $make,
                    &["sigmoid"],
                    strategy::activation_input::<$scalar>(),
                    |b, x| conformance::sigmoid_matches_reference(b, x.view()),
                );
            }

            #[test]
            fn sigmoid_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("sigmoid_backward_matches_reference"),
                    file!(),
                    $make,
                    &["sigmoid_backward"],
                    strategy::sigmoid_output_with_grad::<$scalar>(),
                    |b, (y, g)| {
                        conformance::sigmoid_backward_matches_reference(b, y.view(), g.view())
                    },
                );
            }

            #[test]
            fn tanh_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("tanh_matches_reference"),
                    file!(),
                    $make,
                    &["tanh"],
                    strategy::activation_input::<$scalar>(),
                    |b, x| conformance::tanh_matches_reference(b, x.view()),
                );
            }

            #[test]
            fn tanh_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("tanh_backward_matches_reference"),
                    file!(),
                    $make,
                    &["tanh_backward"],
                    strategy::tanh_output_with_grad::<$scalar>(),
                    |b, (y, g)| conformance::tanh_backward_matches_reference(b, y.view(), g.view()),
                );
            }

            #[test]
            fn gelu_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("gelu_matches_reference"),
                    file!(),
                    $make,
                    &["gelu"],
                    strategy::activation_input::<$scalar>(),
                    |b, x| conformance::gelu_matches_reference(b, x.view()),
                );
            }

            #[test]
            fn gelu_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("gelu_backward_matches_reference"),
                    file!(),
                    $make,
                    &["gelu_backward"],
                    strategy::activation_input_with_grad::<$scalar>(),
                    |b, (x, g)| conformance::gelu_backward_matches_reference(b, x.view(), g.view()),
                );
            }

            #[test]
            fn add_rows_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("add_rows_matches_reference"),
                    file!(),
                    $make,
                    &["add_rows"],
                    strategy::add_rows_inputs::<$scalar>(),
                    |b, (x, v)| conformance::add_rows_matches_reference(b, x.view(), v.view()),
                );
            }

            #[test]
            fn layer_norm_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("layer_norm_matches_reference"),
                    file!(),
                    $make,
                    &["layer_norm"],
                    strategy::layer_norm_inputs::<$scalar>(),
                    |b, (x, gamma, beta, eps)| {
                        conformance::layer_norm_matches_reference(
                            b,
                            x.view(),
                            gamma.view(),
                            beta.view(),
                            eps,
                        )
                    },
                );
            }

            #[test]
            fn layer_norm_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("layer_norm_backward_matches_reference"),
                    file!(),
                    $make,
                    &["layer_norm_backward"],
                    strategy::layer_norm_backward_inputs::<$scalar>(),
                    |b, ((x, gamma, beta, eps), g)| {
                        conformance::layer_norm_backward_matches_reference(
                            b,
                            x.view(),
                            gamma.view(),
                            beta.view(),
                            eps,
                            g.view(),
                        )
                    },
                );
            }

            // Linear algebra: matmul VJP, batched products, transposes, row broadcasts and
            // axis reductions with their VJPs.
            #[test]
            fn matmul_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("matmul_backward_matches_reference"),
                    file!(),
                    $make,
                    &["matmul_backward"],
                    strategy::matmul_backward_operands::<$scalar>(),
                    |b, (x, y, g)| {
                        conformance::matmul_backward_matches_reference(
                            b,
                            x.view(),
                            y.view(),
                            g.view(),
                        )
                    },
                );
            }

            #[test]
            fn batched_matmul_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("batched_matmul_matches_reference"),
                    file!(),
                    $make,
                    &["batched_matmul"],
                    strategy::batched_matmul_operands::<$scalar>(),
                    |b, (x, y)| {
                        conformance::batched_matmul_matches_reference(b, x.view(), y.view())
                    },
                );
            }

            #[test]
            fn batched_matmul_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("batched_matmul_backward_matches_reference"),
                    file!(),
                    $make,
                    &["batched_matmul_backward"],
                    strategy::batched_matmul_backward_operands::<$scalar>(),
                    |b, (x, y, g)| {
                        conformance::batched_matmul_backward_matches_reference(
                            b,
                            x.view(),
                            y.view(),
                            g.view(),
                        )
                    },
                );
            }

            #[test]
            fn transpose_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("transpose_matches_reference"),
                    file!(),
                    $make,
                    &["transpose"],
                    strategy::transpose_input::<$scalar>(),
                    |b, x| conformance::transpose_matches_reference(b, x.view()),
                );
            }

            #[test]
            fn add_rows_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("add_rows_backward_matches_reference"),
                    file!(),
                    $make,
                    &["add_rows_backward"],
                    strategy::add_rows_backward_input::<$scalar>(),
                    |b, g| conformance::add_rows_backward_matches_reference(b, g.view()),
                );
            }

            #[test]
            fn mul_rows_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("mul_rows_matches_reference"),
                    file!(),
                    $make,
                    &["mul_rows"],
                    strategy::mul_rows_inputs::<$scalar>(),
                    |b, (x, v)| conformance::mul_rows_matches_reference(b, x.view(), v.view()),
                );
            }

            #[test]
            fn mul_rows_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("mul_rows_backward_matches_reference"),
                    file!(),
                    $make,
                    &["mul_rows_backward"],
                    strategy::mul_rows_backward_inputs::<$scalar>(),
                    |b, (x, v, g)| {
                        conformance::mul_rows_backward_matches_reference(
                            b,
                            x.view(),
                            v.view(),
                            g.view(),
                        )
                    },
                );
            }

            #[test]
            fn sum_axis_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("sum_axis_matches_reference"),
                    file!(),
                    $make,
                    &["sum_axis"],
                    strategy::sum_axis_inputs::<$scalar>(),
                    |b, (x, axis)| conformance::sum_axis_matches_reference(b, x.view(), axis),
                );
            }

            #[test]
            fn sum_axis_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("sum_axis_backward_matches_reference"),
                    file!(),
                    $make,
                    &["sum_axis_backward"],
                    strategy::axis_backward_inputs::<$scalar>(false),
                    |b, (shape, axis, g)| {
                        conformance::sum_axis_backward_matches_reference(b, shape, axis, g.view())
                    },
                );
            }

            #[test]
            fn mean_axis_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("mean_axis_matches_reference"),
                    file!(),
                    $make,
                    &["mean_axis"],
                    strategy::mean_axis_inputs::<$scalar>(),
                    |b, (x, axis)| conformance::mean_axis_matches_reference(b, x.view(), axis),
                );
            }

            #[test]
            fn mean_axis_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("mean_axis_backward_matches_reference"),
                    file!(),
                    $make,
                    &["mean_axis_backward"],
                    strategy::axis_backward_inputs::<$scalar>(true),
                    |b, (shape, axis, g)| {
                        conformance::mean_axis_backward_matches_reference(b, shape, axis, g.view())
                    },
                );
            }

            #[test]
            fn errors_match_reference() {
                harness::run_fixed::<$scalar, _, _>(
                    &name("errors_match_reference"),
                    $make,
                    $crate::backend::OPS,
                    |b| conformance::errors_match_reference::<$scalar>(b).map(drop),
                );
            }

            #[test]
            fn log_sum_exp_is_shift_invariant() {
                harness::run_property::<$scalar, _, _>(
                    &name("log_sum_exp_is_shift_invariant"),
                    file!(),
                    $make,
                    &["log_sum_exp_rows"],
                    (strategy::logits_matrix::<$scalar>(), -64i32..=64),
                    |b, (x, c)| invariants::log_sum_exp_is_shift_invariant(b, x.view(), c),
                );
            }

            #[test]
            fn log_sum_exp_lies_between_max_and_max_plus_ln_n() {
                harness::run_property::<$scalar, _, _>(
                    &name("log_sum_exp_lies_between_max_and_max_plus_ln_n"),
                    file!(),
                    $make,
                    &["log_sum_exp_rows"],
                    strategy::logits_matrix::<$scalar>(),
                    |b, x| invariants::log_sum_exp_lies_between_max_and_max_plus_ln_n(b, x.view()),
                );
            }

            #[test]
            fn softmax_rows_sum_to_one() {
                harness::run_property::<$scalar, _, _>(
                    &name("softmax_rows_sum_to_one"),
                    file!(),
                    $make,
                    &["softmax_rows"],
                    strategy::logits_matrix::<$scalar>(),
                    |b, x| invariants::softmax_rows_sum_to_one(b, x.view()),
                );
            }

            #[test]
            fn zero_logits_give_ln_two() {
                harness::run_property::<$scalar, _, _>(
                    &name("zero_logits_give_ln_two"),
                    file!(),
                    $make,
                    &["bce_with_logits_mean"],
                    strategy::labels::<$scalar>(),
                    |b, y| invariants::zero_logits_give_ln_two(b, y.view()),
                );
            }

            #[test]
            fn constant_logit_loss_is_at_least_label_entropy() {
                harness::run_property::<$scalar, _, _>(
                    &name("constant_logit_loss_is_at_least_label_entropy"),
                    file!(),
                    $make,
                    &["bce_with_logits_mean"],
                    (strategy::labels::<$scalar>(), -15.0f64..=15.0),
                    |b, (y, c)| {
                        invariants::constant_logit_loss_is_at_least_label_entropy(
                            b,
                            y.view(),
                            <$scalar as $crate::Scalar>::narrow(c),
                        )
                    },
                );
            }

            #[test]
            fn label_prior_logit_attains_label_entropy() {
                harness::run_property::<$scalar, _, _>(
                    &name("label_prior_logit_attains_label_entropy"),
                    file!(),
                    $make,
                    &["bce_with_logits_mean"],
                    strategy::labels::<$scalar>(),
                    |b, y| invariants::label_prior_logit_attains_label_entropy(b, y.view()),
                );
            }
        }
    };
}
