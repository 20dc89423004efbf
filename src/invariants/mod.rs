//! Invariants from THEORY.md as named functions, generic over [`crate::Backend`] and
//! [`crate::Scalar`]. Each states its theorem, its THEORY.md section and its bound, and returns
//! a proptest `TestCaseResult`. They assert facts about *any* correct backend; they do not need
//! a second implementation except where the doc says so.
//!
//! The training-step invariants (A2, B1, B2, C1–C5, D1–D5) run the backend's optimizer entry
//! points ([`crate::Backend::sgd_step`], [`crate::Backend::adam_step`],
//! [`crate::Backend::clip_grad_norm`]) or its whole loop ([`crate::Backend::train`]); a few
//! stay reference-only where the statement is about the reference (B4's closed-form minimiser).
//! `backend_tests!` runs at least one invariant of every THEORY.md section A0–A5, B1–B4, C1–C5,
//! D1–D5 on its backend.

mod bias;
mod logistic;
mod losses;
mod optimizer;
mod regression;
mod stability;
mod stepper;

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
pub use losses::{
    cross_entropy_gradient_is_softmax_minus_onehot,
    cross_entropy_is_zero_while_its_gradient_is_not, naive_bce, one_plus_exp_rounds_to_one_above,
    stable_bce_is_finite_where_naive_is_not,
};
pub use optimizer::{
    adam_drift_under_noam_is_bounded_by_cumulative_rate, adam_in_the_eps_regime_is_momentum_sgd,
    adam_on_a_constant_gradient_drifts_by_the_cumulative_rate, adam_on_a_quadratic_does_not_settle,
    adam_step_after_silence_is_set_by_the_betas, adam_step_is_bounded_by_c_t,
    adam_step_is_scale_invariant, clip_grad_norm_bounds_the_norm,
    gradient_descent_on_a_quadratic_follows_one_minus_rate_times_curvature,
    largest_adam_step_over_c_t, momentum_stability_threshold_separates_convergence,
    SEED_003_SCHEDULE,
};
pub use regression::{
    adam_residual_state_moves_dead_layer_within_step_bound,
    constant_mse_predictor_converges_to_label_mean,
    dead_relu_layer_freezes_itself_and_earlier_layers,
    dead_relu_layer_freezes_on_a_seeded_regressor, max_pre_activation,
    mlp_sum_is_mean_at_scaled_rate_on_a_seeded_regressor,
    mlp_sum_reduction_is_mean_reduction_at_count_times_learning_rate,
    mse_sum_gradient_is_count_times_mean_gradient, relu_regressor,
    sigmoid_derivative_is_at_most_exp_minus_abs,
    sigmoid_derivative_vanishes_exactly_where_sigmoid_rounds_to_one, sigmoid_saturation_threshold,
    std_and_its_gradient_vanish_at_constant_input, std_gradient_has_norm_inverse_sqrt_n_minus_c,
    std_penalty_minimiser_has_closed_form, CONSTANT_PREDICTOR_STEPS,
};
pub use stability::{
    log_sum_exp_is_shift_invariant, log_sum_exp_lies_between_max_and_max_plus_ln_n,
    softmax_rows_sum_to_one,
};
