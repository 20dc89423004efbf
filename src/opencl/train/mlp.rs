//! The MLP ([`crate::reference::models::mlp`]) on the device: the reference's op sequence,
//! kernel for kernel.
//!
//! ```text
//! forward   z_l = a_{l−1}·W_lᵀ (matmul, B transposed) + b_l (add_rows);  a_l = act(z_l)
//! loss      BCE-with-logits(z_L, y) (mean)  |  MSE(a_L, y, reduction)
//! backward  g_L = ∂loss/∂z_L;   ∂W_l = g_lᵀ·a_{l−1} (A transposed);  ∂b_l = Σ_rows g_l;
//!           g_{l−1} = act'(g_l·W_l)
//! ```

use super::DeviceModel;
use crate::opencl::{DeviceBuffer, OpenCl};
use crate::reference::models::mlp::{Activation, Mlp, MlpBatch, MlpLoss};
use crate::reference::Reduction;
use crate::{Result, Scalar};

/// Device buffers of one MLP run (the batch is fixed for the run).
pub(crate) struct DeviceMlp<T: Scalar> {
    widths: Vec<usize>,
    rows: usize,
    hidden: Activation,
    output: Activation,
    loss: MlpLoss,
    /// `a_0 … a_L` (`a_0` = the inputs).
    activations: Vec<DeviceBuffer<T>>,
    /// `x·Wᵀ` before the bias, per layer.
    products: Vec<DeviceBuffer<T>>,
    /// `z_1 … z_L`.
    pre_activations: Vec<DeviceBuffer<T>>,
    targets: DeviceBuffer<T>,
    /// `∂L/∂a_l` and `∂L/∂z_l` scratch, per layer.
    grad_activations: Vec<DeviceBuffer<T>>,
    grad_pre_activations: Vec<DeviceBuffer<T>>,
}

impl<T: Scalar> DeviceMlp<T> {
    pub(crate) fn new(cl: &OpenCl, model: &Mlp<T>, batch: &MlpBatch<T>) -> Result<Self> {
        let widths = model.config.widths.clone();
        let rows = batch.inputs.nrows();
        // The reference's checks, in its order, so both backends fail alike.
        let outputs = widths.last().copied().unwrap_or(0);
        if batch.targets.dim() != (rows, outputs) {
            return Err(crate::Error::ShapeMismatch {
                op: "Mlp::loss_and_gradients",
                detail: format!(
                    "targets {:?} for inputs {:?} and {outputs} outputs",
                    batch.targets.dim(),
                    batch.inputs.dim()
                ),
            });
        }
        if batch.inputs.ncols() != widths.first().copied().unwrap_or(0) {
            return Err(crate::Error::ShapeMismatch {
                op: "Mlp::forward",
                detail: format!(
                    "inputs {:?} for {} input features",
                    batch.inputs.dim(),
                    widths[0]
                ),
            });
        }
        let inputs = cl.upload_buffer(&batch.inputs.iter().copied().collect::<Vec<_>>())?;
        let mut activations = vec![inputs];
        let mut products = Vec::new();
        let mut pre_activations = Vec::new();
        let mut grad_activations = Vec::new();
        let mut grad_pre_activations = Vec::new();
        for &width in &widths[1..] {
            activations.push(cl.zeros_buffer(rows * width)?);
            products.push(cl.zeros_buffer(rows * width)?);
            pre_activations.push(cl.zeros_buffer(rows * width)?);
            grad_activations.push(cl.zeros_buffer(rows * width)?);
            grad_pre_activations.push(cl.zeros_buffer(rows * width)?);
        }
        Ok(DeviceMlp {
            rows,
            hidden: model.config.hidden_activation,
            output: model.config.output_activation,
            loss: model.config.loss,
            activations,
            products,
            pre_activations,
            targets: cl.upload_buffer(&batch.targets.iter().copied().collect::<Vec<_>>())?,
            grad_activations,
            grad_pre_activations,
            widths,
        })
    }

    fn activation(&self, layer: usize) -> Activation {
        if layer + 2 == self.widths.len() {
            self.output
        } else {
            self.hidden
        }
    }
}

/// `a = act(z)` on the device.
fn enqueue_activation<T: Scalar>(
    cl: &OpenCl,
    activation: Activation,
    z: &DeviceBuffer<T>,
    a: &DeviceBuffer<T>,
    len: usize,
) -> Result<()> {
    match activation {
        Activation::Relu => cl.enqueue_elementwise("relu", &[z], a, &[], len),
        Activation::LeakyRelu(slope) => {
            cl.enqueue_elementwise("leaky_relu", &[z], a, &[T::narrow(slope)], len)
        }
        Activation::Sigmoid => cl.enqueue_elementwise("sigmoid", &[z], a, &[], len),
        Activation::Tanh => cl.enqueue_elementwise("tanh_forward", &[z], a, &[], len),
        Activation::Identity => cl.enqueue_copy(z, a, len),
    }
}

