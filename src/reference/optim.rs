//! Optimizers, gradient clipping and learning-rate schedules: PyTorch semantics as THEORY.md §0
//! states them, in plain loops.
//!
//! Conventions shared by everything here:
//! - A model's parameters are a list of flattened 1-D tensors, `&mut [Array1<T>]`, with one
//!   gradient tensor of the same length each. The optimizer keeps one state per tensor.
//! - Hyperparameters are `f64`, like PyTorch's Python floats. Scalars derived from them
//!   (`1 − β1`, bias corrections, `1 − lr·wd`) are computed in f64 and then rounded to `T`
//!   once, as PyTorch's CPU kernels receive them as Python floats and compute in the tensor's
//!   dtype; every per-coordinate operation is in `T`.
//! - Style: `&mut self` state structs ([`Sgd`], [`Adam`]) over pure per-tensor step functions
//!   ([`sgd_step`], [`adam_step`]) that take a state and return the next one, so a backend can be
//!   checked one step at a time from any state.
//! - Errors: a list or tensor length mismatch → `ShapeMismatch`; an invalid hyperparameter →
//!   `InvalidParameter` (checked before anything is mutated). NaN/∞ in parameters or gradients
//!   are data and propagate per IEEE 754.

use ndarray::{Array1, ArrayView1};
use num_traits::Float;

use crate::{Error, Result};

/// Round an f64 hyperparameter (or a scalar derived from one) to `T`.
fn scalar<T: Float>(value: f64) -> T {
    T::from(value).unwrap_or_else(T::nan)
}

fn invalid(op: &'static str, name: &'static str, value: f64, reason: &str) -> Error {
    Error::InvalidParameter {
        op,
        name,
        value: format!("{value:e}"),
        reason: reason.to_string(),
    }
}

/// `value` finite and ≥ 0.
fn non_negative(op: &'static str, name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(invalid(op, name, value, "must be finite and ≥ 0"))
    }
}

/// `value ∈ [0, 1)`.
fn unit_interval(op: &'static str, name: &'static str, value: f64) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(op, name, value, "must lie in [0, 1)"))
    }
}

fn same_lengths(op: &'static str, what: &str, first: usize, second: usize) -> Result<()> {
    if first == second {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            detail: format!("{what}: {first} vs {second}, they must be equal"),
        })
    }
}

/// Whether the gradients a training loop hands to the optimizer are fresh each step or summed
/// over steps.
///
/// PyTorch accumulates into `.grad` until `zero_grad()` is called. Seed 003's loop never calls
/// it, so Adam is fed the clipped running sum `G_t = c_t·(G_{t−1} + ∇L_t)` (THEORY.md D1): once
/// the loss is 0 the input is frozen at norm ≈ 1 and the weights drift by ≈ lr per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GradientMode {
    /// `zero_grad()` before every backward pass: the optimizer sees `∇L_t`.
    #[default]
    ZeroEachStep,
    /// No `zero_grad()`: the stored gradient becomes `G_{t−1} + ∇L_t` (after clipping, if the
    /// loop clips, `G` is the clipped tensor).
    Accumulate,
}

/// Store a fresh gradient according to `mode` (PyTorch's `.grad` semantics).
/// ```text
/// ZeroEachStep: stored ← fresh
/// Accumulate:   stored ← stored + fresh     (elementwise, one rounding)
/// ```
/// Errors: `ShapeMismatch` if the lists or any tensor lengths differ.
pub fn store_gradients<T: Float>(
    stored: &mut [Array1<T>],
    fresh: &[Array1<T>],
    mode: GradientMode,
) -> Result<()> {
    const OP: &str = "store_gradients";
    same_lengths(OP, "tensor count", stored.len(), fresh.len())?;
    for (s, f) in stored.iter().zip(fresh) {
        same_lengths(OP, "tensor length", s.len(), f.len())?;
    }
    for (s, f) in stored.iter_mut().zip(fresh) {
        for (stored_value, &fresh_value) in s.iter_mut().zip(f.iter()) {
            *stored_value = match mode {
                GradientMode::ZeroEachStep => fresh_value,
                GradientMode::Accumulate => *stored_value + fresh_value,
            };
        }
    }
    Ok(())
}

/// Apply a pure per-tensor optimizer step to every tensor, in place. Every tensor is stepped
/// (and validated) before anything is written, so an error leaves parameters and states
/// unchanged. Shared by [`Sgd::step`] and [`Adam::step`].
fn step_every_tensor<T: Float, S>(
    op: &'static str,
    states: &mut [S],
    parameters: &mut [Array1<T>],
    gradients: &[Array1<T>],
    step: impl Fn(&S, ArrayView1<'_, T>, ArrayView1<'_, T>) -> Result<(Array1<T>, S)>,
) -> Result<()> {
    same_lengths(
        op,
        "parameter tensors vs states",
        parameters.len(),
        states.len(),
    )?;
    same_lengths(
        op,
        "parameter vs gradient tensors",
        parameters.len(),
        gradients.len(),
    )?;
    let results = states
        .iter()
        .zip(parameters.iter())
        .zip(gradients)
        .map(|((state, theta), gradient)| step(state, theta.view(), gradient.view()))
        .collect::<Result<Vec<_>>>()?;
    for ((theta, state), (new_theta, new_state)) in
        parameters.iter_mut().zip(states.iter_mut()).zip(results)
    {
        *theta = new_theta;
        *state = new_state;
    }
    Ok(())
}

