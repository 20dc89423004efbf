//! A BERT-like encoder (post-norm transformer) with a token, masked-LM or pooled head: seed
//! 003's model in a few lines (`EncoderConfig::seed003()`).

use ndarray::{s, Array1, Array2, Array4, ArrayView1, ArrayView2, Axis};

use super::{flatten, linear, linear_backward, Model};
use crate::reference::{self, Reduction, DEFAULT_IGNORE_INDEX};
use crate::rng::{init_normal, init_uniform, RandomKey};
use crate::{Error, Result, Scalar};

/// Additive score for a masked key (padding or a future position under the causal mask).
pub const MASKED_SCORE: f64 = -1e9;

/// The head on top of the encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EncoderHead {
    /// A linear layer on every position to `classes` logits, cross-entropy against one target
    /// per position (seed 003's `nn.Linear(n_hidden, n_outputs)`; PyTorch default init).
    Token {
        /// Output classes.
        classes: usize,
    },
    /// BERT's masked-LM head: `dense(d→d) → GELU → LayerNorm → decoder(d→vocab)`, one target
    /// per position, `-100` on the positions that are not predicted (untied decoder weights).
    MaskedLm,
    /// BERT's pooler on the first position, `tanh(dense(d→d))`, then a linear classifier to
    /// `classes`; one target per sequence.
    Pooled {
        /// Output classes.
        classes: usize,
    },
}

/// Shape and settings of an [`Encoder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderConfig {
    /// Vocabulary size (token embedding rows).
    pub vocab: usize,
    /// Hidden size `d`.
    pub hidden: usize,
    /// Attention heads `h` (`d` divisible by `h`).
    pub heads: usize,
    /// Number of layers `L`.
    pub layers: usize,
    /// Feed-forward width.
    pub intermediate: usize,
    /// Position embedding rows (max sequence length).
    pub max_positions: usize,
    /// Dropout probability of the hidden dropouts (embeddings, attention output, FFN output).
    pub dropout: f64,
    /// LayerNorm eps (BERT: 1e-12).
    pub layer_norm_eps: f64,
    /// Causal self-attention (query `i` sees keys `≤ i`), as HF's `BertModel` with
    /// `is_decoder=True` (seed 003).
    pub causal: bool,
    /// Standard deviation of the token embedding init (BERT: 0.02; seed 003's own
    /// `nn.Embedding`: 1.0, PyTorch's default).
    pub token_embedding_std: f64,
    /// The head.
    pub head: EncoderHead,
    /// Seed of the initialisation and of the dropout masks.
    pub seed: u64,
}

impl EncoderConfig {
    /// Seed 003's model: vocab 2, hidden 32, 2 heads, 1 layer, intermediate 64, dropout 0.1,
    /// causal (`is_decoder=True`), token embedding N(0, 1), per-token head to 2 classes.
    pub fn seed003(seed: u64) -> Self {
        EncoderConfig {
            vocab: 2,
            hidden: 32,
            heads: 2,
            layers: 1,
            intermediate: 64,
            max_positions: 512,
            dropout: 0.1,
            layer_norm_eps: 1e-12,
            causal: true,
            token_embedding_std: 1.0,
            head: EncoderHead::Token { classes: 2 },
            seed,
        }
    }
}

/// One batch: token ids `[batch, seq]`, an optional padding mask (`true` = real token), and
/// targets (`[batch·seq]` for the token and masked-LM heads, `[batch]` for the pooled head;
/// `-100` ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderBatch {
    /// Token ids.
    pub ids: Array2<usize>,
    /// `true` for real tokens, `false` for padding (keys only); `None`: no padding.
    pub attention_mask: Option<Array2<bool>>,
    /// Class targets.
    pub targets: Array1<i64>,
}

/// Parameter indices of the embeddings and of each layer (16 tensors per layer).
const EMBEDDING_TENSORS: usize = 5;
const LAYER_TENSORS: usize = 16;