/// `∂L/∂z` from `z`, `a = act(z)` and `∂L/∂a`, as the reference's `Activation::backward`.
fn enqueue_activation_backward<T: Scalar>(
    cl: &OpenCl,
    activation: Activation,
    z: &DeviceBuffer<T>,
    a: &DeviceBuffer<T>,
    grad_a: &DeviceBuffer<T>,
    grad_z: &DeviceBuffer<T>,
    len: usize,
) -> Result<()> {
    match activation {
        Activation::Relu => cl.enqueue_elementwise("relu_backward", &[z, grad_a], grad_z, &[], len),
        Activation::LeakyRelu(slope) => cl.enqueue_elementwise(
            "leaky_relu_backward",
            &[z, grad_a],
            grad_z,
            &[T::narrow(slope)],
            len,
        ),
        Activation::Sigmoid => {
            cl.enqueue_elementwise("sigmoid_backward", &[a, grad_a], grad_z, &[], len)
        }
        Activation::Tanh => cl.enqueue_elementwise("tanh_backward", &[a, grad_a], grad_z, &[], len),
        Activation::Identity => cl.enqueue_copy(grad_a, grad_z, len),
    }
}

impl<T: Scalar> DeviceModel<T> for DeviceMlp<T> {
    fn enqueue_loss_and_gradients(
        &mut self,
        cl: &OpenCl,
        parameters: &[DeviceBuffer<T>],
        gradients: &[DeviceBuffer<T>],
        loss: &DeviceBuffer<T>,
        _step: u64,
    ) -> Result<()> {
        let n = self.rows;
        let layers = self.widths.len() - 1;
        for l in 0..layers {
            let (fan_in, fan_out) = (self.widths[l], self.widths[l + 1]);
            cl.enqueue_matmul(
                &self.activations[l],
                &parameters[2 * l],
                &self.products[l],
                n,
                fan_in,
                fan_out,
                false,
                true,
            )?;
            cl.enqueue_add_rows(
                &self.products[l],
                &parameters[2 * l + 1],
                &self.pre_activations[l],
                n,
                fan_out,
            )?;
            enqueue_activation(
                cl,
                self.activation(l),
                &self.pre_activations[l],
                &self.activations[l + 1],
                n * fan_out,
            )?;
        }
        let last = layers - 1;
        let len = n * self.widths[layers];
        match self.loss {
            MlpLoss::BceWithLogits => {
                cl.enqueue_bce_with_logits(
                    &self.pre_activations[last],
                    &self.targets,
                    loss,
                    len,
                    Reduction::Mean,
                )?;
                cl.enqueue_bce_with_logits_backward(
                    &self.pre_activations[last],
                    &self.targets,
                    &self.grad_pre_activations[last],
                    T::one(),
                    len,
                    Reduction::Mean,
                )?;
            }
            MlpLoss::Mse(reduction) => {
                let prediction = &self.activations[last + 1];
                cl.enqueue_mse(prediction, &self.targets, loss, len, reduction)?;
                cl.enqueue_mse_backward(
                    prediction,
                    &self.targets,
                    &self.grad_activations[last],
                    T::one(),
                    len,
                    reduction,
                )?;
                enqueue_activation_backward(
                    cl,
                    self.activation(last),
                    &self.pre_activations[last],
                    prediction,
                    &self.grad_activations[last],
                    &self.grad_pre_activations[last],
                    len,
                )?;
            }
        }
        for l in (0..layers).rev() {
            let (fan_in, fan_out) = (self.widths[l], self.widths[l + 1]);
            let grad_z = &self.grad_pre_activations[l];
            // ∂W_l = g_lᵀ·a_{l−1}: [fan_out, n]·[n, fan_in].
            cl.enqueue_matmul(
                grad_z,
                &self.activations[l],
                &gradients[2 * l],
                fan_out,
                n,
                fan_in,
                true,
                false,
            )?;
            cl.enqueue_sum_axis(grad_z, &gradients[2 * l + 1], n, fan_out, 0)?;
            if l > 0 {
                // ∂a_{l−1} = g_l·W_l: [n, fan_out]·[fan_out, fan_in].
                cl.enqueue_matmul(
                    grad_z,
                    &parameters[2 * l],
                    &self.grad_activations[l - 1],
                    n,
                    fan_out,
                    fan_in,
                    false,
                    false,
                )?;
                enqueue_activation_backward(
                    cl,
                    self.activation(l - 1),
                    &self.pre_activations[l - 1],
                    &self.activations[l],
                    &self.grad_activations[l - 1],
                    &self.grad_pre_activations[l - 1],
                    n * fan_in,
                )?;
            }
        }
        Ok(())
    }
}
