//! Seed 003 ("loss reaches exactly 0, then jumps"), the parts of the mechanism that hold for
//! every seed (THEORY.md A4, D1, D2, D4), on the reference. The 100,000-step reproduction of the
//! forum output is `cargo run --release --example seed003`.

use mloracle::proptest::prelude::*;
use mloracle::reference::models::encoder::{Encoder, EncoderBatch, EncoderConfig};
use mloracle::reference::models::{Model, OptimizerConfig, Trainer, TrainingConfig};
use mloracle::reference::optim::{AdamHyper, GradientMode, LearningRateSchedule};
use mloracle::reference::{self, Reduction};
use mloracle::tolerance::{self, ArithModel};
use mloracle::Scalar;
use ndarray::{array, Array1, Array2};

proptest! {
    /// THEORY.md A4 (d)(ii), f32 only: for a two-class margin m ≥ 24 ln 2 + 2 ulp the f32
    /// cross-entropy (PyTorch's `log` form) is **exactly 0** while the other-class gradient is
    /// `e^{−m}/(N(1 + e^{−m}))` within `(m + 2k_e + 2k_d + 2)u` relative (`k_e = 3`, `k_d = 2.5`:
    /// the OpenCL budgets, which the host libm meets), i.e. loss 0 does not mean gradient 0.
    #[test]
    fn f32_cross_entropy_is_exactly_zero_while_its_gradient_is_not(
        margins in prop::collection::vec(16.7f64..=80.0, 1..=4), offset in -5.0f64..=5.0,
    ) {
        let n = margins.len();
        let logits = Array2::from_shape_fn((n, 2), |(i, j)| f32::narrow(if j == 0 { offset + margins[i] } else { offset }));
        let targets = Array1::from(vec![0i64; n]);
        let loss = reference::cross_entropy(logits.view(), targets.view(), -100, Reduction::Mean)?;
        prop_assert_eq!(loss, 0.0f32, "margins {:?}", margins);
        let grad = reference::cross_entropy_backward(logits.view(), targets.view(), -100, Reduction::Mean, 1.0)?;
        let u = f32::UNIT_ROUNDOFF;
        for i in 0..n {
            let m = f64::from(logits[[i, 0]]) - f64::from(logits[[i, 1]]);
            let expected = (-m).exp() / (n as f64 * (1.0 + (-m).exp()));
            let relative = (m + 2.0 * 3.0 + 2.0 * 2.5 + 2.0) * u;
            let got = f64::from(grad[[i, 1]]);
            prop_assert!(got > 0.0, "row {}: gradient {} at margin {}", i, got, m);
            prop_assert!((got - expected).abs() <= relative * expected, "row {}: {:e} vs {:e}", i, got, expected);
        }
    }
}

/// Below 24 ln 2 the f32 loss is positive (THEORY.md A4 (d)(iii)), at least 2 ulp away.
#[test]
fn f32_cross_entropy_is_positive_below_the_threshold() {
    for m in [1.0f32, 8.0, 16.0, 16.6] {
        let logits = array![[m, 0.0f32]];
        let loss =
            reference::cross_entropy(logits.view(), array![0i64].view(), -100, Reduction::Mean)
                .expect("valid");
        assert!(loss > 0.0, "margin {m}: loss {loss}");
    }
}

fn seed003_trainer(seed: u64, mode: GradientMode) -> Trainer<f32, Encoder<f32>> {
    let training = TrainingConfig {
        optimizer: OptimizerConfig::Adam(AdamHyper::new(1.0, 0.9, 0.98, 1e-9)),
        base_learning_rate: 1.0,
        schedule: LearningRateSchedule::Noam {
            model_size: 32,
            factor: 1.0,
            warmup_steps: 3000,
        },
        clip_grad_norm: Some(1.0),
        gradient_mode: mode,
    };
    Trainer::new(
        Encoder::<f32>::new(EncoderConfig::seed003(seed)).expect("valid"),
        training,
    )
    .expect("valid")
}

