//! Host inputs and `Backend` calls for a [`Workload`], shared by `benches/ops.rs` and
//! `examples/report.rs` (`#[path]`-included there). The inputs are deterministic (fixed seed).

#![allow(dead_code, reason = "each includer uses a part")]

use mloracle::opencl::Workload;
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
        Workload::Elementwise { len, .. } | Workload::BceMean { len } => (1, len),
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
        _ => Ok(()),
    }
}
