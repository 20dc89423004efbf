//! The OpenCL backend: the implementation the crate exists to check.
//!
//! One context and in-order queue per process for the default device (chosen by
//! [`DEVICE_ENV`], default: first GPU, else first device), one program per scalar type, built
//! once and cached. Kernels are created per call from the cached program (an `ocl::Kernel` is not
//! `Sync`), so [`OpenCl`] is `Send + Sync` and cheap to clone.

mod bench;
mod context;
mod elementwise;
mod layers;
mod linalg;
mod losses;
mod norm;
mod optim;
mod program;
pub mod train;

pub use bench::{
    target_workloads, Binding, DeviceLimits, KernelBench, LimitConfig, Workload, BENCH_SOURCE,
    ELEMENTWISE_KERNELS, ROW_KERNELS, WORKLOAD_SEED,
};

pub use context::DEVICE_ENV;
pub use layers::AttentionLayout;
pub use losses::DeviceIndices;
pub use program::{
    matmul_geometry, matmul_tile, options as build_options,
    options_with_tile as build_options_with_tile, source as program_source, SOURCES,
};

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use ndarray::{
    Array1, Array2, Array3, Array4, ArrayView1, ArrayView2, ArrayView3, ArrayView4, Dimension, Ix2,
};
use ocl::{flags, Buffer, Kernel, OclPrm, Program};

use crate::backend::{AttentionGrads, LayerNormGrads};
use crate::reference::optim::{AdamHyper, AdamState, SgdHyper, SgdState};
use crate::reference::{DropoutOutput, Reduction};
use crate::rng::RandomKey;
use crate::{validate, Backend, Error, Result, Scalar};
use context::DeviceContext;

/// Preferred work-group size of the row and reduction kernels on GPUs and accelerators, and of
/// the elementwise kernels everywhere (capped by the device).
const PREFERRED_ROW_WORK_GROUP: usize = 256;
/// Row work-group on CPU devices: one work-group of one item per row, each reading wide
/// vectors (`ROW_VEC = 16`, see `program::row_vector`). A CPU runs a work-group's items in a
/// loop; 256 items per row spend the time in the loop and the barriers, not the row.
const CPU_ROW_WORK_GROUP: usize = 1;
/// Work-groups in the first pass of a full reduction (a fixed number, so the tree is fixed).
const REDUCTION_GROUPS: usize = 64;

struct Shared {
    device: DeviceContext,
    row_work_group: usize,
    elementwise_work_group: usize,
    /// Plain (untransposed, unbatched) matmuls use the register-blocked kernel (CPU devices).
    blocked_matmul: bool,
    /// Side of the matmul and transpose tiles (`-D TILE`).
    matmul_tile: usize,
    programs: [OnceLock<Result<Program, Error>>; 2],
    program_builds: AtomicUsize,
    kernel_launches: AtomicUsize,
    /// Live allocations of this context (shared with [`OpenCl::with_matmul_tile`] handles).
    memory: Arc<MemoryCounters>,
}

/// Counters behind [`OpenCl::memory`]: every device allocation the crate makes holds a
/// [`Lease`] that adds its bytes here and takes them away when dropped.
#[derive(Debug, Default)]
struct MemoryCounters {
    live_buffers: AtomicUsize,
    live_bytes: AtomicU64,
    peak_bytes: AtomicU64,
    allocations: AtomicU64,
}

/// The share of one device allocation in its context's [`MemoryCounters`], released on drop.
#[derive(Debug)]
struct Lease {
    counters: Arc<MemoryCounters>,
    bytes: u64,
}

impl Lease {
    fn new(counters: &Arc<MemoryCounters>, bytes: u64) -> Self {
        counters.live_buffers.fetch_add(1, Ordering::SeqCst);
        counters.allocations.fetch_add(1, Ordering::SeqCst);
        let live = counters.live_bytes.fetch_add(bytes, Ordering::SeqCst) + bytes;
        counters.peak_bytes.fetch_max(live, Ordering::SeqCst);
        Lease {
            counters: Arc::clone(counters),
            bytes,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.counters.live_buffers.fetch_sub(1, Ordering::SeqCst);
        self.counters
            .live_bytes
            .fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// A device allocation of any OpenCL primitive with its accounting [`Lease`]: the buffer's
/// bytes count in [`OpenCl::memory`] until this is dropped.
struct Counted<P: OclPrm> {
    buffer: Buffer<P>,
    lease: Lease,
}

impl<P: OclPrm> std::ops::Deref for Counted<P> {
    type Target = Buffer<P>;
    fn deref(&self) -> &Buffer<P> {
        &self.buffer
    }
}

impl<P: OclPrm> Counted<P> {
    /// The buffer, with its lease moved into `leases` (kept alive as long as that vector).
    fn keep(self, leases: &mut Vec<Lease>) -> Buffer<P> {
        leases.push(self.lease);
        self.buffer
    }
}

/// Device memory allocated through one [`OpenCl`] context (and the handles sharing it), as
/// counted by the crate: every buffer it creates (scalar, index and mask buffers, the
/// temporaries of each `Backend` op, a [`train::DeviceTrainer`]'s resident state, bench
/// buffers) counts from creation until its last owner drops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceMemory {
    /// Buffers alive now.
    pub live_buffers: usize,
    /// Bytes of the buffers alive now.
    pub live_bytes: u64,
    /// Most bytes alive at once since the context was opened.
    pub peak_bytes: u64,
    /// Buffers created since the context was opened.
    pub allocations: u64,
}

/// Handle to an OpenCL device with its cached programs. Clones share everything.
#[derive(Clone)]
pub struct OpenCl {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OpenCl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenCl")
            .field("device", &self.device_label())
            .finish()
    }
}

static DEFAULT_DEVICE: OnceLock<Result<OpenCl, Error>> = OnceLock::new();

impl OpenCl {
    /// The process-wide default device: the one [`DEVICE_ENV`] names, else the first GPU, else
    /// the first device. Opened once; later calls clone the handle (or the same error).
    pub fn new() -> Result<Self> {
        DEFAULT_DEVICE
            .get_or_init(|| {
                let filter = std::env::var(DEVICE_ENV)
                    .ok()
                    .filter(|s| !s.trim().is_empty());
                Self::open(filter.as_deref())
            })
            .clone()
    }

