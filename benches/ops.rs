//! Every op family with an OpenCL kernel, at sizes from launch-bound to bandwidth/compute-bound:
//! the reference, the OpenCL `Backend` call end to end (upload, kernels, blocking read) and the
//! kernels alone (`OpenCl::prepare`: inputs on the device, kernels built; the timed region is the
//! enqueue **and** `queue.finish()`). Matmul adds ndarray's `dot` (the best CPU baseline here).
//! Programs are built before timing starts. The group `limits/f32` measures, in the same run, the
//! device's copy bandwidth, peak FMA rate and launch latency that `make report` divides by
//! (fraction of the limit; see `mloracle::opencl::DeviceLimits`).
//!
//! Attention, the optimizer steps and clipping, and one full training step of each model (MLP,
//! encoder, GRU; kernel launches per step printed) are benched too.
//!
//! Adding a family is one function
//! `fn family(c: &mut Criterion, device: Option<&OpenCl>)` that calls [`bench_workload`] (for an
//! op with a `Workload`) or `group.bench_function` per size, plus its name in `criterion_group!`.

mod common;

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use mloracle::opencl::train::DeviceTrainer;
use mloracle::opencl::{Binding, LimitConfig, Workload, ELEMENTWISE_KERNELS, ROW_KERNELS};
use mloracle::reference::optim::{AdamHyper, AdamState, SgdHyper, SgdState};
use mloracle::{Backend, OpenCl, Reference};
use ndarray::{Array1, Array2, Array4};
use ndarray_rand::rand::{rngs::StdRng, SeedableRng};
use ndarray_rand::rand_distr::Uniform;
use ndarray_rand::RandomExt;

/// Elementwise lengths: launch-bound, in cache, past the last-level cache (the target size).
const LENGTHS: &[usize] = &[1 << 10, 1 << 18, 1 << 24];
/// (rows, cols) of the row ops: launch-bound, middle, the target size.
const ROW_SIZES: &[(usize, usize)] = &[(16, 64), (256, 1024), (4096, 1024)];
/// Square matmul sides: launch-bound, cache-resident, the target size.
const MATMUL_SIDES: &[usize] = &[64, 256, 1024];
/// The triple-loop reference is not timed past this side (seconds per call at 1024).
const REFERENCE_MATMUL_MAX_SIDE: usize = 256;

fn device() -> Option<OpenCl> {
    match OpenCl::new() {
        Ok(d) => {
            eprintln!("OpenCL device: {}", d.device_label());
            Some(d)
        }
        Err(e) => {
            eprintln!("SKIPPED opencl benches: {e}");
            None
        }
    }
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
}

fn throughput(workload: &Workload) -> Throughput {
    match workload.binding() {
        Binding::Compute => Throughput::Elements(workload.flops()),
        _ => Throughput::Bytes(workload.bytes(std::mem::size_of::<f32>())),
    }
}

/// Size label of a workload: the part of its label after the op name.
fn size_id(workload: &Workload) -> String {
    let label = workload.label();
    label
        .split_once(' ')
        .map_or(label.clone(), |(_, size)| size.to_string())
}

/// Reference, OpenCL end to end and OpenCL kernel only for one workload, in `group`.
fn bench_workload(
    group: &mut BenchmarkGroup<'_, WallTime>,
    device: Option<&OpenCl>,
    workload: Workload,
    with_reference: bool,
) {
    let id = size_id(&workload);
    let inputs = common::inputs(&workload);
    group.throughput(throughput(&workload));
    if with_reference {
        group.bench_function(BenchmarkId::new("reference", &id), |b| {
            b.iter(|| common::call(&Reference, &workload, &inputs).expect("valid input"))
        });
    }
    let Some(device) = device else { return };
    // Warm-up builds the program outside the timed region.
    common::call(device, &workload, &inputs).expect("valid input");
    group.bench_function(BenchmarkId::new("opencl_end_to_end", &id), |b| {
        b.iter(|| common::call(device, &workload, &inputs).expect("valid input"))
    });
    let kernels = device.prepare::<f32>(workload).expect("prepare kernels");
    group.bench_function(BenchmarkId::new("opencl_kernel", &id), |b| {
        b.iter(|| kernels.run().expect("run kernels"))
    });
}

