//! The device-level linear-algebra, elementwise and LayerNorm launches of the OpenCL backend
//! (`OpenCl::enqueue_*`, used by device-resident training): all four transposition cases of
//! `enqueue_matmul` bitwise against the reference, a forced `TILE=2` build bitwise against the
//! default build, the vector helpers on hand cases, and their typed errors.

use mloracle::harness::{default_opencl, obtain, run_property};
use mloracle::opencl::DeviceBuffer;
use mloracle::proptest::test_runner::{TestCaseError, TestCaseResult};
use mloracle::{strategy, Backend, Error, OpenCl, Reference, Scalar};
use ndarray::{Array, Array2, Dimension};

/// Same shape and bits everywhere (any NaN equals any NaN).
fn same_bits<T: Scalar, D: Dimension>(
    what: &str,
    actual: &Array<T, D>,
    expected: &Array<T, D>,
) -> TestCaseResult {
    if actual.shape() != expected.shape() {
        return Err(TestCaseError::fail(format!(
            "{what}: shape {:?} != {:?}",
            actual.shape(),
            expected.shape()
        )));
    }
    for ((index, a), e) in actual.indexed_iter().zip(expected.iter()) {
        let (a, e) = (a.widen(), e.widen());
        if a.to_bits() != e.to_bits() && !(a.is_nan() && e.is_nan()) {
            return Err(TestCaseError::fail(format!(
                "{what}<{}>: not bitwise equal at {index:?}: {a:e} vs {e:e}",
                T::NAME
            )));
        }
    }
    Ok(())
}

