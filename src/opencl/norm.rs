//! Device-level LayerNorm (`opencl/norm.cl`): forward and backward on [`DeviceBuffer`]s,
//! enqueued without reading back, and the host-level wrappers of the `Backend` methods.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::elementwise::{check_distinct, check_len, product};
use super::{contiguous, round_up, to_u32, DeviceBuffer, OpenCl};
use crate::backend::LayerNormGrads;
use crate::{reference, validate, Error, Result, Scalar};

/// Work-group size of a column kernel over fewer columns than the elementwise work-group.
const NARROW_COLUMN_GROUP: usize = 16;

impl OpenCl {
    /// `(global, local)` of a column kernel (`layer_norm_param_grads`, `mul_rows_grad_b`,
    /// `sum_columns`: one work item per column, a barrier per row, see `opencl/norm.cl`) over
    /// `cols` columns: a work-group of the elementwise size (a group reads one row's columns
    /// contiguously), or of [`NARROW_COLUMN_GROUP`] below that many columns, so that few items
    /// idle. Two sizes only: PoCL compiles a kernel once per local size.
    pub(super) fn column_launch(&self, cols: usize) -> (usize, usize) {
        let wide = self.shared.elementwise_work_group;
        let local = if cols >= wide {
            wide
        } else {
            NARROW_COLUMN_GROUP.min(wide)
        };
        (round_up(cols.max(1), local), local)
    }

