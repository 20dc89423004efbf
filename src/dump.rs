//! Dumping a failing case's tensors as `.npy` files, for loading in numpy.
//!
//! When [`DUMP_DIR_ENV`] names a directory, a failing property of [`crate::backend_tests!`]
//! writes its minimized case there: `<dir>/<suite>__<test>/<name>.npy` for every input
//! (`x`, `gamma`, ...), the backend's result (`actual`), the f64 reference (`expected`) and the
//! per-element bound (`bound`). Inputs and `actual` keep the backend's dtype (`<f4` or `<f8`);
//! `expected` and `bound` are f64.
//!
//! ```text
//! MLORACLE_DUMP_DIR=/tmp/fail cargo test my_backend_f32::softmax
//! python -c "import numpy as np; print(np.load('/tmp/fail/my_backend_f32__softmax_rows_matches_reference/x.npy'))"
//! ```
//!
//! The format is NPY version 1.0, written by hand: the magic `\x93NUMPY`, version `1 0`, a
//! little-endian `u16` header length, the header dict `{'descr': '<f4', 'fortran_order': False,
//! 'shape': (m, n), }` padded with spaces and a newline to a multiple of 64 bytes, then the data
//! in C order.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// Environment variable naming the directory that failing cases are written to.
pub const DUMP_DIR_ENV: &str = "MLORACLE_DUMP_DIR";

/// The element type of a dumped tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `<f4`.
    F32,
    /// `<f8`.
    F64,
}

impl Dtype {
    /// The dtype of a scalar type's name (`"f32"` or anything else: f64).
    pub fn of_name(name: &str) -> Self {
        if name == "f32" {
            Dtype::F32
        } else {
            Dtype::F64
        }
    }

    fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
        }
    }
}

/// One named tensor of a failing case (values widened to f64; `dtype` is what is written).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// File stem, e.g. `x`, `actual`.
    pub name: String,
    /// Element type written to the file.
    pub dtype: Dtype,
    /// The values.
    pub values: ArrayD<f64>,
}

thread_local! {
    static LAST_FAILURE: RefCell<Option<Vec<NamedTensor>>> = const { RefCell::new(None) };
    static INPUTS: RefCell<Option<(String, Vec<NamedTensor>)>> = const { RefCell::new(None) };
}

/// Whether [`DUMP_DIR_ENV`] is set (and not empty).
pub fn enabled() -> bool {
    std::env::var_os(DUMP_DIR_ENV).is_some_and(|v| !v.is_empty())
}

