//! The BERT-like encoder ([`crate::reference::models::encoder`]) on the device: the reference's
//! op sequence, kernel for kernel, with every activation kept in buffers allocated once.
//!
//! ```text
//! forward   x = dropout_1000(LN(E_tok[ids] + E_pos[r mod S] + e_type))        (encoder_embed_sum)
//!           per layer l: q,k,v = x·W_{q,k,v}ᵀ + b (matmul, B transposed; add_rows)
//!                        c = attention(q, k, v, mask[, causal])              (token-major)
//!                        x1 = LN1(x + dropout_{1000+10l+1}(c·W_oᵀ + b_o))
//!                        x  = LN2(x1 + dropout_{1000+10l+2}(GELU(x1·W_1ᵀ + b_1)·W_2ᵀ + b_2))
//!           head: token | masked-LM (dense, GELU, LN, decoder) | pooled (first token, tanh)
//! loss      cross-entropy (mean over targets ≠ −100)
//! backward  the reference's VJPs in its order; linear: ∂W = gᵀ·x (A transposed),
//!           ∂b = Σ_rows g, ∂x = g·W; dropout masks regenerated from their keys
//! ```
//! Attention: without the causal mask, the layers' [`OpenCl::enqueue_attention`] in the
//! token-major layout ([`AttentionLayout::Bshd`]); with it, the kernels of `opencl/encoder.cl`
//! (the attention contract has no causal mask), which sum in the reference's order: under the
//! causal mask the reference runs one query at a time and accumulates `∂K`, `∂V` over the queries
//! in order from zero, which are the same sequential sums.

use super::DeviceModel;
use crate::opencl::{gelu_inv_sqrt2, gelu_inv_sqrt_2pi, round_up, to_u32};
use crate::opencl::{AttentionLayout, DeviceBuffer, DeviceIndices, OpenCl};
use crate::reference::models::encoder::{Encoder, EncoderBatch, EncoderHead, MASKED_SCORE};
use crate::reference::{Reduction, DEFAULT_IGNORE_INDEX};
use crate::rng::RandomKey;
use crate::{Error, Result, Scalar};

const OP: &str = "DeviceEncoder";
/// Parameter tensors of the embeddings and of one layer (the reference's layout).
const EMBEDDING_TENSORS: usize = 5;
const LAYER_TENSORS: usize = 16;

/// Forward values of one layer, kept for the backward.
struct LayerBuffers<T: Scalar> {
    /// `x·Wᵀ` before the bias, for q, k, v (scratch).
    products: [DeviceBuffer<T>; 3],
    /// q, k, v `[B·S, d]` (token-major heads).
    qkv: [DeviceBuffer<T>; 3],
    /// Attention probabilities `[B, h, S, S]`.
    probs: DeviceBuffer<T>,
    /// Attention context `[B·S, d]`.
    context: DeviceBuffer<T>,
    attention_product: DeviceBuffer<T>,
    attention_out: DeviceBuffer<T>,
    attention_dropped: DeviceBuffer<T>,
    residual1: DeviceBuffer<T>,
    x1: DeviceBuffer<T>,
    ffn_product: DeviceBuffer<T>,
    ffn_hidden: DeviceBuffer<T>,
    ffn_activated: DeviceBuffer<T>,
    ffn_product2: DeviceBuffer<T>,
    ffn_out: DeviceBuffer<T>,
    ffn_dropped: DeviceBuffer<T>,
    residual2: DeviceBuffer<T>,
    /// The layer's output (the next layer's input).
    output: DeviceBuffer<T>,
}

/// Head intermediates: `(product, pre, post)` per head kind (see [`DeviceEncoder::head`]).
struct HeadBuffers<T: Scalar> {
    /// Pooled: the first tokens `[B, d]`.
    first: Option<DeviceBuffer<T>>,
    /// Masked-LM / pooled: the dense layer's product and output.
    dense_product: Option<DeviceBuffer<T>>,
    dense: Option<DeviceBuffer<T>>,
    /// Masked-LM: GELU(dense), LN of it; pooled: tanh(dense).
    activated: Option<DeviceBuffer<T>>,
    normed: Option<DeviceBuffer<T>>,
    logits_product: DeviceBuffer<T>,
    logits: DeviceBuffer<T>,
    grad_logits: DeviceBuffer<T>,
    /// Backward scratch of the masked-LM / pooled head (`[rows, d]` each).
    grad_a: Option<DeviceBuffer<T>>,
    grad_b: Option<DeviceBuffer<T>>,
}

/// Backward scratch shared by the layers (the queue is in order, layers run one after another).
struct GradBuffers<T: Scalar> {
    /// `∂L/∂x` of the current layer's output and of its input (ping-pong).
    x: [DeviceBuffer<T>; 2],
    res2: DeviceBuffer<T>,
    ffn_out: DeviceBuffer<T>,
    activated: DeviceBuffer<T>,
    hidden: DeviceBuffer<T>,
    x1_ffn: DeviceBuffer<T>,
    x1: DeviceBuffer<T>,
    res1: DeviceBuffer<T>,
    attention_out: DeviceBuffer<T>,
    context: DeviceBuffer<T>,
    qkv: [DeviceBuffer<T>; 3],
    input_part: DeviceBuffer<T>,
    scores: DeviceBuffer<T>,
    normed: DeviceBuffer<T>,
    embedded: DeviceBuffer<T>,
    /// `x̂` scratch of the LayerNorm backward (`[B·S, d]`, the widest LN input).
    xhat: DeviceBuffer<T>,
}

