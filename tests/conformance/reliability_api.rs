//! Reliability of the public API outside the ops (the ops are covered by the every-op dispatch
//! test in `reliability.rs`): every constructor, configuration, validator, step function,
//! schedule, comparison helper, parser and OpenCL handle method below is fed arbitrary valid
//! and invalid parameters (NaN, ±∞, negatives, zeros, sizes that overflow or cannot be
//! allocated, out-of-range ids, malformed bytes). Each call runs under `catch_unwind`: a panic
//! is a failure, and so is a result other than the documented one: `Ok` for valid input, the
//! documented [`Error`] variant for invalid input (predicted here independently of the code
//! under test).
//!
//! Each test prints `public API: N functions, M invalid inputs, K valid inputs` (run with
//! `--nocapture` to see it) and asserts that every function of its list was reached.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use mloracle::proptest::prelude::*;
use mloracle::proptest::test_runner::{Config, TestRunner};
use mloracle::reference::models::encoder::{Encoder, EncoderBatch, EncoderConfig, EncoderHead};
use mloracle::reference::models::gru::{GruBatch, GruConfig, GruModel};
use mloracle::reference::models::mlp::{Activation, Mlp, MlpBatch, MlpConfig, MlpLoss};
use mloracle::reference::models::{
    self, Model, OptimizerConfig, Trainer, TrainingConfig, TrainingTask,
};
use mloracle::reference::optim::{
    self, Adam, AdamHyper, GradientMode, LearningRateSchedule, Sgd, SgdHyper,
};
use mloracle::reference::Reduction;
use mloracle::{compare, dump, rng, tolerance, validate, Error};
use ndarray::{Array1, Array2, ArrayD, IxDyn};

/// The documented outcome of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Ok,
    Invalid,
    Shape,
    Empty,
    TooLarge,
    NoDevice,
    Build,
    /// Either `Ok` or an error (e.g. values that are valid but produce NaN): only "no panic".
    NoPanic,
}

fn variant(error: &Error) -> Want {
    match error {
        Error::InvalidParameter { .. } => Want::Invalid,
        Error::ShapeMismatch { .. } => Want::Shape,
        Error::EmptyInput { .. } => Want::Empty,
        Error::TooLarge { .. } => Want::TooLarge,
        Error::NoDevice { .. } | Error::NoPlatform { .. } => Want::NoDevice,
        Error::ProgramBuild { .. } => Want::Build,
        _ => Want::NoPanic,
    }
}

/// Functions reached and inputs tried, over the whole test binary.
struct Tally {
    functions: BTreeSet<&'static str>,
    invalid: usize,
    valid: usize,
}

static TALLY: Mutex<Tally> = Mutex::new(Tally {
    functions: BTreeSet::new(),
    invalid: 0,
    valid: 0,
});

/// Call `f` under `catch_unwind`; fail on a panic or on an outcome other than `want`.
fn call<V>(
    function: &'static str,
    want: Want,
    input: &dyn std::fmt::Debug,
    f: impl FnOnce() -> Result<V, Error>,
) -> Result<Option<V>, TestCaseError> {
    {
        let mut tally = TALLY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tally.functions.insert(function);
        if want == Want::Ok {
            tally.valid += 1;
        } else {
            tally.invalid += 1;
        }
    }
    let outcome = catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_default();
        TestCaseError::fail(format!("{function} panicked on {input:?}: {message}"))
    })?;
    match (&outcome, want) {
        (_, Want::NoPanic) | (Ok(_), Want::Ok) => {}
        (Err(e), w) if w != Want::Ok && variant(e) == w => {}
        (Ok(_), w) => {
            return Err(TestCaseError::fail(format!(
                "{function} on {input:?}: expected {w:?}, got Ok"
            )))
        }
        (Err(e), w) => {
            return Err(TestCaseError::fail(format!(
                "{function} on {input:?}: expected {w:?}, got {e:?}"
            )))
        }
    }
    Ok(outcome.ok())
}

/// A plain call that returns no `Result`: only "no panic".
fn call_plain<V>(
    function: &'static str,
    input: &dyn std::fmt::Debug,
    f: impl FnOnce() -> V,
) -> Result<V, TestCaseError> {
    call(function, Want::NoPanic, input, || Ok(f())).map(|v| v.expect("Ok by construction"))
}

