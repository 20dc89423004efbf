//! Device limits and kernel-only workloads for the benches and the report.
//!
//! A [`Workload`] names one op's kernels at one size; [`OpenCl::prepare`] uploads deterministic
//! inputs (counter-based, [`RandomKey`]), allocates the outputs and builds the kernels once, so
//! that [`KernelBench::run`] times only the enqueue of the kernels and `queue.finish()`. Each
//! workload knows the bytes it must move at least (every input read once, every output written
//! once) and its FLOPs, so a time becomes a fraction of the limit that binds it (roofline):
//!
//! ```text
//! fraction = (bytes / time) / copy bandwidth        memory-bound ops
//! fraction = (flops / time) / peak FMA FLOP/s       matmul
//! ```
//!
//! The limits are measured by the kernels of `opencl/bench.cl`, in the same process and right
//! before the ops they judge ([`OpenCl::measure_limits`]): a copy kernel (bytes read + written per
//! second), a peak-FMA kernel (8 independent `float8` chains of `fma` per item), the same chains
//! as an unfused multiply-add (the conformance kernels' only option, FP_CONTRACT being off), and the
//! launch latency of an empty kernel (enqueue + finish).

use std::time::{Duration, Instant};

use ocl::{Buffer, Kernel, Program, Queue};

use super::{to_u32, OpenCl};
use crate::rng::RandomKey;
use crate::{Error, Result, Scalar};

/// The bench program: `opencl/bench.cl` alone, f32, no prelude.
pub const BENCH_SOURCE: &str = include_str!("../../opencl/bench.cl");

/// Seed of the workload inputs (a fixed counter-based stream: the same inputs on every run).
pub const WORKLOAD_SEED: u64 = 0x6d6c_6f72_6163_6c65;

/// The limit that binds a workload in the roofline model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Bytes moved per second against the copy kernel's bandwidth.
    Bandwidth,
    /// FLOP/s against the peak-FMA kernel.
    Compute,
    /// Neither: a launch-latency measurement.
    Latency,
}

impl Binding {
    /// `"bandwidth"`, `"compute"` or `"latency"` (the report's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Bandwidth => "bandwidth",
            Binding::Compute => "compute",
            Binding::Latency => "latency",
        }
    }
}

