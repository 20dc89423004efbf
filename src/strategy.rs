//! proptest strategies: valid inputs by construction (they map into the domain, never filter),
//! with the edge cases every op must meet.
//!
//! Values are drawn in f64 and rounded to `T`, so every backend sees the same representable
//! inputs.

use ndarray::{Array1, Array2, Array3};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::Scalar;

/// Magnitudes used for uniform rows: ordinary, large, past f32's `exp` overflow (88.72), huge.
pub const ROW_SCALES: &[f64] = &[1.0, 10.0, 88.8, 1e4];

/// Edge values (THEORY.md A0, A3): f32 `exp` overflow and subnormal thresholds, the
/// `σ(z) = 1` thresholds `24 ln 2` and `53 ln 2`, huge and tiny magnitudes.
pub const EDGE_VALUES: &[f64] = &[
    0.0, 1e-30, -1e-30, 16.635532, -16.635532, 36.7368, -36.7368, 88.7228, -88.7228, 88.8, -88.8,
    103.97, -103.97, 1e4, -1e4, 1e30, -1e30,
];

/// Row lengths that break kernels: single, small odd, around work-group sizes, a few thousand.
/// (Length 0 is an error case, covered by the error-parity checks.)
pub fn row_length() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(1usize),
        4 => 2usize..=17,
        2 => prop::sample::select(vec![31usize, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 513]),
        1 => 1000usize..=5000,
    ]
}

/// Lengths ≥ 100,000 for the long-row cases.
pub fn long_length() -> impl Strategy<Value = usize> {
    100_000usize..=120_000
}

/// One row of `len` finite values of one of several kinds: uniform at a scale from
/// [`ROW_SCALES`]; all equal; one dominant entry; a mix of [`EDGE_VALUES`] and small values; a
/// max near 0 over a far tail.
pub fn row_values(len: usize) -> BoxedStrategy<Vec<f64>> {
    prop_oneof![
        4 => prop::sample::select(ROW_SCALES).prop_flat_map(move |s| vec(-s..=s, len)),
        1 => prop::sample::select(EDGE_VALUES).prop_map(move |v| vec![v; len]),
        1 => (vec(-1.0f64..=1.0, len), 0..len.max(1), prop::sample::select(vec![30.0, 88.8, 1e4, -88.8, 1e30]))
            .prop_map(|(mut v, i, big)| {
                // `len = 0` draws an empty row (the index range is widened to stay non-empty).
                if let Some(slot) = v.get_mut(i) {
                    *slot = big;
                }
                v
            }),
        1 => vec(prop_oneof![prop::sample::select(EDGE_VALUES), -1.0f64..=1.0], len),
        // Max near 0 and every other entry far below: LSE = log1p(s) with tiny s, where
        // `log(1 + s)` and `log1p(s)` differ (THEORY.md A0, A4).
        1 => (vec(-60.0f64..=-16.0, len), 0..len.max(1), -1.0f64..=1.0).prop_map(|(mut v, i, top)| {
            if let Some(slot) = v.get_mut(i) {
                *slot = top;
            }
            v
        }),
    ]
    .boxed()
}

/// Round f64 values to `T`.
pub fn narrow<T: Scalar>(values: &[f64]) -> Vec<T> {
    values.iter().map(|&v| T::narrow(v)).collect()
}

fn matrix_from_rows<T: Scalar>(rows: Vec<Vec<f64>>, cols: usize) -> Array2<T> {
    let n = rows.len();
    let flat: Vec<T> = rows.into_iter().flat_map(|r| narrow::<T>(&r)).collect();
    Array2::from_shape_vec((n, cols), flat).unwrap_or_else(|_| Array2::zeros((0, cols)))
}

/// Logit matrices for row ops: 0 to 6 rows of a [`row_length`], or 1–2 rows of a
/// [`long_length`]; rows from [`row_values`].
pub fn logits_matrix<T: Scalar>() -> impl Strategy<Value = Array2<T>> {
    prop_oneof![
        12 => (0usize..=6, row_length()),
        1 => (1usize..=2, long_length()),
    ]
    .prop_flat_map(|(rows, cols)| {
        vec(row_values(cols), rows).prop_map(move |r| matrix_from_rows::<T>(r, cols))
    })
}

/// Logits with magnitudes log-uniform in `[1e-3, 1e4]` and random sign, mixed with
/// [`EDGE_VALUES`] (THEORY.md A3 (d)).
pub fn logit_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-3.0f64..=4.0, any::<bool>()).prop_map(|(e, negative)| {
            let v = 10f64.powf(e);
            if negative { -v } else { v }
        }),
        1 => prop::sample::select(EDGE_VALUES),
        2 => -5.0f64..=5.0,
    ]
}

/// Labels: hard (`{0, 1}`) or soft (`[0, 1]`), `len` of them.
pub fn labels_of_len(len: usize) -> BoxedStrategy<Vec<f64>> {
    prop_oneof![
        vec(prop::sample::select(vec![0.0, 1.0]), len),
        vec(0.0f64..=1.0, len),
    ]
    .boxed()
}

/// Lengths for losses: a [`row_length`], occasionally ≥ 100,000.
pub fn loss_length() -> impl Strategy<Value = usize> {
    prop_oneof![12 => row_length(), 1 => long_length()]
}

/// `(logits, labels)` pairs for binary cross-entropy.
pub fn bce_inputs<T: Scalar>() -> impl Strategy<Value = (Array1<T>, Array1<T>)> {
    loss_length().prop_flat_map(|n| {
        (vec(logit_value(), n), labels_of_len(n))
            .prop_map(|(z, y)| (Array1::from(narrow::<T>(&z)), Array1::from(narrow::<T>(&y))))
    })
}

