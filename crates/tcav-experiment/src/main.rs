//! `tcav`: runs TCAV experiments from a config file.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tcav_experiment::validation::{self, Variant};
use tcav_experiment::{ExperimentConfig, Manifest, Paths, RunOptions, Stage, plan, run_experiment};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser)]
#[command(name = "tcav", about = "Test which human concepts drive an image classifier's decisions (TCAV).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where runs read and write, and on what device.
#[derive(clap::Args)]
struct Where {
    /// The artifact store (content-addressed; safe to share between runs).
    #[arg(long, default_value = ".tcav/store")]
    store: PathBuf,
    /// The folder under which run folders are created.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Run on the CPU even when CUDA is available.
    #[arg(long)]
    cpu: bool,
}

impl Where {
    fn paths(&self) -> Paths {
        Paths { store: self.store.clone(), runs: self.runs.clone() }
    }

    fn device(&self) -> tch::Device {
        let device = if self.cpu { tch::Device::Cpu } else { tcav_model::default_device() };
        tracing::info!(?device, "device");
        device
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment end to end and write its report.
    Run {
        /// The experiment config (TOML), or a run's `manifest.json` to run
        /// that run's resolved config again.
        config: PathBuf,
        /// Print the plan (what will run, what is stored, and why) and run
        /// nothing.
        #[arg(long)]
        dry_run: bool,
        /// Rerun this stage and every stage after it, even when stored.
        #[arg(long, value_enum)]
        force: Option<Stage>,
        #[command(flatten)]
        place: Where,
    },
    /// Run ground-truth experiments and write the validation table.
    Validate {
        /// The experiment configs (built-in data with controlled cues).
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Where to write the Markdown table.
        #[arg(long, default_value = "docs/VALIDATION.md")]
        out: PathBuf,
        #[command(flatten)]
        place: Where,
    },
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::io::stderr().is_terminal() {
        let progress = tracing_indicatif::IndicatifLayer::new();
        tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(progress.get_stderr_writer()).with_target(false))
            .with(progress)
            .init();
    } else {
        tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(false))
            .init();
    }
}

fn main() -> anyhow::Result<()> {
    init_logging();
    match Cli::parse().command {
        Command::Run { config, dry_run, force, place } => {
            let experiment = if plan::is_manifest(&config) {
                let manifest = Manifest::read(&config)?;
                manifest.config.validate().map_err(|message| tcav_experiment::ExperimentError::ConfigInvalid {
                    path: config.clone(),
                    message: format!("`config` of the manifest: {message}"),
                })?;
                manifest.config
            } else {
                ExperimentConfig::load(&config)?
            };
            if dry_run {
                let steps = plan::plan(&experiment, &place.paths(), place.device(), force)
                    .with_context(|| format!("planning experiment `{}` ({})", experiment.name, config.display()))?;
                print!("{}", plan::render_plan(&steps));
                return Ok(());
            }
            let options = RunOptions { config_file: config.clone(), force };
            let outcome = tcav_experiment::run_experiment_with(&experiment, &place.paths(), place.device(), &options)
                .with_context(|| format!("experiment `{}` ({}) failed", experiment.name, config.display()))?;
            print!("{}", tcav_report::render_summary(&outcome.report));
            for line in outcome.table.lines().filter(|l| l.starts_with("measured reliance")) {
                println!("{line}");
            }
            println!("Report:     {}", outcome.dir.join(tcav_experiment::REPORT_HTML).display());
            println!("Full table: {}", outcome.dir.join("report.txt").display());
            println!("Run folder: {}", outcome.dir.display());
            println!("Manifest:   {}", outcome.dir.join(tcav_experiment::MANIFEST_FILE).display());
            for chart in &outcome.charts {
                println!("Chart:      {}", chart.display());
            }
        }
        Command::Validate { configs, out, place } => {
            let device = place.device();
            let paths = place.paths();
            let mut loaded = Vec::new();
            for file in &configs {
                let experiment = ExperimentConfig::load(file)?;
                let outcome = run_experiment(&experiment, &paths, device)
                    .with_context(|| format!("experiment `{}` ({}) failed", experiment.name, file.display()))?;
                println!("{}: {}", file.display(), outcome.dir.display());
                loaded.push((file.display().to_string(), experiment, outcome));
            }
            let variants: Vec<Variant<'_>> =
                loaded.iter().map(|(file, config, outcome)| Variant { file: file.clone(), config, outcome }).collect();
            let markdown = validation::markdown(&variants, "cargo xtask validate");
            tcav_core::store::write_atomic(&out, markdown.as_bytes())?;
            println!("Validation table: {}", out.display());
        }
    }
    Ok(())
}
