//! Where two traces of the same run part ways: the first step at which, say, the f32 loss trace
//! of the reference and of the OpenCL backend differ by more than 1 % (relative). Before that step
//! the backends agree to within their rounding; after it, chaotic training dynamics amplify the
//! rounding differences (THEORY.md E: only bounded per-op differences are promised, not equal
//! trajectories).

/// The first index `k` at which `a[k]` and `b[k]` differ by more than `relative` (e.g. `0.01`):
/// ```text
/// |a_k − b_k| > relative · max(|a_k|, |b_k|)
/// ```
/// or at which exactly one of them is finite (both NaN, or both the same infinity, count as
/// agreeing). `None` if they agree over the common length `min(a.len(), b.len())`; a length
/// difference alone is not a divergence. Exactly equal values (including two zeros) always agree.
pub fn first_divergence(a: &[f64], b: &[f64], relative: f64) -> Option<usize> {
    a.iter().zip(b).position(|(&x, &y)| {
        if x == y || (x.is_nan() && y.is_nan()) {
            return false;
        }
        if !(x.is_finite() && y.is_finite()) {
            return true;
        }
        (x - y).abs() > relative * x.abs().max(y.abs())
    })
}

#[cfg(test)]
mod tests {
    use super::first_divergence;

    #[test]
    fn finds_the_first_relative_gap() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [1.0, 2.01, 3.1, 4.0];
        assert_eq!(first_divergence(&a, &b, 0.01), Some(2));
        assert_eq!(first_divergence(&a, &b, 0.05), None);
        assert_eq!(first_divergence(&a, &a, 0.0), None);
    }

    #[test]
    fn non_finite_values() {
        assert_eq!(first_divergence(&[f64::NAN], &[f64::NAN], 0.01), None);
        assert_eq!(
            first_divergence(&[1.0, f64::INFINITY], &[1.0, 5.0], 0.01),
            Some(1)
        );
        assert_eq!(first_divergence(&[0.0, 0.0], &[0.0, -0.0], 0.0), None);
        assert_eq!(first_divergence(&[1.0], &[], 0.01), None);
    }
}
