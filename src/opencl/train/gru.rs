//! The GRU of seed 002 ([`crate::reference::models::gru`]) on the device: the reference's op
//! sequence, with the gate elementwise work of a cell step fused into one kernel each way
//! (`opencl/gru.cl`).
//!
//! ```text
//! forward   x_all = embedding(table, items in time-major order)          [S·B, E]   1 launch
//!           gi_all = x_all·W_ihᵀ + b_ih     (every step at once)          [S·B, 3H]  2
//!           for t: gh = h_t·W_hhᵀ + b_hh;  (r, z, n, h_{t+1}) = cell(gi_t, gh, h_t)  3 per step
//!           logits = h_S·W_headᵀ + b_head;  L = cross_entropy(logits, targets, −100, mean)
//! backward  ∂logits = cross_entropy_backward(…, g = 1)
//!           ∂h_S = ∂logits·W_head;  ∂W_head = ∂logitsᵀ·h_S;  ∂b_head = Σ_rows ∂logits
//!           for t = S−1 … 0:  (∂gi_t, ∂gh_t, ∂h_direct) = cell_backward(∂h_{t+1}, cache_t)
//!                             ∂h_linear = ∂gh_t·W_hh  (not needed at t = 0)  2 per step
//!           ∂W_ih = Σ_{t=S−1…0} ∂gi_tᵀ·x_t   (one batched matmul, then the sum over steps)
//!           ∂W_hh = Σ_{t=S−1…0} ∂gh_tᵀ·h_t   (the same)
//!           ∂b_ih, ∂b_hh = Σ_{t=S−1…0} Σ_rows ∂g_t   (one kernel each)
//!           ∂x = ∂gi_all·W_ih (every step at once), rows reordered batch-major,
//!           ∂table = embedding_backward(items row-major, ∂x)
//! ```
//! Every dot product and every sum runs in the reference's order (matmul sums sequential in
//! the inner index; per-step gradients summed from zero with `t = S−1` first; embedding rows in
//! the reference's `b·S + t` order), so the only differences from the reference in the same
//! type are the built-ins (`exp` in σ, `tanh`, the cross-entropy's `exp`/`log`).
//! The batch is fixed for the run; every buffer is allocated once in [`DeviceGru::new`] and a
//! step reads nothing back.

use super::DeviceModel;
use crate::opencl::{round_up, to_u32, DeviceBuffer, DeviceIndices, OpenCl};
use crate::reference::models::gru::{
    GruBatch, GruModel, EMBEDDING_WEIGHT, GRU_BIAS_HH, GRU_BIAS_IH, GRU_WEIGHT_HH, GRU_WEIGHT_IH,
    HEAD_BIAS, HEAD_WEIGHT,
};
use crate::reference::{Reduction, DEFAULT_IGNORE_INDEX};
use crate::{validate, Error, Result, Scalar};

const OP: &str = "DeviceGru";