/// One op's kernels at one size, or one of the limit kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// An elementwise kernel of `opencl/elementwise.cl` (or `bce_with_logits_mean_backward`,
    /// which has the same signature) over `len` elements. `kernel` is the kernel's name
    /// (`"tanh_forward"` for tanh).
    Elementwise {
        /// Kernel name in `opencl/*.cl`.
        kernel: &'static str,
        /// Element count.
        len: usize,
    },
    /// `log_sum_exp_rows`, `softmax_rows` or `log_softmax_rows` over `rows × cols`.
    Rows {
        /// Kernel name in `opencl/reduce.cl`.
        kernel: &'static str,
        /// Rows.
        rows: usize,
        /// Columns (the reduction length).
        cols: usize,
    },
    /// `add_rows` over `rows × cols`.
    AddRows {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// `layer_norm` over `rows × cols`.
    LayerNorm {
        /// Rows.
        rows: usize,
        /// Columns (the normalised length).
        cols: usize,
    },
    /// `layer_norm_backward` then `layer_norm_param_grads` over `rows × cols`.
    LayerNormBackward {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// The two passes of `bce_with_logits_mean` over `len` elements.
    BceMean {
        /// Element count.
        len: usize,
    },
    /// One fused Adam step (`adam_step` of `opencl/optim.cl`, lr 1e-3, betas (0.9, 0.999),
    /// eps 1e-8, step 1) over `len` parameters, in place.
    AdamStep {
        /// Parameter count.
        len: usize,
    },
    /// `matmul` of `[m, k] × [k, n]`.
    Matmul {
        /// Rows of A and C.
        m: usize,
        /// The reduction length.
        k: usize,
        /// Columns of B and C.
        n: usize,
    },
    /// The copy kernel over `len` f32 (`len ≥ 1`).
    Copy {
        /// Element count.
        len: usize,
    },
    /// The peak-FMA kernel: `items` work items × `iterations` steps × 64 lanes.
    Fma {
        /// Work items.
        items: usize,
        /// Steps per chain.
        iterations: usize,
    },
    /// The unfused multiply-add variant of [`Workload::Fma`].
    MulAdd {
        /// Work items.
        items: usize,
        /// Steps per chain.
        iterations: usize,
    },
    /// One empty kernel: launch latency.
    Empty,
}

/// Inputs, params (as f64, narrowed to `T`) of an elementwise kernel: `(inputs, params)`.
fn elementwise_signature(kernel: &str) -> Option<(usize, &'static [f64])> {
    const INV_SQRT2: f64 = std::f64::consts::FRAC_1_SQRT_2;
    const INV_SQRT_2PI: f64 = 0.5 * std::f64::consts::FRAC_2_SQRT_PI * INV_SQRT2;
    Some(match kernel {
        "relu" | "sigmoid" | "tanh_forward" => (1, &[]),
        "relu_backward" | "sigmoid_backward" | "tanh_backward" => (2, &[]),
        "leaky_relu" => (1, &[0.01]),
        "leaky_relu_backward" => (2, &[0.01]),
        "gelu" => (1, &[INV_SQRT2]),
        "gelu_backward" => (2, &[INV_SQRT2, INV_SQRT_2PI]),
        "bce_with_logits_mean_backward" => (2, &[1.0]),
        _ => return None,
    })
}

impl Workload {
    /// A short stable label, e.g. `"softmax_rows 4096x1024"`.
    pub fn label(&self) -> String {
        match *self {
            Workload::Elementwise { kernel, len } => format!("{kernel} {len}"),
            Workload::Rows { kernel, rows, cols } => format!("{kernel} {rows}x{cols}"),
            Workload::AddRows { rows, cols } => format!("add_rows {rows}x{cols}"),
            Workload::LayerNorm { rows, cols } => format!("layer_norm {rows}x{cols}"),
            Workload::LayerNormBackward { rows, cols } => {
                format!("layer_norm_backward {rows}x{cols}")
            }
            Workload::BceMean { len } => format!("bce_with_logits_mean {len}"),
            Workload::Matmul { m, k, n } => format!("matmul {m}x{k}x{n}"),
            Workload::AdamStep { len } => format!("adam_step {len}"),
            Workload::Copy { len } => format!("copy {len}"),
            Workload::Fma { items, iterations } => format!("fma {items}x{iterations}"),
            Workload::MulAdd { items, iterations } => format!("mul_add {items}x{iterations}"),
            Workload::Empty => "empty kernel".to_string(),
        }
    }

    /// The op family (the kernel name; `"matmul"`, `"copy"`, …).
    pub fn op(&self) -> &'static str {
        match *self {
            Workload::Elementwise { kernel, .. } | Workload::Rows { kernel, .. } => kernel,
            Workload::AddRows { .. } => "add_rows",
            Workload::LayerNorm { .. } => "layer_norm",
            Workload::LayerNormBackward { .. } => "layer_norm_backward",
            Workload::BceMean { .. } => "bce_with_logits_mean",
            Workload::Matmul { .. } => "matmul",
            Workload::AdamStep { .. } => "adam_step",
            Workload::Copy { .. } => "copy",
            Workload::Fma { .. } => "fma",
            Workload::MulAdd { .. } => "mul_add",
            Workload::Empty => "empty",
        }
    }

    /// Which limit binds it.
    pub fn binding(&self) -> Binding {
        match self {
            Workload::Matmul { .. } | Workload::Fma { .. } | Workload::MulAdd { .. } => {
                Binding::Compute
            }
            Workload::Empty => Binding::Latency,
            _ => Binding::Bandwidth,
        }
    }

    /// Bytes the op must move at least, for elements of `element_bytes`: each input read once,
    /// each output written once (the compulsory traffic; a kernel that reads a row twice from
    /// cache still counts it once).
    pub fn bytes(&self, element_bytes: usize) -> u64 {
        let elements = match *self {
            Workload::Elementwise { kernel, len } => {
                let inputs = elementwise_signature(kernel).map_or(1, |(i, _)| i);
                (inputs + 1) * len
            }
            Workload::Rows { kernel, rows, cols } => {
                if kernel == "log_sum_exp_rows" {
                    rows * cols + rows
                } else {
                    2 * rows * cols
                }
            }
            Workload::AddRows { rows, cols } => 2 * rows * cols + cols,
            Workload::LayerNorm { rows, cols } => 2 * rows * cols + 2 * cols,
            // x, g in; grad_x out; xhat written and read back by the column pass (+ g again);
            // gamma in, two parameter gradients out.
            Workload::LayerNormBackward { rows, cols } => 6 * rows * cols + 3 * cols,
            Workload::BceMean { len } => 2 * len + 1,
            Workload::Matmul { m, k, n } => m * k + k * n + m * n,
            // θ, g, m, v in; θ, m, v out.
            Workload::AdamStep { len } => 7 * len,
            Workload::Copy { len } => 2 * len,
            Workload::Fma { items, .. } | Workload::MulAdd { items, .. } => items,
            Workload::Empty => 0,
        };
        (elements as u64).saturating_mul(element_bytes as u64)
    }

    /// Floating-point operations (matmul `2mkn`; the FMA kernels 2 per lane and step; 0 for the
    /// memory-bound ops, whose FLOPs are not what binds them).
    pub fn flops(&self) -> u64 {
        match *self {
            Workload::Matmul { m, k, n } => 2 * (m as u64) * (k as u64) * (n as u64),
            Workload::Fma { items, iterations } | Workload::MulAdd { items, iterations } => {
                2 * 64 * (items as u64) * (iterations as u64)
            }
            _ => 0,
        }
    }
}

