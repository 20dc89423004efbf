//! Device-resident optimizer trajectories, multi-tensor clipping and the enqueue-level API of
//! `src/opencl/optim.rs`: state lives in device buffers across steps (as in device training),
//! and every step is checked against the reference.

#![cfg(feature = "opencl")]

use mloracle::harness::{default_opencl, obtain};
use mloracle::reference::optim::{Adam, AdamHyper, GradientMode, Sgd, SgdHyper, CLIP_NORM_OFFSET};
use mloracle::rng::RandomKey;
use mloracle::tolerance::{self, ArithModel, Tracked};
use mloracle::{conformance, Error, OpenCl, Scalar};
use ndarray::Array1;

const SEED: u64 = 0x0971_a5e5;
const STEPS: usize = 100;
/// Odd and past one work-group of 256.
const LEN: usize = 257;

fn device(test: &str) -> Option<OpenCl> {
    let backend = obtain(test, default_opencl())?;
    Some(backend)
}

/// Whether `T` runs on this device (f64 needs cl_khr_fp64; skipped loudly otherwise).
fn runs<T: Scalar>(cl: &OpenCl, test: &str) -> bool {
    if T::PROGRAM_SLOT == 1 && !cl.has_fp64() {
        mloracle::harness::skip(test, "device lacks cl_khr_fp64");
        return false;
    }
    true
}

/// Gradient `k` of the fixed sequence: entry `i` is `±10^e`, `e ∈ [−9, 1)` uniform per entry
/// and step (so some coordinates sit in the eps regime of THEORY.md C4), from the counter-based
/// generator.
fn gradient<T: Scalar>(k: usize, n: usize) -> Array1<T> {
    let key = RandomKey {
        seed: SEED,
        step: k as u64,
        tensor_id: 7,
    };
    Array1::from_shape_fn(n, |i| {
        let u = key.uniform(2 * i as u64);
        let e = -9.0 + 10.0 * key.uniform(2 * i as u64 + 1);
        T::narrow(if u < 0.5 { -1.0 } else { 1.0 } * 10f64.powf(e))
    })
}

fn initial_parameters<T: Scalar>(n: usize) -> Array1<T> {
    let key = RandomKey {
        seed: SEED,
        step: 0,
        tensor_id: 1,
    };
    Array1::from_shape_fn(n, |i| T::narrow(4.0 * key.uniform(i as u64) - 2.0))
}

fn bits<T: Scalar>(x: &[T]) -> Vec<u64> {
    x.iter().map(|v| v.widen().to_bits()).collect()
}

/// One device-resident Adam run: parameters and moments stay in device buffers; only θ is read
/// back after each step. Returns θ after every step.
fn device_adam_run<T: Scalar>(
    cl: &OpenCl,
    hyper: &AdamHyper,
    theta0: &Array1<T>,
) -> mloracle::Result<Vec<Vec<T>>> {
    let n = theta0.len();
    let theta = cl.upload_writable(theta0.as_slice().unwrap_or(&theta0.to_vec()))?;
    let m = cl.upload_writable(&vec![T::zero(); n])?;
    let v = cl.upload_writable(&vec![T::zero(); n])?;
    let mut trace = Vec::with_capacity(STEPS);
    for k in 0..STEPS {
        let g = cl.upload_buffer(&gradient::<T>(k, n).to_vec())?;
        cl.enqueue_adam_step(&theta, &g, &m, &v, hyper, k as u64 + 1, n)?;
        trace.push(cl.read_buffer(&theta)?);
    }
    Ok(trace)
}