/// Device buffers of one GRU run (the batch is fixed for the run). Shapes: `B` sequences of
/// length `S`, vocabulary `V`, embedding `E`, hidden `H`, gates `G = 3H`.
pub(crate) struct DeviceGru<T: Scalar> {
    vocab: usize,
    embed: usize,
    hidden: usize,
    batch: usize,
    seq: usize,
    /// Items in time-major order (`t·B + b`), for the forward embedding.
    ids_time_major: DeviceIndices,
    /// Items in row-major order (`b·S + t`), for the embedding gradient (the reference's order).
    ids_batch_major: DeviceIndices,
    /// Targets `[B]` (−100 ignored).
    targets: DeviceIndices,
    /// `x_t` of every step `[S·B, E]`, time-major.
    inputs: DeviceBuffer<T>,
    /// `x·W_ihᵀ` and `+ b_ih` of every step `[S·B, G]`.
    input_product: DeviceBuffer<T>,
    input_gates: DeviceBuffer<T>,
    /// `h_0 = 0, h_1, …, h_S` `[B, H]` each (operands of the per-step matmul).
    hidden_states: Vec<DeviceBuffer<T>>,
    /// `h_0 … h_{S−1}` `[S·B, H]` (operand of the batched weight gradient); slice 0 stays 0.
    hidden_history: DeviceBuffer<T>,
    /// `h_t·W_hhᵀ` scratch and `gh_t = … + b_hh` of every step `[B, G]` (kept for the backward).
    hidden_product: DeviceBuffer<T>,
    hidden_gates: Vec<DeviceBuffer<T>>,
    /// `r`, `z`, `n` of every step `[S·B, H]`.
    reset: DeviceBuffer<T>,
    update: DeviceBuffer<T>,
    candidate: DeviceBuffer<T>,
    /// `h_S·W_headᵀ`, the logits and their gradient `[B, V]`.
    logits_product: DeviceBuffer<T>,
    logits: DeviceBuffer<T>,
    grad_logits: DeviceBuffer<T>,
    /// `∂L/∂h_S` from the head `[B, H]`.
    grad_head_hidden: DeviceBuffer<T>,
    /// `∂h_direct` of consecutive steps (ping-pong, so no kernel reads what it writes) and
    /// `∂h_linear = ∂gh·W_hh` `[B, H]`.
    grad_direct: [DeviceBuffer<T>; 2],
    grad_linear: DeviceBuffer<T>,
    /// `∂gi`, `∂gh` of every step `[S·B, G]`, and `∂gh` of the current step `[B, G]`.
    grad_input_gates: DeviceBuffer<T>,
    grad_hidden_gates: DeviceBuffer<T>,
    grad_hidden_step: DeviceBuffer<T>,
    /// `∂x` time-major `[S·B, E]` and batch-major `[B·S, E]`.
    grad_inputs_time: DeviceBuffer<T>,
    grad_inputs_batch: DeviceBuffer<T>,
    /// Per-step weight gradients `[S, G, E]` and `[S, G, H]`.
    parts_ih: DeviceBuffer<T>,
    parts_hh: DeviceBuffer<T>,
}

/// `a·b` or `TooLarge`.
fn product(a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or(Error::TooLarge {
        op: OP,
        what: "buffer length",
        value: a as u128 * b as u128,
        limit: usize::MAX as u128,
    })
}

