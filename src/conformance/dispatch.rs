//! Every op of [`crate::backend::OPS`] callable by name on one generated input bundle, so that
//! properties that hold for **all** ops (no panic, the reference's error on bad input, IEEE
//! propagation of NaN and ±∞) are written once and run on any backend.
//!
//! An [`OpCase`] holds one array of every shape the ops take, built from a few dimensions so that
//! the shapes agree ([`OpCase::consistent`]); [`OpCase::with_mismatch`] then breaks one of them,
//! and the properties in `tests/conformance/reliability.rs` generate both kinds, with empty axes, and with NaN/±∞
//! injected. [`run_op`] calls one op and flattens every output into one `Vec<f64>`, so two
//! backends' results compare element by element.

use ndarray::{Array1, Array2, Array3, Array4};

use crate::reference::models::mlp::{Activation, Mlp, MlpBatch, MlpConfig, MlpLoss};
use crate::reference::models::{TrainingConfig, TrainingTask};
use crate::reference::optim::{AdamHyper, AdamState, LearningRateSchedule, SgdHyper, SgdState};
use crate::reference::Reduction;
use crate::rng::RandomKey;
use crate::{Backend, Error, Result, Scalar};

/// One input bundle for every op. Field names give the role; shapes are those of
/// [`OpCase::consistent`] unless [`OpCase::with_mismatch`] changed one.
#[derive(Debug, Clone, PartialEq)]
pub struct OpCase<T> {
    /// `[m, n]`: the main matrix (rows of row ops, logits, predictions, parameters).
    pub x: Array2<T>,
    /// `[m, n]`: a second matrix of the same shape (upstream gradients, targets, outputs).
    pub y: Array2<T>,
    /// `[n]`: a row vector (biases, γ).
    pub row: Array1<T>,
    /// `[n]`: a second row vector (β).
    pub row2: Array1<T>,
    /// `[n, k]`: the right operand of a matmul.
    pub right: Array2<T>,
    /// `[m, k]`: the upstream gradient of a matmul.
    pub grad_mk: Array2<T>,
    /// `[m·n]`: flat logits / parameters.
    pub flat: Array1<T>,
    /// `[m·n]`: flat labels / gradients.
    pub flat2: Array1<T>,
    /// `[b, m, n]`, `[b, n, k]`, `[b, m, k]`: batched matmul operands and gradient.
    pub batch_a: Array3<T>,
    /// See `batch_a`.
    pub batch_b: Array3<T>,
    /// See `batch_a`.
    pub batch_g: Array3<T>,
    /// `[b, h, s, d]`: attention q, k, v and upstream gradient.
    pub q: Array4<T>,
    /// See `q`.
    pub k: Array4<T>,
    /// See `q`.
    pub v: Array4<T>,
    /// See `q`.
    pub grad4: Array4<T>,
    /// `[b, s]`: additive key mask.
    pub key_mask: Array2<T>,
    /// `[m]`: token ids in `0..vocab` (or past it when broken).
    pub ids: Array1<usize>,
    /// Rows of the embedding table `x` (`vocab = m` when consistent).
    pub vocab: usize,
    /// `[m]`: class targets in `0..n` or −100.
    pub targets: Array1<i64>,
    /// `[m, n]`: a dropout keep mask.
    pub mask: Array2<bool>,
    /// A probability (dropout), possibly outside `[0, 1)`.
    pub p: f64,
    /// LayerNorm eps / Adam eps, possibly ≤ 0.
    pub eps: f64,
    /// A learning rate / max norm / clip value, possibly negative or non-finite.
    pub rate: f64,
    /// β1 / momentum, possibly outside `[0, 1)`.
    pub beta: f64,
    /// Axis for sum/mean (0, 1, or 2 = invalid).
    pub axis: usize,
    /// Bessel correction for `std_corrected`.
    pub correction: usize,
    /// Steps for `train`.
    pub steps: usize,
    /// Warmup steps of the Noam schedule `train` uses (0 is invalid).
    pub warmup: u64,
}

