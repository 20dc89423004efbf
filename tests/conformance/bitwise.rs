//! Bitwise equality of the OpenCL backend with the reference in the **same** scalar type, for the
//! ops that THEORY.md E1 allows: made only of correctly rounded `+ − ×`, comparisons and
//! selects, in the reference's order, with FP_CONTRACT off (relu and leaky ReLU with their VJPs;
//! add_rows; matmul, whose kernel sums each dot product in the reference's order `p = 0, 1, …` from 0).
//! Also the linear-algebra ops of the same kind: matmul's VJP (products with transposed
//! operands, same order), batched products and their VJP, transpose and the broadcasts
//! (copies), mul_rows and its VJP (`grad_b` sequential over rows), and the axis-0 sums
//! (sequential over rows, as the reference); in f64 also the axis-0 mean and the mean's VJP
//! (one division, correctly rounded in f64). Not the axis-1 sums: their work-group tree has
//! another order. NaN compares equal to NaN (payloads are not specified).

#![cfg(feature = "opencl")]

use mloracle::harness::{default_opencl, run_property};
use mloracle::proptest::test_runner::{TestCaseError, TestCaseResult};
use mloracle::{strategy, Backend, Reference, Result, Scalar};
use ndarray::{Array, Dimension};

/// `Ok` when `actual` and `expected` have the same shape and the same bits everywhere (any NaN
/// equals any NaN).
fn same_bits<T: Scalar, D: Dimension>(
    op: &str,
    actual: Result<Array<T, D>>,
    expected: Result<Array<T, D>>,
) -> TestCaseResult {
    let actual = actual.map_err(|e| TestCaseError::fail(format!("{op}: opencl: {e}")))?;
    let expected = expected.map_err(|e| TestCaseError::fail(format!("{op}: reference: {e}")))?;
    if actual.shape() != expected.shape() {
        return Err(TestCaseError::fail(format!(
            "{op}: shape {:?} != {:?}",
            actual.shape(),
            expected.shape()
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

/// [`same_bits`] for each output of a pair-valued op.
fn same_bits_pair<T: Scalar, D: Dimension, E: Dimension>(
    op: &str,
    actual: Result<(Array<T, D>, Array<T, E>)>,
    expected: Result<(Array<T, D>, Array<T, E>)>,
) -> TestCaseResult {
    let actual = actual.map_err(|e| TestCaseError::fail(format!("{op}: opencl: {e}")))?;
    let expected = expected.map_err(|e| TestCaseError::fail(format!("{op}: reference: {e}")))?;
    same_bits(&format!("{op} (first)"), Ok(actual.0), Ok(expected.0))?;
    same_bits(&format!("{op} (second)"), Ok(actual.1), Ok(expected.1))
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

            #[test]
            fn matmul_backward_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("matmul_backward_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["matmul_backward"],
                    strategy::matmul_backward_operands::<$scalar>(),
                    |b, (x, y, g)| {
                        same_bits_pair(
                            "matmul_backward",
                            b.matmul_backward(x.view(), y.view(), g.view()),
                            Reference.matmul_backward(x.view(), y.view(), g.view()),
                        )
                    },
                );
            }

            #[test]
            fn batched_matmul_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("batched_matmul_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["batched_matmul"],
                    strategy::batched_matmul_operands::<$scalar>(),
                    |b, (x, y)| {
                        same_bits(
                            "batched_matmul",
                            b.batched_matmul(x.view(), y.view()),
                            Reference.batched_matmul(x.view(), y.view()),
                        )
                    },
                );
            }

            #[test]
            fn batched_matmul_backward_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("batched_matmul_backward_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["batched_matmul_backward"],
                    strategy::batched_matmul_backward_operands::<$scalar>(),
                    |b, (x, y, g)| {
                        same_bits_pair(
                            "batched_matmul_backward",
                            b.batched_matmul_backward(x.view(), y.view(), g.view()),
                            Reference.batched_matmul_backward(x.view(), y.view(), g.view()),
                        )
                    },
                );
            }

            #[test]
            fn transpose_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("transpose_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["transpose"],
                    strategy::transpose_input::<$scalar>(),
                    |b, x| {
                        same_bits(
                            "transpose",
                            b.transpose(x.view()),
                            Reference.transpose(x.view()),
                        )
                    },
                );
            }

            #[test]
            fn add_rows_backward_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("add_rows_backward_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["add_rows_backward"],
                    strategy::add_rows_backward_input::<$scalar>(),
                    |b, g| {
                        same_bits_pair(
                            "add_rows_backward",
                            b.add_rows_backward(g.view()),
                            Reference.add_rows_backward(g.view()),
                        )
                    },
                );
            }

            #[test]
            fn mul_rows_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("mul_rows_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["mul_rows"],
                    strategy::mul_rows_inputs::<$scalar>(),
                    |b, (x, v)| {
                        same_bits(
                            "mul_rows",
                            b.mul_rows(x.view(), v.view()),
                            Reference.mul_rows(x.view(), v.view()),
                        )
                    },
                );
            }

            #[test]
            fn mul_rows_backward_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("mul_rows_backward_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["mul_rows_backward"],
                    strategy::mul_rows_backward_inputs::<$scalar>(),
                    |b, (x, v, g)| {
                        same_bits_pair(
                            "mul_rows_backward",
                            b.mul_rows_backward(x.view(), v.view(), g.view()),
                            Reference.mul_rows_backward(x.view(), v.view(), g.view()),
                        )
                    },
                );
            }

            #[test]
            fn sum_axis_0_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("sum_axis_0_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["sum_axis"],
                    strategy::sum_axis_inputs::<$scalar>(),
                    |b, (x, _)| {
                        same_bits(
                            "sum_axis (axis 0)",
                            b.sum_axis(x.view(), 0),
                            Reference.sum_axis(x.view(), 0),
                        )
                    },
                );
            }

            #[test]
            fn sum_axis_backward_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("sum_axis_backward_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["sum_axis_backward"],
                    strategy::axis_backward_inputs::<$scalar>(false),
                    |b, (shape, axis, g)| {
                        same_bits(
                            "sum_axis_backward",
                            b.sum_axis_backward(shape, axis, g.view()),
                            Reference.sum_axis_backward(shape, axis, g.view()),
                        )
                    },
                );
            }
        }
    };
}

