//! Bitwise equality of the OpenCL backend with the reference in the **same** scalar type, for the
//! ops that THEORY.md E1 allows: made only of correctly rounded `+ − ×`, comparisons and
//! selects, in the reference's order, with FP_CONTRACT off (relu and leaky ReLU with their VJPs;
//! add_rows; matmul, whose kernel sums each dot product in the reference's order `p = 0, 1, …` from 0).
//! NaN compares equal to NaN (payloads are not specified).

#![cfg(feature = "opencl")]

use mloracle::harness::{default_opencl, run_property};
use mloracle::proptest::test_runner::{TestCaseError, TestCaseResult};
use mloracle::{strategy, Backend, Reference, Result, Scalar};
use ndarray::Array2;

/// `Ok` when `actual` and `expected` have the same shape and the same bits everywhere (any NaN
/// equals any NaN).
fn same_bits<T: Scalar>(
    op: &str,
    actual: Result<Array2<T>>,
    expected: Result<Array2<T>>,
) -> TestCaseResult {
    let actual = actual.map_err(|e| TestCaseError::fail(format!("{op}: opencl: {e}")))?;
    let expected = expected.map_err(|e| TestCaseError::fail(format!("{op}: reference: {e}")))?;
    if actual.dim() != expected.dim() {
        return Err(TestCaseError::fail(format!(
            "{op}: shape {:?} != {:?}",
            actual.dim(),
            expected.dim()
        )));
    }
    let differing = actual
        .indexed_iter()
        .zip(expected.iter())
        .find(|((_, a), e)| {
            let (a, e) = (a.widen(), e.widen());
            a.to_bits() != e.to_bits() && !(a.is_nan() && e.is_nan())
        });
    match differing {
        None => Ok(()),
        Some(((index, a), e)) => Err(TestCaseError::fail(format!(
            "{op}<{}>: not bitwise equal at {index:?}: opencl {a:e}, reference {e:e}",
            T::NAME
        ))),
    }
}

macro_rules! bitwise_tests {
    ($suite:ident, $scalar:ty) => {
        mod $suite {
            use super::*;

            fn name(test: &str) -> String {
                format!("bitwise::{}::{test}", stringify!($suite))
            }

            #[test]
            fn relu_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("relu_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["relu"],
                    strategy::activation_input::<$scalar>(),
                    |b, x| same_bits("relu", b.relu(x.view()), Reference.relu(x.view())),
                );
            }

            #[test]
            fn relu_backward_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("relu_backward_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["relu_backward"],
                    strategy::activation_input_with_grad::<$scalar>(),
                    |b, (x, g)| {
                        same_bits(
                            "relu_backward",
                            b.relu_backward(x.view(), g.view()),
                            Reference.relu_backward(x.view(), g.view()),
                        )
                    },
                );
            }

            #[test]
            fn leaky_relu_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("leaky_relu_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["leaky_relu"],
                    (
                        strategy::activation_input::<$scalar>(),
                        strategy::leaky_slope(),
                    ),
                    |b, (x, s)| {
                        let s = <$scalar as Scalar>::narrow(s);
                        same_bits(
                            "leaky_relu",
                            b.leaky_relu(x.view(), s),
                            Reference.leaky_relu(x.view(), s),
                        )
                    },
                );
            }

            #[test]
            fn leaky_relu_backward_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("leaky_relu_backward_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["leaky_relu_backward"],
                    (
                        strategy::activation_input_with_grad::<$scalar>(),
                        strategy::leaky_slope(),
                    ),
                    |b, ((x, g), s)| {
                        let s = <$scalar as Scalar>::narrow(s);
                        same_bits(
                            "leaky_relu_backward",
                            b.leaky_relu_backward(x.view(), g.view(), s),
                            Reference.leaky_relu_backward(x.view(), g.view(), s),
                        )
                    },
                );
            }

            #[test]
            fn add_rows_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("add_rows_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["add_rows"],
                    strategy::add_rows_inputs::<$scalar>(),
                    |b, (x, v)| {
                        same_bits(
                            "add_rows",
                            b.add_rows(x.view(), v.view()),
                            Reference.add_rows(x.view(), v.view()),
                        )
                    },
                );
            }

            #[test]
            fn matmul_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("matmul_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["matmul"],
                    strategy::matmul_operands::<$scalar>(),
                    |b, (x, y)| {
                        same_bits(
                            "matmul",
                            b.matmul(x.view(), y.view()),
                            Reference.matmul(x.view(), y.view()),
                        )
                    },
                );
            }
        }
    };
}

bitwise_tests!(opencl_f32, f32);
bitwise_tests!(opencl_f64, f64);