/// 100 Adam (or AdamW, or Adam with L2 decay) steps on the device from one state, against the
/// reference run in f64 on the same (T-rounded) gradients: after every step each parameter lies
/// within the bound propagated along the trajectory — [`tolerance::adam_step_bounds`] applied
/// step after step with the previous step's bounds on `θ`, `m`, `v` as input errors, for `T`
/// plus for f64 (the EMAs shrink inherited errors by `β1`, `β2`; `θ` accumulates). Also: the
/// run is bitwise reproducible, and in f64 bitwise equal to the reference at every step.
/// Returns the max error/bound over the run.
fn adam_trajectory<T: Scalar>(cl: &OpenCl, hyper: &AdamHyper) -> f64 {
    let theta0 = initial_parameters::<T>(LEN);
    let trace = device_adam_run(cl, hyper, &theta0).expect("device run");
    let again = device_adam_run(cl, hyper, &theta0).expect("device run");
    for (k, (a, b)) in trace.iter().zip(&again).enumerate() {
        assert_eq!(
            bits(a),
            bits(b),
            "step {k}: the same run gave different bits"
        );
    }
    let mut reference64 = Adam::<f64>::new(*hyper, &[LEN]).expect("valid");
    let mut reference_t = Adam::<T>::new(*hyper, &[LEN]).expect("valid");
    let mut theta64 = vec![theta0.mapv(Scalar::widen)];
    let mut theta_t = vec![theta0.clone()];
    let (model_t, model_64) = (ArithModel::of::<T>(), ArithModel::of::<f64>());
    let exact = |x: f64| Tracked::exact(x);
    // Tracked state per coordinate for each model: (θ, m, v).
    let mut state_t: Vec<[Tracked; 3]> = theta64[0]
        .iter()
        .map(|&t| [exact(t), exact(0.0), exact(0.0)])
        .collect();
    let mut state_64 = state_t.clone();
    let mut worst: f64 = 0.0;
    let mut same_type_bitwise = true;
    for (k, device_theta) in trace.iter().enumerate() {
        let g_t = gradient::<T>(k, LEN);
        let g64 = g_t.mapv(Scalar::widen);
        reference64
            .step(&mut theta64, std::slice::from_ref(&g64))
            .expect("valid");
        reference_t
            .step(&mut theta_t, std::slice::from_ref(&g_t))
            .expect("valid");
        same_type_bitwise &= bits(device_theta) == bits(theta_t[0].as_slice().unwrap_or(&[]));
        for i in 0..LEN {
            let advance = |s: &[Tracked; 3], model: &ArithModel| {
                let b = tolerance::adam_step_bounds(
                    s[0],
                    exact(g64[i]),
                    s[1],
                    s[2],
                    hyper,
                    k as u64 + 1,
                    model,
                );
                [b.parameters, b.first_moment, b.second_moment]
            };
            state_t[i] = advance(&state_t[i], &model_t);
            state_64[i] = advance(&state_64[i], &model_64);
            let expected = theta64[0][i];
            let bound = state_t[i][0].error + state_64[i][0].error;
            let actual = device_theta[i].widen();
            let diff = (actual - expected).abs();
            assert!(
                diff <= bound,
                "{}<{}> step {}: θ[{i}] = {actual:e}, reference {expected:e}, |diff| {diff:e} > \
                 bound {bound:e}; {hyper:?}",
                cl.device_label(),
                T::NAME,
                k + 1
            );
            if diff > 0.0 {
                worst = worst.max(diff / bound);
            }
        }
    }
    if T::PROGRAM_SLOT == 1 {
        assert!(
            same_type_bitwise,
            "f64 Adam trajectory must be bitwise equal to the reference ({hyper:?})"
        );
    }
    eprintln!(
        "adam trajectory <{}> eps {:e} wd {} decoupled {}: {STEPS} steps, max error/bound {worst:.3e}, \
         bitwise equal to the same-type reference: {same_type_bitwise}",
        T::NAME,
        hyper.eps,
        hyper.weight_decay,
        hyper.decoupled
    );
    worst
}

fn adam_hypers() -> Vec<AdamHyper> {
    let mut hypers = Vec::new();
    for eps in [1e-9, 1e-8] {
        let adam = AdamHyper::new(1e-3, 0.9, 0.999, eps);
        hypers.push(adam);
        hypers.push(AdamHyper {
            weight_decay: 0.01,
            decoupled: true,
            ..adam
        });
        hypers.push(AdamHyper {
            weight_decay: 0.01,
            decoupled: false,
            beta2: 0.98,
            ..adam
        });
    }
    hypers
}

#[test]
fn adam_trajectories_stay_within_propagated_bounds_f32() {
    let test = "opencl_optim::adam_trajectories_stay_within_propagated_bounds_f32";
    let Some(cl) = device(test) else { return };
    for hyper in adam_hypers() {
        adam_trajectory::<f32>(&cl, &hyper);
    }
}

#[test]
fn adam_trajectories_stay_within_propagated_bounds_f64() {
    let test = "opencl_optim::adam_trajectories_stay_within_propagated_bounds_f64";
    let Some(cl) = device(test) else { return };
    if !runs::<f64>(&cl, test) {
        return;
    }
    for hyper in adam_hypers() {
        adam_trajectory::<f64>(&cl, &hyper);
    }
}

