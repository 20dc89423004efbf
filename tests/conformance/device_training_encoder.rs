//! Device-resident training of the BERT-like encoder (`src/opencl/train/encoder.rs`) against the
//! reference: one step from an identical state, 100-step trajectories, bitwise determinism, and
//! planted wiring bugs that the composite bound of `tolerance::training` must catch.
//!
//! Known failure (reported, the bound is not widened here): the key bias `layer{l}.k.bias` has a
//! gradient that is exactly 0 in exact arithmetic (softmax is invariant to the per-query constant
//! `q_i·b_k`), so its f32/f64 values are pure rounding noise and its Adam step is
//! `lr·g/(|g| + eps)` of that noise; the composite bound's `SAFETY·E_32` (one realisation of the
//! noise) does not cover another realisation. Every other tensor stays within 0.14 of the bound
//! after one step and 1.03 after 100 (f32, pooled head).
//!
//! Sizes are small (vocab 11, d = 8, 2 heads, 2 layers, FFN 16, batch 3 × seq 5) so a 100-step
//! trajectory of the reference in f32 and f64 plus the device run stays within seconds.

use std::time::Instant;

use mloracle::conformance::training::{check_training, TrainingAgreement, TrainingFailure};
use mloracle::harness::{default_opencl, obtain, skip};
use mloracle::opencl::train::DeviceTrainer;
use mloracle::reference::models::encoder::{Encoder, EncoderBatch, EncoderConfig, EncoderHead};
use mloracle::reference::models::{
    Model, OptimizerConfig, Trainer, TrainingConfig, TrainingRun, TrainingTask,
};
use mloracle::reference::optim::{AdamHyper, GradientMode, LearningRateSchedule, SgdHyper};
use mloracle::{Backend, OpenCl, Result, Scalar};
use ndarray::{Array1, Array2};

/// One training scenario: the model's shape and the loop's settings.
#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    head: EncoderHead,
    causal: bool,
    dropout: f64,
    padding: bool,
    training: TrainingConfig,
}

fn adam(lr: f64, clip: Option<f64>, mode: GradientMode) -> TrainingConfig {
    TrainingConfig {
        optimizer: OptimizerConfig::Adam(AdamHyper::new(lr, 0.9, 0.98, 1e-9)),
        base_learning_rate: lr,
        schedule: LearningRateSchedule::Constant,
        clip_grad_norm: clip,
        gradient_mode: mode,
    }
}

fn sgd(lr: f64, momentum: f64, clip: Option<f64>, mode: GradientMode) -> TrainingConfig {
    let mut hyper = SgdHyper::plain(lr);
    hyper.momentum = momentum;
    TrainingConfig {
        optimizer: OptimizerConfig::Sgd(hyper),
        base_learning_rate: lr,
        schedule: LearningRateSchedule::Constant,
        clip_grad_norm: clip,
        gradient_mode: mode,
    }
}

/// Every head, causal and not, with dropout and padding, SGD (plain, momentum) and Adam,
/// clipping on and off, gradients zeroed and accumulated (seed 003's loop).
fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "token_causal_dropout_adam_clip_accumulate",
            head: EncoderHead::Token { classes: 2 },
            causal: true,
            dropout: 0.1,
            padding: false,
            training: adam(1e-3, Some(1.0), GradientMode::Accumulate),
        },
        Case {
            name: "masked_lm_padding_dropout_sgd_momentum",
            head: EncoderHead::MaskedLm,
            causal: false,
            dropout: 0.1,
            padding: true,
            training: sgd(0.02, 0.9, None, GradientMode::ZeroEachStep),
        },
        Case {
            name: "pooled_padding_adam_clip",
            head: EncoderHead::Pooled { classes: 3 },
            causal: false,
            dropout: 0.0,
            padding: true,
            training: adam(3e-3, Some(0.5), GradientMode::ZeroEachStep),
        },
        Case {
            name: "masked_lm_causal_padding_dropout_sgd_clip_accumulate",
            head: EncoderHead::MaskedLm,
            causal: true,
            dropout: 0.2,
            padding: true,
            training: sgd(0.05, 0.0, Some(1.0), GradientMode::Accumulate),
        },
    ]
}

fn encoder_config(case: &Case, vocab: usize, hidden: usize, heads: usize) -> EncoderConfig {
    EncoderConfig {
        vocab,
        hidden,
        heads,
        layers: 2,
        intermediate: 2 * hidden,
        max_positions: 8,
        dropout: case.dropout,
        layer_norm_eps: 1e-12,
        causal: case.causal,
        token_embedding_std: 1.0,
        head: case.head,
        seed: 3,
    }
}

