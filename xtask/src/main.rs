//! `cargo xtask`: the project's one entry point.
//!
//! It finds or installs libtorch (through PyPI, the only source reachable on
//! our machines), then runs cargo with the environment that tch needs.
//! It never depends on libtorch itself, so it builds on a fresh machine.

mod libtorch;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  experiment [--config FILE] [--dry-run] [--force STAGE] [--cuda] [--cpu]
                                                run an experiment (default: datasets/builtin/experiment.toml)
                                                and print where its report is; FILE may be a run's manifest.json
  test [--cuda] [-- CARGO TEST ARGS]            run every test of the workspace
  validate [--cuda]                             rerun the ground-truth experiments (datasets/ground-truth/)
                                                and rewrite docs/VALIDATION.md
  bench [--cuda] [-- CRITERION ARGS]            run the benchmarks
  lint [--cuda]                                 clippy on every crate, warnings as errors
  setup [--cuda]                                install libtorch only, and print the environment it needs

options:
  --dry-run  print what would run, what is stored, and why; run nothing
  --force STAGE  rerun STAGE and every stage after it (data, preprocess, train, reliance,
                 activations, cavs, tcav)
  --cuda   install the CUDA build of libtorch (automatic when an NVIDIA driver is present)
  --cpu    run the experiment on the CPU even when CUDA is available
";

/// The parsed command line.
#[derive(Debug, PartialEq)]
struct Args {
    command: String,
    config: Option<PathBuf>,
    dry_run: bool,
    force: Option<String>,
    cuda: bool,
    cpu: bool,
    rest: Vec<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut iter = args.iter();
    let command = iter.next().ok_or("no command given")?.clone();
    let mut parsed =
        Args { command, config: None, dry_run: false, force: None, cuda: false, cpu: false, rest: Vec::new() };
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--cuda" => parsed.cuda = true,
            "--cpu" => parsed.cpu = true,
            "--config" => parsed.config = Some(PathBuf::from(iter.next().ok_or("--config needs a file")?)),
            "--dry-run" => parsed.dry_run = true,
            "--force" => parsed.force = Some(iter.next().ok_or("--force needs a stage")?.clone()),
            "--" => {
                parsed.rest.extend(iter.by_ref().cloned());
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(parsed)
}

fn project_root() -> PathBuf {
    // xtask/ lives directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo run` of the `tcav` binary; its own arguments follow.
const TCAV_BINARY: [&str; 7] = ["run", "--quiet", "--package", "tcav-experiment", "--bin", "tcav", "--"];

/// `cargo <args>` in the workspace root, with libtorch installed first and
/// its environment set.
fn cargo_with_libtorch(root: &Path, cuda: bool, args: &[&str]) -> Result<Command, String> {
    let env = libtorch::ensure(root, cuda)?;
    let mut command = cargo();
    command.current_dir(root).args(args);
    env.apply(&mut command);
    Ok(command)
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("could not start {what}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{what} failed ({status})")) }
}

/// Installs Debian's Chromium when it is missing: tcav-report's browser
/// test (crates/tcav-report/tests/browser.rs) loads report.html in it, and
/// fails rather than skips without it.
fn ensure_chromium() -> Result<(), String> {
    let on_path = |name: &str| {
        std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
    };
    if Path::new("/usr/bin/chromium").is_file() || on_path("chromium") {
        return Ok(());
    }
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    let sudo = !is_root && on_path("sudo");
    let shown = format!(
        "{0}apt-get update && {0}apt-get install -y --no-install-recommends chromium",
        if sudo { "sudo " } else { "" }
    );
    eprintln!("cargo xtask test: Chromium is missing (the report's browser test needs it); running `{shown}`");
    let apt = |args: &[&str]| {
        let mut command = if sudo { Command::new("sudo") } else { Command::new("apt-get") };
        if sudo {
            command.arg("apt-get");
        }
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(command, &format!("`{shown}`"))
    };
    apt(&["update"]).and_then(|()| apt(&["install", "-y", "--no-install-recommends", "chromium"])).map_err(|e| {
        format!("{e}: install Debian's `chromium` package yourself (or put a `chromium` on PATH) and rerun")
    })
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&argv) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &Args) -> Result<(), String> {
    let root = project_root();
    let started = Instant::now();
    match args.command.as_str() {
        "setup" => {
            let env = libtorch::ensure(&root, args.cuda)?;
            for (key, value) in &env.vars {
                println!("export {key}={value}");
            }
            Ok(())
        }
        "experiment" => {
            let config = args.config.clone().unwrap_or_else(|| root.join("datasets/builtin/experiment.toml"));
            let mut command = cargo_with_libtorch(&root, args.cuda, &TCAV_BINARY)?;
            command.arg("run").arg(&config);
            if args.cpu {
                command.arg("--cpu");
            }
            if args.dry_run {
                command.arg("--dry-run");
            }
            if let Some(stage) = &args.force {
                command.arg("--force").arg(stage);
            }
            run(command, "the experiment")?;
            eprintln!("cargo xtask experiment: done in {:.0} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        "test" => {
            ensure_chromium()?;
            let mut command = cargo_with_libtorch(&root, args.cuda, &["test", "--workspace"])?;
            command.args(&args.rest);
            run(command, "the tests")?;
            eprintln!("cargo xtask test: done in {:.0} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        "validate" => {
            let mut configs: Vec<PathBuf> = std::fs::read_dir(root.join("datasets/ground-truth"))
                .map_err(|e| format!("reading datasets/ground-truth: {e}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            configs.sort();
            let mut command = cargo_with_libtorch(&root, args.cuda, &TCAV_BINARY)?;
            command.arg("validate").args(configs.iter().map(|p| p.strip_prefix(&root).unwrap_or(p)));
            run(command, "the validation experiments")?;
            eprintln!("cargo xtask validate: done in {:.0} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        "bench" => {
            let mut command = cargo_with_libtorch(&root, args.cuda, &["bench", "--workspace", "--"])?;
            command.args(&args.rest);
            run(command, "the benchmarks")
        }
        "lint" => {
            let lint = ["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"];
            run(cargo_with_libtorch(&root, args.cuda, &lint)?, "clippy")
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_commands_options_and_passthrough() {
        let args = parse(&strings(&["experiment", "--config", "x.toml", "--cuda"])).unwrap();
        assert_eq!(args.command, "experiment");
        assert_eq!(args.config, Some(PathBuf::from("x.toml")));
        assert!(args.cuda && !args.cpu);
        let args = parse(&strings(&["experiment", "--dry-run", "--force", "cavs"])).unwrap();
        assert!(args.dry_run);
        assert_eq!(args.force.as_deref(), Some("cavs"));
        assert!(parse(&strings(&["experiment", "--force"])).is_err());
        let args = parse(&strings(&["test", "--", "-p", "tcav-stats"])).unwrap();
        assert_eq!(args.rest, ["-p", "tcav-stats"]);
        assert!(parse(&strings(&["experiment", "--bogus"])).is_err());
        assert!(parse(&strings(&["experiment", "--config"])).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn the_project_root_holds_the_workspace_manifest() {
        assert!(project_root().join("Cargo.toml").is_file());
        assert!(project_root().join("datasets/builtin/experiment.toml").is_file());
    }
}
