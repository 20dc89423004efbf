//! Row-op backwards, embedding, dropout and attention on the device (kernels in
//! `opencl/reduce.cl`, `opencl/embedding.cl`, `opencl/random.cl`, `opencl/attention.cl`).
//!
//! Layering as in [`super::losses`]: `enqueue_*` on caller-allocated device buffers, no
//! read-back; the `Backend` methods validate as the reference does, upload, enqueue, download.

use ndarray::{Array2, Array4, ArrayView1, ArrayView2, ArrayView4, Ix2};
use ocl::Buffer;

use super::losses::{check_buffer, check_nonzero, DeviceIndices};
use super::{contiguous, matmul_tile, round_up, to_u32, DeviceBuffer, OpenCl};
use crate::backend::AttentionGrads;
use crate::reference::DropoutOutput;
use crate::rng::{dropout_threshold, RandomKey};
use crate::{reference, validate, Error, Result, Scalar};

/// Memory layout of the `q`, `k`, `v`, output and gradient tensors of the attention enqueues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttentionLayout {
    /// `[batch, heads, seq, head_dim]` contiguous (the reference's layout).
    Bhsd,
    /// Token-major `[batch, seq, heads·head_dim]`: how `x·W_qᵀ` comes out of a matmul, so no
    /// permutation kernel is needed.
    Bshd,
}

impl AttentionLayout {
    /// Element strides `[batch, head, token, feature]` of a `[batch, heads, seq, dim]` tensor.
    fn strides(self, heads: usize, seq: usize, dim: usize) -> [usize; 4] {
        match self {
            AttentionLayout::Bhsd => [heads * seq * dim, seq * dim, dim, 1],
            AttentionLayout::Bshd => [seq * heads * dim, dim, heads * dim, 1],
        }
    }
}

/// Sizes of one attention call: `q [b, h, s_q, d]`, `k [b, h, s_k, d]`, `v [b, h, s_k, d_v]`.
#[derive(Debug, Clone, Copy)]
struct AttentionDims {
    batch: usize,
    heads: usize,
    s_q: usize,
    s_k: usize,
    d: usize,
    d_v: usize,
}

/// One operand of `attention_matmul`: a buffer and its strides `[batch, head, row, column]`.
struct Operand<'a, T: Scalar> {
    buffer: &'a Buffer<T>,
    strides: [usize; 4],
}

/// Strides of a row-major `[batch, heads, rows, cols]` scratch tensor, optionally transposed
/// (rows and columns swapped) as seen by a product.
fn scratch_strides(heads: usize, rows: usize, cols: usize, transposed: bool) -> [usize; 4] {
    let (batch, head) = (heads * rows * cols, rows * cols);
    if transposed {
        [batch, head, 1, cols]
    } else {
        [batch, head, cols, 1]
    }
}

/// Swap the row and column strides (a transpose without a copy).
fn transposed(strides: [usize; 4]) -> [usize; 4] {
    [strides[0], strides[1], strides[3], strides[2]]
}

/// Elements of a `[b, h, s, d]` tensor.
fn count4(b: usize, h: usize, s: usize, d: usize) -> usize {
    b.saturating_mul(h).saturating_mul(s).saturating_mul(d)
}

impl OpenCl {
    /// Shared launcher of the two row VJP kernels.
    #[allow(clippy::too_many_arguments, reason = "the kernel's argument list")]
    fn row_backward<T: Scalar>(
        &self,
        op: &'static str,
        y: &DeviceBuffer<T>,
        grad_output: &DeviceBuffer<T>,
        grad_x: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
        scale: Option<T>,
    ) -> Result<()> {
        check_nonzero(op, "rows", rows)?;
        check_nonzero(op, "cols", cols)?;
        let len = rows.saturating_mul(cols);
        check_buffer(op, "y", y.len, len)?;
        check_buffer(op, "grad_output", grad_output.len, len)?;
        check_buffer(op, "grad_x", grad_x.len, len)?;
        let program = self.program::<T>(op)?;
        let wg = self.shared.row_work_group;
        let mut builder = self.kernel(&program, op);
        builder
            .global_work_size(rows * wg)
            .local_work_size(wg)
            .arg(&y.buffer)
            .arg(&grad_output.buffer)
            .arg(&grad_x.buffer);
        if let Some(scale) = scale {
            builder.arg(scale);
        }
        builder.arg(to_u32(op, rows)?).arg(to_u32(op, cols)?);
        self.enqueue(builder.build(), op)
    }

