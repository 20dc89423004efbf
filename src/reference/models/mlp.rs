//! A multilayer perceptron: seed 000's classifier head (LeakyReLU, BCE from logits) and seed
//! 001's regressor (ReLU, sigmoid output, MSE with sum reduction).

use ndarray::{Array1, Array2, ArrayView2};

use super::{flatten, linear, linear_backward, Model};
use crate::reference::{self, Reduction};
use crate::rng::{init_uniform, RandomKey};
use crate::{Error, Result, Scalar};

/// An elementwise activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`, derivative 0 at exactly 0 (PyTorch).
    Relu,
    /// `x` for `x > 0`, `slope·x` otherwise (PyTorch `LeakyReLU(negative_slope)`).
    LeakyRelu(f64),
    /// `σ(x)` (two-branch stable form, [`reference::sigmoid`]).
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `x`.
    Identity,
}

impl Activation {
    fn forward<T: Scalar>(self, z: ArrayView2<'_, T>) -> Array2<T> {
        match self {
            Activation::Relu => reference::relu(z),
            Activation::LeakyRelu(slope) => reference::leaky_relu(z, T::narrow(slope)),
            Activation::Sigmoid => reference::sigmoid_array(z),
            Activation::Tanh => reference::tanh(z),
            Activation::Identity => z.to_owned(),
        }
    }

    /// Gradient with respect to the pre-activation `z`, given `z`, the output `a` and `∂L/∂a`.
    fn backward<T: Scalar>(
        self,
        z: ArrayView2<'_, T>,
        a: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        match self {
            Activation::Relu => reference::relu_backward(z, grad_output),
            Activation::LeakyRelu(slope) => {
                reference::leaky_relu_backward(z, grad_output, T::narrow(slope))
            }
            Activation::Sigmoid => reference::sigmoid_backward(a, grad_output),
            Activation::Tanh => reference::tanh_backward(a, grad_output),
            Activation::Identity => Ok(grad_output.to_owned()),
        }
    }
}

/// The loss an [`Mlp`] is trained with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MlpLoss {
    /// Binary cross-entropy on the last layer's pre-activation (logits), mean over all
    /// outputs (PyTorch `BCEWithLogitsLoss()`). Requires the output activation `Identity`.
    BceWithLogits,
    /// Squared error on the output activation, mean or sum (PyTorch `MSELoss(reduction)`).
    Mse(Reduction),
}

/// Shape and settings of an [`Mlp`].
#[derive(Debug, Clone, PartialEq)]
pub struct MlpConfig {
    /// Layer widths `[d_0 (inputs), d_1, …, d_L (outputs)]`, at least two entries, all ≥ 1.
    pub widths: Vec<usize>,
    /// Activation after every hidden layer.
    pub hidden_activation: Activation,
    /// Activation after the last layer.
    pub output_activation: Activation,
    /// The loss.
    pub loss: MlpLoss,
    /// Seed of the parameter initialisation.
    pub seed: u64,
}

/// One batch: inputs `[n, d_0]` and targets `[n, d_L]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpBatch<T> {
    /// Inputs, one row per example.
    pub inputs: Array2<T>,
    /// Targets (labels in `[0, 1]` for BCE), one row per example.
    pub targets: Array2<T>,
}

/// A multilayer perceptron with PyTorch `nn.Linear` layers:
/// ```text
/// a_0 = x;   z_l = a_{l−1}·W_lᵀ + b_l;   a_l = act(z_l)   (hidden act for l < L, output act at L)
/// ```
/// Parameters, in order: `layer{l}.weight` (`[d_l, d_{l−1}]`, flattened row-major), then
/// `layer{l}.bias` (`[d_l]`), for `l = 1..L`. Init: PyTorch's `nn.Linear` default, weight and
/// bias from `U(−1/√d_{l−1}, 1/√d_{l−1})` ([`init_uniform`], key `(seed, 0, tensor index)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp<T> {
    /// The configuration.
    pub config: MlpConfig,
    parameters: Vec<Array1<T>>,
}

/// Intermediate values of a forward pass (what backward needs).
#[derive(Debug, Clone, PartialEq)]
pub struct MlpForward<T> {
    /// Pre-activations `z_1 … z_L`.
    pub pre_activations: Vec<Array2<T>>,
    /// Activations `a_0 = x, a_1 … a_L`.
    pub activations: Vec<Array2<T>>,
}

