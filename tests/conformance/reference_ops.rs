//! The reference ops against themselves: every hand-written VJP against central finite
//! differences in f64 ([`mloracle::gradcheck::check_vjp`]), and the f32 instance against the f64
//! instance within the derived bounds of [`mloracle::tolerance`]; dropout's keep rate against a
//! binomial bound.
//!
//! `rounding_chain` for `check_vjp`: its rounding term is `γ_k·Σ|c_i f_i|` for one evaluation
//! of `φ(h) = Σ_i c_i f_i(x + h·t)`, while the derived forward bounds `B_i` are absolute (they
//! include cancellation, e.g. `|A||B|` for a product). So each check passes
//! `k = ⌈Σ|c_i|·B_i / (u·Σ|c_i f_i|)⌉ + 1 + m`: the smallest `k_f` whose `γ` term covers the
//! op's own derived bound in f64 (`chain_from_bound`), plus `m` = the output length for the dot
//! product with `c` inside `φ` (`γ_a + γ_b ≤ γ_{a+b}`); nothing is tuned.
//!
//! With `--nocapture`, each property prints `worst gradcheck <op>: <ratio>` whenever a new
//! worst `|⟨VJP, t⟩ − D(h)| / bound` is seen, and `worst f32-vs-f64 <op>: <ratio>` likewise for
//! `|f32 − f64| / bound`; the last line per op is the worst of the run.

use std::collections::BTreeMap;
use std::sync::Mutex;

use mloracle::gradcheck::{check_vjp, DirectionalCheck};
use mloracle::ndarray::{Array1, Array2, Array3, Array4, ArrayView2, ArrayViewD, Axis};
use mloracle::proptest::collection::vec;
use mloracle::proptest::prelude::*;
use mloracle::reference as r;
use mloracle::rng::RandomKey;
use mloracle::tolerance::{self, ArithModel};
use mloracle::{compare, Scalar};

const U64: f64 = f64::EPSILON / 2.0;

static WORST: Mutex<BTreeMap<&'static str, f64>> = Mutex::new(BTreeMap::new());
static WORST_F32: Mutex<BTreeMap<String, f64>> = Mutex::new(BTreeMap::new());

/// Remember the worst error/bound ratio per op and print each new worst.
fn record(op: &'static str, check: &DirectionalCheck) {
    let ratio = check.error_over_bound();
    if let Ok(mut worst) = WORST.lock() {
        let entry = worst.entry(op).or_insert(0.0);
        if ratio > *entry {
            *entry = ratio;
            eprintln!("worst gradcheck {op}: {ratio:.3e} ({check})");
        }
    }
}

/// The smallest `k` with `γ_k·Σ|c_i f_i| ≥ Σ|c_i|·B_i` (see the module doc).
fn chain_from_bound(f: &[f64], c: &[f64], bound: &[f64]) -> usize {
    let weighted_bound: f64 = c.iter().zip(bound).map(|(ci, bi)| ci.abs() * bi).sum();
    let weighted_f: f64 = c.iter().zip(f).map(|(ci, fi)| (ci * fi).abs()).sum();
    if weighted_bound == 0.0 {
        return 1;
    }
    let k = (weighted_bound / (U64 * weighted_f)).ceil();
    // Past 2^50 the γ term is vacuous (k·u ≥ 1/8); the non-vacuity check then reports it.
    if k.is_finite() && k < 2f64.powi(50) {
        k as usize + 1
    } else {
        1 << 50
    }
}

/// Run one directional check and assert it, recording the ratio.
fn gradcheck(
    op: &'static str,
    f: &dyn Fn(&[f64]) -> Vec<f64>,
    x: &[f64],
    tangent: &[f64],
    cotangent: &[f64],
    vjp: &[f64],
    forward_bound: &[f64],
) -> Result<(), TestCaseError> {
    let f0 = f(x);
    prop_assert_eq!(f0.len(), cotangent.len(), "{}: output length", op);
    prop_assert_eq!(vjp.len(), x.len(), "{}: VJP length", op);
    let chain = chain_from_bound(&f0, cotangent, forward_bound) + f0.len();
    let check = check_vjp(f, x, tangent, cotangent, vjp, chain);
    record(op, &check);
    prop_assert!(
        check.passes(),
        "{}: {} (rounding chain k = {})",
        op,
        check,
        chain
    );
    // Not vacuous (THEORY.md E4): the bound is small next to the size of the terms.
    let scale: f64 = 1.0
        + vjp
            .iter()
            .zip(tangent)
            .map(|(g, t)| (g * t).abs())
            .sum::<f64>();
    prop_assert!(
        check.bound <= 1e-5 * scale,
        "{}: vacuous bound: {} (k = {})",
        op,
        check,
        chain
    );
    Ok(())
}

fn concat(parts: &[&[f64]]) -> Vec<f64> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

fn flat<D: mloracle::ndarray::Dimension>(a: &mloracle::ndarray::Array<f64, D>) -> Vec<f64> {
    a.iter().copied().collect()
}

fn mat(values: &[f64], rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| values[i * cols + j])
}

/// Lengths where 0 is valid: 0, 1, small (odd and even), 9.
fn len0() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 2 => Just(1usize), 6 => 2usize..=7, 1 => Just(9usize)]
}

/// Lengths ≥ 1: 1, small, 9.
fn len1() -> impl Strategy<Value = usize> {
    prop_oneof![2 => Just(1usize), 6 => 2usize..=7, 1 => Just(9usize)]
}

/// Point, tangent and cotangent: `n` values in `[−scale, scale]`, `n` and `m` in `[−1, 1]`.
fn point(n: usize, m: usize, scale: f64) -> BoxedStrategy<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    (
        vec(-scale..=scale, n),
        vec(-1.0f64..=1.0, n),
        vec(-1.0f64..=1.0, m),
    )
        .boxed()
}

/// Map values away from the kink at 0: `v ↦ sign(v)·(0.1 + |v|)`.
fn off_kink(values: &[f64]) -> Vec<f64> {
    values
        .iter()
        .map(|&v| if v < 0.0 { v - 0.1 } else { v + 0.1 })
        .collect()
}

fn model64() -> ArithModel {
    ArithModel::of::<f64>()
}