/// A BERT-like encoder, post-norm (HF `BertModel`):
/// ```text
/// x = dropout(LN(E_tok[ids] + E_pos[0..S] + e_type))
/// per layer:  a = dropout(attn(x)·W_oᵀ + b_o);   x1 = LN1(x + a)
///             f = dropout(GELU(x1·W_1ᵀ + b_1)·W_2ᵀ + b_2);   x = LN2(x1 + f)
/// attn(x) = softmax(q·kᵀ/√d_h + mask)·v per head,  q, k, v = x·W_{q,k,v}ᵀ + b
/// ```
/// Parameters, in order: `embeddings.{word, position, token_type, ln.gamma, ln.beta}`; per layer
/// `{q,k,v,o}.{weight,bias}`, `ln1.{gamma,beta}`, `ffn1.{weight,bias}`, `ffn2.{weight,bias}`,
/// `ln2.{gamma,beta}`; then the head's. Init (HF `_init_weights`): linear weights and position /
/// type embeddings N(0, 0.02), biases 0, LayerNorm γ = 1, β = 0; token embedding
/// N(0, `token_embedding_std`); the `Token` head is PyTorch's `nn.Linear` default
/// U(±1/√d). Dropout masks use `RandomKey { seed, step, tensor_id }` with tensor ids 1000
/// (embeddings), 1000 + 10l + 1 (attention output of layer l), 1000 + 10l + 2 (FFN output).
///
/// Deviation from HF BERT: no dropout on the attention probabilities (HF applies
/// `attention_probs_dropout_prob`); the masks above are the only dropouts.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder<T> {
    /// The configuration.
    pub config: EncoderConfig,
    parameters: Vec<Array1<T>>,
}

struct LayerCache<T> {
    input: Array2<T>,
    q: Array4<T>,
    k: Array4<T>,
    v: Array4<T>,
    context: Array2<T>,
    attention_dropout: reference::DropoutOutput<T, ndarray::Ix2>,
    residual1: Array2<T>,
    x1: Array2<T>,
    ffn_hidden: Array2<T>,
    ffn_activated: Array2<T>,
    ffn_dropout: reference::DropoutOutput<T, ndarray::Ix2>,
    residual2: Array2<T>,
}

struct Cache<T> {
    embedded: Array2<T>,
    embedding_dropout: reference::DropoutOutput<T, ndarray::Ix2>,
    layers: Vec<LayerCache<T>>,
    output: Array2<T>,
    key_mask: Array2<T>,
}

fn invalid(name: &'static str, value: String, reason: &str) -> Error {
    Error::InvalidParameter {
        op: "Encoder",
        name,
        value,
        reason: reason.into(),
    }
}