impl<T: Scalar> Mlp<T> {
    /// A freshly initialised MLP. Errors: `InvalidParameter` for fewer than two widths, a zero
    /// width, or BCE with an output activation other than `Identity`; `TooLarge` for a weight
    /// matrix whose element count overflows or that the host cannot allocate.
    pub fn new(config: MlpConfig) -> Result<Self> {
        const OP: &str = "Mlp::new";
        if config.widths.len() < 2 || config.widths.contains(&0) {
            return Err(Error::InvalidParameter {
                op: OP,
                name: "widths",
                value: format!("{:?}", config.widths),
                reason: "at least two widths, each ≥ 1".into(),
            });
        }
        if config.loss == MlpLoss::BceWithLogits && config.output_activation != Activation::Identity
        {
            return Err(Error::InvalidParameter {
                op: OP,
                name: "output_activation",
                value: format!("{:?}", config.output_activation),
                reason: "BCE-with-logits takes the raw logits: use Activation::Identity".into(),
            });
        }
        let mut parameters = Vec::new();
        for (l, pair) in config.widths.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            let key = |t: usize| RandomKey {
                seed: config.seed,
                step: 0,
                tensor_id: t as u64,
            };
            let weights =
                crate::validate::element_count(OP, "weight elements", &[fan_out, fan_in])?;
            parameters.push(init_uniform::<T, _>(weights, bound, key(2 * l))?);
            parameters.push(init_uniform::<T, _>(fan_out, bound, key(2 * l + 1))?);
        }
        Ok(Mlp { config, parameters })
    }

    fn layer_count(&self) -> usize {
        self.config.widths.len() - 1
    }

    fn activation(&self, layer: usize) -> Activation {
        if layer + 1 == self.layer_count() {
            self.config.output_activation
        } else {
            self.config.hidden_activation
        }
    }

    /// The forward pass on inputs `[n, d_0]`. Errors: `ShapeMismatch` for the wrong width.
    pub fn forward(&self, inputs: ArrayView2<'_, T>) -> Result<MlpForward<T>> {
        let mut activations = vec![inputs.to_owned()];
        let mut pre_activations = Vec::new();
        for l in 0..self.layer_count() {
            let previous = activations[l].view();
            let z = linear(
                previous,
                self.parameters[2 * l].view(),
                self.parameters[2 * l + 1].view(),
                self.config.widths[l + 1],
            )?;
            activations.push(self.activation(l).forward(z.view()));
            pre_activations.push(z);
        }
        Ok(MlpForward {
            pre_activations,
            activations,
        })
    }

    /// Replace the parameters (same count and lengths). Errors: `ShapeMismatch`.
    pub fn set_parameters(&mut self, parameters: Vec<Array1<T>>) -> Result<()> {
        let same = parameters.len() == self.parameters.len()
            && parameters
                .iter()
                .zip(&self.parameters)
                .all(|(a, b)| a.len() == b.len());
        if !same {
            return Err(Error::ShapeMismatch {
                op: "Mlp::set_parameters",
                detail: "parameter count or lengths differ".into(),
            });
        }
        self.parameters = parameters;
        Ok(())
    }
}

impl<T: Scalar> Model<T> for Mlp<T> {
    type Batch = MlpBatch<T>;

    fn parameters(&self) -> &[Array1<T>] {
        &self.parameters
    }

    fn parameters_mut(&mut self) -> &mut [Array1<T>] {
        &mut self.parameters
    }

    fn parameter_names(&self) -> Vec<String> {
        (1..=self.layer_count())
            .flat_map(|l| [format!("layer{l}.weight"), format!("layer{l}.bias")])
            .collect()
    }

    /// Loss and gradients; the step is unused (no dropout).
    fn loss_and_gradients(&self, batch: &MlpBatch<T>, _step: u64) -> Result<(T, Vec<Array1<T>>)> {
        const OP: &str = "Mlp::loss_and_gradients";
        let outputs = *self.config.widths.last().unwrap_or(&0);
        if batch.targets.dim() != (batch.inputs.nrows(), outputs) {
            return Err(Error::ShapeMismatch {
                op: OP,
                detail: format!(
                    "targets {:?} for inputs {:?} and {outputs} outputs",
                    batch.targets.dim(),
                    batch.inputs.dim()
                ),
            });
        }
        let forward = self.forward(batch.inputs.view())?;
        let last = self.layer_count() - 1;
        let (loss, mut grad_z) = match self.config.loss {
            MlpLoss::BceWithLogits => {
                let logits = flatten(forward.pre_activations[last].clone());
                let labels = flatten(batch.targets.clone());
                let loss =
                    reference::bce_with_logits(logits.view(), labels.view(), Reduction::Mean)?;
                let grad = reference::bce_with_logits_backward(
                    logits.view(),
                    labels.view(),
                    Reduction::Mean,
                    T::one(),
                )?;
                let grad = grad
                    .into_shape_with_order(batch.targets.dim())
                    .map_err(|e| Error::ShapeMismatch {
                        op: OP,
                        detail: e.to_string(),
                    })?;
                (loss, grad)
            }
            MlpLoss::Mse(reduction) => {
                let prediction = forward.activations[last + 1].view();
                let loss = reference::mse(prediction, batch.targets.view(), reduction)?;
                let grad_a =
                    reference::mse_backward(prediction, batch.targets.view(), reduction, T::one())?;
                let grad = self.activation(last).backward(
                    forward.pre_activations[last].view(),
                    prediction,
                    grad_a.view(),
                )?;
                (loss, grad)
            }
        };
        let mut gradients = vec![Array1::zeros(0); self.parameters.len()];
        for l in (0..self.layer_count()).rev() {
            let (grad_input, grad_weight, grad_bias) = linear_backward(
                forward.activations[l].view(),
                self.parameters[2 * l].view(),
                grad_z.view(),
            )?;
            gradients[2 * l] = grad_weight;
            gradients[2 * l + 1] = grad_bias;
            if l > 0 {
                grad_z = self.activation(l - 1).backward(
                    forward.pre_activations[l - 1].view(),
                    forward.activations[l].view(),
                    grad_input.view(),
                )?;
            }
        }
        Ok((loss, gradients))
    }
}
