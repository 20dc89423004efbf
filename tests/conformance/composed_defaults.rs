//! The composed defaults of `Backend` (`mloracle::backend::COMPOSED_OPS`): a backend that
//! implements only the required core passes every composed op's conformance check; one that
//! lacks a part gets `Error::Unsupported` under the composed op's own name (so the suite skips
//! it by name, never passes it); invalid input gives the reference's typed errors, and a part
//! returning a wrong shape gives an error, not a panic.

use mloracle::backend::{unsupported, AttentionGrads, LayerNormGrads, COMPOSED_OPS, OPS};
use mloracle::conformance;
use mloracle::proptest::prelude::*;
use mloracle::proptest::test_runner::{Config, RngAlgorithm, TestCaseResult, TestRng, TestRunner};
use mloracle::reference::models::{TrainingConfig, TrainingRun, TrainingTask};
use mloracle::reference::optim::{AdamHyper, AdamState, SgdHyper, SgdState};
use mloracle::reference::{DropoutOutput, Reduction};
use mloracle::rng::RandomKey;
use mloracle::{harness, strategy, Backend, Error, Reference, Result, Scalar};
use ndarray::{Array1, Array2, Array3, Array4, ArrayView1, ArrayView2, Ix2};

/// The reference behind the required core of `Backend` only: each core op forwards to
/// [`Reference`] unless it is named in `missing`; the composed ops are not forwarded, so they
/// run the trait's composed defaults. With `misshapen_matmul`, `matmul` returns a zero matrix
/// with one row too many (a broken part).
#[derive(Clone, Debug, Default)]
struct CoreOnly {
    missing: Vec<&'static str>,
    misshapen_matmul: bool,
}

