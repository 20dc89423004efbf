//! Seed 002 ("periodic loss oscillation that grows with the learning rate", a GRU trained with
//! Adam): the GRU next-item model on a small, deterministic, **noisy** data set, and Adam on a
//! quadratic, both with a constant rate, a decaying rate and gradient clipping (THEORY.md C1–C3,
//! C5, D2, D5).
//!
//! Why a noisy data set: next-item prediction has several observed next items for the same
//! history, so the loss has a floor above 0, the conditional entropy `H(Y | X)` of the labels
//! given the sequence (A1 per distinct input), and a minimum with curvature around which Adam can
//! oscillate. Distinct sequences with one label each are separable: the loss then falls toward 0
//! and nothing oscillates.
//!
//! Measures of oscillation size over a late window (fixed step counts, never a period, C3):
//! [`mean_absolute_change`] of the loss (`Σ|L_{k+1} − L_k|/(n − 1)`: a monotone approach
//! contributes only its net change over the window, an oscillation contributes every swing),
//! [`peak_to_peak`] and [`root_mean_square`] of the quadratic's iterate.

use ndarray::{Array1, Array2};

use crate::reference::models::gru::{GruBatch, GruConfig, GruModel};
use crate::reference::models::{Model, OptimizerConfig, Trainer, TrainingConfig, TrainingTask};
use crate::reference::optim::{
    clip_grad_norm, Adam, AdamHyper, GradientMode, LearningRateSchedule, Sgd, SgdHyper,
};
use crate::rng::RandomKey;
use crate::tolerance;
use crate::{Backend, Error, Result, Scalar};

/// Items `V` (embedding rows and classes).
pub const VOCAB: usize = 8;
/// Embedding width `E`.
pub const EMBED: usize = 4;
/// GRU hidden width `H`.
pub const HIDDEN: usize = 8;
/// Items per history `S`.
pub const SEQUENCE: usize = 4;
/// Distinct histories in the data set.
pub const GROUPS: usize = 8;
/// Rows of the (full) batch: each history appears `ROWS / GROUPS = 2` times, with its own
/// sampled next item.
pub const ROWS: usize = 16;
/// Probability that the next item is `(last + 1) mod V`; otherwise it is uniform over `V`.
pub const FOLLOW_PROBABILITY: f64 = 0.6;
/// PyTorch's default Adam (the seed's optimizer): `(β1, β2) = (0.9, 0.999)`, eps `1e-8`.
pub const GRU_BETAS: (f64, f64) = (0.9, 0.999);
/// Adam's eps for both the GRU and the quadratic (PyTorch's default).
pub const EPS: f64 = 1e-8;

fn key(seed: u64, tensor_id: u64) -> RandomKey {
    RandomKey {
        seed,
        step: 0,
        tensor_id,
    }
}

/// `⌊u·n⌋` clamped to `n − 1`, for `u ∈ [0, 1)`.
fn index_below(uniform: f64, n: usize) -> usize {
    // Truncation toward 0 of a value in [0, n): the documented floor.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "u·n ∈ [0, n) with n small"
    )]
    let index = (uniform * n as f64) as usize;
    index.min(n - 1)
}

/// The data set: [`GROUPS`] histories of [`SEQUENCE`] items drawn uniformly from `0..V`
/// (stream 900), row `i` carrying history `i mod GROUPS`; the next item of row `i` is
/// `(last + 1) mod V` with probability [`FOLLOW_PROBABILITY`], else uniform (stream 901).
pub fn batch(seed: u64) -> GruBatch {
    let histories = key(seed, 900);
    let items = Array2::from_shape_fn((ROWS, SEQUENCE), |(i, j)| {
        index_below(
            histories.uniform(((i % GROUPS) * SEQUENCE + j) as u64),
            VOCAB,
        )
    });
    let labels = key(seed, 901);
    let targets = Array1::from_shape_fn(ROWS, |i| {
        let last = items[[i, SEQUENCE - 1]];
        let next = if labels.uniform(2 * i as u64) < FOLLOW_PROBABILITY {
            (last + 1) % VOCAB
        } else {
            index_below(labels.uniform(2 * i as u64 + 1), VOCAB)
        };
        i64::try_from(next).unwrap_or(0)
    });
    GruBatch { items, targets }
}

