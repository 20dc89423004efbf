//! Models and their training loop: an MLP (seeds 000, 001), a BERT-like encoder (seed 003) and a
//! single-layer GRU (seed 002), each with a hand-written backward pass.
//!
//! Every model keeps its parameters as a list of flattened tensors (`Vec<Array1<T>>`, PyTorch's
//! row-major layout, names from [`Model::parameter_names`]) so that one optimizer, one clipping
//! routine and one gradient-accumulation rule serve them all, exactly as PyTorch's
//! `optimizer.step()` sees `model.parameters()`.

pub mod encoder;
pub mod gru;
pub mod mlp;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::optim::{
    clip_grad_norm, store_gradients, Adam, AdamHyper, GradientMode, LearningRateSchedule, Sgd,
    SgdHyper,
};
use crate::{Error, Result, Scalar};

/// A model the reference can train: parameters plus a loss with its gradient.
pub trait Model<T: Scalar> {
    /// One training batch (inputs and targets).
    type Batch;

    /// The parameters, flattened, in a fixed order.
    fn parameters(&self) -> &[Array1<T>];

    /// Mutable access for the optimizer.
    fn parameters_mut(&mut self) -> &mut [Array1<T>];

    /// One name per parameter, e.g. `"layer0.weight"`, in the order of [`Model::parameters`].
    fn parameter_names(&self) -> Vec<String>;

    /// The loss on `batch` and its gradient with respect to every parameter (same order and
    /// lengths as [`Model::parameters`]). `step` keys the dropout masks of this step
    /// ([`crate::rng::RandomKey`]), so a second backend draws the same masks.
    fn loss_and_gradients(&self, batch: &Self::Batch, step: u64) -> Result<(T, Vec<Array1<T>>)>;
}

/// Which optimizer a [`Trainer`] runs. The learning rate in the hyperparameters is replaced every
/// step by the schedule's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerConfig {
    /// PyTorch `torch.optim.SGD`.
    Sgd(SgdHyper),
    /// PyTorch `torch.optim.Adam` / `AdamW`.
    Adam(AdamHyper),
}

/// A training loop's settings, covering what the seed scripts do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingConfig {
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Base learning rate; step `i` (0-based) uses `base · schedule.multiplier(i)` (LambdaLR).
    pub base_learning_rate: f64,
    /// The schedule.
    pub schedule: LearningRateSchedule,
    /// `clip_grad_norm_(parameters, max_norm)` after the backward pass, if set.
    pub clip_grad_norm: Option<f64>,
    /// Zero the stored gradients each step, or accumulate as seed 003's script does.
    pub gradient_mode: GradientMode,
}

impl TrainingConfig {
    /// Adam with constant learning rate, gradients zeroed, no clipping.
    pub fn adam(learning_rate: f64) -> Self {
        TrainingConfig {
            optimizer: OptimizerConfig::Adam(AdamHyper::new(learning_rate, 0.9, 0.999, 1e-8)),
            base_learning_rate: learning_rate,
            schedule: LearningRateSchedule::Constant,
            clip_grad_norm: None,
            gradient_mode: GradientMode::ZeroEachStep,
        }
    }

    /// Plain SGD with constant learning rate, gradients zeroed, no clipping.
    pub fn sgd(learning_rate: f64) -> Self {
        TrainingConfig {
            optimizer: OptimizerConfig::Sgd(SgdHyper::plain(learning_rate)),
            base_learning_rate: learning_rate,
            schedule: LearningRateSchedule::Constant,
            clip_grad_norm: None,
            gradient_mode: GradientMode::ZeroEachStep,
        }
    }
}

#[derive(Debug, Clone)]
enum OptimizerState<T> {
    Sgd(Sgd<T>),
    Adam(Adam<T>),
}

/// What one training step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport<T> {
    /// 0-based step index.
    pub step: u64,
    /// The loss of the forward pass of this step (before the update).
    pub loss: T,
    /// The learning rate used.
    pub learning_rate: f64,
    /// The global L2 norm of the stored gradients before clipping (when clipping is on).
    pub gradient_norm: Option<T>,
}

/// PyTorch's training loop, one step at a time:
/// ```text
/// loss, fresh = model.loss_and_gradients(batch, i)
/// stored = fresh                     (ZeroEachStep)      | stored += fresh   (Accumulate)
/// clip_grad_norm(stored, max_norm)   (if configured; in place, as clip_grad_norm_)
/// optimizer.lr = base · schedule(i);  optimizer.step(parameters, stored);  i += 1
/// ```
#[derive(Debug, Clone)]
pub struct Trainer<T: Scalar, M: Model<T>> {
    /// The model being trained.
    pub model: M,
    /// The settings.
    pub config: TrainingConfig,
    optimizer: OptimizerState<T>,
    stored_gradients: Vec<Array1<T>>,
    step: u64,
}