impl CoreOnly {
    fn without(missing: &[&'static str]) -> Self {
        CoreOnly {
            missing: missing.to_vec(),
            misshapen_matmul: false,
        }
    }

    fn has<T: Scalar>(&self, op: &'static str) -> Result<()> {
        if self.missing.contains(&op) {
            Err(unsupported::<T>("core-only", op))
        } else {
            Ok(())
        }
    }
}

/// Forward core ops to `Reference` (after [`CoreOnly::has`]).
macro_rules! forward {
    ($(fn $op:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(
            fn $op(&self $(, $arg: $ty)*) -> $ret {
                self.has::<T>(stringify!($op))?;
                Backend::<T>::$op(&Reference $(, $arg)*)
            }
        )*
    };
}

impl<T: Scalar> Backend<T> for CoreOnly {
    fn name(&self) -> String {
        "core-only".to_string()
    }

    fn matmul(&self, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.has::<T>("matmul")?;
        if self.misshapen_matmul {
            return Ok(Array2::zeros((a.nrows() + 1, b.ncols())));
        }
        Backend::<T>::matmul(&Reference, a, b)
    }

    forward! {
        fn log_sum_exp_rows(&self, x: ArrayView2<'_, T>) -> Result<Array1<T>>;
        fn softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn log_softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn relu(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn relu_backward(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn leaky_relu(&self, x: ArrayView2<'_, T>, slope: T) -> Result<Array2<T>>;
        fn leaky_relu_backward(
            &self,
            x: ArrayView2<'_, T>,
            g: ArrayView2<'_, T>,
            slope: T
        ) -> Result<Array2<T>>;
        fn sigmoid(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn sigmoid_backward(&self, y: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn tanh(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn tanh_backward(&self, y: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn gelu(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn gelu_backward(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn add_rows(&self, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>>;
        fn layer_norm(
            &self,
            x: ArrayView2<'_, T>,
            gamma: ArrayView1<'_, T>,
            beta: ArrayView1<'_, T>,
            eps: f64
        ) -> Result<Array2<T>>;
        fn layer_norm_backward(
            &self,
            x: ArrayView2<'_, T>,
            gamma: ArrayView1<'_, T>,
            beta: ArrayView1<'_, T>,
            eps: f64,
            g: ArrayView2<'_, T>
        ) -> Result<LayerNormGrads<T>>;
        fn transpose(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>>;
        fn mul_rows(&self, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>>;
        fn sum_axis(&self, x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>>;
        fn sum_axis_backward(
            &self,
            shape: (usize, usize),
            axis: usize,
            g: ArrayView1<'_, T>
        ) -> Result<Array2<T>>;
        fn softmax_rows_backward(
            &self,
            y: ArrayView2<'_, T>,
            g: ArrayView2<'_, T>
        ) -> Result<Array2<T>>;
        fn log_softmax_rows_backward(
            &self,
            y: ArrayView2<'_, T>,
            g: ArrayView2<'_, T>
        ) -> Result<Array2<T>>;
        fn bce_with_logits(
            &self,
            logits: ArrayView1<'_, T>,
            labels: ArrayView1<'_, T>,
            reduction: Reduction
        ) -> Result<T>;
        fn bce_with_logits_backward(
            &self,
            logits: ArrayView1<'_, T>,
            labels: ArrayView1<'_, T>,
            reduction: Reduction,
            g: T
        ) -> Result<Array1<T>>;
        fn mse(
            &self,
            prediction: ArrayView2<'_, T>,
            target: ArrayView2<'_, T>,
            reduction: Reduction
        ) -> Result<T>;
        fn mse_backward(
            &self,
            prediction: ArrayView2<'_, T>,
            target: ArrayView2<'_, T>,
            reduction: Reduction,
            g: T
        ) -> Result<Array2<T>>;
        fn embedding(&self, table: ArrayView2<'_, T>, ids: ArrayView1<'_, usize>) -> Result<Array2<T>>;
        fn embedding_backward(
            &self,
            vocab: usize,
            ids: ArrayView1<'_, usize>,
            g: ArrayView2<'_, T>
        ) -> Result<Array2<T>>;
        fn dropout(&self, x: ArrayView2<'_, T>, p: f64, key: RandomKey) -> Result<DropoutOutput<T, Ix2>>;
        fn dropout_backward(
            &self,
            g: ArrayView2<'_, T>,
            mask: ArrayView2<'_, bool>,
            scale: T
        ) -> Result<Array2<T>>;
        fn std_corrected(&self, values: ArrayView1<'_, T>, correction: usize) -> Result<T>;
        fn std_corrected_backward(
            &self,
            values: ArrayView1<'_, T>,
            correction: usize,
            g: T
        ) -> Result<Array1<T>>;
        fn sgd_step(
            &self,
            state: &SgdState<T>,
            parameters: ArrayView1<'_, T>,
            gradient: ArrayView1<'_, T>,
            hyper: &SgdHyper
        ) -> Result<(Array1<T>, SgdState<T>)>;
        fn adam_step(
            &self,
            state: &AdamState<T>,
            parameters: ArrayView1<'_, T>,
            gradient: ArrayView1<'_, T>,
            hyper: &AdamHyper
        ) -> Result<(Array1<T>, AdamState<T>)>;
        fn clip_grad_norm(&self, gradients: &mut [Array1<T>], max_norm: f64) -> Result<T>;
        fn clip_grad_value(&self, gradients: &mut [Array1<T>], clip_value: f64) -> Result<()>;
        fn train(
            &self,
            task: &TrainingTask<T>,
            config: &TrainingConfig,
            steps: usize
        ) -> Result<TrainingRun<T>>;
    }
}

fn composed_names() -> Vec<&'static str> {
    COMPOSED_OPS.iter().map(|(op, _)| *op).collect()
}

fn core_names() -> Vec<&'static str> {
    let composed = composed_names();
    OPS.iter()
        .copied()
        .filter(|op| !composed.contains(op))
        .collect()
}

/// Run `check` on 16 deterministic cases of `strategy`; panic with proptest's minimal
/// failing input if one fails.
fn property<S: Strategy>(test: &str, strategy: S, check: impl Fn(S::Value) -> TestCaseResult)
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{test} on the core-only backend: {e}");
    }
}

/// Each composed op passes its conformance property on the core-only backend, in `T`. The
/// `*_matches_reference` functions fail on any error of the backend, `Unsupported` included.
fn composed_ops_match_the_reference<T: Scalar>() {
    let b = CoreOnly::default();
    let g = |v: f64| T::narrow(v);
    property(
        "matmul_backward",
        strategy::matmul_backward_operands::<T>(),
        |(x, y, go)| {
            conformance::matmul_backward_matches_reference(&b, x.view(), y.view(), go.view())
        },
    );
    property(
        "batched_matmul",
        strategy::batched_matmul_operands::<T>(),
        |(x, y)| conformance::batched_matmul_matches_reference(&b, x.view(), y.view()),
    );
    property(
        "batched_matmul_backward",
        strategy::batched_matmul_backward_operands::<T>(),
        |(x, y, go)| {
            conformance::batched_matmul_backward_matches_reference(
                &b,
                x.view(),
                y.view(),
                go.view(),
            )
        },
    );
    property(
        "add_rows_backward",
        strategy::add_rows_backward_input::<T>(),
        |go| conformance::add_rows_backward_matches_reference(&b, go.view()),
    );
    property(
        "mul_rows_backward",
        strategy::mul_rows_backward_inputs::<T>(),
        |(x, v, go)| {
            conformance::mul_rows_backward_matches_reference(&b, x.view(), v.view(), go.view())
        },
    );
    property(
        "mean_axis",
        strategy::mean_axis_inputs::<T>(),
        |(x, axis)| conformance::mean_axis_matches_reference(&b, x.view(), axis),
    );
    property(
        "mean_axis_backward",
        strategy::axis_backward_inputs::<T>(true),
        |(shape, axis, go)| {
            conformance::mean_axis_backward_matches_reference(&b, shape, axis, go.view())
        },
    );
    property(
        "bce_with_logits_mean",
        strategy::bce_inputs::<T>(),
        |(z, y)| conformance::bce_with_logits_mean_matches_reference(&b, z.view(), y.view()),
    );
    property(
        "bce_with_logits_mean_backward",
        (strategy::bce_inputs::<T>(), strategy::grad_output()),
        |((z, y), go)| {
            conformance::bce_with_logits_mean_backward_matches_reference(
                &b,
                z.view(),
                y.view(),
                g(go),
            )
        },
    );
    property(
        "cross_entropy",
        strategy::cross_entropy_inputs::<T>(),
        |(z, t, ignore, r)| {
            conformance::cross_entropy_matches_reference(&b, z.view(), t.view(), ignore, r)
        },
    );
    property(
        "cross_entropy_backward",
        (
            strategy::cross_entropy_inputs::<T>(),
            strategy::grad_output(),
        ),
        |((z, t, ignore, r), go)| {
            conformance::cross_entropy_backward_matches_reference(
                &b,
                z.view(),
                t.view(),
                ignore,
                r,
                g(go),
            )
        },
    );
    property(
        "attention",
        strategy::attention_inputs::<T>(),
        |(q, k, v, m)| {
            conformance::attention_matches_reference(&b, q.view(), k.view(), v.view(), m.view())
        },
    );
    property(
        "attention_backward",
        strategy::attention_backward_inputs::<T>(),
        |((q, k, v, m), go)| {
            conformance::attention_backward_matches_reference(
                &b,
                q.view(),
                k.view(),
                v.view(),
                m.view(),
                go.view(),
            )
        },
    );
}

#[test]
fn composed_ops_match_the_reference_on_the_core_only_backend_f32() {
    composed_ops_match_the_reference::<f32>();
}

#[test]
fn composed_ops_match_the_reference_on_the_core_only_backend_f64() {
    composed_ops_match_the_reference::<f64>();
}

/// Every op answers `Ok` on the harness's probe input (so none is skipped), and the composed
/// ops are the defaults, not forwarded: the bare trait (no op implemented) reports each of them
/// unsupported under its own name.
fn every_op_is_supported_by_the_core<T: Scalar>() {
    for op in OPS {
        if let Err(e) = conformance::probe::<T>(&CoreOnly::default(), op) {
            panic!("{op} on the core-only backend in {}: {e}", T::NAME);
        }
    }
    let bare = CoreOnly::without(&core_names());
    for op in composed_names() {
        match conformance::probe::<T>(&bare, op) {
            Err(Error::Unsupported {
                op: reported,
                reason,
                ..
            }) => {
                assert_eq!(reported, op);
                assert!(reason.starts_with("composed default: needs `"), "{reason}");
            }
            other => panic!("{op} without any core op: {other:?}"),
        }
    }
}

#[test]
fn every_op_is_supported_by_the_core_f32() {
    every_op_is_supported_by_the_core::<f32>();
}

#[test]
fn every_op_is_supported_by_the_core_f64() {
    every_op_is_supported_by_the_core::<f64>();
}

/// For each composed op and each core op: without that core op, the composed op is
/// `Unsupported` under its own name, naming the part, exactly when `COMPOSED_OPS` lists the
/// part; otherwise it still answers `Ok`.
#[test]
fn a_missing_part_makes_exactly_its_composed_ops_unsupported_by_their_own_name() {
    for missing in core_names() {
        let backend = CoreOnly::without(&[missing]);
        for &(op, needs) in COMPOSED_OPS {
            let result = conformance::probe::<f32>(&backend, op);
            if needs.contains(&missing) {
                match result {
                    Err(Error::Unsupported {
                        backend,
                        op: reported,
                        scalar,
                        reason,
                    }) => {
                        assert_eq!(
                            (backend.as_str(), reported, scalar),
                            ("core-only", op, "f32")
                        );
                        assert_eq!(reason, format!("composed default: needs `{missing}`"));
                    }
                    other => panic!("{op} without {missing}: {other:?}"),
                }
            } else if let Err(e) = result {
                panic!("{op} without {missing} (not a part of it): {e}");
            }
        }
    }
}

#[test]
fn attention_and_matmul_backward_without_matmul_are_unsupported_attention_and_matmul_backward() {
    let b = CoreOnly::without(&["matmul"]);
    let q = Array4::<f64>::from_shape_fn((1, 2, 3, 4), |(_, h, i, j)| (h + i + j) as f64 * 0.1);
    let mask = Array2::<f64>::zeros((1, 3));
    let e = Backend::<f64>::attention(&b, q.view(), q.view(), q.view(), mask.view())
        .expect_err("no matmul");
    assert!(
        matches!(&e, Error::Unsupported { op: "attention", reason, .. }
            if reason == "composed default: needs `matmul`"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "core-only: attention is not supported for f64 (composed default: needs `matmul`)"
    );
    let e =
        Backend::<f64>::attention_backward(&b, q.view(), q.view(), q.view(), mask.view(), q.view())
            .expect_err("no matmul");
    assert!(
        matches!(
            e,
            Error::Unsupported {
                op: "attention_backward",
                ..
            }
        ),
        "{e:?}"
    );
    let a = Array2::<f64>::ones((2, 3));
    let e = Backend::<f64>::matmul_backward(&b, a.view(), a.t(), Array2::ones((2, 2)).view())
        .expect_err("no matmul");
    assert!(
        matches!(
            e,
            Error::Unsupported {
                op: "matmul_backward",
                ..
            }
        ),
        "{e:?}"
    );
    // The harness reports them as skipped by these names.
    let skipped: Vec<&str> = harness::unsupported_ops::<f64>(&b, OPS)
        .into_iter()
        .map(|(op, _)| op)
        .collect();
    assert_eq!(
        skipped,
        [
            "matmul",
            "matmul_backward",
            "batched_matmul",
            "batched_matmul_backward",
            "mul_rows_backward",
            "attention",
            "attention_backward"
        ]
    );
    // A part's own reason is kept.
    struct NoF64;
    impl Backend<f64> for NoF64 {
        fn name(&self) -> String {
            "no-f64".into()
        }
        fn matmul(&self, _: ArrayView2<'_, f64>, _: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
            Err(Error::Unsupported {
                backend: "no-f64".into(),
                op: "matmul",
                scalar: "f64",
                reason: "device lacks cl_khr_fp64".into(),
            })
        }
    }
    let e = NoF64
        .matmul_backward(a.view(), a.t(), Array2::ones((2, 2)).view())
        .expect_err("no matmul");
    assert_eq!(
        e.to_string(),
        "no-f64: matmul_backward is not supported for f64 (composed default: needs `matmul`, \
         which is unsupported: device lacks cl_khr_fp64)"
    );
}

/// Invalid input to a composed op gives the reference's typed error (checked before any part
/// is called, so also when a part is missing); no panic.
#[test]
fn shape_errors_of_composed_ops_are_the_references_typed_errors() {
    let full = CoreOnly::default();
    let bare = CoreOnly::without(&core_names());
    let r = Reference;
    let (x23, x32) = (Array2::<f32>::zeros((2, 3)), Array2::<f32>::zeros((3, 2)));
    let (v2, v3) = (Array1::<f32>::zeros(2), Array1::<f32>::zeros(3));
    let a3 = Array3::<f32>::zeros((2, 2, 3));
    let b_bad = Array3::<f32>::zeros((3, 3, 4));
    let q = Array4::<f32>::zeros((1, 2, 3, 4));
    let k = Array4::<f32>::zeros((1, 2, 5, 4));
    let mask4 = Array2::<f32>::zeros((1, 4));
    let targets = Array1::<i64>::zeros(3);
    for b in [&full, &bare] {
        type Case<'a> = (
            &'static str,
            &'a dyn Fn(&dyn Backend<f32>) -> Result<String>,
        );
        let cases: [Case<'_>; 13] = [
            ("matmul_backward", &|b| {
                b.matmul_backward(x23.view(), x32.view(), x23.view())
                    .map(|v| format!("{v:?}"))
            }),
            ("batched_matmul", &|b| {
                b.batched_matmul(a3.view(), b_bad.view())
                    .map(|v| format!("{v:?}"))
            }),
            ("batched_matmul_backward", &|b| {
                b.batched_matmul_backward(a3.view(), b_bad.view(), a3.view())
                    .map(|v| format!("{v:?}"))
            }),
            ("add_rows_backward (total)", &|b| {
                b.add_rows_backward(Array2::zeros((0, 3)).view())
                    .map(|v| format!("{v:?}"))
            }),
            ("mul_rows_backward", &|b| {
                b.mul_rows_backward(x23.view(), v2.view(), x23.view())
                    .map(|v| format!("{v:?}"))
            }),
            ("mean_axis (empty axis)", &|b| {
                b.mean_axis(Array2::zeros((0, 3)).view(), 0)
                    .map(|v| format!("{v:?}"))
            }),
            ("mean_axis (axis 2)", &|b| {
                b.mean_axis(x23.view(), 2).map(|v| format!("{v:?}"))
            }),
            ("mean_axis_backward", &|b| {
                b.mean_axis_backward((2, 3), 0, v2.view())
                    .map(|v| format!("{v:?}"))
            }),
            ("bce_with_logits_mean", &|b| {
                b.bce_with_logits_mean(v2.view(), v3.view())
                    .map(|v| format!("{v:?}"))
            }),
            ("bce_with_logits_mean_backward", &|b| {
                b.bce_with_logits_mean_backward(v2.view(), v2.slice(ndarray::s![..0]), 1.0)
                    .map(|v| format!("{v:?}"))
            }),
            ("cross_entropy", &|b| {
                b.cross_entropy(x23.view(), targets.view(), -100, Reduction::Mean)
                    .map(|v| format!("{v:?}"))
            }),
            ("cross_entropy_backward", &|b| {
                b.cross_entropy_backward(x23.view(), targets.view(), -100, Reduction::Sum, 1.0)
                    .map(|v| format!("{v:?}"))
            }),
            ("attention", &|b| {
                b.attention(q.view(), k.view(), k.view(), mask4.view())
                    .map(|v| format!("{v:?}"))
            }),
        ];
        for (case, call) in cases {
            let expected = call(&r);
            let actual = call(b);
            if case.ends_with("(total)") {
                if b.missing.is_empty() {
                    assert_eq!(actual, expected, "{case}");
                }
                continue;
            }
            let error = expected.expect_err(case);
            assert!(
                matches!(
                    error,
                    Error::ShapeMismatch { .. }
                        | Error::EmptyInput { .. }
                        | Error::InvalidParameter { .. }
                ),
                "{case}: {error:?}"
            );
            assert_eq!(actual, Err(error), "{case} on {:?}", b.missing);
        }
    }
    // attention_backward with a wrongly shaped upstream gradient.
    let v = Array4::<f32>::zeros((1, 2, 5, 6));
    let m = Array2::<f32>::zeros((1, 5));
    let g_bad = Array4::<f32>::zeros((1, 2, 3, 5));
    let call = |b: &dyn Backend<f32>| -> Result<AttentionGrads<f32>> {
        b.attention_backward(q.view(), k.view(), v.view(), m.view(), g_bad.view())
    };
    let expected = call(&r).expect_err("grad_output shape");
    assert!(matches!(
        expected,
        Error::ShapeMismatch {
            op: "attention_backward",
            ..
        }
    ));
    assert_eq!(call(&full).expect_err("shape"), expected);
    assert_eq!(call(&bare).expect_err("shape"), expected);
    // The suite's whole error-parity table holds for the core-only backend.
    if let Err(e) = conformance::errors_match_reference::<f32>(&full) {
        panic!("{e}");
    }
    if let Err(e) = conformance::errors_match_reference::<f64>(&full) {
        panic!("{e}");
    }
}

/// A part that returns a wrongly shaped array makes the composed op fail with
/// `Error::Backend` (a failure of that op), never a panic or an `ndarray` broadcast.
#[test]
fn a_misshapen_part_is_an_error_of_the_composed_op_not_a_panic() {
    let b = CoreOnly {
        misshapen_matmul: true,
        ..CoreOnly::default()
    };
    let ops: Vec<&str> = COMPOSED_OPS
        .iter()
        .filter(|(_, needs)| needs.contains(&"matmul"))
        .map(|(op, _)| *op)
        .collect();
    assert_eq!(ops.len(), 6);
    for op in ops {
        match conformance::probe::<f32>(&b, op) {
            Err(Error::Backend {
                backend,
                op: reported,
                message,
            }) => {
                assert_eq!((backend.as_str(), reported), ("core-only", op));
                assert!(
                    message.starts_with("composed default: `matmul` returned shape ["),
                    "{message}"
                );
            }
            other => panic!("{op} with a misshapen matmul: {other:?}"),
        }
    }
}
