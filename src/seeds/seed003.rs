//! Seed 003 ("loss reaches exactly 0, then jumps by hundreds"): the forum loop on the reference
//! (f32) with each factor of the mechanism switchable, for the grid of issue 6 item 2(d)
//! ({gradients zeroed or accumulated} × {dropout 0.1 or 0} × {eps} × {Adam, SGD}), and the
//! bounds every run must satisfy (THEORY.md D1, D2, D4, D5).
//!
//! The model is `EncoderConfig::seed003` (BERT-like, hidden 32, 2 heads, 1 layer, vocab 2,
//! causal), the batch `[[1, 0], [0, 1]] → 1 − x`, cross-entropy (mean), `clip_grad_norm_(…, 1)`,
//! Noam(d = 32, warmup 3000) through LambdaLR on base lr 1, Adam betas (0.9, 0.98).

use ndarray::{array, Array1};

use crate::reference::models::encoder::{Encoder, EncoderBatch, EncoderConfig};
use crate::reference::models::{Model, OptimizerConfig, Trainer, TrainingConfig};
use crate::reference::optim::{AdamHyper, GradientMode, LearningRateSchedule, SgdHyper};
use crate::tolerance;
use crate::{Error, Result, Scalar};

/// Adam's betas in the forum script.
pub const BETAS: (f64, f64) = (0.9, 0.98);
/// The forum's `MAX_NORM`.
pub const MAX_NORM: f64 = 1.0;
/// A "jump": the loss rises by at least this much between consecutive steps (forum script).
pub const JUMP: f64 = 10.0;
/// The forum's schedule: `rate(step, 32, 1, 3000)` through LambdaLR, base lr 1.
pub const SCHEDULE: LearningRateSchedule = LearningRateSchedule::Noam {
    model_size: 32,
    factor: 1.0,
    warmup_steps: 3000,
};

/// The optimizer of a grid cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GridOptimizer {
    /// Adam, betas [`BETAS`], with this eps.
    Adam {
        /// eps (the forum: 1e-9).
        eps: f64,
    },
    /// Plain SGD (no momentum) on the same schedule and clipping.
    Sgd,
}

/// One cell of the grid, plus the run's seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// `true`: no `zero_grad()` (the forum script); `false`: gradients zeroed each step.
    pub accumulate: bool,
    /// Hidden dropout probability (the forum: 0.1).
    pub dropout: f64,
    /// The optimizer.
    pub optimizer: GridOptimizer,
    /// Initialisation and dropout seed.
    pub seed: u64,
}

impl Cell {
    /// The forum's configuration with the given seed.
    pub fn forum(seed: u64) -> Self {
        Cell {
            accumulate: true,
            dropout: 0.1,
            optimizer: GridOptimizer::Adam { eps: 1e-9 },
            seed,
        }
    }
}

/// The forum's batch: ids `[[1, 0], [0, 1]]`, targets `1 − x` per token.
pub fn batch() -> EncoderBatch {
    EncoderBatch {
        ids: array![[1, 0], [0, 1]],
        attention_mask: None,
        targets: Array1::from(vec![0, 1, 1, 0]),
    }
}

/// The trainer of a cell, at step 0.
pub fn trainer<T: Scalar>(cell: Cell) -> Result<Trainer<T, Encoder<T>>> {
    let mut config = EncoderConfig::seed003(cell.seed);
    config.dropout = cell.dropout;
    let optimizer = match cell.optimizer {
        GridOptimizer::Adam { eps } => {
            OptimizerConfig::Adam(AdamHyper::new(1.0, BETAS.0, BETAS.1, eps))
        }
        GridOptimizer::Sgd => OptimizerConfig::Sgd(SgdHyper::plain(1.0)),
    };
    Trainer::new(
        Encoder::new(config)?,
        TrainingConfig {
            optimizer,
            base_learning_rate: 1.0,
            schedule: SCHEDULE,
            clip_grad_norm: Some(MAX_NORM),
            gradient_mode: if cell.accumulate {
                GradientMode::Accumulate
            } else {
                GradientMode::ZeroEachStep
            },
        },
    )
}

