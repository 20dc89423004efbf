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

            // Optimizers, clipping, std (src/conformance/optim.rs).

            #[test]
            fn sgd_step_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("sgd_step_matches_reference"),
                    file!(),
                    $make,
                    &["sgd_step"],
                    strategy::sgd_inputs::<$scalar>(),
                    |b, (state, theta, g, hyper)| {
                        conformance::sgd_step_matches_reference(
                            b,
                            &state,
                            theta.view(),
                            g.view(),
                            &hyper,
                        )
                    },
                );
            }

            #[test]
            fn adam_step_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("adam_step_matches_reference"),
                    file!(),
                    $make,
                    &["adam_step"],
                    strategy::adam_inputs::<$scalar>(),
                    |b, (state, theta, g, hyper)| {
                        conformance::adam_step_matches_reference(
                            b,
                            &state,
                            theta.view(),
                            g.view(),
                            &hyper,
                        )
                    },
                );
            }

            #[test]
            fn clip_grad_norm_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("clip_grad_norm_matches_reference"),
                    file!(),
                    $make,
                    &["clip_grad_norm"],
                    strategy::clip_inputs::<$scalar>(),
                    |b, (grads, max_norm)| {
                        conformance::clip_grad_norm_matches_reference(b, &grads, max_norm)
                    },
                );
            }

            #[test]
            fn clip_grad_value_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("clip_grad_value_matches_reference"),
                    file!(),
                    $make,
                    &["clip_grad_value"],
                    strategy::clip_value_inputs::<$scalar>(),
                    |b, (grads, clip_value)| {
                        conformance::clip_grad_value_matches_reference(b, &grads, clip_value)
                    },
                );
            }

            #[test]
            fn std_corrected_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("std_corrected_matches_reference"),
                    file!(),
                    $make,
                    &["std_corrected"],
                    strategy::std_inputs::<$scalar>(),
                    |b, (values, c)| {
                        conformance::std_corrected_matches_reference(b, values.view(), c)
                    },
                );
            }

            #[test]
            fn std_corrected_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("std_corrected_backward_matches_reference"),
                    file!(),
                    $make,
                    &["std_corrected_backward"],
                    (strategy::std_inputs::<$scalar>(), strategy::grad_output()),
                    |b, ((values, c), g)| {
                        conformance::std_corrected_backward_matches_reference(
                            b,
                            values.view(),
                            c,
                            <$scalar as $crate::Scalar>::narrow(g),
                        )
                    },
                );
            }

            // Losses with a reduction, row-op VJPs, embedding, dropout, attention.
            #[test]
            fn softmax_rows_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("softmax_rows_backward_matches_reference"),
                    file!(),
                    $make,
                    &["softmax_rows_backward"],
                    strategy::row_backward_inputs::<$scalar>(false),
                    |b, (y, g)| {
                        conformance::softmax_rows_backward_matches_reference(b, y.view(), g.view())
                    },
                );
            }

            #[test]
            fn log_softmax_rows_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("log_softmax_rows_backward_matches_reference"),
                    file!(),
                    $make,
                    &["log_softmax_rows_backward"],
                    strategy::row_backward_inputs::<$scalar>(true),
                    |b, (y, g)| {
                        conformance::log_softmax_rows_backward_matches_reference(
                            b,
                            y.view(),
                            g.view(),
                        )
                    },
                );
            }

            #[test]
            fn bce_with_logits_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("bce_with_logits_matches_reference"),
                    file!(),
                    $make,
                    &["bce_with_logits"],
                    strategy::bce_reduction_inputs::<$scalar>(),
                    |b, (z, y, r)| {
                        conformance::bce_with_logits_matches_reference(b, z.view(), y.view(), r)
                    },
                );
            }

            #[test]
            fn bce_with_logits_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("bce_with_logits_backward_matches_reference"),
                    file!(),
                    $make,
                    &["bce_with_logits_backward"],
                    (
                        strategy::bce_reduction_inputs::<$scalar>(),
                        strategy::grad_output(),
                    ),
                    |b, ((z, y, r), g)| {
                        conformance::bce_with_logits_backward_matches_reference(
                            b,
                            z.view(),
                            y.view(),
                            r,
                            <$scalar as $crate::Scalar>::narrow(g),
                        )
                    },
                );
            }

            #[test]
            fn mse_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("mse_matches_reference"),
                    file!(),
                    $make,
                    &["mse"],
                    strategy::mse_inputs::<$scalar>(),
                    |b, (p, t, r)| conformance::mse_matches_reference(b, p.view(), t.view(), r),
                );
            }

            #[test]
            fn mse_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("mse_backward_matches_reference"),
                    file!(),
                    $make,
                    &["mse_backward"],
                    (strategy::mse_inputs::<$scalar>(), strategy::grad_output()),
                    |b, ((p, t, r), g)| {
                        conformance::mse_backward_matches_reference(
                            b,
                            p.view(),
                            t.view(),
                            r,
                            <$scalar as $crate::Scalar>::narrow(g),
                        )
                    },
                );
            }

            #[test]
            fn cross_entropy_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("cross_entropy_matches_reference"),
                    file!(),
                    $make,
                    &["cross_entropy"],
                    strategy::cross_entropy_inputs::<$scalar>(),
                    |b, (x, t, ignore, r)| {
                        conformance::cross_entropy_matches_reference(
                            b,
                            x.view(),
                            t.view(),
                            ignore,
                            r,
                        )
                    },
                );
            }

            #[test]
            fn cross_entropy_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("cross_entropy_backward_matches_reference"),
                    file!(),
                    $make,
                    &["cross_entropy_backward"],
                    (
                        strategy::cross_entropy_inputs::<$scalar>(),
                        strategy::grad_output(),
                    ),
                    |b, ((x, t, ignore, r), g)| {
                        conformance::cross_entropy_backward_matches_reference(
                            b,
                            x.view(),
                            t.view(),
                            ignore,
                            r,
                            <$scalar as $crate::Scalar>::narrow(g),
                        )
                    },
                );
            }

            #[test]
            fn cross_entropy_is_exactly_zero_past_24_ln_2() {
                harness::run_property::<$scalar, _, _>(
                    &name("cross_entropy_is_exactly_zero_past_24_ln_2"),
                    file!(),
                    $make,
                    &["cross_entropy", "cross_entropy_backward"],
                    (strategy::large_margins(), -50.0f64..=50.0),
                    |b, (margins, shift)| {
                        conformance::cross_entropy_is_exactly_zero_past_24_ln_2::<$scalar>(
                            b, &margins, shift,
                        )
                    },
                );
            }

            #[test]
            fn embedding_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("embedding_matches_reference"),
                    file!(),
                    $make,
                    &["embedding"],
                    strategy::embedding_inputs::<$scalar>(),
                    |b, (table, ids)| {
                        conformance::embedding_matches_reference(b, table.view(), ids.view())
                    },
                );
            }

            #[test]
            fn embedding_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("embedding_backward_matches_reference"),
                    file!(),
                    $make,
                    &["embedding_backward"],
                    strategy::embedding_backward_inputs::<$scalar>(),
                    |b, (vocab, ids, g)| {
                        conformance::embedding_backward_matches_reference(
                            b,
                            vocab,
                            ids.view(),
                            g.view(),
                        )
                    },
                );
            }

            #[test]
            fn dropout_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("dropout_matches_reference"),
                    file!(),
                    $make,
                    &["dropout"],
                    strategy::dropout_inputs::<$scalar>(),
                    |b, (x, p, key)| conformance::dropout_matches_reference(b, x.view(), p, key),
                );
            }

            #[test]
            fn dropout_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("dropout_backward_matches_reference"),
                    file!(),
                    $make,
                    &["dropout_backward"],
                    strategy::dropout_backward_inputs::<$scalar>(),
                    |b, (g, mask, scale)| {
                        conformance::dropout_backward_matches_reference(
                            b,
                            g.view(),
                            mask.view(),
                            scale,
                        )
                    },
                );
            }

            #[test]
            fn attention_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("attention_matches_reference"),
                    file!(),
                    $make,
                    &["attention"],
                    strategy::attention_inputs::<$scalar>(),
                    |b, (q, k, v, m)| {
                        conformance::attention_matches_reference(
                            b,
                            q.view(),
                            k.view(),
                            v.view(),
                            m.view(),
                        )
                    },
                );
            }

            #[test]
            fn attention_backward_matches_reference() {
                harness::run_property::<$scalar, _, _>(
                    &name("attention_backward_matches_reference"),
                    file!(),
                    $make,
                    &["attention_backward"],
                    strategy::attention_backward_inputs::<$scalar>(),
                    |b, ((q, k, v, m), g)| {
                        conformance::attention_backward_matches_reference(
                            b,
                            q.view(),
                            k.view(),
                            v.view(),
                            m.view(),
                            g.view(),
                        )
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

            // THEORY.md A2–A5, B1–B4, C1–C5, D1–D5 on this backend (A0, A1 above). Invariants
            // that run many backend calls per case are capped by `run_property_cases`.

            #[test]
            fn bias_gradient_descent_moves_monotonically_to_prior_logit() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("bias_gradient_descent_moves_monotonically_to_prior_logit"),
                    file!(),
                    $make,
                    &["bce_with_logits_mean", "bce_with_logits_mean_backward"],
                    6,
                    (4usize..=32, 0.25f64..=0.75, -10.0f64..=10.0, 1.0f64..=4.0),
                    |b, (n, prior, b0, lr)| {
                        let ones = ((prior * n as f64).round() as usize).clamp(1, n - 1);
                        let labels = $crate::ndarray::Array1::from_shape_fn(n, |i| {
                            if i < ones {
                                <$scalar as $crate::Scalar>::narrow(1.0)
                            } else {
                                <$scalar as $crate::Scalar>::narrow(0.0)
                            }
                        });
                        invariants::bias_gradient_descent_moves_monotonically_to_prior_logit::<$scalar>(
                            b,
                            labels.view(),
                            <$scalar as $crate::Scalar>::narrow(b0),
                            lr,
                        )
                    },
                );
            }

            #[test]
            fn stable_bce_is_finite_where_naive_is_not() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("stable_bce_is_finite_where_naive_is_not"),
                    file!(),
                    $make,
                    &["bce_with_logits"],
                    24,
                    $crate::proptest::collection::vec(
                        (
                            strategy::logit_value(),
                            prop_oneof![Just(0.0f64), Just(1.0f64), 0.0f64..=1.0],
                        ),
                        1..=12,
                    ),
                    |b, cases| invariants::stable_bce_is_finite_where_naive_is_not::<$scalar>(b, &cases),
                );
            }

            #[test]
            fn cross_entropy_is_zero_while_its_gradient_is_not() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("cross_entropy_is_zero_while_its_gradient_is_not"),
                    file!(),
                    $make,
                    &["cross_entropy", "cross_entropy_backward"],
                    24,
                    (
                        $crate::proptest::collection::vec(0.07f64..=60.0, 1..=8),
                        -50.0f64..=50.0,
                    ),
                    |b, (offsets, shift)| {
                        invariants::cross_entropy_is_zero_while_its_gradient_is_not::<$scalar>(
                            b, &offsets, shift,
                        )
                    },
                );
            }

            #[test]
            fn cross_entropy_gradient_is_softmax_minus_onehot() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("cross_entropy_gradient_is_softmax_minus_onehot"),
                    file!(),
                    $make,
                    &["cross_entropy_backward"],
                    24,
                    (
                        strategy::logits_matrix::<$scalar>(),
                        $crate::proptest::collection::vec(0usize..10_000, 8),
                    ),
                    |b, (x, targets)| {
                        invariants::cross_entropy_gradient_is_softmax_minus_onehot::<$scalar>(
                            b,
                            x.view(),
                            &targets,
                        )
                    },
                );
            }

            #[test]
            fn mse_sum_gradient_is_count_times_mean_gradient() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("mse_sum_gradient_is_count_times_mean_gradient"),
                    file!(),
                    $make,
                    &["mse_backward"],
                    24,
                    strategy::mse_inputs::<$scalar>(),
                    |b, (p, t, _)| {
                        // Bitwise only where OpenCL's `/` is correctly rounded too (f64).
                        let exact = <$scalar as $crate::Scalar>::UNIT_ROUNDOFF < 1e-10;
                        invariants::mse_sum_gradient_is_count_times_mean_gradient::<$scalar>(
                            b,
                            p.view(),
                            t.view(),
                            exact,
                        )
                    },
                );
            }

            #[test]
            fn mlp_sum_reduction_is_mean_reduction_at_count_times_learning_rate() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("mlp_sum_reduction_is_mean_reduction_at_count_times_learning_rate"),
                    file!(),
                    $make,
                    &["train"],
                    4,
                    (0u64..1000, 0u32..4, 1e-4f64..1.0),
                    |b, (seed, rows_log, lr)| {
                        let exact = <$scalar as $crate::Scalar>::UNIT_ROUNDOFF < 1e-10;
                        invariants::mlp_sum_is_mean_at_scaled_rate_on_a_seeded_regressor::<$scalar>(
                            b, seed, rows_log, lr, exact,
                        )
                    },
                );
            }

            #[test]
            fn dead_relu_layer_freezes_itself_and_earlier_layers() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("dead_relu_layer_freezes_itself_and_earlier_layers"),
                    file!(),
                    $make,
                    &["train"],
                    4,
                    (0u64..1000, 0usize..2, 1e-4f64..1.0),
                    |b, (seed, dead_layer, lr)| {
                        invariants::dead_relu_layer_freezes_on_a_seeded_regressor::<$scalar>(
                            b, seed, dead_layer, lr,
                        )
                    },
                );
            }

            #[test]
            fn sigmoid_derivative_is_at_most_exp_minus_abs() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("sigmoid_derivative_is_at_most_exp_minus_abs"),
                    file!(),
                    $make,
                    &["sigmoid", "sigmoid_backward"],
                    32,
                    prop_oneof![-120.0f64..120.0, -20.0f64..20.0],
                    |b, z| {
                        let z = <$scalar as $crate::Scalar>::narrow(z);
                        let exact = <$scalar as $crate::Scalar>::UNIT_ROUNDOFF < 1e-10;
                        invariants::sigmoid_derivative_is_at_most_exp_minus_abs::<$scalar>(b, z)?;
                        invariants::sigmoid_derivative_vanishes_exactly_where_sigmoid_rounds_to_one::<$scalar>(
                            b, z, exact,
                        )
                    },
                );
            }

            #[test]
            fn std_gradient_has_norm_inverse_sqrt_n_minus_c() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("std_gradient_has_norm_inverse_sqrt_n_minus_c"),
                    file!(),
                    $make,
                    &["std_corrected", "std_corrected_backward"],
                    24,
                    (
                        (2usize..60).prop_flat_map(|n| {
                            $crate::proptest::collection::vec(-1.0f64..1.0, n)
                        }),
                        prop_oneof![Just(1.0f64), Just(1e-3), Just(1e-6), Just(1e3)],
                        0usize..2,
                        -1e3f64..1e3,
                    ),
                    |b, (values, scale, correction, constant)| {
                        let values: $crate::ndarray::Array1<$scalar> = values
                            .iter()
                            .map(|v| <$scalar as $crate::Scalar>::narrow(scale * v))
                            .collect();
                        invariants::std_gradient_has_norm_inverse_sqrt_n_minus_c::<$scalar>(
                            b,
                            values.view(),
                            correction,
                        )?;
                        invariants::std_and_its_gradient_vanish_at_constant_input::<$scalar>(
                            b,
                            <$scalar as $crate::Scalar>::narrow(constant),
                            values.len(),
                            correction,
                        )
                    },
                );
            }

            #[test]
            fn gradient_descent_on_a_quadratic_follows_one_minus_rate_times_curvature() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("gradient_descent_on_a_quadratic_follows_one_minus_rate_times_curvature"),
                    file!(),
                    $make,
                    &["sgd_step"],
                    12,
                    (
                        prop_oneof![1e-3f64..=0.999, 1.001f64..=1.999, 2.001f64..=2.5],
                        -3.0f64..=3.0,
                        -2.0f64..=1.0,
                    ),
                    |b, (eta_lambda, log_lambda, log_start)| {
                        let lambda = 10f64.powf(log_lambda);
                        invariants::gradient_descent_on_a_quadratic_follows_one_minus_rate_times_curvature::<$scalar>(
                            b,
                            eta_lambda / lambda,
                            lambda,
                            10f64.powf(log_start),
                        )
                    },
                );
            }

            #[test]
            fn momentum_stability_threshold_separates_convergence() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("momentum_stability_threshold_separates_convergence"),
                    file!(),
                    $make,
                    &["sgd_step"],
                    3,
                    (prop_oneof![Just(0.0f64), Just(0.5), Just(0.9)], -2.0f64..=2.0),
                    |b, (momentum, log_lambda)| {
                        invariants::momentum_stability_threshold_separates_convergence::<$scalar>(
                            b,
                            momentum,
                            10f64.powf(log_lambda),
                        )
                    },
                );
            }

            #[test]
            fn adam_on_a_quadratic_does_not_settle() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("adam_on_a_quadratic_does_not_settle"),
                    file!(),
                    $make,
                    &["adam_step"],
                    1,
                    (0.0f64..=3.0, -2.0f64..=2.0, -4.0f64..=-2.0, -10i32..=10, -10i32..=10),
                    |b, (log_start_over_rate, log_lambda, log_rate, scale_lambda, scale_x)| {
                        let rate = 10f64.powf(log_rate);
                        invariants::adam_on_a_quadratic_does_not_settle::<$scalar>(
                            b,
                            (0.9, 0.98),
                            rate * 10f64.powf(log_start_over_rate),
                            10f64.powf(log_lambda),
                            rate,
                            (scale_lambda, scale_x),
                        )
                    },
                );
            }

            #[test]
            fn adam_in_the_eps_regime_is_momentum_sgd() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("adam_in_the_eps_regime_is_momentum_sgd"),
                    file!(),
                    $make,
                    &["adam_step"],
                    6,
                    (
                        -8.0f64..=-6.0,
                        3.0f64..=8.0,
                        $crate::proptest::collection::vec(0.5f64..=2.0, 1..100),
                    ),
                    |b, (log_eps, orders_below_eps, sizes)| {
                        let eps = 10f64.powf(log_eps);
                        let sequence: Vec<f64> = sizes
                            .iter()
                            .map(|s| s * eps * 10f64.powf(-orders_below_eps))
                            .collect();
                        invariants::adam_in_the_eps_regime_is_momentum_sgd::<$scalar>(
                            b,
                            (0.9, 0.98),
                            eps,
                            &sequence,
                        )
                    },
                );
            }

            #[test]
            fn adam_step_is_scale_invariant() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("adam_step_is_scale_invariant"),
                    file!(),
                    $make,
                    &["adam_step"],
                    6,
                    (
                        $crate::proptest::collection::vec((-3.0f64..=3.0, any::<bool>()), 1..100),
                        -20i32..=20,
                        -10.0f64..=-6.0,
                    ),
                    |b, (raw, exponent, log_eps)| {
                        let sequence: Vec<f64> = raw
                            .iter()
                            .map(|&(e, negative)| if negative { -e.exp() } else { e.exp() })
                            .collect();
                        invariants::adam_step_is_scale_invariant::<$scalar>(
                            b,
                            (0.9, 0.999),
                            1e-3,
                            10f64.powf(log_eps),
                            exponent,
                            &sequence,
                        )
                    },
                );
            }

            #[test]
            fn adam_on_a_constant_gradient_drifts_by_the_cumulative_rate() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("adam_on_a_constant_gradient_drifts_by_the_cumulative_rate"),
                    file!(),
                    $make,
                    &["adam_step"],
                    4,
                    (
                        prop_oneof![Just(1e-6f64), Just(0.3), Just(50.0), -100.0f64..=100.0],
                        1u64..=200,
                    ),
                    |b, (gradient, steps)| {
                        invariants::adam_on_a_constant_gradient_drifts_by_the_cumulative_rate::<$scalar>(
                            b, gradient, steps,
                        )
                    },
                );
            }

            #[test]
            fn adam_step_is_bounded_by_c_t() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("adam_step_is_bounded_by_c_t"),
                    file!(),
                    $make,
                    &["adam_step"],
                    4,
                    (
                        prop_oneof![Just((0.9f64, 0.98f64)), Just((0.9, 0.999))],
                        $crate::proptest::collection::vec(-3.0f64..=3.0, 1..40),
                        0.95f64..=1.05,
                        1usize..=150,
                    ),
                    |b, ((beta1, beta2), noise, ratio, run)| {
                        // Random values, then a run growing at ±5 % of β2/β1 (D2's worst case).
                        let growth = ratio * beta2 / beta1;
                        let mut sequence: Vec<f64> = noise.iter().map(|e| e.exp()).collect();
                        sequence.extend((0..run).map(|j| growth.powi(j as i32)));
                        invariants::adam_step_is_bounded_by_c_t::<$scalar>(
                            b,
                            (beta1, beta2),
                            1e-3,
                            &sequence,
                        )
                    },
                );
            }

            #[test]
            fn adam_step_after_silence_is_set_by_the_betas() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("adam_step_after_silence_is_set_by_the_betas"),
                    file!(),
                    $make,
                    &["adam_step"],
                    1,
                    (
                        $crate::proptest::collection::vec(-3.0f64..=3.0, 50),
                        -6.0f64..=6.0,
                    ),
                    |b, (warm, log_spike)| {
                        let warm: Vec<f64> = warm.iter().map(|e| e.exp()).collect();
                        invariants::adam_step_after_silence_is_set_by_the_betas::<$scalar>(
                            b,
                            (0.9, 0.98),
                            &warm,
                            10f64.powf(log_spike),
                            1e-9,
                        )
                    },
                );
            }

            #[test]
            fn adam_drift_under_noam_is_bounded_by_cumulative_rate() {
                harness::run_fixed::<$scalar, _, _>(
                    &name("adam_drift_under_noam_is_bounded_by_cumulative_rate"),
                    $make,
                    &["adam_step"],
                    |b| invariants::adam_drift_under_noam_is_bounded_by_cumulative_rate::<$scalar>(b),
                );
            }

            #[test]
            fn clip_grad_norm_bounds_the_norm() {
                harness::run_property_cases::<$scalar, _, _>(
                    &name("clip_grad_norm_bounds_the_norm"),
                    file!(),
                    $make,
                    &["clip_grad_norm"],
                    24,
                    (
                        $crate::proptest::collection::vec(
                            $crate::proptest::collection::vec(-1.0f64..=1.0, 0..=20),
                            0..=5,
                        ),
                        -8.0f64..=4.0,
                        any::<bool>(),
                        -1e-5f64..=1e-5,
                        prop_oneof![Just(1.0f64), 0.1f64..=10.0],
                    ),
                    |b, (tensors, log_norm, near_boundary, offset, max_norm)| {
                        let raw: f64 = tensors.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
                        let wanted = if near_boundary {
                            max_norm * (1.0 + offset)
                        } else {
                            10f64.powf(log_norm)
                        };
                        let scale = if raw > 0.0 { wanted / raw } else { 1.0 };
                        let tensors: Vec<Vec<f64>> = tensors
                            .into_iter()
                            .map(|t| t.into_iter().map(|v| v * scale).collect())
                            .collect();
                        invariants::clip_grad_norm_bounds_the_norm::<$scalar>(b, &tensors, max_norm)
                    },
                );
            }
        }
    };
}