/// The loss floor `H(Y | X)` in nats: rows with the same history form a group, and any model's
/// mean cross-entropy is at least `(1/N) Σ_groups n_g·H(empirical labels of g)`, with equality
/// only for a model that predicts each group's label frequencies (THEORY.md A1 applied per
/// distinct input: cross-entropy = entropy + KL ≥ entropy). Evaluated in f64.
pub fn conditional_entropy_nats(batch: &GruBatch) -> f64 {
    let rows = batch.targets.len();
    let mut seen = vec![false; rows];
    let mut total = 0.0;
    for i in 0..rows {
        if seen[i] {
            continue;
        }
        let members: Vec<usize> = (i..rows)
            .filter(|&j| batch.items.row(j) == batch.items.row(i))
            .collect();
        let mut counts = std::collections::BTreeMap::new();
        for &j in &members {
            seen[j] = true;
            *counts.entry(batch.targets[j]).or_insert(0usize) += 1;
        }
        let n = members.len() as f64;
        for &c in counts.values() {
            let p = c as f64 / n;
            total -= c as f64 * p.ln();
        }
    }
    total / rows as f64
}

/// The GRU (`V = 8, E = 4, H = 8`, PyTorch init from `seed`).
pub fn model<T: Scalar>(seed: u64) -> Result<GruModel<T>> {
    GruModel::new(GruConfig {
        vocab: VOCAB,
        embed: EMBED,
        hidden: HIDDEN,
        seed,
    })
}

/// One optimizer setting of a seed-002 run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    /// Base learning rate.
    pub learning_rate: f64,
    /// The schedule (LambdaLR semantics).
    pub schedule: LearningRateSchedule,
    /// `clip_grad_norm_` max norm, if any.
    pub clip: Option<f64>,
}

impl Setting {
    /// Constant rate, no clipping.
    pub fn constant(learning_rate: f64) -> Self {
        Setting {
            learning_rate,
            schedule: LearningRateSchedule::Constant,
            clip: None,
        }
    }
}

/// What a seed-002 run recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Loss of every step (before its update), in f64.
    pub losses: Vec<f64>,
    /// Learning rate of every step.
    pub learning_rates: Vec<f64>,
    /// Pre-clip gradient norm of every step (empty without clipping).
    pub gradient_norms: Vec<f64>,
    /// Largest per-coordinate `|θ_{k+1} − θ_k|` over the D2 allowance of that step (see
    /// [`adam_step_allowance`]); `≤ 1` is THEORY.md D2.
    pub max_step_over_allowance: f64,
    /// Largest per-coordinate `|θ_{k+1} − θ_k| / lr_k` (Kingma & Ba's "≈ lr", D2).
    pub max_step_over_learning_rate: f64,
}

/// The D2 allowance for one coordinate's parameter change at Adam step `t` (1-based) in `T`:
/// ```text
/// |θ_{k+1} − θ_k| ≤ lr·C_t·(1 + (τ + τ_β)u)·(1 + u) + u·|θ_{k+1}|
/// ```
/// `lr` as held in `T`; `C_t`, `τ` from [`tolerance::adam_step`]; `τ_β = (3/2)(1 + r/(1 − r))`,
/// `r = β1²/β2`, the rounding of the betas to `T` (the open point of `tolerance::adam_step`'s
/// doc); the last two factors are the rounding of `fl(θ − s)` (`|fl(θ − s) − θ| ≤ |s|(1 + u) +
/// u|θ_new|`), since the trainer exposes parameters, not Adam's state. Clipping does not enter:
/// D2 holds for any gradient sequence, clipped or not (D5 (iii)). `None` if `β1² ≥ β2`.
pub fn adam_step_allowance<T: Scalar>(
    learning_rate: f64,
    (beta1, beta2): (f64, f64),
    step: u64,
    new_parameter: f64,
) -> Option<f64> {
    let u = T::UNIT_ROUNDOFF;
    let r = beta1 * beta1 / beta2;
    let tau_beta = 1.5 * (1.0 + r / (1.0 - r));
    let factor = tolerance::adam_step_factor(beta1, beta2, step)?;
    let tau = tolerance::adam_step_rounding_factor(beta1, beta2);
    let held = T::narrow(learning_rate).widen();
    Some(held * factor * (1.0 + (tau + tau_beta) * u) * (1.0 + u) + u * new_parameter.abs())
}