/// What a grid run recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct GridRun {
    /// The cell.
    pub cell: Cell,
    /// Loss of every step (before its update).
    pub losses: Vec<f64>,
    /// First step whose loss is exactly 0.
    pub first_zero: Option<usize>,
    /// Steps `i` with `loss_i − loss_{i−1} ≥ JUMP`.
    pub jump_steps: Vec<usize>,
    /// Largest loss at or after the first zero (0 if never zero).
    pub max_loss_after_zero: f64,
    /// `‖θ‖₂` at the start.
    pub initial_norm: f64,
    /// `(step, ‖θ‖₂, Σ_{i<step} lr_i, smallest and largest token margin)` every `sample_every`
    /// steps (the margin `z_target − z_other` from the step's own forward pass, before its
    /// update), and after the last step (margins then from the step index `steps`).
    pub samples: Vec<Sample>,
    /// Largest per-coordinate `|Δθ|` over its allowance (Adam: D2 via
    /// `seed002::adam_step_allowance`; SGD: `lr·|G_i|` plus rounding; see [`run`]); `≤ 1` always.
    pub max_step_over_allowance: f64,
    /// Largest per-coordinate `|Δθ|/lr`.
    pub max_step_over_learning_rate: f64,
    /// Largest `‖Δθ‖₂/lr` over the steps.
    pub max_step_norm_over_learning_rate: f64,
    /// Largest margin over [`margin_bound`] at the samples; `≤ 1` always.
    pub max_margin_over_bound: f64,
    /// Largest `‖θ_k‖₂` over `‖θ_0‖₂ + √P·δ_k` ([`drift_per_coordinate`]) at the samples; `≤ 1`.
    pub max_norm_over_bound: f64,
}

/// One sample of a grid run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Step index (parameters before this step's update).
    pub step: usize,
    /// `‖θ‖₂`.
    pub norm: f64,
    /// `Σ_{i<step} lr_i` (rates as held in `T`).
    pub cumulative_rate: f64,
    /// Smallest `z_target − z_other` over the four tokens.
    pub min_margin: f64,
    /// Largest `|z_target − z_other|` over the four tokens.
    pub max_abs_margin: f64,
}

/// Largest per-coordinate step factor of the optimizer: `|s| ≤ lr·factor`. Adam: `C_∞` of
/// [`BETAS`] (THEORY.md D2, 1.6977); SGD: the post-clip norm bound `M(1 + γ_n/2 + 4u)` (D5: one
/// coordinate of `G` is at most `‖G‖₂`), `n` the parameter count.
pub fn step_factor<T: Scalar>(optimizer: GridOptimizer, parameter_count: usize) -> Result<f64> {
    match optimizer {
        GridOptimizer::Adam { .. } => {
            tolerance::adam_step_factor_limit(BETAS.0, BETAS.1).ok_or(Error::InvalidParameter {
                op: "seed003::step_factor",
                name: "betas",
                value: format!("{BETAS:?}"),
                reason: "D2 needs β1² < β2".into(),
            })
        }
        GridOptimizer::Sgd => Ok(MAX_NORM
            * (1.0 + tolerance::clip_grad_norm_relative(parameter_count, T::UNIT_ROUNDOFF))),
    }
}

/// THEORY.md D4 (d) per coordinate, for either optimizer:
/// ```text
/// |θ_k − θ_0| ≤ δ_k = factor·S_k·(1 + (τ + τ_β + 2)u) + Σ_{i<k} u·max|θ_i|,   S_k = Σ_{i<k} lr_i
/// ```
/// `factor` from [`step_factor`]; `τ`, `τ_β` as in [`crate::seeds::seed002::adam_step_allowance`]
/// (for SGD they over-cover the two roundings of `fl(lr·G)`); the last sum is the rounding of each
/// `θ − s` (`rounding` is passed in, accumulated by the caller).
pub fn drift_per_coordinate<T: Scalar>(factor: f64, cumulative_rate: f64, rounding: f64) -> f64 {
    let (beta1, beta2) = BETAS;
    let r = beta1 * beta1 / beta2;
    let tau = tolerance::adam_step_rounding_factor(beta1, beta2) + 1.5 * (1.0 + r / (1.0 - r));
    factor * cumulative_rate * (1.0 + (tau + 2.0) * T::UNIT_ROUNDOFF) + rounding
}

