//! Regression-collapse invariants (THEORY.md B1–B4, seed 001): the best constant predictor, sum
//! versus mean reduction, dead ReLU layers, sigmoid saturation and the `−φ·std` loss.
//!
//! Each takes a backend and calls its ops ([`Backend::mse_backward`], [`Backend::sigmoid`],
//! [`Backend::std_corrected`], [`Backend::train`], …); the reference model ([`Mlp`]) is used
//! only to build inputs and to check preconditions (e.g. that a layer is dead).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::stepper::BackendAdam;
use crate::reference::models::mlp::{Activation, Mlp, MlpBatch, MlpConfig, MlpLoss};
use crate::reference::models::Model;
use crate::reference::models::{OptimizerConfig, TrainingConfig, TrainingTask};
use crate::reference::optim::AdamHyper;
use crate::reference::{self, Reduction};
use crate::tolerance::{self, ArithModel};
use crate::{Backend, Scalar};

/// Bitwise equality of two scalars (via the exact widening to f64).
fn same_bits<T: Scalar>(a: T, b: T) -> bool {
    a.widen().to_bits() == b.widen().to_bits()
}

/// Steps of the constant-predictor descent in
/// [`constant_mse_predictor_converges_to_label_mean`].
pub const CONSTANT_PREDICTOR_STEPS: usize = 80;

/// The best constant predictor under MSE is the per-output label mean (THEORY.md B1 (a), (d)):
/// `argmin_c Σ_{i,j} (c_j − y_ij)² = ȳ_j`. Checked against the reference optimiser: gradient
/// descent on `c` with the reference MSE-mean gradient `ĝ_j = Σ_i mse_backward(Mean)_ij`
/// (`= (2/D)(c_j − ȳ_j)` exactly) and `η = D/4`, so the exact error halves every step.
///
/// Bound: from `c = 0`, with `E_0 = |ȳ_j|` and
/// ```text
/// E_{k+1} = E_k/2 + δ_k,   δ_k = γ_{N+1}·(1/(2N))·Σ_i|ĉ_j − y_ij| + u|η̂ĝ_j| + u|ĉ_j,new|
/// ```
/// (each gradient term is two roundings, the sum of `N` terms `γ_{N−1}`; `η = D/4` is exact in
/// `T`; the product and the subtraction one rounding each; on a backend whose division has the
/// OpenCL budget `ε_div` the term's division adds `ε_div − u` to `γ_{N+1}`), `|ĉ_j − ȳ_j| ≤ E_K + e_ȳ` after
/// `K` = [`CONSTANT_PREDICTOR_STEPS`] steps, `e_ȳ = γ_N(u64)·mean_i|y_ij|` the f64 error of `ȳ_j`.
pub fn constant_mse_predictor_converges_to_label_mean<T: Scalar>(
    backend: &impl Backend<T>,
    targets: ArrayView2<'_, T>,
) -> TestCaseResult {
    let (rows, outputs) = targets.dim();
    prop_assume!(rows > 0 && outputs > 0);
    let u = T::UNIT_ROUNDOFF;
    let gamma = tolerance::gamma(rows + 1, u).unwrap_or(f64::INFINITY);
    let division_excess = ArithModel::of::<T>().divide - u;
    let eta = T::narrow(outputs as f64 / 4.0);
    let widened = targets.mapv(Scalar::widen);
    let label_mean = widened.mean_axis(Axis(0)).unwrap_or_default();
    let mut constant = Array1::<T>::zeros(outputs);
    let mut error_bound = label_mean.mapv(f64::abs);
    for _ in 0..CONSTANT_PREDICTOR_STEPS {
        let prediction = Array2::from_shape_fn((rows, outputs), |(_, j)| constant[j]);
        let per_element =
            backend.mse_backward(prediction.view(), targets, Reduction::Mean, T::one())?;
        for j in 0..outputs {
            let mut gradient = T::zero();
            for i in 0..rows {
                gradient = gradient + per_element[(i, j)];
            }
            let spread: f64 = (0..rows)
                .map(|i| (constant[j].widen() - widened[(i, j)]).abs())
                .sum();
            let update = eta * gradient;
            constant[j] = constant[j] - update;
            let delta = (gamma + division_excess) * spread / (2.0 * rows as f64)
                + u * update.widen().abs()
                + u * constant[j].widen().abs();
            error_bound[j] = error_bound[j] / 2.0 + delta;
        }
    }
    let mean_error = tolerance::gamma(rows, f64::EPSILON / 2.0).unwrap_or(f64::INFINITY);
    for j in 0..outputs {
        let scale = widened.column(j).iter().map(|v| v.abs()).sum::<f64>() / rows as f64;
        let bound = error_bound[j] + mean_error * scale;
        let distance = (constant[j].widen() - label_mean[j]).abs();
        prop_assert!(
            distance <= bound,
            "{}: constant MSE predictor, output {j}: GD ({CONSTANT_PREDICTOR_STEPS} steps, η = D/4 = \
             {}) reached {:e}, label mean {:e}: distance {distance:e} > bound {bound:e} (N = {rows})",
            T::NAME,
            eta.widen(),
            constant[j].widen(),
            label_mean[j]
        );
    }
    Ok(())
}