    /// VJP of the row softmax from its output ([`reference::softmax_rows_backward`]): one
    /// work-group per row, `s = Σ_k g_k y_k` in a fixed tree, `dx_j = y_j·(g_j − s)`.
    pub fn enqueue_softmax_rows_backward<T: Scalar>(
        &self,
        y: &DeviceBuffer<T>,
        grad_output: &DeviceBuffer<T>,
        grad_x: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.row_backward(
            "softmax_rows_backward",
            y,
            grad_output,
            grad_x,
            rows,
            cols,
            Some(T::one()),
        )
    }

    /// VJP of the row log-softmax from its output ([`reference::log_softmax_rows_backward`]):
    /// one work-group per row, `s = Σ_k g_k` in a fixed tree, `dx_j = g_j − exp(y_j)·s`.
    pub fn enqueue_log_softmax_rows_backward<T: Scalar>(
        &self,
        y: &DeviceBuffer<T>,
        grad_output: &DeviceBuffer<T>,
        grad_x: &DeviceBuffer<T>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.row_backward(
            "log_softmax_rows_backward",
            y,
            grad_output,
            grad_x,
            rows,
            cols,
            None,
        )
    }

    /// Embedding lookup `out[i, :] = table[ids[i], :]` ([`reference::embedding`]): `table
    /// [vocab, dim]`, `count` ids, `out [count, dim]`. Ids are checked against `vocab` on the
    /// host copy (`InvalidParameter`, as the reference). Exact.
    #[allow(clippy::too_many_arguments, reason = "the op's dims")]
    pub fn enqueue_embedding<T: Scalar>(
        &self,
        table: &DeviceBuffer<T>,
        ids: &DeviceIndices,
        out: &DeviceBuffer<T>,
        vocab: usize,
        dim: usize,
        count: usize,
    ) -> Result<()> {
        const OP: &str = "embedding";
        self.check_ids(OP, ids, vocab, count)?;
        check_nonzero(OP, "dim", dim)?;
        check_buffer(OP, "table", table.len, vocab.saturating_mul(dim))?;
        check_buffer(OP, "out", out.len, count.saturating_mul(dim))?;
        let program = self.program::<T>(OP)?;
        let wg = self.shared.row_work_group;
        let kernel = self
            .kernel(&program, OP)
            .global_work_size((round_up(dim, wg), count))
            .local_work_size((wg, 1))
            .arg(&table.buffer)
            .arg(&ids.buffer)
            .arg(&out.buffer)
            .arg(to_u32(OP, vocab)?)
            .arg(to_u32(OP, dim)?)
            .arg(to_u32(OP, count)?)
            .build();
        self.enqueue(kernel, OP)
    }

    /// Embedding VJP ([`reference::embedding_backward`]): `grad_table [vocab, dim]` =
    /// scatter-add of `grad_output [count, dim]` rows by id, **in index order** from 0 (one
    /// work-group per vocabulary row scanning the ids; no atomics): bitwise equal to the
    /// reference in the same type. Every row of `grad_table` is written (unused ids get 0).
    #[allow(clippy::too_many_arguments, reason = "the op's dims")]
    pub fn enqueue_embedding_backward<T: Scalar>(
        &self,
        ids: &DeviceIndices,
        grad_output: &DeviceBuffer<T>,
        grad_table: &DeviceBuffer<T>,
        vocab: usize,
        dim: usize,
        count: usize,
    ) -> Result<()> {
        const OP: &str = "embedding_backward";
        self.check_ids(OP, ids, vocab, count)?;
        check_nonzero(OP, "dim", dim)?;
        check_buffer(
            OP,
            "grad_output",
            grad_output.len,
            count.saturating_mul(dim),
        )?;
        check_buffer(OP, "grad_table", grad_table.len, vocab.saturating_mul(dim))?;
        let program = self.program::<T>(OP)?;
        let wg = self.shared.row_work_group;
        let kernel = self
            .kernel(&program, OP)
            .global_work_size(vocab * wg)
            .local_work_size(wg)
            .arg(&ids.buffer)
            .arg(&grad_output.buffer)
            .arg(&grad_table.buffer)
            .arg(to_u32(OP, vocab)?)
            .arg(to_u32(OP, dim)?)
            .arg(to_u32(OP, count)?)
            .build();
        self.enqueue(kernel, OP)
    }

    /// `count ≤ ids.len()` and every one of the first `count` ids in `0..vocab`, with the
    /// reference's error (`validate::embedding_ids`).
    fn check_ids(
        &self,
        op: &'static str,
        ids: &DeviceIndices,
        vocab: usize,
        count: usize,
    ) -> Result<()> {
        check_nonzero(op, "vocab", vocab)?;
        check_nonzero(op, "count", count)?;
        check_buffer(op, "ids", ids.len(), count)?;
        if let Some((position, &id)) = ids.host[..count]
            .iter()
            .enumerate()
            .find(|&(_, &id)| usize::try_from(id).map_or(true, |id| id >= vocab))
        {
            return Err(Error::InvalidParameter {
                op,
                name: "ids",
                value: format!("ids[{position}] = {id}"),
                reason: format!("ids must be < the vocabulary size {vocab}"),
            });
        }
        Ok(())
    }

