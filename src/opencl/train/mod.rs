//! Device-resident training: parameters, gradients and optimizer state live in device buffers
//! across steps; per step the host computes the learning rate (the schedule) and reads back only
//! the loss.
//!
//! One step, exactly the reference [`Trainer`](crate::reference::models::Trainer)'s order:
//! ```text
//! loss, fresh = model.loss_and_gradients(batch, i)     (device kernels; dropout keys (seed, i, id))
//! stored = fresh  (ZeroEachStep: the model writes into `stored` directly)
//! stored += fresh (Accumulate)                          enqueue_store_gradients
//! clip_grad_norm(stored, max_norm)                      two-pass reduction + scale, on the device
//! lr = base · schedule(i)  (host);  optimizer step      one fused kernel for all tensors
//! read back loss                                        the only transfer of the step
//! ```
//! Parameters, gradients and optimizer state each live in one [`Segmented`] allocation (one
//! sub-buffer per tensor, zero padding between them), so accumulation, clipping and the
//! optimizer step are one launch each for the whole model, not one per tensor: the updates are
//! elementwise, the padding stays zero under them (Adam and SGD map a zero parameter with zero
//! gradient and zero state to zero), and the clipping norm's sum gains only exact zeros.
//! Every kernel runs on one in-order queue, and every reduction has a fixed order, so a run is
//! bitwise reproducible on the same device.

mod encoder;
mod gru;
mod mlp;

use ndarray::Array1;

use super::{DeviceBuffer, OpenCl, Segmented};
use crate::reference::models::{OptimizerConfig, TrainingConfig, TrainingRun, TrainingTask};
use crate::reference::optim::GradientMode;
use crate::{Error, Result, Scalar};

/// A model whose forward and backward passes run on the device.
pub(crate) trait DeviceModel<T: Scalar> {
    /// Enqueue the forward and backward pass of step `step` on `parameters`: the loss goes to
    /// `loss` (one element) and the gradient of every parameter tensor to `gradients` (same
    /// order and lengths), overwriting them.
    fn enqueue_loss_and_gradients(
        &mut self,
        cl: &OpenCl,
        parameters: &[DeviceBuffer<T>],
        gradients: &[DeviceBuffer<T>],
        loss: &DeviceBuffer<T>,
        step: u64,
    ) -> Result<()>;
}

enum DeviceOptimizer<T: Scalar> {
    Sgd {
        momentum: Option<Segmented<T>>,
    },
    Adam {
        first_moment: Segmented<T>,
        second_moment: Segmented<T>,
    },
}

/// A training run held on the device; see the module doc.
pub struct DeviceTrainer<T: Scalar> {
    cl: OpenCl,
    model: Box<dyn DeviceModel<T> + Send>,
    config: TrainingConfig,
    parameters: Segmented<T>,
    stored: Segmented<T>,
    fresh: Option<Segmented<T>>,
    optimizer: DeviceOptimizer<T>,
    loss: DeviceBuffer<T>,
    norm: DeviceBuffer<T>,
    step: u64,
}

impl<T: Scalar> std::fmt::Debug for DeviceTrainer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTrainer")
            .field("device", &self.cl.device_label())
            .field("tensors", &self.parameters.parts().len())
            .field("step", &self.step)
            .finish()
    }
}

fn zeroed<T: Scalar>(cl: &OpenCl, len: usize) -> Result<DeviceBuffer<T>> {
    let buffer = cl.zeros_buffer::<T>(len)?;
    cl.enqueue_fill(&buffer, T::zero(), len)?;
    Ok(buffer)
}

impl<T: Scalar> DeviceTrainer<T> {
    /// Upload `task`'s model and batch and allocate every buffer of the run. Errors: those of
    /// the reference [`Trainer::new`](crate::reference::models::Trainer::new) for invalid
    /// settings, `Unsupported` for f64 on a device without `cl_khr_fp64`, OpenCL errors.
    pub fn new(cl: &OpenCl, task: &TrainingTask<T>, config: &TrainingConfig) -> Result<Self> {
        // The reference trainer validates the settings exactly as the reference run would.
        crate::reference::models::train(task, config, 0)?;
        let model: Box<dyn DeviceModel<T> + Send> = match task {
            TrainingTask::Mlp { model, batch } => Box::new(mlp::DeviceMlp::new(cl, model, batch)?),
            TrainingTask::Gru { model, batch } => Box::new(gru::DeviceGru::new(cl, model, batch)?),
            TrainingTask::Encoder { model, batch } => {
                Box::new(encoder::DeviceEncoder::new(cl, model, batch)?)
            }
        };
        let host_parameters = task.parameters();
        let lengths: Vec<usize> = host_parameters.iter().map(Array1::len).collect();
        let parameters = cl.segmented_buffer(&lengths, Some(host_parameters))?;
        let zeros = |cl: &OpenCl| cl.segmented_buffer::<T>(&lengths, None);
        let stored = zeros(cl)?;
        let fresh = match config.gradient_mode {
            GradientMode::ZeroEachStep => None,
            GradientMode::Accumulate => Some(zeros(cl)?),
        };
        let optimizer = match config.optimizer {
            OptimizerConfig::Sgd(hyper) => DeviceOptimizer::Sgd {
                momentum: if hyper.momentum != 0.0 {
                    Some(zeros(cl)?)
                } else {
                    None
                },
            },
            OptimizerConfig::Adam(_) => DeviceOptimizer::Adam {
                first_moment: zeros(cl)?,
                second_moment: zeros(cl)?,
            },
        };
        Ok(DeviceTrainer {
            cl: cl.clone(),
            model,
            config: *config,
            parameters,
            stored,
            fresh,
            optimizer,
            loss: zeroed(cl, 1)?,
            norm: zeroed(cl, 1)?,
            step: 0,
        })
    }

