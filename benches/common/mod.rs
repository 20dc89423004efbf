//! Host inputs and `Backend` calls for a [`Workload`], shared by `benches/ops.rs` and
//! `examples/report.rs` (`#[path]`-included there). The inputs are deterministic (fixed seed).

#![allow(dead_code, reason = "each includer uses a part")]

use mloracle::opencl::Workload;
use mloracle::reference::models::encoder::{Encoder, EncoderBatch, EncoderConfig, EncoderHead};
use mloracle::reference::models::gru::{GruBatch, GruConfig, GruModel};
use mloracle::reference::models::mlp::{Activation, Mlp, MlpBatch, MlpConfig, MlpLoss};
use mloracle::reference::models::{Trainer, TrainingConfig, TrainingTask};
use mloracle::reference::optim::{AdamHyper, AdamState};
use mloracle::reference::Reduction;
use mloracle::{Backend, Result};
use ndarray::{Array1, Array2};
use ndarray_rand::rand::{rngs::StdRng, SeedableRng};
use ndarray_rand::rand_distr::Uniform;
use ndarray_rand::RandomExt;

/// Fixed seed: the same inputs on every run.
pub const SEED: u64 = 0x6d6c_6f72_6163_6c65;

/// Host operands of one workload.
pub struct HostInputs {
    /// The main operand (`[rows, cols]`; `[1, len]` for elementwise ops; A for matmul).
    pub x: Array2<f32>,
    /// A second operand of the same shape (gradient, labels), or B for matmul.
    pub y: Array2<f32>,
    /// A row vector of `cols` (bias, gamma).
    pub v: Array1<f32>,
    /// A second row vector (beta).
    pub w: Array1<f32>,
}

fn uniform(shape: (usize, usize), lo: f32, hi: f32, rng: &mut StdRng) -> Array2<f32> {
    Array2::random_using(shape, Uniform::new(lo, hi).expect("valid range"), rng)
}

/// `(rows, cols)` of the main operand.
pub fn shape(workload: &Workload) -> (usize, usize) {
    match *workload {
        Workload::Elementwise { len, .. }
        | Workload::BceMean { len }
        | Workload::AdamStep { len } => (1, len),
        Workload::Rows { rows, cols, .. }
        | Workload::AddRows { rows, cols }
        | Workload::LayerNorm { rows, cols }
        | Workload::LayerNormBackward { rows, cols } => (rows, cols),
        Workload::Matmul { m, k, .. } => (m, k),
        _ => (1, 1),
    }
}

/// Inputs for `workload` from a fixed seed (ranges as in `OpenCl::prepare`).
pub fn inputs(workload: &Workload) -> HostInputs {
    let mut rng = StdRng::seed_from_u64(SEED);
    let (rows, cols) = shape(workload);
    let x = match *workload {
        Workload::Elementwise {
            kernel: "sigmoid_backward",
            ..
        } => uniform((rows, cols), 0.0, 1.0, &mut rng),
        Workload::Elementwise {
            kernel: "tanh_backward",
            ..
        } => uniform((rows, cols), -1.0, 1.0, &mut rng),
        Workload::Rows { .. } => uniform((rows, cols), -10.0, 10.0, &mut rng),
        _ => uniform((rows, cols), -4.0, 4.0, &mut rng),
    };
    let y = match *workload {
        Workload::Matmul { k, n, .. } => uniform((k, n), -1.0, 1.0, &mut rng),
        Workload::BceMean { .. }
        | Workload::Elementwise {
            kernel: "bce_with_logits_mean_backward",
            ..
        } => uniform((rows, cols), 0.0, 1.0, &mut rng),
        _ => uniform((rows, cols), -1.0, 1.0, &mut rng),
    };
    let v = uniform((1, cols), 0.5, 1.5, &mut rng).row(0).to_owned();
    let w = uniform((1, cols), -1.0, 1.0, &mut rng).row(0).to_owned();
    HostInputs { x, y, v, w }
}