/// `n` zeros, or `TooLarge` when the host cannot allocate them.
fn zeros<T: Float>(op: &'static str, n: usize) -> Result<Array1<T>> {
    crate::validate::filled_vec(op, n, T::zero()).map(Array1::from)
}

// ---------------------------------------------------------------------------------------------
// SGD
// ---------------------------------------------------------------------------------------------

/// Hyperparameters of [`Sgd`] (PyTorch `torch.optim.SGD`, `maximize=False`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdHyper {
    /// Learning rate `lr`: finite, ≥ 0.
    pub learning_rate: f64,
    /// Momentum `μ ∈ [0, 1)` (PyTorch accepts any μ ≥ 0; μ ≥ 1 is never stable, THEORY.md C2).
    pub momentum: f64,
    /// Dampening `d ∈ [0, 1]`.
    pub dampening: f64,
    /// Nesterov momentum; requires `momentum > 0` and `dampening = 0` (as PyTorch).
    pub nesterov: bool,
    /// L2 weight decay `wd`: finite, ≥ 0 (added to the gradient).
    pub weight_decay: f64,
}

impl SgdHyper {
    /// Plain gradient descent with learning rate `learning_rate`.
    pub fn plain(learning_rate: f64) -> Self {
        SgdHyper {
            learning_rate,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// Check every field; `InvalidParameter` names the first one out of its domain.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "sgd_step";
        non_negative(OP, "learning_rate", self.learning_rate)?;
        unit_interval(OP, "momentum", self.momentum)?;
        if !(0.0..=1.0).contains(&self.dampening) {
            return Err(invalid(
                OP,
                "dampening",
                self.dampening,
                "must lie in [0, 1]",
            ));
        }
        non_negative(OP, "weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(invalid(
                OP,
                "nesterov",
                self.momentum,
                "Nesterov momentum requires momentum > 0 and dampening = 0",
            ));
        }
        Ok(())
    }
}

/// State of [`Sgd`] for one parameter tensor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SgdState<T> {
    /// PyTorch's `momentum_buffer`: `None` before the first step with momentum (and always
    /// without momentum).
    pub momentum_buffer: Option<Array1<T>>,
    /// The last update per coordinate, `s = lr·d`, so that `θ_new = θ − s` (zeros before the
    /// first step).
    pub last_step: Array1<T>,
}

/// The checks of [`sgd_step`], in its order: [`SgdHyper::validate`], then `ShapeMismatch` if the
/// gradient or the momentum buffer (when there is one) differs in length from the parameters.
/// Public so that device backends return the same errors (STYLE §2, error parity).
pub fn validate_sgd_step(
    hyper: &SgdHyper,
    parameter_len: usize,
    gradient_len: usize,
    momentum_buffer_len: Option<usize>,
) -> Result<()> {
    const OP: &str = "sgd_step";
    hyper.validate()?;
    same_lengths(OP, "parameters vs gradient", parameter_len, gradient_len)?;
    if let Some(buffer_len) = momentum_buffer_len {
        same_lengths(OP, "momentum buffer", buffer_len, parameter_len)?;
    }
    Ok(())
}