/// The device's limits, in the same run as the ops: copy bandwidth, peak FMA and unfused
/// multiply-add rates, launch latency (enqueue + finish of an empty kernel).
fn limits(c: &mut Criterion) {
    let Some(device) = device() else { return };
    let mut group = c.benchmark_group("limits/f32");
    configure(&mut group);
    let config = LimitConfig::quick();
    let workloads = [
        Workload::Copy {
            len: config.copy_elements,
        },
        Workload::Fma {
            items: config.fma_items,
            iterations: config.fma_iterations,
        },
        Workload::MulAdd {
            items: config.fma_items,
            iterations: config.fma_iterations,
        },
        Workload::Empty,
    ];
    for workload in workloads {
        let kernels = device.prepare::<f32>(workload).expect("limit kernels");
        if workload.binding() != Binding::Latency {
            group.throughput(throughput(&workload));
        }
        group.bench_function(BenchmarkId::new("opencl_kernel", workload.op()), |b| {
            b.iter(|| kernels.run().expect("run"))
        });
    }
    group.finish();
}

fn elementwise(c: &mut Criterion) {
    let device = device();
    for &kernel in ELEMENTWISE_KERNELS {
        let mut group = c.benchmark_group(format!("{kernel}/f32"));
        configure(&mut group);
        for &len in LENGTHS {
            bench_workload(
                &mut group,
                device.as_ref(),
                Workload::Elementwise { kernel, len },
                true,
            );
        }
        group.finish();
    }
}

fn rows(c: &mut Criterion) {
    let device = device();
    type Make = fn(usize, usize) -> Workload;
    let mut families: Vec<(&str, Make)> = vec![
        ("add_rows", |rows, cols| Workload::AddRows { rows, cols }),
        ("layer_norm", |rows, cols| Workload::LayerNorm {
            rows,
            cols,
        }),
        ("layer_norm_backward", |rows, cols| {
            Workload::LayerNormBackward { rows, cols }
        }),
    ];
    for &kernel in ROW_KERNELS {
        let make: Make = match kernel {
            "log_sum_exp_rows" => |rows, cols| Workload::Rows {
                kernel: "log_sum_exp_rows",
                rows,
                cols,
            },
            "softmax_rows" => |rows, cols| Workload::Rows {
                kernel: "softmax_rows",
                rows,
                cols,
            },
            _ => |rows, cols| Workload::Rows {
                kernel: "log_softmax_rows",
                rows,
                cols,
            },
        };
        families.push((kernel, make));
    }
    for (name, make) in families {
        let mut group = c.benchmark_group(format!("{name}/f32"));
        configure(&mut group);
        for &(r, c) in ROW_SIZES {
            bench_workload(&mut group, device.as_ref(), make(r, c), true);
        }
        group.finish();
    }
}

fn bce(c: &mut Criterion) {
    let device = device();
    let mut group = c.benchmark_group("bce_with_logits_mean/f32");
    configure(&mut group);
    for &len in LENGTHS {
        bench_workload(&mut group, device.as_ref(), Workload::BceMean { len }, true);
    }
    group.finish();
}

fn matmul(c: &mut Criterion) {
    let device = device();
    let mut group = c.benchmark_group("matmul/f32");
    configure(&mut group);
    for &side in MATMUL_SIDES {
        let workload = Workload::Matmul {
            m: side,
            k: side,
            n: side,
        };
        bench_workload(
            &mut group,
            device.as_ref(),
            workload,
            side <= REFERENCE_MATMUL_MAX_SIDE,
        );
        let inputs = common::inputs(&workload);
        group.bench_function(BenchmarkId::new("ndarray_dot", size_id(&workload)), |b| {
            b.iter(|| inputs.x.dot(&inputs.y))
        });
    }
    group.finish();
}

/// Attention `[b, h, s, d]` (padding mask on every fourth key): launch-bound, middle, a BERT-base
/// head shape at batch 8. FLOPs: `4·b·h·s²·d` (QKᵀ and PV).
const ATTENTION_SIZES: &[(usize, usize, usize, usize)] =
    &[(1, 2, 8, 8), (4, 4, 64, 32), (8, 4, 128, 64)];