/// Bound on every token's logit margin `|z_c − z_o|` after the parameters drifted by at most
/// `δ` per coordinate from `θ_0` (THEORY.md D4 turned into a margin bound). The last hidden
/// state is `h = γ ⊙ n + β` with `n` the normalised input of the final LayerNorm, `‖n‖₂² =
/// d·var/(var + eps) ≤ d`, and `z_c − z_o = (w_c − w_o)·h + (b_c − b_o)`, so
/// ```text
/// |z_c − z_o| ≤ (‖w_c0 − w_o0‖₂ + 2δ√d)·((‖γ_0‖_∞ + δ)√d + ‖β_0‖₂ + δ√d) + |b_c0 − b_o0| + 2δ
/// ```
/// times `(1 + γ_{4d+4})` for the f32 evaluation (LayerNorm's sums, the dot product, the bias).
/// Each factor grows at most linearly in `Σlr` (D4), so the margin at most quadratically; the
/// output-bias part alone is linear. `initial` are the parameters at step 0; two classes.
pub fn margin_bound<T: Scalar>(initial: &[Array1<T>], delta: f64) -> Result<f64> {
    let count = initial.len();
    if count < 4 {
        return Err(Error::ShapeMismatch {
            op: "seed003::margin_bound",
            detail: format!("{count} parameter tensors; the encoder has at least 4"),
        });
    }
    let (gamma, beta, weight, bias) = (
        &initial[count - 4],
        &initial[count - 3],
        &initial[count - 2],
        &initial[count - 1],
    );
    let d = gamma.len();
    if weight.len() != 2 * d || bias.len() != 2 {
        return Err(Error::ShapeMismatch {
            op: "seed003::margin_bound",
            detail: format!(
                "head {} + {} entries, expected 2·{d} + 2",
                weight.len(),
                bias.len()
            ),
        });
    }
    let root_d = (d as f64).sqrt();
    let row_difference = (0..d)
        .map(|j| (weight[j].widen() - weight[d + j].widen()).powi(2))
        .sum::<f64>()
        .sqrt();
    let gamma_max = gamma.iter().fold(0.0f64, |m, g| m.max(g.widen().abs()));
    let beta_norm = beta.iter().map(|b| b.widen().powi(2)).sum::<f64>().sqrt();
    let bias_difference = (bias[0].widen() - bias[1].widen()).abs();
    let hidden = (gamma_max + delta) * root_d + beta_norm + delta * root_d;
    let exact = (row_difference + 2.0 * delta * root_d) * hidden + bias_difference + 2.0 * delta;
    let slack = tolerance::gamma(4 * d + 4, T::UNIT_ROUNDOFF).unwrap_or(f64::INFINITY);
    Ok(exact * (1.0 + slack))
}

/// The allowance of one coordinate's change at step `t` (1-based), as `(a, b, c)` with
/// `|Δθ_i| ≤ a + b·|G_i| + c·|θ_new,i|`:
/// - Adam: `seed002::adam_step_allowance` (D2 with `C_t`, any gradient sequence):
///   `a = lr·C_t(1 + (τ + τ_β)u)(1 + u)`, `b = 0`, `c = u`;
/// - SGD: `|Δθ| ≤ lr·|G_i|(1 + u)² + u(1 + u)|θ_new|` (`s = fl(lr·G_i)`, then `fl(θ − s)`), with
///   `G` the clipped stored gradient the optimizer was given: `a = 0`, `b = lr(1 + u)²`,
///   `c = u(1 + u)`.
fn step_allowance<T: Scalar>(
    optimizer: GridOptimizer,
    learning_rate: f64,
    step: u64,
) -> Option<(f64, f64, f64)> {
    let u = T::UNIT_ROUNDOFF;
    match optimizer {
        GridOptimizer::Adam { .. } => {
            crate::seeds::seed002::adam_step_allowance::<T>(learning_rate, BETAS, step, 0.0)
                .map(|a| (a, 0.0, u))
        }
        GridOptimizer::Sgd => {
            let held = T::narrow(learning_rate).widen();
            Some((0.0, held * (1.0 + u).powi(2), u * (1.0 + u)))
        }
    }
}

fn flat<T: Scalar>(parameters: &[Array1<T>]) -> Vec<f64> {
    parameters
        .iter()
        .flat_map(|p| p.iter().map(|v| v.widen()))
        .collect()
}

fn margins<T: Scalar>(model: &Encoder<T>, batch: &EncoderBatch, step: u64) -> Result<(f64, f64)> {
    let logits = model.logits(batch, step)?;
    let mut smallest = f64::INFINITY;
    let mut largest = 0.0f64;
    for (row, &target) in logits.rows().into_iter().zip(batch.targets.iter()) {
        let c = usize::try_from(target).unwrap_or(0).min(1);
        let margin = row[c].widen() - row[1 - c].widen();
        smallest = smallest.min(margin);
        largest = largest.max(margin.abs());
    }
    Ok((smallest, largest))
}