fn flat<T: Scalar>(parameters: &[Array1<T>]) -> Vec<f64> {
    parameters
        .iter()
        .flat_map(|p| p.iter().map(|v| v.widen()))
        .collect()
}

/// Train the GRU on `batch` with Adam ([`GRU_BETAS`], eps [`EPS`]) under `setting` for `steps`
/// full-batch steps (gradients zeroed each step), recording the loss, the rate, the pre-clip
/// gradient norm and the largest per-coordinate step against D2. `on_step` runs after each step.
pub fn train_gru<T: Scalar>(
    model: GruModel<T>,
    batch: &GruBatch,
    setting: Setting,
    steps: usize,
    mut on_step: impl FnMut(usize),
) -> Result<Run> {
    let config = training_config(setting);
    let mut trainer = Trainer::new(model, config)?;
    let mut run = Run {
        losses: Vec::with_capacity(steps),
        learning_rates: Vec::with_capacity(steps),
        gradient_norms: Vec::new(),
        max_step_over_allowance: 0.0,
        max_step_over_learning_rate: 0.0,
    };
    let mut before = flat(trainer.model.parameters());
    for k in 0..steps {
        let report = trainer.step(batch)?;
        let after = flat(trainer.model.parameters());
        let t = k as u64 + 1;
        let constant = adam_step_allowance::<T>(report.learning_rate, GRU_BETAS, t, 0.0).ok_or(
            Error::InvalidParameter {
                op: "seed002::train_gru",
                name: "betas",
                value: format!("{GRU_BETAS:?}"),
                reason: "D2 needs β1² < β2".into(),
            },
        )?;
        for (&old, &new) in before.iter().zip(&after) {
            let change = (new - old).abs();
            let allowance = constant + T::UNIT_ROUNDOFF * new.abs();
            run.max_step_over_allowance = run.max_step_over_allowance.max(change / allowance);
            if report.learning_rate > 0.0 {
                run.max_step_over_learning_rate = run
                    .max_step_over_learning_rate
                    .max(change / report.learning_rate);
            }
        }
        before = after;
        run.losses.push(report.loss.widen());
        run.learning_rates.push(report.learning_rate);
        if let Some(norm) = report.gradient_norm {
            run.gradient_norms.push(norm.widen());
        }
        on_step(k);
    }
    Ok(run)
}

/// The training loop settings of a seed-002 GRU run: Adam ([`GRU_BETAS`], eps [`EPS`]) under
/// `setting`, gradients zeroed each step.
pub fn training_config(setting: Setting) -> TrainingConfig {
    let (beta1, beta2) = GRU_BETAS;
    TrainingConfig {
        optimizer: OptimizerConfig::Adam(AdamHyper::new(setting.learning_rate, beta1, beta2, EPS)),
        base_learning_rate: setting.learning_rate,
        schedule: setting.schedule,
        clip_grad_norm: setting.clip,
        gradient_mode: GradientMode::ZeroEachStep,
    }
}

/// The same GRU run as [`train_gru`] on any backend, through [`Backend::train`]: the loss of
/// every step (in f64) and the final parameters. (No per-step parameters: a device backend keeps
/// them resident.)
pub fn train_gru_on<T: Scalar>(
    backend: &impl Backend<T>,
    model: &GruModel<T>,
    batch: &GruBatch,
    setting: Setting,
    steps: usize,
) -> Result<Vec<f64>> {
    let task = TrainingTask::Gru {
        model: model.clone(),
        batch: batch.clone(),
    };
    let run = backend.train(&task, &training_config(setting), steps)?;
    Ok(run.losses.iter().map(|l| l.widen()).collect())
}