    /// The next step's index.
    pub fn step_index(&self) -> u64 {
        self.step
    }

    /// One training step; returns the loss of its forward pass (the only read-back).
    pub fn step(&mut self) -> Result<T> {
        let step = self.step;
        let learning_rate = self
            .config
            .schedule
            .learning_rate(self.config.base_learning_rate, step)?;
        let cl = &self.cl;
        let target = self.fresh.as_ref().unwrap_or(&self.stored);
        self.model.enqueue_loss_and_gradients(
            cl,
            self.parameters.parts(),
            target.parts(),
            &self.loss,
            step,
        )?;
        let (theta, stored) = (self.parameters.whole(), self.stored.whole());
        if let Some(fresh) = &self.fresh {
            cl.enqueue_store_gradients(
                stored,
                fresh.whole(),
                GradientMode::Accumulate,
                stored.len(),
            )?;
        }
        if let Some(max_norm) = self.config.clip_grad_norm {
            cl.enqueue_clip_grad_norm(&[stored], max_norm, &self.norm)?;
        }
        match (&self.optimizer, self.config.optimizer) {
            (DeviceOptimizer::Sgd { momentum }, OptimizerConfig::Sgd(mut hyper)) => {
                hyper.learning_rate = learning_rate;
                let buffer = momentum.as_ref().map(Segmented::whole);
                cl.enqueue_sgd_step(theta, stored, buffer, &hyper, step == 0, theta.len())?;
            }
            (
                DeviceOptimizer::Adam {
                    first_moment,
                    second_moment,
                },
                OptimizerConfig::Adam(mut hyper),
            ) => {
                hyper.learning_rate = learning_rate;
                cl.enqueue_adam_step(
                    theta,
                    stored,
                    first_moment.whole(),
                    second_moment.whole(),
                    &hyper,
                    step + 1,
                    theta.len(),
                )?;
            }
            _ => {
                return Err(Error::InvalidParameter {
                    op: "DeviceTrainer::step",
                    name: "optimizer",
                    value: format!("{:?}", self.config.optimizer),
                    reason: "optimizer state does not match the configuration".into(),
                })
            }
        }
        let loss = cl.read_buffer(&self.loss)?;
        self.step += 1;
        loss.first()
            .copied()
            .ok_or_else(|| Error::opencl("DeviceTrainer::step", "empty loss read-back"))
    }

    /// `steps` steps; the loss trace.
    pub fn train(&mut self, steps: usize) -> Result<Vec<T>> {
        (0..steps).map(|_| self.step()).collect()
    }

    /// The parameters, read back.
    pub fn parameters(&self) -> Result<Vec<Array1<T>>> {
        self.parameters
            .parts()
            .iter()
            .map(|p| self.cl.read_buffer(p).map(Array1::from))
            .collect()
    }

    /// The gradients the optimizer saw last, read back.
    pub fn gradients(&self) -> Result<Vec<Array1<T>>> {
        self.stored
            .parts()
            .iter()
            .map(|p| self.cl.read_buffer(p).map(Array1::from))
            .collect()
    }

    /// The global gradient norm before clipping of the last step (when clipping is on).
    pub fn gradient_norm(&self) -> Result<Option<T>> {
        if self.config.clip_grad_norm.is_none() {
            return Ok(None);
        }
        Ok(self.cl.read_buffer(&self.norm)?.first().copied())
    }
}

/// `Backend::train` on the device: a [`DeviceTrainer`] run for `steps` steps.
pub(crate) fn train<T: Scalar>(
    cl: &OpenCl,
    task: &TrainingTask<T>,
    config: &TrainingConfig,
    steps: usize,
) -> Result<TrainingRun<T>> {
    let mut trainer = DeviceTrainer::new(cl, task, config)?;
    let losses = trainer.train(steps)?;
    Ok(TrainingRun {
        losses,
        parameters: trainer.parameters()?,
        gradients: trainer.gradients()?,
    })
}