impl<T: Scalar> Encoder<T> {
    /// A freshly initialised encoder. Errors: `InvalidParameter` for zero sizes (including a
    /// head with 0 classes), `hidden` not divisible by `heads`, dropout outside `[0, 1)`, or a
    /// non-positive eps; `TooLarge` for sizes whose products overflow or that the host cannot
    /// allocate.
    pub fn new(config: EncoderConfig) -> Result<Self> {
        let c = &config;
        if [
            c.vocab,
            c.hidden,
            c.heads,
            c.layers,
            c.intermediate,
            c.max_positions,
        ]
        .contains(&0)
        {
            return Err(invalid("sizes", format!("{c:?}"), "every size must be ≥ 1"));
        }
        if c.hidden % c.heads != 0 {
            return Err(invalid("heads", c.heads.to_string(), "must divide hidden"));
        }
        if !(0.0..1.0).contains(&c.dropout) {
            return Err(invalid(
                "dropout",
                c.dropout.to_string(),
                "must be in [0, 1)",
            ));
        }
        if !(c.layer_norm_eps > 0.0 && c.layer_norm_eps.is_finite()) {
            return Err(invalid(
                "layer_norm_eps",
                c.layer_norm_eps.to_string(),
                "must be finite and > 0",
            ));
        }
        let classes = match c.head {
            EncoderHead::Token { classes } | EncoderHead::Pooled { classes } => classes,
            EncoderHead::MaskedLm => c.vocab,
        };
        if classes == 0 {
            return Err(invalid(
                "classes",
                "0".to_string(),
                "the head needs ≥ 1 class",
            ));
        }
        let d = c.hidden;
        // Every product below, checked once (`TooLarge` instead of a wrapped size), and room
        // for the tensor list (a huge layer count is `TooLarge`, not an abort).
        for dims in [
            [c.vocab, d],
            [c.max_positions, d],
            [d, d],
            [c.intermediate, d],
            [classes, d],
        ] {
            crate::validate::element_count("Encoder", "parameter elements", &dims)?;
        }
        let tensors = c
            .layers
            .checked_mul(LAYER_TENSORS)
            .and_then(|n| n.checked_add(EMBEDDING_TENSORS + 6))
            .ok_or(Error::TooLarge {
                op: "Encoder",
                what: "parameter tensors",
                value: (c.layers as u128) * (LAYER_TENSORS as u128),
                limit: usize::MAX as u128,
            })?;
        let mut parameters: Vec<Array1<T>> = Vec::new();
        parameters
            .try_reserve_exact(tensors)
            .map_err(|_| Error::TooLarge {
                op: "Encoder",
                what: "parameter tensors",
                value: tensors as u128,
                limit: isize::MAX as u128 / std::mem::size_of::<Array1<T>>() as u128,
            })?;
        let mut next_id = 0u64;
        let mut key = || {
            next_id += 1;
            RandomKey {
                seed: c.seed,
                step: 0,
                tensor_id: next_id,
            }
        };
        let ones = |n: usize| Array1::from_elem(n, T::one());
        let zeros = |n: usize| Array1::<T>::zeros(n);
        parameters.push(init_normal::<T, _>(
            c.vocab * d,
            c.token_embedding_std,
            key(),
        )?);
        parameters.push(init_normal::<T, _>(c.max_positions * d, 0.02, key())?);
        parameters.push(init_normal::<T, _>(d, 0.02, key())?);
        parameters.push(ones(d));
        parameters.push(zeros(d));
        for _ in 0..c.layers {
            for _ in 0..4 {
                parameters.push(init_normal::<T, _>(d * d, 0.02, key())?);
                parameters.push(zeros(d));
            }
            parameters.push(ones(d));
            parameters.push(zeros(d));
            parameters.push(init_normal::<T, _>(c.intermediate * d, 0.02, key())?);
            parameters.push(zeros(c.intermediate));
            parameters.push(init_normal::<T, _>(d * c.intermediate, 0.02, key())?);
            parameters.push(zeros(d));
            parameters.push(ones(d));
            parameters.push(zeros(d));
        }
        match c.head {
            EncoderHead::Token { classes } => {
                let bound = 1.0 / (d as f64).sqrt();
                parameters.push(init_uniform::<T, _>(classes * d, bound, key())?);
                parameters.push(init_uniform::<T, _>(classes, bound, key())?);
            }
            EncoderHead::MaskedLm => {
                parameters.push(init_normal::<T, _>(d * d, 0.02, key())?);
                parameters.push(zeros(d));
                parameters.push(ones(d));
                parameters.push(zeros(d));
                parameters.push(init_normal::<T, _>(c.vocab * d, 0.02, key())?);
                parameters.push(zeros(c.vocab));
            }
            EncoderHead::Pooled { classes } => {
                parameters.push(init_normal::<T, _>(d * d, 0.02, key())?);
                parameters.push(zeros(d));
                parameters.push(init_normal::<T, _>(classes * d, 0.02, key())?);
                parameters.push(zeros(classes));
            }
        }
        Ok(Encoder { config, parameters })
    }