    /// Open a new, separate context on the device matching `filter` (a case-insensitive
    /// substring of `"platform / device"`; `None`: first GPU, else first device). Its programs
    /// are built again; prefer [`OpenCl::new`].
    pub fn open(filter: Option<&str>) -> Result<Self> {
        let device = context::open(filter)?;
        let largest_power_of_two =
            |preferred: usize| 1usize << device.max_work_group_size.clamp(1, preferred).ilog2();
        let row_work_group = largest_power_of_two(if device.is_cpu {
            CPU_ROW_WORK_GROUP
        } else {
            PREFERRED_ROW_WORK_GROUP
        });
        let elementwise_work_group = largest_power_of_two(PREFERRED_ROW_WORK_GROUP);
        Ok(OpenCl {
            shared: Arc::new(Shared {
                device,
                row_work_group,
                elementwise_work_group,
                blocked_matmul: program::matmul_register_blocked(row_work_group),
                matmul_tile: matmul_tile(row_work_group),
                programs: [OnceLock::new(), OnceLock::new()],
                program_builds: AtomicUsize::new(0),
                kernel_launches: AtomicUsize::new(0),
                memory: Arc::default(),
            }),
        })
    }

    /// A handle on the same device and queue whose programs are built with the matmul and
    /// transpose tile side `tile` (`-D TILE=tile`) instead of [`matmul_tile`]'s default, with
    /// their own cache. Tests force `tile = 2` so small shapes cross tile boundaries (the
    /// results must be bitwise equal to the default build's: the sum order does not depend on
    /// the tile). Errors: `InvalidParameter` unless `1 ≤ tile` and `tile²` fits a work-group.
    pub fn with_matmul_tile(&self, tile: usize) -> Result<Self> {
        let limit = self.shared.device.max_work_group_size;
        if tile == 0 || tile.saturating_mul(tile) > limit {
            return Err(Error::InvalidParameter {
                op: "with_matmul_tile",
                name: "tile",
                value: tile.to_string(),
                reason: format!("need 1 ≤ tile and tile² ≤ {limit} (max work-group size)"),
            });
        }
        Ok(OpenCl {
            shared: Arc::new(Shared {
                device: self.shared.device.clone(),
                row_work_group: self.shared.row_work_group,
                elementwise_work_group: self.shared.elementwise_work_group,
                // The forced tile is for exercising the tiled kernel: no register-blocked path.
                blocked_matmul: false,
                matmul_tile: tile,
                programs: [OnceLock::new(), OnceLock::new()],
                program_builds: AtomicUsize::new(0),
                kernel_launches: AtomicUsize::new(0),
                memory: Arc::clone(&self.shared.memory),
            }),
        })
    }

    /// Side of the square matmul and transpose tiles this handle's programs are built with.
    pub fn tile(&self) -> usize {
        self.shared.matmul_tile
    }

    /// `"platform / device"`, e.g. `"Portable Computing Language / pthread-…"`.
    pub fn device_label(&self) -> String {
        format!(
            "{} / {}",
            self.shared.device.platform_name, self.shared.device.device_name
        )
    }

    /// Whether the device reports `cl_khr_fp64` (f64 ops are `Unsupported` otherwise).
    pub fn has_fp64(&self) -> bool {
        self.shared.device.has_fp64
    }

    /// How many programs this handle (and its clones) has built: at most one per scalar type.
    pub fn program_builds(&self) -> usize {
        self.shared.program_builds.load(Ordering::SeqCst)
    }

    /// How many kernels this handle (and its clones) has enqueued so far (to count the launches
    /// of a training step).
    pub fn kernel_launches(&self) -> usize {
        self.shared.kernel_launches.load(Ordering::SeqCst)
    }