fn device_err(e: Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// A device copy of `x` stored row-major (a 1-element zero buffer for an empty `x`, which the
/// kernels never read).
fn upload<T: Scalar>(backend: &OpenCl, x: &Array2<T>) -> Result<DeviceBuffer<T>, Error> {
    if x.is_empty() {
        return backend.zeros_buffer(1);
    }
    let data: Vec<T> = x.iter().copied().collect();
    backend.upload_buffer(&data)
}

/// `op(A)·op(B)` through `enqueue_matmul` with the operands stored transposed where the flags
/// say, for each of the four cases, bitwise equal to `Reference::matmul(a, b)`.
fn all_transpositions<T: Scalar>(backend: &OpenCl, a: &Array2<T>, b: &Array2<T>) -> TestCaseResult {
    let ((m, k), n) = (a.dim(), b.ncols());
    let expected = Reference.matmul(a.view(), b.view()).map_err(device_err)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    for (transpose_a, transpose_b) in [(false, false), (true, false), (false, true), (true, true)] {
        let stored_a = if transpose_a {
            a.t().to_owned()
        } else {
            a.clone()
        };
        let stored_b = if transpose_b {
            b.t().to_owned()
        } else {
            b.clone()
        };
        let a_buffer = upload(backend, &stored_a).map_err(device_err)?;
        let b_buffer = upload(backend, &stored_b).map_err(device_err)?;
        let c = backend.zeros_buffer::<T>(m * n).map_err(device_err)?;
        backend
            .enqueue_matmul(&a_buffer, &b_buffer, &c, m, k, n, transpose_a, transpose_b)
            .map_err(device_err)?;
        let actual = Array2::from_shape_vec((m, n), backend.read_buffer(&c).map_err(device_err)?)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        same_bits(
            &format!("enqueue_matmul (transpose_a {transpose_a}, transpose_b {transpose_b})"),
            &actual,
            &expected,
        )?;
    }
    Ok(())
}

#[test]
fn enqueue_matmul_is_bitwise_equal_in_all_four_transposition_cases_f32() {
    run_property::<f32, _, _>(
        "opencl_linalg::enqueue_matmul_is_bitwise_equal_in_all_four_transposition_cases_f32",
        file!(),
        default_opencl(),
        &["matmul"],
        strategy::matmul_operands::<f32>(),
        |b, (x, y)| all_transpositions(b, &x, &y),
    );
}

#[test]
fn enqueue_matmul_is_bitwise_equal_in_all_four_transposition_cases_f64() {
    run_property::<f64, _, _>(
        "opencl_linalg::enqueue_matmul_is_bitwise_equal_in_all_four_transposition_cases_f64",
        file!(),
        default_opencl(),
        &["matmul"],
        strategy::matmul_operands::<f64>(),
        |b, (x, y)| all_transpositions(b, &x, &y),
    );
}

/// A build with `TILE=2` (every shape of the strategies crosses many tile boundaries, and the
/// last tile is partial for odd sizes) gives the same bits as the default build, for the
/// products, their VJP with transposed operands, and the tiled transpose.
#[test]
fn a_forced_tile_of_two_gives_the_default_builds_bits() {
    let test = "opencl_linalg::a_forced_tile_of_two_gives_the_default_builds_bits";
    let Some(default) = obtain(test, default_opencl()) else {
        return;
    };
    let small = default
        .with_matmul_tile(2)
        .expect("a 2 × 2 tile fits every device");
    assert_eq!(small.tile(), 2);
    assert_ne!(
        default.tile(),
        2,
        "the default tile must differ for this test to mean anything"
    );
    run_property::<f32, _, _>(
        test,
        file!(),
        Ok(small),
        &["matmul_backward", "batched_matmul", "transpose"],
        (
            strategy::matmul_backward_operands::<f32>(),
            strategy::batched_matmul_operands::<f32>(),
            strategy::transpose_input::<f32>(),
        ),
        |small, ((a, b, g), (a3, b3), x)| {
            let (ga, gb) = small
                .matmul_backward(a.view(), b.view(), g.view())
                .map_err(device_err)?;
            let (ea, eb) = default
                .matmul_backward(a.view(), b.view(), g.view())
                .map_err(device_err)?;
            same_bits("matmul_backward grad_a, TILE=2", &ga, &ea)?;
            same_bits("matmul_backward grad_b, TILE=2", &gb, &eb)?;
            let c = small.matmul(a.view(), b.view()).map_err(device_err)?;
            let e = default.matmul(a.view(), b.view()).map_err(device_err)?;
            same_bits("matmul, TILE=2", &c, &e)?;
            let c3 = small
                .batched_matmul(a3.view(), b3.view())
                .map_err(device_err)?;
            let e3 = default
                .batched_matmul(a3.view(), b3.view())
                .map_err(device_err)?;
            same_bits("batched_matmul, TILE=2", &c3, &e3)?;
            let t = Backend::<f32>::transpose(small, x.view()).map_err(device_err)?;
            let e = Backend::<f32>::transpose(&default, x.view()).map_err(device_err)?;
            same_bits("transpose, TILE=2", &t, &e)
        },
    );
}

#[test]
fn a_tile_that_does_not_fit_a_work_group_is_a_typed_error() {
    let test = "opencl_linalg::a_tile_that_does_not_fit_a_work_group_is_a_typed_error";
    let Some(backend) = obtain(test, default_opencl()) else {
        return;
    };
    for tile in [0, 1 << 20] {
        assert!(matches!(
            backend.with_matmul_tile(tile),
            Err(Error::InvalidParameter { name: "tile", .. })
        ));
    }
}

/// The vector helpers on exact small-integer cases (every result is representable, so
/// equality is exact), including in-place accumulation `a ← a + b`.
#[test]
#[allow(
    clippy::float_cmp,
    reason = "small integers and halves: every operation is exact"
)]
fn vector_helpers_by_hand() {
    let test = "opencl_linalg::vector_helpers_by_hand";
    let Some(backend) = obtain(test, default_opencl()) else {
        return;
    };
    let len = 300; // past one work-group of 256, not a multiple of it
    let a_host: Vec<f32> = (0..len).map(|i| i as f32).collect();
    let b_host: Vec<f32> = (0..len).map(|i| (2 * i) as f32).collect();
    let a = backend.upload_buffer(&a_host).expect("upload");
    let b = backend.upload_buffer(&b_host).expect("upload");
    backend.enqueue_add(&a, &b, &a, len).expect("in-place add");
    let sum = backend.read_buffer(&a).expect("read");
    assert!(sum.iter().enumerate().all(|(i, &v)| v == (3 * i) as f32));
    let out = backend.zeros_buffer::<f32>(len).expect("allocate");
    backend.enqueue_scale(&a, 0.5, &out, len).expect("scale");
    let half = backend.read_buffer(&out).expect("read");
    assert!(half.iter().enumerate().all(|(i, &v)| v == 1.5 * i as f32));
    backend.enqueue_fill(&out, -7.0, len - 1).expect("fill");
    let filled = backend.read_buffer(&out).expect("read");
    assert!(filled[..len - 1].iter().all(|&v| v == -7.0));
    assert_eq!(
        filled[len - 1],
        1.5 * (len - 1) as f32,
        "past len is untouched"
    );
    backend.enqueue_copy(&b, &out, len).expect("copy");
    assert_eq!(backend.read_buffer(&out).expect("read"), b_host);
    let relu_out = backend.zeros_buffer::<f32>(4).expect("allocate");
    let x = backend
        .upload_buffer(&[-1.0f32, 0.0, 2.0, -0.0])
        .expect("upload");
    backend
        .enqueue_elementwise("relu", &[&x], &relu_out, &[], 4)
        .expect("relu");
    assert_eq!(
        backend.read_buffer(&relu_out).expect("read"),
        vec![0.0, 0.0, 2.0, 0.0]
    );
    // sum and mean over both axes of [[1, 2, 3], [4, 5, 6]], and their broadcasts.
    let x = backend
        .upload_buffer(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])
        .expect("upload");
    let columns = backend.zeros_buffer::<f32>(3).expect("allocate");
    let rows = backend.zeros_buffer::<f32>(2).expect("allocate");
    backend
        .enqueue_sum_axis(&x, &columns, 2, 3, 0)
        .expect("sum");
    backend.enqueue_mean_axis(&x, &rows, 2, 3, 1).expect("mean");
    assert_eq!(
        backend.read_buffer(&columns).expect("read"),
        vec![5.0, 7.0, 9.0]
    );
    assert_eq!(backend.read_buffer(&rows).expect("read"), vec![2.0, 5.0]);
    let grad = backend.zeros_buffer::<f32>(6).expect("allocate");
    backend
        .enqueue_mean_axis_backward(&rows, &grad, 2, 3, 1)
        .expect("broadcast");
    // g = [2, 5] over rows of 3: 2/3 and 5/3 rounded (division within 2.5 ulp, so compare
    // against the exact quotient with that slack).
    let g = backend.read_buffer(&grad).expect("read");
    for (i, &v) in g.iter().enumerate() {
        let exact = if i < 3 { 2.0 / 3.0 } else { 5.0 / 3.0 };
        assert!((f64::from(v) - exact).abs() <= 2.5 * f64::from(f32::EPSILON) * exact);
    }
}