/// With `reduction='sum'` every MSE gradient is exactly `N·D` times the `'mean'` one (THEORY.md
/// B1 (a), (d)): the mean divides last (`((2(p − t))·g)/(N·D)`), so
/// ```text
/// |fl(N·D · ĝ_mean) − ĝ_sum| ≤ (2u + ε_div − u)·|ĝ_sum|     (tolerance::reduction_sum_versus_mean)
/// ```
/// (`ε_div` = the division budget of [`ArithModel::of`]: `u` when correctly rounded, `5u` in
/// OpenCL f32), and the two are **bitwise** equal when `N·D` is a power of two and
/// `correctly_rounded_division` (the caller knows its backend: true for the reference and for
/// OpenCL f64; the OpenCL C spec lets an f32 `x/2^k` be off by 2.5 ulp). An absolute
/// `N·D·2^−126` (f32; `2^−1022` in f64) covers a `ĝ_mean` that lands in the subnormal range.
pub fn mse_sum_gradient_is_count_times_mean_gradient<T: Scalar>(
    backend: &impl Backend<T>,
    prediction: ArrayView2<'_, T>,
    target: ArrayView2<'_, T>,
    correctly_rounded_division: bool,
) -> TestCaseResult {
    let count = prediction.len();
    prop_assume!(count > 0);
    let sum = backend.mse_backward(prediction, target, Reduction::Sum, T::one())?;
    let mean = backend.mse_backward(prediction, target, Reduction::Mean, T::one())?;
    let factor = T::narrow(count as f64);
    let u = T::UNIT_ROUNDOFF;
    let division = if correctly_rounded_division {
        u
    } else {
        ArithModel::of::<T>().divide
    };
    let relative = tolerance::reduction_sum_versus_mean(u) + (division - u);
    let exact_power = count.is_power_of_two() && correctly_rounded_division;
    for ((&s, &m), index) in sum.iter().zip(mean.iter()).zip(0..) {
        let scaled = factor * m;
        if exact_power && m.widen().abs() >= T::MIN_POSITIVE_NORMAL {
            prop_assert!(
                same_bits(scaled, s),
                "{}<{}>: N·D = {count} (a power of two): N·D·grad_mean = {:e} ≠ grad_sum = {:e} \
                 bitwise at element {index}",
                backend.name(),
                T::NAME,
                scaled.widen(),
                s.widen()
            );
        }
        let bound = relative * s.widen().abs() + count as f64 * T::MIN_POSITIVE_NORMAL;
        prop_assert!(
            (scaled.widen() - s.widen()).abs() <= bound,
            "{}<{}>: N·D = {count}: N·D·grad_mean = {:e} vs grad_sum = {:e} at element {index}, \
             bound {bound:e}",
            backend.name(),
            T::NAME,
            scaled.widen(),
            s.widen()
        );
    }
    Ok(())
}

/// Seed 001's effective learning rate (THEORY.md B1 (a), (e)): for an [`Mlp`] with an MSE loss and
/// `N·D` a power of two, every parameter gradient under `reduction='sum'` is **bitwise** `N·D`
/// times the one under `'mean'`, and one plain-SGD step with lr `η` on the sum equals one step
/// with lr `η·N·D` on the mean bitwise. Every operation of the backward pass is homogeneous of
/// degree 1 in the loss gradient (products, sums, the ReLU mask, `(g·(1 − y))·y`), and scaling by
/// a power of two commutes with rounding, provided the division by `N·D` is correctly rounded
/// (see [`mse_sum_gradient_is_count_times_mean_gradient`]; with `correctly_rounded_division =
/// false` nothing is asserted beyond the run succeeding). Runs one step of [`Backend::train`]
/// for each reduction and compares the returned gradients and parameters. Inputs where a
/// mean-reduction gradient is subnormal (where that scaling stops being exact) are rejected
/// (`prop_assume`).
pub fn mlp_sum_reduction_is_mean_reduction_at_count_times_learning_rate<T: Scalar>(
    backend: &impl Backend<T>,
    model: &Mlp<T>,
    batch: &MlpBatch<T>,
    learning_rate: f64,
    correctly_rounded_division: bool,
) -> TestCaseResult {
    let count = batch.targets.len();
    prop_assume!(count.is_power_of_two());
    let run = |loss: MlpLoss, lr: f64| {
        let mut m = model.clone();
        m.config.loss = loss;
        let task = TrainingTask::Mlp {
            model: m,
            batch: batch.clone(),
        };
        backend.train(&task, &TrainingConfig::sgd(lr), 1)
    };
    let summed = run(MlpLoss::Mse(Reduction::Sum), learning_rate)?;
    let averaged = run(MlpLoss::Mse(Reduction::Mean), learning_rate * count as f64)?;
    if !correctly_rounded_division {
        return Ok(());
    }
    prop_assume!(averaged
        .gradients
        .iter()
        .flatten()
        .all(|g| *g == T::zero() || g.widen().abs() >= T::MIN_POSITIVE_NORMAL));
    let factor = T::narrow(count as f64);
    let names = model.parameter_names();
    for ((s, m), name) in summed.gradients.iter().zip(&averaged.gradients).zip(&names) {
        for (index, (&a, &b)) in s.iter().zip(m.iter()).enumerate() {
            prop_assert!(
                same_bits(a, factor * b),
                "{}<{}>: {name}[{index}]: grad_sum = {:e} ≠ N·D·grad_mean = {:e} (N·D = {count})",
                backend.name(),
                T::NAME,
                a.widen(),
                (factor * b).widen()
            );
        }
    }
    for ((after_sum, after_mean), name) in summed
        .parameters
        .iter()
        .zip(&averaged.parameters)
        .zip(&names)
    {
        for (index, (&a, &b)) in after_sum.iter().zip(after_mean.iter()).enumerate() {
            prop_assert!(
                same_bits(a, b),
                "{}<{}>: {name}[{index}]: SGD(lr = {learning_rate:e}, sum) = {:e} ≠ SGD(lr·N·D, mean) = \
                 {:e} (N·D = {count})",
                backend.name(),
                T::NAME,
                a.widen(),
                b.widen()
            );
        }
    }
    Ok(())
}

