//! The reference models: every parameter gradient against central differences (f64), the loss
//! decreases on a learnable task, gradient accumulation is exact, and seed 003's configuration
//! is a few lines.

use mloracle::gradcheck::check_vjp;
use mloracle::proptest::prelude::*;
use mloracle::reference::models::encoder::{Encoder, EncoderBatch, EncoderConfig, EncoderHead};
use mloracle::reference::models::mlp::{Activation, Mlp, MlpBatch, MlpConfig, MlpLoss};
use mloracle::reference::models::{Model, OptimizerConfig, Trainer, TrainingConfig};
use mloracle::reference::optim::{AdamHyper, GradientMode, LearningRateSchedule, SgdHyper};
use mloracle::reference::Reduction;
use ndarray::{Array1, Array2};

/// Flatten all parameters into one vector (the gradient check's `x`).
fn flat<T: Copy>(tensors: &[Array1<T>]) -> Vec<T> {
    tensors.iter().flat_map(|t| t.iter().copied()).collect()
}

/// Split a flat vector back into tensors of the given lengths.
fn split(values: &[f64], lengths: &[usize]) -> Vec<Array1<f64>> {
    let mut offset = 0;
    lengths
        .iter()
        .map(|&n| {
            let t = Array1::from(values[offset..offset + n].to_vec());
            offset += n;
            t
        })
        .collect()
}

/// Check every parameter gradient of `model` along one direction. `rounding_chain` bounds the
/// roundings on the longest path from a parameter to the loss (see each caller).
fn gradient_check<M: Model<f64> + Clone>(
    model: &M,
    batch: &M::Batch,
    step: u64,
    tangent_seed: u64,
    rounding_chain: usize,
) -> Result<f64, TestCaseError> {
    let (_, gradients) = model
        .loss_and_gradients(batch, step)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let lengths: Vec<usize> = model.parameters().iter().map(Array1::len).collect();
    let x = flat(model.parameters());
    let tangent: Vec<f64> = (0..x.len())
        .map(|i| (((i as u64 + 1) * 2654435761 + tangent_seed * 97) % 2001) as f64 / 1000.0 - 1.0)
        .collect();
    let loss_at = |theta: &[f64]| -> Vec<f64> {
        let mut moved = model.clone();
        moved
            .parameters_mut()
            .clone_from_slice(&split(theta, &lengths));
        vec![moved
            .loss_and_gradients(batch, step)
            .map(|(l, _)| l)
            .unwrap_or(f64::NAN)]
    };
    let check = check_vjp(
        &loss_at,
        &x,
        &tangent,
        &[1.0],
        &flat(&gradients),
        rounding_chain,
    );
    if check.passes() {
        Ok(check.error_over_bound())
    } else if !check.resolved {
        // The loss has a feature narrower than any admissible step here (a LayerNorm row of
        // almost zero variance: hidden 4 under dropout 0.3 can leave one); see
        // `mloracle::gradcheck`'s "Resolution". Such a case proves nothing either way.
        Err(TestCaseError::reject(check.to_string()))
    } else {
        Err(TestCaseError::fail(check.to_string()))
    }
}

fn mlp_config(widths: Vec<usize>, hidden: Activation, loss: MlpLoss, seed: u64) -> MlpConfig {
    let output_activation = if loss == MlpLoss::BceWithLogits {
        Activation::Identity
    } else {
        Activation::Sigmoid
    };
    MlpConfig {
        widths,
        hidden_activation: hidden,
        output_activation,
        loss,
        seed,
    }
}

fn mlp_batch(n: usize, d_in: usize, d_out: usize, seed: u64) -> MlpBatch<f64> {
    let value =
        |i: usize, k: u64| (((i as u64 + 3) * 40503 + seed * 7 + k) % 997) as f64 / 498.5 - 1.0;
    MlpBatch {
        inputs: Array2::from_shape_fn((n, d_in), |(i, j)| 2.0 * value(i * d_in + j, 1)),
        targets: Array2::from_shape_fn((n, d_out), |(i, j)| (value(i * d_out + j, 2) + 1.0) / 2.0),
    }
}

fn encoder_config(
    head: EncoderHead,
    layers: usize,
    causal: bool,
    dropout: f64,
    seed: u64,
) -> EncoderConfig {
    EncoderConfig {
        vocab: 5,
        hidden: 4,
        heads: 2,
        layers,
        intermediate: 6,
        max_positions: 8,
        dropout,
        layer_norm_eps: 1e-5,
        causal,
        token_embedding_std: 1.0,
        head,
        seed,
    }
}

