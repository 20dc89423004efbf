//! Losses on the device: BCE from logits, MSE and cross-entropy with a reduction, and their
//! gradients (kernels in `opencl/loss.cl`), plus [`DeviceIndices`] for class targets and token
//! ids.
//!
//! Layering: each `enqueue_*` works on device buffers the caller allocated (so training code
//! reuses them across steps), validates buffer lengths against the dims, and never reads back;
//! the `Backend` methods validate as the reference does, upload, enqueue and download.

use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use ocl::{flags, Buffer, OclPrm};

use super::{contiguous, round_up, to_u32, DeviceBuffer, OpenCl, REDUCTION_GROUPS};
use crate::reference::Reduction;
use crate::{reference, validate, Error, Result, Scalar};

/// A device buffer of 64-bit indices (class targets with an `ignore_index`, token ids), made by
/// [`OpenCl::upload_indices`].
///
/// It keeps the host copy it was uploaded from, so every `enqueue_*` that takes indices checks
/// them on the host (class range, vocabulary range) with the reference's errors, without a
/// read-back. Kernels also guard against out-of-range values (they write NaN, never read out of
/// bounds).
#[derive(Clone)]
pub struct DeviceIndices {
    pub(super) buffer: Buffer<i64>,
    pub(super) host: Arc<[i64]>,
    /// Shared by the clones (which share the device buffer): released with the last one.
    _lease: Arc<super::Lease>,
}

impl std::fmt::Debug for DeviceIndices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIndices")
            .field("len", &self.host.len())
            .finish()
    }
}

impl DeviceIndices {
    /// Number of indices.
    pub fn len(&self) -> usize {
        self.host.len()
    }

    /// Always false: empty index buffers are not created.
    pub fn is_empty(&self) -> bool {
        self.host.is_empty()
    }

    /// The indices as uploaded.
    pub fn as_slice(&self) -> &[i64] {
        &self.host
    }
}

/// The kernels' `mean` flag: 1 for [`Reduction::Mean`], 0 for [`Reduction::Sum`].
pub(super) fn mean_flag(reduction: Reduction) -> u32 {
    u32::from(reduction == Reduction::Mean)
}

/// `ShapeMismatch` unless a buffer named `name` holds at least `needed` elements.
pub(super) fn check_buffer(op: &'static str, name: &str, have: usize, needed: usize) -> Result<()> {
    if have < needed {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!("{name} holds {have} elements, the dims need {needed}"),
        });
    }
    Ok(())
}

/// `EmptyInput` for a zero dim that a kernel cannot launch on.
pub(super) fn check_nonzero(op: &'static str, what: &str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(Error::EmptyInput {
            op,
            detail: format!("{what} = 0: nothing to enqueue (handle empty inputs on the host)"),
        });
    }
    Ok(())
}

impl OpenCl {
    /// A device buffer of any OpenCL primitive (indices, masks), filled from `data` or left
    /// unwritten (`data = None`), with the allocation-size check of the scalar buffers.
    pub(super) fn raw_buffer<P: OclPrm>(
        &self,
        len: usize,
        data: Option<&[P]>,
    ) -> Result<super::Counted<P>> {
        let bytes = (len as u128) * (std::mem::size_of::<P>() as u128);
        let limit = u128::from(self.shared.device.max_allocation_bytes);
        if limit > 0 && bytes > limit {
            return Err(Error::TooLarge {
                op: "device allocation",
                what: "bytes",
                value: bytes,
                limit,
            });
        }
        let builder = Buffer::<P>::builder()
            .queue(self.shared.device.queue.clone())
            .flags(flags::MEM_READ_WRITE)
            .len(len);
        let builder = match data {
            Some(data) => builder.copy_host_slice(data),
            None => builder,
        };
        let buffer = builder
            .build()
            .map_err(|e| Error::opencl(format!("allocating {len} device elements"), e))?;
        Ok(super::Counted {
            buffer,
            lease: self.lease::<P>(len),
        })
    }

    /// Read back a buffer of any OpenCL primitive (blocking).
    pub(super) fn raw_download<P: OclPrm>(&self, buffer: &Buffer<P>, len: usize) -> Result<Vec<P>> {
        let mut host = vec![P::default(); len];
        buffer
            .read(&mut host)
            .enq()
            .map_err(|e| Error::opencl("reading back a result", e))?;
        Ok(host)
    }