/// One SGD step for one tensor, pure: returns the new parameters and state.
/// ```text
/// d ← g + wd·θ                         (if wd ≠ 0)
/// if μ ≠ 0:
///     buf ← d                          (first step)
///     buf ← μ·buf + (1 − dampening)·d  (later steps)
///     d ← d + μ·buf   (nesterov)   or   d ← buf
/// s = lr·d,   θ ← θ − s
/// ```
/// PyTorch `torch.optim.SGD` (single-tensor path), same operation order: `θ + (−lr)·d` equals
/// `θ − lr·d` bitwise. Errors: `ShapeMismatch` if `parameters`, `gradient` or a non-empty
/// state differ in length; `InvalidParameter` from [`SgdHyper::validate`].
pub fn sgd_step<T: Float>(
    state: &SgdState<T>,
    parameters: ArrayView1<'_, T>,
    gradient: ArrayView1<'_, T>,
    hyper: &SgdHyper,
) -> Result<(Array1<T>, SgdState<T>)> {
    validate_sgd_step(
        hyper,
        parameters.len(),
        gradient.len(),
        state.momentum_buffer.as_ref().map(Array1::len),
    )?;
    let learning_rate = scalar::<T>(hyper.learning_rate);
    let momentum = scalar::<T>(hyper.momentum);
    let keep = scalar::<T>(1.0 - hyper.dampening);
    let weight_decay = scalar::<T>(hyper.weight_decay);
    let mut direction: Array1<T> = gradient.to_owned();
    if hyper.weight_decay != 0.0 {
        for (d, &theta) in direction.iter_mut().zip(parameters.iter()) {
            *d = *d + weight_decay * theta;
        }
    }
    let mut momentum_buffer = None;
    if hyper.momentum != 0.0 {
        let buffer = match &state.momentum_buffer {
            None => direction.clone(),
            Some(old) => old
                .iter()
                .zip(direction.iter())
                .map(|(&b, &d)| momentum * b + keep * d)
                .collect(),
        };
        if hyper.nesterov {
            for (d, &b) in direction.iter_mut().zip(buffer.iter()) {
                *d = *d + momentum * b;
            }
        } else {
            direction.assign(&buffer);
        }
        momentum_buffer = Some(buffer);
    }
    let last_step: Array1<T> = direction.mapv(|d| learning_rate * d);
    let new_parameters = parameters
        .iter()
        .zip(last_step.iter())
        .map(|(&theta, &s)| theta - s)
        .collect();
    Ok((
        new_parameters,
        SgdState {
            momentum_buffer,
            last_step,
        },
    ))
}

/// SGD over a list of parameter tensors, with one [`SgdState`] per tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd<T> {
    /// Hyperparameters; a schedule may change `learning_rate` between steps.
    pub hyper: SgdHyper,
    /// One state per parameter tensor.
    pub states: Vec<SgdState<T>>,
}

