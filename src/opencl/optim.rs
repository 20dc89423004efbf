//! Fused optimizer steps, gradient storage, gradient clipping and the corrected standard
//! deviation on the device (kernels in `opencl/optim.cl`).
//!
//! Two layers, as for every op family:
//! - `enqueue_*` methods work on [`DeviceBuffer`]s, write their results in place or into buffers
//!   the caller allocated, and never read back (device-resident training reuses the buffers
//!   across steps; call [`OpenCl::finish`] or read a buffer to wait);
//! - the `backend_*` helpers behind the [`crate::Backend`] methods validate exactly as the
//!   reference does, upload, enqueue and download.
//!
//! Scalars derived from hyperparameters (`1 − β`, bias corrections `1 − β^t`, `1 − lr·wd`, the
//! counts `n` and `n − c`) are computed on the host in f64 exactly as the reference computes
//! them and rounded to `T` once, then passed as kernel arguments.

use ndarray::{Array1, ArrayView1};
use ocl::Buffer;

use super::{contiguous, round_up, to_u32, DeviceBuffer, OpenCl, REDUCTION_GROUPS};
use crate::reference::optim::{
    self as reference_optim, AdamHyper, AdamState, GradientMode, SgdHyper, SgdState,
    CLIP_NORM_OFFSET,
};
use crate::{reference, Error, Result, Scalar};

/// Flag bits of the `sgd_step` and `adam_step` kernels (the `OPTIM_*` defines of optim.cl).
const L2_DECAY: u32 = 1;
const DECOUPLED_DECAY: u32 = 2;
const MOMENTUM: u32 = 4;
const FIRST_STEP: u32 = 8;
const NESTEROV: u32 = 16;
const WRITE_LAST_STEP: u32 = 32;

/// Slots of the std statistics buffer written by the std kernels.
const STD_STATS: usize = 4;

/// `ShapeMismatch` unless every `(name, buffer length)` holds at least `len` elements.
fn check_buffers(op: &'static str, len: usize, buffers: &[(&str, usize)]) -> Result<()> {
    match buffers.iter().find(|(_, have)| *have < len) {
        None => Ok(()),
        Some((name, have)) => Err(Error::ShapeMismatch {
            op,
            detail: format!("{name} buffer holds {have} elements, the op needs {len}"),
        }),
    }
}

/// An f64 hyperparameter (or a scalar derived from one) rounded to `T` once, as the reference
/// rounds it.
fn narrow<T: Scalar>(value: f64) -> T {
    T::narrow(value)
}

impl OpenCl {
    /// Number of work-groups of a pass-1 reduction over `n` elements: one per `row_work_group`
    /// elements, at most [`REDUCTION_GROUPS`], at least 1 (a fixed function of `n`, so the
    /// reduction tree is the same on every run).
    fn reduction_groups(&self, n: usize) -> usize {
        n.div_ceil(self.shared.row_work_group)
            .clamp(1, REDUCTION_GROUPS)
    }

    /// A new read-write device buffer holding `data` (the in-place kernels write their inputs;
    /// [`OpenCl::upload_buffer`] makes read-only buffers). `EmptyInput` for no data.
    pub fn upload_writable<T: Scalar>(&self, data: &[T]) -> Result<DeviceBuffer<T>> {
        let buffer = self.zeros_buffer::<T>(data.len())?;
        buffer
            .buffer
            .write(data)
            .enq()
            .map_err(|e| Error::opencl(format!("writing {} elements", data.len()), e))?;
        Ok(buffer)
    }

