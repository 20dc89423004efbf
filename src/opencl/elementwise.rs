//! Device-level elementwise launches (`opencl/elementwise.cl`): the activations and their VJPs,
//! and the vector helpers of device-resident training (add, scale, copy, fill). They work on
//! [`DeviceBuffer`]s, enqueue without reading back, and validate lengths (typed errors).

use super::{to_u32, DeviceBuffer, OpenCl};
use crate::{Error, Result, Scalar};

/// The elementwise kernels [`OpenCl::enqueue_elementwise`] launches, with their number of
/// input buffers and of scalar parameters (the order of the signatures in elementwise.cl).
const ELEMENTWISE_KERNELS: &[(&str, usize, usize)] = &[
    ("relu", 1, 0),
    ("relu_backward", 2, 0),
    ("leaky_relu", 1, 1),
    ("leaky_relu_backward", 2, 1),
    ("sigmoid", 1, 0),
    ("sigmoid_backward", 2, 0),
    ("tanh_forward", 1, 0),
    ("tanh_backward", 2, 0),
    ("gelu", 1, 1),
    ("gelu_backward", 2, 2),
];

/// `ShapeMismatch` unless `buffer` holds at least `needed` elements.
pub(super) fn check_len<T: Scalar>(
    op: &'static str,
    what: &str,
    buffer: &DeviceBuffer<T>,
    needed: usize,
) -> Result<()> {
    if buffer.len < needed {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "{what}: a buffer of {} elements where {needed} are needed",
                buffer.len
            ),
        });
    }
    Ok(())
}

/// `InvalidParameter` if `output` is the same device buffer as one of `inputs`: the kernel
/// declares them `restrict`, so aliasing would be undefined behaviour.
pub(super) fn check_distinct<T: Scalar>(
    op: &'static str,
    inputs: &[&DeviceBuffer<T>],
    output: &DeviceBuffer<T>,
) -> Result<()> {
    if inputs.iter().any(|input| input.same_buffer(output)) {
        return Err(Error::InvalidParameter {
            op,
            name: "output",
            value: "the buffer of an input".to_string(),
            reason: "the kernel's arguments are restrict: output must be a distinct buffer"
                .to_string(),
        });
    }
    Ok(())
}

/// The product of `dims` (an element count), or `TooLarge` if it overflows `usize`.
pub(super) fn product(op: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::TooLarge {
            op,
            what: "element count",
            value: dims
                .iter()
                .fold(1u128, |acc, &d| acc.saturating_mul(d as u128)),
            limit: usize::MAX as u128,
        })
}

impl OpenCl {
    /// Enqueue one flat elementwise kernel over `len` elements: arguments are `buffers`, then
    /// `output`, then `params`, then the count (every signature in elementwise.cl).
    fn enqueue_flat<T: Scalar>(
        &self,
        op: &'static str,
        kernel_name: &'static str,
        buffers: &[&DeviceBuffer<T>],
        output: &DeviceBuffer<T>,
        params: &[T],
        len: usize,
    ) -> Result<()> {
        for (index, buffer) in buffers.iter().enumerate() {
            check_len(op, &format!("input {index}"), buffer, len)?;
        }
        check_len(op, "output", output, len)?;
        let count = to_u32(op, len)?;
        if len == 0 {
            return Ok(());
        }
        let program = self.program::<T>(op)?;
        let wg = self.shared.row_work_group;
        let mut builder = self.kernel(&program, kernel_name);
        builder
            .global_work_size(super::round_up(len, wg))
            .local_work_size(wg);
        for buffer in buffers {
            builder.arg(&buffer.buffer);
        }
        builder.arg(&output.buffer);
        for &p in params {
            builder.arg(p);
        }
        builder.arg(count);
        self.enqueue(builder.build(), kernel_name)
    }