impl<T: Float> Sgd<T> {
    /// A fresh optimizer for tensors of the given lengths. Errors: `InvalidParameter`;
    /// `TooLarge` for a length the host cannot allocate.
    pub fn new(hyper: SgdHyper, tensor_lengths: &[usize]) -> Result<Self> {
        hyper.validate()?;
        Ok(Sgd {
            hyper,
            states: tensor_lengths
                .iter()
                .map(|&n| {
                    Ok(SgdState {
                        momentum_buffer: None,
                        last_step: zeros("Sgd::new", n)?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    /// One step of [`sgd_step`] on every tensor, in place. Validates everything first, so an
    /// error leaves parameters and state unchanged.
    pub fn step(&mut self, parameters: &mut [Array1<T>], gradients: &[Array1<T>]) -> Result<()> {
        let hyper = self.hyper;
        step_every_tensor(
            "sgd_step",
            &mut self.states,
            parameters,
            gradients,
            |state, theta, gradient| sgd_step(state, theta, gradient, &hyper),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Adam / AdamW
// ---------------------------------------------------------------------------------------------

/// Hyperparameters of [`Adam`] (PyTorch `torch.optim.Adam`, or `AdamW` when `decoupled`;
/// no amsgrad, no maximize).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamHyper {
    /// Learning rate `lr`: finite, ≥ 0.
    pub learning_rate: f64,
    /// `β1 ∈ [0, 1)`.
    pub beta1: f64,
    /// `β2 ∈ [0, 1)`.
    pub beta2: f64,
    /// `eps`: finite and **> 0**. PyTorch accepts `eps = 0`, where a coordinate whose gradients
    /// were all 0 steps by `0/0 = NaN`; the oracle rejects it (STYLE §4.3). THEORY.md D2's bound
    /// is stated for `eps = 0` but holds for every `eps > 0` (eps only lowers the step), so the
    /// property tests use a tiny positive eps.
    pub eps: f64,
    /// Weight decay `wd`: finite, ≥ 0.
    pub weight_decay: f64,
    /// `false`: Adam's L2 decay, `g ← g + wd·θ`. `true`: AdamW's decoupled decay,
    /// `θ ← θ·(1 − lr·wd)` before the update.
    pub decoupled: bool,
}

impl AdamHyper {
    /// Adam with the given learning rate, betas and eps, no weight decay.
    pub fn new(learning_rate: f64, beta1: f64, beta2: f64, eps: f64) -> Self {
        AdamHyper {
            learning_rate,
            beta1,
            beta2,
            eps,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// Check every field; `InvalidParameter` names the first one out of its domain.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "adam_step";
        non_negative(OP, "learning_rate", self.learning_rate)?;
        unit_interval(OP, "beta1", self.beta1)?;
        unit_interval(OP, "beta2", self.beta2)?;
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(invalid(OP, "eps", self.eps, "must be finite and > 0"));
        }
        non_negative(OP, "weight_decay", self.weight_decay)
    }
}

/// State of [`Adam`] for one parameter tensor (PyTorch's `state[p]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState<T> {
    /// Steps taken so far, `t` (the next step is `t + 1`).
    pub step: u64,
    /// First moment `m` (`exp_avg`).
    pub first_moment: Array1<T>,
    /// Second moment `v` (`exp_avg_sq`).
    pub second_moment: Array1<T>,
    /// The last Adam update per coordinate, `s_t = lr·m̂/(sqrt(v̂) + eps)` (signed; zeros before
    /// the first step). THEORY.md D2 bounds this, read here rather than from `θ` differences.
    pub last_step: Array1<T>,
}

impl<T: Float> AdamState<T> {
    /// The zero state of a tensor of `length` coordinates (`t = 0`, `m = v = 0`).
    pub fn zeros(length: usize) -> Self {
        AdamState {
            step: 0,
            first_moment: Array1::zeros(length),
            second_moment: Array1::zeros(length),
            last_step: Array1::zeros(length),
        }
    }
}

/// The checks of [`adam_step`], in its order: [`AdamHyper::validate`], then `ShapeMismatch` if
/// the gradient, first or second moment differs in length from the parameters. Public so that
/// device backends return the same errors.
pub fn validate_adam_step(
    hyper: &AdamHyper,
    parameter_len: usize,
    gradient_len: usize,
    first_moment_len: usize,
    second_moment_len: usize,
) -> Result<()> {
    const OP: &str = "adam_step";
    hyper.validate()?;
    let n = parameter_len;
    same_lengths(OP, "parameters vs gradient", n, gradient_len)?;
    same_lengths(OP, "parameters vs first moment", n, first_moment_len)?;
    same_lengths(OP, "parameters vs second moment", n, second_moment_len)
}

/// The bias corrections `(1 − β1^t, 1 − β2^t)` of step `t` in f64, as [`adam_step`] computes
/// them (`powf`, as Python's `beta ** step`) before rounding them to `T`.
#[allow(clippy::cast_precision_loss, reason = "t < 2^53 is exact in f64")]
pub fn adam_bias_corrections(hyper: &AdamHyper, step: u64) -> (f64, f64) {
    let t = step as f64;
    (1.0 - hyper.beta1.powf(t), 1.0 - hyper.beta2.powf(t))
}

/// One Adam (or AdamW) step for one tensor, pure: returns the new parameters and state.
/// ```text
/// t ← t + 1
/// θ ← θ·(1 − lr·wd)               (AdamW, decoupled)      g ← g + wd·θ   (Adam, wd ≠ 0)
/// m ← β1·m + (1 − β1)·g
/// v ← β2·v + (1 − β2)·(g·g)
/// m̂ = m / (1 − β1^t),   v̂ = v / (1 − β2^t)
/// s_t = lr · (m̂ / (sqrt(v̂) + eps))       (eps outside the sqrt, after bias correction)
/// θ ← θ − s_t
/// ```
/// Evaluation order, exactly as written, each operation rounded in `T`: `β1`, `1 − β1`, `β2`,
/// `1 − β2`, `1 − β1^t`, `1 − β2^t`, `1 − lr·wd`, `lr`, `eps` and `wd` are computed in f64
/// (`β^t` by `powf`, as Python's `beta ** step`) and rounded to `T` once.
///
/// Deviations from PyTorch's single-tensor path, all value-preserving with different rounding
/// (so the comparison with PyTorch is within THEORY.md D2's tolerance, never bitwise; E1):
/// PyTorch forms `m` as `m.lerp(g, 1 − β1)` and `v` as `β2·v + ((1 − β2)·g)·g`, and applies
/// the step as `θ − (lr/(1 − β1^t))·m/(sqrt(v)/sqrt(1 − β2^t) + eps)`. The explicit `m̂`, `v̂`
/// form here is THEORY.md §0's and commutes with power-of-two scaling of `g` and `eps` exactly
/// (C5 holds bitwise).
///
/// Errors: `ShapeMismatch` if parameters, gradient and state differ in length;
/// `InvalidParameter` from [`AdamHyper::validate`]. NaN/∞ propagate.
pub fn adam_step<T: Float>(
    state: &AdamState<T>,
    parameters: ArrayView1<'_, T>,
    gradient: ArrayView1<'_, T>,
    hyper: &AdamHyper,
) -> Result<(Array1<T>, AdamState<T>)> {
    let n = parameters.len();
    validate_adam_step(
        hyper,
        n,
        gradient.len(),
        state.first_moment.len(),
        state.second_moment.len(),
    )?;
    let step = state.step.saturating_add(1);
    let (correction1, correction2) = adam_bias_corrections(hyper, step);
    let beta1 = scalar::<T>(hyper.beta1);
    let one_minus_beta1 = scalar::<T>(1.0 - hyper.beta1);
    let beta2 = scalar::<T>(hyper.beta2);
    let one_minus_beta2 = scalar::<T>(1.0 - hyper.beta2);
    let bias_correction1 = scalar::<T>(correction1);
    let bias_correction2 = scalar::<T>(correction2);
    let learning_rate = scalar::<T>(hyper.learning_rate);
    let eps = scalar::<T>(hyper.eps);
    let weight_decay = scalar::<T>(hyper.weight_decay);
    let decay_factor = scalar::<T>(1.0 - hyper.learning_rate * hyper.weight_decay);

    let mut new_parameters = Array1::zeros(n);
    let mut next = AdamState::zeros(n);
    next.step = step;
    for i in 0..n {
        let mut theta = parameters[i];
        let mut g = gradient[i];
        if hyper.weight_decay != 0.0 {
            if hyper.decoupled {
                theta = theta * decay_factor;
            } else {
                g = g + weight_decay * theta;
            }
        }
        let m = beta1 * state.first_moment[i] + one_minus_beta1 * g;
        let v = beta2 * state.second_moment[i] + one_minus_beta2 * (g * g);
        let m_hat = m / bias_correction1;
        let v_hat = v / bias_correction2;
        let s = learning_rate * (m_hat / (v_hat.sqrt() + eps));
        new_parameters[i] = theta - s;
        next.first_moment[i] = m;
        next.second_moment[i] = v;
        next.last_step[i] = s;
    }
    Ok((new_parameters, next))
}

/// Adam over a list of parameter tensors, with one [`AdamState`] per tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam<T> {
    /// Hyperparameters; a schedule may change `learning_rate` between steps (LambdaLR).
    pub hyper: AdamHyper,
    /// One state per parameter tensor.
    pub states: Vec<AdamState<T>>,
}

impl<T: Float> Adam<T> {
    /// A fresh optimizer (zero state) for tensors of the given lengths.
    /// Errors: `InvalidParameter`; `TooLarge` for a length the host cannot allocate.
    pub fn new(hyper: AdamHyper, tensor_lengths: &[usize]) -> Result<Self> {
        hyper.validate()?;
        Ok(Adam {
            hyper,
            states: tensor_lengths
                .iter()
                .map(|&n| {
                    Ok(AdamState {
                        step: 0,
                        first_moment: zeros("Adam::new", n)?,
                        second_moment: zeros("Adam::new", n)?,
                        last_step: zeros("Adam::new", n)?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    /// One step of [`adam_step`] on every tensor, in place. Validates everything first, so an
    /// error leaves parameters and state unchanged.
    pub fn step(&mut self, parameters: &mut [Array1<T>], gradients: &[Array1<T>]) -> Result<()> {
        let hyper = self.hyper;
        step_every_tensor(
            "adam_step",
            &mut self.states,
            parameters,
            gradients,
            |state, theta, gradient| adam_step(state, theta, gradient, &hyper),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Clipping
// ---------------------------------------------------------------------------------------------

/// PyTorch's constant in `clip_grad_norm_`'s coefficient, `max_norm/(total_norm + 1e-6)`.
pub const CLIP_NORM_OFFSET: f64 = 1e-6;

/// The check of [`clip_grad_norm`]: `InvalidParameter` unless `max_norm` is finite and ≥ 0.
pub fn validate_clip_grad_norm(max_norm: f64) -> Result<()> {
    non_negative("clip_grad_norm", "max_norm", max_norm)
}

/// The check of [`clip_grad_value`]: `InvalidParameter` unless `clip_value` is finite and ≥ 0.
pub fn validate_clip_grad_value(clip_value: f64) -> Result<()> {
    non_negative("clip_grad_value", "clip_value", clip_value)
}

/// Global-norm gradient clipping (PyTorch `clip_grad_norm_(grads, max_norm)`, `norm_type = 2`,
/// `error_if_nonfinite = False`), in place; returns the **pre-clip** norm `N`.
/// ```text
/// N    = sqrt(Σ_tensors Σ_i g_i²)          (one sequential sum over the concatenation)
/// coef = M / (N + 1e-6)                     (M and 1e-6 rounded to T)
/// g_i ← g_i · min(coef, 1)                  (always multiplied, also by exactly 1.0)
/// ```
/// PyTorch takes per-tensor norms and then the norm of those; the value is the same, and the
/// bound of THEORY.md D5, post-clip norm `≤ M(1 + γ_n/2 + 4u)`
/// ([`crate::tolerance::clip_grad_norm_relative`]), holds for either order. Multiplying by
/// 1.0 leaves gradients bitwise unchanged whenever clipping is inactive. No gradients (or only
/// empty tensors) give `N = 0`.
///
/// Errors: `InvalidParameter` if `max_norm` is negative or not finite. A NaN/∞ gradient makes
/// `N` NaN/∞ and propagates into every gradient (`coef = 0` for `N = ∞`, so finite entries
/// become 0 and infinite ones NaN), as in PyTorch.
pub fn clip_grad_norm<T: Float>(gradients: &mut [Array1<T>], max_norm: f64) -> Result<T> {
    validate_clip_grad_norm(max_norm)?;
    let mut sum_of_squares = T::zero();
    for tensor in gradients.iter() {
        for &g in tensor.iter() {
            sum_of_squares = sum_of_squares + g * g;
        }
    }
    let total_norm = sum_of_squares.sqrt();
    let coefficient = scalar::<T>(max_norm) / (total_norm + scalar::<T>(CLIP_NORM_OFFSET));
    // NaN-propagating clamp at 1, like torch.clamp(coef, max=1.0).
    let clamped = if coefficient > T::one() {
        T::one()
    } else {
        coefficient
    };
    for tensor in gradients.iter_mut() {
        for g in tensor.iter_mut() {
            *g = *g * clamped;
        }
    }
    Ok(total_norm)
}

/// Elementwise gradient clipping (PyTorch `clip_grad_value_(grads, clip_value)`), in place.
/// ```text
/// g_i ← min(max(g_i, −c), c)
/// ```
/// Exact (no rounding). NaN stays NaN (like `torch.clamp`), ±∞ become ±c.
/// Errors: `InvalidParameter` if `clip_value` is negative or not finite.
pub fn clip_grad_value<T: Float>(gradients: &mut [Array1<T>], clip_value: f64) -> Result<()> {
    validate_clip_grad_value(clip_value)?;
    let limit = scalar::<T>(clip_value);
    for tensor in gradients.iter_mut() {
        for g in tensor.iter_mut() {
            if *g > limit {
                *g = limit;
            } else if *g < -limit {
                *g = -limit;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Learning-rate schedules
// ---------------------------------------------------------------------------------------------

/// A learning-rate schedule: the multiplier `λ(i)` of the base rate at optimizer step `i`
/// (0-based: the `i`-th call of `optimizer.step()` uses `base·λ(i)`, PyTorch `LambdaLR`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LearningRateSchedule {
    /// `λ(i) = 1`.
    Constant,
    /// PyTorch `StepLR(step_size, gamma)`: `λ(i) = gamma^⌊i / step_size⌋`.
    Step {
        /// Steps between decays, ≥ 1.
        step_size: u64,
        /// Decay factor, finite and ≥ 0.
        gamma: f64,
    },
    /// The Noam / inverse-square-root warmup of Vaswani et al. (2017, eq. 3), as seed 003's
    /// `rate()` through `LambdaLR`, with step 0 mapped to 1:
    /// `λ(i) = factor·d^−0.5·min(s^−0.5, s·w^−1.5)`, `s = max(i, 1)`.
    Noam {
        /// Model width `d` ≥ 1.
        model_size: u64,
        /// Overall factor, finite and ≥ 0.
        factor: f64,
        /// Warmup steps `w` ≥ 1.
        warmup_steps: u64,
    },
}

impl LearningRateSchedule {
    /// Check the schedule's parameters: `InvalidParameter` for `step_size = 0`, `warmup_steps =
    /// 0` (then `w^−1.5` is infinite), `model_size = 0`, or a negative/non-finite `gamma` or
    /// `factor`.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "learning_rate_schedule";
        match *self {
            LearningRateSchedule::Constant => Ok(()),
            LearningRateSchedule::Step { step_size, gamma } => {
                if step_size == 0 {
                    return Err(invalid(OP, "step_size", 0.0, "must be ≥ 1"));
                }
                non_negative(OP, "gamma", gamma)
            }
            LearningRateSchedule::Noam {
                model_size,
                factor,
                warmup_steps,
            } => {
                if model_size == 0 {
                    return Err(invalid(OP, "model_size", 0.0, "must be ≥ 1"));
                }
                if warmup_steps == 0 {
                    return Err(invalid(
                        OP,
                        "warmup_steps",
                        0.0,
                        "must be ≥ 1 (w^-1.5 is infinite at 0)",
                    ));
                }
                non_negative(OP, "factor", factor)
            }
        }
    }

    /// The multiplier `λ(step)`, in f64.
    /// ```text
    /// Constant: 1
    /// Step:     gamma^⌊i / step_size⌋          (powi on the integer quotient)
    /// Noam:     factor · (d^−0.5 · min(s^−0.5, s · w^−1.5)),   s = max(i, 1)
    /// ```
    /// Noam is evaluated in seed 003's order with `powf` for Python's `**`; bitwise equal to
    /// Python when the same libm `pow` is used (THEORY.md D4). PyTorch's `StepLR` multiplies the
    /// current rate by `gamma` at each boundary (one rounding per decay) instead of the closed
    /// form; the values agree within `⌊i/step_size⌋` roundings. Errors: as [`Self::validate`].
    #[allow(clippy::cast_precision_loss, reason = "steps < 2^53 are exact in f64")]
    pub fn multiplier(&self, step: u64) -> Result<f64> {
        self.validate()?;
        Ok(match *self {
            LearningRateSchedule::Constant => 1.0,
            LearningRateSchedule::Step { step_size, gamma } => {
                let decays = i32::try_from(step / step_size).unwrap_or(i32::MAX);
                gamma.powi(decays)
            }
            LearningRateSchedule::Noam {
                model_size,
                factor,
                warmup_steps,
            } => {
                let s = step.max(1) as f64;
                let d = model_size as f64;
                let w = warmup_steps as f64;
                factor * (d.powf(-0.5) * s.powf(-0.5).min(s * w.powf(-1.5)))
            }
        })
    }

    /// The learning rate of optimizer step `step`: `base_learning_rate · λ(step)` (LambdaLR).
    /// Errors: as [`Self::validate`], and `InvalidParameter` for a negative or non-finite base.
    pub fn learning_rate(&self, base_learning_rate: f64, step: u64) -> Result<f64> {
        non_negative(
            "learning_rate_schedule",
            "base_learning_rate",
            base_learning_rate,
        )?;
        Ok(base_learning_rate * self.multiplier(step)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn first_adam_step_from_zero_state_is_lr() {
        // t = 1: m̂ = g, v̂ = g² (up to rounding), so s = lr·g/(|g| + eps) ≈ lr·sign(g).
        let hyper = AdamHyper::new(1e-3, 0.9, 0.98, 1e-9);
        let state = AdamState::<f64>::zeros(3);
        let (theta, next) = adam_step(
            &state,
            array![0.0, 1.0, 2.0].view(),
            array![0.3, -50.0, 1e-3].view(),
            &hyper,
        )
        .expect("valid");
        for (i, &s) in next.last_step.iter().enumerate() {
            let g = [0.3f64, -50.0, 1e-3][i];
            let expected = 1e-3 * g.signum() * g.abs() / (g.abs() + 1e-9);
            assert!(
                (s - expected).abs() <= 1e-3 * 20.0 * f64::EPSILON,
                "{s} vs {expected}"
            );
        }
        assert_eq!(next.step, 1);
        let expected_theta = 1.0 + 1e-3 * 50.0 / (50.0 + 1e-9);
        assert!((theta[1] - expected_theta).abs() <= 4.0 * f64::EPSILON);
    }

    #[test]
    fn adamw_decays_before_the_update_and_adam_adds_to_the_gradient() {
        let mut hyper = AdamHyper::new(0.1, 0.9, 0.999, 1e-8);
        hyper.weight_decay = 0.5;
        hyper.decoupled = true;
        let state = AdamState::<f64>::zeros(1);
        // Zero gradient: AdamW only decays, θ ← θ(1 − 0.05); m = 0 gives a zero step.
        let (theta, _) =
            adam_step(&state, array![2.0].view(), array![0.0].view(), &hyper).expect("valid");
        assert_eq!(theta[0], 2.0 * (1.0 - 0.1 * 0.5));
        hyper.decoupled = false;
        // Adam L2: g = 0 + 0.5·2 = 1 → a step of lr·1/(1 + 1e-8).
        let (theta, _) =
            adam_step(&state, array![2.0].view(), array![0.0].view(), &hyper).expect("valid");
        assert!((theta[0] - (2.0 - 0.1 / (1.0 + 1e-8))).abs() <= 8.0 * f64::EPSILON);
    }

    #[test]
    fn adam_rejects_invalid_hyperparameters() {
        let good = AdamHyper::new(1e-3, 0.9, 0.999, 1e-8);
        let cases = [
            AdamHyper {
                learning_rate: -1.0,
                ..good
            },
            AdamHyper {
                learning_rate: f64::NAN,
                ..good
            },
            AdamHyper { beta1: 1.0, ..good },
            AdamHyper {
                beta2: -0.1,
                ..good
            },
            AdamHyper { eps: 0.0, ..good },
            AdamHyper {
                weight_decay: f64::INFINITY,
                ..good
            },
        ];
        for hyper in cases {
            assert!(matches!(
                Adam::<f32>::new(hyper, &[2]),
                Err(Error::InvalidParameter { .. })
            ));
        }
        let mut adam = Adam::<f32>::new(good, &[2]).expect("valid");
        let mut params = vec![array![1.0f32, 2.0]];
        assert!(matches!(
            adam.step(&mut params, &[array![1.0f32]]),
            Err(Error::ShapeMismatch { .. })
        ));
        assert_eq!(params[0], array![1.0f32, 2.0], "unchanged after an error");
        assert_eq!(adam.states[0].step, 0);
    }

    #[test]
    fn sgd_momentum_follows_pytorch_buffer_rules() {
        let hyper = SgdHyper {
            learning_rate: 0.5,
            momentum: 0.5,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        };
        let mut sgd = Sgd::<f64>::new(hyper, &[1]).expect("valid");
        let mut theta = vec![array![0.0]];
        sgd.step(&mut theta, &[array![1.0]]).expect("valid"); // buf = 1, θ = −0.5
        assert_eq!(theta[0][0], -0.5);
        sgd.step(&mut theta, &[array![1.0]]).expect("valid"); // buf = 1.5, θ = −1.25
        assert_eq!(theta[0][0], -1.25);
        let nesterov = SgdHyper {
            nesterov: true,
            ..hyper
        };
        let mut sgd = Sgd::<f64>::new(nesterov, &[1]).expect("valid");
        let mut theta = vec![array![0.0]];
        sgd.step(&mut theta, &[array![1.0]]).expect("valid"); // d = 1 + 0.5·1 = 1.5
        assert_eq!(theta[0][0], -0.75);
        assert!(matches!(
            Sgd::<f64>::new(
                SgdHyper {
                    momentum: 0.0,
                    ..nesterov
                },
                &[1]
            ),
            Err(Error::InvalidParameter { .. })
        ));
        // Weight decay: d = g + wd·θ = 0 + 0.1·2.
        let mut sgd = Sgd::<f64>::new(
            SgdHyper {
                weight_decay: 0.1,
                ..SgdHyper::plain(1.0)
            },
            &[1],
        )
        .expect("valid");
        let mut theta = vec![array![2.0]];
        sgd.step(&mut theta, &[array![0.0]]).expect("valid");
        assert_eq!(theta[0][0], 2.0 - 0.1 * 2.0);
    }

    #[test]
    fn one_clipped_sgd_step() {
        // grads [3, 4] in two tensors: N = 5, coef = 1/(5 + 1e-6), θ ← θ − 0.1·g·coef.
        let mut grads = vec![array![3.0f64], array![4.0]];
        let norm = clip_grad_norm(&mut grads, 1.0).expect("valid");
        assert_eq!(norm, 5.0);
        let coef = 1.0 / (5.0 + 1e-6);
        assert_eq!(grads[0][0], 3.0 * coef);
        assert_eq!(grads[1][0], 4.0 * coef);
        let mut sgd = Sgd::<f64>::new(SgdHyper::plain(0.1), &[1, 1]).expect("valid");
        let mut theta = vec![array![0.0], array![0.0]];
        sgd.step(&mut theta, &grads).expect("valid");
        assert_eq!(theta[1][0], -(0.1 * (4.0 * coef)));
        // Inactive clipping multiplies by exactly 1.0.
        let mut small = vec![array![0.3f32, -0.4]];
        let norm = clip_grad_norm(&mut small, 1.0).expect("valid");
        assert!((norm - 0.5).abs() < 1e-7);
        assert_eq!(small[0], array![0.3f32, -0.4]);
        assert!(clip_grad_norm(&mut small, -1.0).is_err());
        let mut none: Vec<Array1<f32>> = Vec::new();
        assert_eq!(clip_grad_norm(&mut none, 1.0).expect("valid"), 0.0);
    }

    #[test]
    fn clip_grad_value_clamps_and_keeps_nan() {
        let mut grads = vec![array![-3.0f64, 0.5, f64::NAN, f64::INFINITY]];
        clip_grad_value(&mut grads, 1.0).expect("valid");
        assert_eq!(grads[0][0], -1.0);
        assert_eq!(grads[0][1], 0.5);
        assert!(grads[0][2].is_nan());
        assert_eq!(grads[0][3], 1.0);
        assert!(clip_grad_value(&mut grads, f64::NAN).is_err());
    }

    #[test]
    fn schedules_by_hand() {
        let step = LearningRateSchedule::Step {
            step_size: 10,
            gamma: 0.5,
        };
        assert_eq!(step.learning_rate(0.1, 9).expect("valid"), 0.1);
        assert_eq!(step.learning_rate(0.1, 10).expect("valid"), 0.05);
        assert_eq!(step.learning_rate(0.1, 25).expect("valid"), 0.025);
        assert_eq!(
            LearningRateSchedule::Constant
                .learning_rate(0.3, 7)
                .expect("ok"),
            0.3
        );
        let noam = LearningRateSchedule::Noam {
            model_size: 32,
            factor: 1.0,
            warmup_steps: 0,
        };
        assert!(matches!(
            noam.multiplier(5),
            Err(Error::InvalidParameter { .. })
        ));
        let zero_step = LearningRateSchedule::Step {
            step_size: 0,
            gamma: 0.5,
        };
        assert!(zero_step.validate().is_err());
    }

    #[test]
    fn gradient_modes_store_or_accumulate() {
        let mut stored = vec![array![1.0f64, 2.0]];
        store_gradients(&mut stored, &[array![0.5, 0.5]], GradientMode::Accumulate).expect("valid");
        assert_eq!(stored[0], array![1.5, 2.5]);
        store_gradients(&mut stored, &[array![0.5, 0.5]], GradientMode::ZeroEachStep)
            .expect("valid");
        assert_eq!(stored[0], array![0.5, 0.5]);
        assert!(store_gradients(&mut stored, &[], GradientMode::Accumulate).is_err());
    }
}