/// Length, aliasing and kernel-name errors of the enqueue methods are typed, never panics.
#[test]
fn enqueue_errors_are_typed() {
    let test = "opencl_linalg::enqueue_errors_are_typed";
    let Some(backend) = obtain(test, default_opencl()) else {
        return;
    };
    let four = backend.zeros_buffer::<f32>(4).expect("allocate");
    let six = backend.zeros_buffer::<f32>(6).expect("allocate");
    // [2, 3]·[3, 2] needs 6-element operands.
    assert!(matches!(
        backend.enqueue_matmul(&four, &six, &six, 2, 3, 2, false, false),
        Err(Error::ShapeMismatch { .. }) | Err(Error::InvalidParameter { .. })
    ));
    let other = backend.zeros_buffer::<f32>(6).expect("allocate");
    assert!(matches!(
        backend.enqueue_matmul(&four, &six, &other, 2, 3, 2, false, false),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        backend.enqueue_transpose(&six, &six, 2, 3),
        Err(Error::InvalidParameter { name: "output", .. })
    ));
    assert!(matches!(
        backend.enqueue_copy(&six, &six, 6),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        backend.enqueue_elementwise("no_such_kernel", &[&four], &six, &[], 4),
        Err(Error::InvalidParameter {
            name: "kernel_name",
            ..
        })
    ));
    assert!(matches!(
        backend.enqueue_elementwise("leaky_relu", &[&four], &six, &[], 4),
        Err(Error::InvalidParameter { name: "inputs", .. })
    ));
    assert!(matches!(
        backend.enqueue_sum_axis(&six, &four, 2, 3, 2),
        Err(Error::InvalidParameter { name: "axis", .. })
    ));
    assert!(matches!(
        backend.enqueue_mean_axis(&six, &four, 0, 3, 0),
        Err(Error::EmptyInput { .. })
    ));
    assert!(matches!(
        backend.enqueue_add(&four, &six, &six, 6),
        Err(Error::ShapeMismatch { .. })
    ));
}