impl<T: Scalar, M: Model<T>> Trainer<T, M> {
    /// A trainer at step 0 with zero optimizer state and zero stored gradients.
    /// Errors: `InvalidParameter` for invalid hyperparameters or schedule, or a non-finite or
    /// negative base learning rate / clip norm.
    pub fn new(model: M, config: TrainingConfig) -> Result<Self> {
        config.schedule.validate()?;
        if !(config.base_learning_rate.is_finite() && config.base_learning_rate >= 0.0) {
            return Err(Error::InvalidParameter {
                op: "Trainer::new",
                name: "base_learning_rate",
                value: format!("{:e}", config.base_learning_rate),
                reason: "must be finite and ≥ 0".into(),
            });
        }
        if let Some(max_norm) = config.clip_grad_norm {
            if !(max_norm.is_finite() && max_norm >= 0.0) {
                return Err(Error::InvalidParameter {
                    op: "Trainer::new",
                    name: "clip_grad_norm",
                    value: format!("{max_norm:e}"),
                    reason: "must be finite and ≥ 0".into(),
                });
            }
        }
        let lengths: Vec<usize> = model.parameters().iter().map(Array1::len).collect();
        let optimizer = match config.optimizer {
            OptimizerConfig::Sgd(hyper) => OptimizerState::Sgd(Sgd::new(hyper, &lengths)?),
            OptimizerConfig::Adam(hyper) => OptimizerState::Adam(Adam::new(hyper, &lengths)?),
        };
        let stored_gradients = lengths.iter().map(|&n| Array1::zeros(n)).collect();
        Ok(Trainer {
            model,
            config,
            optimizer,
            stored_gradients,
            step: 0,
        })
    }

    /// The next step's index.
    pub fn step_index(&self) -> u64 {
        self.step
    }

    /// The gradients the optimizer saw last (after accumulation and clipping).
    pub fn stored_gradients(&self) -> &[Array1<T>] {
        &self.stored_gradients
    }

    /// One training step on `batch`; see the type's doc.
    pub fn step(&mut self, batch: &M::Batch) -> Result<StepReport<T>> {
        let step = self.step;
        let learning_rate = self
            .config
            .schedule
            .learning_rate(self.config.base_learning_rate, step)?;
        let (loss, fresh) = self.model.loss_and_gradients(batch, step)?;
        store_gradients(
            &mut self.stored_gradients,
            &fresh,
            self.config.gradient_mode,
        )?;
        let gradient_norm = match self.config.clip_grad_norm {
            Some(max_norm) => Some(clip_grad_norm(&mut self.stored_gradients, max_norm)?),
            None => None,
        };
        match &mut self.optimizer {
            OptimizerState::Sgd(sgd) => {
                sgd.hyper.learning_rate = learning_rate;
                sgd.step(self.model.parameters_mut(), &self.stored_gradients)?;
            }
            OptimizerState::Adam(adam) => {
                adam.hyper.learning_rate = learning_rate;
                adam.step(self.model.parameters_mut(), &self.stored_gradients)?;
            }
        }
        self.step += 1;
        Ok(StepReport {
            step,
            loss,
            learning_rate,
            gradient_norm,
        })
    }

    /// `steps` training steps on the same batch; the loss trace.
    pub fn train(&mut self, batch: &M::Batch, steps: usize) -> Result<Vec<T>> {
        (0..steps)
            .map(|_| self.step(batch).map(|r| r.loss))
            .collect()
    }
}

/// One of the three models with the batch it trains on: what [`crate::Backend::train`] runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainingTask<T> {
    /// The MLP of seeds 000 and 001.
    Mlp {
        /// The model in its initial state.
        model: mlp::Mlp<T>,
        /// The batch every step trains on.
        batch: mlp::MlpBatch<T>,
    },
    /// The BERT-like encoder of seed 003.
    Encoder {
        /// The model in its initial state.
        model: encoder::Encoder<T>,
        /// The batch every step trains on.
        batch: encoder::EncoderBatch,
    },
    /// The GRU of seed 002.
    Gru {
        /// The model in its initial state.
        model: gru::GruModel<T>,
        /// The batch every step trains on.
        batch: gru::GruBatch,
    },
}