    /// Copy 64-bit indices (class targets, token ids) to the device. `EmptyInput` for no
    /// indices (device buffers are never empty).
    pub fn upload_indices(&self, indices: &[i64]) -> Result<DeviceIndices> {
        if indices.is_empty() {
            return Err(Error::EmptyInput {
                op: "upload_indices",
                detail: "a device buffer needs ≥ 1 element".into(),
            });
        }
        let super::Counted { buffer, lease } = self.raw_buffer(indices.len(), Some(indices))?;
        Ok(DeviceIndices {
            buffer,
            host: Arc::from(indices),
            _lease: Arc::new(lease),
        })
    }

    /// Two-pass fixed-tree reduction of a per-element loss into `out[0]`: pass 1 `kernel`
    /// (`bce_with_logits_partial_sums` or `mse_partial_sums`: `(a, b, partial, n)`) over
    /// [`REDUCTION_GROUPS`] work-groups at most, pass 2 `sum_partials_reduce`.
    #[allow(clippy::too_many_arguments, reason = "a launcher of two kernels")]
    fn reduced_loss<T: Scalar>(
        &self,
        op: &'static str,
        kernel: &'static str,
        a: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        n: usize,
        reduction: Reduction,
    ) -> Result<()> {
        check_buffer(op, "first operand", a.len, n)?;
        check_buffer(op, "second operand", b.len, n)?;
        check_buffer(op, "out", out.len, 1)?;
        let program = self.program::<T>(op)?;
        let n32 = to_u32(op, n)?;
        let wg = self.shared.row_work_group;
        let groups = n.div_ceil(wg).clamp(1, REDUCTION_GROUPS);
        let partial = self.allocate::<T>(groups)?;
        let pass1 = self
            .kernel(&program, kernel)
            .global_work_size(groups * wg)
            .local_work_size(wg)
            .arg(&a.buffer)
            .arg(&b.buffer)
            .arg(&partial.buffer)
            .arg(n32)
            .build();
        self.enqueue(pass1, kernel)?;
        let pass2 = self
            .kernel(&program, "sum_partials_reduce")
            .global_work_size(wg)
            .local_work_size(wg)
            .arg(&partial.buffer)
            .arg(&out.buffer)
            .arg(to_u32(op, groups)?)
            .arg(n32)
            .arg(mean_flag(reduction))
            .build();
        self.enqueue(pass2, "sum_partials_reduce")
    }

    /// One work-item per element: `kernel(a, b, grad, grad_output, n, mean)`.
    #[allow(clippy::too_many_arguments, reason = "the kernel's argument list")]
    fn loss_gradient<T: Scalar>(
        &self,
        op: &'static str,
        kernel: &'static str,
        a: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        grad: &DeviceBuffer<T>,
        grad_output: T,
        n: usize,
        reduction: Reduction,
    ) -> Result<()> {
        check_buffer(op, "first operand", a.len, n)?;
        check_buffer(op, "second operand", b.len, n)?;
        check_buffer(op, "grad", grad.len, n)?;
        check_nonzero(op, "length", n)?;
        let program = self.program::<T>(op)?;
        let wg = self.shared.row_work_group;
        let launch = self
            .kernel(&program, kernel)
            .global_work_size(round_up(n, wg))
            .local_work_size(wg)
            .arg(&a.buffer)
            .arg(&b.buffer)
            .arg(&grad.buffer)
            .arg(grad_output)
            .arg(to_u32(op, n)?)
            .arg(mean_flag(reduction))
            .build();
        self.enqueue(launch, kernel)
    }

    /// BCE from logits over `n` elements into `out[0]` ([`reference::bce_with_logits`]):
    /// per-element terms summed by a fixed two-pass tree, then `/ n` for `Mean` (`n = 0` with
    /// `Mean` gives NaN; the `Backend` method rejects it first). No read-back.
    pub fn enqueue_bce_with_logits<T: Scalar>(
        &self,
        logits: &DeviceBuffer<T>,
        labels: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        n: usize,
        reduction: Reduction,
    ) -> Result<()> {
        self.reduced_loss(
            "bce_with_logits",
            "bce_with_logits_partial_sums",
            logits,
            labels,
            out,
            n,
            reduction,
        )
    }