    /// The dropout kernel `y = x·m` over `len` elements, the mask regenerated from `key`.
    fn dropout_kernel<T: Scalar>(
        &self,
        op: &'static str,
        x: &DeviceBuffer<T>,
        y: &DeviceBuffer<T>,
        p: f64,
        key: RandomKey,
        len: usize,
    ) -> Result<()> {
        let scale = reference::dropout_scale::<T>(p)?;
        let threshold = dropout_threshold(p)?;
        check_nonzero(op, "len", len)?;
        check_buffer(op, "input", x.len, len)?;
        check_buffer(op, "output", y.len, len)?;
        let program = self.program::<T>(op)?;
        let wg = self.shared.row_work_group;
        let [k0, k1] = key.philox_key();
        let kernel = self
            .kernel(&program, "dropout")
            .global_work_size(round_up(len.div_ceil(4), wg))
            .local_work_size(wg)
            .arg(&x.buffer)
            .arg(&y.buffer)
            .arg(k0)
            .arg(k1)
            .arg(threshold)
            .arg(scale)
            .arg(to_u32(op, len)?)
            .build();
        self.enqueue(kernel, "dropout")
    }

    /// Inverted dropout ([`reference::dropout`]) of `len` elements: element `i` (row-major
    /// logical index) is kept iff `key.bits(i) ≥ ⌈p·2^32⌉` (Philox4x32-10 in `opencl/random.cl`,
    /// bit for bit [`crate::rng`]), `out_i = x_i·(keep ? round_T(1/(1 − p)) : 0)`. The mask is
    /// not stored. `InvalidParameter` unless `0 ≤ p < 1`.
    pub fn enqueue_dropout<T: Scalar>(
        &self,
        x: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        p: f64,
        key: RandomKey,
        len: usize,
    ) -> Result<()> {
        self.dropout_kernel("dropout", x, out, p, key, len)
    }

    /// VJP of [`OpenCl::enqueue_dropout`]: the mask **regenerated** from `(p, key)`, so
    /// `grad_x_i = g_i·(keep_i ? scale : 0)` with the forward's mask, bitwise.
    pub fn enqueue_dropout_backward<T: Scalar>(
        &self,
        grad_output: &DeviceBuffer<T>,
        grad_x: &DeviceBuffer<T>,
        p: f64,
        key: RandomKey,
        len: usize,
    ) -> Result<()> {
        self.dropout_kernel("dropout_backward", grad_output, grad_x, p, key, len)
    }

    /// `bits(offset + t)` of the Philox stream of `key` for `t < len`, computed on the device
    /// (`random_bits` in `opencl/random.cl`): must equal [`RandomKey::bits`] bit for bit.
    pub fn random_bits(&self, key: RandomKey, offset: u64, len: usize) -> Result<Vec<u32>> {
        const OP: &str = "random_bits";
        if len == 0 {
            return Ok(Vec::new());
        }
        let program = self.program::<f32>(OP)?;
        let out = self.raw_buffer::<u32>(len, None)?;
        let wg = self.shared.row_work_group;
        let [k0, k1] = key.philox_key();
        let kernel = self
            .kernel(&program, OP)
            .global_work_size(round_up(len, wg))
            .local_work_size(wg)
            .arg(&out.buffer)
            .arg(k0)
            .arg(k1)
            .arg(offset)
            .arg(to_u32(OP, len)?)
            .build();
        self.enqueue(kernel, OP)?;
        self.raw_download(&out, len)
    }