/// Device buffers of one encoder run (the batch is fixed for the run).
pub(crate) struct DeviceEncoder<T: Scalar> {
    vocab: usize,
    hidden: usize,
    heads: usize,
    layers: usize,
    intermediate: usize,
    max_positions: usize,
    dropout: f64,
    eps: T,
    causal: bool,
    head_kind: EncoderHead,
    seed: u64,
    batch: usize,
    seq: usize,
    /// Rows of the logits: `B·S` (token, masked-LM) or `B` (pooled).
    logit_rows: usize,
    /// Columns of the logits.
    classes: usize,
    ids: DeviceIndices,
    targets: DeviceIndices,
    key_mask: DeviceBuffer<T>,
    tokens: DeviceBuffer<T>,
    embedded: DeviceBuffer<T>,
    embedding_normed: DeviceBuffer<T>,
    /// The first layer's input (embedding dropout output).
    embedding_out: DeviceBuffer<T>,
    layer_buffers: Vec<LayerBuffers<T>>,
    head: HeadBuffers<T>,
    grads: GradBuffers<T>,
}

fn invalid(name: &'static str, value: String, reason: String) -> Error {
    Error::InvalidParameter {
        op: OP,
        name,
        value,
        reason,
    }
}

fn buffers<T: Scalar, const N: usize>(cl: &OpenCl, len: usize) -> Result<[DeviceBuffer<T>; N]> {
    let list = (0..N)
        .map(|_| cl.zeros_buffer::<T>(len))
        .collect::<Result<Vec<_>>>()?;
    list.try_into()
        .map_err(|_| Error::opencl(OP, "allocating a buffer array"))
}

fn optional<T: Scalar>(cl: &OpenCl, wanted: bool, len: usize) -> Result<Option<DeviceBuffer<T>>> {
    if wanted {
        cl.zeros_buffer::<T>(len).map(Some)
    } else {
        Ok(None)
    }
}

fn required<T: Scalar>(buffer: &Option<DeviceBuffer<T>>) -> Result<&DeviceBuffer<T>> {
    buffer
        .as_ref()
        .ok_or_else(|| Error::opencl(OP, "a head buffer was not allocated"))
}