/// A small ReLU regressor (sigmoid output, MSE with `reduction`) and a batch of `rows` rows,
/// deterministic from `seed` (inputs in `[−1, 1]`, targets in `[0, 1]`): the inputs of the B1
/// and B2 invariants in `backend_tests!`. Errors: `InvalidParameter` for invalid `widths`.
pub fn relu_regressor<T: Scalar>(
    widths: &[usize],
    rows: usize,
    reduction: Reduction,
    seed: u64,
) -> crate::Result<(Mlp<T>, MlpBatch<T>)> {
    let inputs = widths.first().copied().unwrap_or(1);
    let outputs = widths.last().copied().unwrap_or(1);
    let model = Mlp::new(MlpConfig {
        widths: widths.to_vec(),
        hidden_activation: Activation::Relu,
        output_activation: Activation::Sigmoid,
        loss: MlpLoss::Mse(reduction),
        seed,
    })?;
    let value = |i: usize, k: u64| {
        let h = ((i as u64 + 1)
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(seed.wrapping_mul(7919))
            .wrapping_add(k * 104_729))
            % 10_007;
        h as f64 / 5003.5 - 1.0
    };
    let batch = MlpBatch {
        inputs: Array2::from_shape_fn((rows, inputs), |(i, j)| T::narrow(value(i * inputs + j, 1))),
        targets: Array2::from_shape_fn((rows, outputs), |(i, j)| {
            T::narrow((value(i * outputs + j, 2) + 1.0) / 2.0)
        }),
    };
    Ok((model, batch))
}

/// The B2 input of `backend_tests!`: [`relu_regressor`] with widths `[5, 8, 6, 3]`, 7 rows, and
/// every bias of hidden layer `dead_layer` set to `−100` (so the layer is dead on the batch),
/// checked by [`dead_relu_layer_freezes_itself_and_earlier_layers`] with SGD and Adam
/// (0.9, 0.999, 1e-8) at `learning_rate`.
pub fn dead_relu_layer_freezes_on_a_seeded_regressor<T: Scalar>(
    backend: &impl Backend<T>,
    seed: u64,
    dead_layer: usize,
    learning_rate: f64,
) -> TestCaseResult {
    let (mut model, batch) = relu_regressor::<T>(&[5, 8, 6, 3], 7, Reduction::Sum, seed)?;
    let bias = 2 * dead_layer.min(1) + 1;
    model.parameters_mut()[bias].fill(T::narrow(-100.0));
    dead_relu_layer_freezes_itself_and_earlier_layers(
        backend,
        &model,
        &batch,
        dead_layer.min(1),
        learning_rate,
        AdamHyper::new(learning_rate, 0.9, 0.999, 1e-8),
    )
}

/// The B1 model-level input of `backend_tests!`: [`relu_regressor`] with widths `[5, 8, 6, 4]`
/// and `2^rows_log` rows (`N·D` a power of two), checked by
/// [`mlp_sum_reduction_is_mean_reduction_at_count_times_learning_rate`].
pub fn mlp_sum_is_mean_at_scaled_rate_on_a_seeded_regressor<T: Scalar>(
    backend: &impl Backend<T>,
    seed: u64,
    rows_log: u32,
    learning_rate: f64,
    correctly_rounded_division: bool,
) -> TestCaseResult {
    let rows = 1usize << rows_log.min(6);
    let (model, batch) = relu_regressor::<T>(&[5, 8, 6, 4], rows, Reduction::Sum, seed)?;
    mlp_sum_reduction_is_mean_reduction_at_count_times_learning_rate(
        backend,
        &model,
        &batch,
        learning_rate,
        correctly_rounded_division,
    )
}

/// Largest pre-activation of hidden layer `layer` (0-based) over the batch.
pub fn max_pre_activation<T: Scalar>(
    model: &Mlp<T>,
    inputs: ArrayView2<'_, T>,
    layer: usize,
) -> crate::Result<T> {
    let forward = model.forward(inputs)?;
    Ok(forward.pre_activations[layer]
        .iter()
        .fold(T::neg_infinity(), |m, &v| m.max(v)))
}

/// Check the dead-layer preconditions of B2: ReLU hidden layers and `dead_layer` a hidden layer.
fn dead_layer_applies<T: Scalar>(model: &Mlp<T>, dead_layer: usize) -> bool {
    model.config.hidden_activation == Activation::Relu && dead_layer + 2 < model.config.widths.len()
}