    /// One launch of `attention_matmul`: `c = a·b` per (batch, head), `m × k` by `k × n`;
    /// `mode` 1 adds the scores epilogue `·scale + mask[b, j]`.
    #[allow(clippy::too_many_arguments, reason = "the kernel's argument list")]
    fn attention_matmul<T: Scalar>(
        &self,
        a: Operand<'_, T>,
        b: Operand<'_, T>,
        c: Operand<'_, T>,
        mask: &Buffer<T>,
        (m, k, n): (usize, usize, usize),
        (batch, heads): (usize, usize),
        scale: T,
        mode: u32,
    ) -> Result<()> {
        const OP: &str = "attention_matmul";
        let program = self.program::<T>(OP)?;
        let tile = matmul_tile(self.shared.row_work_group);
        let mut builder = self.kernel(&program, OP);
        builder
            .global_work_size((round_up(n, tile), round_up(m, tile), batch * heads))
            .local_work_size((tile, tile, 1))
            .arg(a.buffer)
            .arg(b.buffer)
            .arg(c.buffer)
            .arg(mask)
            .arg(to_u32(OP, m)?)
            .arg(to_u32(OP, k)?)
            .arg(to_u32(OP, n)?)
            .arg(to_u32(OP, heads)?);
        for strides in [a.strides, b.strides, c.strides] {
            for s in strides {
                builder.arg(to_u32(OP, s)?);
            }
        }
        builder.arg(scale).arg(mode);
        // SAFETY (through `enqueue`): attention_matmul (opencl/attention.cl) is matmul's tile
        // loop: padded items guard every load and the store instead of returning early, and
        // every address is below the buffer lengths checked by the callers for these dims.
        self.enqueue(builder.build(), OP)
    }

    /// Buffer checks of the attention enqueues.
    fn attention_buffers<T: Scalar>(
        op: &'static str,
        dims: AttentionDims,
        tensors: &[(&str, &DeviceBuffer<T>, usize)],
    ) -> Result<()> {
        check_nonzero(op, "batch", dims.batch)?;
        check_nonzero(op, "heads", dims.heads)?;
        check_nonzero(op, "query length", dims.s_q)?;
        check_nonzero(op, "key length", dims.s_k)?;
        check_nonzero(op, "head_dim", dims.d)?;
        check_nonzero(op, "value dim", dims.d_v)?;
        for &(name, buffer, needed) in tensors {
            check_buffer(op, name, buffer.len, needed)?;
        }
        Ok(())
    }

    /// Forward attention for general dims (the `Backend` method uses `s_q ≠ s_k`, `d_v ≠ d`).
    #[allow(clippy::too_many_arguments, reason = "the op's argument list")]
    fn attention_forward<T: Scalar>(
        &self,
        q: &DeviceBuffer<T>,
        k: &DeviceBuffer<T>,
        v: &DeviceBuffer<T>,
        key_mask: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        probs: &DeviceBuffer<T>,
        dims: AttentionDims,
        layout: AttentionLayout,
    ) -> Result<()> {
        const OP: &str = "attention";
        let AttentionDims {
            batch,
            heads,
            s_q,
            s_k,
            d,
            d_v,
        } = dims;
        let scores_len = count4(batch, heads, s_q, s_k);
        Self::attention_buffers(
            OP,
            dims,
            &[
                ("q", q, count4(batch, heads, s_q, d)),
                ("k", k, count4(batch, heads, s_k, d)),
                ("v", v, count4(batch, heads, s_k, d_v)),
                ("key_mask", key_mask, batch.saturating_mul(s_k)),
                ("out", out, count4(batch, heads, s_q, d_v)),
                ("probs", probs, scores_len),
            ],
        )?;
        let scale = attention_scale::<T>(d);
        let scores = self.zeros_buffer::<T>(scores_len)?;
        // S = (Q·Kᵀ)·scale + mask
        self.attention_matmul(
            Operand {
                buffer: &q.buffer,
                strides: layout.strides(heads, s_q, d),
            },
            Operand {
                buffer: &k.buffer,
                strides: transposed(layout.strides(heads, s_k, d)),
            },
            Operand {
                buffer: &scores.buffer,
                strides: scratch_strides(heads, s_q, s_k, false),
            },
            &key_mask.buffer,
            (s_q, d, s_k),
            (batch, heads),
            scale,
            1,
        )?;
        // P = softmax_rows(S) over the keys
        self.enqueue_row_kernel("softmax_rows", &scores, batch * heads * s_q, s_k, probs)?;
        // O = P·V
        self.attention_matmul(
            Operand {
                buffer: &probs.buffer,
                strides: scratch_strides(heads, s_q, s_k, false),
            },
            Operand {
                buffer: &v.buffer,
                strides: layout.strides(heads, s_k, d_v),
            },
            Operand {
                buffer: &out.buffer,
                strides: layout.strides(heads, s_q, d_v),
            },
            &key_mask.buffer,
            (s_q, s_k, d_v),
            (batch, heads),
            T::one(),
            0,
        )
    }