    /// Device memory this context holds now (and its peak): see [`DeviceMemory`]. Handles from
    /// [`OpenCl::with_matmul_tile`] share the context's counters; [`OpenCl::open`] starts new
    /// ones, so a test that counts opens its own context.
    pub fn memory(&self) -> DeviceMemory {
        let m = &self.shared.memory;
        DeviceMemory {
            live_buffers: m.live_buffers.load(Ordering::SeqCst),
            live_bytes: m.live_bytes.load(Ordering::SeqCst),
            peak_bytes: m.peak_bytes.load(Ordering::SeqCst),
            allocations: m.allocations.load(Ordering::SeqCst),
        }
    }

    /// Work-group size of the row kernels on this device.
    pub fn row_work_group(&self) -> usize {
        self.shared.row_work_group
    }

    /// Work-group size of the elementwise kernels on this device.
    pub fn elementwise_work_group(&self) -> usize {
        self.shared.elementwise_work_group
    }

    /// Build the program for `T` with `extra_options` appended, bypassing the cache (to test
    /// that a failed build reports its log, e.g. with `-D ROW_WG=` left empty).
    pub fn build_uncached<T: Scalar>(&self, extra_options: &str) -> Result<()> {
        self.check_scalar::<T>("build_uncached")?;
        program::build::<T>(
            &self.shared.device,
            self.shared.row_work_group,
            self.shared.matmul_tile,
            extra_options,
        )
        .map(|_| ())
    }

    fn check_scalar<T: Scalar>(&self, op: &'static str) -> Result<()> {
        if T::PROGRAM_SLOT == 1 && !self.shared.device.has_fp64 {
            return Err(Error::Unsupported {
                backend: "opencl".to_string(),
                op,
                scalar: T::NAME,
                reason: format!("{} lacks cl_khr_fp64", self.device_label()),
            });
        }
        Ok(())
    }

    /// The cached program for `T`, built on first use.
    fn program<T: Scalar>(&self, op: &'static str) -> Result<Program> {
        self.check_scalar::<T>(op)?;
        self.shared.programs[T::PROGRAM_SLOT]
            .get_or_init(|| {
                self.shared.program_builds.fetch_add(1, Ordering::SeqCst);
                program::build::<T>(
                    &self.shared.device,
                    self.shared.row_work_group,
                    self.shared.matmul_tile,
                    "",
                )
            })
            .clone()
    }

    /// `TooLarge` unless `len` elements of `T` fit one device allocation
    /// (`CL_DEVICE_MAX_MEM_ALLOC_SIZE`), instead of a driver error (or an overcommitted
    /// allocation that fails later).
    fn check_allocation<T: Scalar>(&self, len: usize) -> Result<()> {
        let bytes = (len as u128) * (std::mem::size_of::<T>() as u128);
        let limit = u128::from(self.shared.device.max_allocation_bytes);
        if limit > 0 && bytes > limit {
            return Err(Error::TooLarge {
                op: "device allocation",
                what: "bytes",
                value: bytes,
                limit,
            });
        }
        Ok(())
    }

    /// The device's largest single allocation in bytes (`CL_DEVICE_MAX_MEM_ALLOC_SIZE`; 0 if
    /// unknown).
    pub fn max_allocation_bytes(&self) -> u64 {
        self.shared.device.max_allocation_bytes
    }

    /// A lease on `len` elements of `P` in this context's memory counters.
    fn lease<P: OclPrm>(&self, len: usize) -> Lease {
        let bytes = (len as u64).saturating_mul(std::mem::size_of::<P>() as u64);
        Lease::new(&self.shared.memory, bytes)
    }

    fn upload<T: Scalar>(&self, data: &[T]) -> Result<Counted<T>> {
        self.check_allocation::<T>(data.len())?;
        let buffer = Buffer::<T>::builder()
            .queue(self.shared.device.queue.clone())
            .flags(flags::MEM_READ_ONLY)
            .len(data.len())
            .copy_host_slice(data)
            .build()
            .map_err(|e| {
                Error::opencl(format!("allocating and writing {} elements", data.len()), e)
            })?;
        Ok(Counted {
            buffer,
            lease: self.lease::<T>(data.len()),
        })
    }

    fn allocate<T: Scalar>(&self, len: usize) -> Result<Counted<T>> {
        self.check_allocation::<T>(len)?;
        let buffer = Buffer::<T>::builder()
            .queue(self.shared.device.queue.clone())
            .flags(flags::MEM_READ_WRITE)
            .len(len)
            .build()
            .map_err(|e| Error::opencl(format!("allocating {len} elements"), e))?;
        Ok(Counted {
            buffer,
            lease: self.lease::<T>(len),
        })
    }

    fn download<T: Scalar>(&self, buffer: &Buffer<T>, len: usize) -> Result<Vec<T>> {
        let mut host = vec![T::zero(); len];
        buffer
            .read(&mut host)
            .enq()
            .map_err(|e| Error::opencl("reading back a result", e))?;
        Ok(host)
    }

