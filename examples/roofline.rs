//! The device's limits and each kernel's fraction of the limit that binds it, measured back to
//! back in one process (`cargo run --release --example roofline -- [FILTER]`; FILTER keeps the
//! workloads whose label contains it).

use std::time::Duration;

use mloracle::opencl::{target_workloads, LimitConfig};
use mloracle::OpenCl;

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let device = OpenCl::new().expect("an OpenCL device");
    println!("device: {}", device.device_label());
    let limits = device
        .measure_limits(&LimitConfig::quick())
        .expect("limit kernels");
    println!(
        "copy {:.2} GB/s, fma {:.1} GFLOP/s, mul+add {:.1} GFLOP/s, launch {:.1} µs",
        limits.copy_bytes_per_second / 1e9,
        limits.fma_flops_per_second / 1e9,
        limits.mul_add_flops_per_second / 1e9,
        limits.launch_seconds * 1e6
    );
    if "matmul".contains(&filter) || filter.is_empty() {
        let a =
            ndarray::Array2::<f32>::from_shape_fn((1024, 1024), |(i, j)| ((i * 7 + j) % 13) as f32);
        let started = std::time::Instant::now();
        let mut best = f64::MAX;
        while started.elapsed() < Duration::from_millis(500) {
            let t = std::time::Instant::now();
            std::hint::black_box(a.dot(&a));
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "ndarray dot 1024^3: {:.3} ms ({:.1} GFLOP/s)",
            best * 1e3,
            2.0 * 1024f64.powi(3) / best / 1e9
        );
    }
    for workload in target_workloads() {
        if !workload.label().contains(&filter) {
            continue;
        }
        let bench = device.prepare::<f32>(workload).expect("prepare");
        let time = bench
            .best_time(3, Duration::from_millis(300))
            .expect("run")
            .as_secs_f64();
        println!(
            "{:<44} {:>9.3} ms  {:>5.1}% of {}",
            workload.label(),
            time * 1e3,
            100.0 * limits.fraction(&workload, 4, time),
            workload.binding().as_str()
        );
    }
}