/// A prepared workload: inputs on the device, kernels built. [`KernelBench::run`] enqueues the
/// kernels and waits for them.
pub struct KernelBench<T: Scalar> {
    workload: Workload,
    queue: Queue,
    kernels: Vec<Kernel>,
    buffers: Vec<Buffer<T>>,
    /// The accounting leases of `buffers` (they count in [`OpenCl::memory`] while `self` lives).
    _leases: Vec<super::Lease>,
    output: usize,
}

impl<T: Scalar> std::fmt::Debug for KernelBench<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelBench")
            .field("workload", &self.workload)
            .field("scalar", &T::NAME)
            .finish()
    }
}

impl<T: Scalar> KernelBench<T> {
    /// What it runs.
    pub fn workload(&self) -> Workload {
        self.workload
    }

    /// Compulsory bytes moved per run ([`Workload::bytes`] for `T`).
    pub fn bytes(&self) -> u64 {
        self.workload.bytes(std::mem::size_of::<T>())
    }

    /// Enqueue every kernel (in order, on the in-order queue) and wait for them.
    pub fn run(&self) -> Result<()> {
        for kernel in &self.kernels {
            // SAFETY: each kernel was built by `OpenCl::prepare` with the argument list of its
            // signature in opencl/*.cl, on buffers of at least the sizes it indexes, and the
            // launch geometry of the Backend method of the same op (see `super::OpenCl::enqueue`
            // for the in-kernel guards); the buffers live as long as `self`.
            unsafe { kernel.enq() }
                .map_err(|e| Error::opencl(format!("enqueueing {}", self.workload.label()), e))?;
        }
        self.queue
            .finish()
            .map_err(|e| Error::opencl("finishing the queue", e))
    }

    /// Read back the (first) output buffer, for checks against the Backend method.
    pub fn read_output(&self) -> Result<Vec<T>> {
        let buffer = self
            .buffers
            .get(self.output)
            .ok_or_else(|| Error::opencl("read_output", "no output buffer"))?;
        let mut host = vec![T::zero(); buffer.len()];
        buffer
            .read(&mut host)
            .enq()
            .map_err(|e| Error::opencl("reading back a result", e))?;
        Ok(host)
    }

    /// Best (shortest) wall time of `run` over at least `min_runs` runs and at least
    /// `min_total` of total time, after one warm-up run. The minimum is the least disturbed
    /// sample on a shared machine.
    pub fn best_time(&self, min_runs: usize, min_total: Duration) -> Result<Duration> {
        self.run()?;
        let started = Instant::now();
        let mut best = Duration::MAX;
        let mut runs = 0usize;
        while runs < min_runs.max(1) || started.elapsed() < min_total {
            let t = Instant::now();
            self.run()?;
            best = best.min(t.elapsed());
            runs += 1;
        }
        Ok(best)
    }
}

/// The device's limits, measured back to back in one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceLimits {
    /// Copy kernel: (bytes read + bytes written) per second.
    pub copy_bytes_per_second: f64,
    /// Elements (f32) of the copy used.
    pub copy_elements: usize,
    /// Peak FMA kernel: FLOP/s (an FMA counts 2).
    pub fma_flops_per_second: f64,
    /// Unfused multiply-then-add chains: FLOP/s (what FP_CONTRACT OFF kernels can reach).
    pub mul_add_flops_per_second: f64,
    /// Empty kernel, enqueue + finish, best of the runs, in seconds.
    pub launch_seconds: f64,
}