/// Labels alone (for the zero-logit and constant-logit invariants).
pub fn labels<T: Scalar>() -> impl Strategy<Value = Array1<T>> {
    loss_length().prop_flat_map(|n| labels_of_len(n).prop_map(|y| Array1::from(narrow::<T>(&y))))
}

/// An upstream gradient for VJPs: 1 (the plain gradient) or a value in `[-4, 4]`.
pub fn grad_output() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), -4.0f64..=4.0]
}

/// Shapes for 2-D elementwise ops and row broadcasts: 0 to 4 rows of a [`row_length`] (1, odd,
/// 63/64/65, 255/256/257, ...), so the flattened length crosses work-group boundaries.
pub fn elementwise_shape() -> impl Strategy<Value = (usize, usize)> {
    (0usize..=4, row_length())
}

fn matrix_of<T: Scalar>(
    (rows, cols): (usize, usize),
    value: impl Strategy<Value = f64>,
) -> impl Strategy<Value = Array2<T>> {
    vec(value, rows * cols).prop_map(move |v| {
        Array2::from_shape_vec((rows, cols), narrow::<T>(&v))
            .unwrap_or_else(|_| Array2::zeros((rows, cols)))
    })
}

/// Inputs of the elementwise activations: [`logit_value`]s (log-uniform magnitudes up to `1e4`,
/// [`EDGE_VALUES`] including `±0`, `±1e30` and the f32 `exp` thresholds) in an
/// [`elementwise_shape`].
pub fn activation_input<T: Scalar>() -> impl Strategy<Value = Array2<T>> {
    elementwise_shape().prop_flat_map(|shape| matrix_of::<T>(shape, logit_value()))
}

/// Upstream gradient values: `1`, `0`, or uniform in `[-4, 4]`.
pub fn grad_value() -> impl Strategy<Value = f64> {
    prop_oneof![1 => Just(1.0), 1 => Just(0.0), 6 => -4.0f64..=4.0]
}

/// `(x, g)` of one shape for a VJP that takes the forward **input** (ReLU, leaky ReLU, GELU).
pub fn activation_input_with_grad<T: Scalar>() -> impl Strategy<Value = (Array2<T>, Array2<T>)> {
    elementwise_shape().prop_flat_map(|shape| {
        (
            matrix_of::<T>(shape, logit_value()),
            matrix_of::<T>(shape, grad_value()),
        )
    })
}

/// `(y, g)` for the sigmoid VJP: outputs `y ∈ [0, 1]` (with `0`, `1/2`, `1` and values near
/// the ends), same-shape gradients.
pub fn sigmoid_output_with_grad<T: Scalar>() -> impl Strategy<Value = (Array2<T>, Array2<T>)> {
    let y = || {
        prop_oneof![
            4 => 0.0f64..=1.0,
            1 => prop::sample::select(vec![0.0, 0.5, 1.0, 1e-7, 1.0 - 1e-7]),
        ]
    };
    elementwise_shape().prop_flat_map(move |shape| {
        (
            matrix_of::<T>(shape, y()),
            matrix_of::<T>(shape, grad_value()),
        )
    })
}

/// `(y, g)` for the tanh VJP: outputs `y ∈ [−1, 1]` (with `0`, `±1`, values near `±1`),
/// same-shape gradients.
pub fn tanh_output_with_grad<T: Scalar>() -> impl Strategy<Value = (Array2<T>, Array2<T>)> {
    let y = || {
        prop_oneof![
            4 => -1.0f64..=1.0,
            1 => prop::sample::select(vec![0.0, 1.0, -1.0, 1.0 - 1e-7, -1.0 + 1e-7]),
        ]
    };
    elementwise_shape().prop_flat_map(move |shape| {
        (
            matrix_of::<T>(shape, y()),
            matrix_of::<T>(shape, grad_value()),
        )
    })
}

/// Negative slopes of leaky ReLU: PyTorch's default `0.01`, common values, `0`, `1`, a negative
/// one, or uniform in `[0, 1]`.
pub fn leaky_slope() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => prop::sample::select(vec![0.01, 0.1, 0.2, 0.0, 1.0, -0.5]),
        1 => 0.0f64..=1.0,
    ]
}

/// Matmul sizes: 1, small, odd, around tile multiples (15/16/17, 31/32/33, 63/64/65), and for
/// the inner dimension also 0 (the result is zeros) and 255/256/257.
pub fn matmul_dims() -> impl Strategy<Value = (usize, usize, usize)> {
    let outer = || {
        prop_oneof![
            1 => Just(1usize),
            3 => 2usize..=20,
            2 => prop::sample::select(vec![15usize, 16, 17, 31, 32, 33, 63, 64, 65]),
        ]
    };
    let inner = prop_oneof![
        1 => Just(0usize),
        1 => Just(1usize),
        3 => 2usize..=40,
        2 => prop::sample::select(vec![15usize, 16, 17, 63, 64, 65, 255, 256, 257]),
    ];
    (outer(), inner, outer())
}

/// Matmul operands `(a [m, k], b [k, n])` over [`matmul_dims`], entries uniform in `[-s, s]` for
/// a scale `s ∈ {1, 10, 100}` (no overflow in f32 for these lengths).
pub fn matmul_operands<T: Scalar>() -> impl Strategy<Value = (Array2<T>, Array2<T>)> {
    (
        matmul_dims(),
        prop::sample::select(vec![1.0f64, 10.0, 100.0]),
    )
        .prop_flat_map(|((m, k, n), s)| {
            (
                matrix_of::<T>((m, k), -s..=s),
                matrix_of::<T>((k, n), -s..=s),
            )
        })
}

/// `(x [m, n], b [n])` for [`crate::reference::add_rows`]: [`logit_value`] entries in an
/// [`elementwise_shape`].
pub fn add_rows_inputs<T: Scalar>() -> impl Strategy<Value = (Array2<T>, Array1<T>)> {
    elementwise_shape().prop_flat_map(|(rows, cols)| {
        (
            matrix_of::<T>((rows, cols), logit_value()),
            vec(logit_value(), cols).prop_map(|b| Array1::from(narrow::<T>(&b))),
        )
    })
}

