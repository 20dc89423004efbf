//! The OpenCL enqueue-level layer ops that the device-resident training uses: Philox bits bit
//! for bit `rng.rs`, the token-major attention layout, typed errors for bad ids and buffers.

#![cfg(feature = "opencl")]

use mloracle::harness::{default_opencl, obtain};
use mloracle::opencl::{AttentionLayout, DeviceBuffer};
use mloracle::reference::Reduction;
use mloracle::rng::RandomKey;
use mloracle::{Backend, Error, OpenCl, Reference};
use ndarray::{Array2, Array4};

fn backend(test: &str) -> Option<OpenCl> {
    obtain(&format!("opencl_layers::{test}"), default_opencl())
}

#[test]
fn random_bits_match_rng_across_counter_blocks() {
    let Some(cl) = backend("random_bits_match_rng_across_counter_blocks") else {
        return;
    };
    let keys = [
        RandomKey::default(),
        RandomKey {
            seed: 0xDEAD_BEEF_0123_4567,
            step: 99,
            tensor_id: 7,
        },
        RandomKey {
            seed: u64::MAX,
            step: u64::MAX,
            tensor_id: u64::MAX,
        },
    ];
    // Offsets not multiples of 4, across the low counter word's wrap (4·2^32) and near the top.
    let offsets = [
        0u64,
        1,
        3,
        5,
        4 * (1 << 32) - 6,
        (1 << 40) + 2,
        u64::MAX - 20,
    ];
    for key in keys {
        for offset in offsets {
            for len in [1usize, 3, 4, 9, 17] {
                let device = cl.random_bits(key, offset, len).expect("random_bits");
                let host: Vec<u32> = (0..len as u64).map(|t| key.bits(offset + t)).collect();
                assert_eq!(device, host, "key {key:?}, offset {offset}, len {len}");
            }
        }
    }
}

#[test]
fn dropout_masks_match_the_reference_over_many_keys() {
    let Some(cl) = backend("dropout_masks_match_the_reference_over_many_keys") else {
        return;
    };
    for seed in 0..24u64 {
        for (rows, cols) in [(1, 1), (1, 3), (3, 5), (7, 33), (2, 257)] {
            let key = RandomKey {
                seed: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                step: seed % 5,
                tensor_id: seed % 3,
            };
            let x = Array2::from_shape_fn((rows, cols), |(i, j)| (i * cols + j) as f32 - 3.5);
            let p = [0.0, 0.1, 0.5, 0.9][seed as usize % 4];
            let device = Backend::<f32>::dropout(&cl, x.view(), p, key).expect("dropout");
            let expected = mloracle::reference::dropout_mask((rows, cols), p, key).expect("mask");
            assert_eq!(
                device.mask, expected,
                "key {key:?}, p {p}, [{rows}, {cols}]"
            );
        }
    }
}

fn to_bshd(x: &Array4<f64>) -> Vec<f64> {
    let (b, h, s, d) = x.dim();
    let mut out = Vec::with_capacity(b * h * s * d);
    for bi in 0..b {
        for si in 0..s {
            for hi in 0..h {
                for di in 0..d {
                    out.push(x[[bi, hi, si, di]]);
                }
            }
        }
    }
    out
}

