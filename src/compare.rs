//! Elementwise comparison against per-element bounds, with a readable mismatch report.

use std::fmt;

use ndarray::{ArrayViewD, Dimension, IxDyn};

/// What is being compared: names that go into the report.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Op name (shared with the backend method and the bound fn).
    pub op: String,
    /// The backend under test, e.g. `opencl<f32>`.
    pub actual: String,
    /// The oracle, e.g. `reference<f64>`.
    pub expected: String,
}

/// Summary of a comparison that passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Number of elements compared.
    pub elements: usize,
    /// Max over elements of `|actual − expected| / bound` (0 where both are 0 or both the same
    /// non-finite value).
    pub max_error_over_bound: f64,
}

/// Why one element failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Both finite, difference above the bound.
    OutsideBound,
    /// Expected finite, actual NaN or ±∞.
    UnexpectedNonFinite,
    /// Expected NaN, actual not NaN.
    ExpectedNan,
    /// Expected ±∞, actual something else.
    ExpectedInfinity,
    /// The bound itself is undefined (γ_n with n·u ≥ 1) or NaN.
    BoundUndefined,
}

/// A failed comparison: shapes differ, or some elements disagree.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// What was compared.
    pub subject: Subject,
    /// Shape of the actual result.
    pub actual_shape: Vec<usize>,
    /// Shape of the expected result.
    pub expected_shape: Vec<usize>,
    /// Number of failing elements (0 for a shape mismatch).
    pub failures: usize,
    /// Elements compared.
    pub elements: usize,
    /// Worst element by `|diff|/bound` (non-finite disagreements rank first).
    pub worst: Option<WorstElement>,
    /// The input that feeds the worst element (the row for row ops), already formatted.
    pub input_context: String,
}

/// The worst failing element of a [`Mismatch`].
#[derive(Debug, Clone)]
pub struct WorstElement {
    /// Multi-index.
    pub index: Vec<usize>,
    /// Value from the backend under test.
    pub actual: f64,
    /// Value from the oracle.
    pub expected: f64,
    /// The bound at that element.
    pub bound: f64,
    /// What kind of failure.
    pub kind: FailureKind,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.subject;
        if self.actual_shape != self.expected_shape {
            return write!(
                f,
                "{}: {} vs {}: shape {:?} != expected shape {:?}",
                s.op, s.actual, s.expected, self.actual_shape, self.expected_shape
            );
        }
        writeln!(
            f,
            "{}: {} vs {}: {} of {} elements outside bound",
            s.op, s.actual, s.expected, self.failures, self.elements
        )?;
        if let Some(w) = &self.worst {
            let diff = (w.actual - w.expected).abs();
            let how = match w.kind {
                FailureKind::OutsideBound => format!(
                    "|diff| {diff:.3e} > bound {:.3e} ({:.2}× bound)",
                    w.bound,
                    diff / w.bound
                ),
                FailureKind::UnexpectedNonFinite => {
                    "non-finite result where the oracle is finite".to_string()
                }
                FailureKind::ExpectedNan => "oracle is NaN, backend is not".to_string(),
                FailureKind::ExpectedInfinity => "oracle is infinite, backend differs".to_string(),
                FailureKind::BoundUndefined => format!("bound undefined ({:e}): n·u ≥ 1", w.bound),
            };
            writeln!(
                f,
                "  shape {:?}; worst {:?}: actual {:.9e}, expected {:.9e}, {how}",
                self.actual_shape, w.index, w.actual, w.expected
            )?;
        }
        if !self.input_context.is_empty() {
            write!(f, "  input: {}", self.input_context)?;
        }
        Ok(())
    }
}

impl std::error::Error for Mismatch {}

/// Check one element; `Ok(ratio)` or the failure kind.
#[allow(
    clippy::float_cmp,
    reason = "infinities must match exactly (IEEE semantics)"
)]
pub fn check_element(actual: f64, expected: f64, bound: f64) -> Result<f64, FailureKind> {
    if expected.is_nan() {
        return if actual.is_nan() {
            Ok(0.0)
        } else {
            Err(FailureKind::ExpectedNan)
        };
    }
    if expected.is_infinite() {
        return if actual == expected {
            Ok(0.0)
        } else {
            Err(FailureKind::ExpectedInfinity)
        };
    }
    if !actual.is_finite() {
        return Err(FailureKind::UnexpectedNonFinite);
    }
    if !bound.is_finite() {
        return Err(FailureKind::BoundUndefined);
    }
    let diff = (actual - expected).abs();
    if diff == 0.0 {
        return Ok(0.0);
    }
    if diff <= bound {
        Ok(diff / bound)
    } else {
        Err(FailureKind::OutsideBound)
    }
}

