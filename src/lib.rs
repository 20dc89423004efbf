//! # mloracle
//!
//! A property-based numerical test oracle for machine learning. A deliberately simple
//! **reference implementation** ([`reference`](mod@reference), `ndarray`, generic over `num_traits::Float`) is
//! run against an **OpenCL implementation** (`opencl`, behind the default `opencl` feature) or
//! any third-party [`Backend`]. Property tests compare the two within error bounds derived from
//! floating-point analysis ([`tolerance`]) and assert the invariants that explain real training
//! failures ([`invariants`]).
//!
//! ```
//! use mloracle::{Backend, Reference};
//! use ndarray::array;
//!
//! let lse = Backend::<f64>::log_sum_exp_rows(&Reference, array![[0.0, 0.0]].view())?;
//! assert!((lse[0] - std::f64::consts::LN_2).abs() < 1e-15);
//! # Ok::<(), mloracle::Error>(())
//! ```
//!
//! Use it from your own crate's tests with [`backend_tests!`].

#![deny(missing_docs)]
// `unsafe` is confined to the OpenCL backend (kernel enqueues: `src/opencl/mod.rs`,
// `src/opencl/bench.rs`), which allows it; every block there carries a `// SAFETY:` comment,
// which clippy enforces.
#![deny(unsafe_code, clippy::undocumented_unsafe_blocks)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backend;
pub mod compare;
pub mod conformance;
pub mod dump;
pub mod error;
pub mod gradcheck;
pub mod harness;
pub mod invariants;
mod macros;
#[cfg(feature = "opencl")]
#[allow(
    unsafe_code,
    reason = "kernel enqueues; each block has a SAFETY comment"
)]
pub mod opencl;
pub mod reference;
pub mod rng;
pub mod scalar;
pub mod seeds;
pub mod strategy;
pub mod tolerance;
pub mod validate;

pub use backend::Backend;
pub use error::{Error, Result};
#[cfg(feature = "opencl")]
pub use opencl::OpenCl;
pub use reference::Reference;
pub use scalar::Scalar;

/// Re-exported for callers of the public API.
pub use ndarray;
/// Re-exported so that [`backend_tests!`] expands without the caller depending on proptest.
pub use proptest;
