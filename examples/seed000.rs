use mloracle::seeds::seed000::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lr: f64 = args[1].parse().unwrap();
    let steps: usize = args[2].parse().unwrap();
    let h = mloracle::invariants::label_entropy_nats(PRIOR);
    println!("H = {h}, logit = {}", (PRIOR / (1.0 - PRIOR)).ln());
    for seed in 0..8u64 {
        let (b, _) = uninformative_batch::<f32>(seed);
        let (_, r) = train(model::<f32>(seed).unwrap(), &b, lr, steps, |_| {}).unwrap();
        let bi = informative_batch::<f32>(seed);
        let (_, ri) = train(model::<f32>(seed).unwrap(), &bi, lr, steps, |_| {}).unwrap();
        let minloss = r.iter().map(|x| x.loss).fold(f64::INFINITY, f64::min);
        println!("seed {seed}: init loss {:.5} maxlogit {:.3} bias0 {:.3} | final loss-H {:.3e} min loss-H {:.3e} bias {:.4} meanlogit {:.4} maxlogit {:.4} | informative final {:.4}",
          r[0].loss, r[0].max_abs_logit, r[0].bias, r[steps].loss - h, minloss - h, r[steps].bias, r[steps].mean_logit, r[steps].max_abs_logit, ri[steps].loss);
        for k in [10, 100, 300, 1000] { if k <= steps { print!(" k{k}: L-H {:.2e} b {:.3} z {:.3};", r[k].loss - h, r[k].bias, r[k].mean_logit); } }
        println!();
    }
}