    fn p(&self, index: usize) -> ArrayView1<'_, T> {
        self.parameters[index].view()
    }

    fn head_start(&self) -> usize {
        EMBEDDING_TENSORS + LAYER_TENSORS * self.config.layers
    }

    /// `[B·S, d]` rows `b·S + s` → `[B, h, S, d_h]`.
    fn to_heads(&self, x: ArrayView2<'_, T>, batch: usize, seq: usize) -> Array4<T> {
        let (h, dh) = (self.config.heads, self.config.hidden / self.config.heads);
        Array4::from_shape_fn((batch, h, seq, dh), |(b, head, s, j)| {
            x[[b * seq + s, head * dh + j]]
        })
    }

    /// Inverse of [`Encoder::to_heads`] (`[B, h, S, d_h]` → `[B·S, d]`).
    fn merge_heads(x: &Array4<T>) -> Array2<T> {
        let (batch, h, seq, dh) = x.dim();
        Array2::from_shape_fn((batch * seq, h * dh), |(row, col)| {
            x[[row / seq, col / dh, row % seq, col % dh]]
        })
    }

    /// Attention with the padding mask, and the causal mask when configured: query `i` is run
    /// with keys `> i` masked (one call per query position).
    fn attend(
        &self,
        q: &Array4<T>,
        k: &Array4<T>,
        v: &Array4<T>,
        key_mask: &Array2<T>,
    ) -> Result<Array4<T>> {
        if !self.config.causal {
            return reference::attention(q.view(), k.view(), v.view(), key_mask.view());
        }
        let mut out = Array4::zeros(q.dim());
        for i in 0..q.dim().2 {
            let mask = causal_mask(key_mask, i);
            let o = reference::attention(
                q.slice(s![.., .., i..=i, ..]),
                k.view(),
                v.view(),
                mask.view(),
            )?;
            out.slice_mut(s![.., .., i..=i, ..]).assign(&o);
        }
        Ok(out)
    }

    fn attend_backward(
        &self,
        q: &Array4<T>,
        k: &Array4<T>,
        v: &Array4<T>,
        key_mask: &Array2<T>,
        grad: &Array4<T>,
    ) -> Result<(Array4<T>, Array4<T>, Array4<T>)> {
        if !self.config.causal {
            return reference::attention_backward(
                q.view(),
                k.view(),
                v.view(),
                key_mask.view(),
                grad.view(),
            );
        }
        let (mut gq, mut gk, mut gv) = (
            Array4::zeros(q.dim()),
            Array4::zeros(k.dim()),
            Array4::zeros(v.dim()),
        );
        for i in 0..q.dim().2 {
            let mask = causal_mask(key_mask, i);
            let (dq, dk, dv) = reference::attention_backward(
                q.slice(s![.., .., i..=i, ..]),
                k.view(),
                v.view(),
                mask.view(),
                grad.slice(s![.., .., i..=i, ..]),
            )?;
            gq.slice_mut(s![.., .., i..=i, ..]).assign(&dq);
            gk = gk + dk;
            gv = gv + dv;
        }
        Ok((gq, gk, gv))
    }

    fn dropout(
        &self,
        x: ArrayView2<'_, T>,
        step: u64,
        tensor_id: u64,
    ) -> Result<reference::DropoutOutput<T, ndarray::Ix2>> {
        reference::dropout(
            x,
            self.config.dropout,
            RandomKey {
                seed: self.config.seed,
                step,
                tensor_id,
            },
        )
    }

    fn forward_cache(&self, batch: &EncoderBatch, step: u64) -> Result<Cache<T>> {
        let c = &self.config;
        let (b, seq) = batch.ids.dim();
        if b == 0 || seq == 0 {
            return Err(Error::EmptyInput {
                op: "Encoder::forward",
                detail: "empty batch or sequence".into(),
            });
        }
        if seq > c.max_positions {
            return Err(Error::InvalidParameter {
                op: "Encoder::forward",
                name: "seq",
                value: seq.to_string(),
                reason: format!("at most max_positions = {}", c.max_positions),
            });
        }
        let d = c.hidden;
        let key_mask = match &batch.attention_mask {
            None => Array2::zeros((b, seq)),
            Some(m) if m.dim() == (b, seq) => m.mapv(|keep| {
                if keep {
                    T::zero()
                } else {
                    T::narrow(MASKED_SCORE)
                }
            }),
            Some(m) => {
                return Err(Error::ShapeMismatch {
                    op: "Encoder::forward",
                    detail: format!("attention mask {:?} for ids {:?}", m.dim(), (b, seq)),
                })
            }
        };
        let ids = Array1::from_iter(batch.ids.iter().copied());
        let word = super::weight_matrix(self.p(0), c.vocab, d)?;
        let position = super::weight_matrix(self.p(1), c.max_positions, d)?;
        let tokens = reference::embedding(word, ids.view())?;
        let embedded = Array2::from_shape_fn((b * seq, d), |(row, j)| {
            tokens[[row, j]] + position[[row % seq, j]] + self.parameters[2][j]
        });
        let normed =
            reference::layer_norm(embedded.view(), self.p(3), self.p(4), c.layer_norm_eps)?;
        let embedding_dropout = self.dropout(normed.view(), step, 1000)?;
        let mut x = embedding_dropout.output.clone();
        let mut layers = Vec::new();
        for l in 0..c.layers {
            let base = EMBEDDING_TENSORS + LAYER_TENSORS * l;
            let q = self.to_heads(
                linear(x.view(), self.p(base), self.p(base + 1), d)?.view(),
                b,
                seq,
            );
            let k = self.to_heads(
                linear(x.view(), self.p(base + 2), self.p(base + 3), d)?.view(),
                b,
                seq,
            );
            let v = self.to_heads(
                linear(x.view(), self.p(base + 4), self.p(base + 5), d)?.view(),
                b,
                seq,
            );
            let context = Self::merge_heads(&self.attend(&q, &k, &v, &key_mask)?);
            let attention_out = linear(context.view(), self.p(base + 6), self.p(base + 7), d)?;
            let attention_dropout =
                self.dropout(attention_out.view(), step, 1000 + 10 * l as u64 + 1)?;
            let residual1 = &x + &attention_dropout.output;
            let x1 = reference::layer_norm(
                residual1.view(),
                self.p(base + 8),
                self.p(base + 9),
                c.layer_norm_eps,
            )?;
            let ffn_hidden = linear(
                x1.view(),
                self.p(base + 10),
                self.p(base + 11),
                c.intermediate,
            )?;
            let ffn_activated = reference::gelu(ffn_hidden.view());
            let ffn_out = linear(
                ffn_activated.view(),
                self.p(base + 12),
                self.p(base + 13),
                d,
            )?;
            let ffn_dropout = self.dropout(ffn_out.view(), step, 1000 + 10 * l as u64 + 2)?;
            let residual2 = &x1 + &ffn_dropout.output;
            let next = reference::layer_norm(
                residual2.view(),
                self.p(base + 14),
                self.p(base + 15),
                c.layer_norm_eps,
            )?;
            layers.push(LayerCache {
                input: x,
                q,
                k,
                v,
                context,
                attention_dropout,
                residual1,
                x1,
                ffn_hidden,
                ffn_activated,
                ffn_dropout,
                residual2,
            });
            x = next;
        }
        Ok(Cache {
            embedded,
            embedding_dropout,
            layers,
            output: x,
            key_mask,
        })
    }

    /// The encoder's last hidden states `[batch·seq, d]` (row `b·seq + s`) at training step
    /// `step` (which keys the dropout masks).
    pub fn hidden_states(&self, batch: &EncoderBatch, step: u64) -> Result<Array2<T>> {
        Ok(self.forward_cache(batch, step)?.output)
    }

    /// The head's logits: `[batch·seq, classes]` (token), `[batch·seq, vocab]` (masked LM) or
    /// `[batch, classes]` (pooled).
    pub fn logits(&self, batch: &EncoderBatch, step: u64) -> Result<Array2<T>> {
        let cache = self.forward_cache(batch, step)?;
        Ok(self.head_forward(&cache.output, batch.ids.dim())?.0)
    }

    /// Head forward: logits and the head's intermediate values `(input, pre, post)`.
    fn head_forward(
        &self,
        x: &Array2<T>,
        (b, seq): (usize, usize),
    ) -> Result<(Array2<T>, Vec<Array2<T>>)> {
        let h = self.head_start();
        let d = self.config.hidden;
        let eps = self.config.layer_norm_eps;
        match self.config.head {
            EncoderHead::Token { classes } => {
                Ok((linear(x.view(), self.p(h), self.p(h + 1), classes)?, vec![]))
            }
            EncoderHead::MaskedLm => {
                let dense = linear(x.view(), self.p(h), self.p(h + 1), d)?;
                let activated = reference::gelu(dense.view());
                let normed =
                    reference::layer_norm(activated.view(), self.p(h + 2), self.p(h + 3), eps)?;
                let logits = linear(
                    normed.view(),
                    self.p(h + 4),
                    self.p(h + 5),
                    self.config.vocab,
                )?;
                Ok((logits, vec![dense, activated, normed]))
            }
            EncoderHead::Pooled { classes } => {
                let first = Array2::from_shape_fn((b, d), |(i, j)| x[[i * seq, j]]);
                let dense = linear(first.view(), self.p(h), self.p(h + 1), d)?;
                let pooled = reference::tanh(dense.view());
                let logits = linear(pooled.view(), self.p(h + 2), self.p(h + 3), classes)?;
                Ok((logits, vec![first, pooled]))
            }
        }
    }
}