fn filled<T: Scalar, D: ndarray::Dimension, Sh: ndarray::ShapeBuilder<Dim = D>>(
    shape: Sh,
    values: &[f64],
    offset: usize,
) -> ndarray::Array<T, D> {
    let mut i = offset;
    ndarray::Array::from_shape_simple_fn(shape, || {
        i += 1;
        if values.is_empty() {
            T::zero()
        } else {
            T::narrow(values[i % values.len()])
        }
    })
}

impl<T: Scalar> OpCase<T> {
    /// A bundle whose shapes agree for every op: `x, y [m, n]`, `right [n, k]`, batched
    /// `[batch, m, n]·[batch, n, k]`, attention `[batch, heads, s, d]`, ids in `0..m` (the table
    /// is `x`, `vocab = m`), targets in `0..n` or −100 (every third). Values cycle through
    /// `values` (all zeros if empty), offset per array so arrays differ. Hyperparameters valid.
    #[allow(clippy::too_many_arguments)]
    pub fn consistent(
        m: usize,
        n: usize,
        k: usize,
        batch: usize,
        heads: usize,
        seq: usize,
        head_dim: usize,
        values: &[f64],
    ) -> Self {
        let ids = Array1::from_shape_fn(m, |i| (i * 7 + 3) % m.max(1));
        let targets = Array1::from_shape_fn(m, |i| {
            if i % 3 == 2 {
                -100
            } else {
                ((i * 5 + 1) % n.max(1)) as i64
            }
        });
        OpCase {
            x: filled((m, n), values, 0),
            y: filled((m, n), values, 3),
            row: filled(n, values, 5),
            row2: filled(n, values, 7),
            right: filled((n, k), values, 11),
            grad_mk: filled((m, k), values, 13),
            flat: filled(m * n, values, 17),
            flat2: filled(m * n, values, 19).mapv(|v: T| v.abs().min(T::one())),
            batch_a: filled((batch, m, n), values, 23),
            batch_b: filled((batch, n, k), values, 29),
            batch_g: filled((batch, m, k), values, 31),
            q: filled((batch, heads, seq, head_dim), values, 37),
            k: filled((batch, heads, seq, head_dim), values, 41),
            v: filled((batch, heads, seq, head_dim), values, 43),
            grad4: filled((batch, heads, seq, head_dim), values, 47),
            key_mask: Array2::from_shape_fn((batch, seq), |(_, j)| {
                if j % 4 == 3 {
                    T::narrow(-1e9)
                } else {
                    T::zero()
                }
            }),
            ids,
            vocab: m,
            targets,
            mask: Array2::from_shape_fn((m, n), |(i, j)| (i + 2 * j) % 3 != 0),
            p: 0.25,
            eps: 1e-5,
            rate: 0.1,
            beta: 0.9,
            axis: 0,
            correction: 1,
            steps: 2,
            warmup: 4,
        }
    }