    /// A 1-D launch of the elementwise `kernel` over `len` items (one item per element, no
    /// local memory, so the work-group size changes no result), padded to a multiple of the
    /// elementwise work-group: on a CPU device the row work-group is 1, and one-item groups
    /// left PoCL unable to vectorise the fused Adam step (26% of copy bandwidth at 16M).
    fn launch_1d<'b>(
        &self,
        program: &'b ocl::Program,
        name: &'static str,
        len: usize,
    ) -> ocl::builders::KernelBuilder<'b> {
        let wg = self.shared.elementwise_work_group;
        let mut builder = self.kernel(program, name);
        builder
            .global_work_size(round_up(len, wg))
            .local_work_size(wg);
        builder
    }

    /// One fused SGD step (PyTorch `torch.optim.SGD`, [`reference::optim::sgd_step`]) on the
    /// first `len` elements of `parameters`, in place, one pass:
    /// ```text
    /// d = g (+ wd·θ);  buf = d (first_step) or μ·buf + (1 − dampening)·d   (if μ ≠ 0)
    /// d = buf, or d + μ·buf (Nesterov);  θ ← θ − lr·d
    /// ```
    /// `momentum_buffer` is required when `hyper.momentum ≠ 0` (PyTorch's `momentum_buffer`,
    /// updated in place; its contents are ignored and overwritten when `first_step`) and
    /// ignored otherwise. Does not wait. Errors: `InvalidParameter` from
    /// [`SgdHyper::validate`] or for a missing momentum buffer, `ShapeMismatch` for a buffer
    /// shorter than `len`, `TooLarge` past `u32`.
    pub fn enqueue_sgd_step<T: Scalar>(
        &self,
        parameters: &DeviceBuffer<T>,
        gradient: &DeviceBuffer<T>,
        momentum_buffer: Option<&DeviceBuffer<T>>,
        hyper: &SgdHyper,
        first_step: bool,
        len: usize,
    ) -> Result<()> {
        self.enqueue_sgd_step_recording(
            parameters,
            gradient,
            momentum_buffer,
            hyper,
            first_step,
            None,
            len,
        )
    }

    /// [`OpenCl::enqueue_sgd_step`], also writing each coordinate's update `s = lr·d` into
    /// `last_step` when given (the reference's `SgdState::last_step`).
    #[allow(
        clippy::too_many_arguments,
        reason = "the step's buffers, hyperparameters and size"
    )]
    pub(crate) fn enqueue_sgd_step_recording<T: Scalar>(
        &self,
        parameters: &DeviceBuffer<T>,
        gradient: &DeviceBuffer<T>,
        momentum_buffer: Option<&DeviceBuffer<T>>,
        hyper: &SgdHyper,
        first_step: bool,
        last_step: Option<&DeviceBuffer<T>>,
        len: usize,
    ) -> Result<()> {
        const OP: &str = "sgd_step";
        hyper.validate()?;
        let uses_momentum = hyper.momentum != 0.0;
        let momentum_buffer = if uses_momentum {
            Some(momentum_buffer.ok_or_else(|| Error::InvalidParameter {
                op: OP,
                name: "momentum_buffer",
                value: "None".to_string(),
                reason: format!(
                    "momentum = {:e} needs a momentum buffer on the device",
                    hyper.momentum
                ),
            })?)
        } else {
            None
        };
        let mut lengths = vec![("parameters", parameters.len), ("gradient", gradient.len)];
        if let Some(buffer) = momentum_buffer {
            lengths.push(("momentum", buffer.len));
        }
        if let Some(buffer) = last_step {
            lengths.push(("last_step", buffer.len));
        }
        check_buffers(OP, len, &lengths)?;
        let n32 = to_u32(OP, len)?;
        if len == 0 {
            return Ok(());
        }
        let mut flags = 0;
        if hyper.weight_decay != 0.0 {
            flags |= L2_DECAY;
        }
        if uses_momentum {
            flags |= MOMENTUM;
            if first_step {
                flags |= FIRST_STEP;
            }
            if hyper.nesterov {
                flags |= NESTEROV;
            }
        }
        if last_step.is_some() {
            flags |= WRITE_LAST_STEP;
        }
        let program = self.program::<T>(OP)?;
        // An unused buffer argument gets `parameters` as a placeholder (never accessed with its
        // flag off; the kernel's parameters are not `restrict`): PoCL 3.1 rejects NULL buffer
        // arguments at enqueue (CL_INVALID_KERNEL_ARGS).
        let kernel = self
            .launch_1d(&program, OP, len)
            .arg(&parameters.buffer)
            .arg(&gradient.buffer)
            .arg(momentum_buffer.map_or(&parameters.buffer, |b| &b.buffer))
            .arg(last_step.map_or(&parameters.buffer, |b| &b.buffer))
            .arg(narrow::<T>(hyper.learning_rate))
            .arg(narrow::<T>(hyper.momentum))
            .arg(narrow::<T>(1.0 - hyper.dampening))
            .arg(narrow::<T>(hyper.weight_decay))
            .arg(flags)
            .arg(n32)
            .build();
        self.enqueue(kernel, OP)
    }

    /// One fused Adam or AdamW step ([`reference::optim::adam_step`]) on the first `len`
    /// elements, in place, one pass over parameters, gradient and both moments:
    /// ```text
    /// θ ← θ·(1 − lr·wd) (AdamW)  or  g ← g + wd·θ (Adam, wd ≠ 0)
    /// m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·(g·g)
    /// θ ← θ − lr·((m/(1 − β1^t)) / (sqrt(v/(1 − β2^t)) + eps))
    /// ```
    /// `step` is `t`, the state's step count **after** this update (the reference's
    /// `state.step + 1`, so the first step is 1); the bias corrections are computed on the host
    /// from it exactly as the reference does. Does not wait. Errors: `InvalidParameter` from
    /// [`AdamHyper::validate`] or for `step = 0`, `ShapeMismatch` for a short buffer,
    /// `TooLarge` past `u32`.
    #[allow(
        clippy::too_many_arguments,
        reason = "the step's buffers, hyperparameters and size"
    )]
    pub fn enqueue_adam_step<T: Scalar>(
        &self,
        parameters: &DeviceBuffer<T>,
        gradient: &DeviceBuffer<T>,
        first_moment: &DeviceBuffer<T>,
        second_moment: &DeviceBuffer<T>,
        hyper: &AdamHyper,
        step: u64,
        len: usize,
    ) -> Result<()> {
        self.enqueue_adam_step_recording(
            parameters,
            gradient,
            first_moment,
            second_moment,
            hyper,
            step,
            None,
            len,
        )
    }

    /// [`OpenCl::enqueue_adam_step`], also writing each coordinate's update `s_t` into
    /// `last_step` when given (the reference's `AdamState::last_step`).
    #[allow(
        clippy::too_many_arguments,
        reason = "the step's buffers, hyperparameters and size"
    )]
    pub(crate) fn enqueue_adam_step_recording<T: Scalar>(
        &self,
        parameters: &DeviceBuffer<T>,
        gradient: &DeviceBuffer<T>,
        first_moment: &DeviceBuffer<T>,
        second_moment: &DeviceBuffer<T>,
        hyper: &AdamHyper,
        step: u64,
        last_step: Option<&DeviceBuffer<T>>,
        len: usize,
    ) -> Result<()> {
        const OP: &str = "adam_step";
        hyper.validate()?;
        if step == 0 {
            return Err(Error::InvalidParameter {
                op: OP,
                name: "step",
                value: "0".to_string(),
                reason: "the step count after an update is ≥ 1".to_string(),
            });
        }
        let mut lengths = vec![
            ("parameters", parameters.len),
            ("gradient", gradient.len),
            ("first moment", first_moment.len),
            ("second moment", second_moment.len),
        ];
        if let Some(buffer) = last_step {
            lengths.push(("last_step", buffer.len));
        }
        check_buffers(OP, len, &lengths)?;
        let n32 = to_u32(OP, len)?;
        if len == 0 {
            return Ok(());
        }
        let mut flags = 0;
        if hyper.weight_decay != 0.0 {
            flags |= if hyper.decoupled {
                DECOUPLED_DECAY
            } else {
                L2_DECAY
            };
        }
        if last_step.is_some() {
            flags |= WRITE_LAST_STEP;
        }
        let (correction1, correction2) = reference_optim::adam_bias_corrections(hyper, step);
        let program = self.program::<T>(OP)?;
        let kernel = self
            .launch_1d(&program, OP, len)
            .arg(&parameters.buffer)
            .arg(&gradient.buffer)
            .arg(&first_moment.buffer)
            .arg(&second_moment.buffer)
            .arg(last_step.map_or(&parameters.buffer, |b| &b.buffer))
            .arg(narrow::<T>(hyper.beta1))
            .arg(narrow::<T>(1.0 - hyper.beta1))
            .arg(narrow::<T>(hyper.beta2))
            .arg(narrow::<T>(1.0 - hyper.beta2))
            .arg(narrow::<T>(correction1))
            .arg(narrow::<T>(correction2))
            .arg(narrow::<T>(hyper.learning_rate))
            .arg(narrow::<T>(hyper.eps))
            .arg(narrow::<T>(hyper.weight_decay))
            .arg(narrow::<T>(1.0 - hyper.learning_rate * hyper.weight_decay))
            .arg(flags)
            .arg(n32)
            .build();
        self.enqueue(kernel, OP)
    }

    /// Store a fresh gradient ([`reference::optim::store_gradients`], PyTorch's `.grad`):
    /// `stored ← fresh` ([`GradientMode::ZeroEachStep`]) or `stored ← stored + fresh`
    /// ([`GradientMode::Accumulate`]) on the first `len` elements. Exact (one correctly
    /// rounded add): bitwise equal to the reference. Does not wait. Errors: `ShapeMismatch`,
    /// `TooLarge`.
    pub fn enqueue_store_gradients<T: Scalar>(
        &self,
        stored: &DeviceBuffer<T>,
        fresh: &DeviceBuffer<T>,
        mode: GradientMode,
        len: usize,
    ) -> Result<()> {
        const OP: &str = "store_gradients";
        check_buffers(OP, len, &[("stored", stored.len), ("fresh", fresh.len)])?;
        let n32 = to_u32(OP, len)?;
        if len == 0 {
            return Ok(());
        }
        let accumulate = u32::from(mode == GradientMode::Accumulate);
        let program = self.program::<T>(OP)?;
        let kernel = self
            .launch_1d(&program, OP, len)
            .arg(&stored.buffer)
            .arg(&fresh.buffer)
            .arg(accumulate)
            .arg(n32)
            .build();
        self.enqueue(kernel, OP)
    }

    /// Global-norm clipping ([`reference::optim::clip_grad_norm`], PyTorch `clip_grad_norm_`)
    /// of every tensor in `gradients`, in place, without reading back:
    /// 1. per tensor, in list order, `g` work-groups (a fixed function of its length) write
    ///    partial sums of squares (sequential per work item, then a fixed tree) into one
    ///    partials buffer;
    /// 2. one work-group sums all partials in a fixed tree, `N = sqrt(Σ)`, and computes
    ///    `coef = min(M/(N + 1e-6), 1)` on the device (`M` and `1e-6` rounded to `T`);
    ///    `norm_out[0] = N` (the pre-clip norm);
    /// 3. every tensor is multiplied by the device-resident `coef` (by exactly 1.0 when
    ///    clipping is inactive).
    ///
    /// The same inputs give the same bits on every run (no atomics). The sum order differs from
    /// the reference's sequential sum: bound [`crate::tolerance::clip_grad_norm_bounds`].
    /// Errors: `InvalidParameter` for a negative or non-finite `max_norm`; `ShapeMismatch` for
    /// an empty `norm_out`; `TooLarge`.
    pub fn enqueue_clip_grad_norm<T: Scalar>(
        &self,
        gradients: &[&DeviceBuffer<T>],
        max_norm: f64,
        norm_out: &DeviceBuffer<T>,
    ) -> Result<()> {
        const OP: &str = "clip_grad_norm";
        reference_optim::validate_clip_grad_norm(max_norm)?;
        check_buffers(OP, 1, &[("norm_out", norm_out.len)])?;
        let program = self.program::<T>(OP)?;
        let wg = self.shared.row_work_group;
        let groups: Vec<usize> = gradients
            .iter()
            .map(|g| self.reduction_groups(g.len))
            .collect();
        let total_groups: usize = groups.iter().sum();
        let count32 = to_u32(OP, total_groups)?;
        let partial = self.allocate::<T>(total_groups.max(1))?;
        let coefficient = self.allocate::<T>(1)?;
        let mut offset = 0usize;
        for (tensor, &group_count) in gradients.iter().zip(&groups) {
            let kernel = self
                .kernel(&program, "sum_squares_partials")
                .global_work_size(group_count * wg)
                .local_work_size(wg)
                .arg(&tensor.buffer)
                .arg(&partial.buffer)
                .arg(to_u32(OP, offset)?)
                .arg(to_u32(OP, tensor.len)?)
                .build();
            self.enqueue(kernel, "sum_squares_partials")?;
            offset += group_count;
        }
        let kernel = self
            .kernel(&program, "clip_norm_coefficient")
            .global_work_size(wg)
            .local_work_size(wg)
            .arg(&partial.buffer)
            .arg(&norm_out.buffer)
            .arg(&coefficient.buffer)
            .arg(narrow::<T>(max_norm))
            .arg(narrow::<T>(CLIP_NORM_OFFSET))
            .arg(count32)
            .build();
        self.enqueue(kernel, "clip_norm_coefficient")?;
        for tensor in gradients {
            self.scale_by_device_scalar(&program, tensor, &coefficient)?;
        }
        Ok(())
    }

    /// `x ← x·coefficient[0]` over all of `x`.
    fn scale_by_device_scalar<T: Scalar>(
        &self,
        program: &ocl::Program,
        x: &DeviceBuffer<T>,
        coefficient: &Buffer<T>,
    ) -> Result<()> {
        const NAME: &str = "scale_by_device_scalar";
        let kernel = self
            .launch_1d(program, NAME, x.len)
            .arg(&x.buffer)
            .arg(coefficient)
            .arg(to_u32(NAME, x.len)?)
            .build();
        self.enqueue(kernel, NAME)
    }

    /// Elementwise clipping ([`reference::optim::clip_grad_value`], PyTorch
    /// `clip_grad_value_`) of every tensor, in place: `g ← min(max(g, −c), c)` by comparisons,
    /// NaN stays NaN. Exact: bitwise equal to the reference. Does not wait.
    /// Errors: `InvalidParameter` for a negative or non-finite `clip_value`; `TooLarge`.
    pub fn enqueue_clip_grad_value<T: Scalar>(
        &self,
        gradients: &[&DeviceBuffer<T>],
        clip_value: f64,
    ) -> Result<()> {
        const OP: &str = "clip_grad_value";
        const KERNEL: &str = "clip_by_value";
        reference_optim::validate_clip_grad_value(clip_value)?;
        if gradients.is_empty() {
            return Ok(());
        }
        let program = self.program::<T>(OP)?;
        let limit = narrow::<T>(clip_value);
        for tensor in gradients {
            let kernel = self
                .launch_1d(&program, KERNEL, tensor.len)
                .arg(&tensor.buffer)
                .arg(limit)
                .arg(to_u32(OP, tensor.len)?)
                .build();
            self.enqueue(kernel, KERNEL)?;
        }
        Ok(())
    }

    /// Enqueue the four std passes over the first `len` values; returns the statistics buffer
    /// `[mean, Σd², std, not-constant flag]` and writes `std` to `out[0]` when given.
    fn enqueue_std_passes<T: Scalar>(
        &self,
        op: &'static str,
        values: &DeviceBuffer<T>,
        correction: usize,
        out: Option<&DeviceBuffer<T>>,
        len: usize,
    ) -> Result<super::Counted<T>> {
        reference::validate_std_correction(op, len, correction)?;
        check_buffers(op, len, &[("values", values.len)])?;
        if let Some(out) = out {
            check_buffers(op, 1, &[("output", out.len)])?;
        }
        let n32 = to_u32(op, len)?;
        let program = self.program::<T>(op)?;
        let wg = self.shared.row_work_group;
        let groups = self.reduction_groups(len);
        let groups32 = to_u32(op, groups)?;
        let partial = self.allocate::<T>(groups)?;
        let differs = self.allocate::<T>(groups)?;
        let stats = self.allocate::<T>(STD_STATS)?;
        // The std is written to `out`, or to a scratch element when only the stats are needed.
        let scratch_out;
        let out_buffer = match out {
            Some(out) => &out.buffer,
            None => {
                scratch_out = self.allocate::<T>(1)?;
                &scratch_out.buffer
            }
        };
        let sums = self
            .kernel(&program, "std_partial_sums")
            .global_work_size(groups * wg)
            .local_work_size(wg)
            .arg(&values.buffer)
            .arg(&partial.buffer)
            .arg(&differs.buffer)
            .arg(n32)
            .build();
        self.enqueue(sums, "std_partial_sums")?;
        let mean = self
            .kernel(&program, "std_mean")
            .global_work_size(wg)
            .local_work_size(wg)
            .arg(&partial.buffer)
            .arg(&differs.buffer)
            .arg(&stats.buffer)
            .arg(count::<T>(len))
            .arg(groups32)
            .build();
        self.enqueue(mean, "std_mean")?;
        let squares = self
            .kernel(&program, "std_partial_squares")
            .global_work_size(groups * wg)
            .local_work_size(wg)
            .arg(&values.buffer)
            .arg(&stats.buffer)
            .arg(&partial.buffer)
            .arg(n32)
            .build();
        self.enqueue(squares, "std_partial_squares")?;
        let finish = self
            .kernel(&program, "std_finish")
            .global_work_size(wg)
            .local_work_size(wg)
            .arg(&partial.buffer)
            .arg(&stats.buffer)
            .arg(out_buffer)
            .arg(count::<T>(len - correction))
            .arg(groups32)
            .build();
        self.enqueue(finish, "std_finish")?;
        Ok(stats)
    }

    /// Corrected standard deviation ([`reference::std_corrected`], `torch.std(p, correction=c)`)
    /// of the first `len` values into `output[0]`, on the device in four passes: fixed-tree
    /// partial sums and a "not all equal" flag, the mean, fixed-tree partial sums of
    /// `(p − mean)²`, then `sqrt(Σ/(n − c))` (exactly 0 when all values are equal, as the
    /// reference). Does not wait. Bound: [`crate::tolerance::std_corrected`].
    /// Errors: `InvalidParameter` unless `len > correction`; `ShapeMismatch`; `TooLarge`.
    pub fn enqueue_std_corrected<T: Scalar>(
        &self,
        values: &DeviceBuffer<T>,
        correction: usize,
        output: &DeviceBuffer<T>,
        len: usize,
    ) -> Result<()> {
        self.enqueue_std_passes("std_corrected", values, correction, Some(output), len)
            .map(drop)
    }

    /// VJP of [`OpenCl::enqueue_std_corrected`] ([`reference::std_corrected_backward`]):
    /// `grad[i] = (g·d_i)/((n − c)·s)` with `d_i = p_i − mean` and `s` from the same device
    /// passes as the forward; exactly 0 when all values are equal. Writes the first `len`
    /// elements of `grad`. Does not wait. Bound: [`crate::tolerance::std_corrected_backward`].
    /// Errors: as [`OpenCl::enqueue_std_corrected`].
    pub fn enqueue_std_corrected_backward<T: Scalar>(
        &self,
        values: &DeviceBuffer<T>,
        correction: usize,
        grad_output: T,
        grad: &DeviceBuffer<T>,
        len: usize,
    ) -> Result<()> {
        const OP: &str = "std_corrected_backward";
        check_buffers(OP, len, &[("grad", grad.len)])?;
        let stats = self.enqueue_std_passes(OP, values, correction, None, len)?;
        let program = self.program::<T>(OP)?;
        let kernel = self
            .launch_1d(&program, "std_backward", len)
            .arg(&values.buffer)
            .arg(&stats.buffer)
            .arg(&grad.buffer)
            .arg(grad_output)
            .arg(count::<T>(len - correction))
            .arg(to_u32(OP, len)?)
            .build();
        self.enqueue(kernel, "std_backward")
    }

    // -----------------------------------------------------------------------------------------
    // Backend methods: validate as the reference, upload, enqueue, download.
    // -----------------------------------------------------------------------------------------

    pub(super) fn backend_sgd_step<T: Scalar>(
        &self,
        state: &SgdState<T>,
        parameters: ArrayView1<'_, T>,
        gradient: ArrayView1<'_, T>,
        hyper: &SgdHyper,
    ) -> Result<(Array1<T>, SgdState<T>)> {
        reference_optim::validate_sgd_step(
            hyper,
            parameters.len(),
            gradient.len(),
            state.momentum_buffer.as_ref().map(Array1::len),
        )?;
        let n = parameters.len();
        if n == 0 {
            // Nothing to compute: the reference's result is empty arrays (with an empty
            // momentum buffer when momentum is on).
            return reference_optim::sgd_step(state, parameters, gradient, hyper);
        }
        let theta = self.upload_writable(&contiguous(&parameters))?;
        let grad = self.upload_buffer(&contiguous(&gradient))?;
        let uses_momentum = hyper.momentum != 0.0;
        let momentum = match (&state.momentum_buffer, uses_momentum) {
            (Some(buffer), true) => Some(self.upload_writable(&contiguous(&buffer.view()))?),
            (None, true) => Some(self.zeros_buffer::<T>(n)?),
            (_, false) => None,
        };
        let last_step = self.zeros_buffer::<T>(n)?;
        self.enqueue_sgd_step_recording(
            &theta,
            &grad,
            momentum.as_ref(),
            hyper,
            state.momentum_buffer.is_none(),
            Some(&last_step),
            n,
        )?;
        let new_parameters = Array1::from(self.read_buffer(&theta)?);
        let momentum_buffer = match &momentum {
            Some(buffer) => Some(Array1::from(self.read_buffer(buffer)?)),
            None => None,
        };
        Ok((
            new_parameters,
            SgdState {
                momentum_buffer,
                last_step: Array1::from(self.read_buffer(&last_step)?),
            },
        ))
    }

    pub(super) fn backend_adam_step<T: Scalar>(
        &self,
        state: &AdamState<T>,
        parameters: ArrayView1<'_, T>,
        gradient: ArrayView1<'_, T>,
        hyper: &AdamHyper,
    ) -> Result<(Array1<T>, AdamState<T>)> {
        reference_optim::validate_adam_step(
            hyper,
            parameters.len(),
            gradient.len(),
            state.first_moment.len(),
            state.second_moment.len(),
        )?;
        let n = parameters.len();
        let step = state.step.saturating_add(1);
        if n == 0 {
            let mut next = AdamState::zeros(0);
            next.step = step;
            return Ok((Array1::zeros(0), next));
        }
        let theta = self.upload_writable(&contiguous(&parameters))?;
        let grad = self.upload_buffer(&contiguous(&gradient))?;
        let m = self.upload_writable(&contiguous(&state.first_moment.view()))?;
        let v = self.upload_writable(&contiguous(&state.second_moment.view()))?;
        let last_step = self.zeros_buffer::<T>(n)?;
        self.enqueue_adam_step_recording(&theta, &grad, &m, &v, hyper, step, Some(&last_step), n)?;
        let new_parameters = Array1::from(self.read_buffer(&theta)?);
        Ok((
            new_parameters,
            AdamState {
                step,
                first_moment: Array1::from(self.read_buffer(&m)?),
                second_moment: Array1::from(self.read_buffer(&v)?),
                last_step: Array1::from(self.read_buffer(&last_step)?),
            },
        ))
    }

    pub(super) fn backend_clip_grad_norm<T: Scalar>(
        &self,
        gradients: &mut [Array1<T>],
        max_norm: f64,
    ) -> Result<T> {
        reference_optim::validate_clip_grad_norm(max_norm)?;
        // Empty tensors contribute nothing and have nothing to scale.
        let buffers = gradients
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| self.upload_writable(&contiguous(&g.view())))
            .collect::<Result<Vec<_>>>()?;
        let norm = self.zeros_buffer::<T>(1)?;
        let refs: Vec<&DeviceBuffer<T>> = buffers.iter().collect();
        self.enqueue_clip_grad_norm(&refs, max_norm, &norm)?;
        for (tensor, buffer) in gradients.iter_mut().filter(|g| !g.is_empty()).zip(&buffers) {
            *tensor = Array1::from(self.read_buffer(buffer)?);
        }
        self.read_buffer(&norm)?
            .first()
            .copied()
            .ok_or_else(|| Error::opencl("clip_grad_norm", "empty read-back"))
    }

    pub(super) fn backend_clip_grad_value<T: Scalar>(
        &self,
        gradients: &mut [Array1<T>],
        clip_value: f64,
    ) -> Result<()> {
        reference_optim::validate_clip_grad_value(clip_value)?;
        let buffers = gradients
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| self.upload_writable(&contiguous(&g.view())))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&DeviceBuffer<T>> = buffers.iter().collect();
        self.enqueue_clip_grad_value(&refs, clip_value)?;
        for (tensor, buffer) in gradients.iter_mut().filter(|g| !g.is_empty()).zip(&buffers) {
            *tensor = Array1::from(self.read_buffer(buffer)?);
        }
        Ok(())
    }

    pub(super) fn backend_std_corrected<T: Scalar>(
        &self,
        values: ArrayView1<'_, T>,
        correction: usize,
    ) -> Result<T> {
        const OP: &str = "std_corrected";
        reference::validate_std_correction(OP, values.len(), correction)?;
        let input = self.upload_buffer(&contiguous(&values))?;
        let output = self.zeros_buffer::<T>(1)?;
        self.enqueue_std_corrected(&input, correction, &output, values.len())?;
        self.read_buffer(&output)?
            .first()
            .copied()
            .ok_or_else(|| Error::opencl(OP, "empty read-back"))
    }

    pub(super) fn backend_std_corrected_backward<T: Scalar>(
        &self,
        values: ArrayView1<'_, T>,
        correction: usize,
        grad_output: T,
    ) -> Result<Array1<T>> {
        const OP: &str = "std_corrected_backward";
        reference::validate_std_correction(OP, values.len(), correction)?;
        let n = values.len();
        let input = self.upload_buffer(&contiguous(&values))?;
        let grad = self.zeros_buffer::<T>(n)?;
        self.enqueue_std_corrected_backward(&input, correction, grad_output, &grad, n)?;
        Ok(Array1::from(self.read_buffer(&grad)?))
    }
}

/// `n` as `T`, as the reference's `count` rounds it (`T::from(n)`).
#[allow(
    clippy::cast_precision_loss,
    reason = "rounded once, as the reference rounds it"
)]
fn count<T: Scalar>(n: usize) -> T {
    T::narrow(n as f64)
}