    /// Scaled dot-product attention ([`reference::attention`]) on device buffers: per batch
    /// entry and head, `S = (Q·Kᵀ)·round_T(1/√head_dim) + mask`, `P = softmax_rows(S)` (written
    /// to `probs [batch, heads, seq, seq]` for the backward), `O = P·V`. `q, k, v, out` are in
    /// `layout`; `key_mask [batch, seq]` is additive. The products sum in the reference's order
    /// (tiled, FP_CONTRACT off); the softmax is the row kernel. No read-back.
    #[allow(clippy::too_many_arguments, reason = "the op's argument list")]
    pub fn enqueue_attention<T: Scalar>(
        &self,
        q: &DeviceBuffer<T>,
        k: &DeviceBuffer<T>,
        v: &DeviceBuffer<T>,
        key_mask: &DeviceBuffer<T>,
        out: &DeviceBuffer<T>,
        probs: &DeviceBuffer<T>,
        batch: usize,
        heads: usize,
        seq: usize,
        head_dim: usize,
        layout: AttentionLayout,
    ) -> Result<()> {
        let dims = AttentionDims {
            batch,
            heads,
            s_q: seq,
            s_k: seq,
            d: head_dim,
            d_v: head_dim,
        };
        self.attention_forward(q, k, v, key_mask, out, probs, dims, layout)
    }

    /// Backward attention for general dims, from the forward's `probs`.
    #[allow(clippy::too_many_arguments, reason = "the op's argument list")]
    fn attention_backward_general<T: Scalar>(
        &self,
        q: &DeviceBuffer<T>,
        k: &DeviceBuffer<T>,
        v: &DeviceBuffer<T>,
        key_mask: &DeviceBuffer<T>,
        probs: &DeviceBuffer<T>,
        grad_output: &DeviceBuffer<T>,
        grads: [&DeviceBuffer<T>; 3],
        dims: AttentionDims,
        layout: AttentionLayout,
    ) -> Result<()> {
        const OP: &str = "attention_backward";
        let AttentionDims {
            batch,
            heads,
            s_q,
            s_k,
            d,
            d_v,
        } = dims;
        let [grad_q, grad_k, grad_v] = grads;
        let scores_len = count4(batch, heads, s_q, s_k);
        Self::attention_buffers(
            OP,
            dims,
            &[
                ("q", q, count4(batch, heads, s_q, d)),
                ("k", k, count4(batch, heads, s_k, d)),
                ("v", v, count4(batch, heads, s_k, d_v)),
                ("key_mask", key_mask, batch.saturating_mul(s_k)),
                ("probs", probs, scores_len),
                ("grad_output", grad_output, count4(batch, heads, s_q, d_v)),
                ("grad_q", grad_q, count4(batch, heads, s_q, d)),
                ("grad_k", grad_k, count4(batch, heads, s_k, d)),
                ("grad_v", grad_v, count4(batch, heads, s_k, d_v)),
            ],
        )?;
        let scale = attention_scale::<T>(d);
        let bh = (batch, heads);
        let p_strides = scratch_strides(heads, s_q, s_k, false);
        let g_strides = layout.strides(heads, s_q, d_v);
        // ∂V = Pᵀ·G
        self.attention_matmul(
            Operand {
                buffer: &probs.buffer,
                strides: scratch_strides(heads, s_q, s_k, true),
            },
            Operand {
                buffer: &grad_output.buffer,
                strides: g_strides,
            },
            Operand {
                buffer: &grad_v.buffer,
                strides: layout.strides(heads, s_k, d_v),
            },
            &key_mask.buffer,
            (s_k, s_q, d_v),
            bh,
            T::one(),
            0,
        )?;
        // ∂P = G·Vᵀ
        let grad_p = self.zeros_buffer::<T>(scores_len)?;
        self.attention_matmul(
            Operand {
                buffer: &grad_output.buffer,
                strides: g_strides,
            },
            Operand {
                buffer: &v.buffer,
                strides: transposed(layout.strides(heads, s_k, d_v)),
            },
            Operand {
                buffer: &grad_p.buffer,
                strides: p_strides,
            },
            &key_mask.buffer,
            (s_q, d_v, s_k),
            bh,
            T::one(),
            0,
        )?;
        // ∂S = softmax_rows_backward(P, ∂P)·scale
        let grad_s = self.zeros_buffer::<T>(scores_len)?;
        self.row_backward(
            "softmax_rows_backward",
            probs,
            &grad_p,
            &grad_s,
            batch * heads * s_q,
            s_k,
            Some(scale),
        )?;
        // ∂Q = ∂S·K
        self.attention_matmul(
            Operand {
                buffer: &grad_s.buffer,
                strides: p_strides,
            },
            Operand {
                buffer: &k.buffer,
                strides: layout.strides(heads, s_k, d),
            },
            Operand {
                buffer: &grad_q.buffer,
                strides: layout.strides(heads, s_q, d),
            },
            &key_mask.buffer,
            (s_q, s_k, d),
            bh,
            T::one(),
            0,
        )?;
        // ∂K = ∂Sᵀ·Q
        self.attention_matmul(
            Operand {
                buffer: &grad_s.buffer,
                strides: scratch_strides(heads, s_q, s_k, true),
            },
            Operand {
                buffer: &q.buffer,
                strides: layout.strides(heads, s_q, d),
            },
            Operand {
                buffer: &grad_k.buffer,
                strides: layout.strides(heads, s_k, d),
            },
            &key_mask.buffer,
            (s_k, s_q, d),
            bh,
            T::one(),
            0,
        )
    }