fn report(test: &str, expected: &[&str]) {
    let tally = TALLY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    eprintln!(
        "public API ({test}, cumulative in this process): {} functions, {} invalid inputs, {} valid inputs",
        tally.functions.len(),
        tally.invalid,
        tally.valid
    );
    let missing: Vec<_> = expected
        .iter()
        .filter(|f| !tally.functions.contains(**f))
        .collect();
    assert!(missing.is_empty(), "{test}: never reached {missing:?}");
}

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// Floats that break things: NaN, ±∞, signed zeros, negatives, tiny, huge, and ordinary values.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(1.0),
        Just(-1.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        Just(1e-9),
        -2.0f64..2.0,
        any::<f64>(),
    ]
}

/// Sizes: zero, small, and sizes whose products overflow or that no host can allocate.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(0usize),
        6 => 1usize..6,
        1 => Just(1usize << 44),
        1 => Just(usize::MAX / 2 + 1),
        1 => Just(usize::MAX),
    ]
}

/// Sizes that are 0 (invalid), small (valid) or far too large (TooLarge), for element counts.
fn is_small(n: usize) -> bool {
    (1..6).contains(&n)
}

fn finite_non_negative(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

fn unit(x: f64) -> bool {
    (0.0..1.0).contains(&x)
}

// ---------------------------------------------------------------------------------------------
// Optimizers, clipping, schedules
// ---------------------------------------------------------------------------------------------

const OPTIM_FUNCTIONS: &[&str] = &[
    "SgdHyper::validate",
    "AdamHyper::validate",
    "optim::validate_sgd_step",
    "optim::validate_adam_step",
    "Sgd::new",
    "Sgd::step",
    "Adam::new",
    "Adam::step",
    "optim::adam_bias_corrections",
    "optim::validate_clip_grad_norm",
    "optim::validate_clip_grad_value",
    "optim::clip_grad_norm",
    "optim::clip_grad_value",
    "LearningRateSchedule::validate",
    "LearningRateSchedule::multiplier",
    "LearningRateSchedule::learning_rate",
];

#[test]
fn optimizer_schedule_and_clip_parameters_never_panic() {
    let hyper = (float(), float(), float(), float(), float(), any::<bool>());
    let lengths = prop::collection::vec(prop_oneof![5 => 0usize..4, 1 => Just(usize::MAX)], 0..3);
    let schedule = (
        0usize..3,
        any::<u64>().prop_map(|s| s % 4),
        float(),
        any::<u64>(),
    );
    run(
        256,
        (hyper, lengths, schedule, float(), any::<u64>()),
        |((a, b, c, d, e, flag), lengths, (kind, size, factor, step), base, t)| {
            let sgd = SgdHyper {
                learning_rate: a,
                momentum: b,
                dampening: c,
                nesterov: flag,
                weight_decay: d,
            };
            let sgd_ok = finite_non_negative(a)
                && unit(b)
                && (0.0..=1.0).contains(&c)
                && finite_non_negative(d)
                && !(flag && (b <= 0.0 || c != 0.0));
            let want = |ok: bool| if ok { Want::Ok } else { Want::Invalid };
            call("SgdHyper::validate", want(sgd_ok), &sgd, || sgd.validate())?;
            let mut adam = AdamHyper::new(a, b, c, d);
            adam.weight_decay = e;
            adam.decoupled = flag;
            let adam_ok = finite_non_negative(a)
                && unit(b)
                && unit(c)
                && d.is_finite()
                && d > 0.0
                && finite_non_negative(e);
            call("AdamHyper::validate", want(adam_ok), &adam, || {
                adam.validate()
            })?;
            call("optim::validate_sgd_step", want(sgd_ok), &sgd, || {
                optim::validate_sgd_step(&sgd, 3, 3, Some(3))
            })?;
            if sgd_ok {
                call("optim::validate_sgd_step", Want::Shape, &sgd, || {
                    optim::validate_sgd_step(&sgd, 3, 2, None)
                })?;
            }
            call("optim::validate_adam_step", want(adam_ok), &adam, || {
                optim::validate_adam_step(&adam, 2, 2, 2, 2)
            })?;
            if adam_ok {
                call("optim::validate_adam_step", Want::Shape, &adam, || {
                    optim::validate_adam_step(&adam, 2, 2, 1, 2)
                })?;
            }
            call_plain("optim::adam_bias_corrections", &(adam, t), || {
                optim::adam_bias_corrections(&adam, t)
            })?;
            // Optimizers over the lengths (usize::MAX cannot be allocated: TooLarge).
            let huge = lengths.contains(&usize::MAX);
            let new_want = |ok: bool| {
                if !ok {
                    Want::Invalid
                } else if huge {
                    Want::TooLarge
                } else {
                    Want::Ok
                }
            };
            let input = (sgd, &lengths);
            if let Some(mut opt) = call("Sgd::new", new_want(sgd_ok), &input, || {
                Sgd::<f32>::new(sgd, &lengths)
            })? {
                let mut parameters: Vec<Array1<f32>> =
                    lengths.iter().map(|&n| Array1::ones(n)).collect();
                let gradients = parameters.clone();
                call("Sgd::step", Want::Ok, &input, || {
                    opt.step(&mut parameters, &gradients)
                })?;
                let fewer = &gradients[..gradients.len().saturating_sub(1)];
                let w = if gradients.is_empty() {
                    Want::Ok
                } else {
                    Want::Shape
                };
                call("Sgd::step", w, &input, || opt.step(&mut parameters, fewer))?;
            }
            let input = (adam, &lengths);
            if let Some(mut opt) = call("Adam::new", new_want(adam_ok), &input, || {
                Adam::<f64>::new(adam, &lengths)
            })? {
                let mut parameters: Vec<Array1<f64>> =
                    lengths.iter().map(|&n| Array1::ones(n)).collect();
                let gradients: Vec<Array1<f64>> = lengths
                    .iter()
                    .map(|&n| Array1::from_elem(n, f64::NAN))
                    .collect();
                call("Adam::step", Want::Ok, &input, || {
                    opt.step(&mut parameters, &gradients)
                })?;
                let mut longer = gradients.clone();
                longer.push(Array1::zeros(1));
                call("Adam::step", Want::Shape, &input, || {
                    opt.step(&mut parameters, &longer)
                })?;
            }
            // Clipping: max_norm / clip_value must be finite and ≥ 0.
            call(
                "optim::validate_clip_grad_norm",
                want(finite_non_negative(a)),
                &a,
                || optim::validate_clip_grad_norm(a),
            )?;
            call(
                "optim::validate_clip_grad_value",
                want(finite_non_negative(a)),
                &a,
                || optim::validate_clip_grad_value(a),
            )?;
            let mut gradients = vec![Array1::from(vec![b as f32, c as f32]), Array1::zeros(0)];
            call(
                "optim::clip_grad_norm",
                want(finite_non_negative(a)),
                &(a, b, c),
                || optim::clip_grad_norm(&mut gradients, a),
            )?;
            call(
                "optim::clip_grad_value",
                want(finite_non_negative(a)),
                &(a, b, c),
                || optim::clip_grad_value(&mut gradients, a),
            )?;
            // Schedules: step_size, model_size, warmup ≥ 1; gamma, factor finite ≥ 0.
            let (schedule, schedule_ok) = match kind {
                0 => (LearningRateSchedule::Constant, true),
                1 => (
                    LearningRateSchedule::Step {
                        step_size: size,
                        gamma: factor,
                    },
                    size >= 1 && finite_non_negative(factor),
                ),
                _ => (
                    LearningRateSchedule::Noam {
                        model_size: size,
                        factor,
                        warmup_steps: size.saturating_sub(1),
                    },
                    size >= 2 && finite_non_negative(factor),
                ),
            };
            call(
                "LearningRateSchedule::validate",
                want(schedule_ok),
                &schedule,
                || schedule.validate(),
            )?;
            call(
                "LearningRateSchedule::multiplier",
                want(schedule_ok),
                &schedule,
                || schedule.multiplier(step),
            )?;
            let lr_ok = schedule_ok && finite_non_negative(base);
            call(
                "LearningRateSchedule::learning_rate",
                want(lr_ok),
                &(schedule, base),
                || schedule.learning_rate(base, step),
            )?;
            Ok(())
        },
    );
    report("optimizers", OPTIM_FUNCTIONS);
}

// ---------------------------------------------------------------------------------------------
// Models, training configuration, batches
// ---------------------------------------------------------------------------------------------

const MODEL_FUNCTIONS: &[&str] = &[
    "Mlp::new",
    "Mlp::loss_and_gradients",
    "GruConfig::parameter_lengths",
    "GruModel::new",
    "GruModel::loss_and_gradients",
    "Encoder::new",
    "Encoder::loss_and_gradients",
    "Trainer::new",
    "Trainer::step",
    "models::train",
];

fn encoder_config() -> impl Strategy<Value = (EncoderConfig, usize)> {
    (
        (size(), size(), size(), size(), size(), size()),
        (
            float(),
            float(),
            any::<bool>(),
            float(),
            0usize..3,
            size(),
            any::<u64>(),
        ),
    )
        .prop_map(
            |((vocab, hidden, heads, layers, intermediate, max_positions), rest)| {
                let (dropout, eps, causal, std, head, classes, seed) = rest;
                let head = match head {
                    0 => EncoderHead::Token { classes },
                    1 => EncoderHead::Pooled { classes },
                    _ => EncoderHead::MaskedLm,
                };
                (
                    EncoderConfig {
                        vocab,
                        hidden,
                        heads,
                        layers,
                        intermediate,
                        max_positions,
                        dropout,
                        layer_norm_eps: eps,
                        causal,
                        token_embedding_std: std,
                        head,
                        seed,
                    },
                    classes,
                )
            },
        )
}

/// The documented outcome of `Encoder::new` (sizes ≥ 1; heads divide hidden; dropout in
/// [0, 1); eps finite > 0; a non-finite or negative embedding std is an init error; products
/// of huge sizes are TooLarge).
fn encoder_want(c: &EncoderConfig, classes: usize) -> Want {
    let classes = if c.head == EncoderHead::MaskedLm {
        c.vocab
    } else {
        classes
    };
    let sizes = [
        c.vocab,
        c.hidden,
        c.heads,
        c.layers,
        c.intermediate,
        c.max_positions,
    ];
    if sizes.contains(&0) {
        return Want::Invalid;
    }
    if c.hidden % c.heads != 0 {
        return Want::Invalid;
    }
    if !(unit(c.dropout) && c.layer_norm_eps.is_finite() && c.layer_norm_eps > 0.0) {
        return Want::Invalid;
    }
    if classes == 0 {
        return Want::Invalid;
    }
    if sizes.iter().chain([&classes]).all(|&n| is_small(n)) {
        if finite_non_negative(c.token_embedding_std) {
            Want::Ok
        } else {
            Want::Invalid
        }
    } else if finite_non_negative(c.token_embedding_std) {
        Want::TooLarge
    } else {
        // The std is checked when the token embedding is initialised, after the size checks
        // (TooLarge) or before its allocation (Invalid): either is documented.
        Want::NoPanic
    }
}

#[test]
fn model_and_training_configurations_never_panic() {
    let mlp = (
        prop::collection::vec(size(), 0..4),
        0usize..5,
        prop_oneof![
            Just(MlpLoss::BceWithLogits),
            Just(MlpLoss::Mse(Reduction::Sum))
        ],
        float(),
    );
    let gru = (size(), size(), size(), 0usize..12, -101i64..12);
    let training = (
        float(),
        float(),
        float(),
        prop::option::of(float()),
        any::<bool>(),
    );
    run(
        96,
        (mlp, gru, encoder_config(), training),
        |(
            (widths, activation, loss, slope),
            (vocab, embed, hidden, item, target),
            (config, classes),
            t,
        )| {
            // MLP: ≥ 2 widths, each ≥ 1; BCE needs the Identity output; huge widths TooLarge.
            let act = [
                Activation::Relu,
                Activation::LeakyRelu(slope),
                Activation::Sigmoid,
                Activation::Tanh,
                Activation::Identity,
            ][activation];
            let mlp_config = MlpConfig {
                widths: widths.clone(),
                hidden_activation: act,
                output_activation: act,
                loss,
                seed: 1,
            };
            let mlp_want = if widths.len() < 2
                || widths.contains(&0)
                || (loss == MlpLoss::BceWithLogits && act != Activation::Identity)
            {
                Want::Invalid
            } else if widths.iter().all(|&w| is_small(w)) {
                Want::Ok
            } else {
                Want::TooLarge
            };
            let mlp = call("Mlp::new", mlp_want, &mlp_config, || {
                Mlp::<f32>::new(mlp_config.clone())
            })?;
            if let Some(model) = &mlp {
                let (d0, dl) = (widths[0], widths[widths.len() - 1]);
                let good = MlpBatch {
                    inputs: Array2::from_elem((2, d0), 0.5f32),
                    targets: Array2::from_elem((2, dl), 1.0f32),
                };
                call("Mlp::loss_and_gradients", Want::NoPanic, &good, || {
                    model.loss_and_gradients(&good, 0)
                })?;
                let bad = MlpBatch {
                    inputs: Array2::from_elem((2, d0 + 1), 0.5f32),
                    targets: Array2::from_elem((2, dl), 1.0f32),
                };
                call("Mlp::loss_and_gradients", Want::Shape, &bad, || {
                    model.loss_and_gradients(&bad, 0)
                })?;
            }
            // GRU: vocab, embed, hidden ≥ 1; huge sizes TooLarge.
            let gru_config = GruConfig {
                vocab,
                embed,
                hidden,
                seed: 2,
            };
            let sizes = [vocab, embed, hidden];
            let gru_want = if sizes.contains(&0) {
                Want::Invalid
            } else if sizes.iter().all(|&n| is_small(n)) {
                Want::Ok
            } else {
                Want::TooLarge
            };
            let lengths_want = if gru_want == Want::Invalid {
                Want::Invalid
            } else {
                Want::NoPanic
            };
            call(
                "GruConfig::parameter_lengths",
                lengths_want,
                &gru_config,
                || gru_config.parameter_lengths(),
            )?;
            let gru = call("GruModel::new", gru_want, &gru_config, || {
                GruModel::<f32>::new(gru_config)
            })?;
            if let Some(model) = &gru {
                // Item ids must be < vocab; targets in 0..vocab or -100.
                let batch = GruBatch {
                    items: Array2::from_elem((2, 3), item),
                    targets: Array1::from(vec![target, 0]),
                };
                let ok = item < vocab
                    && (target == -100 || usize::try_from(target).is_ok_and(|t| t < vocab));
                let w = if ok { Want::Ok } else { Want::Invalid };
                call("GruModel::loss_and_gradients", w, &batch, || {
                    model.loss_and_gradients(&batch, 0)
                })?;
            }
            // Encoder.
            let want = encoder_want(&config, classes);
            let encoder = call("Encoder::new", want, &config, || {
                Encoder::<f32>::new(config)
            })?;
            // Training configuration on a valid model (the MLP if there is one, else a tiny one).
            let (a, b, c, clip, flag) = t;
            let training = TrainingConfig {
                optimizer: if flag {
                    OptimizerConfig::Adam(AdamHyper::new(a.abs(), 0.9, 0.999, b))
                } else {
                    OptimizerConfig::Sgd(SgdHyper::plain(a))
                },
                base_learning_rate: c,
                schedule: LearningRateSchedule::Constant,
                clip_grad_norm: clip,
                gradient_mode: if flag {
                    GradientMode::Accumulate
                } else {
                    GradientMode::ZeroEachStep
                },
            };
            let hyper_ok = if flag {
                finite_non_negative(a.abs()) && b.is_finite() && b > 0.0
            } else {
                finite_non_negative(a)
            };
            let training_ok =
                hyper_ok && finite_non_negative(c) && clip.is_none_or(finite_non_negative);
            let model = GruModel::<f32>::new(GruConfig {
                vocab: 3,
                embed: 2,
                hidden: 2,
                seed: 0,
            })
            .expect("valid");
            let want = if training_ok { Want::Ok } else { Want::Invalid };
            let trainer = call("Trainer::new", want, &training, || {
                Trainer::new(model.clone(), training)
            })?;
            let batch = GruBatch {
                items: Array2::from_elem((1, 2), item),
                targets: Array1::from(vec![target]),
            };
            let batch_ok =
                item < 3 && (target == -100 || usize::try_from(target).is_ok_and(|t| t < 3));
            if let Some(mut trainer) = trainer {
                let w = if batch_ok { Want::Ok } else { Want::Invalid };
                call("Trainer::step", w, &batch, || trainer.step(&batch))?;
            }
            let task = TrainingTask::Gru { model, batch };
            let w = if !training_ok || !batch_ok {
                Want::Invalid
            } else {
                Want::Ok
            };
            call("models::train", w, &training, || {
                models::train(&task, &training, 2)
            })?;
            // Token ids must be < vocab (3); targets one per token, each a class or -100.
            drop(encoder);
            let small = EncoderConfig {
                vocab: 3,
                hidden: 4,
                intermediate: 4,
                max_positions: 4,
                ..EncoderConfig::seed003(1)
            };
            let encoder = Encoder::<f32>::new(small).expect("valid");
            let id = item % 5;
            let batch = EncoderBatch {
                ids: Array2::from_elem((1, 2), id),
                attention_mask: None,
                targets: Array1::from(vec![target, 0]),
            };
            let targets_ok = target == -100 || (0..2).contains(&target);
            let w = if id < 3 && targets_ok {
                Want::Ok
            } else {
                Want::Invalid
            };
            call("Encoder::loss_and_gradients", w, &batch, || {
                encoder.loss_and_gradients(&batch, 0)
            })?;
            Ok(())
        },
    );
    report("models", MODEL_FUNCTIONS);
}

// ---------------------------------------------------------------------------------------------
// Validators, random initialisation, comparison, tolerances, NPY parsing, strategies
// ---------------------------------------------------------------------------------------------

const HELPER_FUNCTIONS: &[&str] = &[
    "validate::probability",
    "validate::positive_finite",
    "validate::non_negative_finite",
    "validate::finite_argument",
    "validate::axis_2d",
    "validate::embedding_ids",
    "validate::class_targets",
    "validate::element_count",
    "validate::filled_vec",
    "rng::dropout_threshold",
    "rng::init_uniform",
    "rng::init_normal",
    "compare::check_element",
    "compare::compare",
    "compare::format_values",
    "tolerance::gamma",
    "tolerance::pair",
    "tolerance::adam_step_factor",
    "tolerance::adam_step_factor_limit",
    "tolerance::adam_step_rounding_factor",
    "dump::parse_npy",
    "dump::npy_bytes",
];

#[test]
fn validators_comparisons_and_parsers_never_panic() {
    let bytes = prop::collection::vec(any::<u8>(), 0..64);
    run(
        256,
        (
            float(),
            float(),
            float(),
            size(),
            size(),
            bytes,
            -3i64..6,
            any::<u64>(),
        ),
        |(x, y, z, n, m, bytes, target, step)| {
            let want = |ok: bool| if ok { Want::Ok } else { Want::Invalid };
            call("validate::probability", want(unit(x)), &x, || {
                validate::probability("t", "p", x)
            })?;
            call(
                "validate::positive_finite",
                want(x.is_finite() && x > 0.0),
                &x,
                || validate::positive_finite("t", "x", x),
            )?;
            call(
                "validate::non_negative_finite",
                want(finite_non_negative(x)),
                &x,
                || validate::non_negative_finite("t", "x", x),
            )?;
            call("validate::finite_argument", want(x.is_finite()), &x, || {
                validate::finite_argument("t", "x", x)
            })?;
            call("validate::axis_2d", want(n < 2), &n, || {
                validate::axis_2d("t", n)
            })?;
            let ids = Array1::from(vec![n % 7, m % 7]);
            let ids_ok = ids.iter().all(|&i| i < 4);
            call("validate::embedding_ids", want(ids_ok), &ids, || {
                validate::embedding_ids("t", ids.view(), 4)
            })?;
            let targets = Array1::from(vec![target, 0]);
            let targets_ok = target == -1 || (0..4).contains(&target);
            call(
                "validate::class_targets",
                want(targets_ok),
                &targets,
                || validate::class_targets("t", 2, 4, targets.view(), -1),
            )?;
            call("validate::class_targets", Want::Shape, &targets, || {
                validate::class_targets("t", 3, 4, targets.view(), -1)
            })?;
            let product_fits = n.checked_mul(m).is_some();
            let w = if product_fits {
                Want::Ok
            } else {
                Want::TooLarge
            };
            call("validate::element_count", w, &(n, m), || {
                validate::element_count("t", "n", &[n, m])
            })?;
            let w = if n < (1 << 30) {
                Want::Ok
            } else {
                Want::TooLarge
            };
            call("validate::filled_vec", w, &n, || {
                validate::filled_vec("t", n, 0u64).map(|v| v.len())
            })?;
            call("rng::dropout_threshold", want(unit(x)), &x, || {
                rng::dropout_threshold(x)
            })?;
            let key = rng::RandomKey {
                seed: step,
                step,
                tensor_id: step,
            };
            let w = if !finite_non_negative(y) {
                Want::Invalid
            } else if !product_fits
                || n.saturating_mul(m) >= (1 << 30)
                || n.max(m) > isize::MAX as usize
            {
                Want::TooLarge
            } else {
                Want::Ok
            };
            call("rng::init_uniform", w, &(n, m, y), || {
                rng::init_uniform::<f32, _>((n, m), y, key).map(|a| a.len())
            })?;
            call("rng::init_normal", w, &(n, m, y), || {
                rng::init_normal::<f64, _>((n, m), y, key).map(|a| a.len())
            })?;
            // Comparison helpers on NaN, infinities, empty and mismatched arrays.
            let _ = call_plain("compare::check_element", &(x, y, z), || {
                compare::check_element(x, y, z)
            })?;
            let subject = compare::Subject {
                op: "t".into(),
                actual: "a".into(),
                expected: "e".into(),
            };
            let k = n % 4;
            let a = ArrayD::from_elem(IxDyn(&[k]), x);
            let e = ArrayD::from_elem(IxDyn(&[m % 4]), y);
            let bound = ArrayD::from_elem(IxDyn(&[m % 4]), z);
            call_plain("compare::compare", &(k, m % 4, x, y, z), || {
                compare::compare(&subject, a.view(), e.view(), bound.view(), &|_| {
                    String::new()
                })
                .is_ok()
            })?;
            call_plain("compare::format_values", &(k, x), || {
                compare::format_values(a.iter().copied())
            })?;
            call_plain("tolerance::gamma", &(n, x), || tolerance::gamma(n, x))?;
            call_plain("tolerance::pair", &(k, m % 4), || {
                tolerance::pair(a.clone(), e.clone())
            })?;
            call_plain("tolerance::adam_step_factor", &(x, y, step), || {
                tolerance::adam_step_factor(x, y, step)
            })?;
            call_plain("tolerance::adam_step_factor_limit", &(x, y), || {
                tolerance::adam_step_factor_limit(x, y)
            })?;
            call_plain("tolerance::adam_step_rounding_factor", &(x, y), || {
                tolerance::adam_step_rounding_factor(x, y)
            })?;
            // NPY: arbitrary bytes, and a valid header with a shape whose product overflows.
            call_plain("dump::parse_npy", &bytes, || {
                dump::parse_npy(&bytes).is_ok()
            })?;
            let valid = dump::npy_bytes(a.view(), dump::Dtype::F32);
            call_plain("dump::npy_bytes", &k, || valid.len())?;
            let mut forged = valid.clone();
            let header_end = forged.len() - 4 * k;
            let text = String::from_utf8_lossy(&forged[10..header_end])
                .replace(&format!("({k},)"), &format!("({n}, {m})"));
            let mut header = text.into_bytes();
            header.resize(header_end - 10, b' ');
            forged.splice(10..header_end, header);
            call_plain("dump::parse_npy", &(n, m), || {
                dump::parse_npy(&forged).is_ok()
            })?;
            Ok(())
        },
    );
    report("helpers", HELPER_FUNCTIONS);
}

/// The strategies with parameters (lengths, ranges) take any value without panicking when the
/// strategy is built and sampled: zero lengths give empty values, reversed or non-finite ranges
/// are rejected by the caller's own domain (documented preconditions below are checked).
#[test]
fn strategies_with_parameters_never_panic() {
    use mloracle::strategy;
    let mut runner = TestRunner::deterministic();
    let mut sample = |name: &'static str, f: &dyn Fn(&mut TestRunner) -> usize| {
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut runner)));
        let mut tally = TALLY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tally.functions.insert(name);
        tally.invalid += 1;
        assert!(outcome.is_ok(), "{name} panicked");
    };
    for len in [0usize, 1, 3] {
        sample("strategy::row_values", &|r| {
            strategy::row_values(len)
                .new_tree(r)
                .map_or(0, |t| t.current().len())
        });
        sample("strategy::labels_of_len", &|r| {
            strategy::labels_of_len(len)
                .new_tree(r)
                .map_or(0, |t| t.current().len())
        });
        sample("strategy::norm_row_values", &|r| {
            strategy::norm_row_values(len, true)
                .new_tree(r)
                .map_or(0, |t| t.current().len())
        });
        sample("strategy::scaled_values", &|r| {
            strategy::scaled_values(len, -3.0, 1.0)
                .new_tree(r)
                .map_or(0, |t| t.current().len())
        });
    }
    sample("strategy::narrow", &|_| {
        strategy::narrow::<f32>(&[f64::NAN, f64::MAX, -0.0]).len()
    });
}

