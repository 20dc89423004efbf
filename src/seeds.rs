//! The forum seeds 000–003 (`shared/seeds/`) as small, deterministic reference runs,
//! shared by the conformance tests (`tests/conformance/invariants_seeds.rs`,
//! `tests/conformance/seed002.rs`, `tests/conformance/seed003.rs`) and the examples
//! (`examples/seed000.rs` … `examples/seed003_grid.rs`). Data come from [`RandomKey`] streams, so every run is reproducible bit
//! for bit.

use ndarray::{Array1, Array2};

use crate::reference::models::mlp::{Activation, Mlp, MlpBatch, MlpConfig, MlpLoss};
use crate::reference::models::{Model, Trainer, TrainingConfig, TrainingRun, TrainingTask};
use crate::reference::Reduction;
use crate::rng::RandomKey;
use crate::{Backend, Result, Scalar};

pub mod divergence;
pub mod seed002;
pub mod seed003;

pub use divergence::first_divergence;

fn key(seed: u64, tensor_id: u64) -> RandomKey {
    RandomKey {
        seed,
        step: 0,
        tensor_id,
    }
}

/// Seed 000 ("BCE stuck at 0.693"): a LeakyReLU MLP head with BCE from logits, trained with Adam.
pub mod seed000 {
    use super::*;

    /// Input width.
    pub const INPUTS: usize = 8;
    /// Distinct inputs in the uninformative data set.
    pub const GROUPS: usize = 16;
    /// Rows per distinct input; exactly [`POSITIVES_PER_GROUP`] of them are labelled 1.
    pub const ROWS_PER_GROUP: usize = 5;
    /// Positive rows per group: `p̄ = 1/5` in every group and overall.
    pub const POSITIVES_PER_GROUP: usize = 1;
    /// The label prior `p̄ = 0.2` of both data sets.
    pub const PRIOR: f64 = POSITIVES_PER_GROUP as f64 / ROWS_PER_GROUP as f64;

    /// The classifier head: `[8, 32, 16, 1]`, LeakyReLU(0.01), BCE with logits (PyTorch init).
    pub fn model<T: Scalar>(seed: u64) -> Result<Mlp<T>> {
        Mlp::new(MlpConfig {
            widths: vec![INPUTS, 32, 16, 1],
            hidden_activation: Activation::LeakyRelu(0.01),
            output_activation: Activation::Identity,
            loss: MlpLoss::BceWithLogits,
            seed,
        })
    }

    /// Features independent of the labels **in the sample**: [`GROUPS`] distinct inputs from
    /// `U(−1, 1)^8`, each repeated [`ROWS_PER_GROUP`] times with exactly one positive label, so
    /// the label mean is `p̄ = 0.2` given every input. Returns the batch and each row's group.
    pub fn uninformative_batch<T: Scalar>(seed: u64) -> (MlpBatch<T>, Vec<usize>) {
        let rows = GROUPS * ROWS_PER_GROUP;
        let stream = key(seed, 1000);
        let inputs = Array2::from_shape_fn((rows, INPUTS), |(i, j)| {
            let g = i / ROWS_PER_GROUP;
            T::narrow(2.0 * stream.uniform((g * INPUTS + j) as u64) - 1.0)
        });
        let targets = Array2::from_shape_fn((rows, 1), |(i, _)| {
            if i % ROWS_PER_GROUP < POSITIVES_PER_GROUP {
                T::one()
            } else {
                T::zero()
            }
        });
        let groups = (0..rows).map(|i| i / ROWS_PER_GROUP).collect();
        (MlpBatch { inputs, targets }, groups)
    }

    /// Informative features: the same number of rows, each a distinct input from `U(−1, 1)^8`,
    /// labelled 1 for the 20% with the largest `w·x` (`w` random): `p̄ = 0.2`, linearly separable.
    pub fn informative_batch<T: Scalar>(seed: u64) -> MlpBatch<T> {
        let rows = GROUPS * ROWS_PER_GROUP;
        let stream = key(seed, 2000);
        let x = Array2::from_shape_fn((rows, INPUTS), |(i, j)| {
            2.0 * stream.uniform((i * INPUTS + j) as u64) - 1.0
        });
        let direction =
            Array1::from_shape_fn(INPUTS, |j| 2.0 * key(seed, 2001).uniform(j as u64) - 1.0);
        let scores = x.dot(&direction);
        let mut order: Vec<usize> = (0..rows).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let positives = (PRIOR * rows as f64).round() as usize;
        let mut targets = Array2::zeros((rows, 1));
        for &i in &order[..positives] {
            targets[(i, 0)] = T::one();
        }
        MlpBatch {
            inputs: x.mapv(T::narrow),
            targets,
        }
    }