#[test]
#[allow(
    clippy::float_cmp,
    reason = "same operations in the same order: bitwise"
)]
fn token_major_attention_equals_head_major_bitwise() {
    let Some(cl) = backend("token_major_attention_equals_head_major_bitwise") else {
        return;
    };
    if !cl.has_fp64() {
        return;
    }
    let (b, h, s, d) = (2, 3, 7, 5);
    let q = Array4::from_shape_fn((b, h, s, d), |(i, j, k, l)| {
        ((i + 2 * j + 3 * k + 5 * l) as f64 * 0.7).sin()
    });
    let k = Array4::from_shape_fn((b, h, s, d), |(i, j, k, l)| {
        ((3 * i + j + k + 2 * l) as f64 * 0.3).cos()
    });
    let v = Array4::from_shape_fn((b, h, s, d), |(i, j, k, l)| {
        ((i + j + 2 * k + l) as f64 * 0.9).sin()
    });
    let g = Array4::from_shape_fn((b, h, s, d), |(i, j, k, l)| {
        ((i + j + k + l) as f64 * 0.5).cos()
    });
    let mask = Array2::from_shape_fn((b, s), |(i, j)| if (i + j) % 4 == 0 { -1e9 } else { 0.0 });
    let up = |data: Vec<f64>| cl.upload_buffer(&data).expect("upload");
    let run = |layout: AttentionLayout| -> Vec<Vec<f64>> {
        let flat = |x: &Array4<f64>| match layout {
            AttentionLayout::Bhsd => x.iter().copied().collect(),
            AttentionLayout::Bshd => to_bshd(x),
        };
        let (qb, kb, vb, gb) = (up(flat(&q)), up(flat(&k)), up(flat(&v)), up(flat(&g)));
        let mb = up(mask.iter().copied().collect());
        let n = b * h * s * d;
        let zeros = |len| cl.zeros_buffer::<f64>(len).expect("allocate");
        let (out, probs) = (zeros(n), zeros(b * h * s * s));
        let (gq, gk, gv): (DeviceBuffer<f64>, DeviceBuffer<f64>, DeviceBuffer<f64>) =
            (zeros(n), zeros(n), zeros(n));
        cl.enqueue_attention(&qb, &kb, &vb, &mb, &out, &probs, b, h, s, d, layout)
            .expect("attention");
        cl.enqueue_attention_backward(
            &qb, &kb, &vb, &mb, &probs, &gb, &gq, &gk, &gv, b, h, s, d, layout,
        )
        .expect("attention_backward");
        [&out, &gq, &gk, &gv]
            .iter()
            .map(|x| cl.read_buffer(x).expect("read"))
            .collect()
    };
    let head_major = run(AttentionLayout::Bhsd);
    let token_major = run(AttentionLayout::Bshd);
    for (name, (a, t)) in ["out", "grad_q", "grad_k", "grad_v"]
        .iter()
        .zip(head_major.iter().zip(token_major.iter()))
    {
        let a4 = Array4::from_shape_vec((b, h, s, d), a.clone()).expect("shape");
        assert_eq!(
            &to_bshd(&a4),
            t,
            "{name}: Bshd result is the permuted Bhsd one"
        );
    }
    // And the head-major output is the Backend's (which the conformance suite checks).
    let backend_out =
        Backend::<f64>::attention(&cl, q.view(), k.view(), v.view(), mask.view()).expect("ok");
    assert_eq!(
        backend_out.iter().copied().collect::<Vec<_>>(),
        head_major[0]
    );
    let reference = Reference
        .attention(q.view(), k.view(), v.view(), mask.view())
        .expect("ok");
    for (x, y) in reference.iter().zip(head_major[0].iter()) {
        assert!((x - y).abs() <= 1e-12, "{x} vs {y}");
    }
}

#[test]
fn enqueue_errors_are_typed() {
    let Some(cl) = backend("enqueue_errors_are_typed") else {
        return;
    };
    let table = cl.upload_buffer(&[0.0f32; 6]).expect("upload");
    let out = cl.zeros_buffer::<f32>(4).expect("allocate");
    let ids = cl.upload_indices(&[1, 3]).expect("ids");
    assert!(matches!(
        cl.enqueue_embedding(&table, &ids, &out, 3, 2, 2),
        Err(Error::InvalidParameter { name: "ids", .. })
    ));
    let ids = cl.upload_indices(&[1, -1]).expect("ids");
    assert!(matches!(
        cl.enqueue_embedding(&table, &ids, &out, 3, 2, 2),
        Err(Error::InvalidParameter { name: "ids", .. })
    ));
    let ids = cl.upload_indices(&[1, 2]).expect("ids");
    assert!(matches!(
        cl.enqueue_embedding(&table, &ids, &out, 3, 3, 2),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        cl.upload_indices(&[]),
        Err(Error::EmptyInput { .. })
    ));
    let logits = cl.upload_buffer(&[0.0f32; 6]).expect("upload");
    let loss = cl.zeros_buffer::<f32>(1).expect("allocate");
    let targets = cl.upload_indices(&[0, 3]).expect("targets");
    assert!(matches!(
        cl.enqueue_cross_entropy(&logits, &targets, &loss, 2, 3, -100, Reduction::Mean),
        Err(Error::InvalidParameter { name: "target", .. })
    ));
    assert!(matches!(
        cl.enqueue_dropout(&logits, &loss, 0.5, RandomKey::default(), 6),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        cl.enqueue_dropout(&logits, &logits, 1.0, RandomKey::default(), 6),
        Err(Error::InvalidParameter { .. })
    ));
    // Every row ignored: the count is 0 on the device, the mean 0/0 = NaN, the sum 0.
    let targets = cl.upload_indices(&[-100, -100]).expect("targets");
    cl.enqueue_cross_entropy(&logits, &targets, &loss, 2, 3, -100, Reduction::Mean)
        .expect("valid");
    assert!(cl.read_buffer(&loss).expect("read")[0].is_nan());
    cl.enqueue_cross_entropy(&logits, &targets, &loss, 2, 3, -100, Reduction::Sum)
        .expect("valid");
    assert_eq!(cl.read_buffer(&loss).expect("read")[0], 0.0);
}