/// Assert the exact-zero gradients of B2 and return the gradients.
fn assert_dead_layer_gradients<T: Scalar>(
    model: &Mlp<T>,
    batch: &MlpBatch<T>,
    dead_layer: usize,
) -> Result<Vec<Array1<T>>, TestCaseError> {
    let (_, gradients) = model.loss_and_gradients(batch, 0)?;
    let names = model.parameter_names();
    // Tensors 0 ..= 2·dead_layer + 1 are the dead layer and every earlier one; 2·dead_layer + 2
    // is the next layer's weight, whose gradient δ·outᵀ has out ≡ 0.
    for t in 0..=2 * dead_layer + 2 {
        let nonzero = gradients[t].iter().filter(|g| **g != T::zero()).count();
        prop_assert!(
            nonzero == 0,
            "{}: dead ReLU layer {dead_layer}: {} has {nonzero} nonzero gradient entries (max |g| = {:e})",
            T::NAME,
            names[t],
            gradients[t].iter().fold(0.0f64, |m, g| m.max(g.widen().abs()))
        );
    }
    Ok(gradients)
}

/// A dead ReLU layer is absorbing under plain SGD and under Adam from zero state (THEORY.md B2
/// (a), (d)): if every pre-activation of hidden layer `dead_layer` is `≤ 0` on every row
/// (`relu'(0) = 0`), the gradients of that layer, of **every earlier layer** and of the next
/// layer's weight are exactly 0 (the chain passes through the mask `1[h > 0] = 0`; the next
/// weight's gradient is `δ·outᵀ` with `out ≡ 0`, and a sum of exact zeros is 0 in any order).
/// Hence one plain-SGD step (`θ + (−lr)·0`) and one Adam step from zero state (`m = 0`, so
/// `m̂/(sqrt(v̂) + eps) = 0/eps = 0`) leave those parameters **bitwise** unchanged. Asserted on
/// `backend`: one step of [`Backend::train`] with each optimizer; the gradients it returns (the
/// ones the optimizer saw) are exactly 0 there and the parameters are bitwise the initial ones.
/// The reference's gradients are checked too (they define the precondition). No tolerance:
/// every claim is exact. Inputs where the layer is not dead, or that are not a ReLU MLP, are
/// rejected (`prop_assume`).
pub fn dead_relu_layer_freezes_itself_and_earlier_layers<T: Scalar>(
    backend: &impl Backend<T>,
    model: &Mlp<T>,
    batch: &MlpBatch<T>,
    dead_layer: usize,
    learning_rate: f64,
    adam: AdamHyper,
) -> TestCaseResult {
    prop_assume!(dead_layer_applies(model, dead_layer));
    prop_assume!(max_pre_activation(model, batch.inputs.view(), dead_layer)? <= T::zero());
    assert_dead_layer_gradients(model, batch, dead_layer)?;
    let names = model.parameter_names();
    let adam = AdamHyper {
        learning_rate,
        ..adam
    };
    let task = TrainingTask::Mlp {
        model: model.clone(),
        batch: batch.clone(),
    };
    let sgd_config = TrainingConfig::sgd(learning_rate);
    let adam_config = TrainingConfig {
        optimizer: OptimizerConfig::Adam(adam),
        ..sgd_config
    };
    for (optimizer, config) in [("SGD", sgd_config), ("Adam", adam_config)] {
        let run = backend.train(&task, &config, 1)?;
        for (t, name) in names.iter().enumerate().take(2 * dead_layer + 3) {
            let nonzero = run.gradients[t].iter().filter(|g| **g != T::zero()).count();
            prop_assert!(
                nonzero == 0,
                "{}<{}>: dead ReLU layer {dead_layer}: {} has {nonzero} nonzero gradient entries",
                backend.name(),
                T::NAME,
                name
            );
            let before = &model.parameters()[t];
            for (index, (&b, &a)) in before.iter().zip(run.parameters[t].iter()).enumerate() {
                prop_assert!(
                    same_bits(b, a),
                    "{}<{}>: dead layer {dead_layer}: {}[{index}] = {:e} moved to {:e} after one \
                     {optimizer} step (lr {learning_rate:e}, fresh state)",
                    backend.name(),
                    T::NAME,
                    name,
                    b.widen(),
                    a.widen()
                );
            }
        }
    }
    Ok(())
}

