//! Kernel sources, build options, and the build itself (with the log on failure).

use ocl::Program;

use super::context::DeviceContext;
use crate::{Error, Result, Scalar};

/// The `.cl` sources, embedded at compile time (never read from the working directory).
pub const SOURCES: &[(&str, &str)] = &[
    ("prelude.cl", include_str!("../../opencl/prelude.cl")),
    ("reduce.cl", include_str!("../../opencl/reduce.cl")),
    ("loss.cl", include_str!("../../opencl/loss.cl")),
];

/// The whole program text: every source in order.
pub fn source() -> String {
    SOURCES
        .iter()
        .map(|(_, s)| *s)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Conformance build options for `T`: no relaxed math, no `mad`, FP_CONTRACT off (in the
/// prelude).
pub fn options<T: Scalar>(row_work_group: usize) -> String {
    format!(
        "-cl-std=CL1.2 -D REAL={} -D REAL_IS_DOUBLE={} -D ROW_WG={row_work_group}",
        T::OPENCL_TYPE_NAME,
        u8::from(T::PROGRAM_SLOT == 1)
    )
}

/// Build the program for `T` with `extra` options appended. On failure the error carries the
/// compiler's build log.
pub(crate) fn build<T: Scalar>(
    device: &DeviceContext,
    row_work_group: usize,
    extra: &str,
) -> Result<Program> {
    let options = format!("{} {extra}", options::<T>(row_work_group))
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
