//! Seed 001, "regression collapses to a constant" (`shared/seeds/001_*.txt`), reproduced on the
//! reference.
//!
//! A ReLU MLP (`[16, 64, 32, 16, 64]`, sigmoid output, PyTorch init) trained with plain SGD on one
//! batch of 8 rows × 64 outputs with sparse targets in `[0, 1]`, once with `MSELoss(reduction=
//! 'sum')` and once with `'mean'`, both at lr 0.5. The sum makes the effective rate `N·D = 512`
//! times larger (256 on the mean). Prints the numbers and writes
//! `target/mloracle-report/seed001.svg` (loss per element, dead-unit fraction per hidden layer,
//! prediction spread across rows, against step).
//!
//! `cargo run --release --example seed001 [-- --backend reference|opencl|both]` (`opencl` and
//! `both` add the same runs through `Backend::train` on the reference and the OpenCL device).

mod common;
#[cfg(feature = "opencl")]
use common::backend_choice;
use std::error::Error;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use mloracle::reference::Reduction;
use mloracle::seeds::seed001::{self, Record};
use plotters::prelude::*;

const STEPS: usize = 200;
const LEARNING_RATE: f64 = 0.5;
const SEED: u64 = 0;

fn run(reduction: Reduction, message: &'static str) -> Result<Vec<Record>, Box<dyn Error>> {
    let bar = ProgressBar::new(STEPS as u64);
    bar.set_style(ProgressStyle::with_template(
        "{msg:>20} [{bar:40}] {pos}/{len}",
    )?);
    bar.set_message(message);
    let batch = seed001::batch::<f32>(SEED);
    let (_, records) = seed001::train(
        seed001::model::<f32>(reduction, SEED)?,
        &batch,
        LEARNING_RATE,
        STEPS,
        |_| bar.inc(1),
    )?;
    bar.finish();
    Ok(records)
}

fn main() -> Result<(), Box<dyn Error>> {
    let batch = seed001::batch::<f32>(SEED);
    let count = batch.targets.len() as f64;
    let floor: f64 = batch
        .targets
        .columns()
        .into_iter()
        .map(|c| {
            let m = c.iter().map(|v| f64::from(*v)).sum::<f64>() / c.len() as f64;
            c.iter().map(|v| (f64::from(*v) - m).powi(2)).sum::<f64>()
        })
        .sum();
    let summed = run(Reduction::Sum, "MSE sum, lr 0.5")?;
    let averaged = run(Reduction::Mean, "MSE mean, lr 0.5")?;
    let collapse = summed.iter().position(|r| r.dead.contains(&1.0));

    println!(
        "Seed 001: regression collapses to a constant (f32 reference, seed {SEED}, plain SGD)"
    );
    println!(
        "  MSE with reduction='sum' over N·D = {count} entries: every gradient is exactly {count} \
         times the 'mean' one, so lr {LEARNING_RATE} on the sum is lr {} on the mean (bitwise, \
         N·D a power of two).",
        LEARNING_RATE * count
    );
    match collapse {
        Some(k) => {
            let layer = summed[k].dead.iter().position(|&d| d == 1.0).unwrap_or(0);
            println!(
                "  Sum: hidden layer {} has every unit dead on every row from step {k} on \
                 (dead fractions at step {STEPS}: {:?}). The layer and all earlier ones get \
                 exactly zero gradient, plain SGD leaves them bitwise unchanged, and every row \
                 gets the same prediction (spread {:.1e}).",
                layer + 1,
                summed[STEPS].dead,
                summed[STEPS].spread
            );
        }
        None => println!("  Sum: no all-dead layer within {STEPS} steps for this seed."),
    }
    println!(
        "  The collapsed model is the best constant per output (B1): loss {:.6} vs the floor \
         Σ_j Σ_i (y_ij − ȳ_j)² = {floor:.6}.",
        summed[STEPS].loss
    );
    println!(
        "  Mean, same lr: dead fractions {:?}, spread {:.3} at step {STEPS}, loss per element \
         {:.4}: no collapse.",
        averaged[STEPS].dead, averaged[STEPS].spread, averaged[STEPS].loss
    );

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/mloracle-report");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("seed001.svg");
    {
        let root = SVGBackend::new(&path, (900, 1000)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((3, 1));
        let steps = STEPS as f64;
        let series = |records: &[Record], f: &dyn Fn(&Record) -> f64| -> Vec<(f64, f64)> {
            records
                .iter()
                .enumerate()
                .map(|(k, r)| (k as f64, f(r)))
                .collect()
        };
        let legend =
            |c: RGBColor| move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 20, y)], c);

        let mut chart = ChartBuilder::on(&panels[0])
            .caption("MSE per element (plain SGD, lr 0.5)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..steps, 0f64..0.2f64)?;
        chart.configure_mesh().x_desc("step").draw()?;
        chart
            .draw_series(LineSeries::new(series(&summed, &|r| r.loss / count), &RED))?
            .label("reduction='sum' (shown / N·D)")
            .legend(legend(RED));
        chart
            .draw_series(LineSeries::new(series(&averaged, &|r| r.loss), &BLUE))?
            .label("reduction='mean'")
            .legend(legend(BLUE));
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, floor / count), (steps, floor / count)],
                &BLACK,
            ))?
            .label("best constant (B1)")
            .legend(legend(BLACK));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;

        let mut chart = ChartBuilder::on(&panels[1])
            .caption("dead-unit fraction per hidden layer", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..steps, 0f64..1.05f64)?;
        chart.configure_mesh().x_desc("step").draw()?;
        let colours = [RED, MAGENTA, CYAN];
        for (layer, colour) in colours.iter().enumerate() {
            chart
                .draw_series(LineSeries::new(series(&summed, &|r| r.dead[layer]), colour))?
                .label(format!("sum, layer {}", layer + 1))
                .legend(legend(*colour));
        }
        chart
            .draw_series(LineSeries::new(
                series(&averaged, &|r| r.dead.iter().copied().fold(0.0, f64::max)),
                &BLUE,
            ))?
            .label("mean, most-dead layer")
            .legend(legend(BLUE));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;

        let mut chart = ChartBuilder::on(&panels[2])
            .caption(
                "prediction spread across rows (max over outputs)",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..steps, 0f64..1.05f64)?;
        chart.configure_mesh().x_desc("step").draw()?;
        chart
            .draw_series(LineSeries::new(series(&summed, &|r| r.spread), &RED))?
            .label("reduction='sum'")
            .legend(legend(RED));
        chart
            .draw_series(LineSeries::new(series(&averaged, &|r| r.spread), &BLUE))?
            .label("reduction='mean'")
            .legend(legend(BLUE));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    println!("  Plot: {}", path.display());
    cross_backend_section()
}