/// Run `workload`'s op through `backend` on `inputs` (the end-to-end path: upload, kernels,
/// read-back for a device backend). The result is dropped.
pub fn call<B: Backend<f32>>(backend: &B, workload: &Workload, i: &HostInputs) -> Result<()> {
    let (x, y) = (i.x.view(), i.y.view());
    match *workload {
        Workload::Elementwise { kernel, .. } => match kernel {
            "relu" => backend.relu(x).map(drop),
            "relu_backward" => backend.relu_backward(x, y).map(drop),
            "leaky_relu" => backend.leaky_relu(x, 0.01).map(drop),
            "leaky_relu_backward" => backend.leaky_relu_backward(x, y, 0.01).map(drop),
            "sigmoid" => backend.sigmoid(x).map(drop),
            "sigmoid_backward" => backend.sigmoid_backward(x, y).map(drop),
            "tanh_forward" => backend.tanh(x).map(drop),
            "tanh_backward" => backend.tanh_backward(x, y).map(drop),
            "gelu" => backend.gelu(x).map(drop),
            "gelu_backward" => backend.gelu_backward(x, y).map(drop),
            "bce_with_logits_mean_backward" => backend
                .bce_with_logits_mean_backward(x.row(0), y.row(0), 1.0)
                .map(drop),
            other => Err(mloracle::Error::InvalidParameter {
                op: "bench call",
                name: "kernel",
                value: other.to_string(),
                reason: "no Backend method mapped".to_string(),
            }),
        },
        Workload::Rows { kernel, .. } => match kernel {
            "log_sum_exp_rows" => backend.log_sum_exp_rows(x).map(drop),
            "softmax_rows" => backend.softmax_rows(x).map(drop),
            _ => backend.log_softmax_rows(x).map(drop),
        },
        Workload::AddRows { .. } => backend.add_rows(x, i.v.view()).map(drop),
        Workload::LayerNorm { .. } => backend
            .layer_norm(x, i.v.view(), i.w.view(), 1e-5)
            .map(drop),
        Workload::LayerNormBackward { .. } => backend
            .layer_norm_backward(x, i.v.view(), i.w.view(), 1e-5, y)
            .map(drop),
        Workload::BceMean { .. } => backend.bce_with_logits_mean(x.row(0), y.row(0)).map(drop),
        Workload::Matmul { .. } => backend.matmul(x, y).map(drop),
        Workload::AdamStep { len } => backend
            .adam_step(
                &AdamState::zeros(len),
                x.row(0),
                y.row(0),
                &AdamHyper::new(1e-3, 0.9, 0.999, 1e-8),
            )
            .map(drop),
        _ => Ok(()),
    }
}

/// A training-step workload: one model family at one size (`benches/ops.rs` `train_step/*`,
/// `make report`'s bench section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepSize {
    /// Seed 003's encoder (`EncoderConfig::seed003`, batch 2 × 2) and MLP/GRU of the same
    /// launch-bound scale.
    Tiny,
    /// A small model whose kernels are past launch latency.
    Small,
    /// The mid size: encoder hidden 256, 4 heads, 1 layer, seq 128, batch 16; MLP
    /// 256-512-512-1 on 256 rows; GRU V 512, E = H = 256, batch 32 × seq 32.
    Mid,
}

impl StepSize {
    /// Every size, launch-bound first.
    pub const ALL: [StepSize; 3] = [StepSize::Tiny, StepSize::Small, StepSize::Mid];

    /// `"tiny"`, `"small"`, `"mid"`.
    pub fn name(self) -> &'static str {
        match self {
            StepSize::Tiny => "tiny",
            StepSize::Small => "small",
            StepSize::Mid => "mid",
        }
    }
}

/// Adam (lr 1e-3), clipping at 1, gradients zeroed: the step the benches time for MLP and GRU.
pub fn adam_config() -> TrainingConfig {
    TrainingConfig {
        clip_grad_norm: Some(1.0),
        ..TrainingConfig::adam(1e-3)
    }
}

/// An MLP regression task (ReLU, MSE mean) and its loop settings.
pub fn mlp_task(size: StepSize) -> (TrainingTask<f32>, TrainingConfig) {
    let (widths, rows) = match size {
        StepSize::Tiny => (vec![4, 8, 1], 8),
        StepSize::Small => (vec![64, 128, 128, 1], 64),
        StepSize::Mid => (vec![256, 512, 512, 1], 256),
    };
    let mut rng = StdRng::seed_from_u64(SEED);
    let inputs = uniform((rows, widths[0]), -1.0, 1.0, &mut rng);
    let targets = uniform((rows, 1), -1.0, 1.0, &mut rng);
    let config = MlpConfig {
        widths,
        hidden_activation: Activation::Relu,
        output_activation: Activation::Identity,
        loss: MlpLoss::Mse(Reduction::Mean),
        seed: 7,
    };
    let model = Mlp::new(config).expect("valid MLP config");
    (
        TrainingTask::Mlp {
            model,
            batch: MlpBatch { inputs, targets },
        },
        adam_config(),
    )
}