fn encoder_batch(batch: usize, seq: usize, head: EncoderHead, seed: u64) -> EncoderBatch {
    let ids = Array2::from_shape_fn((batch, seq), |(b, s)| (b * 7 + s * 3 + seed as usize) % 5);
    let targets = match head {
        EncoderHead::Pooled { classes } => Array1::from_shape_fn(batch, |b| (b % classes) as i64),
        EncoderHead::Token { classes } => {
            Array1::from_shape_fn(batch * seq, |i| (i % classes) as i64)
        }
        EncoderHead::MaskedLm => {
            Array1::from_shape_fn(
                batch * seq,
                |i| if i % 2 == 0 { (i % 5) as i64 } else { -100 },
            )
        }
    };
    let attention_mask =
        (seq > 1).then(|| Array2::from_shape_fn((batch, seq), |(b, s)| !(b == 1 && s == seq - 1)));
    EncoderBatch {
        ids,
        attention_mask,
        targets,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// MLP: ⟨∇θ L, t⟩ against central differences of L. Rounding chain: each loss term passes
    /// through L dot products of length ≤ max width and the final sum over n·d_L terms, so
    /// k = 4·(Σ widths + n·d_L) covers every rounding on the path.
    #[test]
    fn mlp_gradients_match_finite_differences(
        widths in prop::collection::vec(1usize..=5, 2..=4),
        hidden in prop_oneof![Just(Activation::Relu), Just(Activation::LeakyRelu(0.01)), Just(Activation::Tanh), Just(Activation::Sigmoid)],
        loss in prop_oneof![Just(MlpLoss::BceWithLogits), Just(MlpLoss::Mse(Reduction::Sum)), Just(MlpLoss::Mse(Reduction::Mean))],
        n in 1usize..=4, seed in 0u64..1000,
    ) {
        let model = Mlp::<f64>::new(mlp_config(widths.clone(), hidden, loss, seed))?;
        let batch = mlp_batch(n, widths[0], *widths.last().expect("≥ 2 widths"), seed);
        let k = 4 * (widths.iter().sum::<usize>() + n * widths.last().copied().unwrap_or(1));
        gradient_check(&model, &batch, 0, seed, k)?;
    }

    /// Encoder (every head, causal or not, with dropout and padding): ⟨∇θ L, t⟩ against central
    /// differences. Rounding chain: k = 64·L·(d + intermediate + seq) + 64·(batch·seq): each
    /// layer chains projections (length d), attention (length seq), LayerNorm (length d), the
    /// FFN (d and intermediate); the constant 64 counts the elementwise steps per layer.
    #[test]
    fn encoder_gradients_match_finite_differences(
        head in prop_oneof![Just(EncoderHead::Token { classes: 3 }), Just(EncoderHead::MaskedLm), Just(EncoderHead::Pooled { classes: 2 })],
        layers in 1usize..=2, causal in any::<bool>(), dropout in prop_oneof![Just(0.0), Just(0.3)],
        batch in 1usize..=2, seq in 1usize..=3, seed in 0u64..1000, step in 0u64..5,
    ) {
        let config = encoder_config(head, layers, causal, dropout, seed);
        let model = Encoder::<f64>::new(config)?;
        let data = encoder_batch(batch, seq, head, seed);
        let k = 64 * layers * (4 + 6 + seq) + 64 * batch * seq;
        gradient_check(&model, &data, step, seed, k)?;
    }
}

#[test]
fn mlp_learns_a_separable_task_in_f32_and_f64() {
    fn run<T: mloracle::Scalar>() -> (f64, f64) {
        let config = MlpConfig {
            widths: vec![2, 8, 1],
            hidden_activation: Activation::LeakyRelu(0.01),
            output_activation: Activation::Identity,
            loss: MlpLoss::BceWithLogits,
            seed: 7,
        };
        let inputs = Array2::from_shape_fn((16, 2), |(i, j)| {
            T::narrow(((i * 5 + j * 3) % 7) as f64 / 3.5 - 1.0)
        });
        let targets = Array2::from_shape_fn((16, 1), |(i, _)| {
            if inputs[[i, 0]] > inputs[[i, 1]] {
                T::one()
            } else {
                T::zero()
            }
        });
        let batch = MlpBatch { inputs, targets };
        let mut trainer = Trainer::new(
            Mlp::<T>::new(config).expect("valid"),
            TrainingConfig::adam(0.05),
        )
        .expect("valid");
        let trace = trainer.train(&batch, 200).expect("trains");
        (trace[0].widen(), trace[199].widen())
    }
    for (first, last) in [run::<f32>(), run::<f64>()] {
        assert!(last < 0.5 * first, "loss {first} → {last}");
    }
}

#[test]
fn encoder_learns_seed003_copy_task_in_f32_and_f64() {
    fn run<T: mloracle::Scalar>() -> (f64, f64) {
        let mut config = EncoderConfig::seed003(42);
        config.dropout = 0.0;
        let batch = EncoderBatch {
            ids: ndarray::array![[1, 0], [0, 1]],
            attention_mask: None,
            targets: Array1::from(vec![0, 1, 1, 0]),
        };
        let mut trainer = Trainer::new(
            Encoder::<T>::new(config).expect("valid"),
            TrainingConfig::adam(1e-2),
        )
        .expect("valid");
        let trace = trainer.train(&batch, 60).expect("trains");
        (trace[0].widen(), trace[59].widen())
    }
    for (first, last) in [run::<f32>(), run::<f64>()] {
        assert!(last < 0.1 * first, "loss {first} → {last}");
    }
}

/// Without zeroing, the optimizer sees the running sum of the fresh gradients: with SGD at lr 0
/// (parameters frozen) two steps store exactly fresh(step 0) + fresh(step 1), bitwise; with
/// zeroing they store fresh(step 1).
#[test]
fn accumulation_stores_the_exact_sum_of_fresh_gradients() {
    let config = EncoderConfig::seed003(3);
    let model = Encoder::<f32>::new(config).expect("valid");
    let batch = EncoderBatch {
        ids: ndarray::array![[1, 0], [0, 1]],
        attention_mask: None,
        targets: Array1::from(vec![0, 1, 1, 0]),
    };
    let (_, g0) = model.loss_and_gradients(&batch, 0).expect("valid");
    let (_, g1) = model.loss_and_gradients(&batch, 1).expect("valid");
    for (mode, expected) in [
        (
            GradientMode::Accumulate,
            g0.iter().zip(&g1).map(|(a, b)| a + b).collect::<Vec<_>>(),
        ),
        (GradientMode::ZeroEachStep, g1.clone()),
    ] {
        let training = TrainingConfig {
            optimizer: OptimizerConfig::Sgd(SgdHyper::plain(0.0)),
            base_learning_rate: 0.0,
            schedule: LearningRateSchedule::Constant,
            clip_grad_norm: None,
            gradient_mode: mode,
        };
        let mut trainer = Trainer::new(model.clone(), training).expect("valid");
        trainer.step(&batch).expect("step 0");
        trainer.step(&batch).expect("step 1");
        let stored = trainer.stored_gradients();
        for (s, e) in stored.iter().zip(&expected) {
            assert!(
                s.iter()
                    .zip(e.iter())
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{mode:?}"
            );
        }
    }
}

/// Seed 003's whole training set-up, as the forum script has it.
#[test]
fn seed003_configuration_is_a_few_lines() {
    let model = Encoder::<f32>::new(EncoderConfig::seed003(42)).expect("valid");
    let batch = EncoderBatch {
        ids: ndarray::array![[1, 0], [0, 1]],
        attention_mask: None,
        targets: Array1::from(vec![0, 1, 1, 0]),
    };
    let training = TrainingConfig {
        optimizer: OptimizerConfig::Adam(AdamHyper::new(1.0, 0.9, 0.98, 1e-9)),
        base_learning_rate: 1.0,
        schedule: LearningRateSchedule::Noam {
            model_size: 32,
            factor: 1.0,
            warmup_steps: 3000,
        },
        clip_grad_norm: Some(1.0),
        gradient_mode: GradientMode::Accumulate,
    };
    let mut trainer = Trainer::new(model, training).expect("valid");
    let first = trainer.step(&batch).expect("step");
    assert!(
        (first.learning_rate - 1.0758287e-6).abs() < 1e-12,
        "Noam lr_0 = rate(1)"
    );
    assert!(first.gradient_norm.is_some());
    let trace = trainer.train(&batch, 20).expect("trains");
    assert!(trace.iter().all(|l| l.is_finite()));
    assert_eq!(
        trainer.model.parameter_names().len(),
        trainer.model.parameters().len(),
        "one name per parameter tensor"
    );
}

/// A case proptest once shrank to (Token head, 2 layers, causal, dropout 0.3, batch 1, seq 1,
/// seed 380, step 2): ⟨VJP, t⟩ = 2.197e9 against a central difference of 2.239e7. The
/// difference quotients at h and 2h disagree with each other as much as with the VJP, so the
/// point is not resolved by any admissible step and the check must say so, not fail the VJP.
#[test]
fn an_unresolvable_encoder_case_is_reported_as_such() {
    let head = EncoderHead::Token { classes: 3 };
    let model = Encoder::<f64>::new(encoder_config(head, 2, true, 0.3, 380)).expect("valid");
    let data = encoder_batch(1, 1, head, 380);
    let k = 64 * 2 * (4 + 6 + 1) + 64;
    match gradient_check(&model, &data, 2, 380, k) {
        Ok(ratio) => eprintln!("seed-380 case resolved and passes at {ratio:.3}× bound"),
        Err(TestCaseError::Reject(why)) => eprintln!("seed-380 case not resolved: {why}"),
        Err(e) => panic!("a resolved failure: {e}"),
    }
}