impl DeviceLimits {
    /// The limit a workload of `binding` is judged against (bytes/s or FLOP/s; the launch time
    /// in seconds for [`Binding::Latency`]).
    pub fn limit(&self, binding: Binding) -> f64 {
        match binding {
            Binding::Bandwidth => self.copy_bytes_per_second,
            Binding::Compute => self.fma_flops_per_second,
            Binding::Latency => self.launch_seconds,
        }
    }

    /// Fraction of the binding limit reached by `workload` of `element_bytes` elements in
    /// `seconds`: achieved bytes/s ÷ copy bandwidth or FLOP/s ÷ peak FMA (for latency: launch
    /// time ÷ measured time). 0 when the time or the limit is not positive.
    pub fn fraction(&self, workload: &Workload, element_bytes: usize, seconds: f64) -> f64 {
        let binding = workload.binding();
        let limit = self.limit(binding);
        if seconds <= 0.0 || limit <= 0.0 {
            return 0.0;
        }
        match binding {
            Binding::Bandwidth => workload.bytes(element_bytes) as f64 / seconds / limit,
            Binding::Compute => workload.flops() as f64 / seconds / limit,
            Binding::Latency => limit / seconds,
        }
    }
}

/// Sizes and run counts of [`OpenCl::measure_limits`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitConfig {
    /// f32 elements copied (16M = 64 MiB each way is past any cache).
    pub copy_elements: usize,
    /// Work items of the FMA kernels.
    pub fma_items: usize,
    /// Steps per chain of the FMA kernels.
    pub fma_iterations: usize,
    /// Runs of each (the best is kept).
    pub runs: usize,
    /// Empty-kernel launches (the best is kept).
    pub launches: usize,
}

impl LimitConfig {
    /// Quick: a 16M-element copy, 16k × 2k FMA items × steps, 5 runs, 200 launches.
    pub fn quick() -> Self {
        LimitConfig {
            copy_elements: 1 << 24,
            fma_items: 1 << 14,
            fma_iterations: 1 << 11,
            runs: 5,
            launches: 200,
        }
    }
}

impl OpenCl {
    fn build_bench_program(&self) -> Result<Program> {
        Program::builder()
            .devices(self.shared.device.device)
            .src(BENCH_SOURCE)
            .cmplr_opt("-cl-std=CL1.2")
            .build(&self.shared.device.context)
            .map_err(|e| Error::ProgramBuild {
                scalar: "f32",
                options: "-cl-std=CL1.2 (opencl/bench.cl)".to_string(),
                log: e.to_string(),
            })
    }

    /// Measure the copy bandwidth, the peak FMA and unfused multiply-add rates and the launch
    /// latency, back to back (build the limit kernels first, outside the timings).
    pub fn measure_limits(&self, config: &LimitConfig) -> Result<DeviceLimits> {
        let min_total = Duration::ZERO;
        let copy = self.prepare::<f32>(Workload::Copy {
            len: config.copy_elements,
        })?;
        // The denominator of every bandwidth fraction: best of at least `runs` copies and of
        // 300 ms of them, so one slow run (a busy machine) does not lower the limit.
        let copy_time = copy
            .best_time(config.runs, Duration::from_millis(300))?
            .as_secs_f64();
        let fma_workload = Workload::Fma {
            items: config.fma_items,
            iterations: config.fma_iterations,
        };
        let fma_time = self
            .prepare::<f32>(fma_workload)?
            .best_time(config.runs, min_total)?
            .as_secs_f64();
        let mul_add_workload = Workload::MulAdd {
            items: config.fma_items,
            iterations: config.fma_iterations,
        };
        let mul_add_time = self
            .prepare::<f32>(mul_add_workload)?
            .best_time(config.runs, min_total)?
            .as_secs_f64();
        let launch = self
            .prepare::<f32>(Workload::Empty)?
            .best_time(config.launches, min_total)?
            .as_secs_f64();
        let rate = |amount: u64, seconds: f64| {
            if seconds > 0.0 {
                amount as f64 / seconds
            } else {
                0.0
            }
        };
        Ok(DeviceLimits {
            copy_bytes_per_second: rate(copy.bytes(), copy_time),
            copy_elements: config.copy_elements,
            fma_flops_per_second: rate(fma_workload.flops(), fma_time),
            mul_add_flops_per_second: rate(mul_add_workload.flops(), mul_add_time),
            launch_seconds: launch,
        })
    }