/// With nonzero Adam state a dead layer still moves, by at most `C_t·lr` per step (THEORY.md B2
/// (a), (d); D2). Runs `live_steps` Adam steps on the model, then sets every bias of hidden layer
/// `dead_layer` to `kill_bias` (killing it), then `dead_steps` more steps. While dead, the fresh
/// gradients of the dead and earlier layers are exactly 0 (asserted), yet each of their
/// coordinates steps by `|s_t| ≤ lr·C_t·(1 + τu)(1 + excess)` (`tolerance::adam_step`, read
/// from the optimizer state; `excess` = the OpenCL `/` and `sqrt` budgets over correctly rounded
/// ones, see the optimizer invariants), the optimizer being `backend`'s
/// [`Backend::adam_step`] fed the reference model's gradients, and the residual first moment moves at least one of them (`s_t ≠ 0`). Inputs
/// where the layer does not die, revives, or had zero first moment when killed are rejected
/// (`prop_assume`).
pub fn adam_residual_state_moves_dead_layer_within_step_bound<T: Scalar>(
    backend: &impl Backend<T>,
    model: &Mlp<T>,
    batch: &MlpBatch<T>,
    dead_layer: usize,
    hyper: AdamHyper,
    (live_steps, dead_steps): (usize, usize),
    kill_bias: f64,
) -> TestCaseResult {
    prop_assume!(dead_layer_applies(model, dead_layer));
    let mut model = model.clone();
    let lengths: Vec<usize> = model.parameters().iter().map(Array1::len).collect();
    let mut adam = BackendAdam::<T, _>::new(backend, hyper, &lengths)?;
    for _ in 0..live_steps {
        let (_, gradients) = model.loss_and_gradients(batch, 0)?;
        adam.step(model.parameters_mut(), &gradients)?;
    }
    model.parameters_mut()[2 * dead_layer + 1].fill(T::narrow(kill_bias));
    prop_assume!(max_pre_activation(&model, batch.inputs.view(), dead_layer)? <= T::zero());
    let frozen = 0..=2 * dead_layer + 1;
    prop_assume!(frozen
        .clone()
        .any(|t| adam.states[t].first_moment.iter().any(|m| *m != T::zero())));
    let learning_rate = T::narrow(hyper.learning_rate).widen();
    let mut moved = false;
    let names = model.parameter_names();
    for _ in 0..dead_steps {
        prop_assume!(max_pre_activation(&model, batch.inputs.view(), dead_layer)? <= T::zero());
        let gradients = assert_dead_layer_gradients(&model, batch, dead_layer)?;
        adam.step(model.parameters_mut(), &gradients)?;
        for t in frozen.clone() {
            let state = &adam.states[t];
            let bound = tolerance::adam_step(
                learning_rate,
                hyper.beta1,
                hyper.beta2,
                state.step,
                T::UNIT_ROUNDOFF,
            )
            .unwrap_or(f64::INFINITY)
                * (1.0 + super::optimizer::adam_divide_sqrt_excess::<T>());
            for (index, s) in state.last_step.iter().enumerate() {
                moved |= *s != T::zero();
                prop_assert!(
                    s.widen().abs() <= bound,
                    "{}: dead layer {dead_layer}, Adam step t = {}: {}[{index}] stepped {:e} = {:.4}·lr > \
                     C_t·lr·(1 + τu) = {bound:e}",
                    T::NAME,
                    state.step,
                    names[t],
                    s.widen(),
                    s.widen().abs() / learning_rate
                );
            }
        }
    }
    prop_assert!(
        moved || dead_steps == 0,
        "{}: dead layer {dead_layer} with nonzero Adam first moment did not move in {dead_steps} steps",
        T::NAME
    );
    Ok(())
}

/// The sigmoid derivative is bounded by `e^{−|z|}` (THEORY.md B3 (a), (b), (d)):
/// `σ'(z) = e^{−|z|}/(1 + e^{−|z|})² ∈ [e^{−|z|}/4, e^{−|z|})`. For `backend`'s
/// [`Backend::sigmoid`] and [`Backend::sigmoid_backward`] with `g = 1` (the two-branch form of
/// [`reference::sigmoid`]; `σ̂' = (1·(1 − σ̂))·σ̂`):
/// ```text
/// 0 ≤ σ̂'(z) ≤ e^{−|z|} + (2k_e + 2k_d + 2)u
/// ```
/// with `k_e`, `k_d` the `exp` and divide budgets of [`ArithModel::of`] (f32: `3`, `2.5` ulp, so
/// `13u`; f64: `3`, `0.5`, so `9u`). Write `e = e^{−|z|}`, `y = σ(z)`.
/// - `z ≥ 0`: `σ̂ = fl(1/fl(1 + ê)) = y + Δ`, `|Δ| ≤ (ε_d + u + ε_e)·y`; `σ̂ ≥ 1/2`, so `1 − σ̂` is
///   exact (Sterbenz), and `(1 − σ̂)σ̂ = σ' + Δ(1 − 2y) − Δ² ≤ σ' + |Δ|`; with the final product's
///   rounding `σ̂' ≤ σ'(1 + u) + |Δ|(1 + u) < e + (2k_e + 2k_d + 2)u` (THEORY's bound).
/// - `z < 0`: `σ̂ = y(1 + ρ)`, `|ρ| ≤ (4k_e + 2k_d + 1)u`, `y < e`, and `1 − σ̂` rounds once:
///   `σ̂' ≤ σ'(1 + R) + e²|ρ|`, `R = |ρ| + 2u`; since `e − σ' = e²(2 + e)/(1 + e)² ≥ (3/4)e²`,
///   `σ̂' − e ≤ eR − e²(3/4 − R) ≤ R²/3`: below `e` up to a second-order term, far inside the bound.
///
/// `σ̂' ≥ 0` exactly: `σ̂ ∈ [0, 1]` by monotone rounding. Measured on the reference (host libm,
/// 2,000,001-point grids): largest `σ̂' − e^{−|z|}` is `1.00u` in f32 (at `z = 15.54`, bound
/// `13u`) and `1.00u` in f64 (bound `9u`).
pub fn sigmoid_derivative_is_at_most_exp_minus_abs<T: Scalar>(
    backend: &impl Backend<T>,
    z: T,
) -> TestCaseResult {
    let derivative = sigmoid_derivative(backend, z)?;
    let model = ArithModel::of::<T>();
    let slack = model.exp + model.divide + 2.0 * model.unit_roundoff;
    let ceiling = (-z.widen().abs()).exp() + slack;
    prop_assert!(
        derivative >= 0.0 && derivative <= ceiling,
        "{}: σ̂'({:e}) = {derivative:e} outside [0, e^(−|z|) + {slack:e} = {ceiling:e}]",
        T::NAME,
        z.widen()
    );
    Ok(())
}

