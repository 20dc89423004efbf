//! Seed 002 ("periodic loss oscillation that grows with the learning rate", GRU + Adam): on the
//! GRU next-item model (`mloracle::seeds::seed002`) and on the quadratic `λx²/2`, Adam at a
//! constant rate settles into an oscillation whose size grows with the rate (THEORY.md C3), a
//! decaying rate removes it, and clipping bounds the step (D2, D5) without removing it. The
//! measured numbers are printed by `cargo run --release --example seed002`.

use mloracle::reference::optim::LearningRateSchedule;
use mloracle::seeds::seed002::{
    self, late, mean_absolute_change, peak_to_peak, root_mean_square, QuadraticOptimizer,
    QuadraticRun, Setting,
};
use mloracle::tolerance;
use mloracle::Scalar;

/// GRU: rates, steps, late window, decay and clipping of the tests.
const GRU_RATES: [f64; 3] = [0.03, 0.1, 0.3];
const GRU_STEPS: usize = 3000;
const GRU_WINDOW: usize = 1000;
const GRU_CLIP: f64 = 0.01;
/// StepLR(500, 0.5): the late window (steps 2000–2999) runs at 1/16 then 1/32 of the base rate.
const GRU_DECAY_STEP: u64 = 500;
const GRU_LATE_RATE_RATIO: f64 = 16.0;

/// THEORY.md C3 on the GRU, seeds 1–3 (f32, PyTorch's default Adam (0.9, 0.999), eps 1e-8),
/// 3000 full-batch steps, oscillation size = mean `|L_{k+1} − L_k|` over the last 1000 steps:
///
/// 1. **Grows with the rate**: strictly increasing over lr 0.03, 0.1, 0.3, and at least ×10 from
///    0.03 to 0.3. Derivation of the factor: Adam's normalised step keeps the parameters
///    `~η` away from the minimum (C3: amplitude `∝ η`), so the loss swing, quadratic in the
///    displacement at a minimum, scales like `η²` (×100 here); the test asserts only the linear
///    factor ×10, since the GRU's valley is not a quadratic and the window may still contain
///    slow descent (which a monotone approach contributes only as its net change).
///    Measured (seeds 1–6): ×2.5–9.4 from 0.03 to 0.1 and ×19–2900 from 0.03 to 0.3, except seed
///    4, which at lr 0.3 falls into a quiet state after a loss spike (a large `v̂` after the
///    spike makes Adam locally stable until `v` decays, with `β2 = 0.999` over ~10³ steps) —
///    the fragile part of C3's picture, so seed 4 is not asserted.
/// 2. **A decaying rate removes it**: halving the rate every 500 steps from 0.3, the late window
///    runs at ≤ 1/16 of the base rate, and the oscillation is at least ×16 smaller than at the
///    constant rate 0.3 (the same linear scaling as 1.). Measured ×5,000–90,000.
/// 3. **Clipping bounds the step but does not remove the oscillation**: with
///    `clip_grad_norm_(…, 0.01)` at lr 0.3, clipping is active (pre-clip norm > 0.01) in at least
///    half of the late steps, every per-coordinate change satisfies D2's
///    `|Δθ| ≤ lr·C_t·(1 + (τ + τ_β)u)(1 + u) + u|θ|` (`seed002::adam_step_allowance`; D5 (iii):
///    the bound is Adam's own, clipped or not), and the oscillation is not shrunk by the factor
///    16 that a decayed rate gives. Measured: clipping makes it ×0.6–700 *larger*, and the largest
///    step reaches 2.6–5.7·lr (below `C_∞ = 7.27`).
#[test]
fn seed002_gru_oscillation_grows_with_the_rate_and_decay_removes_it() {
    for seed in 1..=3u64 {
        let batch = seed002::batch(seed);
        let run = |setting: Setting| {
            seed002::train_gru(
                seed002::model::<f32>(seed).expect("valid configuration"),
                &batch,
                setting,
                GRU_STEPS,
                |_| {},
            )
            .expect("training runs")
        };
        let sizes: Vec<f64> = GRU_RATES
            .iter()
            .map(|&rate| {
                let trace = run(Setting::constant(rate));
                assert!(
                    trace.max_step_over_allowance <= 1.0,
                    "seed {seed}, lr {rate}: a step exceeded D2's bound by ×{}",
                    trace.max_step_over_allowance
                );
                mean_absolute_change(late(&trace.losses, GRU_WINDOW))
            })
            .collect();
        for pair in sizes.windows(2) {
            assert!(
                pair[1] > pair[0],
                "seed {seed}: oscillation sizes {sizes:?} over rates {GRU_RATES:?} not increasing"
            );
        }
        let rate_ratio = GRU_RATES[2] / GRU_RATES[0];
        assert!(
            sizes[2] >= rate_ratio * sizes[0],
            "seed {seed}: oscillation grew ×{} over a ×{rate_ratio} rate range",
            sizes[2] / sizes[0]
        );

        let decayed = run(Setting {
            learning_rate: GRU_RATES[2],
            schedule: LearningRateSchedule::Step {
                step_size: GRU_DECAY_STEP,
                gamma: 0.5,
            },
            clip: None,
        });
        let late_rate = late(&decayed.learning_rates, GRU_WINDOW)
            .iter()
            .fold(0.0f64, |m, &r| m.max(r));
        assert!(late_rate * GRU_LATE_RATE_RATIO <= GRU_RATES[2] * (1.0 + 1e-12));
        let decayed_size = mean_absolute_change(late(&decayed.losses, GRU_WINDOW));
        assert!(
            decayed_size * GRU_LATE_RATE_RATIO <= sizes[2],
            "seed {seed}: decayed oscillation {decayed_size:e} vs constant {:e}",
            sizes[2]
        );

        let clipped = run(Setting {
            clip: Some(GRU_CLIP),
            ..Setting::constant(GRU_RATES[2])
        });
        let active = late(&clipped.gradient_norms, GRU_WINDOW)
            .iter()
            .filter(|&&n| n > GRU_CLIP)
            .count();
        assert!(
            2 * active >= GRU_WINDOW,
            "seed {seed}: clipping active in only {active} of {GRU_WINDOW} late steps"
        );
        assert!(
            clipped.max_step_over_allowance <= 1.0,
            "seed {seed}: a clipped Adam step exceeded D2's bound by ×{}",
            clipped.max_step_over_allowance
        );
        let clipped_size = mean_absolute_change(late(&clipped.losses, GRU_WINDOW));
        assert!(
            clipped_size * GRU_LATE_RATE_RATIO > sizes[2],
            "seed {seed}: clipping shrank the oscillation from {:e} to {clipped_size:e}, as much \
             as a ×{GRU_LATE_RATE_RATIO} lower rate",
            sizes[2]
        );
    }
}