fn attention(c: &mut Criterion) {
    let device = device();
    let mut group = c.benchmark_group("attention/f32");
    configure(&mut group);
    for &(b, h, s, d) in ATTENTION_SIZES {
        let mut rng = StdRng::seed_from_u64(common::SEED);
        let mut tensor = || {
            Array4::<f32>::random_using(
                (b, h, s, d),
                Uniform::new(-1.0, 1.0).expect("range"),
                &mut rng,
            )
        };
        let (q, k, v, g) = (tensor(), tensor(), tensor(), tensor());
        let mask = Array2::from_shape_fn((b, s), |(_, j)| if j % 4 == 3 { -1e9f32 } else { 0.0 });
        let id = format!("{b}x{h}x{s}x{d}");
        group.throughput(Throughput::Elements((4 * b * h * s * s * d) as u64));
        group.bench_function(BenchmarkId::new("reference", &id), |bench| {
            bench.iter(|| {
                Reference
                    .attention(q.view(), k.view(), v.view(), mask.view())
                    .expect("valid input")
            })
        });
        group.bench_function(BenchmarkId::new("reference_backward", &id), |bench| {
            bench.iter(|| {
                Reference
                    .attention_backward(q.view(), k.view(), v.view(), mask.view(), g.view())
                    .map(drop)
                    .expect("valid input")
            })
        });
        let Some(device) = device.as_ref() else {
            continue;
        };
        device
            .attention(q.view(), k.view(), v.view(), mask.view())
            .expect("warm-up");
        device
            .attention_backward(q.view(), k.view(), v.view(), mask.view(), g.view())
            .expect("warm-up");
        group.bench_function(BenchmarkId::new("opencl_end_to_end", &id), |bench| {
            bench.iter(|| {
                device
                    .attention(q.view(), k.view(), v.view(), mask.view())
                    .expect("valid input")
            })
        });
        group.bench_function(
            BenchmarkId::new("opencl_end_to_end_backward", &id),
            |bench| {
                bench.iter(|| {
                    device
                        .attention_backward(q.view(), k.view(), v.view(), mask.view(), g.view())
                        .map(drop)
                        .expect("valid input")
                })
            },
        );
    }
    group.finish();
}

/// Optimizer steps and clipping over one tensor of `len` f32: the fused kernels alone
/// (device buffers, enqueue + `finish`) against the reference's host step. Bytes: Adam reads θ,
/// g, m, v and writes θ, m, v (7 × 4 B per element); SGD reads θ, g and writes θ (3 × 4 B);
/// clip_grad_norm reads g twice and writes it once (3 × 4 B).
fn optimizer(c: &mut Criterion) {
    let device = device();
    let adam = AdamHyper::new(1e-3, 0.9, 0.999, 1e-8);
    let sgd = SgdHyper::plain(1e-2);
    for (name, words) in [("adam_step", 7u64), ("sgd_step", 3), ("clip_grad_norm", 3)] {
        let mut group = c.benchmark_group(format!("{name}/f32"));
        configure(&mut group);
        for &len in LENGTHS {
            let mut rng = StdRng::seed_from_u64(common::SEED);
            let theta =
                Array1::<f32>::random_using(len, Uniform::new(-1.0, 1.0).expect("range"), &mut rng);
            let grad =
                Array1::<f32>::random_using(len, Uniform::new(-1.0, 1.0).expect("range"), &mut rng);
            let id = len.to_string();
            group.throughput(Throughput::Bytes(words * 4 * len as u64));
            match name {
                "adam_step" => {
                    let state = AdamState::zeros(len);
                    group.bench_function(BenchmarkId::new("reference", &id), |b| {
                        b.iter(|| {
                            Reference
                                .adam_step(&state, theta.view(), grad.view(), &adam)
                                .expect("valid")
                        })
                    });
                }
                "sgd_step" => {
                    let state = SgdState {
                        momentum_buffer: None,
                        last_step: Array1::zeros(len),
                    };
                    group.bench_function(BenchmarkId::new("reference", &id), |b| {
                        b.iter(|| {
                            Reference
                                .sgd_step(&state, theta.view(), grad.view(), &sgd)
                                .expect("valid")
                        })
                    });
                }
                _ => {
                    group.bench_function(BenchmarkId::new("reference", &id), |b| {
                        b.iter_batched(
                            || vec![grad.clone()],
                            |mut g| Reference.clip_grad_norm(&mut g, 1.0).expect("valid"),
                            BatchSize::LargeInput,
                        )
                    });
                }
            }
            let Some(device) = device.as_ref() else {
                continue;
            };
            let upload = |a: &Array1<f32>| {
                device
                    .upload_buffer(a.as_slice().expect("contiguous"))
                    .expect("upload")
            };
            let (p, g) = (upload(&theta), upload(&grad));
            let (m, v, norm) = (
                device.zeros_buffer::<f32>(len).expect("alloc"),
                device.zeros_buffer::<f32>(len).expect("alloc"),
                device.zeros_buffer::<f32>(1).expect("alloc"),
            );
            let run = || -> mloracle::Result<()> {
                match name {
                    "adam_step" => device.enqueue_adam_step(&p, &g, &m, &v, &adam, 1, len)?,
                    "sgd_step" => device.enqueue_sgd_step(&p, &g, None, &sgd, true, len)?,
                    _ => device.enqueue_clip_grad_norm(&[&g], 1.0, &norm)?,
                }
                device.finish()
            };
            run().expect("warm-up builds the program");
            group.bench_function(BenchmarkId::new("opencl_kernel", &id), |b| {
                b.iter(|| run().expect("run"))
            });
        }
        group.finish();
    }
}

