//! Test-running support: obtaining a backend (or skipping loudly), probing for unsupported ops,
//! proptest configuration, and running a property with a readable failure.
//!
//! Skips are never silent: each is written to the process's real standard error (bypassing the
//! test harness's capture) as `SKIPPED <test>: <reason>` and, when [`SKIP_LOG_ENV`] names a
//! file, appended to it so that `make test` can print the count.

use std::io::Write;
use std::sync::Mutex;

use proptest::strategy::Strategy;
use proptest::test_runner::{
    Config, FileFailurePersistence, TestCaseResult, TestError, TestRunner,
};

use crate::{conformance, Backend, Error, Result, Scalar};

/// When set to `1`, a backend that cannot be created (no OpenCL platform or device) fails the
/// test instead of skipping it. CI sets it.
pub const REQUIRE_OPENCL_ENV: &str = "MLORACLE_REQUIRE_OPENCL";

/// When set, every skip is appended to this file, one `SKIPPED …` line each.
pub const SKIP_LOG_ENV: &str = "MLORACLE_SKIP_LOG";

/// Whether [`REQUIRE_OPENCL_ENV`] is `1` (or `true`).
pub fn backend_required() -> bool {
    std::env::var(REQUIRE_OPENCL_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Write one line to the process's standard error directly (not captured by `cargo test`).
pub fn announce(line: &str) {
    let mut err = std::io::stderr().lock();
    // A failed write to stderr leaves nothing better to do; the test result still stands.
    let _ = writeln!(err, "{line}");
}

static SKIP_LOG_LOCK: Mutex<()> = Mutex::new(());

/// Report `test` as skipped for `reason`, loudly (see the module doc).
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIPPED {test}: {reason}");
    announce(&line);
    if let Ok(path) = std::env::var(SKIP_LOG_ENV) {
        let _guard = SKIP_LOG_LOCK.lock();
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// Turn the result of creating a backend into the backend, or a loud skip (`None`).
///
/// # Panics
/// When [`REQUIRE_OPENCL_ENV`] is set and the backend could not be created: that is the test
/// failure CI needs.
#[allow(
    clippy::panic,
    reason = "failing the test is the purpose when a backend is required"
)]
pub fn obtain<B>(test: &str, made: Result<B>) -> Option<B> {
    match made {
        Ok(backend) => Some(backend),
        Err(error) if backend_required() => {
            panic!("{test}: {REQUIRE_OPENCL_ENV}=1 but the backend is unavailable: {error}")
        }
        Err(error) => {
            skip(test, &format!("backend unavailable: {error}"));
            None
        }
    }
}

/// The ops among `ops` that `backend` does not support (probed on a small valid input), with
/// the error it gave.
pub fn unsupported_ops<T: Scalar>(
    backend: &impl Backend<T>,
    ops: &[&'static str],
) -> Vec<(&'static str, Error)> {
    ops.iter()
        .filter_map(|&op| match conformance::probe(backend, op) {
            Err(e) if e.is_unsupported() => Some((op, e)),
            _ => None,
        })
        .collect()
}

/// Proptest configuration for the suite: proptest's default (which honours `PROPTEST_CASES`,
/// 256 cases unless set) divided by 4, as backend and device tests run whole ops per case.
/// Failing seeds persist next to `source_file` as `<file>.proptest-regressions`.
pub fn config_for_backend_tests(source_file: &'static str) -> Config {
    let default = Config::default();
    Config {
        cases: (default.cases / 4).max(1),
        source_file: Some(source_file),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..default
    }
}

/// Truncate a long `Debug` dump for a failure message.
fn truncated(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} more bytes)", &text[..cut], text.len() - cut)
}

/// Run `check` as a property over `strategy` on the backend `made`, after skipping loudly if the
/// backend is unavailable or any of `ops` is unsupported.
///
/// # Panics
/// On a failing case (with the minimized input and how to rerun it), as `proptest!` does.
#[allow(clippy::panic, reason = "a failing property must fail the test")]
pub fn run_property<T, B, S>(
    test: &str,
    source_file: &'static str,
    made: Result<B>,
    ops: &[&'static str],
    strategy: S,
    check: impl Fn(&B, S::Value) -> TestCaseResult,
) where
    T: Scalar,
    B: Backend<T>,
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let Some(backend) = obtain(test, made) else {
        return;
    };
    let missing = unsupported_ops(&backend, ops);
    if !missing.is_empty() {
        let reasons: Vec<String> = missing.iter().map(|(op, e)| format!("{op}: {e}")).collect();
        skip(test, &format!("unsupported: {}", reasons.join("; ")));
        return;
    }
    let mut runner = TestRunner::new(config_for_backend_tests(source_file));
    match runner.run(&strategy, |value| check(&backend, value)) {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => panic!(
            "{test} failed: {reason}\nminimal failing input: {}\nrerun: cargo test --release {test} \
             (the seed is persisted next to {source_file})",
            truncated(format!("{value:?}"), 4000)
        ),
        Err(TestError::Abort(reason)) => panic!("{test} aborted: {reason}"),
    }
}

/// Run a check that takes no generated input (error parity, fixed cases), with the same skip
/// rules as [`run_property`].
///
/// # Panics
/// When the check fails.
#[allow(clippy::panic, reason = "a failing check must fail the test")]
pub fn run_fixed<T, B, E: std::fmt::Display>(
    test: &str,
    made: Result<B>,
    ops: &[&'static str],
    check: impl Fn(&B) -> std::result::Result<(), E>,
) where
    T: Scalar,
    B: Backend<T>,
{
    let Some(backend) = obtain(test, made) else {
        return;
    };
    let missing = unsupported_ops(&backend, ops);
    if missing.len() == ops.len() && !ops.is_empty() {
        skip(test, "every op it covers is unsupported");
        return;
    }
    if let Err(e) = check(&backend) {
        panic!("{test} failed: {e}");
    }
}

/// The process-wide default OpenCL device ([`crate::OpenCl::new`]), announcing its name on
/// standard error once per process, so the test output shows which device ran the tests.
#[cfg(feature = "opencl")]
pub fn default_opencl() -> Result<crate::OpenCl> {
    static ANNOUNCED: std::sync::Once = std::sync::Once::new();
    let backend = crate::OpenCl::new()?;
    ANNOUNCED.call_once(|| {
        announce(&format!(
            "mloracle: OpenCL device: {} (fp64: {}, row work-group {})",
            backend.device_label(),
            if backend.has_fp64() { "yes" } else { "no" },
            backend.row_work_group()
        ));
    });
    Ok(backend)
}