    /// One step of a seed-000 run.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Record {
        /// Loss before the step.
        pub loss: f64,
        /// The output bias before the step.
        pub bias: f64,
        /// Mean logit over the batch before the step.
        pub mean_logit: f64,
        /// Largest `|logit|` before the step.
        pub max_abs_logit: f64,
    }

    /// Train `model` with Adam (constant `learning_rate`, β = (0.9, 0.999), eps 1e-8) on the full
    /// batch for `steps` steps; one [`Record`] per step plus one for the final state. `on_step`
    /// is called after every step (progress bars).
    pub fn train<T: Scalar>(
        model: Mlp<T>,
        batch: &MlpBatch<T>,
        learning_rate: f64,
        steps: usize,
        mut on_step: impl FnMut(usize),
    ) -> Result<(Mlp<T>, Vec<Record>)> {
        let mut trainer = Trainer::new(model, TrainingConfig::adam(learning_rate))?;
        let mut records = Vec::with_capacity(steps + 1);
        for k in 0..=steps {
            let forward = trainer.model.forward(batch.inputs.view())?;
            let logits = forward.activations.last().cloned().unwrap_or_default();
            let (loss, _) = trainer.model.loss_and_gradients(batch, k as u64)?;
            let bias = trainer
                .model
                .parameters()
                .last()
                .map_or(0.0, |b| b[0].widen());
            records.push(Record {
                loss: loss.widen(),
                bias,
                mean_logit: logits.iter().map(|z| z.widen()).sum::<f64>() / logits.len() as f64,
                max_abs_logit: logits.iter().fold(0.0, |m, z| m.max(z.widen().abs())),
            });
            if k < steps {
                trainer.step(batch)?;
                on_step(k);
            }
        }
        Ok((trainer.model, records))
    }

    /// The same run as [`train`] on any backend: `steps` steps of [`Backend::train`] with Adam
    /// ([`TrainingConfig::adam`]) on the full batch. The returned losses are the loss before each
    /// step; the parameters are the final ones (the output bias is the last tensor).
    pub fn train_on<T: Scalar>(
        backend: &impl Backend<T>,
        model: &Mlp<T>,
        batch: &MlpBatch<T>,
        learning_rate: f64,
        steps: usize,
    ) -> Result<TrainingRun<T>> {
        let task = TrainingTask::Mlp {
            model: model.clone(),
            batch: batch.clone(),
        };
        backend.train(&task, &TrainingConfig::adam(learning_rate), steps)
    }
}

/// A copy of `model` holding `parameters` (e.g. the final parameters of a
/// [`Backend::train`] run), for host-side forward passes. Errors: `ShapeMismatch` if the list or
/// a tensor length differs from the model's.
pub fn with_parameters<T: Scalar>(model: &Mlp<T>, parameters: &[Array1<T>]) -> Result<Mlp<T>> {
    let mut copy = model.clone();
    let slots = copy.parameters_mut();
    let lengths_match = slots.len() == parameters.len()
        && slots
            .iter()
            .zip(parameters)
            .all(|(a, b)| a.len() == b.len());
    if !lengths_match {
        return Err(crate::Error::ShapeMismatch {
            op: "seeds::with_parameters",
            detail: format!(
                "{} parameter tensors given for a model with {}",
                parameters.len(),
                slots.len()
            ),
        });
    }
    for (slot, value) in slots.iter_mut().zip(parameters) {
        slot.assign(value);
    }
    Ok(copy)
}

/// Seed 001 ("regression collapses to a constant"): a ReLU MLP with a sigmoid output, MSE with
/// `reduction='sum'`, plain SGD.
pub mod seed001 {
    use super::*;

    /// Input width.
    pub const INPUTS: usize = 16;
    /// Outputs per row (the seed's "tokens").
    pub const OUTPUTS: usize = 64;
    /// Rows per batch.
    pub const ROWS: usize = 8;
    /// The seed's learning rate.
    pub const SEED_LEARNING_RATE: f64 = 5e-4;

    /// The regressor: `[16, 64, 32, 16, 64]`, ReLU hidden layers, sigmoid output, MSE with the given
    /// reduction (PyTorch init).
    pub fn model<T: Scalar>(reduction: Reduction, seed: u64) -> Result<Mlp<T>> {
        Mlp::new(MlpConfig {
            widths: vec![INPUTS, 64, 32, 16, OUTPUTS],
            hidden_activation: Activation::Relu,
            output_activation: Activation::Sigmoid,
            loss: MlpLoss::Mse(reduction),
            seed,
        })
    }