    /// The same bundle with one thing broken, chosen by `which` (mod the number of choices):
    /// an array with one axis one longer, an id past the vocabulary, a target past the classes,
    /// or a hyperparameter out of its domain (negative/NaN rate, p ≥ 1, eps ≤ 0, β ≥ 1, axis 2,
    /// Noam warmup 0).
    pub fn with_mismatch(mut self, which: usize) -> Self {
        let grow2 = |a: &Array2<T>, axis: usize| {
            let (r, c) = a.dim();
            let shape = if axis == 0 { (r + 1, c) } else { (r, c + 1) };
            Array2::from_elem(shape, T::one())
        };
        match which % 17 {
            0 => self.y = grow2(&self.y, 0),
            1 => self.y = grow2(&self.y, 1),
            2 => self.row = Array1::from_elem(self.row.len() + 1, T::one()),
            3 => self.right = grow2(&self.right, 0),
            4 => self.grad_mk = grow2(&self.grad_mk, 1),
            5 => self.flat2 = Array1::from_elem(self.flat2.len() + 1, T::zero()),
            6 => {
                let (b, n, k) = self.batch_b.dim();
                self.batch_b = Array3::from_elem((b, n + 1, k), T::one());
            }
            7 => {
                let (b, h, s, d) = self.k.dim();
                self.k = Array4::from_elem((b, h, s, d + 1), T::one());
            }
            8 => {
                if let Some(first) = self.ids.iter_mut().next() {
                    *first = self.vocab;
                }
            }
            9 => {
                let classes = self.x.ncols() as i64;
                if let Some(first) = self.targets.iter_mut().next() {
                    *first = classes;
                }
            }
            10 => self.rate = -0.5,
            11 => self.rate = f64::NAN,
            12 => self.p = 1.0,
            13 => self.eps = 0.0,
            14 => self.beta = 1.0,
            15 => self.axis = 2,
            _ => self.warmup = 0,
        }
        self
    }
}

/// A tiny MLP task on `case.x` (inputs) with targets from `case.y`'s first column, for `train`.
fn mlp_task<T: Scalar>(case: &OpCase<T>) -> Result<TrainingTask<T>> {
    let n = case.x.ncols();
    let config = MlpConfig {
        widths: vec![n, 3, 1],
        hidden_activation: Activation::Relu,
        output_activation: Activation::Identity,
        loss: MlpLoss::Mse(Reduction::Mean),
        seed: 7,
    };
    let targets = if case.y.ncols() > 0 {
        case.y.column(0).to_owned().insert_axis(ndarray::Axis(1))
    } else {
        Array2::zeros((case.y.nrows(), 1))
    };
    Ok(TrainingTask::Mlp {
        model: Mlp::new(config)?,
        batch: MlpBatch {
            inputs: case.x.clone(),
            targets,
        },
    })
}

fn flat<T: Scalar, D: ndarray::Dimension>(a: &ndarray::Array<T, D>) -> Vec<f64> {
    a.iter().map(|v| v.widen()).collect()
}

fn cat(parts: &[Vec<f64>]) -> Vec<f64> {
    parts.concat()
}

