//! Whole training runs of a backend against the reference: loss traces step by step and the
//! final parameters, within [`crate::tolerance::training::composite`].

use std::fmt;

use ndarray::Array1;

use crate::reference::models::{TrainingConfig, TrainingRun, TrainingTask};
use crate::tolerance::training::composite;
use crate::{Backend, Error, Result, Scalar};

/// The worst agreement found by [`check_training`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingAgreement {
    /// Steps compared.
    pub steps: usize,
    /// Worst `|loss_dev − loss_ref64| / bound` over the steps.
    pub loss_error_over_bound: f64,
    /// Worst `|θ_dev − θ_ref64| / bound` over every final parameter.
    pub parameter_error_over_bound: f64,
    /// The device's loss trace (as f64).
    pub device_losses: Vec<f64>,
    /// The f32 reference's loss trace.
    pub reference_f32_losses: Vec<f64>,
    /// The f64 reference's loss trace.
    pub reference_f64_losses: Vec<f64>,
}

/// What went wrong in [`check_training`].
#[derive(Debug, Clone, PartialEq)]
pub enum TrainingFailure {
    /// A backend returned an error.
    Error(Error),
    /// A loss or parameter past its bound.
    Mismatch {
        /// `"loss"` or the parameter's name.
        what: String,
        /// The step (for a loss) or the flat index (for a parameter).
        index: usize,
        /// The f64 reference value.
        expected: f64,
        /// The backend's value.
        actual: f64,
        /// The bound.
        bound: f64,
    },
}

impl fmt::Display for TrainingFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainingFailure::Error(e) => write!(f, "training failed: {e}"),
            TrainingFailure::Mismatch {
                what,
                index,
                expected,
                actual,
                bound,
            } => write!(
                f,
                "{what}[{index}]: expected {expected:e} (reference f64), got {actual:e}, \
                 |error| {:e} > bound {bound:e} (error/bound {:.3})",
                (actual - expected).abs(),
                (actual - expected).abs() / bound
            ),
        }
    }
}

impl From<Error> for TrainingFailure {
    fn from(e: Error) -> Self {
        TrainingFailure::Error(e)
    }
}

fn widen_task<T: Scalar, U: Scalar>(task: &TrainingTask<T>) -> Result<TrainingTask<U>> {
    let convert = |params: &[Array1<T>]| -> Vec<Array1<U>> {
        params
            .iter()
            .map(|p| p.mapv(|v| U::narrow(v.widen())))
            .collect()
    };
    Ok(match task {
        TrainingTask::Mlp { model, batch } => {
            let mut m = crate::reference::models::mlp::Mlp::<U>::new(model.config.clone())?;
            m.set_parameters(convert(crate::reference::models::Model::parameters(model)))?;
            TrainingTask::Mlp {
                model: m,
                batch: crate::reference::models::mlp::MlpBatch {
                    inputs: batch.inputs.mapv(|v| U::narrow(v.widen())),
                    targets: batch.targets.mapv(|v| U::narrow(v.widen())),
                },
            }
        }
        TrainingTask::Encoder { model, batch } => {
            let mut m = crate::reference::models::encoder::Encoder::<U>::new(model.config)?;
            let source = convert(crate::reference::models::Model::parameters(model));
            for (dst, src) in crate::reference::models::Model::parameters_mut(&mut m)
                .iter_mut()
                .zip(source)
            {
                *dst = src;
            }
            TrainingTask::Encoder {
                model: m,
                batch: batch.clone(),
            }
        }
        TrainingTask::Gru { model, batch } => TrainingTask::Gru {
            model: crate::reference::models::gru::GruModel::from_parameters(
                model.config,
                convert(&model.parameters),
            )?,
            batch: batch.clone(),
        },
    })
}