/// A batch with a fixed pattern: ids `(7b + 3s + 1) mod vocab`; with padding, sequence 1 ends in
/// two padded positions (and sequence 2 in one), whose targets are ignored.
fn batch(head: EncoderHead, vocab: usize, batch: usize, seq: usize, padding: bool) -> EncoderBatch {
    let ids = Array2::from_shape_fn((batch, seq), |(b, s)| (7 * b + 3 * s + 1) % vocab);
    let keep =
        |b: usize, s: usize| !padding || !((b == 1 && s + 2 >= seq) || (b == 2 && s + 1 == seq));
    let targets = match head {
        EncoderHead::Pooled { classes } => Array1::from_shape_fn(batch, |b| (b % classes) as i64),
        EncoderHead::Token { classes } => Array1::from_shape_fn(batch * seq, |i| {
            let (b, s) = (i / seq, i % seq);
            if keep(b, s) {
                ((ids[[b, s]] + s) % classes) as i64
            } else {
                -100
            }
        }),
        EncoderHead::MaskedLm => Array1::from_shape_fn(batch * seq, |i| {
            let (b, s) = (i / seq, i % seq);
            if keep(b, s) && i % 3 != 1 {
                ((ids[[b, s]] * 5 + 2) % vocab) as i64
            } else {
                -100
            }
        }),
    };
    EncoderBatch {
        ids,
        attention_mask: padding.then(|| Array2::from_shape_fn((batch, seq), |(b, s)| keep(b, s))),
        targets,
    }
}

fn task(case: &Case) -> TrainingTask<f32> {
    let config = encoder_config(case, 11, 8, 2);
    TrainingTask::Encoder {
        model: Encoder::<f32>::new(config).expect("a valid configuration"),
        batch: batch(case.head, 11, 3, 5, case.padding),
    }
}

fn device(test: &str) -> Option<OpenCl> {
    obtain(test, default_opencl())
}

/// `true` (and a loud skip) when `T` is f64 and the device lacks `cl_khr_fp64`.
fn lacks<T: Scalar>(cl: &OpenCl, test: &str) -> bool {
    if T::NAME == "f64" && !cl.has_fp64() {
        skip(test, &format!("{} lacks cl_khr_fp64", cl.device_label()));
        return true;
    }
    false
}

fn report(case: &Case, scalar: &str, agreement: &TrainingAgreement) {
    let worst = agreement
        .device_losses
        .iter()
        .zip(&agreement.reference_f64_losses)
        .map(|(d, r)| (d - r).abs())
        .fold(0.0f64, f64::max);
    println!(
        "encoder {} {scalar}: {} steps, loss {:.6e} → {:.6e} (device), max |Δloss| {worst:.2e}, \
         loss error/bound {:.3}, parameter error/bound {:.3}",
        case.name,
        agreement.steps,
        agreement.device_losses.first().copied().unwrap_or(f64::NAN),
        agreement.device_losses.last().copied().unwrap_or(f64::NAN),
        agreement.loss_error_over_bound,
        agreement.parameter_error_over_bound
    );
}

fn check_all<T: Scalar>(test: &str, steps: usize) {
    let Some(cl) = device(test) else { return };
    if lacks::<T>(&cl, test) {
        return;
    }
    for case in cases() {
        match check_training::<T>(&cl, &task(&case), &case.training, steps) {
            Ok(agreement) => report(&case, T::NAME, &agreement),
            Err(failure) => panic!("{test}: {} ({}): {failure}", case.name, T::NAME),
        }
    }
}

#[test]
fn one_step_every_parameter_within_the_bound_f32() {
    check_all::<f32>("device_training_encoder::one_step_f32", 1);
}

#[test]
fn one_step_every_parameter_within_the_bound_f64() {
    check_all::<f64>("device_training_encoder::one_step_f64", 1);
}

/// 100 steps: the loss trace step by step and the final parameters within the composite bound.
#[test]
fn trajectory_of_100_steps_within_the_bound_f64() {
    check_all::<f64>("device_training_encoder::trajectory_f64", 100);
}

/// The f32 trajectory, reported (`--nocapture`) and held to the same bound.
#[test]
fn trajectory_of_100_steps_within_the_bound_f32() {
    check_all::<f32>("device_training_encoder::trajectory_f32", 100);
}

fn bits<T: Scalar>(run: &TrainingRun<T>) -> (Vec<u64>, Vec<u64>) {
    let b = |v: &T| v.widen().to_bits();
    (
        run.losses.iter().map(b).collect(),
        run.parameters
            .iter()
            .flat_map(|p| p.iter().map(b))
            .collect(),
    )
}

/// Two device runs give the same bits: losses and parameters (fixed reduction orders, no
/// atomics, dropout masks regenerated from their keys).
#[test]
fn two_device_runs_are_bitwise_identical() {
    let test = "device_training_encoder::two_device_runs_are_bitwise_identical";
    let Some(cl) = device(test) else { return };
    for case in cases() {
        let task = task(&case);
        let first = Backend::<f32>::train(&cl, &task, &case.training, 20).expect("trains");
        let second = Backend::<f32>::train(&cl, &task, &case.training, 20).expect("trains");
        assert_eq!(bits(&first), bits(&second), "{}: runs differ", case.name);
    }
}

/// A backend that trains a mis-wired copy of the task on the device.
struct Planted {
    cl: OpenCl,
    bug: Bug,
}