    /// Enqueue the elementwise kernel `kernel_name` of `opencl/elementwise.cl` over the first
    /// `len` elements: `relu`, `leaky_relu` (params `[slope]`), `sigmoid`, `tanh_forward`,
    /// `gelu` (params `[1/√2]`) take one input; `relu_backward`, `leaky_relu_backward`
    /// (`[slope]`), `sigmoid_backward` and `tanh_backward` (from the output `y`),
    /// `gelu_backward` (`[1/√2, 1/√(2π)]`) take `[forward, grad_output]`. `output` must not be
    /// one of the inputs (the kernels' arguments are `restrict`). Does not wait.
    ///
    /// Errors: `InvalidParameter` for an unknown kernel, a wrong number of inputs or params, or
    /// an aliased output; `ShapeMismatch` if a buffer is shorter than `len`; `TooLarge` past
    /// `u32::MAX` elements.
    pub fn enqueue_elementwise<T: Scalar>(
        &self,
        kernel_name: &'static str,
        inputs: &[&DeviceBuffer<T>],
        output: &DeviceBuffer<T>,
        params: &[T],
        len: usize,
    ) -> Result<()> {
        const OP: &str = "enqueue_elementwise";
        let Some(&(_, input_count, param_count)) = ELEMENTWISE_KERNELS
            .iter()
            .find(|(name, _, _)| *name == kernel_name)
        else {
            return Err(Error::InvalidParameter {
                op: OP,
                name: "kernel_name",
                value: kernel_name.to_string(),
                reason: format!(
                    "one of {}",
                    ELEMENTWISE_KERNELS
                        .iter()
                        .map(|(n, _, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        if inputs.len() != input_count || params.len() != param_count {
            return Err(Error::InvalidParameter {
                op: OP,
                name: "inputs",
                value: format!("{} inputs, {} params", inputs.len(), params.len()),
                reason: format!(
                    "{kernel_name} takes {input_count} input buffers and {param_count} params"
                ),
            });
        }
        check_distinct(OP, inputs, output)?;
        self.enqueue_flat(OP, kernel_name, inputs, output, params, len)
    }

    /// Enqueue `out_i = a_i + b_i` for `i < len` (one rounding). `out` may be the same buffer as
    /// `a` or `b` (in-place accumulation). Does not wait. Errors: `ShapeMismatch` if a buffer is
    /// shorter than `len`; `TooLarge` past `u32::MAX`.
    pub fn enqueue_add<T: Scalar>(
        &self,
        a: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        len: usize,
    ) -> Result<()> {
        self.enqueue_flat("enqueue_add", "vector_add", &[a, b], out, &[], len)
    }

    /// Enqueue `out_i = x_i · alpha` for `i < len` (one rounding). `out` may be `x`. Does not
    /// wait. Errors as [`OpenCl::enqueue_add`].
    pub fn enqueue_scale<T: Scalar>(
        &self,
        x: &DeviceBuffer<T>,
        alpha: T,
        out: &DeviceBuffer<T>,
        len: usize,
    ) -> Result<()> {
        self.enqueue_flat("enqueue_scale", "vector_scale", &[x], out, &[alpha], len)
    }

    /// Enqueue `dst_i = src_i` for `i < len` (exact). `dst` must be a different buffer. Does not
    /// wait. Errors as [`OpenCl::enqueue_add`], plus `InvalidParameter` if `dst` is `src`.
    pub fn enqueue_copy<T: Scalar>(
        &self,
        src: &DeviceBuffer<T>,
        dst: &DeviceBuffer<T>,
        len: usize,
    ) -> Result<()> {
        const OP: &str = "enqueue_copy";
        check_distinct(OP, &[src], dst)?;
        self.enqueue_flat(OP, "vector_copy", &[src], dst, &[], len)
    }

    /// Enqueue `out_i = value` for `i < len` (exact). Does not wait. Errors as
    /// [`OpenCl::enqueue_add`].
    pub fn enqueue_fill<T: Scalar>(
        &self,
        out: &DeviceBuffer<T>,
        value: T,
        len: usize,
    ) -> Result<()> {
        self.enqueue_flat("enqueue_fill", "vector_fill", &[], out, &[value], len)
    }
}