/// `σ̂'(z)` of `backend` at one point: `sigmoid_backward(sigmoid(z), 1)`.
fn sigmoid_derivative<T: Scalar>(backend: &impl Backend<T>, z: T) -> crate::Result<f64> {
    let y = backend.sigmoid(ndarray::arr2(&[[z]]).view())?;
    let one = ndarray::arr2(&[[T::one()]]);
    Ok(backend.sigmoid_backward(y.view(), one.view())?[[0, 0]].widen())
}

/// The `z` above which the reference's `σ̂(z)` is exactly 1 in `T`, with margin: `16.7` (f32) and
/// `36.8` (f64), above `24 ln 2 = 16.6355` and `53 ln 2 = 36.7368`.
pub fn sigmoid_saturation_threshold<T: Scalar>() -> f64 {
    if T::UNIT_ROUNDOFF > 1e-10 {
        16.7
    } else {
        36.8
    }
}

/// The reference's sigmoid derivative is **exactly 0** where `σ̂` rounds to 1 and nowhere else in
/// the normal range (THEORY.md B3 (b), (c), (d)): for `z ≥` [`sigmoid_saturation_threshold`]
/// (16.7 in f32), `e^{−z} < u` so `1 + e^{−z}` rounds to 1 (ties to even at exactly `u`), `1/1 = 1`
/// (the host's division is correctly rounded), and `(1 − 1)·1 = 0`. Measured on the reference:
/// the first f32 `z` with `σ̂' = 0` is `16.635532379` (`24 ln 2 = 16.635532333`).
///
/// The negative side is not symmetric: the reference's `σ` uses `e^z/(1 + e^z)` there and does
/// **not** saturate, so `σ̂'(z) > 0` for every `z` with `e^z` normal (`z ≥ ln(2^−126) ≈ −87.34` in
/// f32); measured, the f32 `σ̂'` first reaches 0 at `z ≈ −103.975`, where `e^z` underflows. So:
/// `σ̂'(z) == 0` for `z ≥ threshold`, and `σ̂'(z) > 0` for `ln(MIN_POSITIVE) ≤ z ≤ threshold − 0.1`
/// (0.1 below the true boundary stays many ulps away from it even with a 3-ulp `exp`).
///
/// `correctly_rounded_division`: the caller's backend divides correctly rounded (the reference,
/// OpenCL f64). Otherwise (OpenCL f32, 2.5 ulp) `1/1` may return `1 − 2^−24` and THEORY.md B3 (d)
/// allows `σ̂' ≤ (1 − σ̂)σ̂ ≤ 2.5·2^−24 < ε_div` above the threshold instead of exactly 0.
pub fn sigmoid_derivative_vanishes_exactly_where_sigmoid_rounds_to_one<T: Scalar>(
    backend: &impl Backend<T>,
    z: T,
    correctly_rounded_division: bool,
) -> TestCaseResult {
    let derivative = sigmoid_derivative(backend, z)?;
    let threshold = sigmoid_saturation_threshold::<T>();
    let z64 = z.widen();
    let ceiling = if correctly_rounded_division {
        0.0
    } else {
        ArithModel::of::<T>().divide
    };
    if z64 >= threshold {
        prop_assert!(
            derivative <= ceiling,
            "{}<{}>: σ̂'({z64:e}) = {derivative:e}, expected ≤ {ceiling:e} above {threshold} (σ̂ = 1)",
            backend.name(),
            T::NAME
        );
    } else if z64 >= T::MIN_POSITIVE_NORMAL.ln() && z64 <= threshold - 0.1 {
        prop_assert!(
            derivative > 0.0,
            "{}: σ̂'({z64:e}) = 0 below the saturation threshold {threshold}",
            T::NAME
        );
    }
    Ok(())
}

/// The penalised loss of seed 001, `L(p) = reduce(Σ(p_i − y_i)²) − φ·std_c(p)`, in `T` with the
/// reference ([`reference::mse`], [`reference::std_corrected`]), and a bound on its evaluation
/// error: `tolerance::mse` for the first term, `(γ_{n+2}/2 + 2u)·s + n|m̂ − m|²/(2(n − c)s)` for the
/// std ([`reference::std_corrected`]'s doc; `|m̂ − m| ≤ γ_n·mean|p|`), `u` for the product with
/// `φ̂` and one for `φ`'s rounding, `u|L|` for the subtraction.
fn penalised_loss<T: Scalar>(
    prediction: ArrayView1<'_, T>,
    target: ArrayView1<'_, T>,
    phi: f64,
    correction: usize,
    reduction: Reduction,
) -> crate::Result<(f64, f64)> {
    let n = prediction.len();
    let u = T::UNIT_ROUNDOFF;
    let squared = reference::mse(prediction, target, reduction)?;
    let spread = reference::std_corrected(prediction, correction)?;
    let phi_t = T::narrow(phi);
    let loss = squared - phi_t * spread;
    let s = spread.widen();
    let mean_abs = prediction.iter().map(|v| v.widen().abs()).sum::<f64>() / n as f64;
    let mean_error = tolerance::gamma(n + 1, u).unwrap_or(f64::INFINITY) * mean_abs;
    let gamma = tolerance::gamma(n + 2, u).unwrap_or(f64::INFINITY);
    let std_bound = (gamma / 2.0 + 2.0 * u) * s
        + if s > 0.0 {
            n as f64 * mean_error * mean_error / (2.0 * (n - correction) as f64 * s)
        } else {
            0.0
        };
    let bound = tolerance::mse(n, squared.widen(), u)
        + phi * std_bound
        + 2.0 * u * phi * s
        + u * loss.widen().abs();
    Ok((loss.widen(), bound))
}

