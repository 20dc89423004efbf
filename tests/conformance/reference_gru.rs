//! Seed 002's GRU model (`mloracle::reference::models::gru`): every parameter's gradient from
//! the hand-written backpropagation through time against central finite differences in f64.
//!
//! Set `MLORACLE_REPORT_RATIOS=1` (with `--nocapture`) to print `RATIO <check> <error/bound>`
//! per case.

use mloracle::gradcheck::check_vjp;
use mloracle::proptest::collection::vec;
use mloracle::proptest::prelude::*;
use mloracle::proptest::test_runner::Config;
use mloracle::reference::models::gru::{GruBatch, GruConfig, GruModel, PARAMETER_NAMES};
use mloracle::reference::models::Model;
use mloracle::reference::DEFAULT_IGNORE_INDEX;
use ndarray::{Array1, Array2};

fn record(check: &str, ratio: f64) {
    if std::env::var_os("MLORACLE_REPORT_RATIOS").is_some() {
        eprintln!("RATIO {check} {ratio:e}");
    }
}

/// proptest's default number of cases (honours `PROPTEST_CASES`), persisted next to this file.
fn cheap_config() -> Config {
    Config {
        cases: Config::default().cases,
        ..mloracle::harness::config_for_backend_tests(file!())
    }
}

/// The longest chain of roundings `k` in one f64 evaluation of the loss, for [`check_vjp`]'s
/// evaluation error `γ_k·|L|`. Per GRU step the hidden state passes through a pre-activation
/// (a dot product over E plus bias, a dot product over H plus bias, their sum: E + H + 3),
/// σ (exp, add, divide: 3), `gi_n + r·gh_n` (2), tanh (its 5-ulp budget: 5) and
/// `h' = (h − n)·z + n` (3), so at most E + H + 16 roundings, and the steps chain: S·(E + H + 16).
/// The head adds H + 1, log-softmax over V classes (max, subtract, exp, V − 1 adds, log,
/// subtract: V + 4) and the mean over at most B rows (B). σ and tanh are 1-Lipschitz and the
/// generated weights are bounded by 1/√H (embeddings by ≈ 6.7), so first-order propagation does
/// not amplify these errors beyond the counted chain by more than the slack of counting every
/// step's full chain.
fn rounding_chain(batch: usize, seq: usize, config: &GruConfig) -> usize {
    seq * (config.embed + config.hidden + 16) + config.hidden + 1 + config.vocab + 4 + batch
}

/// A generated case: the model (PyTorch-style init from a generated seed), a batch and one
/// random tangent per parameter.
#[derive(Debug, Clone)]
struct GruCase {
    model: GruModel<f64>,
    batch: GruBatch,
    tangents: Vec<Vec<f64>>,
}

prop_compose! {
    /// batch 1–3, seq 1–4, vocab 2–6, embed and hidden 1–5; targets a class or ignored (row 0
    /// never, so the mean is defined); tangents in [−1, 1].
    fn gru_case()(batch in 1usize..=3, seq in 1usize..=4, vocab in 2usize..=6,
                  embed in 1usize..=5, hidden in 1usize..=5, seed in any::<u64>())
        (items in vec(0..vocab, batch * seq),
         targets in vec(prop_oneof![1 => Just(DEFAULT_IGNORE_INDEX), 3 => 0..vocab as i64], batch),
         first in 0..vocab as i64,
         raw in vec(-1.0f64..=1.0, tangent_length(vocab, embed, hidden)),
         batch in Just(batch), seq in Just(seq), vocab in Just(vocab),
         embed in Just(embed), hidden in Just(hidden), seed in Just(seed)) -> GruCase {
        let config = GruConfig { vocab, embed, hidden, seed };
        let model = GruModel::new(config).expect("valid config");
        let mut tangents = Vec::new();
        let mut offset = 0;
        for p in model.parameters() {
            tangents.push(raw[offset..offset + p.len()].to_vec());
            offset += p.len();
        }
        let mut targets = targets;
        targets[0] = first;
        let items = Array2::from_shape_vec((batch, seq), items).expect("batch·seq ids");
        GruCase { model, batch: GruBatch { items, targets: Array1::from(targets) }, tangents }
    }
}

/// The total number of parameters of a `(V, E, H)` model.
fn tangent_length(vocab: usize, embed: usize, hidden: usize) -> usize {
    vocab * embed + 3 * hidden * embed + 3 * hidden * hidden + 6 * hidden + vocab * hidden + vocab
}

proptest! {
    #![proptest_config(cheap_config())]

    /// For each parameter tensor `p`: `⟨∂L/∂p, t_p⟩` from BPTT agrees with the central
    /// difference of `L(θ + h·t_p)` (all other tensors fixed) within `check_vjp`'s bound, and
    /// the bound is not vacuous (below `1e-6·max(1, Σ|g_i t_i|)`).
    #[test]
    fn gru_gradients_match_finite_differences(case in gru_case()) {
        let GruCase { model, batch, tangents } = case;
        let config = model.config;
        let (loss, gradients) = model.loss_and_gradients(&batch, 0)?;
        prop_assert!(loss.is_finite(), "loss {loss}");
        let lengths: Vec<usize> = model.parameters().iter().map(Array1::len).collect();
        let point: Vec<f64> = model.parameters().iter().flat_map(|p| p.iter().copied()).collect();
        let vjp: Vec<f64> = gradients.iter().flat_map(|g| g.iter().copied()).collect();
        let loss_at = |x: &[f64]| -> Vec<f64> {
            let mut parameters = Vec::new();
            let mut offset = 0;
            for &n in &lengths {
                parameters.push(Array1::from(x[offset..offset + n].to_vec()));
                offset += n;
            }
            let moved = GruModel::from_parameters(config, parameters).expect("same lengths");
            vec![moved.loss_and_gradients(&batch, 0).expect("valid batch").0]
        };
        let (rows, seq) = batch.items.dim();
        let chain = rounding_chain(rows, seq, &config);
        let mut offset = 0;
        for (index, name) in PARAMETER_NAMES.iter().enumerate() {
            let mut tangent = vec![0.0; point.len()];
            tangent[offset..offset + lengths[index]].copy_from_slice(&tangents[index]);
            offset += lengths[index];
            let check = check_vjp(&loss_at, &point, &tangent, &[1.0], &vjp, chain);
            record("gru_vjp", check.error_over_bound());
            prop_assert!(check.passes(), "{name}, {config:?}, items {:?}, targets {:?}: {check}",
                batch.items, batch.targets);
            let scale: f64 = vjp.iter().zip(&tangent).map(|(g, t)| (g * t).abs()).sum();
            prop_assert!(check.bound <= 1e-6 * scale.max(1.0), "vacuous check for {name}: {check}");
        }
    }
}
