//! Row-wise log-sum-exp: reference vs OpenCL (end to end, and kernel only with
//! `queue.finish()` inside the timed region). Programs are built before timing starts.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mloracle::{Backend, Reference};
use ndarray::Array2;
use ndarray_rand::rand::{rngs::StdRng, SeedableRng};
use ndarray_rand::rand_distr::Uniform;
use ndarray_rand::RandomExt;

/// Fixed seed: the same inputs on every run.
const SEED: u64 = 0x6d6c_6f72_6163_6c65;

/// (rows, cols): latency-bound, middle, bandwidth-bound.
const SIZES: &[(usize, usize)] = &[(16, 64), (256, 1024), (4096, 1024)];

fn log_sum_exp_rows(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_sum_exp_rows/f32");
    group.sample_size(10);
    let mut rng = StdRng::seed_from_u64(SEED);
    #[cfg(feature = "opencl")]
    let device = match mloracle::OpenCl::new() {
        Ok(d) => {
            eprintln!("OpenCL device: {}", d.device_label());
            Some(d)
        }
        Err(e) => {
            eprintln!("SKIPPED opencl benches: {e}");
            None
        }
    };
    for &(rows, cols) in SIZES {
        let x = Array2::<f32>::random_using(
            (rows, cols),
            Uniform::new(-10.0f32, 10.0).expect("valid range"),
            &mut rng,
        );
        let id = format!("{rows}x{cols}");
        group.throughput(Throughput::Bytes(
            (rows * cols * std::mem::size_of::<f32>()) as u64,
        ));
        group.bench_with_input(BenchmarkId::new("reference", &id), &x, |b, x| {
            b.iter(|| Backend::<f32>::log_sum_exp_rows(&Reference, x.view()).expect("valid input"))
        });
        #[cfg(feature = "opencl")]
        if let Some(device) = &device {
            // Warm-up builds the program outside the timed region.
            Backend::<f32>::log_sum_exp_rows(device, x.view()).expect("valid input");
            group.bench_with_input(BenchmarkId::new("opencl_end_to_end", &id), &x, |b, x| {
                b.iter(|| Backend::<f32>::log_sum_exp_rows(device, x.view()).expect("valid input"))
            });
            let input = device
                .upload_buffer(x.as_slice().expect("standard layout"))
                .expect("upload");
            let output = device.zeros_buffer::<f32>(rows).expect("allocate");
            group.bench_function(BenchmarkId::new("opencl_kernel", &id), |b| {
                b.iter(|| {
                    device
                        .enqueue_row_kernel("log_sum_exp_rows", &input, rows, cols, &output)
                        .expect("enqueue");
                    device.finish().expect("finish");
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, log_sum_exp_rows);
criterion_main!(benches);