impl<T: Scalar> DeviceGru<T> {
    /// Validate `model` and `batch` as the reference's `loss_and_gradients` does, upload the
    /// batch and allocate every buffer of the run. Errors: `EmptyInput` for `B = 0` or `S = 0`,
    /// `InvalidParameter` for an id `≥ V` or a target outside `0..V` that is not −100,
    /// `ShapeMismatch` for parameters that do not fit the config, `TooLarge` for sizes past
    /// `u32::MAX`, OpenCL errors.
    pub(crate) fn new(cl: &OpenCl, model: &GruModel<T>, batch: &GruBatch) -> Result<Self> {
        // The reference's own checks of the parameters (count and lengths).
        GruModel::from_parameters(model.config, model.parameters.clone())?;
        let config = model.config;
        let (vocab, embed, hidden) = (config.vocab, config.embed, config.hidden);
        let (rows, seq) = batch.items.dim();
        if rows == 0 || seq == 0 {
            return Err(Error::EmptyInput {
                op: OP,
                detail: format!(
                    "items [{rows}, {seq}]: the GRU needs at least one sequence of length ≥ 1"
                ),
            });
        }
        let row_major: Vec<usize> = batch.items.iter().copied().collect();
        validate::embedding_ids(OP, ndarray::ArrayView1::from(&row_major), vocab)?;
        validate::class_targets(OP, rows, vocab, batch.targets.view(), DEFAULT_IGNORE_INDEX)?;
        let gates = product(3, hidden)?;
        let tokens = product(rows, seq)?;
        // Every length a kernel indexes must fit u32 (the kernels' index type).
        for len in [
            product(tokens, gates)?,
            product(tokens, embed)?,
            product(product(seq, gates)?, embed.max(hidden))?,
            product(rows, vocab)?,
            product(vocab, embed.max(hidden))?,
        ] {
            to_u32(OP, len)?;
        }
        let as_id = |id: usize| -> Result<i64> {
            i64::try_from(id).map_err(|_| Error::TooLarge {
                op: OP,
                what: "item id",
                value: id as u128,
                limit: i64::MAX as u128,
            })
        };
        let batch_major = row_major
            .iter()
            .map(|&id| as_id(id))
            .collect::<Result<Vec<_>>>()?;
        let mut time_major = Vec::with_capacity(tokens);
        for t in 0..seq {
            for b in 0..rows {
                time_major.push(as_id(batch.items[[b, t]])?);
            }
        }
        let zeros = |len: usize| -> Result<DeviceBuffer<T>> {
            let buffer = cl.zeros_buffer::<T>(len)?;
            cl.enqueue_fill(&buffer, T::zero(), len)?;
            Ok(buffer)
        };
        let state = rows * hidden;
        Ok(DeviceGru {
            vocab,
            embed,
            hidden,
            batch: rows,
            seq,
            ids_time_major: cl.upload_indices(&time_major)?,
            ids_batch_major: cl.upload_indices(&batch_major)?,
            targets: cl.upload_indices(&batch.targets.to_vec())?,
            inputs: zeros(tokens * embed)?,
            input_product: zeros(tokens * gates)?,
            input_gates: zeros(tokens * gates)?,
            hidden_states: (0..=seq)
                .map(|_| zeros(state))
                .collect::<Result<Vec<_>>>()?,
            hidden_history: zeros(tokens * hidden)?,
            hidden_product: zeros(rows * gates)?,
            hidden_gates: (0..seq)
                .map(|_| zeros(rows * gates))
                .collect::<Result<Vec<_>>>()?,
            reset: zeros(tokens * hidden)?,
            update: zeros(tokens * hidden)?,
            candidate: zeros(tokens * hidden)?,
            logits_product: zeros(rows * vocab)?,
            logits: zeros(rows * vocab)?,
            grad_logits: zeros(rows * vocab)?,
            grad_head_hidden: zeros(state)?,
            grad_direct: [zeros(state)?, zeros(state)?],
            grad_linear: zeros(state)?,
            grad_input_gates: zeros(tokens * gates)?,
            grad_hidden_gates: zeros(tokens * gates)?,
            grad_hidden_step: zeros(rows * gates)?,
            grad_inputs_time: zeros(tokens * embed)?,
            grad_inputs_batch: zeros(tokens * embed)?,
            parts_ih: zeros(seq * gates * embed)?,
            parts_hh: zeros(seq * gates * hidden)?,
        })
    }

    /// The forward pass up to the logits (see the module doc).
    fn enqueue_forward(&self, cl: &OpenCl, p: &[DeviceBuffer<T>]) -> Result<()> {
        let (b, s, v, e, h) = (self.batch, self.seq, self.vocab, self.embed, self.hidden);
        let g = 3 * h;
        cl.enqueue_embedding(
            &p[EMBEDDING_WEIGHT],
            &self.ids_time_major,
            &self.inputs,
            v,
            e,
            s * b,
        )?;
        cl.enqueue_matmul(
            &self.inputs,
            &p[GRU_WEIGHT_IH],
            &self.input_product,
            s * b,
            e,
            g,
            false,
            true,
        )?;
        cl.enqueue_add_rows(
            &self.input_product,
            &p[GRU_BIAS_IH],
            &self.input_gates,
            s * b,
            g,
        )?;
        for t in 0..s {
            cl.enqueue_matmul(
                &self.hidden_states[t],
                &p[GRU_WEIGHT_HH],
                &self.hidden_product,
                b,
                h,
                g,
                false,
                true,
            )?;
            cl.enqueue_add_rows(
                &self.hidden_product,
                &p[GRU_BIAS_HH],
                &self.hidden_gates[t],
                b,
                g,
            )?;
            self.enqueue_cell_forward(cl, t)?;
        }
        cl.enqueue_matmul(
            &self.hidden_states[s],
            &p[HEAD_WEIGHT],
            &self.logits_product,
            b,
            h,
            v,
            false,
            true,
        )?;
        cl.enqueue_add_rows(&self.logits_product, &p[HEAD_BIAS], &self.logits, b, v)
    }