/// 100 SGD steps with momentum (dampening, Nesterov, weight decay) on device-resident buffers
/// are bitwise equal to the reference's `Sgd` in the same type at every step (only `+ − ×`).
fn sgd_trajectory_is_bitwise<T: Scalar>(cl: &OpenCl, hyper: &SgdHyper) {
    let theta0 = initial_parameters::<T>(LEN);
    let theta = cl.upload_writable(&theta0.to_vec()).expect("upload");
    let buffer = cl.zeros_buffer::<T>(LEN).expect("allocate");
    let mut reference = Sgd::<T>::new(*hyper, &[LEN]).expect("valid");
    let mut expected = vec![theta0];
    for k in 0..STEPS {
        let g_host = gradient::<T>(k, LEN);
        let g = cl.upload_buffer(&g_host.to_vec()).expect("upload");
        cl.enqueue_sgd_step(&theta, &g, Some(&buffer), hyper, k == 0, LEN)
            .expect("enqueue");
        reference
            .step(&mut expected, std::slice::from_ref(&g_host))
            .expect("valid");
        let actual = cl.read_buffer(&theta).expect("read");
        assert_eq!(
            bits(&actual),
            bits(&expected[0].to_vec()),
            "sgd <{}> step {}: not bitwise equal ({hyper:?})",
            T::NAME,
            k + 1
        );
    }
    if hyper.momentum != 0.0 {
        let device_buffer = cl.read_buffer(&buffer).expect("read");
        let reference_buffer = reference.states[0]
            .momentum_buffer
            .clone()
            .expect("momentum buffer");
        assert_eq!(bits(&device_buffer), bits(&reference_buffer.to_vec()));
    }
}

fn sgd_hypers() -> Vec<SgdHyper> {
    vec![
        SgdHyper::plain(0.05),
        SgdHyper {
            learning_rate: 0.01,
            momentum: 0.9,
            dampening: 0.1,
            nesterov: false,
            weight_decay: 1e-3,
        },
        SgdHyper {
            learning_rate: 0.01,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        },
    ]
}

#[test]
fn sgd_trajectories_are_bitwise_equal() {
    let test = "opencl_optim::sgd_trajectories_are_bitwise_equal";
    let Some(cl) = device(test) else { return };
    for hyper in sgd_hypers() {
        sgd_trajectory_is_bitwise::<f32>(&cl, &hyper);
        if runs::<f64>(&cl, test) {
            sgd_trajectory_is_bitwise::<f64>(&cl, &hyper);
        }
    }
}

/// Clipping over tensors of odd lengths, one longer than 64 work-groups × 256 (so its pass 1
/// uses every group and items loop): the norm and the clipped entries within
/// [`tolerance::clip_grad_norm_bounds`] of the f64 reference (via the conformance check), the
/// same bits on a second run, and bitwise unchanged gradients when clipping is certainly
/// inactive (THEORY.md D5).
fn clip_over_odd_tensors<T: Scalar>(cl: &OpenCl) {
    let lengths = [1usize, 3, 255, 257, 20_001, 65];
    let tensors: Vec<Array1<T>> = lengths
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let key = RandomKey {
                seed: SEED,
                step: 1,
                tensor_id: k as u64,
            };
            Array1::from_shape_fn(n, |i| T::narrow(2.0 * key.uniform(i as u64) - 1.0))
        })
        .collect();
    for max_norm in [1.0, 1e6] {
        let agreement = conformance::check_clip_grad_norm(cl, &tensors, max_norm)
            .unwrap_or_else(|f| panic!("{f}"));
        eprintln!(
            "clip_grad_norm <{}> over {lengths:?}, max_norm {max_norm:e}: max error/bound {:.3e}",
            T::NAME,
            agreement.max_error_over_bound
        );
        let run = || {
            let buffers: Vec<_> = tensors
                .iter()
                .map(|t| cl.upload_writable(&t.to_vec()).expect("upload"))
                .collect();
            let norm = cl.zeros_buffer::<T>(1).expect("allocate");
            let refs: Vec<_> = buffers.iter().collect();
            cl.enqueue_clip_grad_norm(&refs, max_norm, &norm)
                .expect("enqueue");
            let clipped: Vec<Vec<T>> = buffers
                .iter()
                .map(|b| cl.read_buffer(b).expect("read"))
                .collect();
            (cl.read_buffer(&norm).expect("read")[0], clipped)
        };
        let (norm, first) = run();
        let (norm_again, second) = run();
        assert_eq!(norm.widen().to_bits(), norm_again.widen().to_bits());
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(bits(a), bits(b), "clipping is not reproducible");
        }
        if tolerance::clip_grad_norm_certainly_inactive(norm.widen(), max_norm, T::UNIT_ROUNDOFF) {
            for (a, t) in first.iter().zip(&tensors) {
                assert_eq!(bits(a), bits(&t.to_vec()), "inactive clipping changed bits");
            }
        } else {
            assert!(
                norm.widen() + CLIP_NORM_OFFSET > max_norm * 0.5,
                "case is active"
            );
        }
    }
}

