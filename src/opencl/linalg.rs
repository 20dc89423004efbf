//! Device-level linear algebra (`opencl/matmul.cl`, `opencl/norm.cl`): matrix products with
//! transposition flags and batches, transposes, row-vector broadcasts, axis reductions and
//! their broadcasts. Each `enqueue_*` works on [`DeviceBuffer`]s, validates lengths against
//! the dimensions (typed errors, no panics), and does not read back; the `Backend` methods of
//! [`OpenCl`] are the host-level wrappers below (validate as the reference does, upload,
//! enqueue, download).

use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis};

use super::elementwise::{check_distinct, check_len, product};
use super::{contiguous, round_up, to_u32, DeviceBuffer, OpenCl};
use crate::{reference, validate, Error, Result, Scalar};

impl OpenCl {
    /// The matmul kernel for `batch` contiguous products (all sizes already checked).
    #[allow(clippy::too_many_arguments, reason = "the kernel's argument list")]
    fn launch_matmul<T: Scalar>(
        &self,
        op: &'static str,
        a: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        c: &DeviceBuffer<T>,
        (batch, m, k, n): (usize, usize, usize, usize),
        transpose_a: bool,
        transpose_b: bool,
    ) -> Result<()> {
        check_len(op, "a", a, product(op, &[batch, m, k])?)?;
        check_len(op, "b", b, product(op, &[batch, k, n])?)?;
        check_len(op, "c", c, product(op, &[batch, m, n])?)?;
        check_distinct(op, &[a, b], c)?;
        let (m32, k32, n32) = (to_u32(op, m)?, to_u32(op, k)?, to_u32(op, n)?);
        to_u32(op, product(op, &[batch, m, n])?)?;
        if batch == 0 || m == 0 || n == 0 {
            return Ok(());
        }
        let program = self.program::<T>(op)?;
        if self.shared.blocked_matmul {
            // CPU devices: the register-blocked kernel (opencl/matmul.cl) for every
            // transposition and batch, same summation order.
            let ([cols, rows], local) = super::matmul_geometry(m, n, self.shared.row_work_group);
            let kernel = self
                .kernel(&program, "matmul_blocked")
                .global_work_size((cols, rows, batch))
                .local_work_size((local[0], local[1], 1))
                .arg(&a.buffer)
                .arg(&b.buffer)
                .arg(&c.buffer)
                .arg(m32)
                .arg(k32)
                .arg(n32)
                .arg(u32::from(transpose_a))
                .arg(u32::from(transpose_b))
                .build();
            return self.enqueue(kernel, "matmul_blocked");
        }
        let tile = self.shared.matmul_tile;
        let kernel = self
            .kernel(&program, "matmul")
            .global_work_size((round_up(n, tile), round_up(m, tile), batch))
            .local_work_size((tile, tile, 1))
            .arg(&a.buffer)
            .arg(&b.buffer)
            .arg(&c.buffer)
            .arg(m32)
            .arg(k32)
            .arg(n32)
            .arg(u32::from(transpose_a))
            .arg(u32::from(transpose_b))
            .build();
        self.enqueue(kernel, "matmul")
    }