/// Train `task` (given in f32, so that every precision starts from the same values) for `steps`
/// steps on `backend` in `T` and on the reference in f32 and f64, and compare the backend with
/// the f64 reference: every step's loss and every final parameter within
/// [`composite`]`(|ref_32 − ref_64|, scale, u_T)`.
pub fn check_training<T: Scalar>(
    backend: &impl Backend<T>,
    task: &TrainingTask<f32>,
    config: &TrainingConfig,
    steps: usize,
) -> std::result::Result<TrainingAgreement, TrainingFailure> {
    let reference32: TrainingRun<f32> = crate::reference::models::train(task, config, steps)?;
    let reference64: TrainingRun<f64> =
        crate::reference::models::train(&widen_task::<f32, f64>(task)?, config, steps)?;
    let device: TrainingRun<T> = backend.train(&widen_task::<f32, T>(task)?, config, steps)?;
    let u = T::UNIT_ROUNDOFF;
    let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let device_losses: Vec<f64> = device.losses.iter().map(|v| v.widen()).collect();
    let reference_f32_losses = wide(&reference32.losses);
    let mut agreement = TrainingAgreement {
        steps,
        loss_error_over_bound: 0.0,
        parameter_error_over_bound: 0.0,
        device_losses: device_losses.clone(),
        reference_f32_losses: reference_f32_losses.clone(),
        reference_f64_losses: reference64.losses.clone(),
    };
    let loss_scale = reference64
        .losses
        .iter()
        .fold(0.0f64, |a, &b| a.max(b.abs()));
    for (i, ((&dev, &r32), &r64)) in device_losses
        .iter()
        .zip(&reference_f32_losses)
        .zip(&reference64.losses)
        .enumerate()
    {
        let bound = composite((r32 - r64).abs(), loss_scale, u);
        let ratio = compare(dev, r64, bound);
        if ratio.is_nan() || ratio > 1.0 {
            return Err(TrainingFailure::Mismatch {
                what: "loss".into(),
                index: i,
                expected: r64,
                actual: dev,
                bound,
            });
        }
        agreement.loss_error_over_bound = agreement.loss_error_over_bound.max(ratio);
    }
    let names = task.parameter_names();
    let drift = null_direction_drift(config, steps, &reference64.gradients, u)?;
    let initial = task.parameters();
    for (t, ((dev, r32), r64)) in device
        .parameters
        .iter()
        .zip(&reference32.parameters)
        .zip(&reference64.parameters)
        .enumerate()
    {
        let scale = r64.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
        let name = names.get(t).cloned().unwrap_or_default();
        let null = is_null_direction(&name);
        for (i, ((&d, &a), &b)) in dev.iter().zip(r32.iter()).zip(r64.iter()).enumerate() {
            let (bound, ratio) = if null {
                // Exact gradient 0: only the drift bound applies (see `is_null_direction`).
                let start = initial[t].get(i).map_or(0.0, |v| f64::from(*v));
                (drift, compare(d.widen(), start, drift))
            } else {
                let bound = composite((f64::from(a) - b).abs(), scale, u);
                (bound, compare(d.widen(), b, bound))
            };
            if ratio.is_nan() || ratio > 1.0 {
                return Err(TrainingFailure::Mismatch {
                    what: names
                        .get(t)
                        .cloned()
                        .unwrap_or_else(|| format!("tensor {t}")),
                    index: i,
                    expected: b,
                    actual: d.widen(),
                    bound,
                });
            }
            agreement.parameter_error_over_bound = agreement.parameter_error_over_bound.max(ratio);
        }
    }
    Ok(agreement)
}

/// `|actual − expected| / bound`, with equal values (also equal infinities) giving 0 and any
/// NaN on one side only giving ∞.
fn compare(actual: f64, expected: f64, bound: f64) -> f64 {
    if actual == expected || (actual.is_nan() && expected.is_nan()) {
        0.0
    } else if actual.is_nan() || expected.is_nan() {
        f64::INFINITY
    } else if bound > 0.0 {
        (actual - expected).abs() / bound
    } else {
        f64::INFINITY
    }
}

/// Parameters whose exact gradient is identically 0, so that every implementation's gradient is
/// rounding noise and runs cannot agree value by value: the attention **key bias**
/// (`layer{l}.k.bias`). It adds `q_i·b_k` to every score of query `i`, a constant per softmax
/// row, and softmax is shift invariant (THEORY.md A0), so `∂L/∂b_k ≡ 0`. Such a tensor is
/// checked against the drift its optimizer can produce from noise instead (`null_direction_drift`).
pub fn is_null_direction(name: &str) -> bool {
    name.ends_with(".k.bias")
}

/// The largest drift a parameter can take in `steps` steps when its gradient is rounding noise:
/// Adam moves each coordinate by at most `lr_t·C∞` per step whatever the gradient (THEORY.md D2,
/// `C∞ = (1−β1)/sqrt(1−β2)`-type limit from [`crate::tolerance::adam_step_factor_limit`]);
/// SGD by `lr_t·|noise|/(1 − μ)`, the noise bounded by `64·u·G` with `G` the largest gradient of
/// the model (the scale of the terms whose rounding it is).
fn null_direction_drift(
    config: &TrainingConfig,
    steps: usize,
    reference_gradients: &[Array1<f64>],
    unit_roundoff: f64,
) -> Result<f64> {
    use crate::reference::models::OptimizerConfig;
    let mut cumulative = 0.0;
    for step in 0..steps {
        cumulative += config
            .schedule
            .learning_rate(config.base_learning_rate, step as u64)?;
    }
    Ok(match config.optimizer {
        OptimizerConfig::Adam(h) => {
            let limit = crate::tolerance::adam_step_factor_limit(h.beta1, h.beta2).unwrap_or(2.0);
            cumulative * limit * (1.0 + 1e-3)
        }
        OptimizerConfig::Sgd(h) => {
            let scale = reference_gradients
                .iter()
                .flat_map(|g| g.iter())
                .fold(0.0f64, |a, &b| a.max(b.abs()));
            cumulative * 64.0 * unit_roundoff * scale / (1.0 - h.momentum)
        }
    })
}