/// Called by each conformance check with its inputs (widened to f64) before comparing; kept
/// only while [`enabled`], and attached to the failure that [`record_comparison`] records for
/// an op whose name starts with `op`.
pub fn inputs<T: crate::Scalar>(op: &str, tensors: &[(&str, ArrayViewD<'_, f64>)]) {
    if !enabled() {
        return;
    }
    let dtype = Dtype::of_name(T::NAME);
    let kept = tensors
        .iter()
        .map(|(n, v)| named(n, dtype, v.view()))
        .collect();
    INPUTS.with(|cell| *cell.borrow_mut() = Some((op.to_string(), kept)));
}

/// Called by [`crate::compare::compare`] on a failure: record the inputs of `op` (when the
/// check gave them) with `actual` (in the inputs' dtype), `expected` and `bound` (f64).
pub fn record_comparison(
    op: &str,
    actual: ArrayViewD<'_, f64>,
    expected: ArrayViewD<'_, f64>,
    bound: ArrayViewD<'_, f64>,
) {
    if !enabled() {
        return;
    }
    let (dtype, mut tensors) = INPUTS
        .with(|cell| cell.borrow().clone())
        .filter(|(for_op, _)| op.starts_with(for_op.as_str()))
        .map_or((Dtype::F64, Vec::new()), |(_, t)| {
            (t.first().map_or(Dtype::F64, |n| n.dtype), t)
        });
    tensors.push(named("actual", dtype, actual));
    tensors.push(named("expected", Dtype::F64, expected));
    tensors.push(named("bound", Dtype::F64, bound));
    record(tensors);
}

/// Remember the tensors of a failing check on this thread (the last one wins: after proptest
/// shrinks, the last failing call is the minimal case).
pub fn record(tensors: Vec<NamedTensor>) {
    LAST_FAILURE.with(|cell| *cell.borrow_mut() = Some(tensors));
}

/// Forget what [`record`] kept.
pub fn clear() {
    LAST_FAILURE.with(|cell| *cell.borrow_mut() = None);
}

/// Take what [`record`] kept last on this thread.
pub fn take_last() -> Option<Vec<NamedTensor>> {
    LAST_FAILURE.with(|cell| cell.borrow_mut().take())
}

/// A tensor for [`record`].
pub fn named(name: &str, dtype: Dtype, values: ArrayViewD<'_, f64>) -> NamedTensor {
    NamedTensor {
        name: name.to_string(),
        dtype,
        values: values.to_owned(),
    }
}

/// The bytes of an NPY v1.0 file holding `values` as `dtype` (C order).
pub fn npy_bytes(values: ArrayViewD<'_, f64>, dtype: Dtype) -> Vec<u8> {
    let shape = match values.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        dtype.descr()
    );
    // magic (6) + version (2) + header length (2) + header, padded so the data is 64-aligned.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    // The header is ASCII and shorter than 64 KiB (a shape of at most a few dims).
    let len = u16::try_from(header.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in values.iter() {
        match dtype {
            Dtype::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            Dtype::F64 => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    out
}

/// Why an NPY file could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an NPY v1.0 file of <f4/<f8 in C order: {0}")]
pub struct NpyError(pub String);

/// Parse an NPY v1.0 file as written by [`npy_bytes`] (`<f4` or `<f8`, C order): the values
/// widened to f64 and the dtype.
pub fn parse_npy(bytes: &[u8]) -> Result<(ArrayD<f64>, Dtype), NpyError> {
    let bad = |what: &str| NpyError(what.to_string());
    if bytes.len() < 10 || &bytes[..8] != b"\x93NUMPY\x01\x00" {
        return Err(bad("magic or version"));
    }
    let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = bytes
        .get(10..10 + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("header"))?;
    let dtype = if header.contains("'descr': '<f4'") {
        Dtype::F32
    } else if header.contains("'descr': '<f8'") {
        Dtype::F64
    } else {
        return Err(bad("descr"));
    };
    if !header.contains("'fortran_order': False") {
        return Err(bad("fortran_order"));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| bad("shape"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| bad("shape entry")))
        .collect::<Result<Vec<_>, _>>()?;
    let data = &bytes[10 + len..];
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| bad("shape overflows usize"))?;
    let values: Vec<f64> = match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
    };
    if values.len() != count {
        return Err(bad("data length"));
    }
    ArrayD::from_shape_vec(IxDyn(&shape), values)
        .map(|a| (a, dtype))
        .map_err(|e| NpyError(e.to_string()))
}

/// Write `tensors` as `<dir>/<case>/<name>.npy`; returns the case directory.
pub fn write_case(dir: &Path, case: &str, tensors: &[NamedTensor]) -> std::io::Result<PathBuf> {
    let case_dir = dir.join(case.replace("::", "__"));
    std::fs::create_dir_all(&case_dir)?;
    for t in tensors {
        let mut file = std::fs::File::create(case_dir.join(format!("{}.npy", t.name)))?;
        file.write_all(&npy_bytes(t.values.view(), t.dtype))?;
    }
    Ok(case_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn npy_round_trips_with_an_aligned_header() {
        let a = array![[1.5, -2.0, 3.25], [0.0, 1e-3, -7.0]].into_dyn();
        for dtype in [Dtype::F32, Dtype::F64] {
            let bytes = npy_bytes(a.view(), dtype);
            let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
            assert_eq!((10 + len) % 64, 0);
            assert_eq!(bytes[10 + len - 1], b'\n');
            let (back, d) = parse_npy(&bytes).expect("parses");
            assert_eq!(d, dtype);
            assert_eq!(back.shape(), &[2, 3]);
            assert_eq!(
                back[[1, 1]],
                if dtype == Dtype::F32 {
                    f64::from(1e-3f32)
                } else {
                    1e-3
                }
            );
        }
        let header = String::from_utf8_lossy(&npy_bytes(a.view(), Dtype::F32)[10..]).to_string();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        let scalar = ndarray::arr0(2.0).into_dyn();
        let bytes = npy_bytes(scalar.view(), Dtype::F64);
        assert!(String::from_utf8_lossy(&bytes).contains("'shape': (), "));
        assert_eq!(parse_npy(&bytes).expect("scalar").0.len(), 1);
        let vector = array![1.0, 2.0].into_dyn();
        assert!(String::from_utf8_lossy(&npy_bytes(vector.view(), Dtype::F64)).contains("(2,)"));
    }

    #[test]
    fn truncated_files_are_errors() {
        let a = array![1.0, 2.0].into_dyn();
        let bytes = npy_bytes(a.view(), Dtype::F64);
        assert!(parse_npy(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse_npy(b"PK\x03\x04").is_err());
    }
}
