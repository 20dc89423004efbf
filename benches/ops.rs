//! Every op family with an OpenCL kernel, at sizes from launch-bound to bandwidth/compute-bound:
//! the reference, the OpenCL `Backend` call end to end (upload, kernels, blocking read) and the
//! kernels alone (`OpenCl::prepare`: inputs on the device, kernels built; the timed region is the
//! enqueue **and** `queue.finish()`). Matmul adds ndarray's `dot` (the best CPU baseline here).
//! Programs are built before timing starts. The group `limits/f32` measures, in the same run, the
//! device's copy bandwidth, peak FMA rate and launch latency that `make report` divides by
//! (fraction of the limit; see `mloracle::opencl::DeviceLimits`).
//!
//! Adding a family (attention, an optimizer step, a training step …) is one function
//! `fn family(c: &mut Criterion, device: Option<&OpenCl>)` that calls [`bench_workload`] (for an
//! op with a `Workload`) or `group.bench_function` per size, plus its name in `criterion_group!`.

mod common;

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use mloracle::opencl::{Binding, LimitConfig, Workload, ELEMENTWISE_KERNELS, ROW_KERNELS};
use mloracle::{OpenCl, Reference};

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

criterion_group!(benches, limits, elementwise, rows, bce, matmul);
criterion_main!(benches);