/// The closed-form minimiser of the `−φ·std_c` loss (THEORY.md B4 (a), (b), (d)): for non-constant
/// `y` and `a = 1` (sum) or `a = n` (mean reduction),
/// ```text
/// p* = ȳ·1 + r·(y − ȳ)/‖y − ȳ‖,   r = ‖y − ȳ‖ + aφ/(2 sqrt(n − c)),
/// mean(p*) = ȳ,   std_c(p*) = std_c(y) + aφ/(2(n − c)),   min L = −φ std_c(y) − aφ²/(4(n − c)).
/// ```
/// `p*` is evaluated in f64 and rounded to `T` (`p̂*`, `|Δ_i| ≤ u|p*_i|`). Asserted:
/// - `L̂(p̂*) ≤ L̂(q) + B(p̂*) + B(q) + ‖Δ‖²/a` for `q = fl(p̂* + δ)` (`δ` = `perturbation`):
///   `p*` is the global minimiser, and `L(p* + Δ) ≤ L(p*) + ‖Δ‖²/a` because `−φ std` is concave
///   and the quadratic has Hessian `(2/a)I`; `B` is the evaluation bound of the loss (source);
/// - `|mean(p̂*) − ȳ| ≤ u·max|p*_i| + γ_{2n}(u64)·mean|p*|`;
/// - `|std_c^(p̂*) − formula| ≤ γ_{4n}(u_T)·s + ‖Δ‖/sqrt(n − c) + γ_{4n}(u64)·s` (THEORY states
///   `γ_{4n}` alone; the input-rounding term `‖Δ‖/sqrt(n − c)` is needed in f32 when `|ȳ|` is large
///   against the spread);
/// - `|L̂(p̂*) − min L| ≤ B(p̂*) + ‖Δ‖²/a + γ_{4n}(u64)·(|min L| + φ s)`.
///
/// Constant (or nearly constant, `‖y − ȳ‖ ≤ 1e-6·(1 + |ȳ|)`) targets are rejected
/// (`prop_assume`): the minimiser's direction is arbitrary there.
///
/// Reference-only: `B` counts correctly rounded `/` and `sqrt` (the host's). The backend-generic
/// B4 invariants are [`std_gradient_has_norm_inverse_sqrt_n_minus_c`] and
/// [`std_and_its_gradient_vanish_at_constant_input`].
pub fn std_penalty_minimiser_has_closed_form<T: Scalar>(
    targets: ArrayView1<'_, T>,
    phi: f64,
    correction: usize,
    reduction: Reduction,
    perturbation: ArrayView1<'_, f64>,
) -> TestCaseResult {
    let n = targets.len();
    prop_assume!(n > correction && n >= 2 && perturbation.len() == n);
    let u = T::UNIT_ROUNDOFF;
    let y = targets.mapv(Scalar::widen);
    let mean = y.sum() / n as f64;
    let deviation = y.mapv(|v| v - mean);
    let norm = deviation.dot(&deviation).sqrt();
    prop_assume!(norm > 1e-6 * (1.0 + mean.abs()));
    let a = match reduction {
        Reduction::Sum => 1.0,
        Reduction::Mean => n as f64,
    };
    let dof = (n - correction) as f64;
    let radius = norm + a * phi / (2.0 * dof.sqrt());
    let optimum = deviation.mapv(|d| mean + radius * d / norm);
    let rounded = optimum.mapv(T::narrow);
    let input_error: f64 = optimum.iter().map(|p| (u * p).powi(2)).sum::<f64>().sqrt();
    let excess = input_error * input_error / a;
    let (loss_star, bound_star) =
        penalised_loss(rounded.view(), targets, phi, correction, reduction)?;
    let moved = Array1::from_iter(
        rounded
            .iter()
            .zip(perturbation)
            .map(|(p, d)| T::narrow(p.widen() + d)),
    );
    let (loss_moved, bound_moved) =
        penalised_loss(moved.view(), targets, phi, correction, reduction)?;
    prop_assert!(
        loss_star <= loss_moved + bound_star + bound_moved + excess,
        "{}: L(p*) = {loss_star:.12e} > L(p* + δ) = {loss_moved:.12e} + bounds {:e} (φ = {phi}, c = {correction}, {reduction:?}, n = {n})",
        T::NAME,
        bound_star + bound_moved + excess
    );
    let g64 = tolerance::gamma(4 * n, f64::EPSILON / 2.0).unwrap_or(f64::INFINITY);
    let mean_abs = optimum.iter().map(|p| p.abs()).sum::<f64>() / n as f64;
    let max_abs = optimum.iter().fold(0.0f64, |m, p| m.max(p.abs()));
    let mean_star = rounded.iter().map(|p| p.widen()).sum::<f64>() / n as f64;
    let mean_bound = u * max_abs + g64 * mean_abs;
    prop_assert!(
        (mean_star - mean).abs() <= mean_bound,
        "{}: mean(p*) = {mean_star:e} vs ȳ = {mean:e}, bound {mean_bound:e}",
        T::NAME
    );
    let expected_std = norm / dof.sqrt() + a * phi / (2.0 * dof);
    let std_star = reference::std_corrected(rounded.view(), correction)?.widen();
    let gamma = tolerance::gamma(4 * n, u).unwrap_or(f64::INFINITY);
    let std_bound = (gamma + g64) * expected_std + input_error / dof.sqrt();
    prop_assert!(
        (std_star - expected_std).abs() <= std_bound,
        "{}: std_c(p*) = {std_star:.12e} vs std_c(y) + aφ/(2(n − c)) = {expected_std:.12e}, bound {std_bound:e}",
        T::NAME
    );
    let minimum = -phi * norm / dof.sqrt() - a * phi * phi / (4.0 * dof);
    let minimum_bound = bound_star + excess + g64 * (minimum.abs() + phi * expected_std);
    prop_assert!(
        (loss_star - minimum).abs() <= minimum_bound,
        "{}: L(p*) = {loss_star:.12e} vs min L = {minimum:.12e}, bound {minimum_bound:e}",
        T::NAME
    );
    Ok(())
}