    /// Gradient of [`OpenCl::enqueue_bce_with_logits`] into `grad` (`n` elements):
    /// `((σ(z) − y)·g)/n` (`Mean`) or `(σ(z) − y)·g` (`Sum`). `n ≥ 1`.
    pub fn enqueue_bce_with_logits_backward<T: Scalar>(
        &self,
        logits: &DeviceBuffer<T>,
        labels: &DeviceBuffer<T>,
        grad: &DeviceBuffer<T>,
        grad_output: T,
        n: usize,
        reduction: Reduction,
    ) -> Result<()> {
        self.loss_gradient(
            "bce_with_logits_backward",
            "bce_with_logits_backward",
            logits,
            labels,
            grad,
            grad_output,
            n,
            reduction,
        )
    }

    /// Mean squared error over `len` elements into `out[0]` ([`reference::mse`]), fixed
    /// two-pass tree. No read-back.
    pub fn enqueue_mse<T: Scalar>(
        &self,
        prediction: &DeviceBuffer<T>,
        target: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        len: usize,
        reduction: Reduction,
    ) -> Result<()> {
        self.reduced_loss(
            "mse",
            "mse_partial_sums",
            prediction,
            target,
            out,
            len,
            reduction,
        )
    }

    /// Gradient of [`OpenCl::enqueue_mse`] into `grad`: `((2(p − t))·g)/len` (`Mean`) or
    /// `(2(p − t))·g` (`Sum`). `len ≥ 1`.
    pub fn enqueue_mse_backward<T: Scalar>(
        &self,
        prediction: &DeviceBuffer<T>,
        target: &DeviceBuffer<T>,
        grad: &DeviceBuffer<T>,
        grad_output: T,
        len: usize,
        reduction: Reduction,
    ) -> Result<()> {
        self.loss_gradient(
            "mse_backward",
            "mse_backward",
            prediction,
            target,
            grad,
            grad_output,
            len,
            reduction,
        )
    }

    /// Shared checks of the cross-entropy enqueues: buffer lengths, targets (on the host copy,
    /// with the reference's errors), non-empty dims.
    #[allow(clippy::too_many_arguments, reason = "the op's dims")]
    fn cross_entropy_buffers<T: Scalar>(
        &self,
        op: &'static str,
        logits: &DeviceBuffer<T>,
        targets: &DeviceIndices,
        result: &DeviceBuffer<T>,
        result_len: usize,
        rows: usize,
        cols: usize,
        ignore_index: i64,
    ) -> Result<(u32, u32)> {
        check_nonzero(op, "rows", rows)?;
        check_nonzero(op, "classes", cols)?;
        check_buffer(op, "logits", logits.len, rows.saturating_mul(cols))?;
        check_buffer(op, "output", result.len, result_len)?;
        validate::class_targets(
            op,
            rows,
            cols,
            ArrayView1::from(&targets.host[..]),
            ignore_index,
        )?;
        Ok((to_u32(op, rows)?, to_u32(op, cols)?))
    }

    /// Cross-entropy from logits `[rows, cols]` and class targets into `out[0]`
    /// ([`reference::cross_entropy`]): per-row `−log_softmax` at the target (log form, exactly 0
    /// in f32 from margin `24 ln 2`), one work-group per row; then one work-group sums the rows
    /// and counts the non-ignored ones in fixed trees **on the device**, and divides for
    /// `Mean` (every row ignored: NaN for `Mean`, 0 for `Sum`). Targets are checked on the host
    /// copy. No read-back.
    #[allow(clippy::too_many_arguments, reason = "the op's argument list")]
    pub fn enqueue_cross_entropy<T: Scalar>(
        &self,
        logits: &DeviceBuffer<T>,
        targets: &DeviceIndices,
        out: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
        ignore_index: i64,
        reduction: Reduction,
    ) -> Result<()> {
        const OP: &str = "cross_entropy";
        let (rows32, cols32) =
            self.cross_entropy_buffers(OP, logits, targets, out, 1, rows, cols, ignore_index)?;
        let program = self.program::<T>(OP)?;
        let wg = self.shared.row_work_group;
        let terms = self.allocate::<T>(rows)?;
        let per_row = self
            .kernel(&program, "cross_entropy_rows")
            .global_work_size(rows * wg)
            .local_work_size(wg)
            .arg(&logits.buffer)
            .arg(&targets.buffer)
            .arg(&terms.buffer)
            .arg(rows32)
            .arg(cols32)
            .arg(ignore_index)
            .build();
        self.enqueue(per_row, "cross_entropy_rows")?;
        let reduce = self
            .kernel(&program, "cross_entropy_reduce")
            .global_work_size(wg)
            .local_work_size(wg)
            .arg(&terms.buffer)
            .arg(&targets.buffer)
            .arg(&out.buffer)
            .arg(rows32)
            .arg(ignore_index)
            .arg(mean_flag(reduction))
            .build();
        self.enqueue(reduce, "cross_entropy_reduce")
    }