/// f32 instance vs f64 instance on the same f32-representable inputs within `bound`.
fn agree(
    op: &str,
    actual_f32: ArrayViewD<'_, f64>,
    expected_f64: ArrayViewD<'_, f64>,
    bound: ArrayViewD<'_, f64>,
) -> Result<(), TestCaseError> {
    let subject = compare::Subject {
        op: op.to_string(),
        actual: "reference<f32>".to_string(),
        expected: "reference<f64>".to_string(),
    };
    let agreement = compare::compare(&subject, actual_f32, expected_f64, bound, &|_| {
        String::new()
    })
    .map_err(|m| TestCaseError::fail(m.to_string()))?;
    if let Ok(mut worst) = WORST_F32.lock() {
        let entry = worst.entry(op.to_string()).or_insert(0.0);
        if agreement.max_error_over_bound > *entry {
            *entry = agreement.max_error_over_bound;
            eprintln!(
                "worst f32-vs-f64 {op}: {:.3e} ({} elements)",
                *entry, agreement.elements
            );
        }
    }
    Ok(())
}

/// f32-rounded copies: the values as f32 and widened back.
fn rounded(values: &[f64]) -> (Vec<f32>, Vec<f64>) {
    let narrow: Vec<f32> = values.iter().map(|&v| <f32 as Scalar>::narrow(v)).collect();
    let wide = narrow.iter().map(|&v| f64::from(v)).collect();
    (narrow, wide)
}

fn widen<D: mloracle::ndarray::Dimension>(
    a: &mloracle::ndarray::Array<f32, D>,
) -> mloracle::ndarray::Array<f64, D> {
    a.mapv(f64::from)
}

fn models() -> (ArithModel, ArithModel) {
    (ArithModel::of::<f32>(), ArithModel::of::<f64>())
}

prop_compose! {
    fn matmul_case()(m in len0(), k in len0(), n in len0())
        (p in point(m * k + k * n, m * n, 3.0), m in Just(m), k in Just(k), n in Just(n))
        -> (usize, usize, usize, Vec<f64>, Vec<f64>, Vec<f64>) {
        (m, k, n, p.0, p.1, p.2)
    }
}

prop_compose! {
    fn rows_case(scale: f64)(m in len0(), n in len1())
        (p in point(m * n + n, m * n, scale), m in Just(m), n in Just(n))
        -> (usize, usize, Vec<f64>, Vec<f64>, Vec<f64>) {
        (m, n, p.0, p.1, p.2)
    }
}

prop_compose! {
    fn elementwise_case(scale: f64)(n in len0())(p in point(n, n, scale)) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        p
    }
}

prop_compose! {
    fn attention_case()(b in 1usize..=2, h in 1usize..=2, sq in 0usize..=4, sk in 1usize..=4,
                        d in 1usize..=4, dv in 1usize..=3)
        (p in point(b * h * (sq * d + sk * d + sk * dv), b * h * sq * dv, 2.0),
         dropped in vec(any::<bool>(), b * sk),
         dims in Just((b, h, sq, sk, d, dv)))
        -> ((usize, usize, usize, usize, usize, usize), Vec<f64>, Vec<f64>, Vec<f64>, Array2<f64>) {
        let (b, _, _, sk, _, _) = dims;
        // Key 0 is never dropped, so no query row has every key masked.
        let mask = Array2::from_shape_fn((b, sk), |(i, j)| if j > 0 && dropped[i * sk + j] { -1e9 } else { 0.0 });
        (dims, p.0, p.1, p.2, mask)
    }
}

type AttentionInputs = (Array4<f64>, Array4<f64>, Array4<f64>);