    /// Enqueue LayerNorm over the rows of `x [rows, cols]`: per row, two-pass moments with the
    /// fixed work-group tree, `y_j = ((x_j − μ)·rstd)·γ_j + β_j`, `rstd = 1/√(var + eps)`
    /// (bound [`crate::tolerance::layer_norm`]). One work-group per row. `y` must differ from
    /// the inputs. Does not wait.
    ///
    /// Errors: `EmptyInput` for `cols = 0` (the moments of an empty row are undefined);
    /// `ShapeMismatch` if a buffer is shorter than its dims; `InvalidParameter` (aliasing);
    /// `TooLarge`.
    #[allow(
        clippy::too_many_arguments,
        reason = "the signature the training code calls"
    )]
    pub fn enqueue_layer_norm<T: Scalar>(
        &self,
        x: &DeviceBuffer<T>,
        gamma: &DeviceBuffer<T>,
        beta: &DeviceBuffer<T>,
        y: &DeviceBuffer<T>,
        eps: T,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "enqueue_layer_norm";
        let len = check_norm_dims(OP, rows, cols)?;
        check_len(OP, "x", x, len)?;
        check_len(OP, "gamma", gamma, cols)?;
        check_len(OP, "beta", beta, cols)?;
        check_len(OP, "y", y, len)?;
        check_distinct(OP, &[x, gamma, beta], y)?;
        let (rows32, cols32) = (to_u32(OP, rows)?, to_u32(OP, cols)?);
        if rows == 0 {
            return Ok(());
        }
        let program = self.program::<T>(OP)?;
        let wg = self.shared.row_work_group;
        let kernel = self
            .kernel(&program, "layer_norm")
            .global_work_size(rows * wg)
            .local_work_size(wg)
            .arg(&x.buffer)
            .arg(&gamma.buffer)
            .arg(&beta.buffer)
            .arg(&y.buffer)
            .arg(eps)
            .arg(rows32)
            .arg(cols32)
            .build();
        self.enqueue(kernel, "layer_norm")
    }

    /// Enqueue the LayerNorm VJP: a row pass writing `grad_x [rows, cols]` and the normalised
    /// input into `xhat_scratch [rows, cols]`, then a column pass writing `grad_gamma [cols]`
    /// and `grad_beta [cols]` (sums over rows, sequential in the row index from 0). The
    /// in-order queue runs the column pass after the row pass. Bound
    /// [`crate::tolerance::layer_norm_backward`]. Outputs must be distinct buffers, none an
    /// input. Does not wait. Errors as [`OpenCl::enqueue_layer_norm`].
    #[allow(
        clippy::too_many_arguments,
        reason = "the signature the training code calls"
    )]
    pub fn enqueue_layer_norm_backward<T: Scalar>(
        &self,
        x: &DeviceBuffer<T>,
        gamma: &DeviceBuffer<T>,
        grad_output: &DeviceBuffer<T>,
        grad_x: &DeviceBuffer<T>,
        grad_gamma: &DeviceBuffer<T>,
        grad_beta: &DeviceBuffer<T>,
        xhat_scratch: &DeviceBuffer<T>,
        eps: T,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "enqueue_layer_norm_backward";
        let len = check_norm_dims(OP, rows, cols)?;
        check_len(OP, "x", x, len)?;
        check_len(OP, "gamma", gamma, cols)?;
        check_len(OP, "grad_output", grad_output, len)?;
        check_len(OP, "grad_x", grad_x, len)?;
        check_len(OP, "grad_gamma", grad_gamma, cols)?;
        check_len(OP, "grad_beta", grad_beta, cols)?;
        check_len(OP, "xhat_scratch", xhat_scratch, len)?;
        let inputs = [x, gamma, grad_output];
        let outputs = [grad_x, grad_gamma, grad_beta, xhat_scratch];
        for (index, output) in outputs.iter().enumerate() {
            check_distinct(OP, &inputs, output)?;
            check_distinct(OP, &outputs[..index], output)?;
        }
        let (rows32, cols32) = (to_u32(OP, rows)?, to_u32(OP, cols)?);
        let program = self.program::<T>(OP)?;
        let wg = self.shared.row_work_group;
        if rows > 0 {
            let rows_kernel = self
                .kernel(&program, "layer_norm_backward")
                .global_work_size(rows * wg)
                .local_work_size(wg)
                .arg(&x.buffer)
                .arg(&gamma.buffer)
                .arg(&grad_output.buffer)
                .arg(&grad_x.buffer)
                .arg(&xhat_scratch.buffer)
                .arg(eps)
                .arg(rows32)
                .arg(cols32)
                .build();
            self.enqueue(rows_kernel, "layer_norm_backward")?;
        }
        // rows = 0: the column pass writes the empty sums, zeros.
        let (column_global, column_local) = self.column_launch(cols);
        let columns_kernel = self
            .kernel(&program, "layer_norm_param_grads")
            .global_work_size(column_global)
            .local_work_size(column_local)
            .arg(&grad_output.buffer)
            .arg(&xhat_scratch.buffer)
            .arg(&grad_gamma.buffer)
            .arg(&grad_beta.buffer)
            .arg(rows32)
            .arg(cols32)
            .build();
        self.enqueue(columns_kernel, "layer_norm_param_grads")
    }

    pub(super) fn host_layer_norm<T: Scalar>(
        &self,
        x: ArrayView2<'_, T>,
        gamma: ArrayView1<'_, T>,
        beta: ArrayView1<'_, T>,
        eps: f64,
    ) -> Result<Array2<T>> {
        const OP: &str = "layer_norm";
        validate::layer_norm(OP, x, gamma, beta, eps)?;
        let eps = reference::layer_norm_eps::<T>(OP, eps)?;
        let (rows, cols) = x.dim();
        if rows == 0 {
            return Ok(Array2::zeros((rows, cols)));
        }
        let x_buffer = self.upload_buffer(&contiguous(&x))?;
        let gamma_buffer = self.upload_buffer(&contiguous(&gamma))?;
        let beta_buffer = self.upload_buffer(&contiguous(&beta))?;
        let y = self.zeros_buffer::<T>(rows * cols)?;
        self.enqueue_layer_norm(&x_buffer, &gamma_buffer, &beta_buffer, &y, eps, rows, cols)?;
        Array2::from_shape_vec((rows, cols), self.read_buffer(&y)?)
            .map_err(|e| Error::opencl("shaping layer_norm", e))
    }

    pub(super) fn host_layer_norm_backward<T: Scalar>(
        &self,
        x: ArrayView2<'_, T>,
        gamma: ArrayView1<'_, T>,
        beta: ArrayView1<'_, T>,
        eps: f64,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<LayerNormGrads<T>> {
        const OP: &str = "layer_norm_backward";
        validate::layer_norm(OP, x, gamma, beta, eps)?;
        validate::same_shape(OP, "grad_output", grad_output.shape(), "x", x.shape())?;
        let eps = reference::layer_norm_eps::<T>(OP, eps)?;
        let (rows, cols) = x.dim();
        if rows == 0 {
            return Ok((
                Array2::zeros((rows, cols)),
                Array1::zeros(cols),
                Array1::zeros(cols),
            ));
        }
        let x_buffer = self.upload_buffer(&contiguous(&x))?;
        let gamma_buffer = self.upload_buffer(&contiguous(&gamma))?;
        let g_buffer = self.upload_buffer(&contiguous(&grad_output))?;
        let grad_x = self.zeros_buffer::<T>(rows * cols)?;
        let xhat = self.zeros_buffer::<T>(rows * cols)?;
        let grad_gamma = self.zeros_buffer::<T>(cols)?;
        let grad_beta = self.zeros_buffer::<T>(cols)?;
        self.enqueue_layer_norm_backward(
            &x_buffer,
            &gamma_buffer,
            &g_buffer,
            &grad_x,
            &grad_gamma,
            &grad_beta,
            &xhat,
            eps,
            rows,
            cols,
        )?;
        let grad_x = Array2::from_shape_vec((rows, cols), self.read_buffer(&grad_x)?)
            .map_err(|e| Error::opencl("shaping layer_norm_backward", e))?;
        Ok((
            grad_x,
            Array1::from(self.read_buffer(&grad_gamma)?),
            Array1::from(self.read_buffer(&grad_beta)?),
        ))
    }
}

/// `rows · cols`, with `EmptyInput` for rows of length 0.
fn check_norm_dims(op: &'static str, rows: usize, cols: usize) -> Result<usize> {
    if cols == 0 {
        return Err(Error::EmptyInput {
            op,
            detail: "LayerNorm rows of length 0 have no mean or variance".to_string(),
        });
    }
    product(op, &[rows, cols])
}