    /// VJP of [`OpenCl::enqueue_attention`] ([`reference::attention_backward`]) from the
    /// forward's `probs`: `∂V = Pᵀ·G`, `∂P = G·Vᵀ`, `∂S = softmax_rows_backward(P, ∂P)·scale`
    /// (row kernel, fixed tree), `∂Q = ∂S·K`, `∂K = ∂Sᵀ·Q`, all in `layout`. No read-back.
    #[allow(clippy::too_many_arguments, reason = "the op's argument list")]
    pub fn enqueue_attention_backward<T: Scalar>(
        &self,
        q: &DeviceBuffer<T>,
        k: &DeviceBuffer<T>,
        v: &DeviceBuffer<T>,
        key_mask: &DeviceBuffer<T>,
        probs: &DeviceBuffer<T>,
        grad_output: &DeviceBuffer<T>,
        grad_q: &DeviceBuffer<T>,
        grad_k: &DeviceBuffer<T>,
        grad_v: &DeviceBuffer<T>,
        batch: usize,
        heads: usize,
        seq: usize,
        head_dim: usize,
        layout: AttentionLayout,
    ) -> Result<()> {
        let dims = AttentionDims {
            batch,
            heads,
            s_q: seq,
            s_k: seq,
            d: head_dim,
            d_v: head_dim,
        };
        self.attention_backward_general(
            q,
            k,
            v,
            key_mask,
            probs,
            grad_output,
            [grad_q, grad_k, grad_v],
            dims,
            layout,
        )
    }

    /// `Backend::softmax_rows_backward` / `log_softmax_rows_backward`.
    pub(super) fn backend_row_backward<T: Scalar>(
        &self,
        op: &'static str,
        y: ArrayView2<'_, T>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        validate::rows_op(op, y)?;
        validate::same_shape(op, "grad_output", grad_output.shape(), "y", y.shape())?;
        let (rows, cols) = y.dim();
        if rows == 0 {
            return Ok(Array2::zeros((rows, cols)));
        }
        let y_buffer = self.upload_buffer(&contiguous(&y))?;
        let g_buffer = self.upload_buffer(&contiguous(&grad_output))?;
        let out = self.zeros_buffer::<T>(rows * cols)?;
        if op == "softmax_rows_backward" {
            self.enqueue_softmax_rows_backward(&y_buffer, &g_buffer, &out, rows, cols)?;
        } else {
            self.enqueue_log_softmax_rows_backward(&y_buffer, &g_buffer, &out, rows, cols)?;
        }
        Array2::from_shape_vec((rows, cols), self.read_buffer(&out)?)
            .map_err(|e| Error::opencl(format!("shaping {op}"), e))
    }

    /// `Backend::embedding`.
    pub(super) fn backend_embedding<T: Scalar>(
        &self,
        table: ArrayView2<'_, T>,
        ids: ArrayView1<'_, usize>,
    ) -> Result<Array2<T>> {
        validate::embedding_ids("embedding", ids, table.nrows())?;
        let (vocab, dim) = table.dim();
        let count = ids.len();
        if count == 0 || dim == 0 {
            return Ok(Array2::zeros((count, dim)));
        }
        let table_buffer = self.upload_buffer(&contiguous(&table))?;
        let id_buffer = self.upload_indices(&ids_as_i64(ids)?)?;
        let out = self.zeros_buffer::<T>(count * dim)?;
        self.enqueue_embedding(&table_buffer, &id_buffer, &out, vocab, dim, count)?;
        Array2::from_shape_vec((count, dim), self.read_buffer(&out)?)
            .map_err(|e| Error::opencl("shaping embedding", e))
    }

