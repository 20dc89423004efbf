//! Facts about the OpenCL backend itself: program caching, build failures with their log,
//! device selection errors.

use mloracle::harness::{default_opencl, obtain};
use mloracle::{Backend, Error, OpenCl};
use ndarray::array;

#[test]
fn programs_are_built_once_per_scalar_type() {
    let Some(backend) = obtain(
        "opencl_device::programs_are_built_once_per_scalar_type",
        default_opencl(),
    ) else {
        return;
    };
    for _ in 0..3 {
        Backend::<f32>::log_sum_exp_rows(&backend, array![[1.0f32, 2.0]].view())
            .expect("valid input");
        Backend::<f32>::bce_with_logits_mean(
            &backend,
            array![1.0f32].view(),
            array![0.0f32].view(),
        )
        .expect("valid");
        if backend.has_fp64() {
            Backend::<f64>::softmax_rows(&backend, array![[1.0f64, 2.0]].view())
                .expect("valid input");
        }
    }
    let expected = if backend.has_fp64() { 2 } else { 1 };
    assert_eq!(
        backend.program_builds(),
        expected,
        "one program per scalar type per process"
    );
}

#[test]
fn a_failing_build_reports_its_log() {
    let Some(backend) = obtain(
        "opencl_device::a_failing_build_reports_its_log",
        default_opencl(),
    ) else {
        return;
    };
    // An undefined identifier injected through a define: the compiler must reject it.
    let error = backend
        .build_uncached::<f32>("-D ROW_WG=no_such_identifier")
        .expect_err("the broken define must fail the build");
    match &error {
        Error::ProgramBuild {
            scalar,
            options,
            log,
        } => {
            assert_eq!(*scalar, "f32");
            assert!(options.contains("no_such_identifier"));
            assert!(
                log.contains("no_such_identifier"),
                "the build log names the culprit: {log}"
            );
        }
        other => panic!("expected ProgramBuild, got {other:?}"),
    }
}

#[test]
fn an_unmatched_device_filter_is_a_typed_error() {
    match OpenCl::open(Some("no-such-device-d5e1c")) {
        Err(Error::NoDevice { wanted, .. }) => assert_eq!(wanted, "no-such-device-d5e1c"),
        Err(Error::NoPlatform { .. }) if !mloracle::harness::backend_required() => {
            mloracle::harness::skip(
                "opencl_device::an_unmatched_device_filter_is_a_typed_error",
                "no OpenCL platform",
            )
        }
        other => panic!("expected NoDevice, got {other:?}"),
    }
}

#[test]
fn f64_without_fp64_is_unsupported_not_wrong() {
    let Some(backend) = obtain(
        "opencl_device::f64_without_fp64_is_unsupported_not_wrong",
        default_opencl(),
    ) else {
        return;
    };
    let result = Backend::<f64>::log_sum_exp_rows(&backend, array![[0.0f64, 0.0]].view());
    if backend.has_fp64() {
        let lse = result.expect("fp64 device computes f64");
        assert!((lse[0] - std::f64::consts::LN_2).abs() < 1e-15);
    } else {
        assert!(matches!(
            result,
            Err(Error::Unsupported { scalar: "f64", .. })
        ));
    }
}

/// STYLE §4.9: the reference and the OpenCL backend implement every op of the trait (no
/// `Unsupported` default left), in each scalar type the device supports.
#[test]
fn reference_and_opencl_implement_every_op() {
    let Some(backend) = obtain(
        "opencl_device::reference_and_opencl_implement_every_op",
        default_opencl(),
    ) else {
        return;
    };
    for &op in mloracle::backend::OPS {
        mloracle::conformance::probe::<f32>(&mloracle::Reference, op)
            .unwrap_or_else(|e| panic!("reference<f32> {op}: {e}"));
        mloracle::conformance::probe::<f64>(&mloracle::Reference, op)
            .unwrap_or_else(|e| panic!("reference<f64> {op}: {e}"));
        mloracle::conformance::probe::<f32>(&backend, op)
            .unwrap_or_else(|e| panic!("opencl<f32> {op}: {e}"));
        if backend.has_fp64() {
            mloracle::conformance::probe::<f64>(&backend, op)
                .unwrap_or_else(|e| panic!("opencl<f64> {op}: {e}"));
        }
    }
}

/// An allocation the device cannot satisfy is a typed `TooLarge` naming the limit, not a driver
/// error or an abort.
#[test]
fn an_allocation_past_the_device_limit_is_a_typed_error() {
    let Some(backend) = obtain(
        "opencl_device::an_allocation_past_the_device_limit_is_a_typed_error",
        default_opencl(),
    ) else {
        return;
    };
    let limit = backend.max_allocation_bytes();
    assert!(limit > 0, "the device reports CL_DEVICE_MAX_MEM_ALLOC_SIZE");
    let elements = usize::try_from(limit / 4 + 1).expect("fits usize on 64-bit");
    match backend.zeros_buffer::<f32>(elements) {
        Err(Error::TooLarge {
            value,
            limit: reported,
            ..
        }) => {
            assert_eq!(reported, u128::from(limit));
            assert!(value > reported);
        }
        Err(other) => panic!("expected TooLarge, got {other:?}"),
        Ok(_) => panic!("an allocation of {elements} f32 past the {limit}-byte limit succeeded"),
    }
}