/// The key mask for query position `i` under causal attention: keys `> i` get [`MASKED_SCORE`].
fn causal_mask<T: Scalar>(key_mask: &Array2<T>, i: usize) -> Array2<T> {
    let mut mask = key_mask.clone();
    mask.slice_mut(s![.., i + 1..])
        .fill(T::narrow(MASKED_SCORE));
    mask
}

impl<T: Scalar> Model<T> for Encoder<T> {
    type Batch = EncoderBatch;

    fn parameters(&self) -> &[Array1<T>] {
        &self.parameters
    }

    fn parameters_mut(&mut self) -> &mut [Array1<T>] {
        &mut self.parameters
    }

    fn parameter_names(&self) -> Vec<String> {
        let mut names: Vec<String> = ["word", "position", "token_type", "ln.gamma", "ln.beta"]
            .iter()
            .map(|n| format!("embeddings.{n}"))
            .collect();
        for l in 0..self.config.layers {
            for n in [
                "q.weight",
                "q.bias",
                "k.weight",
                "k.bias",
                "v.weight",
                "v.bias",
                "o.weight",
                "o.bias",
                "ln1.gamma",
                "ln1.beta",
                "ffn1.weight",
                "ffn1.bias",
                "ffn2.weight",
                "ffn2.bias",
                "ln2.gamma",
                "ln2.beta",
            ] {
                names.push(format!("layer{l}.{n}"));
            }
        }
        let head: &[&str] = match self.config.head {
            EncoderHead::Token { .. } => &["head.weight", "head.bias"],
            EncoderHead::MaskedLm => &[
                "mlm.dense.weight",
                "mlm.dense.bias",
                "mlm.ln.gamma",
                "mlm.ln.beta",
                "mlm.decoder.weight",
                "mlm.decoder.bias",
            ],
            EncoderHead::Pooled { .. } => &[
                "pooler.weight",
                "pooler.bias",
                "classifier.weight",
                "classifier.bias",
            ],
        };
        names.extend(head.iter().map(|n| n.to_string()));
        names
    }