    fn kernel<'b>(
        &self,
        program: &'b Program,
        name: &'static str,
    ) -> ocl::builders::KernelBuilder<'b> {
        let mut builder = Kernel::builder();
        builder
            .program(program)
            .name(name)
            .queue(self.shared.device.queue.clone());
        builder
    }

    fn enqueue(
        &self,
        kernel: std::result::Result<Kernel, ocl::Error>,
        name: &'static str,
    ) -> Result<()> {
        let kernel = kernel.map_err(|e| Error::opencl(format!("creating kernel {name}"), e))?;
        self.shared.kernel_launches.fetch_add(1, Ordering::Relaxed);
        // SAFETY: every kernel in opencl/*.cl is launched with the argument list of its
        // signature (checked by the builder's types and names above), each buffer holds at least
        // the elements the kernel indexes (sizes validated on the host as u32 and equal to the
        // buffer lengths, checked by the enqueue_* methods: at least the elements the kernel
        // indexes), no output buffer aliases a `restrict` input (check_distinct), and every
        // kernel returns early for ids past its logical size, except `matmul` and `transpose`
        // (opencl/matmul.cl), whose padded items must reach their barriers: they guard each
        // load (`row < m && pa < k`, `pb < k && col < n`; `row0 + lr < rows && col0 + lc <
        // cols`) and each store instead, are launched with TILE × TILE work-groups, and read
        // the s-th batch at offsets below the checked batch · m · k (a), batch · k · n (b).
        unsafe { kernel.enq() }.map_err(|e| Error::opencl(format!("enqueueing {name}"), e))
    }

    /// Run the elementwise kernel `kernel_name` over arrays of one shape through
    /// [`OpenCl::enqueue_elementwise`]: upload `inputs`, enqueue, read back. An empty shape
    /// returns an empty array without touching the device.
    fn elementwise<T: Scalar>(
        &self,
        op: &'static str,
        kernel_name: &'static str,
        inputs: &[ArrayView2<'_, T>],
        params: &[T],
    ) -> Result<Array2<T>> {
        let dim = inputs.first().map_or((0, 0), |x| x.dim());
        let len = dim.0.saturating_mul(dim.1);
        to_u32(op, len)?;
        if len == 0 {
            return Ok(Array2::zeros(dim));
        }
        let buffers = inputs
            .iter()
            .map(|x| self.upload_buffer(&contiguous(x)))
            .collect::<Result<Vec<_>>>()?;
        let out = self.zeros_buffer::<T>(len)?;
        let refs: Vec<&DeviceBuffer<T>> = buffers.iter().collect();
        self.enqueue_elementwise(kernel_name, &refs, &out, params, len)?;
        let data = self.read_buffer(&out)?;
        Array2::from_shape_vec(dim, data).map_err(|e| Error::opencl(format!("shaping {op}"), e))
    }

    /// An elementwise VJP: `grad_output` must have the shape of `forward` (as in the reference).
    fn elementwise_backward<T: Scalar>(
        &self,
        op: &'static str,
        kernel_name: &'static str,
        forward: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
        params: &[T],
    ) -> Result<Array2<T>> {
        validate::same_shape(
            op,
            "grad_output",
            grad_output.shape(),
            "forward array",
            forward.shape(),
        )?;
        self.elementwise(op, kernel_name, &[forward, grad_output], params)
    }

    /// Shared launcher of the three row kernels: `out` has `rows × out_cols` elements.
    fn row_kernel<T: Scalar>(
        &self,
        name: &'static str,
        x: ArrayView2<'_, T>,
        out_cols: usize,
    ) -> Result<Vec<T>> {
        validate::rows_op(name, x)?;
        let (rows, cols) = x.dim();
        if rows == 0 {
            return Ok(Vec::new());
        }
        let input = self.upload_buffer(&contiguous(&x))?;
        let output = self.zeros_buffer::<T>(rows * out_cols)?;
        self.enqueue_row_kernel(name, &input, rows, cols, &output)?;
        self.download(&output.buffer, rows * out_cols)
    }

    /// Enqueue one of the row kernels (`log_sum_exp_rows`, `softmax_rows`, `log_softmax_rows`)
    /// on device buffers: `input` holds `rows × cols` row-major, `output` `rows` (LSE) or
    /// `rows × cols` elements. Does not wait: call [`OpenCl::finish`]. Used by the benches to
    /// time kernels without transfers.
    pub fn enqueue_row_kernel<T: Scalar>(
        &self,
        name: &'static str,
        input: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
        output: &DeviceBuffer<T>,
    ) -> Result<()> {
        let out_len = match name {
            "log_sum_exp_rows" => rows,
            "softmax_rows" | "log_softmax_rows" => rows * cols,
            _ => {
                return Err(Error::InvalidParameter {
                    op: "enqueue_row_kernel",
                    name: "name",
                    value: name.to_string(),
                    reason: "one of log_sum_exp_rows, softmax_rows, log_softmax_rows".to_string(),
                })
            }
        };
        if cols == 0 || input.len < rows * cols || output.len < out_len {
            return Err(Error::ShapeMismatch {
                op: name,
                detail: format!(
                    "buffers of {} and {} elements for a [{rows}, {cols}] input",
                    input.len, output.len
                ),
            });
        }
        let program = self.program::<T>(name)?;
        let (row_count, col_count) = (to_u32(name, rows)?, to_u32(name, cols)?);
        let wg = self.shared.row_work_group;
        let kernel = self
            .kernel(&program, name)
            .global_work_size(rows * wg)
            .local_work_size(wg)
            .arg(&input.buffer)
            .arg(&output.buffer)
            .arg(row_count)
            .arg(col_count)
            .build();
        self.enqueue(kernel, name)
    }

    /// Copy host data into a new device buffer.
    pub fn upload_buffer<T: Scalar>(&self, data: &[T]) -> Result<DeviceBuffer<T>> {
        if data.is_empty() {
            return Err(Error::EmptyInput {
                op: "upload_buffer",
                detail: "a device buffer needs ≥ 1 element".into(),
            });
        }
        let Counted { buffer, lease } = self.upload(data)?;
        Ok(DeviceBuffer {
            buffer,
            len: data.len(),
            _lease: Some(lease),
        })
    }

    /// A new device buffer of `len` elements (contents unspecified until written).
    pub fn zeros_buffer<T: Scalar>(&self, len: usize) -> Result<DeviceBuffer<T>> {
        if len == 0 {
            return Err(Error::EmptyInput {
                op: "zeros_buffer",
                detail: "a device buffer needs ≥ 1 element".into(),
            });
        }
        let Counted { buffer, lease } = self.allocate(len)?;
        Ok(DeviceBuffer {
            buffer,
            len,
            _lease: Some(lease),
        })
    }

    /// One zeroed device allocation holding `lengths.len()` tensors, each a sub-buffer that
    /// starts at a multiple of the device's `CL_DEVICE_MEM_BASE_ADDR_ALIGN`; the gaps between
    /// them are zeros too. Kernels over the whole allocation (one launch for all tensors: the
    /// optimizer step, gradient clipping, accumulation) see every tensor plus zero padding,
    /// and an elementwise update maps zeros to zeros. The allocation counts once in
    /// [`OpenCl::memory`]. When `values` is given, its arrays (one per length) are written in.
    ///
    /// Errors: `EmptyInput` for no tensors or an empty one, `ShapeMismatch` if `values` does
    /// not match `lengths`, `TooLarge` past the device's allocation limit, OpenCL errors.
    pub fn segmented_buffer<T: Scalar>(
        &self,
        lengths: &[usize],
        values: Option<&[ndarray::Array1<T>]>,
    ) -> Result<Segmented<T>> {
        const OP: &str = "segmented_buffer";
        if lengths.is_empty() || lengths.contains(&0) {
            return Err(Error::EmptyInput {
                op: OP,
                detail: format!("every segment needs ≥ 1 element, got lengths {lengths:?}"),
            });
        }
        if let Some(values) = values {
            let given: Vec<usize> = values.iter().map(ndarray::Array1::len).collect();
            if given != lengths {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    detail: format!("values of lengths {given:?} for segments {lengths:?}"),
                });
            }
        }
        let align = (self.shared.device.base_alignment_bytes / std::mem::size_of::<T>()).max(1);
        let mut offsets = Vec::with_capacity(lengths.len());
        let mut end = 0usize;
        for &len in lengths {
            let offset = end.div_ceil(align).checked_mul(align);
            let next = offset.and_then(|o| o.checked_add(len));
            let (Some(offset), Some(next)) = (offset, next) else {
                return Err(Error::TooLarge {
                    op: OP,
                    what: "total length",
                    value: u128::MAX,
                    limit: usize::MAX as u128,
                });
            };
            offsets.push(offset);
            end = next;
        }
        let mut host = vec![T::zero(); end];
        if let Some(values) = values {
            for (value, &offset) in values.iter().zip(&offsets) {
                for (slot, &v) in host[offset..offset + value.len()].iter_mut().zip(value) {
                    *slot = v;
                }
            }
        }
        let whole = self.zeros_buffer::<T>(end)?;
        whole
            .buffer
            .write(&host)
            .enq()
            .map_err(|e| Error::opencl(format!("writing {end} elements"), e))?;
        let parts = lengths
            .iter()
            .zip(&offsets)
            .map(|(&len, &offset)| {
                let buffer = whole
                    .buffer
                    .create_sub_buffer(Some(flags::MEM_READ_WRITE), offset, len)
                    .map_err(|e| {
                        Error::opencl(format!("creating a sub-buffer at {offset} of {len}"), e)
                    })?;
                Ok(DeviceBuffer {
                    buffer,
                    len,
                    _lease: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Segmented { parts, whole })
    }

    /// Read a device buffer back to the host (blocking).
    pub fn read_buffer<T: Scalar>(&self, buffer: &DeviceBuffer<T>) -> Result<Vec<T>> {
        self.download(&buffer.buffer, buffer.len)
    }

    /// Wait until every enqueued command has finished.
    pub fn finish(&self) -> Result<()> {
        self.shared
            .device
            .queue
            .finish()
            .map_err(|e| Error::opencl("finishing the queue", e))
    }
}

/// A device buffer of `T` owned by the host program (for benches and device-resident work).
/// It counts in [`OpenCl::memory`] until dropped.
pub struct DeviceBuffer<T: Scalar> {
    buffer: Buffer<T>,
    len: usize,
    /// Released (uncounted) when the buffer drops; `None` for a sub-buffer of a
    /// [`Segmented`] allocation, which counts once, through its whole buffer.
    _lease: Option<Lease>,
}

/// Tensors in one device allocation ([`OpenCl::segmented_buffer`]): each part is a sub-buffer
/// of `whole` (aligned, zero gaps between parts).
pub struct Segmented<T: Scalar> {
    /// The tensors, in order (dropped before `whole`).
    parts: Vec<DeviceBuffer<T>>,
    whole: DeviceBuffer<T>,
}

impl<T: Scalar> Segmented<T> {
    /// The tensors, each a sub-buffer.
    pub fn parts(&self) -> &[DeviceBuffer<T>] {
        &self.parts
    }

    /// The whole allocation: every part plus the zero padding between parts.
    pub fn whole(&self) -> &DeviceBuffer<T> {
        &self.whole
    }
}

impl<T: Scalar> DeviceBuffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: empty device buffers are not created.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `self` and `other` are the same device memory object.
    pub fn same_buffer(&self, other: &Self) -> bool {
        self.buffer.as_core().as_ptr() == other.buffer.as_core().as_ptr()
    }
}