fn seed003_batch() -> EncoderBatch {
    EncoderBatch {
        ids: array![[1, 0], [0, 1]],
        attention_mask: None,
        targets: Array1::from(vec![0, 1, 1, 0]),
    }
}

/// THEORY.md D2/D4 at loop level, for seeds 1–3, with and without zeroing: over 1,200 steps of
/// seed 003's loop every coordinate drifts by at most
/// ```text
/// |θ_K − θ_0| ≤ C_∞·Σ_{i<K} lr_i·(1 + (τ + τ_β)u) + K·u·max|θ|
/// ```
/// (`C_∞ = 1.6977` for (0.9, 0.98); `τ` = `tolerance::adam_step_rounding_factor`; `τ_β =
/// (3/2)(1 + r/(1 − r))`, `r = β1²/β2`, for the betas rounded to f32 — the open point in
/// `tolerance::adam_step`'s doc; the last term is the rounding of each `θ − s`). Without
/// zeroing the loss also reaches exactly 0 within those steps (first zero near step 600 for
/// every seed tried; with zeroing it comes later, ~1300 in THEORY.md D1), and without
/// zeroing the stored gradient keeps norm ≈ 1 after the first zero (D1: the clipped
/// running sum, not the vanishing fresh gradient, is what Adam sees).
#[test]
fn seed003_loop_drift_is_bounded_by_cumulative_learning_rate() {
    const STEPS: usize = 1200;
    let batch = seed003_batch();
    let (beta1, beta2) = (0.9, 0.98);
    let limit = tolerance::adam_step_factor_limit(beta1, beta2).expect("β1² < β2");
    let r = beta1 * beta1 / beta2;
    let tau = tolerance::adam_step_rounding_factor(beta1, beta2) + 1.5 * (1.0 + r / (1.0 - r));
    let u = ArithModel::of::<f32>().unit_roundoff;
    for seed in 1..=3u64 {
        for mode in [GradientMode::Accumulate, GradientMode::ZeroEachStep] {
            let mut trainer = seed003_trainer(seed, mode);
            let start: Vec<f64> = trainer
                .model
                .parameters()
                .iter()
                .flat_map(|p| p.iter().map(|&v| f64::from(v)))
                .collect();
            let (mut lr_sum, mut max_theta, mut first_zero, mut stored_norms) =
                (0.0f64, 0.0f64, None, Vec::new());
            for i in 0..STEPS {
                let report = trainer.step(&batch).expect("step");
                lr_sum += f64::from(f32::narrow(report.learning_rate));
                if first_zero.is_none() && report.loss == 0.0 {
                    first_zero = Some(i);
                }
                if first_zero.is_some() && mode == GradientMode::Accumulate {
                    let norm: f64 = trainer
                        .stored_gradients()
                        .iter()
                        .flat_map(|g| g.iter())
                        .map(|&v| f64::from(v).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    stored_norms.push(norm);
                }
                for p in trainer.model.parameters() {
                    max_theta = p.iter().fold(max_theta, |m, &v| m.max(f64::from(v).abs()));
                }
            }
            let now: Vec<f64> = trainer
                .model
                .parameters()
                .iter()
                .flat_map(|p| p.iter().map(|&v| f64::from(v)))
                .collect();
            let bound = limit * lr_sum * (1.0 + tau * u) + STEPS as f64 * u * max_theta;
            let worst = start
                .iter()
                .zip(&now)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                worst <= bound,
                "seed {seed}, {mode:?}: drift {worst} > C_∞·Σlr = {bound}"
            );
            if mode == GradientMode::Accumulate {
                assert!(
                    first_zero.is_some(),
                    "seed {seed}: loss never exactly 0 in {STEPS} steps"
                );
                let below = stored_norms.iter().filter(|&&n| n < 0.99).count();
                assert!(below * 10 < stored_norms.len().max(1), "seed {seed}: stored gradient norm fell below 0.99 in {below} of {} steps after the first zero", stored_norms.len());
            }
        }
    }
}
