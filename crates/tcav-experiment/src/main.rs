//! `tcav`: runs TCAV experiments from a config file.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tcav_experiment::{ExperimentConfig, Paths, run_experiment};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser)]
#[command(name = "tcav", about = "Test which human concepts drive an image classifier's decisions (TCAV).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment end to end and write its report.
    Run {
        /// The experiment config (TOML).
        config: PathBuf,
        /// The artifact store (content-addressed; safe to share between runs).
        #[arg(long, default_value = ".tcav/store")]
        store: PathBuf,
        /// The folder under which run folders are created.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        /// Run on the CPU even when CUDA is available.
        #[arg(long)]
        cpu: bool,
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
        Command::Run { config, store, runs, cpu } => {
            let experiment = ExperimentConfig::load(&config)?;
            let device = if cpu { tch::Device::Cpu } else { tcav_model::default_device() };
            tracing::info!(?device, "device");
            let outcome = run_experiment(&experiment, &Paths { store, runs }, device)
                .with_context(|| format!("experiment `{}` ({}) failed", experiment.name, config.display()))?;
            println!("{}", outcome.table);
            println!("Report: {}", outcome.dir.display());
            for chart in &outcome.charts {
                println!("Chart:  {}", chart.display());
            }
        }
    }
    Ok(())
}