/// Compare `actual` with `expected` element by element: `|actual − expected| ≤ bound`, NaN only
/// against NaN, ±∞ only against the same infinity. Shapes are checked first.
///
/// `input_context` formats the input behind a multi-index (for the report).
pub fn compare(
    subject: &Subject,
    actual: ArrayViewD<'_, f64>,
    expected: ArrayViewD<'_, f64>,
    bound: ArrayViewD<'_, f64>,
    input_context: &dyn Fn(&[usize]) -> String,
) -> Result<Agreement, Box<Mismatch>> {
    let mismatch = |failures, worst: Option<WorstElement>| {
        let context = worst
            .as_ref()
            .map(|w| input_context(&w.index))
            .unwrap_or_default();
        Box::new(Mismatch {
            subject: subject.clone(),
            actual_shape: actual.shape().to_vec(),
            expected_shape: expected.shape().to_vec(),
            failures,
            elements: expected.len(),
            worst,
            input_context: context,
        })
    };
    if actual.shape() != expected.shape() || bound.shape() != expected.shape() {
        return Err(mismatch(0, None));
    }
    let mut failures = 0;
    let mut worst: Option<(f64, WorstElement)> = None;
    let mut max_ratio: f64 = 0.0;
    for (index, &e) in expected.indexed_iter() {
        let a = actual[&index];
        let b = bound[&index];
        match check_element(a, e, b) {
            Ok(ratio) => max_ratio = max_ratio.max(ratio),
            Err(kind) => {
                failures += 1;
                let rank = if kind == FailureKind::OutsideBound {
                    (a - e).abs() / b
                } else {
                    f64::INFINITY
                };
                if worst.as_ref().is_none_or(|(r, _)| rank > *r) {
                    worst = Some((
                        rank,
                        WorstElement {
                            index: index_vec(&index),
                            actual: a,
                            expected: e,
                            bound: b,
                            kind,
                        },
                    ));
                }
            }
        }
    }
    if failures > 0 {
        crate::dump::record_comparison(&subject.op, actual.view(), expected.view(), bound.view());
        return Err(mismatch(failures, worst.map(|(_, w)| w)));
    }
    Ok(Agreement {
        elements: expected.len(),
        max_error_over_bound: max_ratio,
    })
}

fn index_vec(index: &IxDyn) -> Vec<usize> {
    index.slice().to_vec()
}

/// Format a slice of numbers for a report, eliding the middle of long ones.
pub fn format_values(values: impl ExactSizeIterator<Item = f64> + Clone) -> String {
    let n = values.len();
    let shown: Vec<String> = if n <= 12 {
        values.map(|v| format!("{v:.6e}")).collect()
    } else {
        let mut s: Vec<String> = values.clone().take(6).map(|v| format!("{v:.6e}")).collect();
        s.push(format!("… ({} more) …", n - 10));
        s.extend(values.skip(n - 4).map(|v| format!("{v:.6e}")));
        s
    };
    format!("[{}] (n = {n})", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn subject() -> Subject {
        Subject {
            op: "op".into(),
            actual: "a".into(),
            expected: "e".into(),
        }
    }

    #[test]
    fn nan_and_infinity_are_matched_exactly() {
        assert_eq!(check_element(f64::NAN, f64::NAN, 0.0), Ok(0.0));
        assert_eq!(
            check_element(1.0, f64::NAN, 1e9),
            Err(FailureKind::ExpectedNan)
        );
        assert_eq!(check_element(f64::INFINITY, f64::INFINITY, 0.0), Ok(0.0));
        assert_eq!(
            check_element(f64::NEG_INFINITY, f64::INFINITY, 1e300),
            Err(FailureKind::ExpectedInfinity)
        );
        assert_eq!(
            check_element(f64::INFINITY, 1.0, 1e300),
            Err(FailureKind::UnexpectedNonFinite)
        );
        assert_eq!(
            check_element(1.0, 1.0 + 1e-9, f64::INFINITY),
            Err(FailureKind::BoundUndefined)
        );
    }

    #[test]
    fn report_names_the_worst_index() {
        let actual = array![[1.0, 2.0], [3.0, 4.5]].into_dyn();
        let expected = array![[1.0, 2.0], [3.1, 4.0]].into_dyn();
        let bound = array![[0.1, 0.1], [0.2, 0.1]].into_dyn();
        let err = compare(
            &subject(),
            actual.view(),
            expected.view(),
            bound.view(),
            &|i| format!("row {}", i[0]),
        )
        .expect_err("two elements are off");
        assert_eq!(err.failures, 1); // |3.0 − 3.1| = 0.1 ≤ 0.2 passes; 0.5 > 0.1 fails
        let w = err.worst.as_ref().expect("has worst");
        assert_eq!(w.index, vec![1, 1]);
        let text = err.to_string();
        assert!(
            text.contains("[1, 1]") && text.contains("row 1") && text.contains("5.00× bound"),
            "{text}"
        );
    }

    #[test]
    fn shape_mismatch_is_reported_as_such() {
        let a = array![1.0, 2.0].into_dyn();
        let e = array![1.0].into_dyn();
        let err = compare(&subject(), a.view(), e.view(), e.view(), &|_| String::new())
            .expect_err("shapes differ");
        assert!(err.to_string().contains("shape [2] != expected shape [1]"));
    }
}
