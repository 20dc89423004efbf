//! The `Backend` trait: what a backend must compute to be checked by the oracle.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use crate::{Error, Result, Scalar};

/// Names of every op in the trait, in the order the suite runs them.
///
/// One name is shared by the reference fn, the kernel, the `Backend` method, the bound fn in
/// [`crate::tolerance`], the conformance fn and the bench id, so `grep` finds all of them.
pub const OPS: &[&str] = &[
    "log_sum_exp_rows",
    "softmax_rows",
    "log_softmax_rows",
    "bce_with_logits_mean",
    "bce_with_logits_mean_backward",
];

/// Build the [`Error::Unsupported`] a default method returns.
pub fn unsupported<T: Scalar>(backend: &str, op: &'static str) -> Error {
    Error::Unsupported {
        backend: backend.to_string(),
        op,
        scalar: T::NAME,
        reason: String::new(),
    }
}

/// A backend computes ML ops on `ndarray` views and returns owned arrays.
///
/// Every op has a default body returning [`Error::Unsupported`], so a backend implements what
/// it has and keeps compiling as ops are added; the suite reports what is missing as
/// `SKIPPED (unsupported)`, never as passed. Implementations must validate their inputs and
/// return typed errors (see [`crate::validate`]); they must not panic.
///
/// Semantics of each op (formula, NaN/∞ policy, bound) are documented on the reference
/// functions in [`crate::reference`], which are the specification.
pub trait Backend<T: Scalar>: Send + Sync {
    /// Short stable name used in test names and reports, e.g. `"reference"` or `"opencl"`.
    fn name(&self) -> String;

    /// Row-wise log-sum-exp, `lse_r = log Σ_j exp(x_rj)`; see
    /// [`crate::reference::log_sum_exp_rows`].
    fn log_sum_exp_rows(&self, x: ArrayView2<'_, T>) -> Result<Array1<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "log_sum_exp_rows"))
    }

    /// Row-wise softmax; see [`crate::reference::softmax_rows`].
    fn softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "softmax_rows"))
    }

    /// Row-wise log-softmax; see [`crate::reference::log_softmax_rows`].
    fn log_softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        let _ = x;
        Err(unsupported::<T>(&self.name(), "log_softmax_rows"))
    }

    /// Mean binary cross-entropy from logits; see [`crate::reference::bce_with_logits_mean`].
    fn bce_with_logits_mean(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
    ) -> Result<T> {
        let _ = (logits, labels);
        Err(unsupported::<T>(&self.name(), "bce_with_logits_mean"))
    }

    /// Gradient of [`Backend::bce_with_logits_mean`] with respect to the logits, times the
    /// upstream gradient `grad_output`; see [`crate::reference::bce_with_logits_mean_backward`].
    fn bce_with_logits_mean_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        grad_output: T,
    ) -> Result<Array1<T>> {
        let _ = (logits, labels, grad_output);
        Err(unsupported::<T>(
            &self.name(),
            "bce_with_logits_mean_backward",
        ))
    }
}

impl<T: Scalar, B: Backend<T> + ?Sized> Backend<T> for &B {
    fn name(&self) -> String {
        (**self).name()
    }
    fn log_sum_exp_rows(&self, x: ArrayView2<'_, T>) -> Result<Array1<T>> {
        (**self).log_sum_exp_rows(x)
    }
    fn softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).softmax_rows(x)
    }
    fn log_softmax_rows(&self, x: ArrayView2<'_, T>) -> Result<Array2<T>> {
        (**self).log_softmax_rows(x)
    }
    fn bce_with_logits_mean(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
    ) -> Result<T> {
        (**self).bce_with_logits_mean(logits, labels)
    }
    fn bce_with_logits_mean_backward(
        &self,
        logits: ArrayView1<'_, T>,
        labels: ArrayView1<'_, T>,
        grad_output: T,
    ) -> Result<Array1<T>> {
        (**self).bce_with_logits_mean_backward(logits, labels, grad_output)
    }
}