/// One LayerNorm row of `len` values: uniform at a scale in `{1, 10, 1000}`; constant (variance
/// 0) when `constant_rows`; a large common offset with small noise (cancellation in `x − μ`);
/// one dominant entry.
pub fn norm_row_values(len: usize, constant_rows: bool) -> BoxedStrategy<Vec<f64>> {
    prop_oneof![
        4 => prop::sample::select(vec![1.0f64, 10.0, 1000.0]).prop_flat_map(move |s| vec(-s..=s, len)),
        u32::from(constant_rows) => (-10.0f64..=10.0).prop_map(move |v| vec![v; len]),
        1 => vec(-1e-2f64..=1e-2, len).prop_map(|v| v.into_iter().map(|d| 100.0 + d).collect()),
        1 => (vec(-1.0f64..=1.0, len), 0..len.max(1), prop::sample::select(vec![50.0, -300.0]))
            .prop_map(|(mut v, i, big)| {
                // `len = 0` draws an empty row (the index range is widened to stay non-empty).
                if let Some(slot) = v.get_mut(i) {
                    *slot = big;
                }
                v
            }),
    ]
    .boxed()
}

fn norm_inputs<T: Scalar>(
    constant_rows: bool,
) -> impl Strategy<Value = (Array2<T>, Array1<T>, Array1<T>, f64)> {
    (0usize..=4, row_length()).prop_flat_map(move |(rows, cols)| {
        (
            vec(norm_row_values(cols, constant_rows), rows)
                .prop_map(move |r| matrix_from_rows::<T>(r, cols)),
            vec(-2.0f64..=2.0, cols).prop_map(|v| Array1::from(narrow::<T>(&v))),
            vec(-2.0f64..=2.0, cols).prop_map(|v| Array1::from(narrow::<T>(&v))),
            prop::sample::select(vec![1e-5, 1e-3, 0.1]),
        )
    })
}

/// `(x [m, n], γ [n], β [n], eps)` for [`crate::reference::layer_norm`]: 0 to 4 rows of a
/// [`row_length`] from [`norm_row_values`] (constant rows included), `γ, β ∈ [−2, 2]`,
/// `eps ∈ {1e-5, 1e-3, 0.1}`.
pub fn layer_norm_inputs<T: Scalar>(
) -> impl Strategy<Value = (Array2<T>, Array1<T>, Array1<T>, f64)> {
    norm_inputs::<T>(true)
}

/// [`layer_norm_inputs`] (constant rows included) with an upstream gradient `g` of the shape of
/// `x` ([`grad_value`]s). Constant rows once exceeded [`crate::tolerance::layer_norm_backward`]
/// (1.8× on 128 equal values, eps = 1e-5: the rounded `μ` leaves `x − μ` a rounding error
/// amplified by `rstd ≈ eps^{-1/2}`); the bound now carries the second-order term `E_x̂·E_b`.
#[allow(
    clippy::type_complexity,
    reason = "the tuple is the op's argument list"
)]
pub fn layer_norm_backward_inputs<T: Scalar>(
) -> impl Strategy<Value = ((Array2<T>, Array1<T>, Array1<T>, f64), Array2<T>)> {
    norm_inputs::<T>(true).prop_flat_map(|inputs| {
        let shape = inputs.0.dim();
        (Just(inputs), matrix_of::<T>(shape, grad_value()))
    })
}

/// `(a [m, k], b [k, n], g [m, n])` for [`crate::reference::matmul_backward`]: [`matmul_dims`]
/// (1, odd, tile ± 1, `k = 0`), operands uniform in `[-s, s]` for `s ∈ {1, 10, 100}`, `g` from
/// [`grad_value`].
#[allow(
    clippy::type_complexity,
    reason = "the tuple is the op's argument list"
)]
pub fn matmul_backward_operands<T: Scalar>(
) -> impl Strategy<Value = (Array2<T>, Array2<T>, Array2<T>)> {
    (
        matmul_dims(),
        prop::sample::select(vec![1.0f64, 10.0, 100.0]),
    )
        .prop_flat_map(|((m, k, n), s)| {
            (
                matrix_of::<T>((m, k), -s..=s),
                matrix_of::<T>((k, n), -s..=s),
                matrix_of::<T>((m, n), grad_value()),
            )
        })
}

/// Batch sizes: 1, small, and 0 rarely (an empty batch is valid).
pub fn batch_size() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 3 => Just(1usize), 4 => 2usize..=5]
}

fn tensor3_of<T: Scalar>(
    (batch, rows, cols): (usize, usize, usize),
    value: impl Strategy<Value = f64>,
) -> impl Strategy<Value = Array3<T>> {
    vec(value, batch * rows * cols).prop_map(move |v| {
        Array3::from_shape_vec((batch, rows, cols), narrow::<T>(&v))
            .unwrap_or_else(|_| Array3::zeros((batch, rows, cols)))
    })
}

/// `(a [B, m, k], b [B, k, n])` for [`crate::reference::batched_matmul`]: a [`batch_size`] of
/// [`matmul_dims`] products, entries uniform in `[-s, s]`, `s ∈ {1, 10, 100}`.
pub fn batched_matmul_operands<T: Scalar>() -> impl Strategy<Value = (Array3<T>, Array3<T>)> {
    (
        batch_size(),
        matmul_dims(),
        prop::sample::select(vec![1.0f64, 10.0, 100.0]),
    )
        .prop_flat_map(|(batch, (m, k, n), s)| {
            (
                tensor3_of::<T>((batch, m, k), -s..=s),
                tensor3_of::<T>((batch, k, n), -s..=s),
            )
        })
}