    /// Gradient of [`OpenCl::enqueue_cross_entropy`] into `grad [rows, cols]`:
    /// `((p − onehot)·g)/count` (`Mean`) or `(p − onehot)·g` (`Sum`), `p` the divided softmax,
    /// ignored rows exactly 0; `count` (non-ignored rows) is counted on the device.
    #[allow(clippy::too_many_arguments, reason = "the op's argument list")]
    pub fn enqueue_cross_entropy_backward<T: Scalar>(
        &self,
        logits: &DeviceBuffer<T>,
        targets: &DeviceIndices,
        grad: &DeviceBuffer<T>,
        grad_output: T,
        rows: usize,
        cols: usize,
        ignore_index: i64,
        reduction: Reduction,
    ) -> Result<()> {
        const OP: &str = "cross_entropy_backward";
        let (rows32, cols32) = self.cross_entropy_buffers(
            OP,
            logits,
            targets,
            grad,
            rows.saturating_mul(cols),
            rows,
            cols,
            ignore_index,
        )?;
        let program = self.program::<T>(OP)?;
        let wg = self.shared.row_work_group;
        let count = self.allocate::<T>(1)?;
        let counting = self
            .kernel(&program, "count_active_targets")
            .global_work_size(wg)
            .local_work_size(wg)
            .arg(&targets.buffer)
            .arg(&count.buffer)
            .arg(rows32)
            .arg(ignore_index)
            .build();
        self.enqueue(counting, "count_active_targets")?;
        let rows_kernel = self
            .kernel(&program, OP)
            .global_work_size(rows * wg)
            .local_work_size(wg)
            .arg(&logits.buffer)
            .arg(&targets.buffer)
            .arg(&count.buffer)
            .arg(&grad.buffer)
            .arg(grad_output)
            .arg(rows32)
            .arg(cols32)
            .arg(ignore_index)
            .arg(mean_flag(reduction))
            .build();
        self.enqueue(rows_kernel, OP)
    }

    /// Read the one-element result of a reduced loss.
    fn read_scalar<T: Scalar>(&self, op: &'static str, out: &DeviceBuffer<T>) -> Result<T> {
        self.download(&out.buffer, 1)?
            .first()
            .copied()
            .ok_or_else(|| Error::opencl(op, "empty read-back"))
    }

    /// `Backend::bce_with_logits`: the reference's validation, upload, enqueue, read back.
    pub(super) fn backend_bce_with_logits<T: Scalar>(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        reduction: Reduction,
    ) -> Result<T> {
        match reduction {
            Reduction::Mean => validate::mean_loss("bce_with_logits_mean", logits, labels)?,
            Reduction::Sum => {
                validate::same_length("bce_with_logits", logits.len(), labels.len())?;
            }
        }
        if logits.is_empty() {
            return Ok(T::zero()); // the Sum of nothing (Mean was rejected above)
        }
        let z = self.upload_buffer(&contiguous(&logits))?;
        let y = self.upload_buffer(&contiguous(&labels))?;
        let out = self.zeros_buffer::<T>(1)?;
        self.enqueue_bce_with_logits(&z, &y, &out, logits.len(), reduction)?;
        self.read_scalar("bce_with_logits", &out)
    }

