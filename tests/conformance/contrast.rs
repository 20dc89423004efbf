//! Contrast: the naive formulas overflow or return inf/NaN exactly where the stable ones stay
//! finite and within bound (THEORY.md A0 (c), A3 (b)–(c)).

use mloracle::conformance::{check_bce_with_logits_mean, check_log_sum_exp_rows};
use mloracle::proptest::prelude::*;
use mloracle::{Backend, Reference};
use ndarray::{Array1, Array2};

/// Naive log-sum-exp, `log(Σ exp x)`, in f32: overflows once an entry exceeds ln(f32::MAX).
fn naive_log_sum_exp(row: &[f32]) -> f32 {
    row.iter().map(|v| v.exp()).sum::<f32>().ln()
}

/// Naive BCE, `−y log σ(z) − (1−y) log(1 − σ(z))`, in f32: `σ` rounds to 1 for z ≥ 24 ln 2.
fn naive_bce(z: f32, y: f32) -> f32 {
    let sigma = 1.0 / (1.0 + (-z).exp());
    -y * sigma.ln() - (1.0 - y) * (1.0 - sigma).ln()
}

#[test]
fn theory_examples_naive_vs_stable() {
    // THEORY.md A0 (c): naive LSE(89, 0) = inf, shifted = 89; naive LSE(-104, -105) = -inf.
    assert_eq!(naive_log_sum_exp(&[89.0, 0.0]), f32::INFINITY);
    assert_eq!(naive_log_sum_exp(&[-104.0, -105.0]), f32::NEG_INFINITY);
    let x = ndarray::array![[89.0f32, 0.0], [-104.0, -105.0]];
    let stable = Backend::<f32>::log_sum_exp_rows(&Reference, x.view()).expect("valid");
    assert_eq!(stable[0], 89.0);
    assert!((stable[1] - (-103.68674)).abs() < 1e-4);
    // THEORY.md A3 (c): naive BCE at z = 17: +inf for y < 1, NaN for y = 1.
    assert_eq!(naive_bce(17.0, 0.0), f32::INFINITY);
    assert!(naive_bce(17.0, 1.0).is_nan());
    assert!(naive_bce(16.0, 0.0).is_finite());
}

/// The OpenCL device, obtained once for this module (one SKIPPED line, not one per case).
#[cfg(feature = "opencl")]
fn device() -> Option<&'static mloracle::OpenCl> {
    static DEVICE: std::sync::OnceLock<Option<mloracle::OpenCl>> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            mloracle::harness::obtain(
                "contrast (OpenCL half)",
                mloracle::harness::default_opencl(),
            )
        })
        .as_ref()
}

fn row_with_large_entry() -> impl Strategy<Value = (Vec<f32>, f32)> {
    (1usize..=300)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(-10.0f32..=10.0, n),
                0..n,
                88.73f32..=1e4,
            )
        })
        .prop_map(|(mut row, i, big)| {
            row[i] = big;
            (row, big)
        })
}

proptest! {
    /// Wherever one entry exceeds ln(f32::MAX) the naive form is +inf, while both stable
    /// backends stay finite and within the derived bound of the f64 reference.
    #[test]
    fn naive_log_sum_exp_overflows_where_stable_does_not((row, _big) in row_with_large_entry()) {
        prop_assert_eq!(naive_log_sum_exp(&row), f32::INFINITY);
        let x = Array2::from_shape_vec((1, row.len()), row).expect("one row");
        check_log_sum_exp_rows(&Reference, x.view())?;
        #[cfg(feature = "opencl")]
        if let Some(backend) = device() {
            check_log_sum_exp_rows::<f32>(backend, x.view())?;
        }
    }

    /// For z ≥ 24 ln 2 (σ rounds to 1 in f32) the naive BCE is +inf (y < 1) or NaN (y = 1); the
    /// stable form is finite and within bound.
    #[test]
    fn naive_bce_fails_where_stable_does_not(z in 16.64f32..=1e4, y in prop_oneof![Just(1.0f32), 0.0f32..0.99]) {
        let naive = naive_bce(z, y);
        prop_assert!(naive.is_infinite() || naive.is_nan(), "naive BCE({z}, {y}) = {naive}");
        let (logits, labels) = (Array1::from(vec![z]), Array1::from(vec![y]));
        check_bce_with_logits_mean(&Reference, logits.view(), labels.view())?;
        #[cfg(feature = "opencl")]
        if let Some(backend) = device() {
            check_bce_with_logits_mean::<f32>(backend, logits.view(), labels.view())?;
        }
    }
}