/// Run one cell for `steps` steps, sampling norms and margins every `sample_every` steps (≥ 1)
/// and checking every step against its allowance; `on_step` runs after each step.
pub fn run<T: Scalar>(
    cell: Cell,
    steps: usize,
    sample_every: usize,
    mut on_step: impl FnMut(usize),
) -> Result<GridRun> {
    let batch = batch();
    let mut trainer = trainer::<T>(cell)?;
    let initial_tensors: Vec<Array1<T>> = trainer.model.parameters().to_vec();
    let start = flat(&initial_tensors);
    let parameter_count = start.len();
    let factor = step_factor::<T>(cell.optimizer, parameter_count)?;
    let initial_norm = start.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut run = GridRun {
        cell,
        losses: Vec::with_capacity(steps),
        first_zero: None,
        jump_steps: Vec::new(),
        max_loss_after_zero: 0.0,
        initial_norm,
        samples: Vec::new(),
        max_step_over_allowance: 0.0,
        max_step_over_learning_rate: 0.0,
        max_step_norm_over_learning_rate: 0.0,
        max_margin_over_bound: 0.0,
        max_norm_over_bound: 0.0,
    };
    let every = sample_every.max(1);
    let (mut cumulative_rate, mut rounding) = (0.0f64, 0.0f64);
    let mut before = start.clone();
    let sample = |run: &mut GridRun,
                  model: &Encoder<T>,
                  step: usize,
                  now: &[f64],
                  cumulative_rate: f64,
                  rounding: f64|
     -> Result<()> {
        let (min_margin, max_abs_margin) = margins(model, &batch, step as u64)?;
        let norm = now.iter().map(|v| v * v).sum::<f64>().sqrt();
        let delta = drift_per_coordinate::<T>(factor, cumulative_rate, rounding);
        let bound = margin_bound(&initial_tensors, delta)?;
        run.max_margin_over_bound = run.max_margin_over_bound.max(max_abs_margin / bound);
        let norm_bound = initial_norm + (parameter_count as f64).sqrt() * delta;
        run.max_norm_over_bound = run.max_norm_over_bound.max(norm / norm_bound);
        run.samples.push(Sample {
            step,
            norm,
            cumulative_rate,
            min_margin,
            max_abs_margin,
        });
        Ok(())
    };
    for k in 0..steps {
        if k % every == 0 {
            sample(
                &mut run,
                &trainer.model,
                k,
                &before,
                cumulative_rate,
                rounding,
            )?;
        }
        let report = trainer.step(&batch)?;
        let after = flat(trainer.model.parameters());
        let gradients = flat(trainer.stored_gradients());
        let rate = report.learning_rate;
        let t = k as u64 + 1;
        let mut squared = 0.0;
        let mut largest_theta = 0.0f64;
        let (constant, per_gradient, per_parameter) = step_allowance::<T>(cell.optimizer, rate, t)
            .ok_or(Error::InvalidParameter {
                op: "seed003::run",
                name: "betas",
                value: format!("{BETAS:?}"),
                reason: "D2 needs β1² < β2".into(),
            })?;
        for ((&old, &new), &g) in before.iter().zip(&after).zip(&gradients) {
            let change = (new - old).abs();
            squared += change * change;
            largest_theta = largest_theta.max(new.abs());
            if change > 0.0 {
                let allowance = constant + per_gradient * g.abs() + per_parameter * new.abs();
                run.max_step_over_allowance = run.max_step_over_allowance.max(change / allowance);
            }
            if rate > 0.0 {
                run.max_step_over_learning_rate =
                    run.max_step_over_learning_rate.max(change / rate);
            }
        }
        if rate > 0.0 {
            run.max_step_norm_over_learning_rate = run
                .max_step_norm_over_learning_rate
                .max(squared.sqrt() / rate);
        }
        cumulative_rate += T::narrow(rate).widen();
        rounding += T::UNIT_ROUNDOFF * largest_theta;
        before = after;
        let loss = report.loss.widen();
        if run.first_zero.is_none() && loss == 0.0 {
            run.first_zero = Some(k);
        }
        if run.first_zero.is_some() {
            run.max_loss_after_zero = run.max_loss_after_zero.max(loss);
        }
        if let Some(&previous) = run.losses.last() {
            if loss - previous >= JUMP {
                run.jump_steps.push(k);
            }
        }
        run.losses.push(loss);
        on_step(k);
    }
    sample(
        &mut run,
        &trainer.model,
        steps,
        &before,
        cumulative_rate,
        rounding,
    )?;
    Ok(run)
}

/// Jumps per window of `window` steps (the forum prints them per 10,000).
pub fn jumps_per_window(run: &GridRun, window: usize) -> Vec<usize> {
    let windows = run.losses.len().div_ceil(window.max(1));
    let mut counts = vec![0; windows];
    for &k in &run.jump_steps {
        counts[k / window.max(1)] += 1;
    }
    counts
}