/// One full training step of each model (forward, backward, clip, optimizer, loss read-back)
/// at three sizes: [`common::DeviceTrainer`] against the reference `Trainer`. Kernel launches
/// per step (`OpenCl::kernel_launches`) are printed. The reference step of the mid encoder takes
/// seconds, so it is timed once (mean of 2 steps after a warm-up) rather than sampled, and the
/// device/reference ratio is printed.
fn train_step(c: &mut Criterion) {
    let device = device();
    for (model, make) in common::MODELS {
        let mut group = c.benchmark_group(format!("train_step/{model}/f32"));
        configure(&mut group);
        for size in common::StepSize::ALL {
            let (task, config) = make(size);
            let id = size.name();
            let slow_reference = size == common::StepSize::Mid;
            let mut reference =
                common::reference_stepper(&task, &config).expect("reference trainer");
            let reference_seconds = if slow_reference {
                reference().expect("warm-up");
                let start = Instant::now();
                for _ in 0..2 {
                    reference().expect("step");
                }
                Some(start.elapsed().as_secs_f64() / 2.0)
            } else {
                group.bench_function(BenchmarkId::new("reference", id), |b| {
                    b.iter(|| reference().expect("step"))
                });
                None
            };
            let Some(device) = device.as_ref() else {
                continue;
            };
            let mut trainer = DeviceTrainer::new(device, &task, &config).expect("device trainer");
            trainer.step().expect("warm-up step builds the programs");
            let before = device.kernel_launches();
            trainer.step().expect("step");
            let launches = device.kernel_launches() - before;
            eprintln!("train_step/{model}/{id}: {launches} kernel launches per step");
            if let Some(reference_seconds) = reference_seconds {
                let start = Instant::now();
                for _ in 0..3 {
                    trainer.step().expect("step");
                }
                let device_seconds = start.elapsed().as_secs_f64() / 3.0;
                eprintln!(
                    "train_step/{model}/{id}: device {:.1} ms/step, reference {:.1} ms/step \
                     (reference/device = {:.2})",
                    device_seconds * 1e3,
                    reference_seconds * 1e3,
                    reference_seconds / device_seconds
                );
            }
            group.bench_function(BenchmarkId::new("opencl_device_trainer", id), |b| {
                b.iter(|| trainer.step().expect("step"))
            });
        }
        group.finish();
    }
}

criterion_group!(
    benches,
    limits,
    elementwise,
    rows,
    bce,
    matmul,
    attention,
    optimizer,
    train_step
);
criterion_main!(benches);