/// The quadratic of the tests: `λ = 100`, `x0 = 1`, Adam (0.9, 0.98), eps 1e-8 (not scaled with
/// the rate: the user's setting), 20,000 steps, statistics over the last 5,000.
const LAMBDA: f64 = 100.0;
const QUADRATIC_BETAS: (f64, f64) = (0.9, 0.98);
const QUADRATIC_RATES: [f64; 3] = [1e-3, 3e-3, 1e-2];
const QUADRATIC_STEPS: usize = 20_000;
const QUADRATIC_WINDOW: usize = 5_000;
/// THEORY.md C3 (c): `rms(x)/η = 0.0270` for every setting with (0.9, 0.98) (f64, 2·10^5 steps);
/// the test allows ±10 % around it (a window 40× shorter, f32 too).
const RMS_OVER_RATE: f64 = 0.0270;
const RMS_BAND: f64 = 0.1;

fn adam() -> QuadraticOptimizer {
    QuadraticOptimizer::Adam {
        betas: QUADRATIC_BETAS,
        eps: seed002::EPS,
    }
}

fn quadratic<T: Scalar>(setting: Setting, steps: usize) -> QuadraticRun {
    seed002::train_quadratic::<T>(LAMBDA, 1.0, adam(), setting, steps).expect("valid settings")
}

/// Every Adam step of `run` is within D2: `|s_t| ≤ lr·C_t·(1 + (τ + τ_β)u)` (read from the
/// optimizer's state; `seed002::adam_step_allowance` without the `θ` rounding).
fn assert_adam_steps_within_d2<T: Scalar>(run: &QuadraticRun, what: &str) {
    for (k, (&step, &rate)) in run.steps.iter().zip(&run.learning_rates).enumerate() {
        let allowance = seed002::adam_step_allowance::<T>(rate, QUADRATIC_BETAS, k as u64 + 1, 0.0)
            .expect("β1² < β2");
        assert!(
            step.abs() <= allowance,
            "{} {what}: step {k}: |s| = {:e} > {allowance:e}",
            T::NAME,
            step.abs()
        );
    }
}

