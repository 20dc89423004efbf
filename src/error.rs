//! The one error type of the crate.

/// Result alias used by every fallible function of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, as data. Library code never panics on bad input.
///
/// NaN and ±∞ in the *data* are not errors: they propagate per IEEE 754 as each op documents.
/// Invalid *hyperparameters* are [`Error::InvalidParameter`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No OpenCL platform could be found (no ICD loader entries, or none usable).
    #[error("no OpenCL platform found ({detail}); install an OpenCL driver, e.g. `make opencl` (Debian: pocl-opencl-icd ocl-icd-opencl-dev clinfo)")]
    NoPlatform {
        /// What the loader said.
        detail: String,
    },
    /// No OpenCL device matched the request.
    #[error("no OpenCL device matches {wanted:?}; available: {available}")]
    NoDevice {
        /// The `MLORACLE_DEVICE` filter (or "any").
        wanted: String,
        /// `platform / device` names that were found.
        available: String,
    },
    /// An OpenCL program failed to build. Carries the compiler's build log.
    #[error("OpenCL program for {scalar} failed to build with options `{options}`:\n{log}")]
    ProgramBuild {
        /// `f32` or `f64`.
        scalar: &'static str,
        /// The compiler options used.
        options: String,
        /// The build log (or the driver's error text that contains it).
        log: String,
    },
    /// Any other OpenCL runtime failure (enqueue, allocation, read-back).
    #[error("OpenCL error in {operation}: {message}")]
    OpenCl {
        /// What the crate was doing.
        operation: String,
        /// The driver's message.
        message: String,
    },
    /// Operand shapes do not fit the op.
    #[error("{op}: shape mismatch: {detail}")]
    ShapeMismatch {
        /// The op that rejected its inputs.
        op: &'static str,
        /// The shapes involved and what was expected.
        detail: String,
    },
    /// An axis that the op reduces over is empty and the op has no identity there
    /// (mean, softmax, log-sum-exp).
    #[error("{op}: empty input: {detail}")]
    EmptyInput {
        /// The op that rejected its inputs.
        op: &'static str,
        /// Which axis or operand is empty.
        detail: String,
    },
    /// A hyperparameter or argument is outside its valid domain.
    #[error("{op}: invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// The op that rejected it.
        op: &'static str,
        /// Parameter name.
        name: &'static str,
        /// The value given, formatted.
        value: String,
        /// The valid domain.
        reason: String,
    },
    /// A size does not fit the index type a kernel uses (u32) or the device's limits.
    #[error("{op}: {what} = {value} exceeds the limit {limit}")]
    TooLarge {
        /// The op that rejected it.
        op: &'static str,
        /// What was too large.
        what: &'static str,
        /// The size given.
        value: u128,
        /// The limit.
        limit: u128,
    },
    /// A third-party backend's own library failed on an input the oracle considers valid (the
    /// library's error text, e.g. from candle or burn). The conformance suite reports it as a
    /// failure of that op, never as a skip.
    #[error("{backend}: {op} failed: {message}")]
    Backend {
        /// Backend name.
        backend: String,
        /// Op name.
        op: &'static str,
        /// The library's error, formatted.
        message: String,
    },
    /// The backend does not implement this op for this scalar type.
    #[error("{backend}: {op} is not supported for {scalar}{}", if .reason.is_empty() { String::new() } else { format!(" ({})", .reason) })]
    Unsupported {
        /// Backend name.
        backend: String,
        /// Op name.
        op: &'static str,
        /// `f32` or `f64`.
        scalar: &'static str,
        /// Why, when known (e.g. "device lacks cl_khr_fp64").
        reason: String,
    },
}

impl Error {
    /// True for [`Error::Unsupported`]: the suite reports such a check as skipped, by name.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Unsupported { .. })
    }

    /// True for the infrastructure errors that mean "no usable OpenCL device".
    pub fn is_device_unavailable(&self) -> bool {
        matches!(self, Error::NoPlatform { .. } | Error::NoDevice { .. })
    }
}

#[cfg(feature = "opencl")]
impl Error {
    /// Wrap an `ocl` error with what the crate was doing.
    pub(crate) fn opencl(operation: impl Into<String>, error: impl std::fmt::Display) -> Self {
        Error::OpenCl {
            operation: operation.into(),
            message: error.to_string(),
        }
    }
}