bitwise_tests!(opencl_f32, f32);
bitwise_tests!(opencl_f64, f64);

/// f64 only: division is correctly rounded in OpenCL's double table (THEORY.md E1), so the
/// axis-0 mean (sequential sum, then one division) and the mean's VJP are bitwise too.
mod opencl_f64_division {
    use super::*;

    fn name(test: &str) -> String {
        format!("bitwise::opencl_f64_division::{test}")
    }

    #[test]
    fn mean_axis_0_is_bitwise_equal() {
        run_property::<f64, _, _>(
            &name("mean_axis_0_is_bitwise_equal"),
            file!(),
            default_opencl(),
            &["mean_axis"],
            strategy::mean_axis_inputs::<f64>(),
            |b, (x, axis)| {
                if axis != 0 {
                    return Ok(());
                }
                same_bits(
                    "mean_axis (axis 0)",
                    b.mean_axis(x.view(), 0),
                    Reference.mean_axis(x.view(), 0),
                )
            },
        );
    }

    #[test]
    fn mean_axis_backward_is_bitwise_equal() {
        run_property::<f64, _, _>(
            &name("mean_axis_backward_is_bitwise_equal"),
            file!(),
            default_opencl(),
            &["mean_axis_backward"],
            strategy::axis_backward_inputs::<f64>(true),
            |b, (shape, axis, g)| {
                same_bits(
                    "mean_axis_backward",
                    b.mean_axis_backward(shape, axis, g.view()),
                    Reference.mean_axis_backward(shape, axis, g.view()),
                )
            },
        );
    }
}