impl<T: Scalar> DeviceEncoder<T> {
    /// Validate `batch` against `model` as the reference's forward does and allocate every
    /// buffer of a step. Errors: `EmptyInput` for an empty batch, `InvalidParameter` for
    /// `seq > max_positions`, ids past the vocabulary, targets outside the classes (other than
    /// −100) or an eps that rounds to 0 in `T`; `ShapeMismatch` for a mask or targets of the
    /// wrong shape; OpenCL errors.
    pub(crate) fn new(cl: &OpenCl, model: &Encoder<T>, batch: &EncoderBatch) -> Result<Self> {
        let c = &model.config;
        let (b, seq) = batch.ids.dim();
        if b == 0 || seq == 0 {
            return Err(Error::EmptyInput {
                op: OP,
                detail: "empty batch or sequence".into(),
            });
        }
        if seq > c.max_positions {
            return Err(invalid(
                "seq",
                seq.to_string(),
                format!("at most max_positions = {}", c.max_positions),
            ));
        }
        let eps = T::narrow(c.layer_norm_eps);
        if eps.partial_cmp(&T::zero()) != Some(std::cmp::Ordering::Greater) {
            return Err(invalid(
                "layer_norm_eps",
                format!("{:e}", c.layer_norm_eps),
                format!("rounds to 0 in {}", T::NAME),
            ));
        }
        let (d, n) = (c.hidden, b * seq);
        let (logit_rows, classes) = match c.head {
            EncoderHead::Token { classes } => (n, classes),
            EncoderHead::MaskedLm => (n, c.vocab),
            EncoderHead::Pooled { classes } => (b, classes),
        };
        if batch.targets.len() != logit_rows {
            return Err(Error::ShapeMismatch {
                op: OP,
                detail: format!(
                    "{} targets for {logit_rows} rows of logits",
                    batch.targets.len()
                ),
            });
        }
        if let Some((i, &t)) = batch.targets.iter().enumerate().find(|&(_, &t)| {
            t != DEFAULT_IGNORE_INDEX && usize::try_from(t).map_or(true, |t| t >= classes)
        }) {
            return Err(invalid(
                "targets",
                format!("targets[{i}] = {t}"),
                format!("must be in 0..{classes} or {DEFAULT_IGNORE_INDEX}"),
            ));
        }
        let key_mask: Vec<T> = match &batch.attention_mask {
            None => vec![T::zero(); n],
            Some(m) if m.dim() == (b, seq) => m
                .iter()
                .map(|&keep| {
                    if keep {
                        T::zero()
                    } else {
                        T::narrow(MASKED_SCORE)
                    }
                })
                .collect(),
            Some(m) => {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    detail: format!("attention mask {:?} for ids {:?}", m.dim(), (b, seq)),
                })
            }
        };
        let ids = batch
            .ids
            .iter()
            .map(|&id| {
                (id < c.vocab)
                    .then(|| i64::try_from(id).ok())
                    .flatten()
                    .ok_or_else(|| {
                        invalid(
                            "ids",
                            id.to_string(),
                            format!("ids must be < the vocabulary size {}", c.vocab),
                        )
                    })
            })
            .collect::<Result<Vec<i64>>>()?;
        let scores = b * c.heads * seq * seq;
        let wide = n * c.intermediate;
        let layer_buffers = (0..c.layers)
            .map(|_| -> Result<LayerBuffers<T>> {
                Ok(LayerBuffers {
                    products: buffers(cl, n * d)?,
                    qkv: buffers(cl, n * d)?,
                    probs: cl.zeros_buffer(scores)?,
                    context: cl.zeros_buffer(n * d)?,
                    attention_product: cl.zeros_buffer(n * d)?,
                    attention_out: cl.zeros_buffer(n * d)?,
                    attention_dropped: cl.zeros_buffer(n * d)?,
                    residual1: cl.zeros_buffer(n * d)?,
                    x1: cl.zeros_buffer(n * d)?,
                    ffn_product: cl.zeros_buffer(wide)?,
                    ffn_hidden: cl.zeros_buffer(wide)?,
                    ffn_activated: cl.zeros_buffer(wide)?,
                    ffn_product2: cl.zeros_buffer(n * d)?,
                    ffn_out: cl.zeros_buffer(n * d)?,
                    ffn_dropped: cl.zeros_buffer(n * d)?,
                    residual2: cl.zeros_buffer(n * d)?,
                    output: cl.zeros_buffer(n * d)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (mlm, pooled) = (
            matches!(c.head, EncoderHead::MaskedLm),
            matches!(c.head, EncoderHead::Pooled { .. }),
        );
        let head_rows = if pooled { b } else { n };
        let head = HeadBuffers {
            first: optional(cl, pooled, b * d)?,
            dense_product: optional(cl, mlm || pooled, head_rows * d)?,
            dense: optional(cl, mlm || pooled, head_rows * d)?,
            activated: optional(cl, mlm || pooled, head_rows * d)?,
            normed: optional(cl, mlm, n * d)?,
            logits_product: cl.zeros_buffer(logit_rows * classes)?,
            logits: cl.zeros_buffer(logit_rows * classes)?,
            grad_logits: cl.zeros_buffer(logit_rows * classes)?,
            grad_a: optional(cl, mlm || pooled, head_rows * d)?,
            grad_b: optional(cl, mlm || pooled, head_rows * d)?,
        };
        let grads = GradBuffers {
            x: buffers(cl, n * d)?,
            res2: cl.zeros_buffer(n * d)?,
            ffn_out: cl.zeros_buffer(n * d)?,
            activated: cl.zeros_buffer(wide)?,
            hidden: cl.zeros_buffer(wide)?,
            x1_ffn: cl.zeros_buffer(n * d)?,
            x1: cl.zeros_buffer(n * d)?,
            res1: cl.zeros_buffer(n * d)?,
            attention_out: cl.zeros_buffer(n * d)?,
            context: cl.zeros_buffer(n * d)?,
            qkv: buffers(cl, n * d)?,
            input_part: cl.zeros_buffer(n * d)?,
            scores: cl.zeros_buffer(scores)?,
            normed: cl.zeros_buffer(n * d)?,
            embedded: cl.zeros_buffer(n * d)?,
            xhat: cl.zeros_buffer(n * d)?,
        };
        Ok(DeviceEncoder {
            vocab: c.vocab,
            hidden: d,
            heads: c.heads,
            layers: c.layers,
            intermediate: c.intermediate,
            max_positions: c.max_positions,
            dropout: c.dropout,
            eps,
            causal: c.causal,
            head_kind: c.head,
            seed: c.seed,
            batch: b,
            seq,
            logit_rows,
            classes,
            ids: cl.upload_indices(&ids)?,
            targets: cl.upload_indices(&batch.targets.to_vec())?,
            key_mask: cl.upload_buffer(&key_mask)?,
            tokens: cl.zeros_buffer(n * d)?,
            embedded: cl.zeros_buffer(n * d)?,
            embedding_normed: cl.zeros_buffer(n * d)?,
            embedding_out: cl.zeros_buffer(n * d)?,
            layer_buffers,
            head,
            grads,
        })
    }

    fn rows(&self) -> usize {
        self.batch * self.seq
    }

    fn key(&self, step: u64, tensor_id: u64) -> RandomKey {
        RandomKey {
            seed: self.seed,
            step,
            tensor_id,
        }
    }

    /// The input of layer `l` (the embedding output, or the previous layer's output).
    fn layer_input(&self, l: usize) -> Result<&DeviceBuffer<T>> {
        match l.checked_sub(1) {
            None => Ok(&self.embedding_out),
            Some(previous) => self
                .layer_buffers
                .get(previous)
                .map(|b| &b.output)
                .ok_or_else(|| Error::opencl(OP, "layer index out of range")),
        }
    }

    /// The encoder's output (the last layer's, or the embeddings' when there are no layers).
    fn encoder_output(&self) -> Result<&DeviceBuffer<T>> {
        self.layer_input(self.layers)
    }
}

/// `y = x·Wᵀ + b`: `x [rows, fan_in]`, `W [fan_out, fan_in]`, `product` scratch.
#[allow(
    clippy::too_many_arguments,
    reason = "a linear layer's buffers and dims"
)]
fn linear<T: Scalar>(
    cl: &OpenCl,
    x: &DeviceBuffer<T>,
    weight: &DeviceBuffer<T>,
    bias: &DeviceBuffer<T>,
    product: &DeviceBuffer<T>,
    y: &DeviceBuffer<T>,
    rows: usize,
    fan_in: usize,
    fan_out: usize,
) -> Result<()> {
    cl.enqueue_matmul(x, weight, product, rows, fan_in, fan_out, false, true)?;
    cl.enqueue_add_rows(product, bias, y, rows, fan_out)
}