fn quadratic_oscillation<T: Scalar>() {
    let limit =
        tolerance::adam_step_factor_limit(QUADRATIC_BETAS.0, QUADRATIC_BETAS.1).expect("β1² < β2");
    let mut amplitudes = Vec::new();
    for &rate in &QUADRATIC_RATES {
        let run = quadratic::<T>(Setting::constant(rate), QUADRATIC_STEPS);
        assert_adam_steps_within_d2::<T>(&run, &format!("lr {rate}"));
        let tail = late(&run.iterates, QUADRATIC_WINDOW);
        let rms = root_mean_square(tail);
        assert!(
            (0.01 * rate..=limit * rate).contains(&rms),
            "{} lr {rate}: rms(x) = {rms:e} outside C3 (d)'s [0.01, C_∞]·η",
            T::NAME
        );
        assert!(
            (rms / rate - RMS_OVER_RATE).abs() <= RMS_BAND * RMS_OVER_RATE,
            "{} lr {rate}: rms(x)/η = {}, THEORY.md C3 (c): {RMS_OVER_RATE}",
            T::NAME,
            rms / rate
        );
        amplitudes.push(peak_to_peak(tail));
    }
    for pair in amplitudes.windows(2) {
        assert!(
            pair[1] > pair[0],
            "{}: peak-to-peak(x) {amplitudes:?} over rates {QUADRATIC_RATES:?} not increasing",
            T::NAME
        );
    }

    // Decay: StepLR(1000, 0.5) from 1e-2; the late window runs at ≤ 2^-15 of the base rate.
    let decayed = quadratic::<T>(
        Setting {
            learning_rate: QUADRATIC_RATES[2],
            schedule: LearningRateSchedule::Step {
                step_size: 1000,
                gamma: 0.5,
            },
            clip: None,
        },
        QUADRATIC_STEPS,
    );
    assert_adam_steps_within_d2::<T>(&decayed, "decayed");
    let late_rate = late(&decayed.learning_rates, QUADRATIC_WINDOW)
        .iter()
        .fold(0.0f64, |m, &r| m.max(r));
    let decayed_rms = root_mean_square(late(&decayed.iterates, QUADRATIC_WINDOW));
    assert!(
        decayed_rms <= limit * late_rate && limit * late_rate < 0.01 * QUADRATIC_RATES[2],
        "{}: decayed rms(x) = {decayed_rms:e}, C3's ceiling at the late rate {:e}",
        T::NAME,
        limit * late_rate
    );

    // Clipping at M = 1e-2 (below λ·|x| ≈ 100·0.027·1e-2 at the attractor: active).
    let clipped = quadratic::<T>(
        Setting {
            clip: Some(1e-2),
            ..Setting::constant(QUADRATIC_RATES[2])
        },
        QUADRATIC_STEPS,
    );
    assert_adam_steps_within_d2::<T>(&clipped, "clipped");
    let active = clipped.clipped[QUADRATIC_STEPS - QUADRATIC_WINDOW..]
        .iter()
        .filter(|&&c| c)
        .count();
    assert!(
        2 * active >= QUADRATIC_WINDOW,
        "{}: clipping active in {active} late steps",
        T::NAME
    );
    let clipped_rms = root_mean_square(late(&clipped.iterates, QUADRATIC_WINDOW));
    assert!(
        clipped_rms >= 0.01 * QUADRATIC_RATES[2],
        "{}: clipped rms(x) = {clipped_rms:e} < 0.01η: clipping removed the oscillation",
        T::NAME
    );
}

/// THEORY.md C3, C5, D2, D5 on `λx²/2` (λ = 100, Adam (0.9, 0.98), eps 1e-8), f64 and f32:
///
/// 1. At each constant rate 1e-3, 3e-3, 1e-2 the iterate never settles: over the last 5,000 of
///    20,000 steps `rms(x) ∈ [0.01, C_∞]·η` (C3 (d)) and `rms(x)/η = 0.0270 ± 10 %` (C3 (c)'s
///    constant; C5's scale invariance makes the attractor's size `∝ η`), and the peak-to-peak of
///    `x` increases with the rate (implied by the band for rates ×3 apart; asserted directly).
///    Measured (f64): rms/η 0.0270, 0.0270, 0.0271; peak-to-peak/η 0.0769, 0.0769, 0.0887.
/// 2. Halving the rate every 1000 steps: the late window runs at `η_late ≤ 2^-15·η0` and
///    `rms(x) ≤ C_∞·η_late` (C3's ceiling at the late rate), which is below `0.01·η0`, C3's floor
///    at the constant rate: the oscillation is gone. Measured: rms 1.2e-6·η0.
/// 3. Clipping at `M = 1e-2`: active in at least half of the late steps, every step within D2
///    (`|s_t| ≤ lr·C_t(1 + (τ + τ_β)u)`, read from the state), and `rms(x) ≥ 0.01η`: the
///    oscillation stays (measured 0.35η, 13× larger: Adam sees ≈ ±M and steps ≈ η each time).
#[test]
fn seed002_adam_on_a_quadratic_oscillates_in_proportion_to_the_rate() {
    quadratic_oscillation::<f64>();
    quadratic_oscillation::<f32>();
}

