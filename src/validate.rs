//! Input checks shared by every backend, so that the same bad input gives the same error
//! everywhere (error parity is itself a conformance property).

use ndarray::{ArrayView1, ArrayView2};

use crate::{Error, Result};

/// Largest length a kernel index may take: kernels index with `uint`.
pub const MAX_KERNEL_LENGTH: usize = u32::MAX as usize;

/// A row-wise op over an `rows × cols` matrix: `cols ≥ 1` (the reduced axis has no identity for
/// max/LSE/softmax), and both sizes fit a `u32` kernel index.
pub fn rows_op<T>(op: &'static str, x: ArrayView2<'_, T>) -> Result<()> {
    let (rows, cols) = x.dim();
    if cols == 0 {
        return Err(Error::EmptyInput {
            op,
            detail: format!(
                "rows of length 0 (shape [{rows}, 0]): the row reduction has no identity"
            ),
        });
    }
    fits_kernel_index(op, "row length", cols)?;
    fits_kernel_index(op, "row count", rows)?;
    fits_kernel_index(op, "element count", rows.saturating_mul(cols))?;
    Ok(())
}

/// A mean loss over `n` pairs: equal lengths and `n ≥ 1` (the mean of nothing is undefined).
pub fn mean_loss<T>(
    op: &'static str,
    logits: ArrayView1<'_, T>,
    labels: ArrayView1<'_, T>,
) -> Result<()> {
    if logits.len() != labels.len() {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "logits [{}] vs labels [{}]: lengths must be equal",
                logits.len(),
                labels.len()
            ),
        });
    }
    if logits.is_empty() {
        return Err(Error::EmptyInput {
            op,
            detail: "no elements: the mean over 0 elements is undefined".to_string(),
        });
    }
    fits_kernel_index(op, "element count", logits.len())
}

/// A finite scalar argument (for example an upstream gradient).
pub fn finite_argument(op: &'static str, name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            op,
            name,
            value: format!("{value:e}"),
            reason: "must be finite".to_string(),
        })
    }
}

/// `value ≤ u32::MAX`: kernels index with `uint`, never a silent `as u32`.
pub fn fits_kernel_index(op: &'static str, what: &'static str, value: usize) -> Result<()> {
    if value > MAX_KERNEL_LENGTH {
        return Err(Error::TooLarge {
            op,
            what,
            value: value as u128,
            limit: MAX_KERNEL_LENGTH as u128,
        });
    }
    Ok(())
}

/// Two operands of an elementwise loss: equal lengths (an empty pair is valid for a sum).
pub fn same_length(op: &'static str, first: usize, second: usize) -> Result<()> {
    if first != second {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!("operands have {first} and {second} elements: they must be equal"),
        });
    }
    fits_kernel_index(op, "element count", first)
}

/// Class-index targets of cross-entropy over `[rows, classes]` logits: one target per row,
/// each in `0..classes` or equal to `ignore_index`.
pub fn class_targets(
    op: &'static str,
    rows: usize,
    classes: usize,
    targets: ArrayView1<'_, i64>,
    ignore_index: i64,
) -> Result<()> {
    if targets.len() != rows {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "logits have {rows} rows but there are {} targets: one target per row",
                targets.len()
            ),
        });
    }
    for (row, &target) in targets.iter().enumerate() {
        let in_range = usize::try_from(target).is_ok_and(|class| class < classes);
        if target != ignore_index && !in_range {
            return Err(Error::InvalidParameter {
                op,
                name: "target",
                value: format!("{target} (row {row})"),
                reason: format!(
                    "must be a class index in 0..{classes} or ignore_index = {ignore_index}"
                ),
            });
        }
    }
    Ok(())
}