    fn input_buffer<T: Scalar>(
        &self,
        len: usize,
        tensor_id: u64,
        lo: f64,
        hi: f64,
    ) -> Result<super::Counted<T>> {
        let key = RandomKey {
            seed: WORKLOAD_SEED,
            step: 0,
            tensor_id,
        };
        let data: Vec<T> = (0..len as u64)
            .map(|i| T::narrow(lo + (hi - lo) * key.uniform(i)))
            .collect();
        self.upload(&data)
    }

    /// Upload deterministic inputs for `workload`, allocate its outputs and build its kernels
    /// with the launch geometry of the op's `Backend` method. The limit workloads
    /// ([`Workload::Copy`], [`Workload::Fma`], [`Workload::MulAdd`], [`Workload::Empty`]) need
    /// `T = f32`.
    pub fn prepare<T: Scalar>(&self, workload: Workload) -> Result<KernelBench<T>> {
        let op = "prepare";
        let wg = self.shared.row_work_group;
        let ewg = self.shared.elementwise_work_group;
        let mut kernels = Vec::new();
        let mut buffers: Vec<Buffer<T>> = Vec::new();
        let mut leases = Vec::new();
        let mut output = 0;
        let empty = |what: &str| Error::EmptyInput {
            op: "prepare",
            detail: format!("{what} of {}", workload.label()),
        };
        let is_f32 = T::OPENCL_TYPE_NAME == "float";
        match workload {
            Workload::Elementwise { kernel, len } => {
                let (inputs, params) =
                    elementwise_signature(kernel).ok_or_else(|| Error::InvalidParameter {
                        op,
                        name: "kernel",
                        value: kernel.to_string(),
                        reason: "not an elementwise kernel".to_string(),
                    })?;
                if len == 0 {
                    return Err(empty("length"));
                }
                let count = to_u32(op, len)?;
                let program = self.program::<T>(op)?;
                for i in 0..inputs {
                    // The second input of a backward kernel is a gradient; of BCE, labels.
                    let (lo, hi) = match (kernel, i) {
                        ("bce_with_logits_mean_backward", 1) => (0.0, 1.0),
                        ("sigmoid_backward", 0) => (0.0, 1.0),
                        ("tanh_backward", 0) => (-1.0, 1.0),
                        _ => (-4.0, 4.0),
                    };
                    buffers.push(self.input_buffer(len, i as u64, lo, hi)?.keep(&mut leases));
                }
                buffers.push(self.allocate::<T>(len)?.keep(&mut leases));
                output = inputs;
                let mut builder = self.kernel(&program, kernel);
                builder
                    .global_work_size(super::round_up(len, ewg))
                    .local_work_size(ewg);
                for buffer in &buffers {
                    builder.arg(buffer);
                }
                for &p in params {
                    builder.arg(T::narrow(p));
                }
                builder.arg(count);
                kernels.push(build(builder.build(), kernel)?);
            }
            Workload::Rows { kernel, rows, cols } => {
                if rows == 0 || cols == 0 {
                    return Err(empty("rows or columns"));
                }
                let out_len = if kernel == "log_sum_exp_rows" {
                    rows
                } else {
                    rows * cols
                };
                buffers.push(
                    self.input_buffer(rows * cols, 0, -10.0, 10.0)?
                        .keep(&mut leases),
                );
                buffers.push(self.allocate::<T>(out_len)?.keep(&mut leases));
                output = 1;
                let program = self.program::<T>(op)?;
                let builder = self
                    .kernel(&program, kernel)
                    .global_work_size(rows * wg)
                    .local_work_size(wg)
                    .arg(&buffers[0])
                    .arg(&buffers[1])
                    .arg(to_u32(op, rows)?)
                    .arg(to_u32(op, cols)?)
                    .build();
                kernels.push(build(builder, kernel)?);
            }
            Workload::AddRows { rows, cols } => {
                if rows == 0 || cols == 0 {
                    return Err(empty("rows or columns"));
                }
                buffers.push(
                    self.input_buffer(rows * cols, 0, -4.0, 4.0)?
                        .keep(&mut leases),
                );
                buffers.push(self.input_buffer(cols, 1, -1.0, 1.0)?.keep(&mut leases));
                buffers.push(self.allocate::<T>(rows * cols)?.keep(&mut leases));
                output = 2;
                let program = self.program::<T>(op)?;
                let builder = self
                    .kernel(&program, "add_rows")
                    .global_work_size(rows * wg)
                    .local_work_size(wg)
                    .arg(&buffers[0])
                    .arg(&buffers[1])
                    .arg(&buffers[2])
                    .arg(to_u32(op, rows)?)
                    .arg(to_u32(op, cols)?)
                    .build();
                kernels.push(build(builder, "add_rows")?);
            }
            Workload::LayerNorm { rows, cols } => {
                if rows == 0 || cols == 0 {
                    return Err(empty("rows or columns"));
                }
                buffers.push(
                    self.input_buffer(rows * cols, 0, -4.0, 4.0)?
                        .keep(&mut leases),
                );
                buffers.push(self.input_buffer(cols, 1, 0.5, 1.5)?.keep(&mut leases));
                buffers.push(self.input_buffer(cols, 2, -1.0, 1.0)?.keep(&mut leases));
                buffers.push(self.allocate::<T>(rows * cols)?.keep(&mut leases));
                output = 3;
                let program = self.program::<T>(op)?;
                let builder = self
                    .kernel(&program, "layer_norm")
                    .global_work_size(rows * wg)
                    .local_work_size(wg)
                    .arg(&buffers[0])
                    .arg(&buffers[1])
                    .arg(&buffers[2])
                    .arg(&buffers[3])
                    .arg(T::narrow(1e-5))
                    .arg(to_u32(op, rows)?)
                    .arg(to_u32(op, cols)?)
                    .build();
                kernels.push(build(builder, "layer_norm")?);
            }
            Workload::LayerNormBackward { rows, cols } => {
                if rows == 0 || cols == 0 {
                    return Err(empty("rows or columns"));
                }
                buffers.push(
                    self.input_buffer(rows * cols, 0, -4.0, 4.0)?
                        .keep(&mut leases),
                ); // x
                buffers.push(self.input_buffer(cols, 1, 0.5, 1.5)?.keep(&mut leases)); // gamma
                buffers.push(
                    self.input_buffer(rows * cols, 2, -1.0, 1.0)?
                        .keep(&mut leases),
                ); // g
                buffers.push(self.allocate::<T>(rows * cols)?.keep(&mut leases)); // grad_x
                buffers.push(self.allocate::<T>(rows * cols)?.keep(&mut leases)); // xhat
                buffers.push(self.allocate::<T>(cols)?.keep(&mut leases)); // grad_gamma
                buffers.push(self.allocate::<T>(cols)?.keep(&mut leases)); // grad_beta
                output = 3;
                let program = self.program::<T>(op)?;
                let (r32, c32) = (to_u32(op, rows)?, to_u32(op, cols)?);
                let rows_kernel = self
                    .kernel(&program, "layer_norm_backward")
                    .global_work_size(rows * wg)
                    .local_work_size(wg)
                    .arg(&buffers[0])
                    .arg(&buffers[1])
                    .arg(&buffers[2])
                    .arg(&buffers[3])
                    .arg(&buffers[4])
                    .arg(T::narrow(1e-5))
                    .arg(r32)
                    .arg(c32)
                    .build();
                kernels.push(build(rows_kernel, "layer_norm_backward")?);
                let (column_global, column_local) = self.column_launch(cols);
                let columns_kernel = self
                    .kernel(&program, "layer_norm_param_grads")
                    .global_work_size(column_global)
                    .local_work_size(column_local)
                    .arg(&buffers[2])
                    .arg(&buffers[4])
                    .arg(&buffers[5])
                    .arg(&buffers[6])
                    .arg(r32)
                    .arg(c32)
                    .build();
                kernels.push(build(columns_kernel, "layer_norm_param_grads")?);
            }
            Workload::BceMean { len } => {
                if len == 0 {
                    return Err(empty("length"));
                }
                let groups = len.div_ceil(wg).clamp(1, super::REDUCTION_GROUPS);
                buffers.push(self.input_buffer(len, 0, -4.0, 4.0)?.keep(&mut leases));
                buffers.push(self.input_buffer(len, 1, 0.0, 1.0)?.keep(&mut leases));
                buffers.push(self.allocate::<T>(groups)?.keep(&mut leases));
                buffers.push(self.allocate::<T>(1)?.keep(&mut leases));
                output = 3;
                let program = self.program::<T>(op)?;
                let n32 = to_u32(op, len)?;
                let pass1 = self
                    .kernel(&program, "bce_with_logits_partial_sums")
                    .global_work_size(groups * wg)
                    .local_work_size(wg)
                    .arg(&buffers[0])
                    .arg(&buffers[1])
                    .arg(&buffers[2])
                    .arg(n32)
                    .build();
                kernels.push(build(pass1, "bce_with_logits_partial_sums")?);
                let pass2 = self
                    .kernel(&program, "sum_partials_divide")
                    .global_work_size(wg)
                    .local_work_size(wg)
                    .arg(&buffers[2])
                    .arg(&buffers[3])
                    .arg(to_u32(op, groups)?)
                    .arg(n32)
                    .build();
                kernels.push(build(pass2, "sum_partials_divide")?);
            }
            Workload::Matmul { m, k, n } => {
                if m == 0 || k == 0 || n == 0 {
                    return Err(empty("a dimension"));
                }
                buffers.push(self.input_buffer(m * k, 0, -1.0, 1.0)?.keep(&mut leases));
                buffers.push(self.input_buffer(k * n, 1, -1.0, 1.0)?.keep(&mut leases));
                buffers.push(self.allocate::<T>(m * n)?.keep(&mut leases));
                output = 2;
                let program = self.program::<T>(op)?;
                // The kernel `Backend::matmul` launches (`OpenCl::enqueue_batched_matmul`):
                // register-blocked on a CPU device, else local-memory tiles.
                let (m32, k32, n32) = (to_u32(op, m)?, to_u32(op, k)?, to_u32(op, n)?);
                let (name, builder) = if self.shared.blocked_matmul {
                    let (global, local) = super::matmul_geometry(m, n, wg);
                    let mut builder = self.kernel(&program, "matmul_blocked");
                    builder.global_work_size(global).local_work_size(local);
                    ("matmul_blocked", builder)
                } else {
                    let tile = self.shared.matmul_tile;
                    let mut builder = self.kernel(&program, "matmul");
                    builder
                        .global_work_size((super::round_up(n, tile), super::round_up(m, tile), 1))
                        .local_work_size((tile, tile, 1));
                    ("matmul", builder)
                };
                let mut builder = builder;
                builder
                    .arg(&buffers[0])
                    .arg(&buffers[1])
                    .arg(&buffers[2])
                    .arg(m32)
                    .arg(k32)
                    .arg(n32)
                    .arg(0u32)
                    .arg(0u32);
                kernels.push(build(builder.build(), name)?);
            }
            Workload::AdamStep { len } => {
                if len == 0 {
                    return Err(empty("length"));
                }
                let hyper = crate::reference::optim::AdamHyper::new(1e-3, 0.9, 0.999, 1e-8);
                let (correction1, correction2) =
                    crate::reference::optim::adam_bias_corrections(&hyper, 1);
                buffers.push(self.input_buffer(len, 0, -1.0, 1.0)?.keep(&mut leases)); // θ
                buffers.push(self.input_buffer(len, 1, -1.0, 1.0)?.keep(&mut leases)); // g
                buffers.push(self.input_buffer(len, 2, -0.1, 0.1)?.keep(&mut leases)); // m
                buffers.push(self.input_buffer(len, 3, 0.0, 0.1)?.keep(&mut leases)); // v
                output = 0;
                let program = self.program::<T>(op)?;
                let narrow = T::narrow;
                let builder = self
                    .kernel(&program, "adam_step")
                    .global_work_size(super::round_up(len, ewg))
                    .local_work_size(ewg)
                    .arg(&buffers[0])
                    .arg(&buffers[1])
                    .arg(&buffers[2])
                    .arg(&buffers[3])
                    .arg(&buffers[0]) // last_step placeholder (flag off)
                    .arg(narrow(hyper.beta1))
                    .arg(narrow(1.0 - hyper.beta1))
                    .arg(narrow(hyper.beta2))
                    .arg(narrow(1.0 - hyper.beta2))
                    .arg(narrow(correction1))
                    .arg(narrow(correction2))
                    .arg(narrow(hyper.learning_rate))
                    .arg(narrow(hyper.eps))
                    .arg(narrow(0.0))
                    .arg(narrow(1.0))
                    .arg(0u32)
                    .arg(to_u32(op, len)?)
                    .build();
                kernels.push(build(builder, "adam_step")?);
            }
            Workload::Copy { .. }
            | Workload::Fma { .. }
            | Workload::MulAdd { .. }
            | Workload::Empty
                if !is_f32 =>
            {
                return Err(Error::Unsupported {
                    backend: "opencl".to_string(),
                    op: "prepare",
                    scalar: T::NAME,
                    reason: "the limit kernels are f32".to_string(),
                });
            }
            Workload::Copy { len } => {
                if len == 0 {
                    return Err(Error::InvalidParameter {
                        op,
                        name: "len",
                        value: len.to_string(),
                        reason: "at least one element".to_string(),
                    });
                }
                let program = self.build_bench_program()?;
                buffers.push(self.input_buffer(len, 0, -1.0, 1.0)?.keep(&mut leases));
                buffers.push(self.allocate::<T>(len)?.keep(&mut leases));
                output = 1;
                let count = to_u32(op, len)?;
                let builder = self
                    .kernel(&program, "bench_copy")
                    .global_work_size(super::round_up(len, ewg))
                    .local_work_size(ewg)
                    .arg(&buffers[0])
                    .arg(&buffers[1])
                    .arg(count)
                    .build();
                kernels.push(build(builder, "bench_copy")?);
            }
            Workload::Fma { items, iterations } | Workload::MulAdd { items, iterations } => {
                let name = if matches!(workload, Workload::Fma { .. }) {
                    "bench_fma"
                } else {
                    "bench_mul_add"
                };
                if items == 0 {
                    return Err(empty("work items"));
                }
                let program = self.build_bench_program()?;
                let global = super::round_up(items, ewg);
                buffers.push(self.allocate::<T>(global)?.keep(&mut leases));
                let builder = self
                    .kernel(&program, name)
                    .global_work_size(global)
                    .local_work_size(ewg)
                    .arg(&buffers[0])
                    .arg(0.999_f32)
                    .arg(1e-3_f32)
                    .arg(to_u32(op, iterations)?)
                    .build();
                kernels.push(build(builder, name)?);
            }
            Workload::Empty => {
                let program = self.build_bench_program()?;
                buffers.push(self.allocate::<T>(1)?.keep(&mut leases));
                let builder = self
                    .kernel(&program, "bench_empty")
                    .global_work_size(1)
                    .local_work_size(1)
                    .arg(&buffers[0])
                    .build();
                kernels.push(build(builder, "bench_empty")?);
            }
        }
        Ok(KernelBench {
            workload,
            queue: self.shared.device.queue.clone(),
            kernels,
            buffers,
            _leases: leases,
            output,
        })
    }
}