/// THEORY.md C1 and D5 on `λx²/2` with plain SGD at `ηλ = 2.5 > 2`, f32 and f64:
/// - unclipped, `|x_k| = 1.5^k·|x0|` (C1; relative tolerance
///   `tolerance::gradient_descent_quadratic_relative`), so it diverges;
/// - clipped at `M = 1`, every step is `|s| ≤ η·M(1 + γ_1/2 + 4u)(1 + 2u)` (D5's post-clip norm,
///   then `fl(η)` and the product), and by induction `|x_k| ≤ max(|x0|, ηM)(1 + 2u)^k`: for
///   `|λx| ≤ M` the map is `x ↦ (1 − ηλ)x`, `|x_{k+1}| = 1.5|x| ≤ ηλ|x| ≤ ηM`; otherwise
///   `x ↦ x − ηM'·sign(x)`, `M' ≤ M`, so `|x_{k+1}| ≤ max(|x|, ηM')`. The step is bounded but
///   the oscillation stays: 0 repels (factor 1.5 inside `|x| < M/λ`), and every step from
///   `|x| ≥ M/λ` moves `x` by `ηM/(1 + 1e-6/M') ≈ ηM`, so the peak-to-peak of `x` over the last 50
///   steps is at least `ηM/2` (measured: `ηM` exactly to 6 digits).
#[test]
fn seed002_clipping_bounds_the_sgd_step_but_not_the_oscillation() {
    fn check<T: Scalar>() {
        let rate = 2.5 / LAMBDA;
        let u = T::UNIT_ROUNDOFF;
        let plain = seed002::train_quadratic::<T>(
            LAMBDA,
            1.0,
            QuadraticOptimizer::Sgd,
            Setting::constant(rate),
            60,
        )
        .expect("valid");
        let eta_lambda = T::narrow(rate).widen() * T::narrow(LAMBDA).widen();
        let last = plain.iterates.last().copied().unwrap_or(f64::NAN).abs();
        let expected = (eta_lambda - 1.0).powi(60);
        let relative = tolerance::gradient_descent_quadratic_relative(60, eta_lambda, u);
        assert!(
            (last - expected).abs() <= relative * expected + 60.0 * 4.0 * f64::EPSILON * expected,
            "{}: |x_60| = {last:e}, C1: {expected:e}",
            T::NAME
        );
        let max_norm = 1.0;
        let clipped = seed002::train_quadratic::<T>(
            LAMBDA,
            1.0,
            QuadraticOptimizer::Sgd,
            Setting {
                clip: Some(max_norm),
                ..Setting::constant(rate)
            },
            2000,
        )
        .expect("valid");
        let step_bound = T::narrow(rate).widen()
            * max_norm
            * (1.0 + tolerance::clip_grad_norm_relative(1, u))
            * (1.0 + 2.0 * u);
        for (k, (&s, &x)) in clipped.steps.iter().zip(&clipped.iterates).enumerate() {
            assert!(
                s.abs() <= step_bound,
                "{}: step {k}: |s| = {:e} > η·M bound {step_bound:e}",
                T::NAME,
                s.abs()
            );
            let growth = (1.0 + 2.0 * u).powi(k as i32 + 1);
            assert!(
                x.abs() <= 1.0f64.max(rate * max_norm) * growth,
                "{}: step {k}: |x| = {:e}",
                T::NAME,
                x.abs()
            );
        }
        let swing = peak_to_peak(late(&clipped.iterates, 50));
        assert!(
            swing >= rate * max_norm / 2.0,
            "{}: late peak-to-peak(x) = {swing:e} < ηM/2: clipped SGD settled",
            T::NAME
        );
    }
    check::<f64>();
    check::<f32>();
}