    /// Backpropagation through time from `∂logits` (see the module doc).
    fn enqueue_backward(
        &self,
        cl: &OpenCl,
        p: &[DeviceBuffer<T>],
        gradients: &[DeviceBuffer<T>],
    ) -> Result<()> {
        let (b, s, v, e, h) = (self.batch, self.seq, self.vocab, self.embed, self.hidden);
        let g = 3 * h;
        // Head: linear_backward(h_S, W_head, ∂logits).
        cl.enqueue_matmul(
            &self.grad_logits,
            &p[HEAD_WEIGHT],
            &self.grad_head_hidden,
            b,
            v,
            h,
            false,
            false,
        )?;
        cl.enqueue_matmul(
            &self.grad_logits,
            &self.hidden_states[s],
            &gradients[HEAD_WEIGHT],
            v,
            b,
            h,
            true,
            false,
        )?;
        cl.enqueue_sum_axis(&self.grad_logits, &gradients[HEAD_BIAS], b, v, 0)?;
        for t in (0..s).rev() {
            self.enqueue_cell_backward(cl, t)?;
            if t > 0 {
                // ∂h_linear = ∂gh_t·W_hh: [B, G]·[G, H]. h_0 is a constant: no gradient.
                cl.enqueue_matmul(
                    &self.grad_hidden_step,
                    &p[GRU_WEIGHT_HH],
                    &self.grad_linear,
                    b,
                    g,
                    h,
                    false,
                    false,
                )?;
            }
        }
        // ∂W_ih = Σ_t ∂gi_tᵀ·x_t and ∂W_hh = Σ_t ∂gh_tᵀ·h_t: per step [G, B]·[B, ·], summed
        // from zero with t = S−1 first (the reference's accumulation).
        cl.enqueue_batched_matmul(
            &self.grad_input_gates,
            &self.inputs,
            &self.parts_ih,
            s,
            g,
            b,
            e,
            true,
            false,
        )?;
        self.enqueue_sum_steps_reversed(cl, &self.parts_ih, &gradients[GRU_WEIGHT_IH], g * e)?;
        cl.enqueue_batched_matmul(
            &self.grad_hidden_gates,
            &self.hidden_history,
            &self.parts_hh,
            s,
            g,
            b,
            h,
            true,
            false,
        )?;
        self.enqueue_sum_steps_reversed(cl, &self.parts_hh, &gradients[GRU_WEIGHT_HH], g * h)?;
        self.enqueue_bias_gradient(cl, &self.grad_input_gates, &gradients[GRU_BIAS_IH])?;
        self.enqueue_bias_gradient(cl, &self.grad_hidden_gates, &gradients[GRU_BIAS_HH])?;
        // ∂x_t = ∂gi_t·W_ih for every step at once: [S·B, G]·[G, E].
        cl.enqueue_matmul(
            &self.grad_input_gates,
            &p[GRU_WEIGHT_IH],
            &self.grad_inputs_time,
            s * b,
            g,
            e,
            false,
            false,
        )?;
        self.enqueue_time_to_batch_major(cl)?;
        cl.enqueue_embedding_backward(
            &self.ids_batch_major,
            &self.grad_inputs_batch,
            &gradients[EMBEDDING_WEIGHT],
            v,
            e,
            s * b,
        )
    }

    /// Local and global sizes for `items` work items (one per output element).
    fn sizes(cl: &OpenCl, items: usize) -> (usize, usize) {
        let wg = cl.row_work_group();
        (round_up(items.max(1), wg), wg)
    }