/// [`batched_matmul_operands`] with an upstream gradient `g [B, m, n]` of [`grad_value`]s.
#[allow(
    clippy::type_complexity,
    reason = "the tuple is the op's argument list"
)]
pub fn batched_matmul_backward_operands<T: Scalar>(
) -> impl Strategy<Value = (Array3<T>, Array3<T>, Array3<T>)> {
    (
        batch_size(),
        matmul_dims(),
        prop::sample::select(vec![1.0f64, 10.0, 100.0]),
    )
        .prop_flat_map(|(batch, (m, k, n), s)| {
            (
                tensor3_of::<T>((batch, m, k), -s..=s),
                tensor3_of::<T>((batch, k, n), -s..=s),
                tensor3_of::<T>((batch, m, n), grad_value()),
            )
        })
}

/// Matrices to transpose: an [`elementwise_shape`] (long rows) or both sides from 1, small,
/// odd and tile ± 1 sizes (15/16/17, 31/32/33, 63/64/65), so both dimensions cross tile
/// boundaries; [`logit_value`] entries.
pub fn transpose_input<T: Scalar>() -> impl Strategy<Value = Array2<T>> {
    let side = || {
        prop_oneof![
            1 => Just(1usize),
            3 => 2usize..=20,
            2 => prop::sample::select(vec![15usize, 16, 17, 31, 32, 33, 63, 64, 65]),
        ]
    };
    prop_oneof![elementwise_shape(), (side(), side())]
        .prop_flat_map(|shape| matrix_of::<T>(shape, logit_value()))
}

/// Shapes of axis reductions: few long rows, many short rows ([`row_length`] rows of 1–20
/// columns, so columns are long), empty axes, and rarely a [`long_length`] row or column.
pub fn reduction_shape() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![
        4 => (0usize..=4, row_length()),
        4 => (row_length(), 0usize..=20),
        1 => (1usize..=2, long_length()),
        1 => (long_length(), 1usize..=2),
    ]
}

/// `(x, axis)` for [`crate::reference::sum_axis`]: a [`reduction_shape`] of [`logit_value`]s
/// (magnitudes `1e-3 … 1e4`, edge values up to `±1e30`), axis 0 or 1.
pub fn sum_axis_inputs<T: Scalar>() -> impl Strategy<Value = (Array2<T>, usize)> {
    (reduction_shape(), 0usize..=1)
        .prop_flat_map(|(shape, axis)| (matrix_of::<T>(shape, logit_value()), Just(axis)))
}

/// `(x, axis)` for [`crate::reference::mean_axis`]: as [`sum_axis_inputs`], with the reduced
/// axis mapped to length ≥ 1 (a mean over nothing is an error, covered by error parity).
pub fn mean_axis_inputs<T: Scalar>() -> impl Strategy<Value = (Array2<T>, usize)> {
    (reduction_shape(), 0usize..=1).prop_flat_map(|((rows, cols), axis)| {
        let shape = if axis == 0 {
            (rows.max(1), cols)
        } else {
            (rows, cols.max(1))
        };
        (matrix_of::<T>(shape, logit_value()), Just(axis))
    })
}

/// `(shape, axis, g)` for the axis-reduction VJPs: a [`reduction_shape`], axis 0 or 1, `g` of
/// the kept length from [`grad_value`] and magnitudes up to `1e4`; with `nonempty`, the reduced
/// axis has length ≥ 1 (for the mean).
pub fn axis_backward_inputs<T: Scalar>(
    nonempty: bool,
) -> impl Strategy<Value = ((usize, usize), usize, Array1<T>)> {
    (reduction_shape(), 0usize..=1).prop_flat_map(move |((rows, cols), axis)| {
        let shape = match (nonempty, axis) {
            (true, 0) => (rows.max(1), cols),
            (true, _) => (rows, cols.max(1)),
            _ => (rows, cols),
        };
        let kept = if axis == 0 { shape.1 } else { shape.0 };
        (
            Just(shape),
            Just(axis),
            vec(prop_oneof![grad_value(), logit_value()], kept)
                .prop_map(|g| Array1::from(narrow::<T>(&g))),
        )
    })
}

/// Row-vector factors of [`crate::reference::mul_rows`]: `[-4, 4]`, `0`, `±1`, `1e-3`, `1e3`
/// (with [`logit_value`] rows up to `1e30`, no product overflows f32).
pub fn row_factor() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => -4.0f64..=4.0,
        1 => prop::sample::select(vec![0.0, 1.0, -1.0, 1e-3, 1e3]),
    ]
}

/// `(x [m, n], b [n])` for [`crate::reference::mul_rows`]: [`logit_value`] rows in an
/// [`elementwise_shape`], [`row_factor`] entries in `b`.
pub fn mul_rows_inputs<T: Scalar>() -> impl Strategy<Value = (Array2<T>, Array1<T>)> {
    elementwise_shape().prop_flat_map(|(rows, cols)| {
        (
            matrix_of::<T>((rows, cols), logit_value()),
            vec(row_factor(), cols).prop_map(|b| Array1::from(narrow::<T>(&b))),
        )
    })
}

/// `(x, b, g)` for [`crate::reference::mul_rows_backward`]: a [`reduction_shape`] (long
/// columns for `grad_b = Σ_i G_ij X_ij`), [`logit_value`] `x`, [`row_factor`] `b`,
/// [`grad_value`] `g`.
#[allow(
    clippy::type_complexity,
    reason = "the tuple is the op's argument list"
)]
pub fn mul_rows_backward_inputs<T: Scalar>(
) -> impl Strategy<Value = (Array2<T>, Array1<T>, Array2<T>)> {
    reduction_shape().prop_flat_map(|(rows, cols)| {
        (
            matrix_of::<T>((rows, cols), logit_value()),
            vec(row_factor(), cols).prop_map(|b| Array1::from(narrow::<T>(&b))),
            matrix_of::<T>((rows, cols), grad_value()),
        )
    })
}