fn build(kernel: std::result::Result<Kernel, ocl::Error>, name: &str) -> Result<Kernel> {
    kernel.map_err(|e| Error::opencl(format!("creating kernel {name}"), e))
}

/// The row-kernel and elementwise op names benched (kernel names of `opencl/*.cl`).
pub const ELEMENTWISE_KERNELS: &[&str] = &[
    "relu",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "gelu",
    "gelu_backward",
    "bce_with_logits_mean_backward",
];

/// The row kernels of `opencl/reduce.cl`.
pub const ROW_KERNELS: &[&str] = &["log_sum_exp_rows", "softmax_rows", "log_softmax_rows"];

/// The workloads at the sizes where the targets apply (elementwise at 16M elements, row ops at
/// 4096 × 1024, matmul at 1024³), for `make report`'s quick bench pass.
pub fn target_workloads() -> Vec<Workload> {
    let mut all: Vec<Workload> = ELEMENTWISE_KERNELS
        .iter()
        .map(|&kernel| Workload::Elementwise {
            kernel,
            len: 1 << 24,
        })
        .collect();
    let (rows, cols) = (4096, 1024);
    all.extend(
        ROW_KERNELS
            .iter()
            .map(|&kernel| Workload::Rows { kernel, rows, cols }),
    );
    all.extend([
        Workload::AddRows { rows, cols },
        Workload::LayerNorm { rows, cols },
        Workload::LayerNormBackward { rows, cols },
        Workload::BceMean { len: 1 << 24 },
        Workload::AdamStep { len: 1 << 24 },
        Workload::Matmul {
            m: 1024,
            k: 1024,
            n: 1024,
        },
    ]);
    all
}