fn split_attention(x: &[f64], dims: (usize, usize, usize, usize, usize, usize)) -> AttentionInputs {
    let (b, h, sq, sk, d, dv) = dims;
    let (nq, nk) = (b * h * sq * d, b * h * sk * d);
    let q =
        Array4::from_shape_vec((b, h, sq, d), x[..nq].to_vec()).expect("sizes from the strategy");
    let k = Array4::from_shape_vec((b, h, sk, d), x[nq..nq + nk].to_vec())
        .expect("sizes from the strategy");
    let v = Array4::from_shape_vec((b, h, sk, dv), x[nq + nk..].to_vec())
        .expect("sizes from the strategy");
    (q, k, v)
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn gradcheck_matmul((m, k, n, x, t, c) in matmul_case()) {
        let f = |x: &[f64]| flat(&r::matmul(mat(&x[..m * k], m, k).view(), mat(&x[m * k..], k, n).view()).expect("valid"));
        let (a, b, g) = (mat(&x[..m * k], m, k), mat(&x[m * k..], k, n), mat(&c, m, n));
        let (ga, gb) = r::matmul_backward(a.view(), b.view(), g.view())?;
        let bound = tolerance::matmul(a.view(), b.view(), &model64());
        gradcheck("matmul", &f, &x, &t, &c, &concat(&[&flat(&ga), &flat(&gb)]), &flat(&bound))?;
    }

    #[test]
    fn gradcheck_batched_matmul(batch in 0usize..=3, (m, k, n, _, _, _) in matmul_case(), seed in any::<u64>()) {
        // Values from the RNG (keyed by the drawn seed), so the shapes and values are replayable.
        let key = RandomKey { seed, step: 0, tensor_id: 0 };
        let (na, nb) = (batch * m * k, batch * k * n);
        let all = mloracle::rng::init_uniform::<f64, _>(na + nb + na + nb + batch * m * n, 3.0, key)?;
        let all = all.to_vec();
        let x = all[..na + nb].to_vec();
        let t: Vec<f64> = all[na + nb..2 * (na + nb)].iter().map(|v| v / 3.0).collect();
        let c: Vec<f64> = all[2 * (na + nb)..].iter().map(|v| v / 3.0).collect();
        let split = |x: &[f64]| (
            Array3::from_shape_vec((batch, m, k), x[..na].to_vec()).expect("sizes"),
            Array3::from_shape_vec((batch, k, n), x[na..].to_vec()).expect("sizes"),
        );
        let f = |x: &[f64]| { let (a, b) = split(x); flat(&r::batched_matmul(a.view(), b.view()).expect("valid")) };
        let (a, b) = split(&x);
        let g = Array3::from_shape_vec((batch, m, n), c.clone()).expect("sizes");
        let (ga, gb) = r::batched_matmul_backward(a.view(), b.view(), g.view())?;
        let mut bound = Vec::new();
        for s in 0..batch {
            bound.extend(flat(&tolerance::matmul(a.index_axis(Axis(0), s), b.index_axis(Axis(0), s), &model64())));
        }
        gradcheck("batched_matmul", &f, &x, &t, &c, &concat(&[&flat(&ga), &flat(&gb)]), &bound)?;
    }

    #[test]
    fn gradcheck_add_and_mul_rows((m, n, x, t, c) in rows_case(3.0)) {
        let split = |x: &[f64]| (mat(&x[..m * n], m, n), Array1::from(x[m * n..].to_vec()));
        let (xm, b) = split(&x);
        let g = mat(&c, m, n);
        let f = |x: &[f64]| { let (xm, b) = split(x); flat(&r::add_rows(xm.view(), b.view()).expect("valid")) };
        let (gx, gb) = r::add_rows_backward(g.view());
        let bound = tolerance::add_rows(xm.view(), b.view(), &model64());
        gradcheck("add_rows", &f, &x, &t, &c, &concat(&[&flat(&gx), &flat(&gb)]), &flat(&bound))?;
        let f = |x: &[f64]| { let (xm, b) = split(x); flat(&r::mul_rows(xm.view(), b.view()).expect("valid")) };
        let (gx, gb) = r::mul_rows_backward(xm.view(), b.view(), g.view())?;
        let bound = tolerance::mul_rows(xm.view(), b.view(), &model64());
        gradcheck("mul_rows", &f, &x, &t, &c, &concat(&[&flat(&gx), &flat(&gb)]), &flat(&bound))?;
    }

    #[test]
    fn gradcheck_sum_and_mean_axis(m in len0(), n in len0(), axis in 0usize..=1, seed in any::<u64>()) {
        let key = RandomKey { seed, step: 1, tensor_id: 0 };
        // The mean needs a non-empty reduced axis: lengths are mapped up to 1 for it.
        for (op, mean) in [("sum_axis", false), ("mean_axis", true)] {
            let (m, n) = if mean && axis == 0 { (m.max(1), n) } else if mean { (m, n.max(1)) } else { (m, n) };
            let kept = if axis == 0 { n } else { m };
            let all = mloracle::rng::init_uniform::<f64, _>(2 * m * n + kept, 1.0, key)?.to_vec();
            let x: Vec<f64> = all[..m * n].iter().map(|v| 3.0 * v).collect();
            let (t, c) = (all[m * n..2 * m * n].to_vec(), all[2 * m * n..].to_vec());
            let reduce = |x: &[f64]| {
                let xm = mat(x, m, n);
                flat(&if mean { r::mean_axis(xm.view(), axis) } else { r::sum_axis(xm.view(), axis) }.expect("valid"))
            };
            let g = Array1::from(c.clone());
            let vjp = if mean { r::mean_axis_backward((m, n), axis, g.view())? } else { r::sum_axis_backward((m, n), axis, g.view())? };
            let xm = mat(&x, m, n);
            let bound = if mean { tolerance::mean_axis(xm.view(), axis, &model64()) } else { tolerance::sum_axis(xm.view(), axis, &model64()) };
            gradcheck(op, &reduce, &x, &t, &c, &flat(&vjp), &flat(&bound))?;
        }
    }

    #[test]
    fn gradcheck_relu_and_leaky_relu((x, t, c) in elementwise_case(3.0), slope in -0.5f64..=0.5) {
        let x = off_kink(&x);
        let g = Array1::from(c.clone());
        let xa = Array1::from(x.clone());
        let f = |x: &[f64]| flat(&r::relu(Array1::from(x.to_vec()).view()));
        let vjp = r::relu_backward(xa.view(), g.view())?;
        gradcheck("relu", &f, &x, &t, &c, &flat(&vjp), &vec![0.0; x.len()])?;
        let f = |x: &[f64]| flat(&r::leaky_relu(Array1::from(x.to_vec()).view(), slope));
        let vjp = r::leaky_relu_backward(xa.view(), g.view(), slope)?;
        let bound: Vec<f64> = x.iter().map(|v| U64 * (v * slope).abs()).collect();
        gradcheck("leaky_relu", &f, &x, &t, &c, &flat(&vjp), &bound)?;
    }

    #[test]
    fn gradcheck_sigmoid_tanh_gelu((x, t, c) in elementwise_case(6.0)) {
        let g = Array1::from(c.clone());
        let xa = Array1::from(x.clone());
        let m = model64();
        let f = |x: &[f64]| flat(&r::sigmoid_array(Array1::from(x.to_vec()).view()));
        let vjp = r::sigmoid_backward(r::sigmoid_array(xa.view()).view(), g.view())?;
        let bound: Vec<f64> = x.iter().map(|&v| tolerance::sigmoid(v, &m)).collect();
        gradcheck("sigmoid", &f, &x, &t, &c, &flat(&vjp), &bound)?;
        let f = |x: &[f64]| flat(&r::tanh(Array1::from(x.to_vec()).view()));
        let vjp = r::tanh_backward(r::tanh(xa.view()).view(), g.view())?;
        let bound: Vec<f64> = x.iter().map(|&v| tolerance::tanh(v, &m)).collect();
        gradcheck("tanh", &f, &x, &t, &c, &flat(&vjp), &bound)?;
        let f = |x: &[f64]| flat(&r::gelu(Array1::from(x.to_vec()).view()));
        let vjp = r::gelu_backward(xa.view(), g.view())?;
        let bound: Vec<f64> = x.iter().map(|&v| tolerance::gelu(v, &m)).collect();
        gradcheck("gelu", &f, &x, &t, &c, &flat(&vjp), &bound)?;
    }

    #[test]
    fn gradcheck_softmax_and_log_softmax((m, n, x, t, c) in rows_case(5.0)) {
        let x = x[..m * n].to_vec();
        let t = t[..m * n].to_vec();
        let xm = mat(&x, m, n);
        let g = mat(&c, m, n);
        let f = |x: &[f64]| flat(&r::softmax_rows(mat(x, m, n).view()).expect("valid"));
        let y = r::softmax_rows(xm.view())?;
        let vjp = r::softmax_rows_backward(y.view(), g.view())?;
        let bound = tolerance::softmax_rows(xm.view(), &model64());
        gradcheck("softmax_rows", &f, &x, &t, &c, &flat(&vjp), &flat(&bound))?;
        let f = |x: &[f64]| flat(&r::log_softmax_rows(mat(x, m, n).view()).expect("valid"));
        let y = r::log_softmax_rows(xm.view())?;
        let vjp = r::log_softmax_rows_backward(y.view(), g.view())?;
        let bound = tolerance::log_softmax_rows(xm.view(), &model64());
        gradcheck("log_softmax_rows", &f, &x, &t, &c, &flat(&vjp), &flat(&bound))?;
    }

    #[test]
    fn gradcheck_layer_norm((m, n, x, t, c) in rows_case(3.0), gb in vec(-2.0f64..=2.0, 18), tgb in vec(-1.0f64..=1.0, 18)) {
        let eps = 1e-5;
        let x = concat(&[&x[..m * n], &gb[..n], &gb[9..9 + n]]);
        let t = concat(&[&t[..m * n], &tgb[..n], &tgb[9..9 + n]]);
        let split = |x: &[f64]| (
            mat(&x[..m * n], m, n),
            Array1::from(x[m * n..m * n + n].to_vec()),
            Array1::from(x[m * n + n..].to_vec()),
        );
        let f = |x: &[f64]| { let (xm, ga, be) = split(x); flat(&r::layer_norm(xm.view(), ga.view(), be.view(), eps).expect("valid")) };
        let (xm, ga, be) = split(&x);
        let (gx, gg, gbeta) = r::layer_norm_backward(xm.view(), ga.view(), be.view(), eps, mat(&c, m, n).view())?;
        let bound = tolerance::layer_norm(xm.view(), ga.view(), be.view(), eps, &model64());
        gradcheck("layer_norm", &f, &x, &t, &c, &concat(&[&flat(&gx), &flat(&gg), &flat(&gbeta)]), &flat(&bound))?;
    }

    #[test]
    fn gradcheck_embedding(vocab in len1(), d in len0(), ids in vec(any::<prop::sample::Index>(), 0..12), seed in any::<u64>()) {
        let ids = Array1::from(ids.iter().map(|i| i.index(vocab)).collect::<Vec<_>>());
        let key = RandomKey { seed, step: 2, tensor_id: 0 };
        let all = mloracle::rng::init_uniform::<f64, _>(2 * vocab * d + ids.len() * d, 1.0, key)?.to_vec();
        let (x, t, c) = (all[..vocab * d].to_vec(), all[vocab * d..2 * vocab * d].to_vec(), all[2 * vocab * d..].to_vec());
        let f = |x: &[f64]| flat(&r::embedding(mat(x, vocab, d).view(), ids.view()).expect("valid"));
        let vjp = r::embedding_backward(vocab, ids.view(), mat(&c, ids.len(), d).view())?;
        gradcheck("embedding", &f, &x, &t, &c, &flat(&vjp), &vec![0.0; c.len()])?;
    }

    #[test]
    fn gradcheck_dropout((x, t, c) in elementwise_case(3.0), p in prop_oneof![Just(0.0), 0.0f64..0.9], seed in any::<u64>()) {
        let key = RandomKey { seed, step: 3, tensor_id: 1 };
        let f = |x: &[f64]| flat(&r::dropout(Array1::from(x.to_vec()).view(), p, key).expect("valid").output);
        let out = r::dropout(Array1::from(x.clone()).view(), p, key)?;
        let vjp = r::dropout_backward(Array1::from(c.clone()).view(), out.mask.view(), out.scale)?;
        let bound: Vec<f64> = out.output.iter().map(|&y| tolerance::dropout(y, &model64())).collect();
        gradcheck("dropout", &f, &x, &t, &c, &flat(&vjp), &bound)?;
    }

    #[test]
    fn gradcheck_attention((dims, x, t, c, mask) in attention_case()) {
        let (b, h, sq, _, _, dv) = dims;
        let f = |x: &[f64]| { let (q, k, v) = split_attention(x, dims); flat(&r::attention(q.view(), k.view(), v.view(), mask.view()).expect("valid")) };
        let (q, k, v) = split_attention(&x, dims);
        let g = Array4::from_shape_vec((b, h, sq, dv), c.clone()).expect("sizes");
        let (gq, gk, gv) = r::attention_backward(q.view(), k.view(), v.view(), mask.view(), g.view())?;
        let bound = tolerance::attention(q.view(), k.view(), v.view(), mask.view(), &model64());
        gradcheck("attention", &f, &x, &t, &c, &concat(&[&flat(&gq), &flat(&gk), &flat(&gv)]), &flat(&bound))?;
    }

    // ---- f32 reference vs f64 reference within the derived bounds ----

    #[test]
    fn f32_matches_f64_matmul((m, k, n, x, _, c) in matmul_case()) {
        let (x32, x64) = rounded(&x);
        let (c32, c64) = rounded(&c);
        let a32 = Array2::from_shape_vec((m, k), x32[..m * k].to_vec()).expect("sizes");
        let b32 = Array2::from_shape_vec((k, n), x32[m * k..].to_vec()).expect("sizes");
        let (a, b) = (mat(&x64[..m * k], m, k), mat(&x64[m * k..], k, n));
        let (fm, dm) = models();
        let out32 = widen(&r::matmul(a32.view(), b32.view())?);
        let out64 = r::matmul(a.view(), b.view())?;
        let bound = tolerance::pair(tolerance::matmul(a.view(), b.view(), &fm), tolerance::matmul(a.view(), b.view(), &dm));
        agree("matmul", out32.view().into_dyn(), out64.view().into_dyn(), bound.view().into_dyn())?;
        // Backward: G·Bᵀ and Aᵀ·G are matmuls.
        let g32 = Array2::from_shape_vec((m, n), c32).expect("sizes");
        let g = mat(&c64, m, n);
        let (ga32, gb32) = r::matmul_backward(a32.view(), b32.view(), g32.view())?;
        let (ga, gb) = r::matmul_backward(a.view(), b.view(), g.view())?;
        let bound_a = tolerance::pair(tolerance::matmul(g.view(), b.t(), &fm), tolerance::matmul(g.view(), b.t(), &dm));
        let bound_b = tolerance::pair(tolerance::matmul(a.t(), g.view(), &fm), tolerance::matmul(a.t(), g.view(), &dm));
        agree("matmul_backward.grad_a", widen(&ga32).view().into_dyn(), ga.view().into_dyn(), bound_a.view().into_dyn())?;
        agree("matmul_backward.grad_b", widen(&gb32).view().into_dyn(), gb.view().into_dyn(), bound_b.view().into_dyn())?;
    }

    #[test]
    fn f32_matches_f64_batched_matmul(batch in 0usize..=3, (m, k, n, _, _, _) in matmul_case(), seed in any::<u64>()) {
        let key = RandomKey { seed, step: 5, tensor_id: 0 };
        let a32 = mloracle::rng::init_normal::<f32, _>((batch, m, k), 2.0, key)?;
        let b32 = mloracle::rng::init_normal::<f32, _>((batch, k, n), 2.0, RandomKey { tensor_id: 1, ..key })?;
        let g32 = mloracle::rng::init_normal::<f32, _>((batch, m, n), 1.0, RandomKey { tensor_id: 2, ..key })?;
        let (a, b, g) = (widen(&a32), widen(&b32), widen(&g32));
        let (fm, dm) = models();
        let out32 = widen(&r::batched_matmul(a32.view(), b32.view())?);
        let out = r::batched_matmul(a.view(), b.view())?;
        let (ga32, gb32) = r::batched_matmul_backward(a32.view(), b32.view(), g32.view())?;
        let (ga, gb) = r::batched_matmul_backward(a.view(), b.view(), g.view())?;
        let (mut bound, mut bound_a, mut bound_b) = (Array3::zeros(out.dim()), Array3::zeros(a.dim()), Array3::zeros(b.dim()));
        for s in 0..batch {
            let (a_s, b_s, g_s) = (a.index_axis(Axis(0), s), b.index_axis(Axis(0), s), g.index_axis(Axis(0), s));
            bound.index_axis_mut(Axis(0), s).assign(&tolerance::pair(tolerance::matmul(a_s, b_s, &fm), tolerance::matmul(a_s, b_s, &dm)));
            bound_a.index_axis_mut(Axis(0), s).assign(&tolerance::pair(tolerance::matmul(g_s, b_s.t(), &fm), tolerance::matmul(g_s, b_s.t(), &dm)));
            bound_b.index_axis_mut(Axis(0), s).assign(&tolerance::pair(tolerance::matmul(a_s.t(), g_s, &fm), tolerance::matmul(a_s.t(), g_s, &dm)));
        }
        agree("batched_matmul", out32.view().into_dyn(), out.view().into_dyn(), bound.view().into_dyn())?;
        agree("batched_matmul_backward.grad_a", widen(&ga32).view().into_dyn(), ga.view().into_dyn(), bound_a.view().into_dyn())?;
        agree("batched_matmul_backward.grad_b", widen(&gb32).view().into_dyn(), gb.view().into_dyn(), bound_b.view().into_dyn())?;
    }

    #[test]
    fn f32_matches_f64_rows_and_reductions((m, n, x, _, c) in rows_case(3.0), axis in 0usize..=1) {
        let (x32, x64) = rounded(&x);
        let (c32, c64) = rounded(&c);
        let (fm, dm) = models();
        let xm32 = Array2::from_shape_vec((m, n), x32[..m * n].to_vec()).expect("sizes");
        let b32 = Array1::from(x32[m * n..].to_vec());
        let (xm, b) = (mat(&x64[..m * n], m, n), Array1::from(x64[m * n..].to_vec()));
        let g32 = Array2::from_shape_vec((m, n), c32).expect("sizes");
        let g = mat(&c64, m, n);
        let bound = tolerance::pair(tolerance::add_rows(xm.view(), b.view(), &fm), tolerance::add_rows(xm.view(), b.view(), &dm));
        agree("add_rows", widen(&r::add_rows(xm32.view(), b32.view())?).view().into_dyn(), r::add_rows(xm.view(), b.view())?.view().into_dyn(), bound.view().into_dyn())?;
        let bound = tolerance::pair(tolerance::mul_rows(xm.view(), b.view(), &fm), tolerance::mul_rows(xm.view(), b.view(), &dm));
        agree("mul_rows", widen(&r::mul_rows(xm32.view(), b32.view())?).view().into_dyn(), r::mul_rows(xm.view(), b.view())?.view().into_dyn(), bound.view().into_dyn())?;
        let (gx32, gb32) = r::mul_rows_backward(xm32.view(), b32.view(), g32.view())?;
        let (gx, gb) = r::mul_rows_backward(xm.view(), b.view(), g.view())?;
        let bound = tolerance::pair(tolerance::mul_rows(g.view(), b.view(), &fm), tolerance::mul_rows(g.view(), b.view(), &dm));
        agree("mul_rows_backward.grad_x", widen(&gx32).view().into_dyn(), gx.view().into_dyn(), bound.view().into_dyn())?;
        let bound = tolerance::pair(tolerance::mul_rows_backward_grad_b(xm.view(), g.view(), &fm), tolerance::mul_rows_backward_grad_b(xm.view(), g.view(), &dm));
        agree("mul_rows_backward.grad_b", widen(&gb32).view().into_dyn(), gb.view().into_dyn(), bound.view().into_dyn())?;
        let (_, gsum32) = r::add_rows_backward(g32.view());
        let (_, gsum) = r::add_rows_backward(g.view());
        let bound = tolerance::pair(tolerance::sum_axis(g.view(), 0, &fm), tolerance::sum_axis(g.view(), 0, &dm));
        agree("add_rows_backward.grad_b", widen(&gsum32).view().into_dyn(), gsum.view().into_dyn(), bound.view().into_dyn())?;
        let bound = tolerance::pair(tolerance::sum_axis(xm.view(), axis, &fm), tolerance::sum_axis(xm.view(), axis, &dm));
        agree("sum_axis", widen(&r::sum_axis(xm32.view(), axis)?).view().into_dyn(), r::sum_axis(xm.view(), axis)?.view().into_dyn(), bound.view().into_dyn())?;
        let kept = if axis == 0 { n } else { m };
        let (gv32, gv64) = rounded(&x[..kept]);
        let (gv32, gv64) = (Array1::from(gv32), Array1::from(gv64));
        let exact = Array2::<f64>::zeros((m, n));
        agree("sum_axis_backward", widen(&r::sum_axis_backward((m, n), axis, gv32.view())?).view().into_dyn(), r::sum_axis_backward((m, n), axis, gv64.view())?.view().into_dyn(), exact.view().into_dyn())?;
        if xm.len_of(Axis(axis)) > 0 {
            let back = r::mean_axis_backward((m, n), axis, gv64.view())?;
            let bound = back.mapv(|v| (fm.divide + dm.divide) * v.abs());
            agree("mean_axis_backward", widen(&r::mean_axis_backward((m, n), axis, gv32.view())?).view().into_dyn(), back.view().into_dyn(), bound.view().into_dyn())?;
            let bound = tolerance::pair(tolerance::mean_axis(xm.view(), axis, &fm), tolerance::mean_axis(xm.view(), axis, &dm));
            agree("mean_axis", widen(&r::mean_axis(xm32.view(), axis)?).view().into_dyn(), r::mean_axis(xm.view(), axis)?.view().into_dyn(), bound.view().into_dyn())?;
        }
    }

    #[test]
    fn f32_matches_f64_activations(x in vec(prop_oneof![-12.0f64..=12.0, -0.01f64..=0.01], 0..40), c in vec(-4.0f64..=4.0, 40)) {
        let (x32, x64) = rounded(&x);
        let (c32, c64) = rounded(&c[..x.len()]);
        let (fm, dm) = models();
        let (xa32, xa) = (Array1::from(x32), Array1::from(x64.clone()));
        let (g32, g) = (Array1::from(c32), Array1::from(c64.clone()));
        let pointwise = |op: &str, a32: Array1<f32>, a64: Array1<f64>, bound: &dyn Fn(usize) -> f64| {
            let b = Array1::from_shape_fn(a64.len(), bound);
            agree(op, widen(&a32).view().into_dyn(), a64.view().into_dyn(), b.view().into_dyn())
        };
        pointwise("sigmoid", r::sigmoid_array(xa32.view()), r::sigmoid_array(xa.view()), &|i| tolerance::sigmoid(x64[i], &fm) + tolerance::sigmoid(x64[i], &dm))?;
        pointwise("tanh", r::tanh(xa32.view()), r::tanh(xa.view()), &|i| tolerance::tanh(x64[i], &fm) + tolerance::tanh(x64[i], &dm))?;
        pointwise("gelu", r::gelu(xa32.view()), r::gelu(xa.view()), &|i| tolerance::gelu(x64[i], &fm) + tolerance::gelu(x64[i], &dm))?;
        pointwise("gelu_backward", r::gelu_backward(xa32.view(), g32.view())?, r::gelu_backward(xa.view(), g.view())?,
            &|i| tolerance::gelu_backward(x64[i], c64[i], &fm) + tolerance::gelu_backward(x64[i], c64[i], &dm))?;
        // The backward passes that take the output y: feed both the same (f32-rounded) y.
        let (y32, y) = rounded(&r::sigmoid_array(xa.view()).to_vec());
        pointwise("sigmoid_backward", r::sigmoid_backward(Array1::from(y32).view(), g32.view())?, r::sigmoid_backward(Array1::from(y.clone()).view(), g.view())?,
            &|i| tolerance::sigmoid_backward(y[i], c64[i], &fm) + tolerance::sigmoid_backward(y[i], c64[i], &dm))?;
        let (y32, y) = rounded(&r::tanh(xa.view()).to_vec());
        pointwise("tanh_backward", r::tanh_backward(Array1::from(y32).view(), g32.view())?, r::tanh_backward(Array1::from(y.clone()).view(), g.view())?,
            &|i| tolerance::tanh_backward(y[i], c64[i], &fm) + tolerance::tanh_backward(y[i], c64[i], &dm))?;
        // ReLU and its mask are exact (THEORY.md E1): bound 0.
        pointwise("relu", r::relu(xa32.view()), r::relu(xa.view()), &|_| 0.0)?;
        pointwise("relu_backward", r::relu_backward(xa32.view(), g32.view())?, r::relu_backward(xa.view(), g.view())?, &|_| 0.0)?;
        let slope = 0.01f32;
        let s = f64::from(slope);
        pointwise("leaky_relu", r::leaky_relu(xa32.view(), slope), r::leaky_relu(xa.view(), s),
            &|i| (fm.unit_roundoff + dm.unit_roundoff) * (x64[i] * s).abs() + fm.underflow)?;
        pointwise("leaky_relu_backward", r::leaky_relu_backward(xa32.view(), g32.view(), slope)?, r::leaky_relu_backward(xa.view(), g.view(), s)?,
            &|i| (fm.unit_roundoff + dm.unit_roundoff) * (c64[i] * s).abs() + fm.underflow)?;
    }

    #[test]
    fn f32_matches_f64_softmax_backward((m, n, x, _, c) in rows_case(8.0)) {
        let xm = mat(&x[..m * n], m, n);
        let (fm, dm) = models();
        let (g32v, g64v) = rounded(&c);
        let g32 = Array2::from_shape_vec((m, n), g32v).expect("sizes");
        let g = mat(&g64v, m, n);
        for log in [false, true] {
            let y_exact = if log { r::log_softmax_rows(xm.view())? } else { r::softmax_rows(xm.view())? };
            let (y32v, y64v) = rounded(&flat(&y_exact));
            let y32 = Array2::from_shape_vec((m, n), y32v).expect("sizes");
            let y = mat(&y64v, m, n);
            let (out32, out64, bound) = if log {
                (r::log_softmax_rows_backward(y32.view(), g32.view())?, r::log_softmax_rows_backward(y.view(), g.view())?,
                 tolerance::pair(tolerance::log_softmax_rows_backward(y.view(), g.view(), &fm), tolerance::log_softmax_rows_backward(y.view(), g.view(), &dm)))
            } else {
                (r::softmax_rows_backward(y32.view(), g32.view())?, r::softmax_rows_backward(y.view(), g.view())?,
                 tolerance::pair(tolerance::softmax_rows_backward(y.view(), g.view(), &fm), tolerance::softmax_rows_backward(y.view(), g.view(), &dm)))
            };
            let op = if log { "log_softmax_rows_backward" } else { "softmax_rows_backward" };
            agree(op, widen(&out32).view().into_dyn(), out64.view().into_dyn(), bound.view().into_dyn())?;
        }
    }

    #[test]
    fn f32_matches_f64_layer_norm((m, n, x, _, c) in rows_case(4.0), gb in vec(-2.0f64..=2.0, 18), spread in prop_oneof![Just(1.0), Just(1e-3), Just(1e2)]) {
        let eps = f64::from(1e-5f32);
        let xs: Vec<f64> = x[..m * n].iter().map(|v| v * spread).collect();
        let (x32, x64) = rounded(&xs);
        let (gb32, gb64) = rounded(&gb);
        let (fm, dm) = models();
        let xm32 = Array2::from_shape_vec((m, n), x32).expect("sizes");
        let (ga32, be32) = (Array1::from(gb32[..n].to_vec()), Array1::from(gb32[9..9 + n].to_vec()));
        let xm = mat(&x64, m, n);
        let (ga, be) = (Array1::from(gb64[..n].to_vec()), Array1::from(gb64[9..9 + n].to_vec()));
        let out32 = widen(&r::layer_norm(xm32.view(), ga32.view(), be32.view(), eps)?);
        let out = r::layer_norm(xm.view(), ga.view(), be.view(), eps)?;
        let bound = tolerance::pair(tolerance::layer_norm(xm.view(), ga.view(), be.view(), eps, &fm), tolerance::layer_norm(xm.view(), ga.view(), be.view(), eps, &dm));
        agree("layer_norm", out32.view().into_dyn(), out.view().into_dyn(), bound.view().into_dyn())?;
        let (c32, c64) = rounded(&c);
        let g32 = Array2::from_shape_vec((m, n), c32).expect("sizes");
        let g = mat(&c64, m, n);
        let (gx32, gg32, gb32) = r::layer_norm_backward(xm32.view(), ga32.view(), be32.view(), eps, g32.view())?;
        let (gx, gg, gbeta) = r::layer_norm_backward(xm.view(), ga.view(), be.view(), eps, g.view())?;
        let (bx_f, bg_f, bb_f) = tolerance::layer_norm_backward(xm.view(), ga.view(), eps, g.view(), &fm);
        let (bx_d, bg_d, bb_d) = tolerance::layer_norm_backward(xm.view(), ga.view(), eps, g.view(), &dm);
        agree("layer_norm_backward.grad_x", widen(&gx32).view().into_dyn(), gx.view().into_dyn(), tolerance::pair(bx_f, bx_d).view().into_dyn())?;
        agree("layer_norm_backward.grad_gamma", widen(&gg32).view().into_dyn(), gg.view().into_dyn(), tolerance::pair(bg_f, bg_d).view().into_dyn())?;
        agree("layer_norm_backward.grad_beta", widen(&gb32).view().into_dyn(), gbeta.view().into_dyn(), tolerance::pair(bb_f, bb_d).view().into_dyn())?;
    }

    #[test]
    fn f32_matches_f64_embedding_and_dropout(vocab in len1(), d in len0(), ids in vec(any::<prop::sample::Index>(), 0..20), p in 0.0f64..0.95, seed in any::<u64>()) {
        let ids = Array1::from(ids.iter().map(|i| i.index(vocab)).collect::<Vec<_>>());
        let key = RandomKey { seed, step: 4, tensor_id: 2 };
        let table = mloracle::rng::init_normal::<f64, _>((vocab, d), 1.0, key)?;
        let table32 = table.mapv(|v| v as f32);
        let table = widen(&table32);
        // Embedding is a gather: bitwise equal.
        let e32 = widen(&r::embedding(table32.view(), ids.view())?);
        let e = r::embedding(table.view(), ids.view())?;
        prop_assert!(e32.iter().zip(e.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "embedding gathers are exact");
        let g = mloracle::rng::init_normal::<f32, _>((ids.len(), d), 1.0, RandomKey { tensor_id: 3, ..key })?;
        let (fm, dm) = models();
        let gb32 = widen(&r::embedding_backward(vocab, ids.view(), g.view())?);
        let gb = r::embedding_backward(vocab, ids.view(), widen(&g).view())?;
        let bound = tolerance::pair(tolerance::embedding_backward(vocab, ids.view(), widen(&g).view(), &fm), tolerance::embedding_backward(vocab, ids.view(), widen(&g).view(), &dm));
        agree("embedding_backward", gb32.view().into_dyn(), gb.view().into_dyn(), bound.view().into_dyn())?;
        // Dropout: the same mask in f32 and f64, outputs within γ_2|y| per side.
        let d32 = r::dropout(table32.view(), p, key)?;
        let d64 = r::dropout(table.view(), p, key)?;
        prop_assert_eq!(&d32.mask, &d64.mask);
        let bound = d64.output.mapv(|y| tolerance::dropout(y, &fm) + tolerance::dropout(y, &dm));
        agree("dropout", widen(&d32.output).view().into_dyn(), d64.output.view().into_dyn(), bound.view().into_dyn())?;
        // Backward with g := the table: the same mask and scale, so the same bound.
        let b32 = r::dropout_backward(table32.view(), d32.mask.view(), d32.scale)?;
        let b64 = r::dropout_backward(table.view(), d64.mask.view(), d64.scale)?;
        agree("dropout_backward", widen(&b32).view().into_dyn(), b64.view().into_dyn(), bound.view().into_dyn())?;
    }

    #[test]
    fn f32_matches_f64_attention((dims, x, _, c, mask) in attention_case()) {
        let (x32, x64) = rounded(&x);
        let (q, k, v) = split_attention(&x64, dims);
        let (q32, k32, v32) = (q.mapv(|a| a as f32), k.mapv(|a| a as f32), v.mapv(|a| a as f32));
        let mask32 = mask.mapv(|a| a as f32);
        let mask = widen(&mask32);
        prop_assert_eq!(x32.len(), x64.len());
        let (fm, dm) = models();
        let out32 = widen(&r::attention(q32.view(), k32.view(), v32.view(), mask32.view())?);
        let out = r::attention(q.view(), k.view(), v.view(), mask.view())?;
        let bound = tolerance::pair(tolerance::attention(q.view(), k.view(), v.view(), mask.view(), &fm), tolerance::attention(q.view(), k.view(), v.view(), mask.view(), &dm));
        agree("attention", out32.view().into_dyn(), out.view().into_dyn(), bound.view().into_dyn())?;
        let (b, h, sq, _, _, dv) = dims;
        let (c32, c64) = rounded(&c);
        let g32 = Array4::from_shape_vec((b, h, sq, dv), c32).expect("sizes");
        let g = Array4::from_shape_vec((b, h, sq, dv), c64).expect("sizes");
        let (gq32, gk32, gv32) = r::attention_backward(q32.view(), k32.view(), v32.view(), mask32.view(), g32.view())?;
        let (gq, gk, gv) = r::attention_backward(q.view(), k.view(), v.view(), mask.view(), g.view())?;
        let (bq_f, bk_f, bv_f) = tolerance::attention_backward(q.view(), k.view(), v.view(), mask.view(), g.view(), &fm);
        let (bq_d, bk_d, bv_d) = tolerance::attention_backward(q.view(), k.view(), v.view(), mask.view(), g.view(), &dm);
        agree("attention_backward.grad_q", widen(&gq32).view().into_dyn(), gq.view().into_dyn(), tolerance::pair(bq_f, bq_d).view().into_dyn())?;
        agree("attention_backward.grad_k", widen(&gk32).view().into_dyn(), gk.view().into_dyn(), tolerance::pair(bk_f, bk_d).view().into_dyn())?;
        agree("attention_backward.grad_v", widen(&gv32).view().into_dyn(), gv.view().into_dyn(), tolerance::pair(bv_f, bv_d).view().into_dyn())?;
    }

    #[test]
    fn dropout_mask_is_reproducible_bit_for_bit(rows in 0usize..50, cols in 0usize..50, p in 0.0f64..1.0, seed in any::<u64>(), step in any::<u64>()) {
        let key = RandomKey { seed, step, tensor_id: 7 };
        let x = Array2::from_shape_fn((rows, cols), |(i, j)| (i * cols + j) as f32);
        let first = r::dropout(x.view(), p, key)?;
        let second = r::dropout(x.view(), p, key)?;
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(&first.mask, &r::dropout_mask((rows, cols), p, key)?);
    }
}

/// Dropout keeps a fraction within a binomial bound of `1 − p`: for `n` independent keeps with
/// probability `q = 1 − p` (exactly `(2^32 − ⌈p·2^32⌉)/2^32`), the count `K` has standard
/// deviation `σ = √(n q (1 − q))`; Chebyshev gives `P(|K − nq| ≥ 10σ) ≤ 1/100` for any
/// distribution, and for the binomial the normal tail makes it about `1.5e-23`. Fixed keys, so
/// the test is deterministic.
#[test]
fn dropout_keep_fraction_is_within_a_binomial_bound() {
    let n = 1usize << 20;
    for (seed, p) in [(1u64, 0.1), (2, 0.5), (3, 0.9), (4, 0.0), (5, 0.999)] {
        let key = RandomKey {
            seed,
            step: 0,
            tensor_id: 0,
        };
        let mask = r::dropout_mask(n, p, key).expect("valid p");
        let kept = mask.iter().filter(|&&m| m).count() as f64;
        let threshold = mloracle::rng::dropout_threshold(p).expect("valid p") as f64;
        let q = (4_294_967_296.0 - threshold) / 4_294_967_296.0;
        let sigma = (n as f64 * q * (1.0 - q)).sqrt();
        let deviation = (kept - n as f64 * q).abs();
        eprintln!(
            "dropout p = {p}: kept {kept} of {n}, expected {:.1}, |dev| = {deviation:.1} = {:.2}σ",
            n as f64 * q,
            deviation / sigma.max(f64::MIN_POSITIVE)
        );
        assert!(
            deviation <= 10.0 * sigma,
            "p = {p}: kept {kept}, expected {} ± 10·{sigma}",
            n as f64 * q
        );
    }
}

/// GELU at a few points in f32: within the derived bound of `x·Φ(x)` (values of `Φ` from
/// tables: Φ(1) = 0.8413447460685429, Φ(−1) = 0.15865525393145707, Φ(2) = 0.9772498680518208).
#[test]
fn gelu_f32_at_known_points() {
    let model = ArithModel::of::<f32>();
    for (x, phi) in [
        (1.0f64, 0.8413447460685429),
        (-1.0, 0.15865525393145707),
        (2.0, 0.9772498680518208),
        (0.0, 0.5),
    ] {
        let y = r::gelu(Array1::from(vec![x as f32]).view())[0];
        let expected = x * phi;
        let bound = tolerance::gelu(x, &model);
        assert!(
            (f64::from(y) - expected).abs() <= bound,
            "gelu({x}) = {y}, expected {expected} ± {bound}"
        );
    }
}

/// A row whose reference softmax is known in closed form: `softmax(ln [1, 2, 5]) = [1, 2, 5]/8`;
/// with `g = e_0`, `∂L/∂x = y_0·(e_0 − y) = [7/64, −2/64, −5/64]`.
#[test]
fn softmax_backward_closed_form() {
    let x = Array2::from_shape_vec((1, 3), vec![1f64.ln(), 2f64.ln(), 5f64.ln()]).expect("1x3");
    let y = r::softmax_rows(x.view()).expect("valid");
    let g = Array2::from_shape_vec((1, 3), vec![1.0, 0.0, 0.0]).expect("1x3");
    let d = r::softmax_rows_backward(y.view(), g.view()).expect("valid");
    for (a, e) in d.iter().zip([7.0 / 64.0, -2.0 / 64.0, -5.0 / 64.0]) {
        assert!((a - e).abs() <= 1e-15, "{a} vs {e}");
    }
    let _: ArrayView2<'_, f64> = d.view();
}

/// Every name in `OPS` is implemented by the reference in both scalar types (the probe of an
/// unknown name is an error, so a name added to `OPS` without a probe fails here too).
#[test]
fn reference_implements_every_op() {
    for &op in mloracle::backend::OPS {
        mloracle::conformance::probe::<f32>(&mloracle::Reference, op)
            .unwrap_or_else(|e| panic!("reference<f32> {op}: {e}"));
        mloracle::conformance::probe::<f64>(&mloracle::Reference, op)
            .unwrap_or_else(|e| panic!("reference<f64> {op}: {e}"));
    }
}