/// Upstream gradients of [`crate::reference::add_rows_backward`]: a [`reduction_shape`] (long
/// columns for the column sums) of [`logit_value`]s.
pub fn add_rows_backward_input<T: Scalar>() -> impl Strategy<Value = Array2<T>> {
    reduction_shape().prop_flat_map(|shape| matrix_of::<T>(shape, logit_value()))
}

// ---------------------------------------------------------------------------------------------
// Optimizers, clipping, std
// ---------------------------------------------------------------------------------------------

/// `±10^e` with `e` uniform in `[lo, hi]` (random sign), or 0 one time in nine.
pub fn signed_log_uniform(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (lo..=hi, any::<bool>()).prop_map(|(e, negative)| {
            let v = 10f64.powf(e);
            if negative { -v } else { v }
        }),
        1 => Just(0.0),
    ]
}

/// Tensor lengths for optimizer steps and std: a [`row_length`] (1, odd, work-group ± 1, a few
/// thousand), occasionally a [`long_length`] (≥ 100,000: many work-groups).
pub fn optim_length() -> impl Strategy<Value = usize> {
    prop_oneof![12 => row_length(), 1 => long_length()]
}

/// `len` values of one kind: uniform in `±10^e` for one `e ∈ [lo, hi]` drawn per tensor, or each
/// entry [`signed_log_uniform`] over the whole range (mixed magnitudes and exact zeros).
pub fn scaled_values(len: usize, lo: f64, hi: f64) -> BoxedStrategy<Vec<f64>> {
    prop_oneof![
        (lo..=hi).prop_flat_map(move |e| {
            let s = 10f64.powf(e);
            vec(-s..=s, len)
        }),
        vec(signed_log_uniform(lo, hi), len),
    ]
    .boxed()
}

fn tensor<T: Scalar>(values: Vec<f64>) -> Array1<T> {
    Array1::from(narrow::<T>(&values))
}

/// SGD hyperparameters in their domain: `lr = 10^U(−4, 0)`; momentum 0, 0.9 or `U[0, 0.99)`;
/// dampening 0 or `U[0, 1]`; Nesterov only where valid (momentum > 0; it forces dampening 0);
/// weight decay 0 or `U[1e-5, 0.1)`.
pub fn sgd_hyper() -> impl Strategy<Value = crate::reference::optim::SgdHyper> {
    (
        -4.0f64..=0.0,
        prop_oneof![Just(0.0), Just(0.9), 0.0f64..0.99],
        prop_oneof![Just(0.0), 0.0f64..=1.0],
        any::<bool>(),
        prop_oneof![Just(0.0), 1e-5f64..0.1],
    )
        .prop_map(|(lr, momentum, dampening, nesterov, weight_decay)| {
            let nesterov = nesterov && momentum > 0.0;
            crate::reference::optim::SgdHyper {
                learning_rate: 10f64.powf(lr),
                momentum,
                dampening: if nesterov { 0.0 } else { dampening },
                nesterov,
                weight_decay,
            }
        })
}

/// `(state, θ, g, hyper)` for one SGD step: an [`optim_length`], `θ` from [`scaled_values`] in
/// `10^[−3, 2]`, `g` in `10^[−8, 3]`, and a momentum buffer (`10^[−8, 3]`) or none (the first
/// step) whatever the momentum (the reference ignores a buffer when momentum is 0).
#[allow(
    clippy::type_complexity,
    reason = "the tuple is the op's argument list"
)]
pub fn sgd_inputs<T: Scalar>() -> impl Strategy<
    Value = (
        crate::reference::optim::SgdState<T>,
        Array1<T>,
        Array1<T>,
        crate::reference::optim::SgdHyper,
    ),
> {
    optim_length().prop_flat_map(|n| {
        (
            scaled_values(n, -3.0, 2.0),
            scaled_values(n, -8.0, 3.0),
            prop::option::of(scaled_values(n, -8.0, 3.0)),
            sgd_hyper(),
        )
            .prop_map(move |(theta, g, buffer, hyper)| {
                let state = crate::reference::optim::SgdState {
                    momentum_buffer: buffer.map(tensor::<T>),
                    last_step: Array1::zeros(n),
                };
                (state, tensor::<T>(theta), tensor::<T>(g), hyper)
            })
    })
}

/// Adam/AdamW hyperparameters: `lr = 10^U(−5, −1)`; betas (0.9, 0.999), (0.9, 0.98) or
/// `β1 ∈ [0, 0.99)`, `β2 ∈ [0.9, 0.9999)`; eps from {1e-6, 1e-8, 1e-9, 1e-12}; weight decay 0
/// or `U[1e-4, 0.1)`, decoupled (AdamW) or not.
pub fn adam_hyper() -> impl Strategy<Value = crate::reference::optim::AdamHyper> {
    (
        -5.0f64..=-1.0,
        prop_oneof![
            Just((0.9, 0.999)),
            Just((0.9, 0.98)),
            (0.0f64..0.99, 0.9f64..0.9999)
        ],
        prop::sample::select(vec![1e-6, 1e-8, 1e-9, 1e-12]),
        prop_oneof![Just(0.0), 1e-4f64..0.1],
        any::<bool>(),
    )
        .prop_map(|(lr, (beta1, beta2), eps, weight_decay, decoupled)| {
            crate::reference::optim::AdamHyper {
                learning_rate: 10f64.powf(lr),
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
            }
        })
}