impl<T: Scalar> TrainingTask<T> {
    /// The initial parameters, in the model's order.
    pub fn parameters(&self) -> &[Array1<T>] {
        match self {
            TrainingTask::Mlp { model, .. } => model.parameters(),
            TrainingTask::Encoder { model, .. } => model.parameters(),
            TrainingTask::Gru { model, .. } => model.parameters(),
        }
    }

    /// The parameter names, in the model's order.
    pub fn parameter_names(&self) -> Vec<String> {
        match self {
            TrainingTask::Mlp { model, .. } => model.parameter_names(),
            TrainingTask::Encoder { model, .. } => model.parameter_names(),
            TrainingTask::Gru { model, .. } => model.parameter_names(),
        }
    }
}

/// What [`crate::Backend::train`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRun<T> {
    /// The loss of every step's forward pass (before its update).
    pub losses: Vec<T>,
    /// The parameters after the last step.
    pub parameters: Vec<Array1<T>>,
    /// The gradients the optimizer saw in the last step (after accumulation and clipping);
    /// zeros when `steps` is 0.
    pub gradients: Vec<Array1<T>>,
}

/// The reference's `train`: a [`Trainer`] on a copy of the task's model, `steps` steps.
pub fn train<T: Scalar>(
    task: &TrainingTask<T>,
    config: &TrainingConfig,
    steps: usize,
) -> Result<TrainingRun<T>> {
    fn run<T: Scalar, M: Model<T> + Clone>(
        model: &M,
        batch: &M::Batch,
        config: &TrainingConfig,
        steps: usize,
    ) -> Result<TrainingRun<T>> {
        let mut trainer = Trainer::new(model.clone(), *config)?;
        let losses = trainer.train(batch, steps)?;
        Ok(TrainingRun {
            losses,
            parameters: trainer.model.parameters().to_vec(),
            gradients: trainer.stored_gradients().to_vec(),
        })
    }
    match task {
        TrainingTask::Mlp { model, batch } => run(model, batch, config, steps),
        TrainingTask::Encoder { model, batch } => run(model, batch, config, steps),
        TrainingTask::Gru { model, batch } => run(model, batch, config, steps),
    }
}

/// A linear layer's forward pass in PyTorch's layout: `y = x·Wᵀ + b`, `W` `[out, in]`
/// (flattened row-major), `b` `[out]`.
pub(crate) fn linear<T: Scalar>(
    x: ArrayView2<'_, T>,
    weight: ArrayView1<'_, T>,
    bias: ArrayView1<'_, T>,
    out_features: usize,
) -> Result<Array2<T>> {
    let weight = weight_matrix(weight, out_features, x.ncols())?;
    let y = super::matmul(x, super::transpose(weight).view())?;
    super::add_rows(y.view(), bias)
}

/// Backward of [`linear`]: `(grad_x, grad_weight (flattened), grad_bias)`.
/// ```text
/// grad_x = g·W,   grad_W = gᵀ·x,   grad_b = Σ_rows g
/// ```
pub(crate) fn linear_backward<T: Scalar>(
    x: ArrayView2<'_, T>,
    weight: ArrayView1<'_, T>,
    grad_output: ArrayView2<'_, T>,
) -> Result<(Array2<T>, Array1<T>, Array1<T>)> {
    let out_features = grad_output.ncols();
    let weight = weight_matrix(weight, out_features, x.ncols())?;
    let grad_x = super::matmul(grad_output, weight)?;
    let grad_weight = super::matmul(super::transpose(grad_output).view(), x)?;
    let grad_bias = super::sum_axis(grad_output, 0)?;
    Ok((grad_x, flatten(grad_weight), grad_bias))
}

/// View a flattened `[rows·cols]` parameter as a `[rows, cols]` matrix.
pub(crate) fn weight_matrix<T>(
    flat: ArrayView1<'_, T>,
    rows: usize,
    cols: usize,
) -> Result<ArrayView2<'_, T>> {
    flat.into_shape_with_order((rows, cols))
        .map_err(|_| Error::ShapeMismatch {
            op: "weight_matrix",
            detail: format!(
                "a parameter of {} elements viewed as [{rows}, {cols}]",
                flat.len()
            ),
        })
}

/// Flatten a matrix row-major.
pub(crate) fn flatten<T: Clone>(matrix: Array2<T>) -> Array1<T> {
    Array1::from_iter(matrix.iter().cloned())
}