    /// `gru_cell_forward` of step `t` (opencl/gru.cl).
    fn enqueue_cell_forward(&self, cl: &OpenCl, t: usize) -> Result<()> {
        const NAME: &str = "gru_cell_forward";
        let (b, h, s) = (self.batch, self.hidden, self.seq);
        let (Some(state), Some(next), Some(gates)) = (
            self.hidden_states.get(t),
            self.hidden_states.get(t + 1),
            self.hidden_gates.get(t),
        ) else {
            return Err(step_out_of_range(NAME, t, s));
        };
        let program = cl.program::<T>(NAME)?;
        let (global, local) = Self::sizes(cl, b * h);
        let kernel = cl
            .kernel(&program, NAME)
            .global_work_size(global)
            .local_work_size(local)
            .arg(&self.input_gates.buffer)
            .arg(&gates.buffer)
            .arg(&state.buffer)
            .arg(&self.reset.buffer)
            .arg(&self.update.buffer)
            .arg(&self.candidate.buffer)
            .arg(&next.buffer)
            .arg(&self.hidden_history.buffer)
            .arg(to_u32(NAME, b)?)
            .arg(to_u32(NAME, h)?)
            .arg(to_u32(NAME, t)?)
            .arg(u32::from(t + 1 < s))
            .build();
        cl.enqueue(kernel, NAME)
    }

    /// `gru_cell_backward` of step `t` (opencl/gru.cl): the upstream gradient is the head's at
    /// `t = S−1`, else `∂h_direct + ∂h_linear` of step `t + 1`.
    fn enqueue_cell_backward(&self, cl: &OpenCl, t: usize) -> Result<()> {
        const NAME: &str = "gru_cell_backward";
        let (b, h, s) = (self.batch, self.hidden, self.seq);
        let (Some(state), Some(gates)) = (self.hidden_states.get(t), self.hidden_gates.get(t))
        else {
            return Err(step_out_of_range(NAME, t, s));
        };
        let [even, odd] = &self.grad_direct;
        let (write, read) = if t % 2 == 0 { (even, odd) } else { (odd, even) };
        let last = t + 1 == s;
        let (g_a, g_b) = if last {
            (&self.grad_head_hidden, &self.grad_head_hidden)
        } else {
            (read, &self.grad_linear)
        };
        let program = cl.program::<T>(NAME)?;
        let (global, local) = Self::sizes(cl, b * h);
        let kernel = cl
            .kernel(&program, NAME)
            .global_work_size(global)
            .local_work_size(local)
            .arg(&g_a.buffer)
            .arg(&g_b.buffer)
            .arg(u32::from(!last))
            .arg(&self.reset.buffer)
            .arg(&self.update.buffer)
            .arg(&self.candidate.buffer)
            .arg(&gates.buffer)
            .arg(&state.buffer)
            .arg(&self.grad_input_gates.buffer)
            .arg(&self.grad_hidden_gates.buffer)
            .arg(&self.grad_hidden_step.buffer)
            .arg(&write.buffer)
            .arg(to_u32(NAME, b)?)
            .arg(to_u32(NAME, h)?)
            .arg(to_u32(NAME, t)?)
            .build();
        cl.enqueue(kernel, NAME)
    }

    /// `out = Σ_{t=S−1…0} parts_t` (`gru_sum_steps_reversed`), `parts` `[S, len]`.
    fn enqueue_sum_steps_reversed(
        &self,
        cl: &OpenCl,
        parts: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        len: usize,
    ) -> Result<()> {
        const NAME: &str = "gru_sum_steps_reversed";
        check_lengths(NAME, &[(parts.len, self.seq * len), (out.len, len)])?;
        let program = cl.program::<T>(NAME)?;
        let (global, local) = Self::sizes(cl, len);
        let kernel = cl
            .kernel(&program, NAME)
            .global_work_size(global)
            .local_work_size(local)
            .arg(&parts.buffer)
            .arg(&out.buffer)
            .arg(to_u32(NAME, self.seq)?)
            .arg(to_u32(NAME, len)?)
            .build();
        cl.enqueue(kernel, NAME)
    }

