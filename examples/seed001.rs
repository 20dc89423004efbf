use mloracle::reference::Reduction;
use mloracle::seeds::seed001::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lr: f64 = args[1].parse().unwrap();
    let red = if args[2] == "sum" { Reduction::Sum } else { Reduction::Mean };
    let steps: usize = args[3].parse().unwrap();
    for seed in 0..8u64 {
        let m = model::<f32>(red, seed).unwrap();
        let b = batch::<f32>(seed);
        let (_, recs) = train(m, &b, lr, steps, |_| {}).unwrap();
        let first_all_dead = recs.iter().position(|r| r.dead.iter().any(|&d| d == 1.0));
        for k in [0, 1, 2, 5, 10, 50, 100, steps / 2, steps] {
            let r = &recs[k];
            println!("seed {seed} k {k} loss {:.5} dead {:?} spread {:.3e}", r.loss, r.dead, r.spread);
        }
        println!("seed {seed} first all-dead layer at {first_all_dead:?}");
    }
}
