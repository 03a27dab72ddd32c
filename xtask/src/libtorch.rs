//! Finding or installing libtorch.
//!
//! tch 0.26 needs libtorch 2.13.0. The only source reachable on our machines
//! is PyPI, so libtorch comes from the `torch` wheel, installed into a
//! project-local, git-ignored virtual environment under `.tools/`:
//!
//! * **CPU** (the default): the torch wheel without its dependencies, plus
//!   the two small NVIDIA wheels that `libtorch_cpu.so` links against
//!   (`libcudart`, `libcupti`); about 1.3 GB and 40 s. tch is pointed at it
//!   with `LIBTORCH`.
//! * **CUDA** (`--cuda`, or automatically when an NVIDIA driver is present):
//!   the full torch wheel with its CUDA dependencies; tch asks that Python
//!   for its paths (`LIBTORCH_USE_PYTORCH`).
//!
//! A user who already has libtorch sets `LIBTORCH` or `LIBTORCH_USE_PYTORCH`
//! and nothing is installed. A second run finds the marker file written
//! after a successful install and installs nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The torch version tch 0.26 checks for.
pub const TORCH_VERSION: &str = "2.13.0";

/// What to install, per flavour: pip arguments after `install`.
fn recipe(cuda: bool) -> Vec<String> {
    if cuda {
        vec![format!("torch=={TORCH_VERSION}")]
    } else {
        vec![
            "--no-deps".into(),
            format!("torch=={TORCH_VERSION}"),
            "nvidia-cuda-runtime==13.0.96.*".into(),
            "nvidia-cuda-cupti==13.0.85.*".into(),
        ]
    }
}

/// Environment variables to give cargo so that tch builds and runs.
#[derive(Debug, Default)]
pub struct TorchEnv {
    pub vars: Vec<(String, String)>,
}

impl TorchEnv {
    pub fn apply(&self, command: &mut Command) {
        for (key, value) in &self.vars {
            command.env(key, value);
        }
    }
}

fn nvidia_driver_present() -> bool {
    Path::new("/proc/driver/nvidia/version").exists()
}

/// Returns the environment for libtorch, installing it first if needed.
pub fn ensure(root: &Path, want_cuda: bool) -> Result<TorchEnv, String> {
    if let Some(lib) = std::env::var_os("LIBTORCH") {
        let lib = PathBuf::from(lib).join("lib");
        return Ok(TorchEnv { vars: vec![library_path(&lib)] });
    }
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        return Ok(TorchEnv::default());
    }
    let cuda = want_cuda || nvidia_driver_present();
    let venv = root.join(".tools").join(if cuda { "libtorch-cuda" } else { "libtorch-cpu" });
    install(&venv, cuda)?;
    let torch = find_torch(&venv)?;
    let mut vars = vec![library_path(&torch.join("lib"))];
    if cuda {
        vars.push(("LIBTORCH_USE_PYTORCH".into(), "1".into()));
        vars.push(("PYTHON_SYS_EXECUTABLE".into(), venv.join("bin/python").display().to_string()));
        vars.push(("TCAV_LINK_CUDA".into(), "1".into()));
    } else {
        vars.push(("LIBTORCH".into(), torch.display().to_string()));
    }
    Ok(TorchEnv { vars })
}

/// `LD_LIBRARY_PATH` with `lib` first: test binaries of the tensor crates
/// have no rpath of their own.
fn library_path(lib: &Path) -> (String, String) {
    let mut value = lib.display().to_string();
    if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
        value.push(':');
        value.push_str(&existing.to_string_lossy());
    }
    ("LD_LIBRARY_PATH".into(), value)
}

const MARKER: &str = ".tcav-installed";

fn marker_text(cuda: bool) -> String {
    format!("{}\n", recipe(cuda).join(" "))
}

/// Whether `venv` already holds exactly this recipe.
fn installed(venv: &Path, cuda: bool) -> bool {
    std::fs::read_to_string(venv.join(MARKER)).is_ok_and(|text| text == marker_text(cuda))
}

fn install(venv: &Path, cuda: bool) -> Result<(), String> {
    if installed(venv, cuda) {
        return Ok(());
    }
    let flavour = if cuda { "CUDA" } else { "CPU" };
    eprintln!("cargo xtask: installing libtorch {TORCH_VERSION} ({flavour}) from PyPI into {} (once)", venv.display());
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => {
            return Err(format!(
                "`{python}` was not found. libtorch is installed from PyPI through Python: install python3 with venv and pip \
                 (Debian/Ubuntu: `apt-get install python3 python3-venv python3-pip`), or set LIBTORCH to an existing libtorch {TORCH_VERSION}"
            ));
        }
    }
    if !venv.join("bin/pip").exists() {
        let status = Command::new(&python).args(["-m", "venv"]).arg(venv).status();
        if !matches!(status, Ok(s) if s.success()) || !venv.join("bin/pip").exists() {
            let _ = std::fs::remove_dir_all(venv);
            return Err(format!(
                "`{python} -m venv` could not create {} with pip in it: install Python's venv and pip modules \
                 (Debian/Ubuntu: `apt-get install python3-venv python3-pip`), then rerun",
                venv.display()
            ));
        }
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(recipe(cuda))
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        return Err(format!(
            "pip could not install torch {TORCH_VERSION} into {} (see pip's output above). Check that PyPI is reachable, \
             or set LIBTORCH to an existing libtorch {TORCH_VERSION}",
            venv.display()
        ));
    }
    find_torch(venv)?;
    std::fs::write(venv.join(MARKER), marker_text(cuda))
        .map_err(|e| format!("writing {}: {e}", venv.join(MARKER).display()))
}

/// `<venv>/lib/python3.X/site-packages/torch`.
fn find_torch(venv: &Path) -> Result<PathBuf, String> {
    let lib = venv.join("lib");
    let entries = std::fs::read_dir(&lib).map_err(|e| format!("reading {}: {e}", lib.display()))?;
    for entry in entries.flatten() {
        let torch = entry.path().join("site-packages/torch");
        if torch.join("lib").is_dir() {
            return Ok(torch);
        }
    }
    Err(format!(
        "no torch/lib under {}/python3.*/site-packages: delete {} and rerun to reinstall",
        lib.display(),
        venv.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_marker_means_nothing_is_installed_again() {
        let dir = std::env::temp_dir().join(format!("xtask-marker-{}", std::process::id()));
        let venv = dir.join("libtorch-cpu");
        std::fs::create_dir_all(venv.join("lib/python3.11/site-packages/torch/lib")).unwrap();
        assert!(!installed(&venv, false));
        std::fs::write(venv.join(MARKER), marker_text(false)).unwrap();
        assert!(installed(&venv, false));
        // The CUDA recipe is different: a CPU venv never passes for it.
        assert!(!installed(&venv, true));
        assert!(install(&venv, false).is_ok(), "an installed venv must not run pip");
        assert_eq!(find_torch(&venv).unwrap(), venv.join("lib/python3.11/site-packages/torch"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cpu_recipe_pins_the_version_tch_checks() {
        let cpu = recipe(false);
        assert!(cpu.contains(&"--no-deps".to_string()));
        assert!(cpu.contains(&format!("torch=={TORCH_VERSION}")));
        assert!(!recipe(true).contains(&"--no-deps".to_string()));
    }
}
