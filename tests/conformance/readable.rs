//! A failing check explains itself: op, backend and dtype, shape, worst index, both values,
//! the bound and error/bound, the minimal input, how to rerun just that case, and (with
//! `MLORACLE_DUMP_DIR`) the case's tensors as `.npy` files that parse back.

use mloracle::dump::{self, Dtype};
use mloracle::{harness, reference, strategy, Backend, Result};
use ndarray::{Array2, ArrayView2};

/// Softmax scaled by `1 + 1e-3`: a relative error far above any f32 bound.
struct Scaled;

impl Backend<f32> for Scaled {
    fn name(&self) -> String {
        "scaled".into()
    }
    fn softmax_rows(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        Ok(reference::softmax_rows(x)? * 1.001)
    }
}

#[test]
fn a_failure_names_everything_and_dumps_the_minimal_case() {
    let scratch = std::env::temp_dir().join(format!("mloracle-readable-{}", std::process::id()));
    let dir = scratch.join("dump");
    // The persisted seed goes next to this (scratch) path, not into the repository.
    let source: &'static str =
        Box::leak(format!("{}/tests/readable.rs", scratch.display()).into_boxed_str());
    std::fs::create_dir_all(scratch.join("tests")).expect("scratch dir");
    std::env::set_var(dump::DUMP_DIR_ENV, &dir);
    let outcome = std::panic::catch_unwind(|| {
        harness::run_property::<f32, _, _>(
            "scaled_f32::softmax_rows_matches_reference",
            source,
            Ok(Scaled),
            &["softmax_rows"],
            strategy::logits_matrix::<f32>(),
            |b, x| mloracle::conformance::softmax_rows_matches_reference(b, x.view()),
        )
    });
    std::env::remove_var(dump::DUMP_DIR_ENV);
    let payload = outcome.expect_err("the scaled softmax must fail");
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    for needle in [
        "scaled_f32::softmax_rows_matches_reference failed",
        "softmax_rows: scaled<f32> vs reference<f64>",
        "shape [",
        "worst [",
        "actual ",
        "expected ",
        "> bound",
        "× bound",
        "input: row ",
        "minimal failing input: [[",
        "rerun just this case: PROPTEST_CASES=1 cargo test --release --test readable \
         scaled_f32::softmax_rows_matches_reference",
        "readable.proptest-regressions",
        "tensors of the minimal case: ",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // The dump is the reported minimal case: same shape, and the f64 reference of the dumped
    // `x` is the dumped `expected`; `actual` is it scaled by 1.001 (rounded to f32).
    let case = dir.join("scaled_f32__softmax_rows_matches_reference");
    let read = |name: &str| {
        let bytes = std::fs::read(case.join(format!("{name}.npy"))).expect("dumped");
        dump::parse_npy(&bytes).expect("valid NPY")
    };
    let (x, x_dtype) = read("x");
    let (actual, actual_dtype) = read("actual");
    let (expected, expected_dtype) = read("expected");
    let (bound, bound_dtype) = read("bound");
    assert_eq!(
        (x_dtype, actual_dtype, expected_dtype, bound_dtype),
        (Dtype::F32, Dtype::F32, Dtype::F64, Dtype::F64)
    );
    let shape = x.shape().to_vec();
    assert!(
        text.contains(&format!("shape {shape:?}")),
        "{shape:?} in:\n{text}"
    );
    assert_eq!(actual.shape(), &shape[..]);
    assert_eq!(expected.shape(), &shape[..]);
    assert_eq!(bound.shape(), &shape[..]);
    let x2 = x.into_dimensionality::<ndarray::Ix2>().expect("2-D");
    let again = reference::softmax_rows(x2.view()).expect("valid");
    assert_eq!(again.into_dyn(), expected);
    let scaled = actual
        .iter()
        .zip(expected.iter())
        .filter(|(_, &e)| e > 0.1)
        .all(|(&a, &e)| (a / e - 1.001).abs() < 1e-6);
    assert!(scaled, "actual is not 1.001 × expected");
    let _ = std::fs::remove_dir_all(&scratch);
}