    /// `Backend::embedding_backward`.
    pub(super) fn backend_embedding_backward<T: Scalar>(
        &self,
        vocab: usize,
        ids: ArrayView1<'_, usize>,
        grad_output: ArrayView2<'_, T>,
    ) -> Result<Array2<T>> {
        const OP: &str = "embedding_backward";
        validate::embedding_ids(OP, ids, vocab)?;
        let dim = grad_output.ncols();
        let count = ids.len();
        validate::same_shape(
            OP,
            "grad_output",
            grad_output.shape(),
            "output",
            &[count, dim],
        )?;
        if count == 0 || dim == 0 || vocab == 0 {
            return Ok(Array2::zeros((vocab, dim)));
        }
        let id_buffer = self.upload_indices(&ids_as_i64(ids)?)?;
        let g_buffer = self.upload_buffer(&contiguous(&grad_output))?;
        let out = self.zeros_buffer::<T>(vocab * dim)?;
        self.enqueue_embedding_backward(&id_buffer, &g_buffer, &out, vocab, dim, count)?;
        Array2::from_shape_vec((vocab, dim), self.read_buffer(&out)?)
            .map_err(|e| Error::opencl("shaping embedding_backward", e))
    }

    /// `Backend::dropout`: output from the dropout kernel and the mask (read back as bytes)
    /// from `dropout_mask`, both regenerated from `key`.
    pub(super) fn backend_dropout<T: Scalar>(
        &self,
        x: ArrayView2<'_, T>,
        p: f64,
        key: RandomKey,
    ) -> Result<DropoutOutput<T, Ix2>> {
        let scale = reference::dropout_scale::<T>(p)?;
        let threshold = dropout_threshold(p)?;
        let dim = x.dim();
        let len = x.len();
        if len == 0 {
            return Ok(DropoutOutput {
                output: Array2::zeros(dim),
                mask: Array2::from_elem(dim, false),
                scale,
            });
        }
        let x_buffer = self.upload_buffer(&contiguous(&x))?;
        let out = self.zeros_buffer::<T>(len)?;
        self.enqueue_dropout(&x_buffer, &out, p, key, len)?;
        let program = self.program::<T>("dropout")?;
        let mask = self.raw_buffer::<u8>(len, None)?;
        let wg = self.shared.row_work_group;
        let [k0, k1] = key.philox_key();
        let kernel = self
            .kernel(&program, "dropout_mask")
            .global_work_size(round_up(len.div_ceil(4), wg))
            .local_work_size(wg)
            .arg(&mask.buffer)
            .arg(k0)
            .arg(k1)
            .arg(threshold)
            .arg(to_u32("dropout", len)?)
            .build();
        self.enqueue(kernel, "dropout_mask")?;
        let output = Array2::from_shape_vec(dim, self.read_buffer(&out)?)
            .map_err(|e| Error::opencl("shaping dropout", e))?;
        let bytes = self.raw_download(&mask, len)?;
        let mask = Array2::from_shape_vec(dim, bytes.into_iter().map(|b| b != 0).collect())
            .map_err(|e| Error::opencl("shaping the dropout mask", e))?;
        Ok(DropoutOutput {
            output,
            mask,
            scale,
        })
    }

    /// `Backend::dropout_backward` with the given mask (uploaded as bytes).
    pub(super) fn backend_dropout_backward<T: Scalar>(
        &self,
        grad_output: ArrayView2<'_, T>,
        mask: ArrayView2<'_, bool>,
        scale: T,
    ) -> Result<Array2<T>> {
        const OP: &str = "dropout_backward";
        validate::same_shape(OP, "grad_output", grad_output.shape(), "mask", mask.shape())?;
        let dim = grad_output.dim();
        let len = grad_output.len();
        if len == 0 {
            return Ok(Array2::zeros(dim));
        }
        let program = self.program::<T>(OP)?;
        let g_buffer = self.upload_buffer(&contiguous(&grad_output))?;
        let bytes: Vec<u8> = mask.iter().map(|&keep| u8::from(keep)).collect();
        let mask_buffer = self.raw_buffer::<u8>(len, Some(&bytes))?;
        let out = self.zeros_buffer::<T>(len)?;
        let wg = self.shared.row_work_group;
        let kernel = self
            .kernel(&program, "dropout_backward_masked")
            .global_work_size(round_up(len, wg))
            .local_work_size(wg)
            .arg(&g_buffer.buffer)
            .arg(&mask_buffer.buffer)
            .arg(&out.buffer)
            .arg(scale)
            .arg(to_u32(OP, len)?)
            .build();
        self.enqueue(kernel, "dropout_backward_masked")?;
        Array2::from_shape_vec(dim, self.read_buffer(&out)?)
            .map_err(|e| Error::opencl("shaping dropout_backward", e))
    }