/// `Ok` when two vectors have the same length and bits (any NaN equals any NaN).
fn same_bits_1d<T: Scalar>(
    op: &str,
    what: &str,
    actual: &ndarray::Array1<T>,
    expected: &ndarray::Array1<T>,
) -> TestCaseResult {
    if actual.len() != expected.len() {
        return Err(TestCaseError::fail(format!(
            "{op} ({what}): length {} != {}",
            actual.len(),
            expected.len()
        )));
    }
    match actual.iter().zip(expected).enumerate().find(|(_, (a, e))| {
        let (a, e) = (a.widen(), e.widen());
        a.to_bits() != e.to_bits() && !(a.is_nan() && e.is_nan())
    }) {
        None => Ok(()),
        Some((i, (a, e))) => Err(TestCaseError::fail(format!(
            "{op}<{}> ({what}): not bitwise equal at {i}: opencl {a:e}, reference {e:e}",
            T::NAME
        ))),
    }
}

/// The optimizer family (THEORY.md E1): an SGD step (plain, momentum, dampening, Nesterov,
/// weight decay) is made of correctly rounded `+ − ×` in the reference's order with the same
/// `T`-rounded scalars, and `clip_grad_value` of comparisons: both bitwise equal to the
/// reference in the same type. (Adam: only in f64, below; clip_grad_norm and std reduce in a
/// different order: within bounds only.)
macro_rules! optim_bitwise_tests {
    ($suite:ident, $scalar:ty) => {
        mod $suite {
            use super::*;

            fn name(test: &str) -> String {
                format!("bitwise::{}::{test}", stringify!($suite))
            }

            #[test]
            fn sgd_step_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("sgd_step_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["sgd_step"],
                    strategy::sgd_inputs::<$scalar>(),
                    |b, (state, theta, g, hyper)| {
                        let actual = b
                            .sgd_step(&state, theta.view(), g.view(), &hyper)
                            .map_err(|e| TestCaseError::fail(format!("opencl: {e}")))?;
                        let expected =
                            Reference
                                .sgd_step(&state, theta.view(), g.view(), &hyper)
                                .map_err(|e| TestCaseError::fail(format!("reference: {e}")))?;
                        same_bits_1d("sgd_step", "parameters", &actual.0, &expected.0)?;
                        same_bits_1d(
                            "sgd_step",
                            "last_step",
                            &actual.1.last_step,
                            &expected.1.last_step,
                        )?;
                        let none = ndarray::Array1::<$scalar>::zeros(0);
                        same_bits_1d(
                            "sgd_step",
                            "momentum buffer",
                            actual.1.momentum_buffer.as_ref().unwrap_or(&none),
                            expected.1.momentum_buffer.as_ref().unwrap_or(&none),
                        )
                    },
                );
            }

            #[test]
            fn clip_grad_value_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("clip_grad_value_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["clip_grad_value"],
                    strategy::clip_value_inputs::<$scalar>(),
                    |b, (grads, c)| {
                        let (mut actual, mut expected) = (grads.clone(), grads);
                        b.clip_grad_value(&mut actual, c)
                            .map_err(|e| TestCaseError::fail(format!("opencl: {e}")))?;
                        Reference
                            .clip_grad_value(&mut expected, c)
                            .map_err(|e| TestCaseError::fail(format!("reference: {e}")))?;
                        for (k, (a, e)) in actual.iter().zip(&expected).enumerate() {
                            same_bits_1d("clip_grad_value", &format!("tensor {k}"), a, e)?;
                        }
                        Ok(())
                    },
                );
            }
        }
    };
}

optim_bitwise_tests!(optim_opencl_f32, f32);
optim_bitwise_tests!(optim_opencl_f64, f64);

/// Adam and AdamW in f64: every operation of the fused kernel (`+ − ×`, `/`, `sqrt`) is
/// correctly rounded in OpenCL's double table, the order is the reference's and the scalars
/// (`1 − β`, bias corrections, `1 − lr·wd`) are the same f64 values: bitwise equal. (In f32
/// the program is not built with `-cl-fp32-correctly-rounded-divide-sqrt`, so `/` may err by
/// 2.5 ulp and `sqrt` by 3: nothing bitwise is claimed there.)
#[test]
fn adam_step_is_bitwise_equal_in_f64() {
    run_property::<f64, _, _>(
        "bitwise::optim_opencl_f64::adam_step_is_bitwise_equal_in_f64",
        file!(),
        default_opencl(),
        &["adam_step"],
        strategy::adam_inputs::<f64>(),
        |b, (state, theta, g, hyper)| {
            let actual = b
                .adam_step(&state, theta.view(), g.view(), &hyper)
                .map_err(|e| TestCaseError::fail(format!("opencl: {e}")))?;
            let expected = Reference
                .adam_step(&state, theta.view(), g.view(), &hyper)
                .map_err(|e| TestCaseError::fail(format!("reference: {e}")))?;
            same_bits_1d("adam_step", "parameters", &actual.0, &expected.0)?;
            same_bits_1d(
                "adam_step",
                "last_step",
                &actual.1.last_step,
                &expected.1.last_step,
            )?;
            same_bits_1d(
                "adam_step",
                "m",
                &actual.1.first_moment,
                &expected.1.first_moment,
            )?;
            same_bits_1d(
                "adam_step",
                "v",
                &actual.1.second_moment,
                &expected.1.second_moment,
            )
        },
    );
}
