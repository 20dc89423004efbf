//! Seed 003: "loss reaches exactly 0, then jumps by hundreds" — the forum script's exact set-up on
//! the reference backend in f32: BERT-like encoder (hidden 32, 2 heads, 1 layer, vocab 2, causal),
//! batch [[1, 0], [0, 1]] → targets 1 − x, Adam(lr 1, betas (0.9, 0.98), eps 1e-9), Noam(d = 32,
//! warmup 3000) through LambdaLR, clip_grad_norm 1, and gradients never zeroed.
//!
//! `cargo run --release --example seed003 -- [--steps N] [--seed S] [--zero-grad] [--no-dropout]
//! [--eps E]` prints the step at which the loss first reaches exactly 0 and the number of jumps
//! of ≥ 10 between consecutive steps per 10,000 steps, as the forum script does, plus the
//! parameter norm over time (THEORY.md D1, D4).

use mloracle::reference::models::encoder::{Encoder, EncoderBatch, EncoderConfig};
use mloracle::reference::models::{Model, OptimizerConfig, Trainer, TrainingConfig};
use mloracle::reference::optim::{AdamHyper, GradientMode, LearningRateSchedule};
use ndarray::{array, Array1};

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = arg(&args, "--steps").unwrap_or(100_001);
    let seed: u64 = arg(&args, "--seed").unwrap_or(42);
    let eps: f64 = arg(&args, "--eps").unwrap_or(1e-9);
    let zero_grad = args.iter().any(|a| a == "--zero-grad");
    let mut config = EncoderConfig::seed003(seed);
    if args.iter().any(|a| a == "--no-dropout") {
        config.dropout = 0.0;
    }
    let model = Encoder::<f32>::new(config).expect("valid configuration");
    let batch = EncoderBatch {
        ids: array![[1, 0], [0, 1]],
        attention_mask: None,
        targets: Array1::from(vec![0, 1, 1, 0]),
    };
    let training = TrainingConfig {
        optimizer: OptimizerConfig::Adam(AdamHyper::new(1.0, 0.9, 0.98, eps)),
        base_learning_rate: 1.0,
        schedule: LearningRateSchedule::Noam {
            model_size: 32,
            factor: 1.0,
            warmup_steps: 3000,
        },
        clip_grad_norm: Some(1.0),
        gradient_mode: if zero_grad {
            GradientMode::ZeroEachStep
        } else {
            GradientMode::Accumulate
        },
    };
    let mut trainer = Trainer::new(model, training).expect("valid training configuration");
    let started = std::time::Instant::now();
    let (mut previous, mut jumps, mut first_zero, mut max_after_zero) =
        (f32::INFINITY, 0, None, 0.0f32);
    let mut counts = Vec::new();
    let norm = |t: &Trainer<f32, Encoder<f32>>| {
        t.model
            .parameters()
            .iter()
            .flat_map(|p| p.iter())
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt()
    };
    println!("seed 003 on the reference (f32), seed {seed}, eps {eps:e}, zero_grad {zero_grad}, dropout {}", config.dropout);
    for i in 0..steps {
        let report = trainer.step(&batch).expect("training step");
        let loss = report.loss;
        if first_zero.is_none() && loss == 0.0 {
            first_zero = Some(i);
        }
        if first_zero.is_some() {
            max_after_zero = max_after_zero.max(loss);
        }
        if loss - previous > 10.0 {
            jumps += 1;
        }
        if i % 10_000 == 0 && i != 0 {
            counts.push((i, jumps));
            jumps = 0;
            println!(
                "  step {i}: parameter norm {:.1}, {:.1} s",
                norm(&trainer),
                started.elapsed().as_secs_f64()
            );
        }
        if [600, 3000].contains(&i) {
            println!("  step {i}: parameter norm {:.1}", norm(&trainer));
        }
        previous = loss;
    }
    for (i, count) in &counts {
        println!("Steps {}-{}: {}", i - 10_000, i, count);
    }
    match first_zero {
        Some(step) => println!("Zero first reached at step {step}"),
        None => println!("Zero never reached in {steps} steps"),
    }
    println!(
        "max loss after the first zero: {max_after_zero}; final parameter norm {:.1}; {:.1} s",
        norm(&trainer),
        started.elapsed().as_secs_f64()
    );
}