/// A GRU next-item task (`(B, S)` items, target the last item) and its loop settings.
pub fn gru_task(size: StepSize) -> (TrainingTask<f32>, TrainingConfig) {
    let (vocab, width, rows, seq) = match size {
        StepSize::Tiny => (7, 6, 6, 4),
        StepSize::Small => (64, 32, 16, 16),
        StepSize::Mid => (512, 256, 32, 32),
    };
    let config = GruConfig {
        vocab,
        embed: width,
        hidden: width,
        seed: 2,
    };
    let items = Array2::from_shape_fn((rows, seq), |(b, t)| (3 * b + 2 * t + b * t) % vocab);
    let targets: Array1<i64> = items.column(seq - 1).mapv(|id| id as i64);
    (
        TrainingTask::Gru {
            model: GruModel::new(config).expect("valid GRU config"),
            batch: GruBatch { items, targets },
        },
        adam_config(),
    )
}

/// An encoder task and its loop settings. Tiny is seed 003 exactly (its model, batch and forum
/// loop: Adam betas (0.9, 0.98), eps 1e-9, clip 1, Noam, gradients accumulated, dropout 0.1);
/// small and mid use the same loop on a token-classification head with 2 classes.
pub fn encoder_task(size: StepSize) -> (TrainingTask<f32>, TrainingConfig) {
    use mloracle::seeds::seed003;
    let trainer = seed003::trainer::<f32>(seed003::Cell::forum(0)).expect("seed 003 trainer");
    let config = trainer.config;
    let (hidden, heads, rows, seq) = match size {
        StepSize::Tiny => {
            return (
                TrainingTask::Encoder {
                    model: trainer.model,
                    batch: seed003::batch(),
                },
                config,
            )
        }
        StepSize::Small => (64, 2, 4, 32),
        StepSize::Mid => (256, 4, 16, 128),
    };
    let vocab = 100;
    let model = Encoder::new(EncoderConfig {
        vocab,
        hidden,
        heads,
        layers: 1,
        intermediate: 4 * hidden,
        max_positions: seq,
        dropout: 0.1,
        layer_norm_eps: 1e-12,
        causal: true,
        token_embedding_std: 1.0,
        head: EncoderHead::Token { classes: 2 },
        seed: 3,
    })
    .expect("valid encoder config");
    let ids = Array2::from_shape_fn((rows, seq), |(b, s)| (7 * b + 3 * s + 1) % vocab);
    let targets = Array1::from_shape_fn(rows * seq, |i| ((ids[[i / seq, i % seq]] + i) % 2) as i64);
    (
        TrainingTask::Encoder {
            model,
            batch: EncoderBatch {
                ids,
                attention_mask: None,
                targets,
            },
        },
        config,
    )
}

/// Builds a model family's task and loop settings at a size.
pub type MakeTask = fn(StepSize) -> (TrainingTask<f32>, TrainingConfig);

/// The three model families: `(name, task builder)`.
pub const MODELS: [(&str, MakeTask); 3] = [
    ("mlp", mlp_task),
    ("encoder", encoder_task),
    ("gru", gru_task),
];

/// A reference training loop on `task` (f32), stepped by the returned closure.
pub fn reference_stepper(
    task: &TrainingTask<f32>,
    config: &TrainingConfig,
) -> Result<Box<dyn FnMut() -> Result<()>>> {
    Ok(match task {
        TrainingTask::Mlp { model, batch } => {
            let mut trainer = Trainer::new(model.clone(), *config)?;
            let batch = batch.clone();
            Box::new(move || trainer.step(&batch).map(drop))
        }
        TrainingTask::Gru { model, batch } => {
            let mut trainer = Trainer::new(model.clone(), *config)?;
            let batch = batch.clone();
            Box::new(move || trainer.step(&batch).map(drop))
        }
        TrainingTask::Encoder { model, batch } => {
            let mut trainer = Trainer::new(model.clone(), *config)?;
            let batch = batch.clone();
            Box::new(move || trainer.step(&batch).map(drop))
        }
    })
}
