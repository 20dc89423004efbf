//! Invariants from THEORY.md as named functions, generic over [`crate::Backend`] and
//! [`crate::Scalar`]. Each states its theorem, its THEORY.md section and its bound, and returns
//! a proptest `TestCaseResult`. They assert facts about *any* correct backend; they do not need
//! a second implementation except where the doc says so.
//!
//! The `bias` (A2) and `regression` (B1–B4) invariants call the reference directly: they are training-step
//! and model-level facts, and no training-step Backend API exists yet.

mod bias;
mod logistic;
mod regression;
mod stability;

pub use bias::{
    bce_loss_is_at_least_conditional_label_entropy,
    bias_gradient_descent_does_not_converge_above_stability_limit,
    bias_gradient_descent_moves_monotonically_to_prior_logit, UNSTABLE_BIAS_OBSERVED_STEPS,
    UNSTABLE_BIAS_WARMUP_STEPS,
};
pub use logistic::{
    constant_logit_loss_is_at_least_label_entropy, label_entropy_nats,
    label_prior_logit_attains_label_entropy, zero_logits_give_ln_two,
};
pub use regression::{
    adam_residual_state_moves_dead_layer_within_step_bound,
    constant_mse_predictor_converges_to_label_mean,
    dead_relu_layer_freezes_itself_and_earlier_layers, max_pre_activation,
    mlp_sum_reduction_is_mean_reduction_at_count_times_learning_rate,
    mse_sum_gradient_is_count_times_mean_gradient, sigmoid_derivative_is_at_most_exp_minus_abs,
    sigmoid_derivative_vanishes_exactly_where_sigmoid_rounds_to_one, sigmoid_saturation_threshold,
    std_and_its_gradient_vanish_at_constant_input, std_gradient_has_norm_inverse_sqrt_n_minus_c,
    std_penalty_minimiser_has_closed_form, CONSTANT_PREDICTOR_STEPS,
};
pub use stability::{
    log_sum_exp_is_shift_invariant, log_sum_exp_lies_between_max_and_max_plus_ln_n,
    softmax_rows_sum_to_one,
};
