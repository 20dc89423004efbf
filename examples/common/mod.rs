//! What the seed examples 000–002 share: the `--backend` choice of their cross-backend section.

/// `--backend reference` (default), `--backend opencl` or `--backend both`: which backends the
/// cross-backend section runs (`opencl` and `both` run the same configuration on the reference
/// and on the default OpenCL device and print both; the section is skipped for `reference`).
pub fn backend_choice() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--backend")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "reference".to_string())
}

/// The cross-backend section of a build without the `opencl` feature: says why nothing runs
/// when an OpenCL run was asked for.
#[cfg(not(feature = "opencl"))]
pub fn no_opencl_section() -> Result<(), Box<dyn std::error::Error>> {
    if backend_choice() != "reference" {
        println!("  (built without the `opencl` feature: no OpenCL run)");
    }
    Ok(())
}
