//! Multi-tensor optimizers that step through a [`Backend`]'s one-tensor entry points
//! ([`Backend::sgd_step`], [`Backend::adam_step`]), with the same fields as the reference's
//! [`crate::reference::optim::Sgd`] and [`crate::reference::optim::Adam`], so that an invariant
//! written against the reference optimizer runs unchanged on any backend.

use ndarray::Array1;

use crate::reference::optim::{AdamHyper, AdamState, SgdHyper, SgdState};
use crate::{Backend, Error, Result, Scalar};

/// Check one gradient per parameter tensor, before any backend call.
fn check_lengths<T>(
    op: &'static str,
    parameters: &[Array1<T>],
    gradients: &[Array1<T>],
) -> Result<()> {
    if parameters.len() != gradients.len() {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "{} parameter tensors but {} gradients",
                parameters.len(),
                gradients.len()
            ),
        });
    }
    Ok(())
}

/// Adam over a list of tensors, one [`Backend::adam_step`] call per tensor and step.
pub(crate) struct BackendAdam<'b, T, B> {
    backend: &'b B,
    /// Hyperparameters; a schedule may change `learning_rate` between steps.
    pub hyper: AdamHyper,
    /// One state per tensor, as the backend returned it.
    pub states: Vec<AdamState<T>>,
}

impl<'b, T: Scalar, B: Backend<T>> BackendAdam<'b, T, B> {
    /// Zero state for tensors of the given lengths. Errors: `InvalidParameter`.
    pub fn new(backend: &'b B, hyper: AdamHyper, lengths: &[usize]) -> Result<Self> {
        hyper.validate()?;
        Ok(BackendAdam {
            backend,
            hyper,
            states: lengths.iter().map(|&n| AdamState::zeros(n)).collect(),
        })
    }

    /// One step on every tensor, in place.
    pub fn step(&mut self, parameters: &mut [Array1<T>], gradients: &[Array1<T>]) -> Result<()> {
        check_lengths("adam_step", parameters, gradients)?;
        for ((theta, gradient), state) in parameters.iter_mut().zip(gradients).zip(&mut self.states)
        {
            let (next, next_state) =
                self.backend
                    .adam_step(state, theta.view(), gradient.view(), &self.hyper)?;
            *theta = next;
            *state = next_state;
        }
        Ok(())
    }
}

/// SGD over a list of tensors, one [`Backend::sgd_step`] call per tensor and step.
pub(crate) struct BackendSgd<'b, T, B> {
    backend: &'b B,
    /// Hyperparameters.
    pub hyper: SgdHyper,
    /// One state per tensor.
    pub states: Vec<SgdState<T>>,
}

impl<'b, T: Scalar, B: Backend<T>> BackendSgd<'b, T, B> {
    /// Fresh state (no momentum buffer) for tensors of the given lengths.
    /// Errors: `InvalidParameter`.
    pub fn new(backend: &'b B, hyper: SgdHyper, lengths: &[usize]) -> Result<Self> {
        hyper.validate()?;
        Ok(BackendSgd {
            backend,
            hyper,
            states: lengths
                .iter()
                .map(|&n| SgdState {
                    momentum_buffer: None,
                    last_step: Array1::zeros(n),
                })
                .collect(),
        })
    }

    /// One step on every tensor, in place.
    pub fn step(&mut self, parameters: &mut [Array1<T>], gradients: &[Array1<T>]) -> Result<()> {
        check_lengths("sgd_step", parameters, gradients)?;
        for ((theta, gradient), state) in parameters.iter_mut().zip(gradients).zip(&mut self.states)
        {
            let (next, next_state) =
                self.backend
                    .sgd_step(state, theta.view(), gradient.view(), &self.hyper)?;
            *theta = next;
            *state = next_state;
        }
        Ok(())
    }
}