    /// `Backend::bce_with_logits_backward`.
    pub(super) fn backend_bce_with_logits_backward<T: Scalar>(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array1<T>> {
        match reduction {
            Reduction::Mean => {
                validate::mean_loss("bce_with_logits_mean_backward", logits, labels)?;
            }
            Reduction::Sum => {
                validate::same_length("bce_with_logits_backward", logits.len(), labels.len())?;
            }
        }
        let n = logits.len();
        if n == 0 {
            return Ok(Array1::zeros(0));
        }
        let z = self.upload_buffer(&contiguous(&logits))?;
        let y = self.upload_buffer(&contiguous(&labels))?;
        let grad = self.zeros_buffer::<T>(n)?;
        self.enqueue_bce_with_logits_backward(&z, &y, &grad, grad_output, n, reduction)?;
        Ok(Array1::from(self.read_buffer(&grad)?))
    }

    /// `Backend::mse`.
    pub(super) fn backend_mse<T: Scalar>(
        &self,
        prediction: ArrayView2<'_, T>,
        target: ArrayView2<'_, T>,
        reduction: Reduction,
    ) -> Result<T> {
        reference::validate_mse("mse", &prediction, &target, reduction)?;
        if prediction.is_empty() {
            return Ok(T::zero());
        }
        let p = self.upload_buffer(&contiguous(&prediction))?;
        let t = self.upload_buffer(&contiguous(&target))?;
        let out = self.zeros_buffer::<T>(1)?;
        self.enqueue_mse(&p, &t, &out, prediction.len(), reduction)?;
        self.read_scalar("mse", &out)
    }

    /// `Backend::mse_backward`.
    pub(super) fn backend_mse_backward<T: Scalar>(
        &self,
        prediction: ArrayView2<'_, T>,
        target: ArrayView2<'_, T>,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array2<T>> {
        reference::validate_mse("mse_backward", &prediction, &target, reduction)?;
        if prediction.is_empty() {
            return Ok(Array2::zeros(prediction.dim()));
        }
        let p = self.upload_buffer(&contiguous(&prediction))?;
        let t = self.upload_buffer(&contiguous(&target))?;
        let grad = self.zeros_buffer::<T>(prediction.len())?;
        self.enqueue_mse_backward(&p, &t, &grad, grad_output, prediction.len(), reduction)?;
        Array2::from_shape_vec(prediction.dim(), self.read_buffer(&grad)?)
            .map_err(|e| Error::opencl("shaping mse_backward", e))
    }

    /// `Backend::cross_entropy`.
    pub(super) fn backend_cross_entropy<T: Scalar>(
        &self,
        logits: ArrayView2<'_, T>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
    ) -> Result<T> {
        reference::validate_cross_entropy(
            "cross_entropy",
            logits,
            targets,
            ignore_index,
            reduction,
        )?;
        let (rows, cols) = logits.dim();
        if rows == 0 {
            return Ok(T::zero()); // Sum over no rows (Mean was rejected above)
        }
        let z = self.upload_buffer(&contiguous(&logits))?;
        let c = self.upload_indices(&contiguous(&targets))?;
        let out = self.zeros_buffer::<T>(1)?;
        self.enqueue_cross_entropy(&z, &c, &out, rows, cols, ignore_index, reduction)?;
        self.read_scalar("cross_entropy", &out)
    }

    /// `Backend::cross_entropy_backward`.
    pub(super) fn backend_cross_entropy_backward<T: Scalar>(
        &self,
        logits: ArrayView2<'_, T>,
        targets: ArrayView1<'_, i64>,
        ignore_index: i64,
        reduction: Reduction,
        grad_output: T,
    ) -> Result<Array2<T>> {
        const OP: &str = "cross_entropy_backward";
        reference::validate_cross_entropy(OP, logits, targets, ignore_index, reduction)?;
        let (rows, cols) = logits.dim();
        if rows == 0 {
            return Ok(Array2::zeros((rows, cols)));
        }
        let z = self.upload_buffer(&contiguous(&logits))?;
        let c = self.upload_indices(&contiguous(&targets))?;
        let grad = self.zeros_buffer::<T>(rows * cols)?;
        self.enqueue_cross_entropy_backward(
            &z,
            &c,
            &grad,
            grad_output,
            rows,
            cols,
            ignore_index,
            reduction,
        )?;
        Array2::from_shape_vec((rows, cols), self.read_buffer(&grad)?)
            .map_err(|e| Error::opencl("shaping cross_entropy_backward", e))
    }
}
