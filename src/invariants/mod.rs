//! Invariants from THEORY.md as named functions, generic over [`crate::Backend`] and
//! [`crate::Scalar`]. Each states its theorem, its THEORY.md section and its bound, and returns
//! a proptest `TestCaseResult`. They assert facts about *any* correct backend; they do not need
//! a second implementation except where the doc says so.

mod logistic;
mod stability;

pub use logistic::{
    constant_logit_loss_is_at_least_label_entropy, label_entropy_nats,
    label_prior_logit_attains_label_entropy, zero_logits_give_ln_two,
};
pub use stability::{
    log_sum_exp_is_shift_invariant, log_sum_exp_lies_between_max_and_max_plus_ln_n,
    softmax_rows_sum_to_one,
};