    /// Cross-entropy (mean over non-ignored targets) and every parameter's gradient.
    fn loss_and_gradients(&self, batch: &EncoderBatch, step: u64) -> Result<(T, Vec<Array1<T>>)> {
        let c = &self.config;
        let (b, seq) = batch.ids.dim();
        let d = c.hidden;
        let cache = self.forward_cache(batch, step)?;
        let (logits, head_cache) = self.head_forward(&cache.output, (b, seq))?;
        let loss = reference::cross_entropy(
            logits.view(),
            batch.targets.view(),
            DEFAULT_IGNORE_INDEX,
            Reduction::Mean,
        )?;
        let grad_logits = reference::cross_entropy_backward(
            logits.view(),
            batch.targets.view(),
            DEFAULT_IGNORE_INDEX,
            Reduction::Mean,
            T::one(),
        )?;
        let mut grads: Vec<Array1<T>> = self
            .parameters
            .iter()
            .map(|p| Array1::zeros(p.len()))
            .collect();
        let h = self.head_start();
        let eps = c.layer_norm_eps;
        // Head backward → gradient of the encoder output.
        let mut grad_x = match c.head {
            EncoderHead::Token { .. } => {
                let (gx, gw, gb) =
                    linear_backward(cache.output.view(), self.p(h), grad_logits.view())?;
                grads[h] = gw;
                grads[h + 1] = gb;
                gx
            }
            EncoderHead::MaskedLm => {
                let (dense, activated, normed) = (&head_cache[0], &head_cache[1], &head_cache[2]);
                let (g_normed, gw, gb) =
                    linear_backward(normed.view(), self.p(h + 4), grad_logits.view())?;
                grads[h + 4] = gw;
                grads[h + 5] = gb;
                let (g_act, g_gamma, g_beta) = reference::layer_norm_backward(
                    activated.view(),
                    self.p(h + 2),
                    self.p(h + 3),
                    eps,
                    g_normed.view(),
                )?;
                grads[h + 2] = g_gamma;
                grads[h + 3] = g_beta;
                let g_dense = reference::gelu_backward(dense.view(), g_act.view())?;
                let (gx, gw, gb) = linear_backward(cache.output.view(), self.p(h), g_dense.view())?;
                grads[h] = gw;
                grads[h + 1] = gb;
                gx
            }
            EncoderHead::Pooled { .. } => {
                let (first, pooled) = (&head_cache[0], &head_cache[1]);
                let (g_pooled, gw, gb) =
                    linear_backward(pooled.view(), self.p(h + 2), grad_logits.view())?;
                grads[h + 2] = gw;
                grads[h + 3] = gb;
                let g_dense = reference::tanh_backward(pooled.view(), g_pooled.view())?;
                let (g_first, gw, gb) = linear_backward(first.view(), self.p(h), g_dense.view())?;
                grads[h] = gw;
                grads[h + 1] = gb;
                let mut gx = Array2::zeros((b * seq, d));
                for i in 0..b {
                    gx.row_mut(i * seq).assign(&g_first.row(i));
                }
                gx
            }
        };
        for l in (0..c.layers).rev() {
            let base = EMBEDDING_TENSORS + LAYER_TENSORS * l;
            let lc = &cache.layers[l];
            let (g_res2, g_gamma, g_beta) = reference::layer_norm_backward(
                lc.residual2.view(),
                self.p(base + 14),
                self.p(base + 15),
                eps,
                grad_x.view(),
            )?;
            grads[base + 14] = g_gamma;
            grads[base + 15] = g_beta;
            let g_ffn_out = reference::dropout_backward(
                g_res2.view(),
                lc.ffn_dropout.mask.view(),
                lc.ffn_dropout.scale,
            )?;
            let (g_act, gw, gb) =
                linear_backward(lc.ffn_activated.view(), self.p(base + 12), g_ffn_out.view())?;
            grads[base + 12] = gw;
            grads[base + 13] = gb;
            let g_hidden = reference::gelu_backward(lc.ffn_hidden.view(), g_act.view())?;
            let (g_x1_ffn, gw, gb) =
                linear_backward(lc.x1.view(), self.p(base + 10), g_hidden.view())?;
            grads[base + 10] = gw;
            grads[base + 11] = gb;
            let g_x1 = &g_res2 + &g_x1_ffn;
            let (g_res1, g_gamma, g_beta) = reference::layer_norm_backward(
                lc.residual1.view(),
                self.p(base + 8),
                self.p(base + 9),
                eps,
                g_x1.view(),
            )?;
            grads[base + 8] = g_gamma;
            grads[base + 9] = g_beta;
            let g_attn_out = reference::dropout_backward(
                g_res1.view(),
                lc.attention_dropout.mask.view(),
                lc.attention_dropout.scale,
            )?;
            let (g_context, gw, gb) =
                linear_backward(lc.context.view(), self.p(base + 6), g_attn_out.view())?;
            grads[base + 6] = gw;
            grads[base + 7] = gb;
            let g_heads = self.to_heads(g_context.view(), b, seq);
            let (gq, gk, gv) =
                self.attend_backward(&lc.q, &lc.k, &lc.v, &cache.key_mask, &g_heads)?;
            let mut g_input = g_res1.clone();
            for (offset, g) in [(0, gq), (2, gk), (4, gv)] {
                let g2 = Self::merge_heads(&g);
                let (gx, gw, gb) =
                    linear_backward(lc.input.view(), self.p(base + offset), g2.view())?;
                grads[base + offset] = gw;
                grads[base + offset + 1] = gb;
                g_input = g_input + gx;
            }
            grad_x = g_input;
        }
        // Embeddings.
        let g_normed = reference::dropout_backward(
            grad_x.view(),
            cache.embedding_dropout.mask.view(),
            cache.embedding_dropout.scale,
        )?;
        let (g_embedded, g_gamma, g_beta) = reference::layer_norm_backward(
            cache.embedded.view(),
            self.p(3),
            self.p(4),
            eps,
            g_normed.view(),
        )?;
        grads[3] = g_gamma;
        grads[4] = g_beta;
        let ids = Array1::from_iter(batch.ids.iter().copied());
        grads[0] = flatten(reference::embedding_backward(
            c.vocab,
            ids.view(),
            g_embedded.view(),
        )?);
        let mut g_position = Array2::<T>::zeros((c.max_positions, d));
        for (row, g) in g_embedded.axis_iter(Axis(0)).enumerate() {
            for (target, &value) in g_position.row_mut(row % seq).iter_mut().zip(g.iter()) {
                *target = *target + value;
            }
        }
        grads[1] = flatten(g_position);
        grads[2] = reference::sum_axis(g_embedded.view(), 0)?;
        Ok((loss, grads))
    }
}
