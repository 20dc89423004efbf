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
    run_property_cases(test, source_file, made, ops, u32::MAX, strategy, check);
}

/// [`run_property`] with at most `max_cases` cases (fewer if `PROPTEST_CASES` asks for fewer):
/// for invariants that run hundreds or thousands of backend calls per case (training loops,
/// optimizer trajectories), so that the suite's wall time stays bounded on a device backend.
///
/// # Panics
/// On a failing case, as [`run_property`].
#[allow(clippy::panic, reason = "a failing property must fail the test")]
pub fn run_property_cases<T, B, S>(
    test: &str,
    source_file: &'static str,
    made: Result<B>,
    ops: &[&'static str],
    max_cases: u32,
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
    let mut config = config_for_backend_tests(source_file);
    config.cases = config.cases.min(max_cases.max(1));
    let mut runner = TestRunner::new(config);
    crate::dump::clear();
    let run = |value| {
        // Only a failing call replaces the kept tensors (with its own, or none for a failure
        // that recorded nothing), so the last failing call, the minimal case, is what remains.
        let kept = crate::dump::take_last();
        let result = check(&backend, value);
        if result.is_ok() {
            if let Some(tensors) = kept {
                crate::dump::record(tensors);
            }
        }
        result
    };
    match runner.run(&strategy, run) {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => panic!(
            "{test} failed: {reason}\nminimal failing input: {}\n{}",
            truncated(format!("{value:?}"), 4000),
            how_to_rerun(test, source_file)
        ),
        Err(TestError::Abort(reason)) => panic!("{test} aborted: {reason}"),
    }
}

/// The integration-test target that `source_file` belongs to: `tests/<name>.rs` or
/// `tests/<name>/main.rs` give `<name>`.
pub fn test_target(source_file: &str) -> Option<String> {
    let path = std::path::Path::new(source_file);
    let mut parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    let tests = parts.iter().rposition(|p| *p == "tests")?;
    parts.drain(..=tests);
    match parts.as_slice() {
        [file] => file.strip_suffix(".rs").map(str::to_string),
        [dir, "main.rs"] => Some((*dir).to_string()),
        _ => None,
    }
}

/// How to rerun the failing case of `test` (defined in `source_file`), and where its tensors
/// went when [`crate::dump::DUMP_DIR_ENV`] is set (written here, from the last failing case
/// the checks recorded: the minimal one).
pub fn how_to_rerun(test: &str, source_file: &str) -> String {
    let target = test_target(source_file)
        .map(|t| format!(" --test {t}"))
        .unwrap_or_default();
    let regressions = std::path::Path::new(source_file).with_extension("proptest-regressions");
    let mut text = format!(
        "rerun just this case: PROPTEST_CASES=1 cargo test --release{target} {test}\n  \
         (proptest persisted the failing seed as a `cc …` line in {}; persisted seeds replay \
         first, so the rerun starts with this case; commit that file with the fix)",
        regressions.display()
    );
    match std::env::var_os(crate::dump::DUMP_DIR_ENV).filter(|d| !d.is_empty()) {
        Some(dir) => match crate::dump::take_last() {
            Some(tensors) => {
                let names: Vec<String> =
                    tensors.iter().map(|t| format!("{}.npy", t.name)).collect();
                match crate::dump::write_case(std::path::Path::new(&dir), test, &tensors) {
                    Ok(case) => text.push_str(&format!(
                        "\ntensors of the minimal case: {} ({}); numpy: np.load('{}/{}')",
                        case.display(),
                        names.join(", "),
                        case.display(),
                        names.first().map_or("x.npy", String::as_str)
                    )),
                    Err(e) => text.push_str(&format!("\ncould not write the tensors: {e}")),
                }
            }
            None => text.push_str(
                "\n(no tensors recorded for this failure: a backend error or a shape mismatch)",
            ),
        },
        None => text.push_str(&format!(
            "\nset {}=<dir> to also write the case's tensors as .npy files",
            crate::dump::DUMP_DIR_ENV
        )),
    }
    text
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
