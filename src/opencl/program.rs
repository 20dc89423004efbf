//! Kernel sources, build options, and the build itself (with the log on failure).

use ocl::Program;

use super::context::DeviceContext;
use crate::{Error, Result, Scalar};

/// The `.cl` sources, embedded at compile time (never read from the working directory).
pub const SOURCES: &[(&str, &str)] = &[
    ("prelude.cl", include_str!("../../opencl/prelude.cl")),
    ("reduce.cl", include_str!("../../opencl/reduce.cl")),
    ("loss.cl", include_str!("../../opencl/loss.cl")),
    ("matmul.cl", include_str!("../../opencl/matmul.cl")),
    (
        "elementwise.cl",
        include_str!("../../opencl/elementwise.cl"),
    ),
    ("norm.cl", include_str!("../../opencl/norm.cl")),
    ("optim.cl", include_str!("../../opencl/optim.cl")),
    ("random.cl", include_str!("../../opencl/random.cl")),
    ("embedding.cl", include_str!("../../opencl/embedding.cl")),
    ("attention.cl", include_str!("../../opencl/attention.cl")),
    ("encoder.cl", include_str!("../../opencl/encoder.cl")),
];

/// Side of the square matmul tile for a row work-group size: the largest power of two `t ≤ 16`
/// with `t² ≤ row_work_group` (so a `t × t` work-group fits wherever a row work-group does).
pub fn matmul_tile(row_work_group: usize) -> usize {
    let square_root = 1usize << (row_work_group.max(1).ilog2() / 2);
    square_root.min(16)
}

/// The whole program text: every source in order.
pub fn source() -> String {
    SOURCES
        .iter()
        .map(|(_, s)| *s)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Conformance build options for `T`: no relaxed math, no `mad`, FP_CONTRACT off (in the
/// prelude). The matmul tile is [`matmul_tile`]`(row_work_group)`.
pub fn options<T: Scalar>(row_work_group: usize) -> String {
    options_with_tile::<T>(row_work_group, matmul_tile(row_work_group))
}

/// [`options`] with the matmul (and transpose) tile side `tile` instead of the default, so a
/// test can force `TILE=2` and reach the tile-boundary code at small sizes.
pub fn options_with_tile<T: Scalar>(row_work_group: usize, tile: usize) -> String {
    format!(
        "-cl-std=CL1.2 -D REAL={} -D REAL_IS_DOUBLE={} -D ROW_WG={row_work_group} -D TILE={tile}",
        T::OPENCL_TYPE_NAME,
        u8::from(T::PROGRAM_SLOT == 1),
    )
}

/// Build the program for `T` with matmul tile `tile` and `extra` options appended. On failure
/// the error carries the compiler's build log.
pub(crate) fn build<T: Scalar>(
    device: &DeviceContext,
    row_work_group: usize,
    tile: usize,
    extra: &str,
) -> Result<Program> {
    let options = format!("{} {extra}", options_with_tile::<T>(row_work_group, tile))
        .trim()
        .to_string();
    Program::builder()
        .devices(device.device)
        .src(source())
        .cmplr_opt(options.clone())
        .build(&device.context)
        .map_err(|e| Error::ProgramBuild {
            scalar: T::NAME,
            options,
            log: e.to_string(),
        })
}