/// The gradient of `std_c` has norm `1/sqrt(n − c)` at every non-constant input and every scale
/// (THEORY.md B4 (c), (d)): `∇std_c = d/((n − c)·s)` with `s = ‖d‖/sqrt(n − c)`. The reference forms
/// `d` and `s` from the same computed deviations, so only the sum of squares (`γ_n`), the sqrt,
/// the divisions and the products (a few `u`) err:
/// `|‖∇̂std_c‖ − 1/sqrt(n − c)| ≤ (γ_{3n}(u_T) + γ_{2n}(u64))/sqrt(n − c)` (the last term: this
/// function's f64 norm), plus `n·2^−126/Σd̂²` relative for squares that may underflow, plus
/// `1.5(ε_div − u) + (ε_sqrt − u)` for a backend with the OpenCL budgets (the division under the
/// sqrt, halved; the sqrt; the division of `d` by `(n − c)s`; 0 where both are correctly rounded).
/// Inputs whose computed gradient is exactly 0 (bitwise-constant input) are rejected.
pub fn std_gradient_has_norm_inverse_sqrt_n_minus_c<T: Scalar>(
    backend: &impl Backend<T>,
    values: ArrayView1<'_, T>,
    correction: usize,
) -> TestCaseResult {
    let n = values.len();
    prop_assume!(n > correction);
    let gradient = backend.std_corrected_backward(values, correction, T::one())?;
    let norm = gradient
        .iter()
        .map(|g| g.widen().powi(2))
        .sum::<f64>()
        .sqrt();
    prop_assume!(norm > 0.0);
    let expected = 1.0 / ((n - correction) as f64).sqrt();
    let mean = values.iter().map(|v| v.widen()).sum::<f64>() / n as f64;
    let squares: f64 = values.iter().map(|v| (v.widen() - mean).powi(2)).sum();
    let model = ArithModel::of::<T>();
    let u = model.unit_roundoff;
    let budgets =
        1.5 * (model.divide - u) + (tolerance::ulp_relative_error(&model, tolerance::SQRT) - u);
    let relative = tolerance::gamma(3 * n, T::UNIT_ROUNDOFF).unwrap_or(f64::INFINITY)
        + budgets
        + tolerance::gamma(2 * n, f64::EPSILON / 2.0).unwrap_or(f64::INFINITY)
        + n as f64 * T::MIN_POSITIVE_NORMAL / squares;
    prop_assert!(
        (norm - expected).abs() <= relative * expected,
        "{}: ‖∇std_{correction}‖ = {norm:.12e} vs 1/sqrt(n − c) = {expected:.12e} (n = {n}), relative bound {relative:e}",
        T::NAME
    );
    Ok(())
}

/// At exactly constant input `std_c = 0` and its gradient is exactly 0, not NaN (THEORY.md B4 (c),
/// (d); PyTorch returns 0 too). The reference checks bitwise equality of the entries first: a
/// two-pass mean of `n` equal values need not equal them (e.g. `n = 7` copies of `0.1f32` average to `0.10000000894`, not `0.10000000149`), and
/// without the check the "constant" input would have a nonzero computed spread.
pub fn std_and_its_gradient_vanish_at_constant_input<T: Scalar>(
    backend: &impl Backend<T>,
    value: T,
    n: usize,
    correction: usize,
) -> TestCaseResult {
    prop_assume!(n > correction);
    let values = Array1::from_elem(n, value);
    let spread = backend.std_corrected(values.view(), correction)?;
    let gradient = backend.std_corrected_backward(values.view(), correction, T::one())?;
    prop_assert!(
        spread == T::zero() && gradient.iter().all(|g| *g == T::zero()),
        "{}: constant input {:e} (n = {n}, c = {correction}): std = {:e}, max |∇| = {:e}",
        T::NAME,
        value.widen(),
        spread.widen(),
        gradient.iter().fold(0.0f64, |m, g| m.max(g.widen().abs()))
    );
    Ok(())
}