/// `Σ_k |v_{k+1} − v_k| / (n − 1)`: the mean size of a step-to-step change (0 for `n < 2`).
pub fn mean_absolute_change(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    values.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (values.len() - 1) as f64
}

/// `max − min` (0 for an empty slice).
pub fn peak_to_peak(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let (low, high) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    high - low
}

/// `sqrt(Σ v²/n)` (0 for an empty slice).
pub fn root_mean_square(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    (values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64).sqrt()
}

/// The last `window` entries of `values` (all of them if there are fewer).
pub fn late(values: &[f64], window: usize) -> &[f64] {
    &values[values.len().saturating_sub(window)..]
}

/// The optimizer of a quadratic run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuadraticOptimizer {
    /// Adam with these betas and eps.
    Adam {
        /// `(β1, β2)`.
        betas: (f64, f64),
        /// eps.
        eps: f64,
    },
    /// Plain SGD.
    Sgd,
}

/// What a quadratic run recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct QuadraticRun {
    /// The iterate after every step.
    pub iterates: Vec<f64>,
    /// The loss `λx²/2` before every step (f64 from the held `x`).
    pub losses: Vec<f64>,
    /// The learning rate of every step.
    pub learning_rates: Vec<f64>,
    /// The signed step the optimizer applied (`θ_new = θ − s`), read from its state.
    pub steps: Vec<f64>,
    /// Whether clipping changed the gradient, per step (`false` without clipping).
    pub clipped: Vec<bool>,
}

/// Minimise `f(x) = λx²/2` from `start` in `T`: the gradient `fl(λx)` is clipped with
/// [`clip_grad_norm`] (if `clip` is set) and handed to `optimizer`, whose rate follows
/// `schedule` (LambdaLR). Errors: `InvalidParameter` for invalid hyperparameters.
pub fn train_quadratic<T: Scalar>(
    lambda: f64,
    start: f64,
    optimizer: QuadraticOptimizer,
    setting: Setting,
    steps: usize,
) -> Result<QuadraticRun> {
    enum State<T> {
        Adam(Adam<T>),
        Sgd(Sgd<T>),
    }
    let mut state = match optimizer {
        QuadraticOptimizer::Adam { betas, eps } => State::Adam(Adam::new(
            AdamHyper::new(setting.learning_rate, betas.0, betas.1, eps),
            &[1],
        )?),
        QuadraticOptimizer::Sgd => {
            State::Sgd(Sgd::new(SgdHyper::plain(setting.learning_rate), &[1])?)
        }
    };
    let lambda_held = T::narrow(lambda);
    let mut x = vec![Array1::from(vec![T::narrow(start)])];
    let mut run = QuadraticRun {
        iterates: Vec::with_capacity(steps),
        losses: Vec::with_capacity(steps),
        learning_rates: Vec::with_capacity(steps),
        steps: Vec::with_capacity(steps),
        clipped: Vec::with_capacity(steps),
    };
    for k in 0..steps {
        let rate = setting
            .schedule
            .learning_rate(setting.learning_rate, k as u64)?;
        let current = x[0][0];
        run.losses
            .push(lambda_held.widen() * current.widen() * current.widen() / 2.0);
        let raw = lambda_held * current;
        let mut gradient = vec![Array1::from(vec![raw])];
        if let Some(max_norm) = setting.clip {
            clip_grad_norm(&mut gradient, max_norm)?;
        }
        run.clipped
            .push(gradient[0][0].widen().to_bits() != raw.widen().to_bits());
        let step = match &mut state {
            State::Adam(adam) => {
                adam.hyper.learning_rate = rate;
                adam.step(&mut x, &gradient)?;
                adam.states[0].last_step[0]
            }
            State::Sgd(sgd) => {
                sgd.hyper.learning_rate = rate;
                sgd.step(&mut x, &gradient)?;
                sgd.states[0].last_step[0]
            }
        };
        run.steps.push(step.widen());
        run.learning_rates.push(rate);
        run.iterates.push(x[0][0].widen());
    }
    Ok(run)
}
