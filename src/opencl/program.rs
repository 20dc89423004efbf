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
    ("gru.cl", include_str!("../../opencl/gru.cl")),
    ("encoder.cl", include_str!("../../opencl/encoder.cl")),
];

/// Side of the square matmul tile for a row work-group size: the largest power of two `t ≤ 16`
/// with `t² ≤ row_work_group` (so a `t × t` work-group fits wherever a row work-group does).
pub fn matmul_tile(row_work_group: usize) -> usize {
    let square_root = 1usize << (row_work_group.max(1).ilog2() / 2);
    square_root.min(16)
}

/// Rows of the register-blocked matmul micro-tile (`MATMUL_MR` in `opencl/matmul.cl`; it
/// computes `MATMUL_MR × 16` elements per work item).
pub const MATMUL_MICRO_ROWS: usize = 8;

/// Whether `matmul` is the register-blocked CPU variant: for the few-item row work-groups of
/// CPU devices (`row_work_group ≤ 16`, the same rule as [`row_vector`]).
pub fn matmul_register_blocked(row_work_group: usize) -> bool {
    row_work_group <= 16
}

/// Launch geometry `(global, local)` of the `matmul` kernel for a `[m, ·] × [·, n]` product:
/// register-blocked, one-item work-groups over `(⌈n/16⌉, ⌈m/MATMUL_MR⌉)` items; else
/// `TILE × TILE` work-groups over `(round_up(n, TILE), round_up(m, TILE))` items.
pub fn matmul_geometry(m: usize, n: usize, row_work_group: usize) -> ([usize; 2], [usize; 2]) {
    if matmul_register_blocked(row_work_group) {
        return ([n.div_ceil(16), m.div_ceil(MATMUL_MICRO_ROWS)], [1, 1]);
    }
    let tile = matmul_tile(row_work_group);
    (
        [n.div_ceil(tile) * tile, m.div_ceil(tile) * tile],
        [tile, tile],
    )
}

/// Vector width `ROW_VEC` of the row kernels for a row work-group: 16 for the few-item
/// work-groups chosen on CPU devices (≤ 16 items: one AVX-512 register of f32 per load), else 4.
pub fn row_vector(row_work_group: usize) -> usize {
    if row_work_group <= 16 {
        16
    } else {
        4
    }
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
        "-cl-std=CL1.2 -D REAL={} -D REAL_IS_DOUBLE={} -D ROW_WG={row_work_group} -D ROW_VEC={} \
         -D TILE={tile} -D MATMUL_REGISTER_BLOCKED={}",
        T::OPENCL_TYPE_NAME,
        u8::from(T::PROGRAM_SLOT == 1),
        row_vector(row_work_group),
        u8::from(matmul_register_blocked(row_work_group))
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