#[cfg(not(feature = "opencl"))]
fn cross_backend_section() -> Result<(), Box<dyn Error>> {
    common::no_opencl_section()
}

/// Seed 001 on the reference and on OpenCL through `Backend::train` (f32, seeds 0–7, SGD lr 0.5 on
/// the sum, 200 steps): dead-unit fraction per hidden layer and final loss of each, and the first
/// step at which the loss traces differ by more than 1 %.
#[cfg(feature = "opencl")]
fn cross_backend_section() -> Result<(), Box<dyn Error>> {
    use mloracle::seeds::{first_divergence, with_parameters};
    use mloracle::{Backend, Reference};
    if backend_choice() == "reference" {
        return Ok(());
    }
    let device = mloracle::harness::default_opencl()?;
    println!();
    println!(
        "Cross-backend (f32, Backend::train, {STEPS} SGD steps on the sum, lr {LEARNING_RATE})"
    );
    for seed in 0..8u64 {
        let batch = seed001::batch::<f32>(seed);
        let model = seed001::model::<f32>(Reduction::Sum, seed)?;
        let mut traces = Vec::new();
        for backend in [
            &Reference as &dyn Backend<f32>,
            &device as &dyn Backend<f32>,
        ] {
            let run = seed001::train_on(&backend, &model, &batch, LEARNING_RATE, STEPS)?;
            let dead =
                seed001::dead_fractions(&with_parameters(&model, &run.parameters)?, &batch.inputs)?;
            let dead: Vec<String> = dead.iter().map(|d| format!("{d:.3}")).collect();
            println!(
                "  seed {seed} {:<34} dead fractions [{}]  final loss {:.5e}",
                backend.name(),
                dead.join(", "),
                run.losses.last().copied().unwrap_or(f32::NAN)
            );
            traces.push(
                run.losses
                    .iter()
                    .map(|&l| f64::from(l))
                    .collect::<Vec<f64>>(),
            );
        }
        match first_divergence(&traces[0], &traces[1], 0.01) {
            Some(k) => println!("  seed {seed}: f32 loss traces first differ by > 1 % at step {k}"),
            None => {
                println!("  seed {seed}: f32 loss traces agree within 1 % over all {STEPS} steps")
            }
        }
    }
    Ok(())
}