// ---------------------------------------------------------------------------------------------
// OpenCL handle: constructors with bad options, buffers, enqueues, device trainer
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "opencl")]
const OPENCL_FUNCTIONS: &[&str] = &[
    "OpenCl::open",
    "OpenCl::with_matmul_tile",
    "OpenCl::upload_buffer",
    "OpenCl::upload_writable",
    "OpenCl::zeros_buffer",
    "OpenCl::upload_indices",
    "OpenCl::enqueue_row_kernel",
    "OpenCl::prepare",
    "OpenCl::random_bits",
    "DeviceTrainer::new",
];

#[cfg(feature = "opencl")]
#[test]
fn opencl_handle_with_bad_options_never_panics() {
    use mloracle::opencl::train::DeviceTrainer;
    use mloracle::opencl::Workload;
    let Some(cl) = mloracle::harness::obtain(
        "reliability_api (OpenCL)",
        mloracle::harness::default_opencl(),
    ) else {
        return;
    };
    // A filter no device matches is NoDevice, listing what is available.
    call("OpenCl::open", Want::NoDevice, &"no such device", || {
        mloracle::OpenCl::open(Some("no such device \u{1F600}"))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    run(64, (size(), size(), 0usize..4), |(n, m, which)| {
        // Tiles: 1 ≤ tile and tile² ≤ max work-group size (huge tiles never fit).
        let w = if is_small(n) {
            Want::NoPanic
        } else {
            Want::Invalid
        };
        call("OpenCl::with_matmul_tile", w, &n, || {
            cl.with_matmul_tile(n).map(|c| c.tile())
        })?;
        let w = if n == 0 {
            Want::Empty
        } else if is_small(n) {
            Want::Ok
        } else {
            Want::TooLarge
        };
        call("OpenCl::zeros_buffer", w, &n, || {
            cl.zeros_buffer::<f32>(n).map(|b| b.len())
        })?;
        let data = vec![1.0f32; n.min(5)];
        let w = if data.is_empty() {
            Want::Empty
        } else {
            Want::Ok
        };
        call("OpenCl::upload_buffer", w, &data, || {
            cl.upload_buffer(&data).map(|b| b.len())
        })?;
        call("OpenCl::upload_writable", w, &data, || {
            cl.upload_writable(&data).map(|b| b.len())
        })?;
        let ids = vec![m as i64; n.min(5)];
        call("OpenCl::upload_indices", w, &ids, || {
            cl.upload_indices(&ids).map(|b| b.len())
        })?;
        // Row kernels: a known name, and buffers holding rows × cols (cols ≥ 1).
        if let (Ok(input), Ok(output)) = (cl.zeros_buffer::<f32>(6), cl.zeros_buffer::<f32>(6)) {
            let name = [
                "softmax_rows",
                "log_sum_exp_rows",
                "log_softmax_rows",
                "relu",
            ][which];
            let (rows, cols) = (n % 7, m % 7);
            let need = if name == "log_sum_exp_rows" {
                rows
            } else {
                rows * cols
            };
            let w = if name == "relu" {
                Want::Invalid
            } else if cols == 0 || rows * cols > 6 || need > 6 {
                Want::Shape
            } else {
                Want::Ok
            };
            call("OpenCl::enqueue_row_kernel", w, &(name, rows, cols), || {
                cl.enqueue_row_kernel(name, &input, rows, cols, &output)?;
                cl.finish()
            })?;
        }
        let w = if n == 0 {
            Want::Empty
        } else if is_small(n) {
            Want::Ok
        } else {
            Want::NoPanic
        };
        call("OpenCl::prepare", w, &n, || {
            cl.prepare::<f32>(Workload::Elementwise {
                kernel: "relu",
                len: n,
            })
            .map(|_| ())
        })?;
        let len = n.min(64);
        call("OpenCl::random_bits", Want::Ok, &len, || {
            cl.random_bits(
                rng::RandomKey {
                    seed: 1,
                    step: m as u64,
                    tensor_id: 0,
                },
                0,
                len,
            )
        })?;
        Ok(())
    });
    // A device trainer validates its settings like the reference trainer.
    let model = GruModel::<f32>::new(GruConfig {
        vocab: 3,
        embed: 2,
        hidden: 2,
        seed: 0,
    })
    .expect("valid");
    let batch = GruBatch {
        items: Array2::zeros((1, 2)),
        targets: Array1::from(vec![5]),
    };
    let task = TrainingTask::Gru { model, batch };
    for (config, want) in [
        (TrainingConfig::sgd(f64::NAN), Want::Invalid),
        (TrainingConfig::adam(-1.0), Want::Invalid),
        (TrainingConfig::sgd(0.1), Want::Invalid), // target 5 ≥ vocab 3
    ] {
        call("DeviceTrainer::new", want, &config, || {
            DeviceTrainer::new(&cl, &task, &config).map(|_| ())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    report("opencl", OPENCL_FUNCTIONS);
}