/// `(state, θ, g, hyper)` for one Adam step: an [`optim_length`]; the zero state (`t = 0`) or
/// a state at `t ∈ [1, 10^4]` with `m` from [`scaled_values`] at one scale `10^[−8, 2]` and
/// `v ∈ [0, (2·scale)²]` (so `m̂/sqrt(v̂)` ranges from 0 to large, `v = 0` included);
/// `θ` in `10^[−3, 2]`, `g` in `10^[−8, 3]`.
#[allow(
    clippy::type_complexity,
    reason = "the tuple is the op's argument list"
)]
pub fn adam_inputs<T: Scalar>() -> impl Strategy<
    Value = (
        crate::reference::optim::AdamState<T>,
        Array1<T>,
        Array1<T>,
        crate::reference::optim::AdamHyper,
    ),
> {
    optim_length().prop_flat_map(|n| {
        let state = prop_oneof![
            1 => Just(crate::reference::optim::AdamState::<T>::zeros(n)),
            3 => (
                prop_oneof![1u64..=20, 21u64..=10_000],
                -8.0f64..=2.0,
            )
                .prop_flat_map(move |(step, e)| {
                    let s = 10f64.powf(e);
                    (
                        Just(step),
                        vec(prop_oneof![4 => -s..=s, 1 => Just(0.0)], n),
                        vec(prop_oneof![4 => 0.0f64..=2.0, 1 => Just(0.0)], n),
                        Just(s),
                    )
                })
                .prop_map(move |(step, m, r, s)| {
                    let v: Vec<f64> = r.iter().map(|&x| (x * s) * (x * s)).collect();
                    crate::reference::optim::AdamState {
                        step,
                        first_moment: tensor::<T>(m),
                        second_moment: tensor::<T>(v),
                        last_step: Array1::zeros(n),
                    }
                }),
        ];
        (
            state,
            scaled_values(n, -3.0, 2.0),
            scaled_values(n, -8.0, 3.0),
            adam_hyper(),
        )
            .prop_map(|(state, theta, g, hyper)| (state, tensor::<T>(theta), tensor::<T>(g), hyper))
    })
}

/// Gradient lists for clipping: 1 to 5 tensors, each of a [`row_length`], sometimes empty or
/// 16,385–40,000 long (more than 64 work-groups of 256, so one tensor spans every pass-1
/// group), with values uniform at one scale `10^[−6, 3]` per list; and `max_norm` 1 or
/// `10^U(−3, 3)`, so clipping is active in some cases and not in others.
pub fn clip_inputs<T: Scalar>() -> impl Strategy<Value = (Vec<Array1<T>>, f64)> {
    let length = prop_oneof![8 => row_length(), 1 => Just(0usize), 1 => 16_385usize..=40_000];
    (
        vec(length, 1..=5),
        -6.0f64..=3.0,
        prop_oneof![Just(1.0), (-3.0f64..=3.0).prop_map(|e| 10f64.powf(e))],
    )
        .prop_flat_map(|(lengths, e, max_norm)| {
            let s = 10f64.powf(e);
            let tensors: Vec<_> = lengths
                .into_iter()
                .map(|n| vec(-s..=s, n).prop_map(tensor::<T>))
                .collect();
            (tensors, Just(max_norm))
        })
}

/// Gradient lists for value clipping: as [`clip_inputs`] but entries mixed with
/// [`EDGE_VALUES`], and `clip_value = 10^U(−3, 2)`.
pub fn clip_value_inputs<T: Scalar>() -> impl Strategy<Value = (Vec<Array1<T>>, f64)> {
    let length = prop_oneof![8 => row_length(), 1 => Just(0usize)];
    (
        vec(length, 1..=5),
        (-3.0f64..=2.0).prop_map(|e| 10f64.powf(e)),
    )
        .prop_flat_map(|(lengths, clip_value)| {
            let tensors: Vec<_> = lengths
                .into_iter()
                .map(|n| {
                    vec(
                        prop_oneof![
                            3 => -100.0f64..=100.0,
                            1 => prop::sample::select(EDGE_VALUES)
                        ],
                        n,
                    )
                    .prop_map(tensor::<T>)
                })
                .collect();
            (tensors, Just(clip_value))
        })
}

/// `(values, correction)` for the corrected std: `c ∈ {0, 1}`, `n = max(len, c + 1)` with an
/// [`optim_length`]; values uniform in `offset ± 10^e` (`e ∈ [−4, 3]`, offset 0, ±1 or ±10
/// times the spread), all equal, or mixed magnitudes ([`scaled_values`]).
pub fn std_inputs<T: Scalar>() -> impl Strategy<Value = (Array1<T>, usize)> {
    (optim_length(), 0usize..=1).prop_flat_map(|(len, correction)| {
        let n = len.max(correction + 1);
        let values = prop_oneof![
            4 => (-4.0f64..=3.0, prop::sample::select(vec![0.0, 1.0, -1.0, 10.0, -10.0]))
                .prop_flat_map(move |(e, k)| {
                    let s = 10f64.powf(e);
                    vec(-s..=s, n).prop_map(move |v| v.iter().map(|x| x + k * s).collect())
                }),
            1 => (-3.0f64..=3.0).prop_map(move |e| vec![10f64.powf(e); n]),
            1 => scaled_values(n, -3.0, 3.0),
        ];
        (values.prop_map(tensor::<T>), Just(correction))
    })
}

/// A loss reduction: `Mean` or `Sum`.
pub fn reduction() -> impl Strategy<Value = crate::reference::Reduction> {
    prop_oneof![
        Just(crate::reference::Reduction::Mean),
        Just(crate::reference::Reduction::Sum)
    ]
}

