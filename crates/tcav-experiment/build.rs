//! Gives the `tcav` binary (and this crate's tests) an rpath to libtorch, so
//! they run without `LD_LIBRARY_PATH`.

fn main() {
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
