//! Gives the `tcav` binary (and this crate's tests) an rpath to libtorch, so
//! they run without `LD_LIBRARY_PATH`, and records the versions a run
//! manifest reports (rustc, and the locked versions of the crates the
//! numbers depend on).

/// Crates whose version can change a result.
const RECORDED: [&str; 9] =
    ["tch", "torch-sys", "safetensors", "image", "linfa-logistic", "statrs", "ndarray", "rand_chacha", "plotters"];

fn main() {
    record_versions();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=TCAV_LINK_CUDA");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
    }
    // With the CUDA wheel, libtorch_cuda must be linked although no symbol
    // of it is referenced directly, or CUDA is silently unavailable (tch-rs
    // issues #213, #907). The CPU recipe lacks CUDA's own libraries, so this
    // is only done when `cargo xtask` installed the CUDA wheel.
    if std::env::var_os("TCAV_LINK_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}

fn record_versions() {
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let mut versions = Vec::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take())
            && RECORDED.contains(&n.as_str())
        {
            versions.push(format!("{n}={}", v.trim_matches('"')));
        }
    }
    println!("cargo:rustc-env=TCAV_LOCKED_VERSIONS={}", versions.join(","));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TCAV_RUSTC_VERSION={version}");
}