    /// Inputs from `U(−1, 1)`; sparse targets like the seed's `[0, 0, 0.3, 0.72, 0, 0.04, …]`: each
    /// entry is 0 with probability 1/2, else `U(0, 1)`.
    pub fn batch<T: Scalar>(seed: u64) -> MlpBatch<T> {
        let stream = key(seed, 3000);
        let inputs = Array2::from_shape_fn((ROWS, INPUTS), |(i, j)| {
            T::narrow(2.0 * stream.uniform((i * INPUTS + j) as u64) - 1.0)
        });
        let labels = key(seed, 3001);
        let targets = Array2::from_shape_fn((ROWS, OUTPUTS), |(i, j)| {
            let index = 2 * (i * OUTPUTS + j) as u64;
            if labels.uniform(index) < 0.5 {
                T::zero()
            } else {
                T::narrow(labels.uniform(index + 1))
            }
        });
        MlpBatch { inputs, targets }
    }

    /// Per hidden layer, the fraction of units whose pre-activation is `≤ 0` on every row.
    pub fn dead_fractions<T: Scalar>(model: &Mlp<T>, inputs: &Array2<T>) -> Result<Vec<f64>> {
        let forward = model.forward(inputs.view())?;
        let hidden = forward.pre_activations.len() - 1;
        Ok(forward.pre_activations[..hidden]
            .iter()
            .map(|z| {
                let dead = z
                    .columns()
                    .into_iter()
                    .filter(|c| c.iter().all(|v| *v <= T::zero()))
                    .count();
                dead as f64 / z.ncols() as f64
            })
            .collect())
    }

    /// One step of a seed-001 run.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Record {
        /// Loss before the step (in the model's reduction).
        pub loss: f64,
        /// Dead-unit fraction per hidden layer before the step.
        pub dead: Vec<f64>,
        /// Largest spread `max_i p_ij − min_i p_ij` of the predictions across rows, over outputs.
        pub spread: f64,
    }

    /// Whether every row of the prediction is bitwise the same vector.
    pub fn rows_identical<T: Scalar>(prediction: &Array2<T>) -> bool {
        let first = prediction.row(0);
        prediction.rows().into_iter().all(|r| {
            r.iter()
                .zip(first.iter())
                .all(|(a, b)| a.widen().to_bits() == b.widen().to_bits())
        })
    }

    /// Train with plain SGD at `learning_rate` on the same batch for `steps` steps.
    pub fn train<T: Scalar>(
        model: Mlp<T>,
        batch: &MlpBatch<T>,
        learning_rate: f64,
        steps: usize,
        mut on_step: impl FnMut(usize),
    ) -> Result<(Mlp<T>, Vec<Record>)> {
        let mut trainer = Trainer::new(model, TrainingConfig::sgd(learning_rate))?;
        let mut records = Vec::with_capacity(steps + 1);
        for k in 0..=steps {
            let forward = trainer.model.forward(batch.inputs.view())?;
            let prediction = forward.activations.last().cloned().unwrap_or_default();
            let spread = prediction
                .columns()
                .into_iter()
                .map(|c| {
                    let (lo, hi) = c
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                            (lo.min(v.widen()), hi.max(v.widen()))
                        });
                    hi - lo
                })
                .fold(0.0, f64::max);
            let (loss, _) = trainer.model.loss_and_gradients(batch, k as u64)?;
            records.push(Record {
                loss: loss.widen(),
                dead: dead_fractions(&trainer.model, &batch.inputs)?,
                spread,
            });
            if k < steps {
                trainer.step(batch)?;
                on_step(k);
            }
        }
        Ok((trainer.model, records))
    }

    /// The same run as [`train`] on any backend: `steps` plain-SGD steps of [`Backend::train`]
    /// ([`TrainingConfig::sgd`]) on the same batch; losses before each step, final parameters.
    pub fn train_on<T: Scalar>(
        backend: &impl Backend<T>,
        model: &Mlp<T>,
        batch: &MlpBatch<T>,
        learning_rate: f64,
        steps: usize,
    ) -> Result<TrainingRun<T>> {
        let task = TrainingTask::Mlp {
            model: model.clone(),
            batch: batch.clone(),
        };
        backend.train(&task, &TrainingConfig::sgd(learning_rate), steps)
    }
}