/// VJP of [`linear`] (the reference's `linear_backward`): `∂W = gᵀ·x`, `∂b = Σ_rows g`, and
/// `∂x = g·W` when `grad_x` is given.
#[allow(
    clippy::too_many_arguments,
    reason = "a linear layer's buffers and dims"
)]
fn linear_backward<T: Scalar>(
    cl: &OpenCl,
    x: &DeviceBuffer<T>,
    weight: &DeviceBuffer<T>,
    grad_output: &DeviceBuffer<T>,
    grad_x: Option<&DeviceBuffer<T>>,
    grad_weight: &DeviceBuffer<T>,
    grad_bias: &DeviceBuffer<T>,
    rows: usize,
    fan_in: usize,
    fan_out: usize,
) -> Result<()> {
    if let Some(grad_x) = grad_x {
        cl.enqueue_matmul(
            grad_output,
            weight,
            grad_x,
            rows,
            fan_out,
            fan_in,
            false,
            false,
        )?;
    }
    cl.enqueue_matmul(
        grad_output,
        x,
        grad_weight,
        fan_out,
        rows,
        fan_in,
        true,
        false,
    )?;
    cl.enqueue_sum_axis(grad_output, grad_bias, rows, fan_out, 0)
}

fn parameter<T: Scalar>(list: &[DeviceBuffer<T>], index: usize) -> Result<&DeviceBuffer<T>> {
    list.get(index).ok_or_else(|| Error::ShapeMismatch {
        op: OP,
        detail: format!("no parameter tensor {index} among {}", list.len()),
    })
}

/// One kernel argument of the launchers of `opencl/encoder.cl`.
enum Arg<'a, T: Scalar> {
    Buffer(&'a DeviceBuffer<T>),
    Size(u32),
    Real(T),
}

/// How a kernel of `opencl/encoder.cl` is spread over work-items.
enum Grid {
    /// `len` items, padded to the row work-group.
    Line(usize),
    /// `(x, y, depth)` items in square `TILE × TILE × 1` work-groups (x and y padded).
    Tiles(usize, usize, usize),
}