/// Row-major contiguous data of a view (borrowed when it already is).
fn contiguous<'a, T: Clone, D: Dimension>(view: &'a ndarray::ArrayView<'_, T, D>) -> Cow<'a, [T]> {
    match view.as_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(view.iter().cloned().collect()),
    }
}

fn to_u32(op: &'static str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::TooLarge {
        op,
        what: "length",
        value: value as u128,
        limit: u128::from(u32::MAX),
    })
}

fn round_up(value: usize, multiple: usize) -> usize {
    value.div_ceil(multiple) * multiple
}

impl<T: Scalar> Backend<T> for OpenCl {
    fn name(&self) -> String {
        "opencl".to_string()
    }

    fn log_sum_exp_rows(&self, x: ArrayView2<'_, T>) -> Result<Array1<T>> {
        Ok(Array1::from(self.row_kernel("log_sum_exp_rows", x, 1)?))
    }

    fn softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let data = self.row_kernel("softmax_rows", x, x.ncols())?;
        Array2::from_shape_vec(x.dim(), data).map_err(|e| Error::opencl("shaping softmax_rows", e))
    }

    fn log_softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let data = self.row_kernel("log_softmax_rows", x, x.ncols())?;
        Array2::from_shape_vec(x.dim(), data)
            .map_err(|e| Error::opencl("shaping log_softmax_rows", e))
    }

    fn bce_with_logits_mean(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
    ) -> Result<T> {
        const OP: &str = "bce_with_logits_mean";
        validate::mean_loss(OP, logits, labels)?;
        let program = self.program::<T>(OP)?;
        let n = logits.len();
        let n32 = to_u32(OP, n)?;
        let wg = self.shared.row_work_group;
        let groups = n.div_ceil(wg).clamp(1, REDUCTION_GROUPS);
        let groups32 = to_u32(OP, groups)?;
        let z = self.upload(&contiguous(&logits))?;
        let y = self.upload(&contiguous(&labels))?;
        let partial = self.allocate::<T>(groups)?;
        let out = self.allocate::<T>(1)?;
        let pass1 = self
            .kernel(&program, "bce_with_logits_partial_sums")
            .global_work_size(groups * wg)
            .local_work_size(wg)
            .arg(&z.buffer)
            .arg(&y.buffer)
            .arg(&partial.buffer)
            .arg(n32)
            .build();
        self.enqueue(pass1, "bce_with_logits_partial_sums")?;
        let pass2 = self
            .kernel(&program, "sum_partials_divide")
            .global_work_size(wg)
            .local_work_size(wg)
            .arg(&partial.buffer)
            .arg(&out.buffer)
            .arg(groups32)
            .arg(n32)
            .build();
        self.enqueue(pass2, "sum_partials_divide")?;
        let host = self.download(&out, 1)?;
        host.first()
            .copied()
            .ok_or_else(|| Error::opencl(OP, "empty read-back"))
    }

    fn bce_with_logits_mean_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        grad_output: T,
    ) -> Result<Array1<T>> {
        const OP: &str = "bce_with_logits_mean_backward";
        validate::mean_loss(OP, logits, labels)?;
        let program = self.program::<T>(OP)?;
        let n = logits.len();
        let n32 = to_u32(OP, n)?;
        let wg = self.shared.elementwise_work_group;
        let z = self.upload(&contiguous(&logits))?;
        let y = self.upload(&contiguous(&labels))?;
        let grad = self.allocate::<T>(n)?;
        let kernel = self
            .kernel(&program, OP)
            .global_work_size(round_up(n, wg))
            .local_work_size(wg)
            .arg(&z.buffer)
            .arg(&y.buffer)
            .arg(&grad.buffer)
            .arg(grad_output)
            .arg(n32)
            .build();
        self.enqueue(kernel, OP)?;
        Ok(Array1::from(self.download(&grad, n)?))
    }
    fn matmul(&self, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.host_matmul(a, b)
    }

    fn matmul_backward(
        &self,
        a: ArrayView2<'_, T>,
        b: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array2<T>)> {
        self.host_matmul_backward(a, b, grad_output)
    }

    fn batched_matmul(&self, a: ArrayView3<'_, T>, b: ArrayView3<'_, T>) -> Result<Array3<T>> {
        self.host_batched_matmul(a, b)
    }

    fn batched_matmul_backward(
        &self,
        a: ArrayView3<'_, T>,
        b: ArrayView3<'_, T>,
        grad_output: ArrayView3<'_, T>,
    ) -> Result<(Array3<T>, Array3<T>)> {
        self.host_batched_matmul_backward(a, b, grad_output)
    }

    fn transpose(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.host_transpose(x)
    }

    fn add_rows_backward(&self, grad_output: ArrayView2<'_, T>) -> Result<(Array2<T>, Array1<T>)> {
        self.host_add_rows_backward(grad_output)
    }

    fn mul_rows(&self, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>> {
        self.host_mul_rows(x, b)
    }

    fn mul_rows_backward(
        &self,
        x: ArrayView2<'_, T>,
        b: ArrayView1<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array1<T>)> {
        self.host_mul_rows_backward(x, b, grad_output)
    }

    fn sum_axis(&self, x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>> {
        self.host_sum_axis(x, axis)
    }

    fn sum_axis_backward(
        &self,
        shape: (usize, usize),
        axis: usize,
        grad_output: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        self.host_sum_axis_backward(shape, axis, grad_output)
    }

    fn mean_axis(&self, x: ArrayView2<'_, T>, axis: usize) -> Result<Array1<T>> {
        self.host_mean_axis(x, axis)
    }

    fn mean_axis_backward(
        &self,
        shape: (usize, usize),
        axis: usize,
        grad_output: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        self.host_mean_axis_backward(shape, axis, grad_output)
    }

    fn relu(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.elementwise("relu", "relu", &[x], &[])
    }

    fn relu_backward(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.elementwise_backward("relu_backward", "relu_backward", x, g, &[])
    }

    fn leaky_relu(&self, x: ArrayView2<'_, T>, slope: T) -> Result<Array2<T>> {
        self.elementwise("leaky_relu", "leaky_relu", &[x], &[slope])
    }

    fn leaky_relu_backward(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        slope: T,
    ) -> Result<Array2<T>> {
        self.elementwise_backward("leaky_relu_backward", "leaky_relu_backward", x, g, &[slope])
    }

    fn sigmoid(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.elementwise("sigmoid", "sigmoid", &[x], &[])
    }

    fn sigmoid_backward(&self, y: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.elementwise_backward("sigmoid_backward", "sigmoid_backward", y, g, &[])
    }

    fn tanh(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.elementwise("tanh", "tanh_forward", &[x], &[])
    }

    fn tanh_backward(&self, y: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.elementwise_backward("tanh_backward", "tanh_backward", y, g, &[])
    }

    fn gelu(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.elementwise("gelu", "gelu", &[x], &[gelu_inv_sqrt2()])
    }

    fn gelu_backward(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.elementwise_backward(
            "gelu_backward",
            "gelu_backward",
            x,
            g,
            &[gelu_inv_sqrt2(), gelu_inv_sqrt_2pi()],
        )
    }
    fn add_rows(&self, x: ArrayView2<'_, T>, b: ArrayView1<'_, T>) -> Result<Array2<T>> {
        self.host_add_rows(x, b)
    }

    fn layer_norm(
        &self,
        x: ArrayView2<'_, T>,
        gamma: ArrayView1<'_, T>,
        beta: ArrayView1<'_, T>,
        eps: f64,
    ) -> Result<Array2<T>> {
        self.host_layer_norm(x, gamma, beta, eps)
    }

    fn layer_norm_backward(
        &self,
        x: ArrayView2<'_, T>,
        gamma: ArrayView1<'_, T>,
        beta: ArrayView1<'_, T>,
        eps: f64,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<LayerNormGrads<T>> {
        self.host_layer_norm_backward(x, gamma, beta, eps, grad_output)
    }

    /// Training on the device: a [`train::DeviceTrainer`] run (parameters, gradients and
    /// optimizer state resident in device buffers; one loss read back per step).
    fn train(
        &self,
        task: &crate::reference::models::TrainingTask<T>,
        config: &crate::reference::models::TrainingConfig,
        steps: usize,
    ) -> Result<crate::reference::models::TrainingRun<T>> {
        train::train(self, task, config, steps)
    }

    // Losses, row-op backwards, embedding, dropout, attention: src/opencl/{losses,layers}.rs.
    fn softmax_rows_backward(
        &self,
        y: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        self.backend_row_backward("softmax_rows_backward", y, grad_output)
    }

    fn log_softmax_rows_backward(
        &self,
        y: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        self.backend_row_backward("log_softmax_rows_backward", y, grad_output)
    }

    fn bce_with_logits(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        reduction: Reduction,
    ) -> Result<T> {
        self.backend_bce_with_logits(logits, labels, reduction)
    }

    fn bce_with_logits_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array1<T>> {
        self.backend_bce_with_logits_backward(logits, labels, reduction, grad_output)
    }

    fn mse(
        &self,
        prediction: ArrayView2<'_, T>,
        target: ArrayView2<'_, T>,
        reduction: Reduction,
    ) -> Result<T> {
        self.backend_mse(prediction, target, reduction)
    }

    fn mse_backward(
        &self,
        prediction: ArrayView2<'_, T>,
        target: ArrayView2<'_, T>,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array2<T>> {
        self.backend_mse_backward(prediction, target, reduction, grad_output)
    }

    fn cross_entropy(
        &self,
        logits: ArrayView2<'_, T>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
    ) -> Result<T> {
        self.backend_cross_entropy(logits, targets, ignore_index, reduction)
    }

    fn cross_entropy_backward(
        &self,
        logits: ArrayView2<'_, T>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array2<T>> {
        self.backend_cross_entropy_backward(logits, targets, ignore_index, reduction, grad_output)
    }

    fn embedding(&self, table: ArrayView2<'_, T>, ids: ArrayView1<'_, usize>) -> Result<Array2<T>> {
        self.backend_embedding(table, ids)
    }

    fn embedding_backward(
        &self,
        vocab: usize,
        ids: ArrayView1<'_, usize>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        self.backend_embedding_backward(vocab, ids, grad_output)
    }

    fn dropout(
        &self,
        x: ArrayView2<'_, T>,
        p: f64,
        key: RandomKey,
    ) -> Result<DropoutOutput<T, Ix2>> {
        self.backend_dropout(x, p, key)
    }

    fn dropout_backward(
        &self,
        grad_output: ArrayView2<'_, T>,
        mask: ArrayView2<'_, bool>,
        scale: T,
    ) -> Result<Array2<T>> {
        self.backend_dropout_backward(grad_output, mask, scale)
    }

    fn attention(
        &self,
        q: ArrayView4<'_, T>,
        k: ArrayView4<'_, T>,
        v: ArrayView4<'_, T>,
        key_mask: ArrayView2<'_, T>,
    ) -> Result<Array4<T>> {
        self.backend_attention(q, k, v, key_mask)
    }

    fn attention_backward(
        &self,
        q: ArrayView4<'_, T>,
        k: ArrayView4<'_, T>,
        v: ArrayView4<'_, T>,
        key_mask: ArrayView2<'_, T>,
        grad_output: ArrayView4<'_, T>,
    ) -> Result<AttentionGrads<T>> {
        self.backend_attention_backward(q, k, v, key_mask, grad_output)
    }

    fn std_corrected(&self, values: ArrayView1<'_, T>, correction: usize) -> Result<T> {
        self.backend_std_corrected(values, correction)
    }

    fn std_corrected_backward(
        &self,
        values: ArrayView1<'_, T>,
        correction: usize,
        grad_output: T,
    ) -> Result<Array1<T>> {
        self.backend_std_corrected_backward(values, correction, grad_output)
    }

    fn sgd_step(
        &self,
        state: &SgdState<T>,
        parameters: ArrayView1<'_, T>,
        gradient: ArrayView1<'_, T>,
        hyper: &SgdHyper,
    ) -> Result<(Array1<T>, SgdState<T>)> {
        self.backend_sgd_step(state, parameters, gradient, hyper)
    }

    fn adam_step(
        &self,
        state: &AdamState<T>,
        parameters: ArrayView1<'_, T>,
        gradient: ArrayView1<'_, T>,
        hyper: &AdamHyper,
    ) -> Result<(Array1<T>, AdamState<T>)> {
        self.backend_adam_step(state, parameters, gradient, hyper)
    }

    fn clip_grad_norm(&self, gradients: &mut [Array1<T>], max_norm: f64) -> Result<T> {
        self.backend_clip_grad_norm(gradients, max_norm)
    }

    fn clip_grad_value(&self, gradients: &mut [Array1<T>], clip_value: f64) -> Result<()> {
        self.backend_clip_grad_value(gradients, clip_value)
    }
}

/// `1/√2` rounded to `T`, as [`crate::reference::gelu`] rounds it.
fn gelu_inv_sqrt2<T: Scalar>() -> T {
    T::narrow(std::f64::consts::FRAC_1_SQRT_2)
}

/// `1/√(2π)` rounded to `T`, as [`crate::reference::gelu_backward`] rounds it.
fn gelu_inv_sqrt_2pi<T: Scalar>() -> T {
    T::narrow(0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handle_is_send_and_sync() {
        assert_send_sync::<OpenCl>();
    }

    #[test]
    fn options_name_the_scalar_type() {
        assert!(build_options::<f32>(64).contains("-D REAL=float -D REAL_IS_DOUBLE=0 -D ROW_WG=64"));
        assert!(build_options::<f64>(64).contains("-D REAL=double -D REAL_IS_DOUBLE=1"));
        assert!(!build_options::<f32>(64).contains("fast-relaxed"));
        assert!(build_options::<f32>(256).contains("-D TILE=16"));
    }

    #[test]
    fn matmul_tile_squares_within_the_row_work_group() {
        assert_eq!(matmul_tile(256), 16);
        assert_eq!(matmul_tile(128), 8);
        assert_eq!(matmul_tile(64), 8);
        assert_eq!(matmul_tile(4), 2);
        assert_eq!(matmul_tile(1), 1);
        assert_eq!(matmul_tile(4096), 16);
    }
}