/// `(y, g)` for the row-softmax VJPs: `y` = the f64 reference's `softmax_rows` (or
/// `log_softmax_rows` when `log`) of a [`logits_matrix`] row set, rounded to `T` (finite rows:
/// the uniform and dominant-entry kinds of [`row_values`] at scales up to `1e4`), and a
/// same-shape upstream gradient of [`grad_value`]s.
pub fn row_backward_inputs<T: Scalar>(log: bool) -> impl Strategy<Value = (Array2<T>, Array2<T>)> {
    prop_oneof![
        12 => (0usize..=6, row_length()),
        1 => (1usize..=2, long_length()),
    ]
    .prop_flat_map(move |(rows, cols)| {
        let row = prop_oneof![
            3 => prop::sample::select(ROW_SCALES).prop_flat_map(move |s| vec(-s..=s, cols)),
            1 => (vec(-1.0f64..=1.0, cols), 0..cols, prop::sample::select(vec![30.0, 88.8, -88.8]))
                .prop_map(|(mut v, i, big)| {
                    v[i] = big;
                    v
                }),
        ];
        (
            vec(row, rows).prop_map(move |r| {
                let x = matrix_from_rows::<f64>(r, cols);
                let y = if log {
                    crate::reference::log_softmax_rows(x.view())
                } else {
                    crate::reference::softmax_rows(x.view())
                };
                y.unwrap_or_else(|_| Array2::zeros((rows, cols)))
                    .mapv(T::narrow)
            }),
            matrix_of::<T>((rows, cols), grad_value()),
        )
    })
}

/// `(logits, labels, reduction)` for BCE with a reduction ([`bce_inputs`]; an empty pair only
/// with `Sum`, whose value is 0).
pub fn bce_reduction_inputs<T: Scalar>(
) -> impl Strategy<Value = (Array1<T>, Array1<T>, crate::reference::Reduction)> {
    (bce_inputs::<T>(), reduction()).prop_map(|((z, y), r)| {
        let r = if z.is_empty() {
            crate::reference::Reduction::Sum
        } else {
            r
        };
        (z, y, r)
    })
}

/// `(prediction, target, reduction)` for MSE: an [`elementwise_shape`] (0 to 4 rows of a
/// [`row_length`]) or a long row, values uniform at a scale in `{1, 100, 1e4}` (no overflow of
/// the squares in f32); an empty shape only with `Sum`.
pub fn mse_inputs<T: Scalar>(
) -> impl Strategy<Value = (Array2<T>, Array2<T>, crate::reference::Reduction)> {
    (
        prop_oneof![12 => elementwise_shape(), 1 => (Just(1usize), long_length())],
        prop::sample::select(vec![1.0f64, 100.0, 1e4]),
        reduction(),
    )
        .prop_flat_map(|(shape, s, r)| {
            let r = if shape.0 * shape.1 == 0 {
                crate::reference::Reduction::Sum
            } else {
                r
            };
            (
                matrix_of::<T>(shape, -s..=s),
                matrix_of::<T>(shape, -s..=s),
                Just(r),
            )
        })
}

/// `(logits [rows, classes], targets, ignore_index, reduction)` for cross-entropy: rows from
/// [`row_values`] (including huge margins, where the f32 loss is exactly 0, THEORY.md A4),
/// 0 to 6 rows of a [`row_length`] of classes (1, odd, around work-group sizes, thousands) or
/// 1–2 long rows; targets in range or `ignore_index` (`-100` or `-1`; sometimes every row);
/// zero rows only with `Sum`.
#[allow(
    clippy::type_complexity,
    reason = "the tuple is the op's argument list"
)]
pub fn cross_entropy_inputs<T: Scalar>(
) -> impl Strategy<Value = (Array2<T>, Array1<i64>, i64, crate::reference::Reduction)> {
    (
        logits_matrix::<T>(),
        prop::sample::select(vec![-100i64, -1]),
        reduction(),
        0u32..8,
    )
        .prop_flat_map(|(x, ignore, r, ignore_all)| {
            let (rows, cols) = x.dim();
            let cols64 = i64::try_from(cols).unwrap_or(i64::MAX);
            let target = prop_oneof![4 => 0..cols64.max(1), 1 => Just(ignore)];
            let r = if rows == 0 {
                crate::reference::Reduction::Sum
            } else {
                r
            };
            (
                Just(x),
                vec(target, rows).prop_map(move |t| {
                    // One case in eight ignores every row (mean: NaN, sum: 0).
                    if ignore_all == 0 {
                        vec![ignore; t.len()]
                    } else {
                        t
                    }
                }),
                Just(ignore),
                Just(r),
            )
        })
        .prop_map(|(x, t, ignore, r)| (x, Array1::from(t), ignore, r))
}

/// Margins past `24 ln 2` (THEORY.md A4): 1 to 8 values in `[16.7, 80]`.
pub fn large_margins() -> impl Strategy<Value = Vec<f64>> {
    vec(16.7f64..=80.0, 1..=8)
}

/// `(table [vocab, dim], ids)` for embedding: vocabularies of 1 to 40 (or 1000), dims from
/// [`row_length`] (1, odd, 255/256/257, thousands), 0 to 40 ids (or 300) drawn with
/// repetitions.
pub fn embedding_inputs<T: Scalar>() -> impl Strategy<Value = (Array2<T>, Array1<usize>)> {
    (
        prop_oneof![4 => 1usize..=40, 1 => Just(1000usize)],
        prop_oneof![6 => 1usize..=17, 2 => prop::sample::select(vec![31usize, 64, 255, 257]), 1 => 1000usize..=3000],
        prop_oneof![4 => 0usize..=40, 1 => Just(300usize)],
    )
        .prop_flat_map(|(vocab, dim, count)| {
            (
                matrix_of::<T>((vocab, dim), -10.0f64..=10.0),
                vec(0..vocab, count).prop_map(Array1::from),
            )
        })
}