    /// Enqueue `C = op(A)·op(B)`, `C [m, n]` row-major, `op(A) [m, k]`, `op(B) [k, n]`: `a` is
    /// stored row-major `[m, k]`, or `[k, m]` when `transpose_a`; `b` is `[k, n]`, or `[n, k]`
    /// when `transpose_b`. Local-memory tiles of `TILE × TILE`; each `C_ij` is summed in order
    /// `l = 0, …, k − 1` from 0, as [`crate::reference::matmul`] does, so the result is
    /// bitwise equal to the reference in the same type for all four transposition cases.
    /// `k = 0` writes zeros. `c` must be a different buffer from `a` and `b`. Does not wait.
    ///
    /// Errors: `ShapeMismatch` if a buffer is shorter than its dims; `InvalidParameter` if `c`
    /// aliases an input; `TooLarge` past `u32::MAX`.
    #[allow(
        clippy::too_many_arguments,
        reason = "the signature the training code calls"
    )]
    pub fn enqueue_matmul<T: Scalar>(
        &self,
        a: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        c: &DeviceBuffer<T>,
        m: usize,
        k: usize,
        n: usize,
        transpose_a: bool,
        transpose_b: bool,
    ) -> Result<()> {
        self.launch_matmul(
            "enqueue_matmul",
            a,
            b,
            c,
            (1, m, k, n),
            transpose_a,
            transpose_b,
        )
    }

    /// Enqueue `batch` independent [`OpenCl::enqueue_matmul`]s on contiguous matrices: the
    /// `s`-th product reads `a[s·m·k ..]`, `b[s·k·n ..]` and writes `c[s·m·n ..]` (a third
    /// dimension of the launch, so one kernel for all batches). Same order, same bits as
    /// [`crate::reference::batched_matmul`]. Does not wait. Errors as
    /// [`OpenCl::enqueue_matmul`].
    #[allow(
        clippy::too_many_arguments,
        reason = "the signature the training code calls"
    )]
    pub fn enqueue_batched_matmul<T: Scalar>(
        &self,
        a: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        c: &DeviceBuffer<T>,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        transpose_a: bool,
        transpose_b: bool,
    ) -> Result<()> {
        self.launch_matmul(
            "enqueue_batched_matmul",
            a,
            b,
            c,
            (batch, m, k, n),
            transpose_a,
            transpose_b,
        )
    }

    /// Enqueue `y [cols, rows] = xᵀ` for `x [rows, cols]` row-major (exact), through a local
    /// `TILE × (TILE + 1)` tile so reads and writes are both coalesced. `y` must differ from
    /// `x`. Does not wait. Errors: `ShapeMismatch`, `InvalidParameter` (aliasing), `TooLarge`.
    pub fn enqueue_transpose<T: Scalar>(
        &self,
        x: &DeviceBuffer<T>,
        y: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "enqueue_transpose";
        let len = product(OP, &[rows, cols])?;
        check_len(OP, "x", x, len)?;
        check_len(OP, "y", y, len)?;
        check_distinct(OP, &[x], y)?;
        let (rows32, cols32) = (to_u32(OP, rows)?, to_u32(OP, cols)?);
        to_u32(OP, len)?;
        if len == 0 {
            return Ok(());
        }
        let program = self.program::<T>(OP)?;
        let tile = self.shared.matmul_tile;
        let kernel = self
            .kernel(&program, "transpose")
            .global_work_size((round_up(cols, tile), round_up(rows, tile)))
            .local_work_size((tile, tile))
            .arg(&x.buffer)
            .arg(&y.buffer)
            .arg(rows32)
            .arg(cols32)
            .build();
        self.enqueue(kernel, "transpose")
    }

    /// One of the row-broadcast kernels (`add_rows`, `mul_rows`): `y_ij = x_ij ∘ b_j`.
    fn launch_row_broadcast<T: Scalar>(
        &self,
        op: &'static str,
        kernel_name: &'static str,
        (x, b, y): (&DeviceBuffer<T>, &DeviceBuffer<T>, &DeviceBuffer<T>),
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let len = product(op, &[rows, cols])?;
        check_len(op, "x", x, len)?;
        check_len(op, "b", b, cols)?;
        check_len(op, "y", y, len)?;
        check_distinct(op, &[x, b], y)?;
        let (rows32, cols32) = (to_u32(op, rows)?, to_u32(op, cols)?);
        to_u32(op, len)?;
        if len == 0 {
            return Ok(());
        }
        let program = self.program::<T>(op)?;
        let wg = self.shared.row_work_group;
        let kernel = self
            .kernel(&program, kernel_name)
            .global_work_size(rows * wg)
            .local_work_size(wg)
            .arg(&x.buffer)
            .arg(&b.buffer)
            .arg(&y.buffer)
            .arg(rows32)
            .arg(cols32)
            .build();
        self.enqueue(kernel, kernel_name)
    }

    /// Enqueue `y_ij = x_ij + b_j` (`x, y [rows, cols]`, `b [cols]`; one rounding, bitwise with
    /// [`crate::reference::add_rows`]). One work-group per row. `y` must differ from `x` and
    /// `b`. Does not wait. Errors: `ShapeMismatch`, `InvalidParameter` (aliasing), `TooLarge`.
    pub fn enqueue_add_rows<T: Scalar>(
        &self,
        x: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        y: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.launch_row_broadcast("enqueue_add_rows", "add_rows", (x, b, y), rows, cols)
    }

    /// Enqueue `y_ij = x_ij · b_j` (one rounding, bitwise with [`crate::reference::mul_rows`]).
    /// Also `grad_x = G ∘ b` of [`crate::reference::mul_rows_backward`]. Does not wait. Errors
    /// as [`OpenCl::enqueue_add_rows`].
    pub fn enqueue_mul_rows<T: Scalar>(
        &self,
        x: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        y: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.launch_row_broadcast("enqueue_mul_rows", "mul_rows", (x, b, y), rows, cols)
    }

    /// Enqueue `grad_b_j = Σ_i G_ij·X_ij`, sequential in `i` from 0 (the reference's order:
    /// bitwise with `grad_b` of [`crate::reference::mul_rows_backward`]), one work item per
    /// column. `rows = 0` writes zeros. Does not wait. Errors: `ShapeMismatch`,
    /// `InvalidParameter` (aliasing), `TooLarge`.
    pub fn enqueue_mul_rows_grad_b<T: Scalar>(
        &self,
        grad_output: &DeviceBuffer<T>,
        x: &DeviceBuffer<T>,
        grad_b: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "enqueue_mul_rows_grad_b";
        let len = product(OP, &[rows, cols])?;
        check_len(OP, "grad_output", grad_output, len)?;
        check_len(OP, "x", x, len)?;
        check_len(OP, "grad_b", grad_b, cols)?;
        check_distinct(OP, &[grad_output, x], grad_b)?;
        let (rows32, cols32) = (to_u32(OP, rows)?, to_u32(OP, cols)?);
        to_u32(OP, len)?;
        if cols == 0 {
            return Ok(());
        }
        let program = self.program::<T>(OP)?;
        let (global, local) = self.column_launch(cols);
        let kernel = self
            .kernel(&program, "mul_rows_grad_b")
            .global_work_size(global)
            .local_work_size(local)
            .arg(&grad_output.buffer)
            .arg(&x.buffer)
            .arg(&grad_b.buffer)
            .arg(rows32)
            .arg(cols32)
            .build();
        self.enqueue(kernel, "mul_rows_grad_b")
    }

    /// Sum (or mean) over `axis` of `x [rows, cols]` into `out` (`cols` values for axis 0,
    /// `rows` for axis 1).
    #[allow(clippy::too_many_arguments, reason = "the kernel's argument list")]
    fn launch_reduce_axis<T: Scalar>(
        &self,
        op: &'static str,
        x: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
        axis: usize,
        mean: bool,
    ) -> Result<()> {
        validate::axis_2d(op, axis)?;
        let len = product(op, &[rows, cols])?;
        check_len(op, "x", x, len)?;
        let (kept, reduced) = if axis == 0 {
            (cols, rows)
        } else {
            (rows, cols)
        };
        check_len(op, "out", out, kept)?;
        check_distinct(op, &[x], out)?;
        if mean && reduced == 0 {
            return Err(reference::empty_mean(op, (rows, cols), axis));
        }
        let (rows32, cols32) = (to_u32(op, rows)?, to_u32(op, cols)?);
        to_u32(op, len)?;
        if kept == 0 {
            return Ok(());
        }
        let program = self.program::<T>(op)?;
        let wg = self.shared.row_work_group;
        let (name, global, local) = if axis == 0 {
            let (global, local) = self.column_launch(cols);
            ("sum_columns", global, local)
        } else {
            ("sum_rows", rows * wg, wg)
        };
        let kernel = self
            .kernel(&program, name)
            .global_work_size(global)
            .local_work_size(local)
            .arg(&x.buffer)
            .arg(&out.buffer)
            .arg(rows32)
            .arg(cols32)
            .arg(u32::from(mean))
            .build();
        self.enqueue(kernel, name)
    }

    /// Enqueue the sum over `axis` of `x [rows, cols]` (axis 0: `out_j = Σ_i x_ij`, `cols`
    /// values; axis 1: `out_i = Σ_j x_ij`, `rows` values); an empty axis sums to 0.
    ///
    /// Order (fixed, so the bits are the same run to run): axis 0 sums each column sequentially
    /// in `i` from 0, one work item per column (the reference's order: bitwise equal); axis 1
    /// uses one work-group of `W` = [`OpenCl::row_work_group`] items per row, item `l` summing
    /// `j = l, l + W, …` sequentially, then the `W` partial sums meet in a halving tree. Each
    /// term passes through at most `⌈n/W⌉ − 1 + log₂W ≤ n − 1` additions, so
    /// [`crate::tolerance::sum_axis`] (`γ_{n−1}·Σ|x|`, any order) bounds both.
    /// Does not wait. Errors: `InvalidParameter` for `axis > 1` or an aliased `out`;
    /// `ShapeMismatch`; `TooLarge`.
    pub fn enqueue_sum_axis<T: Scalar>(
        &self,
        x: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
        axis: usize,
    ) -> Result<()> {
        self.launch_reduce_axis("enqueue_sum_axis", x, out, rows, cols, axis, false)
    }

    /// Enqueue the mean over `axis`: [`OpenCl::enqueue_sum_axis`]'s sum, in the same order,
    /// divided by the reduced length (one division; bound [`crate::tolerance::mean_axis`]).
    /// Errors: as [`OpenCl::enqueue_sum_axis`], plus `EmptyInput` if the reduced axis is empty.
    pub fn enqueue_mean_axis<T: Scalar>(
        &self,
        x: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
        axis: usize,
    ) -> Result<()> {
        self.launch_reduce_axis("enqueue_mean_axis", x, out, rows, cols, axis, true)
    }

    /// Broadcast `g` back along the reduced axis into `grad_x [rows, cols]`, divided by the
    /// reduced length when `mean`.
    #[allow(clippy::too_many_arguments, reason = "the kernel's argument list")]
    fn launch_broadcast_axis<T: Scalar>(
        &self,
        op: &'static str,
        grad_output: &DeviceBuffer<T>,
        grad_x: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
        axis: usize,
        mean: bool,
    ) -> Result<()> {
        validate::axis_2d(op, axis)?;
        let len = product(op, &[rows, cols])?;
        let (kept, reduced) = if axis == 0 {
            (cols, rows)
        } else {
            (rows, cols)
        };
        check_len(op, "grad_output", grad_output, kept)?;
        check_len(op, "grad_x", grad_x, len)?;
        check_distinct(op, &[grad_output], grad_x)?;
        if mean && reduced == 0 {
            return Err(reference::empty_mean(op, (rows, cols), axis));
        }
        let (rows32, cols32, count) = (to_u32(op, rows)?, to_u32(op, cols)?, to_u32(op, len)?);
        if len == 0 {
            return Ok(());
        }
        let program = self.program::<T>(op)?;
        let wg = self.shared.row_work_group;
        let kernel = self
            .kernel(&program, "broadcast_axis")
            .global_work_size(round_up(len, wg))
            .local_work_size(wg)
            .arg(&grad_output.buffer)
            .arg(&grad_x.buffer)
            .arg(rows32)
            .arg(cols32)
            .arg(to_u32(op, axis)?)
            .arg(u32::from(mean))
            .arg(count)
            .build();
        self.enqueue(kernel, "broadcast_axis")
    }

    /// Enqueue the VJP of [`OpenCl::enqueue_sum_axis`]: `grad_x [rows, cols]` with
    /// `grad_x_ij = g_j` (axis 0, `g [cols]`) or `g_i` (axis 1, `g [rows]`). Exact. Does not
    /// wait. Errors: `InvalidParameter` for `axis > 1` or aliasing; `ShapeMismatch`; `TooLarge`.
    pub fn enqueue_sum_axis_backward<T: Scalar>(
        &self,
        grad_output: &DeviceBuffer<T>,
        grad_x: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
        axis: usize,
    ) -> Result<()> {
        self.launch_broadcast_axis(
            "enqueue_sum_axis_backward",
            grad_output,
            grad_x,
            rows,
            cols,
            axis,
            false,
        )
    }

    /// Enqueue the VJP of [`OpenCl::enqueue_mean_axis`]: the broadcast of
    /// [`OpenCl::enqueue_sum_axis_backward`] divided by the reduced length (one division per
    /// element, as [`crate::reference::mean_axis_backward`]). Errors: as the sum's, plus
    /// `EmptyInput` if the reduced axis is empty.
    pub fn enqueue_mean_axis_backward<T: Scalar>(
        &self,
        grad_output: &DeviceBuffer<T>,
        grad_x: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
        axis: usize,
    ) -> Result<()> {
        self.launch_broadcast_axis(
            "enqueue_mean_axis_backward",
            grad_output,
            grad_x,
            rows,
            cols,
            axis,
            true,
        )
    }

    /// A device buffer holding `data` (`None` when empty: device buffers have ≥ 1 element).
    fn upload_view<T: Scalar, D: ndarray::Dimension>(
        &self,
        data: &ndarray::ArrayView<'_, T, D>,
    ) -> Result<Option<DeviceBuffer<T>>> {
        if data.is_empty() {
            return Ok(None);
        }
        self.upload_buffer(&contiguous(data)).map(Some)
    }

    /// Run `enqueue` into a fresh output buffer of `len` elements and read it back (an empty
    /// output skips the device).
    fn run_into<T: Scalar>(
        &self,
        len: usize,
        enqueue: impl FnOnce(&DeviceBuffer<T>) -> Result<()>,
    ) -> Result<Vec<T>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self.zeros_buffer::<T>(len)?;
        enqueue(&out)?;
        self.read_buffer(&out)
    }

    /// `op(A)·op(B)` for the `Backend` methods: `a`, `b` as stored, with the product's dims.
    #[allow(clippy::too_many_arguments, reason = "dims and flags of one product")]
    fn product_on_device<T: Scalar>(
        &self,
        a: &Option<DeviceBuffer<T>>,
        b: &Option<DeviceBuffer<T>>,
        (batch, m, k, n): (usize, usize, usize, usize),
        transpose_a: bool,
        transpose_b: bool,
    ) -> Result<Vec<T>> {
        let len = product("matmul", &[batch, m, n])?;
        self.run_into(len, |c| match (a, b) {
            (Some(a), Some(b)) => {
                self.enqueue_batched_matmul(a, b, c, batch, m, k, n, transpose_a, transpose_b)
            }
            // k = 0 (an empty operand): the empty sum, zeros, written on the device.
            _ => self.enqueue_fill(c, T::zero(), len),
        })
    }

    pub(super) fn host_matmul<T: Scalar>(
        &self,
        a: ArrayView2<'_, T>,
        b: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        validate::matmul("matmul", a, b)?;
        let ((m, k), n) = (a.dim(), b.ncols());
        let (a_buffer, b_buffer) = (self.upload_view(&a)?, self.upload_view(&b)?);
        let data = self.product_on_device(&a_buffer, &b_buffer, (1, m, k, n), false, false)?;
        shape2("matmul", (m, n), data)
    }

    pub(super) fn host_matmul_backward<T: Scalar>(
        &self,
        a: ArrayView2<'_, T>,
        b: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array2<T>)> {
        const OP: &str = "matmul_backward";
        validate::matmul_backward(OP, a, b, grad_output)?;
        let ((m, k), n) = (a.dim(), b.ncols());
        let (a_buffer, b_buffer, g_buffer) = (
            self.upload_view(&a)?,
            self.upload_view(&b)?,
            self.upload_view(&grad_output)?,
        );
        // ∂A = G·Bᵀ: [m, n]·[n, k], B stored [k, n] = (Bᵀ)ᵀ. ∂B = Aᵀ·G: [k, m]·[m, n].
        let grad_a = self.product_on_device(&g_buffer, &b_buffer, (1, m, n, k), false, true)?;
        let grad_b = self.product_on_device(&a_buffer, &g_buffer, (1, k, m, n), true, false)?;
        Ok((shape2(OP, (m, k), grad_a)?, shape2(OP, (k, n), grad_b)?))
    }

    pub(super) fn host_batched_matmul<T: Scalar>(
        &self,
        a: ArrayView3<'_, T>,
        b: ArrayView3<'_, T>,
    ) -> Result<Array3<T>> {
        const OP: &str = "batched_matmul";
        validate::batched_matmul(OP, a, b)?;
        let ((batch, m, k), n) = (a.dim(), b.dim().2);
        let (a_buffer, b_buffer) = (self.upload_view(&a)?, self.upload_view(&b)?);
        let data = self.product_on_device(&a_buffer, &b_buffer, (batch, m, k, n), false, false)?;
        shape3(OP, (batch, m, n), data)
    }

    pub(super) fn host_batched_matmul_backward<T: Scalar>(
        &self,
        a: ArrayView3<'_, T>,
        b: ArrayView3<'_, T>,
        grad_output: ArrayView3<'_, T>,
    ) -> Result<(Array3<T>, Array3<T>)> {
        const OP: &str = "batched_matmul_backward";
        validate::batched_matmul_backward(OP, a, b, grad_output)?;
        let ((batch, m, k), n) = (a.dim(), b.dim().2);
        let (a_buffer, b_buffer, g_buffer) = (
            self.upload_view(&a)?,
            self.upload_view(&b)?,
            self.upload_view(&grad_output)?,
        );
        let grad_a = self.product_on_device(&g_buffer, &b_buffer, (batch, m, n, k), false, true)?;
        let grad_b = self.product_on_device(&a_buffer, &g_buffer, (batch, k, m, n), true, false)?;
        Ok((
            shape3(OP, (batch, m, k), grad_a)?,
            shape3(OP, (batch, k, n), grad_b)?,
        ))
    }

    pub(super) fn host_transpose<T: Scalar>(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        const OP: &str = "transpose";
        let (rows, cols) = x.dim();
        validate::fits_kernel_index(OP, "element count", rows.saturating_mul(cols))?;
        let input = self.upload_view(&x)?;
        let data = self.run_into(rows * cols, |y| match &input {
            Some(input) => self.enqueue_transpose(input, y, rows, cols),
            None => Ok(()),
        })?;
        shape2(OP, (cols, rows), data)
    }

    /// `x ∘ b` by rows (`add_rows`, `mul_rows`) for the `Backend` methods.
    fn host_row_broadcast<T: Scalar>(
        &self,
        op: &'static str,
        x: ArrayView2<'_, T>,
        b: ArrayView1<'_, T>,
        multiply: bool,
    ) -> Result<Array2<T>> {
        validate::row_vector(op, x, b)?;
        let (rows, cols) = x.dim();
        let (x_buffer, b_buffer) = (self.upload_view(&x)?, self.upload_view(&b)?);
        let data = self.run_into(rows * cols, |y| match (&x_buffer, &b_buffer) {
            (Some(x), Some(b)) if multiply => self.enqueue_mul_rows(x, b, y, rows, cols),
            (Some(x), Some(b)) => self.enqueue_add_rows(x, b, y, rows, cols),
            _ => Ok(()),
        })?;
        shape2(op, (rows, cols), data)
    }

    pub(super) fn host_add_rows<T: Scalar>(
        &self,
        x: ArrayView2<'_, T>,
        b: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        self.host_row_broadcast("add_rows", x, b, false)
    }

    pub(super) fn host_mul_rows<T: Scalar>(
        &self,
        x: ArrayView2<'_, T>,
        b: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        self.host_row_broadcast("mul_rows", x, b, true)
    }

    pub(super) fn host_add_rows_backward<T: Scalar>(
        &self,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array1<T>)> {
        const OP: &str = "add_rows_backward";
        let (rows, cols) = grad_output.dim();
        validate::fits_kernel_index(OP, "element count", rows.saturating_mul(cols))?;
        let g = self.upload_view(&grad_output)?;
        let grad_x = self.run_into(rows * cols, |out| match &g {
            Some(g) => self.enqueue_copy(g, out, rows * cols),
            None => Ok(()),
        })?;
        let grad_b = self.run_into(cols, |out| match &g {
            Some(g) => self.enqueue_sum_axis(g, out, rows, cols, 0),
            None => self.enqueue_fill(out, T::zero(), cols),
        })?;
        Ok((shape2(OP, (rows, cols), grad_x)?, Array1::from(grad_b)))
    }

    pub(super) fn host_mul_rows_backward<T: Scalar>(
        &self,
        x: ArrayView2<'_, T>,
        b: ArrayView1<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<(Array2<T>, Array1<T>)> {
        const OP: &str = "mul_rows_backward";
        validate::row_vector(OP, x, b)?;
        validate::same_shape(OP, "grad_output", grad_output.shape(), "x", x.shape())?;
        let (rows, cols) = x.dim();
        let (x_buffer, b_buffer, g_buffer) = (
            self.upload_view(&x)?,
            self.upload_view(&b)?,
            self.upload_view(&grad_output)?,
        );
        let grad_x = self.run_into(rows * cols, |out| match (&g_buffer, &b_buffer) {
            (Some(g), Some(b)) => self.enqueue_mul_rows(g, b, out, rows, cols),
            _ => Ok(()),
        })?;
        let grad_b = self.run_into(cols, |out| match (&g_buffer, &x_buffer) {
            (Some(g), Some(x)) => self.enqueue_mul_rows_grad_b(g, x, out, rows, cols),
            _ => self.enqueue_fill(out, T::zero(), cols),
        })?;
        Ok((shape2(OP, (rows, cols), grad_x)?, Array1::from(grad_b)))
    }

    /// Sum or mean over `axis` for the `Backend` methods.
    fn host_reduce_axis<T: Scalar>(
        &self,
        op: &'static str,
        x: ArrayView2<'_, T>,
        axis: usize,
        mean: bool,
    ) -> Result<Array1<T>> {
        validate::axis_2d(op, axis)?;
        let (rows, cols) = x.dim();
        if mean && x.len_of(Axis(axis)) == 0 {
            return Err(reference::empty_mean(op, (rows, cols), axis));
        }
        validate::fits_kernel_index(op, "element count", rows.saturating_mul(cols))?;
        let kept = if axis == 0 { cols } else { rows };
        let input = self.upload_view(&x)?;
        let data = self.run_into(kept, |out| match &input {
            Some(x) if mean => self.enqueue_mean_axis(x, out, rows, cols, axis),
            Some(x) => self.enqueue_sum_axis(x, out, rows, cols, axis),
            // The reduced axis is empty (a sum; a mean errored above): the empty sum.
            None => self.enqueue_fill(out, T::zero(), kept),
        })?;
        Ok(Array1::from(data))
    }

    pub(super) fn host_sum_axis<T: Scalar>(
        &self,
        x: ArrayView2<'_, T>,
        axis: usize,
    ) -> Result<Array1<T>> {
        self.host_reduce_axis("sum_axis", x, axis, false)
    }

    pub(super) fn host_mean_axis<T: Scalar>(
        &self,
        x: ArrayView2<'_, T>,
        axis: usize,
    ) -> Result<Array1<T>> {
        self.host_reduce_axis("mean_axis", x, axis, true)
    }

    /// The broadcast VJP of a sum (or mean) over `axis` for the `Backend` methods.
    fn host_broadcast_axis<T: Scalar>(
        &self,
        op: &'static str,
        shape: (usize, usize),
        axis: usize,
        grad_output: ArrayView1<'_, T>,
        mean: bool,
    ) -> Result<Array2<T>> {
        validate::axis_2d(op, axis)?;
        let (rows, cols) = shape;
        if mean && (if axis == 0 { rows } else { cols }) == 0 {
            return Err(reference::empty_mean(op, shape, axis));
        }
        let kept = if axis == 0 { cols } else { rows };
        validate::same_shape(op, "grad_output", grad_output.shape(), "output", &[kept])?;
        validate::fits_kernel_index(op, "element count", rows.saturating_mul(cols))?;
        let g = self.upload_view(&grad_output)?;
        let data = self.run_into(rows * cols, |out| match &g {
            Some(g) if mean => self.enqueue_mean_axis_backward(g, out, rows, cols, axis),
            Some(g) => self.enqueue_sum_axis_backward(g, out, rows, cols, axis),
            None => Ok(()),
        })?;
        shape2(op, shape, data)
    }

    pub(super) fn host_sum_axis_backward<T: Scalar>(
        &self,
        shape: (usize, usize),
        axis: usize,
        grad_output: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        self.host_broadcast_axis("sum_axis_backward", shape, axis, grad_output, false)
    }

    pub(super) fn host_mean_axis_backward<T: Scalar>(
        &self,
        shape: (usize, usize),
        axis: usize,
        grad_output: ArrayView1<'_, T>,
    ) -> Result<Array2<T>> {
        self.host_broadcast_axis("mean_axis_backward", shape, axis, grad_output, true)
    }
}

/// A read-back as a `[rows, cols]` array.
fn shape2<T: Scalar>(op: &'static str, dim: (usize, usize), data: Vec<T>) -> Result<Array2<T>> {
    Array2::from_shape_vec(dim, data).map_err(|e| Error::opencl(format!("shaping {op}"), e))
}

/// A read-back as a `[batch, rows, cols]` array.
fn shape3<T: Scalar>(
    op: &'static str,
    dim: (usize, usize, usize),
    data: Vec<T>,
) -> Result<Array3<T>> {
    Array3::from_shape_vec(dim, data).map_err(|e| Error::opencl(format!("shaping {op}"), e))
}