/// Launch `name` of `opencl/encoder.cl` with `args` in its signature's order.
fn launch<T: Scalar>(
    cl: &OpenCl,
    name: &'static str,
    grid: Grid,
    args: &[Arg<'_, T>],
) -> Result<()> {
    let program = cl.program::<T>(name)?;
    let mut builder = cl.kernel(&program, name);
    match grid {
        Grid::Line(len) => {
            to_u32(name, len)?;
            let wg = cl.shared.row_work_group;
            builder
                .global_work_size(round_up(len.max(1), wg))
                .local_work_size(wg);
        }
        Grid::Tiles(x, y, depth) => {
            to_u32(name, x.saturating_mul(y).saturating_mul(depth))?;
            let tile = cl.shared.matmul_tile;
            builder
                .global_work_size((
                    round_up(x.max(1), tile),
                    round_up(y.max(1), tile),
                    depth.max(1),
                ))
                .local_work_size((tile, tile, 1));
        }
    }
    for arg in args {
        match arg {
            Arg::Buffer(b) => builder.arg(&b.buffer),
            Arg::Size(v) => builder.arg(*v),
            Arg::Real(v) => builder.arg(*v),
        };
    }
    cl.enqueue(builder.build(), name)
}

/// `len ≤ buffer.len()` for every named buffer, else `ShapeMismatch`.
fn check_lengths<T: Scalar>(
    op: &'static str,
    list: &[(&str, &DeviceBuffer<T>, usize)],
) -> Result<()> {
    for (name, buffer, needed) in list {
        if buffer.len() < *needed {
            return Err(Error::ShapeMismatch {
                op,
                detail: format!(
                    "{name}: a buffer of {} elements where {needed} are needed",
                    buffer.len()
                ),
            });
        }
    }
    Ok(())
}

impl<T: Scalar> DeviceEncoder<T> {
    /// `u32` of a size.
    fn u(&self, value: usize) -> Result<u32> {
        to_u32(OP, value)
    }

    fn embed_sum(
        &self,
        cl: &OpenCl,
        position: &DeviceBuffer<T>,
        token_type: &DeviceBuffer<T>,
    ) -> Result<()> {
        const NAME: &str = "encoder_embed_sum";
        let (n, d) = (self.rows(), self.hidden);
        check_lengths(
            NAME,
            &[
                ("tokens", &self.tokens, n * d),
                ("position", position, self.max_positions * d),
                ("token_type", token_type, d),
                ("embedded", &self.embedded, n * d),
            ],
        )?;
        let (rows, seq, dim) = (self.u(n)?, self.u(self.seq)?, self.u(d)?);
        launch::<T>(
            cl,
            NAME,
            Grid::Line(n * d),
            &[
                Arg::Buffer(&self.tokens),
                Arg::Buffer(position),
                Arg::Buffer(token_type),
                Arg::Buffer(&self.embedded),
                Arg::Size(rows),
                Arg::Size(seq),
                Arg::Size(dim),
            ],
        )
    }

    fn position_grad(&self, cl: &OpenCl, grad_position: &DeviceBuffer<T>) -> Result<()> {
        const NAME: &str = "encoder_position_grad";
        let (n, d) = (self.rows(), self.hidden);
        let g = &self.grads.embedded;
        check_lengths(
            NAME,
            &[
                ("grad_embedded", g, n * d),
                ("grad_position", grad_position, self.max_positions * d),
            ],
        )?;
        let (batch, seq, max_positions, dim) = (
            self.u(self.batch)?,
            self.u(self.seq)?,
            self.u(self.max_positions)?,
            self.u(d)?,
        );
        launch::<T>(
            cl,
            NAME,
            Grid::Line(self.max_positions * d),
            &[
                Arg::Buffer(g),
                Arg::Buffer(grad_position),
                Arg::Size(batch),
                Arg::Size(seq),
                Arg::Size(max_positions),
                Arg::Size(dim),
            ],
        )
    }

    fn gather_first(
        &self,
        cl: &OpenCl,
        x: &DeviceBuffer<T>,
        first: &DeviceBuffer<T>,
    ) -> Result<()> {
        const NAME: &str = "encoder_gather_first";
        let d = self.hidden;
        check_lengths(
            NAME,
            &[("x", x, self.rows() * d), ("first", first, self.batch * d)],
        )?;
        let (batch, seq, dim) = (self.u(self.batch)?, self.u(self.seq)?, self.u(d)?);
        launch::<T>(
            cl,
            NAME,
            Grid::Line(self.batch * d),
            &[
                Arg::Buffer(x),
                Arg::Buffer(first),
                Arg::Size(batch),
                Arg::Size(seq),
                Arg::Size(dim),
            ],
        )
    }

    fn scatter_first(
        &self,
        cl: &OpenCl,
        grad_first: &DeviceBuffer<T>,
        grad_x: &DeviceBuffer<T>,
    ) -> Result<()> {
        const NAME: &str = "encoder_scatter_first";
        let d = self.hidden;
        check_lengths(
            NAME,
            &[
                ("grad_first", grad_first, self.batch * d),
                ("grad_x", grad_x, self.rows() * d),
            ],
        )?;
        let (batch, seq, dim) = (self.u(self.batch)?, self.u(self.seq)?, self.u(d)?);
        launch::<T>(
            cl,
            NAME,
            Grid::Line(self.rows() * d),
            &[
                Arg::Buffer(grad_first),
                Arg::Buffer(grad_x),
                Arg::Size(batch),
                Arg::Size(seq),
                Arg::Size(dim),
            ],
        )
    }

    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// `round_T(1/√d_h)`, as the reference's `attention_scale`.
    fn attention_scale(&self) -> T {
        T::narrow(1.0 / (self.head_dim() as f64).sqrt())
    }

    /// Attention of layer `l` (forward): context and probabilities.
    fn attention(&self, cl: &OpenCl, l: &LayerBuffers<T>) -> Result<()> {
        let [q, k, v] = &l.qkv;
        let (b, h, s, dh) = (self.batch, self.heads, self.seq, self.head_dim());
        if !self.causal {
            return cl.enqueue_attention(
                q,
                k,
                v,
                &self.key_mask,
                &l.context,
                &l.probs,
                b,
                h,
                s,
                dh,
                AttentionLayout::Bshd,
            );
        }
        let n = self.rows() * self.hidden;
        let scores = &self.grads.scores; // scratch: the backward overwrites it later
        check_lengths(
            "encoder_attention",
            &[
                ("q", q, n),
                ("k", k, n),
                ("v", v, n),
                ("key_mask", &self.key_mask, b * s),
                ("scores", scores, b * h * s * s),
                ("probs", &l.probs, b * h * s * s),
                ("context", &l.context, n),
            ],
        )?;
        let (batch, heads, seq, head_dim) = (self.u(b)?, self.u(h)?, self.u(s)?, self.u(dh)?);
        let (scale, masked) = (self.attention_scale(), T::narrow(MASKED_SCORE));
        launch::<T>(
            cl,
            "encoder_attention_scores",
            Grid::Tiles(s, s, b * h),
            &[
                Arg::Buffer(q),
                Arg::Buffer(k),
                Arg::Buffer(&self.key_mask),
                Arg::Buffer(scores),
                Arg::Size(batch),
                Arg::Size(heads),
                Arg::Size(seq),
                Arg::Size(head_dim),
                Arg::Real(scale),
                Arg::Real(masked),
                Arg::Size(1),
            ],
        )?;
        cl.enqueue_row_kernel("softmax_rows", scores, b * h * s, s, &l.probs)?;
        launch::<T>(
            cl,
            "encoder_attention_context",
            Grid::Tiles(self.hidden, self.rows(), 1),
            &[
                Arg::Buffer(&l.probs),
                Arg::Buffer(v),
                Arg::Buffer(&l.context),
                Arg::Size(batch),
                Arg::Size(heads),
                Arg::Size(seq),
                Arg::Size(head_dim),
            ],
        )
    }

    /// Attention of layer `l` (backward) from `∂L/∂context` in `grads.context` into
    /// `grads.qkv`.
    fn attention_backward(&self, cl: &OpenCl, l: &LayerBuffers<T>) -> Result<()> {
        let [q, k, v] = &l.qkv;
        let [gq, gk, gv] = &self.grads.qkv;
        let g = &self.grads.context;
        let (b, h, s, dh) = (self.batch, self.heads, self.seq, self.head_dim());
        if !self.causal {
            return cl.enqueue_attention_backward(
                q,
                k,
                v,
                &self.key_mask,
                &l.probs,
                g,
                gq,
                gk,
                gv,
                b,
                h,
                s,
                dh,
                AttentionLayout::Bshd,
            );
        }
        let n = self.rows() * self.hidden;
        let grad_scores = &self.grads.scores;
        check_lengths(
            "encoder_attention_backward",
            &[
                ("q", q, n),
                ("k", k, n),
                ("v", v, n),
                ("probs", &l.probs, b * h * s * s),
                ("grad_output", g, n),
                ("grad_scores", grad_scores, b * h * s * s),
                ("grad_q", gq, n),
                ("grad_k", gk, n),
                ("grad_v", gv, n),
            ],
        )?;
        let (batch, heads, seq, head_dim) = (self.u(b)?, self.u(h)?, self.u(s)?, self.u(dh)?);
        let scale = self.attention_scale();
        launch::<T>(
            cl,
            "encoder_attention_grad_scores",
            Grid::Line(b * h * s),
            &[
                Arg::Buffer(&l.probs),
                Arg::Buffer(g),
                Arg::Buffer(v),
                Arg::Buffer(grad_scores),
                Arg::Size(batch),
                Arg::Size(heads),
                Arg::Size(seq),
                Arg::Size(head_dim),
                Arg::Real(scale),
            ],
        )?;
        launch::<T>(
            cl,
            "encoder_attention_grad_qkv",
            Grid::Tiles(self.hidden, self.rows(), 1),
            &[
                Arg::Buffer(q),
                Arg::Buffer(k),
                Arg::Buffer(&l.probs),
                Arg::Buffer(grad_scores),
                Arg::Buffer(g),
                Arg::Buffer(gq),
                Arg::Buffer(gk),
                Arg::Buffer(gv),
                Arg::Size(batch),
                Arg::Size(heads),
                Arg::Size(seq),
                Arg::Size(head_dim),
            ],
        )
    }

    fn forward(&self, cl: &OpenCl, parameters: &[DeviceBuffer<T>], step: u64) -> Result<()> {
        let (n, d, inter) = (self.rows(), self.hidden, self.intermediate);
        let p = |i: usize| parameter(parameters, i);
        cl.enqueue_embedding(p(0)?, &self.ids, &self.tokens, self.vocab, d, n)?;
        self.embed_sum(cl, p(1)?, p(2)?)?;
        cl.enqueue_layer_norm(
            &self.embedded,
            p(3)?,
            p(4)?,
            &self.embedding_normed,
            self.eps,
            n,
            d,
        )?;
        cl.enqueue_dropout(
            &self.embedding_normed,
            &self.embedding_out,
            self.dropout,
            self.key(step, 1000),
            n * d,
        )?;
        for (l, lb) in self.layer_buffers.iter().enumerate() {
            let base = EMBEDDING_TENSORS + LAYER_TENSORS * l;
            let x = self.layer_input(l)?;
            for (i, (product, out)) in lb.products.iter().zip(&lb.qkv).enumerate() {
                linear(
                    cl,
                    x,
                    p(base + 2 * i)?,
                    p(base + 2 * i + 1)?,
                    product,
                    out,
                    n,
                    d,
                    d,
                )?;
            }
            self.attention(cl, lb)?;
            linear(
                cl,
                &lb.context,
                p(base + 6)?,
                p(base + 7)?,
                &lb.attention_product,
                &lb.attention_out,
                n,
                d,
                d,
            )?;
            let id = 1000 + 10 * l as u64;
            cl.enqueue_dropout(
                &lb.attention_out,
                &lb.attention_dropped,
                self.dropout,
                self.key(step, id + 1),
                n * d,
            )?;
            cl.enqueue_add(x, &lb.attention_dropped, &lb.residual1, n * d)?;
            cl.enqueue_layer_norm(
                &lb.residual1,
                p(base + 8)?,
                p(base + 9)?,
                &lb.x1,
                self.eps,
                n,
                d,
            )?;
            linear(
                cl,
                &lb.x1,
                p(base + 10)?,
                p(base + 11)?,
                &lb.ffn_product,
                &lb.ffn_hidden,
                n,
                d,
                inter,
            )?;
            cl.enqueue_elementwise(
                "gelu",
                &[&lb.ffn_hidden],
                &lb.ffn_activated,
                &[gelu_inv_sqrt2()],
                n * inter,
            )?;
            linear(
                cl,
                &lb.ffn_activated,
                p(base + 12)?,
                p(base + 13)?,
                &lb.ffn_product2,
                &lb.ffn_out,
                n,
                inter,
                d,
            )?;
            cl.enqueue_dropout(
                &lb.ffn_out,
                &lb.ffn_dropped,
                self.dropout,
                self.key(step, id + 2),
                n * d,
            )?;
            cl.enqueue_add(&lb.x1, &lb.ffn_dropped, &lb.residual2, n * d)?;
            cl.enqueue_layer_norm(
                &lb.residual2,
                p(base + 14)?,
                p(base + 15)?,
                &lb.output,
                self.eps,
                n,
                d,
            )?;
        }
        Ok(())
    }

    /// The head's forward pass into `head.logits`.
    fn head_forward(&self, cl: &OpenCl, parameters: &[DeviceBuffer<T>]) -> Result<()> {
        let h = EMBEDDING_TENSORS + LAYER_TENSORS * self.layers;
        let p = |i: usize| parameter(parameters, i);
        let (n, d) = (self.rows(), self.hidden);
        let x = self.encoder_output()?;
        let hb = &self.head;
        match self.head_kind {
            EncoderHead::Token { classes } => linear(
                cl,
                x,
                p(h)?,
                p(h + 1)?,
                &hb.logits_product,
                &hb.logits,
                n,
                d,
                classes,
            ),
            EncoderHead::MaskedLm => {
                let (dense, activated, normed) = (
                    required(&hb.dense)?,
                    required(&hb.activated)?,
                    required(&hb.normed)?,
                );
                linear(
                    cl,
                    x,
                    p(h)?,
                    p(h + 1)?,
                    required(&hb.dense_product)?,
                    dense,
                    n,
                    d,
                    d,
                )?;
                cl.enqueue_elementwise("gelu", &[dense], activated, &[gelu_inv_sqrt2()], n * d)?;
                cl.enqueue_layer_norm(activated, p(h + 2)?, p(h + 3)?, normed, self.eps, n, d)?;
                linear(
                    cl,
                    normed,
                    p(h + 4)?,
                    p(h + 5)?,
                    &hb.logits_product,
                    &hb.logits,
                    n,
                    d,
                    self.vocab,
                )
            }
            EncoderHead::Pooled { classes } => {
                let b = self.batch;
                let (first, dense, pooled) = (
                    required(&hb.first)?,
                    required(&hb.dense)?,
                    required(&hb.activated)?,
                );
                self.gather_first(cl, x, first)?;
                linear(
                    cl,
                    first,
                    p(h)?,
                    p(h + 1)?,
                    required(&hb.dense_product)?,
                    dense,
                    b,
                    d,
                    d,
                )?;
                cl.enqueue_elementwise("tanh_forward", &[dense], pooled, &[], b * d)?;
                linear(
                    cl,
                    pooled,
                    p(h + 2)?,
                    p(h + 3)?,
                    &hb.logits_product,
                    &hb.logits,
                    b,
                    d,
                    classes,
                )
            }
        }
    }

    /// The head's backward pass from `head.grad_logits` into its parameters' gradients and
    /// `∂L/∂x` of the encoder output (`grads.x[0]`).
    fn head_backward(
        &self,
        cl: &OpenCl,
        parameters: &[DeviceBuffer<T>],
        gradients: &[DeviceBuffer<T>],
    ) -> Result<()> {
        let h = EMBEDDING_TENSORS + LAYER_TENSORS * self.layers;
        let p = |i: usize| parameter(parameters, i);
        let g = |i: usize| parameter(gradients, i);
        let (n, d) = (self.rows(), self.hidden);
        let x = self.encoder_output()?;
        let hb = &self.head;
        let grad_x = &self.grads.x[0];
        match self.head_kind {
            EncoderHead::Token { classes } => linear_backward(
                cl,
                x,
                p(h)?,
                &hb.grad_logits,
                Some(grad_x),
                g(h)?,
                g(h + 1)?,
                n,
                d,
                classes,
            ),
            EncoderHead::MaskedLm => {
                let (dense, activated, normed) = (
                    required(&hb.dense)?,
                    required(&hb.activated)?,
                    required(&hb.normed)?,
                );
                let (g_normed, g_act) = (required(&hb.grad_a)?, required(&hb.grad_b)?);
                linear_backward(
                    cl,
                    normed,
                    p(h + 4)?,
                    &hb.grad_logits,
                    Some(g_normed),
                    g(h + 4)?,
                    g(h + 5)?,
                    n,
                    d,
                    self.vocab,
                )?;
                cl.enqueue_layer_norm_backward(
                    activated,
                    p(h + 2)?,
                    g_normed,
                    g_act,
                    g(h + 2)?,
                    g(h + 3)?,
                    &self.grads.xhat,
                    self.eps,
                    n,
                    d,
                )?;
                let g_dense = g_normed; // reused: ∂normed is consumed
                cl.enqueue_elementwise(
                    "gelu_backward",
                    &[dense, g_act],
                    g_dense,
                    &[gelu_inv_sqrt2(), gelu_inv_sqrt_2pi()],
                    n * d,
                )?;
                linear_backward(
                    cl,
                    x,
                    p(h)?,
                    g_dense,
                    Some(grad_x),
                    g(h)?,
                    g(h + 1)?,
                    n,
                    d,
                    d,
                )
            }
            EncoderHead::Pooled { classes } => {
                let b = self.batch;
                let (first, pooled) = (required(&hb.first)?, required(&hb.activated)?);
                let (g_pooled, g_dense) = (required(&hb.grad_a)?, required(&hb.grad_b)?);
                linear_backward(
                    cl,
                    pooled,
                    p(h + 2)?,
                    &hb.grad_logits,
                    Some(g_pooled),
                    g(h + 2)?,
                    g(h + 3)?,
                    b,
                    d,
                    classes,
                )?;
                cl.enqueue_elementwise("tanh_backward", &[pooled, g_pooled], g_dense, &[], b * d)?;
                let g_first = g_pooled; // reused: ∂pooled is consumed
                linear_backward(
                    cl,
                    first,
                    p(h)?,
                    g_dense,
                    Some(g_first),
                    g(h)?,
                    g(h + 1)?,
                    b,
                    d,
                    d,
                )?;
                self.scatter_first(cl, g_first, grad_x)
            }
        }
    }

    /// The layers' and the embeddings' backward pass, from `grads.x[0]`.
    fn backward(
        &self,
        cl: &OpenCl,
        parameters: &[DeviceBuffer<T>],
        gradients: &[DeviceBuffer<T>],
        step: u64,
    ) -> Result<()> {
        let (n, d, inter) = (self.rows(), self.hidden, self.intermediate);
        let p = |i: usize| parameter(parameters, i);
        let g = |i: usize| parameter(gradients, i);
        let gb = &self.grads;
        // ∂x of the current layer's output alternates between the two buffers.
        let mut current = 0usize;
        for (l, lb) in self.layer_buffers.iter().enumerate().rev() {
            let base = EMBEDDING_TENSORS + LAYER_TENSORS * l;
            let id = 1000 + 10 * l as u64;
            let x = self.layer_input(l)?;
            let grad_out = &gb.x[current];
            let grad_in = &gb.x[1 - current];
            cl.enqueue_layer_norm_backward(
                &lb.residual2,
                p(base + 14)?,
                grad_out,
                &gb.res2,
                g(base + 14)?,
                g(base + 15)?,
                &gb.xhat,
                self.eps,
                n,
                d,
            )?;
            cl.enqueue_dropout_backward(
                &gb.res2,
                &gb.ffn_out,
                self.dropout,
                self.key(step, id + 2),
                n * d,
            )?;
            linear_backward(
                cl,
                &lb.ffn_activated,
                p(base + 12)?,
                &gb.ffn_out,
                Some(&gb.activated),
                g(base + 12)?,
                g(base + 13)?,
                n,
                inter,
                d,
            )?;
            cl.enqueue_elementwise(
                "gelu_backward",
                &[&lb.ffn_hidden, &gb.activated],
                &gb.hidden,
                &[gelu_inv_sqrt2(), gelu_inv_sqrt_2pi()],
                n * inter,
            )?;
            linear_backward(
                cl,
                &lb.x1,
                p(base + 10)?,
                &gb.hidden,
                Some(&gb.x1_ffn),
                g(base + 10)?,
                g(base + 11)?,
                n,
                d,
                inter,
            )?;
            cl.enqueue_add(&gb.res2, &gb.x1_ffn, &gb.x1, n * d)?;
            cl.enqueue_layer_norm_backward(
                &lb.residual1,
                p(base + 8)?,
                &gb.x1,
                &gb.res1,
                g(base + 8)?,
                g(base + 9)?,
                &gb.xhat,
                self.eps,
                n,
                d,
            )?;
            cl.enqueue_dropout_backward(
                &gb.res1,
                &gb.attention_out,
                self.dropout,
                self.key(step, id + 1),
                n * d,
            )?;
            linear_backward(
                cl,
                &lb.context,
                p(base + 6)?,
                &gb.attention_out,
                Some(&gb.context),
                g(base + 6)?,
                g(base + 7)?,
                n,
                d,
                d,
            )?;
            self.attention_backward(cl, lb)?;
            // ∂x = ((∂res1 + ∂x_q) + ∂x_k) + ∂x_v, the reference's order.
            cl.enqueue_copy(&gb.res1, grad_in, n * d)?;
            for (i, grad) in gb.qkv.iter().enumerate() {
                linear_backward(
                    cl,
                    x,
                    p(base + 2 * i)?,
                    grad,
                    Some(&gb.input_part),
                    g(base + 2 * i)?,
                    g(base + 2 * i + 1)?,
                    n,
                    d,
                    d,
                )?;
                cl.enqueue_add(grad_in, &gb.input_part, grad_in, n * d)?;
            }
            current = 1 - current;
        }
        // Embeddings.
        cl.enqueue_dropout_backward(
            &gb.x[current],
            &gb.normed,
            self.dropout,
            self.key(step, 1000),
            n * d,
        )?;
        cl.enqueue_layer_norm_backward(
            &self.embedded,
            p(3)?,
            &gb.normed,
            &gb.embedded,
            g(3)?,
            g(4)?,
            &gb.xhat,
            self.eps,
            n,
            d,
        )?;
        cl.enqueue_embedding_backward(&self.ids, &gb.embedded, g(0)?, self.vocab, d, n)?;
        self.position_grad(cl, g(1)?)?;
        cl.enqueue_sum_axis(&gb.embedded, g(2)?, n, d, 0)
    }
}

impl<T: Scalar> DeviceModel<T> for DeviceEncoder<T> {
    fn enqueue_loss_and_gradients(
        &mut self,
        cl: &OpenCl,
        parameters: &[DeviceBuffer<T>],
        gradients: &[DeviceBuffer<T>],
        loss: &DeviceBuffer<T>,
        step: u64,
    ) -> Result<()> {
        self.forward(cl, parameters, step)?;
        self.head_forward(cl, parameters)?;
        let (rows, classes) = (self.logit_rows, self.classes);
        cl.enqueue_cross_entropy(
            &self.head.logits,
            &self.targets,
            loss,
            rows,
            classes,
            DEFAULT_IGNORE_INDEX,
            Reduction::Mean,
        )?;
        cl.enqueue_cross_entropy_backward(
            &self.head.logits,
            &self.targets,
            &self.head.grad_logits,
            T::one(),
            rows,
            classes,
            DEFAULT_IGNORE_INDEX,
            Reduction::Mean,
        )?;
        self.head_backward(cl, parameters, gradients)?;
        self.backward(cl, parameters, gradients, step)
    }
}
