//! The floating-point types the oracle runs in.

use std::fmt;

use num_traits::{Float, FromPrimitive};

/// Marker for what a device buffer needs from its element type.
///
/// With the `opencl` feature this is `ocl::OclPrm`; without it, it is empty, so CPU-only users
/// never see OpenCL types.
#[cfg(feature = "opencl")]
pub trait DeviceElement: ocl::OclPrm {}
#[cfg(feature = "opencl")]
impl<T: ocl::OclPrm> DeviceElement for T {}

/// Marker for what a device buffer needs from its element type (empty without `opencl`).
#[cfg(not(feature = "opencl"))]
pub trait DeviceElement {}
#[cfg(not(feature = "opencl"))]
impl<T> DeviceElement for T {}

/// A scalar type both backends compute in: `f32` (to reproduce f32 behaviour) or `f64` (the
/// accurate oracle).
pub trait Scalar:
    Float
    + FromPrimitive
    + fmt::Debug
    + fmt::Display
    + fmt::LowerExp
    + Default
    + Send
    + Sync
    + DeviceElement
    + 'static
{
    /// OpenCL C spelling, passed to the compiler as `-D REAL=<name>`.
    const OPENCL_TYPE_NAME: &'static str;
    /// Short name used in test names and reports: `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Unit roundoff `u = 2^-p` for round to nearest: `2^-24` for f32, `2^-53` for f64.
    const UNIT_ROUNDOFF: f64;
    /// Smallest positive normal number, as f64. Used as the absolute slack for results that may be
    /// flushed to zero (OpenCL allows f32 denormals to be flushed; THEORY.md E1).
    const MIN_POSITIVE_NORMAL: f64;
    /// Slot in the per-process program cache. A `static` inside a generic fn would be shared by
    /// every `T`, so each impl names its own slot.
    const PROGRAM_SLOT: usize;
    /// Exact widening to f64, used for comparison and bounds.
    fn widen(self) -> f64;
    /// Round an f64 to this type (round to nearest; identity for f64).
    fn narrow(value: f64) -> Self;
}

impl Scalar for f32 {
    const OPENCL_TYPE_NAME: &'static str = "float";
    const NAME: &'static str = "f32";
    const UNIT_ROUNDOFF: f64 = f32::EPSILON as f64 / 2.0;
    const MIN_POSITIVE_NORMAL: f64 = f32::MIN_POSITIVE as f64;
    const PROGRAM_SLOT: usize = 0;
    fn widen(self) -> f64 {
        f64::from(self)
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "rounding to f32 is the point"
    )]
    fn narrow(value: f64) -> Self {
        value as f32
    }
}

impl Scalar for f64 {
    const OPENCL_TYPE_NAME: &'static str = "double";
    const NAME: &'static str = "f64";
    const UNIT_ROUNDOFF: f64 = f64::EPSILON / 2.0;
    const MIN_POSITIVE_NORMAL: f64 = f64::MIN_POSITIVE;
    const PROGRAM_SLOT: usize = 1;
    fn widen(self) -> f64 {
        self
    }
    fn narrow(value: f64) -> Self {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_roundoff_is_half_epsilon() {
        assert_eq!(<f32 as Scalar>::UNIT_ROUNDOFF, 2f64.powi(-24));
        assert_eq!(<f64 as Scalar>::UNIT_ROUNDOFF, 2f64.powi(-53));
    }

    #[test]
    fn narrow_rounds_to_nearest() {
        let x = 1.0 + 2f64.powi(-25); // halfway between 1 and next f32 above: ties to even = 1
        assert_eq!(<f32 as Scalar>::narrow(x), 1.0f32);
        assert_eq!(<f32 as Scalar>::narrow(0.1).widen(), f64::from(0.1f32));
    }
}
