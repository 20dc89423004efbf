//! Time one training step of each model on the OpenCL device and on the reference, and count
//! the kernel launches per step (the one-shot numbers of `cargo bench -- train_step`, without
//! criterion's sampling):
//!
//! ```text
//! cargo run --release --example train_step [-- MODEL [SIZE [STEPS]]]
//! ```
//!
//! `MODEL` is `mlp`, `encoder`, `gru` or empty for all; `SIZE` is `tiny`, `small`, `mid` or
//! empty for all; `STEPS` (default 3) timed steps after one warm-up step on each side. The
//! reference's mid encoder step takes seconds, so it is timed over `STEPS` steps too.

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use mloracle::opencl::train::DeviceTrainer;
use mloracle::OpenCl;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_filter = args.first().cloned().unwrap_or_default();
    let size_filter = args.get(1).cloned().unwrap_or_default();
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let device = match OpenCl::new() {
        Ok(device) => device,
        Err(e) => {
            eprintln!("no OpenCL device: {e}");
            std::process::exit(2);
        }
    };
    println!("device: {}", device.device_label());
    println!(
        "{:<8} {:<6} {:>12} {:>14} {:>10} {:>9}",
        "model", "size", "device ms", "reference ms", "ref/dev", "launches"
    );
    for (model, make) in common::MODELS {
        if !model.contains(model_filter.as_str()) {
            continue;
        }
        for size in common::StepSize::ALL {
            if !size.name().contains(size_filter.as_str()) {
                continue;
            }
            let (task, config) = make(size);
            let mut trainer = match DeviceTrainer::new(&device, &task, &config) {
                Ok(trainer) => trainer,
                Err(e) => {
                    eprintln!("{model}/{}: {e}", size.name());
                    continue;
                }
            };
            if let Err(e) = trainer.step() {
                eprintln!("{model}/{}: {e}", size.name());
                continue;
            }
            let before = device.kernel_launches();
            let start = Instant::now();
            let mut failed = None;
            for _ in 0..steps {
                if let Err(e) = trainer.step() {
                    failed = Some(e);
                    break;
                }
            }
            if let Some(e) = failed {
                eprintln!("{model}/{}: {e}", size.name());
                continue;
            }
            let device_ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
            let launches = (device.kernel_launches() - before) / steps;
            let reference_ms = common::reference_stepper(&task, &config)
                .and_then(|mut step| {
                    step()?;
                    let start = Instant::now();
                    for _ in 0..steps {
                        step()?;
                    }
                    Ok(start.elapsed().as_secs_f64() * 1e3 / steps as f64)
                })
                .unwrap_or(f64::NAN);
            println!(
                "{:<8} {:<6} {:>12.2} {:>14.2} {:>10.2} {:>9}",
                model,
                size.name(),
                device_ms,
                reference_ms,
                reference_ms / device_ms,
                launches
            );
        }
    }
}