    /// `out_j = Σ_{t=S−1…0} Σ_b grad_gates[t, b, j]` (`gru_bias_gradient`).
    fn enqueue_bias_gradient(
        &self,
        cl: &OpenCl,
        grad_gates: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
    ) -> Result<()> {
        const NAME: &str = "gru_bias_gradient";
        let gates = 3 * self.hidden;
        check_lengths(
            NAME,
            &[
                (grad_gates.len, self.seq * self.batch * gates),
                (out.len, gates),
            ],
        )?;
        let program = cl.program::<T>(NAME)?;
        let (global, local) = Self::sizes(cl, gates);
        let kernel = cl
            .kernel(&program, NAME)
            .global_work_size(global)
            .local_work_size(local)
            .arg(&grad_gates.buffer)
            .arg(&out.buffer)
            .arg(to_u32(NAME, self.seq)?)
            .arg(to_u32(NAME, self.batch)?)
            .arg(to_u32(NAME, gates)?)
            .build();
        cl.enqueue(kernel, NAME)
    }

    /// `∂x` rows from time-major `t·B + b` to the reference's `b·S + t`.
    fn enqueue_time_to_batch_major(&self, cl: &OpenCl) -> Result<()> {
        const NAME: &str = "gru_time_to_batch_major";
        let len = self.seq * self.batch * self.embed;
        let program = cl.program::<T>(NAME)?;
        let (global, local) = Self::sizes(cl, len);
        let kernel = cl
            .kernel(&program, NAME)
            .global_work_size(global)
            .local_work_size(local)
            .arg(&self.grad_inputs_time.buffer)
            .arg(&self.grad_inputs_batch.buffer)
            .arg(to_u32(NAME, self.seq)?)
            .arg(to_u32(NAME, self.batch)?)
            .arg(to_u32(NAME, self.embed)?)
            .build();
        cl.enqueue(kernel, NAME)
    }
}

/// `ShapeMismatch` unless every `(buffer length, required)` pair is equal.
fn check_lengths(op: &'static str, pairs: &[(usize, usize)]) -> Result<()> {
    for &(len, required) in pairs {
        if len != required {
            return Err(Error::ShapeMismatch {
                op,
                detail: format!("a buffer of {len} elements where {required} are needed"),
            });
        }
    }
    Ok(())
}

fn step_out_of_range(op: &'static str, t: usize, seq: usize) -> Error {
    Error::InvalidParameter {
        op,
        name: "step",
        value: t.to_string(),
        reason: format!("must be < the sequence length {seq}"),
    }
}

impl<T: Scalar> DeviceModel<T> for DeviceGru<T> {
    /// ```text
    /// L = cross_entropy(forward(items).logits, targets, ignore_index = −100, mean)
    /// gradients = backward(cross_entropy_backward(…, g = 1))
    /// ```
    /// No dropout (the reference GRU has none): `step` is unused.
    fn enqueue_loss_and_gradients(
        &mut self,
        cl: &OpenCl,
        parameters: &[DeviceBuffer<T>],
        gradients: &[DeviceBuffer<T>],
        loss: &DeviceBuffer<T>,
        _step: u64,
    ) -> Result<()> {
        let expected = [
            self.vocab * self.embed,
            3 * self.hidden * self.embed,
            3 * self.hidden * self.hidden,
            3 * self.hidden,
            3 * self.hidden,
            self.vocab * self.hidden,
            self.vocab,
        ];
        check_lengths(
            OP,
            &[
                (parameters.len(), expected.len()),
                (gradients.len(), expected.len()),
            ],
        )?;
        for ((p, g), &n) in parameters.iter().zip(gradients).zip(&expected) {
            check_lengths(OP, &[(p.len, n), (g.len, n)])?;
        }
        self.enqueue_forward(cl, parameters)?;
        let (rows, vocab) = (self.batch, self.vocab);
        cl.enqueue_cross_entropy(
            &self.logits,
            &self.targets,
            loss,
            rows,
            vocab,
            DEFAULT_IGNORE_INDEX,
            Reduction::Mean,
        )?;
        cl.enqueue_cross_entropy_backward(
            &self.logits,
            &self.targets,
            &self.grad_logits,
            T::one(),
            rows,
            vocab,
            DEFAULT_IGNORE_INDEX,
            Reduction::Mean,
        )?;
        self.enqueue_backward(cl, parameters, gradients)
    }
}