#[derive(Clone, Copy, Debug)]
enum Bug {
    /// Dropout masks drawn with another seed (a wrong dropout key).
    WrongDropoutKey,
    /// The causal mask left out.
    NotCausal,
    /// LayerNorm eps 1e-5 instead of 1e-12.
    LayerNormEps,
}

impl Backend<f64> for Planted {
    fn name(&self) -> String {
        format!("planted::{:?}", self.bug)
    }

    fn train(
        &self,
        task: &TrainingTask<f64>,
        config: &TrainingConfig,
        steps: usize,
    ) -> Result<TrainingRun<f64>> {
        let TrainingTask::Encoder { model, batch } = task else {
            return Backend::<f64>::train(&self.cl, task, config, steps);
        };
        let mut wrong = model.config;
        match self.bug {
            Bug::WrongDropoutKey => wrong.seed += 1,
            Bug::NotCausal => wrong.causal = false,
            Bug::LayerNormEps => wrong.layer_norm_eps = 1e-5,
        }
        let mut planted = Encoder::<f64>::new(wrong)?;
        for (dst, src) in planted.parameters_mut().iter_mut().zip(model.parameters()) {
            dst.assign(src);
        }
        let task = TrainingTask::Encoder {
            model: planted,
            batch: batch.clone(),
        };
        Backend::<f64>::train(&self.cl, &task, config, steps)
    }
}

/// The bound has teeth: a wrong dropout key or a missing causal mask fails the one-step check,
/// and a LayerNorm eps off by 1e-5 (a subtle change) fails the trajectory.
#[test]
fn planted_wiring_bugs_fail_the_check() {
    let test = "device_training_encoder::planted_wiring_bugs_fail_the_check";
    let Some(cl) = device(test) else { return };
    if lacks::<f64>(&cl, test) {
        return;
    }
    let case = cases()[0]; // token head, causal, dropout 0.1
    for (bug, steps) in [
        (Bug::WrongDropoutKey, 1),
        (Bug::NotCausal, 1),
        (Bug::LayerNormEps, 1),
        (Bug::LayerNormEps, 100),
    ] {
        let planted = Planted {
            cl: cl.clone(),
            bug,
        };
        match check_training::<f64>(&planted, &task(&case), &case.training, steps) {
            Err(TrainingFailure::Mismatch {
                what,
                index,
                expected,
                actual,
                bound,
            }) => println!(
                "planted {bug:?}, {steps} steps: caught at {what}[{index}]: error/bound {:.3e}",
                (actual - expected).abs() / bound
            ),
            Err(TrainingFailure::Error(e)) => panic!("planted {bug:?}: training failed: {e}"),
            Ok(agreement) => {
                let caught = matches!(bug, Bug::LayerNormEps) && steps == 1;
                println!(
                    "planted {bug:?}, {steps} steps: NOT caught (loss error/bound {:.3}, \
                     parameter error/bound {:.3})",
                    agreement.loss_error_over_bound, agreement.parameter_error_over_bound
                );
                assert!(caught, "planted {bug:?} passed the {steps}-step check");
            }
        }
    }
}

/// Per-step wall time of the device step vs the reference step and kernel launches per step,
/// at the test size and a mid size (`cargo test --release device_training_encoder::timing --
/// --ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a check"]
fn timing() {
    let test = "device_training_encoder::timing";
    let Some(cl) = device(test) else { return };
    let case = cases()[0];
    for (label, vocab, hidden, heads, b, seq, steps) in [
        ("test size", 11, 8, 2, 3, 5, 50),
        ("mid size", 1000, 128, 4, 8, 64, 5),
    ] {
        let mut config = encoder_config(&case, vocab, hidden, heads);
        config.max_positions = seq;
        let model = Encoder::<f32>::new(config).expect("valid");
        let data = batch(case.head, vocab, b, seq, true);
        let task = TrainingTask::Encoder {
            model: model.clone(),
            batch: data.clone(),
        };
        let mut trainer = DeviceTrainer::new(&cl, &task, &case.training).expect("device trainer");
        trainer.step().expect("warm-up step");
        let launches = cl.kernel_launches();
        trainer.step().expect("step");
        let per_step = cl.kernel_launches() - launches;
        let start = Instant::now();
        for _ in 0..steps {
            trainer.step().expect("step");
        }
        let device = start.elapsed().as_secs_f64() / steps as f64;
        let mut reference = Trainer::new(model, case.training).expect("trainer");
        reference.step(&data).expect("warm-up");
        let start = Instant::now();
        for _ in 0..steps {
            reference.step(&data).expect("step");
        }
        let host = start.elapsed().as_secs_f64() / steps as f64;
        println!(
            "encoder {label} (vocab {vocab}, d {hidden}, {heads} heads, 2 layers, batch {b}×{seq}), \
             f32 on {}: device {:.3} ms/step, reference {:.3} ms/step ({:.1}×), {per_step} kernel \
             launches/step",
            cl.device_label(),
            device * 1e3,
            host * 1e3,
            host / device
        );
    }
}
