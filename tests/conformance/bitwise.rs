//! Bitwise equality of the OpenCL backend with the reference in the **same** scalar type, for the
//! ops that THEORY.md E1 allows: made only of correctly rounded `+ − ×`, comparisons and
//! selects, in the reference's order, with FP_CONTRACT off (relu and leaky ReLU with their VJPs;
//! add_rows; matmul, whose kernel sums each dot product in the reference's order `p = 0, 1, …` from 0;
//! embedding and its scatter-add VJP, summed in index order from 0; dropout with the same Philox
//! mask and its VJP; the Sum-reduced MSE gradient).
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

            // Gathers, scatter-adds in index order, dropout (same Philox mask, one product) and
            // the Sum-reduced MSE gradient (subtraction, doubling, product: no division).
            #[test]
            fn embedding_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("embedding_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["embedding"],
                    strategy::embedding_inputs::<$scalar>(),
                    |b, (table, ids)| {
                        same_bits(
                            "embedding",
                            b.embedding(table.view(), ids.view()),
                            Reference.embedding(table.view(), ids.view()),
                        )
                    },
                );
            }

            #[test]
            fn embedding_backward_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("embedding_backward_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["embedding_backward"],
                    strategy::embedding_backward_inputs::<$scalar>(),
                    |b, (vocab, ids, g)| {
                        same_bits(
                            "embedding_backward",
                            b.embedding_backward(vocab, ids.view(), g.view()),
                            Reference.embedding_backward(vocab, ids.view(), g.view()),
                        )
                    },
                );
            }

            #[test]
            fn dropout_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("dropout_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["dropout"],
                    strategy::dropout_inputs::<$scalar>(),
                    |b, (x, p, key)| {
                        let device = b.dropout(x.view(), p, key);
                        let reference = Reference.dropout(x.view(), p, key);
                        if let (Ok(d), Ok(r)) = (&device, &reference) {
                            if d.mask != r.mask {
                                return Err(TestCaseError::fail(format!(
                                    "dropout mask differs (p = {p}, key {key:?}, shape {:?})",
                                    x.dim()
                                )));
                            }
                        }
                        same_bits(
                            "dropout",
                            device.map(|o| o.output),
                            reference.map(|o| o.output),
                        )
                    },
                );
            }

            #[test]
            fn dropout_backward_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("dropout_backward_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["dropout_backward"],
                    strategy::dropout_backward_inputs::<$scalar>(),
                    |b, (g, mask, scale)| {
                        same_bits(
                            "dropout_backward",
                            b.dropout_backward(g.view(), mask.view(), scale),
                            Reference.dropout_backward(g.view(), mask.view(), scale),
                        )
                    },
                );
            }

            #[test]
            fn mse_backward_sum_is_bitwise_equal() {
                run_property::<$scalar, _, _>(
                    &name("mse_backward_sum_is_bitwise_equal"),
                    file!(),
                    default_opencl(),
                    &["mse_backward"],
                    (strategy::mse_inputs::<$scalar>(), strategy::grad_output()),
                    |b, ((p, t, _), g)| {
                        let g = <$scalar as Scalar>::narrow(g);
                        let sum = mloracle::reference::Reduction::Sum;
                        same_bits(
                            "mse_backward (Sum)",
                            b.mse_backward(p.view(), t.view(), sum, g),
                            Reference.mse_backward(p.view(), t.view(), sum, g),
                        )
                    },
                );
            }
        }
    };
}

bitwise_tests!(opencl_f32, f32);
bitwise_tests!(opencl_f64, f64);