    /// `Backend::attention` (layout `Bhsd`, general `s_q`, `s_k`, `d_v`).
    pub(super) fn backend_attention<T: Scalar>(
        &self,
        q: ArrayView4<'_, T>,
        k: ArrayView4<'_, T>,
        v: ArrayView4<'_, T>,
        key_mask: ArrayView2<'_, T>,
    ) -> Result<Array4<T>> {
        validate::attention("attention", q, k, v, key_mask)?;
        let (batch, heads, s_q, d) = q.dim();
        let (s_k, d_v) = (k.dim().2, v.dim().3);
        let out_shape = (batch, heads, s_q, d_v);
        if count4(batch, heads, s_q, d_v) == 0 {
            return Ok(Array4::zeros(out_shape));
        }
        let dims = AttentionDims {
            batch,
            heads,
            s_q,
            s_k,
            d,
            d_v,
        };
        let (qb, kb, vb, mb) = (
            self.upload_buffer(&contiguous(&q))?,
            self.upload_buffer(&contiguous(&k))?,
            self.upload_buffer(&contiguous(&v))?,
            self.upload_buffer(&contiguous(&key_mask))?,
        );
        let out = self.zeros_buffer::<T>(count4(batch, heads, s_q, d_v))?;
        let probs = self.zeros_buffer::<T>(count4(batch, heads, s_q, s_k))?;
        self.attention_forward(
            &qb,
            &kb,
            &vb,
            &mb,
            &out,
            &probs,
            dims,
            AttentionLayout::Bhsd,
        )?;
        Array4::from_shape_vec(out_shape, self.read_buffer(&out)?)
            .map_err(|e| Error::opencl("shaping attention", e))
    }

    /// `Backend::attention_backward`: the forward (for `probs`), then the backward.
    pub(super) fn backend_attention_backward<T: Scalar>(
        &self,
        q: ArrayView4<'_, T>,
        k: ArrayView4<'_, T>,
        v: ArrayView4<'_, T>,
        key_mask: ArrayView2<'_, T>,
        grad_output: ArrayView4<'_, T>,
    ) -> Result<AttentionGrads<T>> {
        const OP: &str = "attention_backward";
        validate::attention_backward(OP, q, k, v, key_mask, grad_output)?;
        let (batch, heads, s_q, d) = q.dim();
        let (s_k, d_v) = (k.dim().2, v.dim().3);
        if count4(batch, heads, s_q, d_v) == 0 {
            return Ok((
                Array4::zeros(q.raw_dim()),
                Array4::zeros(k.raw_dim()),
                Array4::zeros(v.raw_dim()),
            ));
        }
        let dims = AttentionDims {
            batch,
            heads,
            s_q,
            s_k,
            d,
            d_v,
        };
        let (qb, kb, vb, mb, gb) = (
            self.upload_buffer(&contiguous(&q))?,
            self.upload_buffer(&contiguous(&k))?,
            self.upload_buffer(&contiguous(&v))?,
            self.upload_buffer(&contiguous(&key_mask))?,
            self.upload_buffer(&contiguous(&grad_output))?,
        );
        let out = self.zeros_buffer::<T>(count4(batch, heads, s_q, d_v))?;
        let probs = self.zeros_buffer::<T>(count4(batch, heads, s_q, s_k))?;
        let layout = AttentionLayout::Bhsd;
        self.attention_forward(&qb, &kb, &vb, &mb, &out, &probs, dims, layout)?;
        let grad_q = self.zeros_buffer::<T>(q.len())?;
        let grad_k = self.zeros_buffer::<T>(k.len())?;
        let grad_v = self.zeros_buffer::<T>(v.len())?;
        self.attention_backward_general(
            &qb,
            &kb,
            &vb,
            &mb,
            &probs,
            &gb,
            [&grad_q, &grad_k, &grad_v],
            dims,
            layout,
        )?;
        let shape = |a: &ArrayView4<'_, T>, data: Vec<T>| {
            Array4::from_shape_vec(a.raw_dim(), data)
                .map_err(|e| Error::opencl("shaping attention_backward", e))
        };
        Ok((
            shape(&q, self.read_buffer(&grad_q)?)?,
            shape(&k, self.read_buffer(&grad_k)?)?,
            shape(&v, self.read_buffer(&grad_v)?)?,
        ))
    }
}

/// `round_T(1/√head_dim)`, computed in f64, as the reference rounds it.
fn attention_scale<T: Scalar>(head_dim: usize) -> T {
    T::narrow(1.0 / (head_dim as f64).sqrt())
}

/// Validated `usize` ids as the device's 64-bit indices.
fn ids_as_i64(ids: ArrayView1<'_, usize>) -> Result<Vec<i64>> {
    ids.iter()
        .map(|&id| {
            i64::try_from(id).map_err(|_| Error::TooLarge {
                op: "embedding",
                what: "id",
                value: id as u128,
                limit: i64::MAX as u128,
            })
        })
        .collect()
}