/// `(vocab, ids, grad_output [ids, dim])` for the embedding VJP: as [`embedding_inputs`], with
/// small vocabularies so ids repeat (the accumulation order matters) and
/// [`grad_value`]-sized gradients.
pub fn embedding_backward_inputs<T: Scalar>(
) -> impl Strategy<Value = (usize, Array1<usize>, Array2<T>)> {
    (
        prop_oneof![4 => 1usize..=8, 1 => 9usize..=300],
        prop_oneof![6 => 1usize..=17, 2 => prop::sample::select(vec![31usize, 64, 255, 257]), 1 => 1000usize..=2000],
        prop_oneof![4 => 0usize..=40, 1 => 257usize..=600],
    )
        .prop_flat_map(|(vocab, dim, count)| {
            (
                Just(vocab),
                vec(0..vocab, count).prop_map(Array1::from),
                matrix_of::<T>((count, dim), -4.0f64..=4.0),
            )
        })
}

/// A dropout key: any seed, step and tensor id (high words included, so the derived Philox
/// key and counters use every bit).
pub fn random_key() -> impl Strategy<Value = crate::rng::RandomKey> {
    (
        any::<u64>(),
        prop_oneof![0u64..=100, any::<u64>()],
        0u64..=64,
    )
        .prop_map(|(seed, step, tensor_id)| crate::rng::RandomKey {
            seed,
            step,
            tensor_id,
        })
}

/// A dropout probability: 0 (identity), common values, one just below 1, or uniform.
pub fn dropout_p() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => prop::sample::select(vec![0.0, 0.1, 0.5, 0.9, 0.999_999]),
        1 => 0.0f64..0.99,
    ]
}

/// `(x, p, key)` for dropout: [`activation_input`] shapes (lengths not multiples of 4, around
/// work-group sizes) and values, [`dropout_p`], [`random_key`].
pub fn dropout_inputs<T: Scalar>() -> impl Strategy<Value = (Array2<T>, f64, crate::rng::RandomKey)>
{
    (activation_input::<T>(), dropout_p(), random_key())
}

/// `(g, mask, scale)` for the dropout VJP: the mask of [`crate::reference::dropout_mask`] for a
/// drawn `(p, key)` and its scale in `T`, with [`grad_value`] gradients.
pub fn dropout_backward_inputs<T: Scalar>() -> impl Strategy<Value = (Array2<T>, Array2<bool>, T)> {
    (elementwise_shape(), dropout_p(), random_key()).prop_flat_map(|(shape, p, key)| {
        let mask = crate::reference::dropout_mask(shape, p, key)
            .unwrap_or_else(|_| Array2::from_elem(shape, true));
        let scale = crate::reference::dropout_scale::<T>(p).unwrap_or_else(|_| T::one());
        (matrix_of::<T>(shape, grad_value()), Just(mask), Just(scale))
    })
}

/// `(q, k, v, key_mask)` for attention: batch 1–2, heads 1–3, query and key lengths 1 to 20 or
/// 31–33 (around tile sizes), head dims 1 to 16 or 17/33/64, value dims independent; entries
/// uniform at a scale in `{0.1, 1, 4}`; mask entries 0, or a large negative value (`−1e4`,
/// `−1e9`) dropping a key, never every key of a row.
#[allow(
    clippy::type_complexity,
    reason = "the tuple is the op's argument list"
)]
pub fn attention_inputs<T: Scalar>() -> impl Strategy<
    Value = (
        ndarray::Array4<T>,
        ndarray::Array4<T>,
        ndarray::Array4<T>,
        Array2<T>,
    ),
> {
    let seq = || prop_oneof![4 => 1usize..=20, 1 => 31usize..=33];
    let dim = || prop_oneof![4 => 1usize..=16, 1 => prop::sample::select(vec![17usize, 33, 64])];
    (
        1usize..=2,
        1usize..=3,
        seq(),
        seq(),
        dim(),
        dim(),
        prop::sample::select(vec![0.1f64, 1.0, 4.0]),
    )
        .prop_flat_map(|(b, h, s_q, s_k, d, d_v, scale)| {
            let tensor = move |s: usize, e: usize| {
                vec(-scale..=scale, b * h * s * e).prop_map(move |v| {
                    ndarray::Array4::from_shape_vec((b, h, s, e), narrow::<T>(&v))
                        .unwrap_or_else(|_| ndarray::Array4::zeros((b, h, s, e)))
                })
            };
            let mask_value =
                prop_oneof![4 => Just(0.0f64), 1 => prop::sample::select(vec![-1e4, -1e9])];
            (
                tensor(s_q, d),
                tensor(s_k, d),
                tensor(s_k, d_v),
                (vec(mask_value, b * s_k), vec(0..s_k, b)).prop_map(move |(mut m, keep)| {
                    // Key `keep[i]` of batch entry i stays unmasked: no all-masked row.
                    for (i, &j) in keep.iter().enumerate() {
                        m[i * s_k + j] = 0.0;
                    }
                    Array2::from_shape_vec((b, s_k), narrow::<T>(&m))
                        .unwrap_or_else(|_| Array2::zeros((b, s_k)))
                }),
            )
        })
}

/// [`attention_inputs`] with an upstream gradient `[b, h, s_q, d_v]` of [`grad_value`]s.
#[allow(
    clippy::type_complexity,
    reason = "the tuple is the op's argument list"
)]
pub fn attention_backward_inputs<T: Scalar>() -> impl Strategy<
    Value = (
        (
            ndarray::Array4<T>,
            ndarray::Array4<T>,
            ndarray::Array4<T>,
            Array2<T>,
        ),
        ndarray::Array4<T>,
    ),
> {
    attention_inputs::<T>().prop_flat_map(|inputs| {
        let (b, h, s_q, _) = inputs.0.dim();
        let d_v = inputs.2.dim().3;
        (
            Just(inputs),
            vec(grad_value(), b * h * s_q * d_v).prop_map(move |v| {
                ndarray::Array4::from_shape_vec((b, h, s_q, d_v), narrow::<T>(&v))
                    .unwrap_or_else(|_| ndarray::Array4::zeros((b, h, s_q, d_v)))
            }),
        )
    })
}