/// Call op `op` of `backend` on `case`; every output flattened into one vector (a scalar loss is
/// one element; tuples are concatenated in order; a dropout mask contributes 0/1). Unknown names
/// are `InvalidParameter`.
pub fn run_op<T: Scalar>(backend: &impl Backend<T>, op: &str, c: &OpCase<T>) -> Result<Vec<f64>> {
    let b = backend;
    let one = T::one();
    let slope = T::narrow(0.01);
    Ok(match op {
        "log_sum_exp_rows" => flat(&b.log_sum_exp_rows(c.x.view())?),
        "softmax_rows" => flat(&b.softmax_rows(c.x.view())?),
        "log_softmax_rows" => flat(&b.log_softmax_rows(c.x.view())?),
        "bce_with_logits_mean" => vec![b
            .bce_with_logits_mean(c.flat.view(), c.flat2.view())?
            .widen()],
        "bce_with_logits_mean_backward" => {
            flat(&b.bce_with_logits_mean_backward(c.flat.view(), c.flat2.view(), one)?)
        }
        "matmul" => flat(&b.matmul(c.x.view(), c.right.view())?),
        "relu" => flat(&b.relu(c.x.view())?),
        "relu_backward" => flat(&b.relu_backward(c.x.view(), c.y.view())?),
        "leaky_relu" => flat(&b.leaky_relu(c.x.view(), slope)?),
        "leaky_relu_backward" => flat(&b.leaky_relu_backward(c.x.view(), c.y.view(), slope)?),
        "sigmoid" => flat(&b.sigmoid(c.x.view())?),
        "sigmoid_backward" => flat(&b.sigmoid_backward(c.x.view(), c.y.view())?),
        "tanh" => flat(&b.tanh(c.x.view())?),
        "tanh_backward" => flat(&b.tanh_backward(c.x.view(), c.y.view())?),
        "gelu" => flat(&b.gelu(c.x.view())?),
        "gelu_backward" => flat(&b.gelu_backward(c.x.view(), c.y.view())?),
        "add_rows" => flat(&b.add_rows(c.x.view(), c.row.view())?),
        "layer_norm" => flat(&b.layer_norm(c.x.view(), c.row.view(), c.row2.view(), c.eps)?),
        "layer_norm_backward" => {
            let (gx, gg, gb) =
                b.layer_norm_backward(c.x.view(), c.row.view(), c.row2.view(), c.eps, c.y.view())?;
            cat(&[flat(&gx), flat(&gg), flat(&gb)])
        }
        "matmul_backward" => {
            let (ga, gb) = b.matmul_backward(c.x.view(), c.right.view(), c.grad_mk.view())?;
            cat(&[flat(&ga), flat(&gb)])
        }
        "batched_matmul" => flat(&b.batched_matmul(c.batch_a.view(), c.batch_b.view())?),
        "batched_matmul_backward" => {
            let (ga, gb) =
                b.batched_matmul_backward(c.batch_a.view(), c.batch_b.view(), c.batch_g.view())?;
            cat(&[flat(&ga), flat(&gb)])
        }
        "transpose" => flat(&b.transpose(c.x.view())?),
        "add_rows_backward" => {
            let (gx, gb) = b.add_rows_backward(c.y.view())?;
            cat(&[flat(&gx), flat(&gb)])
        }
        "mul_rows" => flat(&b.mul_rows(c.x.view(), c.row.view())?),
        "mul_rows_backward" => {
            let (gx, gb) = b.mul_rows_backward(c.x.view(), c.row.view(), c.y.view())?;
            cat(&[flat(&gx), flat(&gb)])
        }
        "sum_axis" => flat(&b.sum_axis(c.x.view(), c.axis)?),
        "sum_axis_backward" => flat(&b.sum_axis_backward(c.x.dim(), c.axis, c.row.view())?),
        "mean_axis" => flat(&b.mean_axis(c.x.view(), c.axis)?),
        "mean_axis_backward" => flat(&b.mean_axis_backward(c.x.dim(), c.axis, c.row.view())?),
        "softmax_rows_backward" => flat(&b.softmax_rows_backward(c.x.view(), c.y.view())?),
        "log_softmax_rows_backward" => flat(&b.log_softmax_rows_backward(c.x.view(), c.y.view())?),
        "bce_with_logits" => {
            vec![b
                .bce_with_logits(c.flat.view(), c.flat2.view(), Reduction::Sum)?
                .widen()]
        }
        "bce_with_logits_backward" => {
            flat(&b.bce_with_logits_backward(c.flat.view(), c.flat2.view(), Reduction::Sum, one)?)
        }
        "mse" => vec![b.mse(c.x.view(), c.y.view(), Reduction::Mean)?.widen()],
        "mse_backward" => flat(&b.mse_backward(c.x.view(), c.y.view(), Reduction::Mean, one)?),
        "cross_entropy" => vec![b
            .cross_entropy(c.x.view(), c.targets.view(), -100, Reduction::Mean)?
            .widen()],
        "cross_entropy_backward" => flat(&b.cross_entropy_backward(
            c.x.view(),
            c.targets.view(),
            -100,
            Reduction::Mean,
            one,
        )?),
        "embedding" => flat(&b.embedding(c.x.view(), c.ids.view())?),
        "embedding_backward" => flat(&b.embedding_backward(c.vocab, c.ids.view(), c.y.view())?),
        "dropout" => {
            let out = b.dropout(
                c.x.view(),
                c.p,
                RandomKey {
                    seed: 5,
                    step: 3,
                    tensor_id: 1,
                },
            )?;
            let mask: Vec<f64> = out.mask.iter().map(|&k| f64::from(u8::from(k))).collect();
            cat(&[flat(&out.output), mask, vec![out.scale.widen()]])
        }
        "dropout_backward" => {
            flat(&b.dropout_backward(c.y.view(), c.mask.view(), T::narrow(1.0 / (1.0 - 0.25)))?)
        }
        "attention" => flat(&b.attention(c.q.view(), c.k.view(), c.v.view(), c.key_mask.view())?),
        "attention_backward" => {
            let (gq, gk, gv) = b.attention_backward(
                c.q.view(),
                c.k.view(),
                c.v.view(),
                c.key_mask.view(),
                c.grad4.view(),
            )?;
            cat(&[flat(&gq), flat(&gk), flat(&gv)])
        }
        "std_corrected" => vec![b.std_corrected(c.flat.view(), c.correction)?.widen()],
        "std_corrected_backward" => {
            flat(&b.std_corrected_backward(c.flat.view(), c.correction, one)?)
        }
        "sgd_step" => {
            let mut hyper = SgdHyper::plain(c.rate);
            hyper.momentum = c.beta;
            let state = SgdState {
                momentum_buffer: Some(c.flat2.clone()),
                last_step: Array1::zeros(c.flat.len()),
            };
            let (theta, next) = b.sgd_step(&state, c.flat.view(), c.flat2.view(), &hyper)?;
            let buffer = next.momentum_buffer.map(|m| flat(&m)).unwrap_or_default();
            cat(&[flat(&theta), buffer])
        }
        "adam_step" => {
            let hyper = AdamHyper::new(c.rate, c.beta, 0.999, c.eps);
            let mut state = AdamState::zeros(c.flat.len());
            state.step = 2;
            state.first_moment = c.flat2.clone();
            state.second_moment = c.flat2.mapv(|v| v * v);
            let (theta, next) = b.adam_step(&state, c.flat.view(), c.flat2.view(), &hyper)?;
            cat(&[
                flat(&theta),
                flat(&next.first_moment),
                flat(&next.second_moment),
            ])
        }
        "clip_grad_norm" => {
            let mut grads = vec![c.flat.clone(), c.row.clone()];
            let norm = b.clip_grad_norm(&mut grads, c.rate)?;
            cat(&[vec![norm.widen()], flat(&grads[0]), flat(&grads[1])])
        }
        "clip_grad_value" => {
            let mut grads = vec![c.flat.clone(), c.row.clone()];
            b.clip_grad_value(&mut grads, c.rate)?;
            cat(&[flat(&grads[0]), flat(&grads[1])])
        }
        "train" => {
            let task = mlp_task(c)?;
            let mut config = TrainingConfig::sgd(c.rate);
            config.schedule = LearningRateSchedule::Noam {
                model_size: 4,
                factor: 1.0,
                warmup_steps: c.warmup,
            };
            let run = b.train(&task, &config, c.steps)?;
            let mut out: Vec<f64> = run.losses.iter().map(|v| v.widen()).collect();
            for p in &run.parameters {
                out.extend(flat(p));
            }
            out
        }
        _ => {
            return Err(Error::InvalidParameter {
                op: "run_op",
                name: "op",
                value: op.to_string(),
                reason: "not a name in mloracle::backend::OPS".into(),
            })
        }
    })
}

/// IEEE class of a value, for comparing non-finite patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A finite value.
    Finite,
    /// NaN.
    Nan,
    /// +∞.
    PosInf,
    /// −∞.
    NegInf,
}

/// The IEEE class of `v`.
pub fn class(v: f64) -> Class {
    if v.is_nan() {
        Class::Nan
    } else if v == f64::INFINITY {
        Class::PosInf
    } else if v == f64::NEG_INFINITY {
        Class::NegInf
    } else {
        Class::Finite
    }
}