#[test]
fn clip_grad_norm_over_odd_tensors_past_every_group() {
    let test = "opencl_optim::clip_grad_norm_over_odd_tensors_past_every_group";
    let Some(cl) = device(test) else { return };
    clip_over_odd_tensors::<f32>(&cl);
    if runs::<f64>(&cl, test) {
        clip_over_odd_tensors::<f64>(&cl);
    }
}

/// `store_gradients` on the device is bitwise the reference's (a copy, or one rounded add).
#[test]
fn store_gradients_is_bitwise_equal() {
    let test = "opencl_optim::store_gradients_is_bitwise_equal";
    let Some(cl) = device(test) else { return };
    let old = gradient::<f32>(1, LEN);
    let fresh = gradient::<f32>(2, LEN);
    for mode in [GradientMode::Accumulate, GradientMode::ZeroEachStep] {
        let stored = cl.upload_writable(&old.to_vec()).expect("upload");
        let new = cl.upload_buffer(&fresh.to_vec()).expect("upload");
        cl.enqueue_store_gradients(&stored, &new, mode, LEN)
            .expect("enqueue");
        let mut expected = vec![old.clone()];
        mloracle::reference::optim::store_gradients(
            &mut expected,
            std::slice::from_ref(&fresh),
            mode,
        )
        .expect("valid");
        assert_eq!(
            bits(&cl.read_buffer(&stored).expect("read")),
            bits(&expected[0].to_vec()),
            "{mode:?}"
        );
    }
}

/// The std of a long vector (many work-groups, values in `[1, 2)`) within its bound. The bound
/// holds for any summation order, so it allows the mean of `n` values an error up to
/// `γ_{n−1}·mean`; with an offset far above the spread (e.g. 100 ± 0.5 at this `n` in f32) that
/// worst case exceeds the spread itself and nothing could be certified (the backward's bound is
/// then undefined), although the device's tree sum is far more accurate.
#[test]
fn std_of_a_long_offset_vector_is_within_its_bound() {
    let test = "opencl_optim::std_of_a_long_offset_vector_is_within_its_bound";
    let Some(cl) = device(test) else { return };
    let key = RandomKey {
        seed: SEED,
        step: 3,
        tensor_id: 0,
    };
    let values = Array1::from_shape_fn(200_001, |i| 1.0f32 + key.uniform_f32(i as u64));
    for correction in [0, 1] {
        let forward = conformance::check_std_corrected(&cl, values.view(), correction)
            .unwrap_or_else(|f| panic!("{f}"));
        let backward =
            conformance::check_std_corrected_backward(&cl, values.view(), correction, -3.0)
                .unwrap_or_else(|f| panic!("{f}"));
        eprintln!(
            "std n = 200001 in [1, 2), c = {correction}: error/bound {:.3e} (forward), {:.3e} (backward)",
            forward.max_error_over_bound, backward.max_error_over_bound
        );
    }
}

/// The enqueue layer returns typed errors, never panics: short buffers, a missing momentum
/// buffer, step 0, an invalid max_norm.
#[test]
fn enqueue_errors_are_typed() {
    let test = "opencl_optim::enqueue_errors_are_typed";
    let Some(cl) = device(test) else { return };
    let four = cl.zeros_buffer::<f32>(4).expect("allocate");
    let three = cl.zeros_buffer::<f32>(3).expect("allocate");
    let momentum = SgdHyper {
        momentum: 0.9,
        ..SgdHyper::plain(0.1)
    };
    assert!(matches!(
        cl.enqueue_sgd_step(&four, &three, None, &SgdHyper::plain(0.1), true, 4),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        cl.enqueue_sgd_step(&four, &four, None, &momentum, true, 4),
        Err(Error::InvalidParameter { .. })
    ));
    let adam = AdamHyper::new(1e-3, 0.9, 0.999, 1e-8);
    assert!(matches!(
        cl.enqueue_adam_step(&four, &four, &four, &four, &adam, 0, 4),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        cl.enqueue_adam_step(&four, &four, &three, &four, &adam, 1, 4),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        cl.enqueue_clip_grad_norm(&[&four], -1.0, &three),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        cl.enqueue_std_corrected(&four, 4, &three, 4),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        cl.enqueue_store_gradients(&four, &three, GradientMode::Accumulate, 4),
        Err(Error::ShapeMismatch { .. })
    ));
}
