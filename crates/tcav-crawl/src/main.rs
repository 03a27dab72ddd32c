//! `tcav-crawl`: crawls every set of a crawl definition into a dataset.
//!
//! `tcav-crawl run datasets/pokemon/crawl.toml` fills
//! `datasets/pokemon/raw/<set>/` for each set, showing a progress bar per set
//! when stderr is a terminal and plain log lines otherwise (`RUST_LOG`
//! chooses how many). Exits non-zero if any set's crawl stopped with an
//! error; a set whose sources ran out short of `max_num` is reported, not
//! an error.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tcav_core::SetName;
use tcav_crawl::definition::default_dataset_root;
use tcav_crawl::{CrawlDefinition, CrawlSummary, ManifestEntry, Progress, Status};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Parser)]
#[command(
    name = "tcav-crawl",
    version,
    about = "Fill class, concept and random sets with images from the web, politely and with provenance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Crawl every set of a crawl definition (TOML), resuming where an
    /// earlier run stopped.
    Run {
        /// The crawl definition, such as datasets/pokemon/crawl.toml.
        definition: PathBuf,
        /// The dataset root: images go to DIR/raw/<set>/ (default: the
        /// definition's folder).
        #[arg(long, value_name = "DIR")]
        dataset_root: Option<PathBuf>,
        /// Crawl only this set (may be given more than once).
        #[arg(long = "set", value_name = "NAME")]
        sets: Vec<String>,
        /// The User-Agent to send instead of the definition's (Wikimedia
        /// requires a contact in it).
        #[arg(long, value_name = "TEXT")]
        user_agent: Option<String>,
        /// Downloads at once, instead of the definition's.
        #[arg(long, value_name = "N")]
        concurrency: Option<usize>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bars = std::io::stderr().is_terminal().then(MultiProgress::new);
    init_logging(bars.clone());
    match run(cli, bars) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tcav-crawl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(bars: Option<MultiProgress>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    match bars {
        Some(bars) => builder.with_writer(AboveBars(bars)).init(),
        None => builder.with_writer(std::io::stderr).with_ansi(false).init(),
    }
}

fn run(cli: Cli, bars: Option<MultiProgress>) -> anyhow::Result<ExitCode> {
    let Command::Run { definition: path, dataset_root, sets, user_agent, concurrency } = cli.command;
    let mut definition = CrawlDefinition::load(&path)?;
    if let Some(agent) = user_agent {
        definition.user_agent = Some(agent);
    }
    if let Some(n) = concurrency {
        definition.options.concurrency = Some(n);
    }
    if !sets.is_empty() {
        let known: Vec<&str> = definition.sets.iter().map(|s| s.name.as_str()).collect();
        if let Some(unknown) = sets.iter().find(|s| !known.contains(&s.as_str())) {
            bail!("--set {unknown}: {} has no such set; it has {}", path.display(), known.join(", "));
        }
        definition.sets.retain(|s| sets.iter().any(|name| name == s.name.as_str()));
    }
    let root = dataset_root.unwrap_or_else(|| default_dataset_root(&path));
    let progress: Box<dyn Progress> = match bars {
        Some(multi) => Box::new(Bars { multi, bars: Mutex::new(HashMap::new()) }),
        None => Box::new(Lines { wanted: Mutex::new(HashMap::new()) }),
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let outcomes = runtime.block_on(definition.run(&root, progress.as_ref()))?;
    drop(progress);

    let mut failed = false;
    println!("{:<16} {:>6} {:>6} {:>6} {:>8}  note", "set", "images", "wanted", "new", "rejected");
    for outcome in &outcomes {
        match &outcome.result {
            Ok(summary) => {
                let note = match (summary.exhausted, summary.failed_sources.len()) {
                    (false, _) => String::new(),
                    (true, 0) => "sources ran out".to_owned(),
                    (true, n) => format!("sources ran out ({n} failed; see the log or manifest)"),
                };
                println!(
                    "{:<16} {:>6} {:>6} {:>6} {:>8}  {note}",
                    outcome.set.as_str(),
                    summary.accepted,
                    summary.requested,
                    summary.added,
                    summary.rejected
                );
            }
            Err(e) => {
                failed = true;
                println!("{:<16} {:>6} {:>6} {:>6} {:>8}  failed: {e}", outcome.set.as_str(), "-", "-", "-", "-");
            }
        }
    }
    println!("images and manifests are in {}", root.join("raw").display());
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// A progress bar per set, for a terminal.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<SetName, (ProgressBar, usize)>>,
}

impl Progress for Bars {
    fn started(&self, set: &SetName, wanted: usize, have: usize) {
        let style = ProgressStyle::with_template("{prefix:>14} [{bar:32}] {pos:>4}/{len:<4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(wanted as u64).with_style(style).with_prefix(set.to_string()));
        bar.set_position(have.min(wanted) as u64);
        self.bars.lock().unwrap_or_else(PoisonError::into_inner).insert(set.clone(), (bar, 0));
    }

    fn recorded(&self, set: &SetName, entry: &ManifestEntry, have: usize) {
        let mut bars = self.bars.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((bar, rejected)) = bars.get_mut(set) {
            bar.set_position(have as u64);
            if entry.status == Status::Rejected {
                *rejected += 1;
                bar.set_message(format!("{rejected} rejected"));
            }
        }
    }

    fn finished(&self, set: &SetName, summary: &CrawlSummary) {
        if let Some((bar, _)) = self.bars.lock().unwrap_or_else(PoisonError::into_inner).remove(set) {
            // A finished bar left in place is wiped by the next log line
            // printed above the bars, so it gives way to a plain line.
            bar.finish_and_clear();
            let ran_out = if summary.exhausted { ", sources ran out" } else { "" };
            let line = format!(
                "{:>14} {}/{} images ({} new, {} rejected{ran_out})",
                set.as_str(),
                summary.accepted,
                summary.requested,
                summary.added,
                summary.rejected
            );
            self.multi.suspend(|| eprintln!("{line}"));
        }
    }
}

/// A log line per tenth of each set, for logs and pipes.
struct Lines {
    wanted: Mutex<HashMap<SetName, usize>>,
}

impl Progress for Lines {
    fn started(&self, set: &SetName, wanted: usize, _: usize) {
        self.wanted.lock().unwrap_or_else(PoisonError::into_inner).insert(set.clone(), wanted);
    }

    fn recorded(&self, set: &SetName, entry: &ManifestEntry, have: usize) {
        let wanted = self.wanted.lock().unwrap_or_else(PoisonError::into_inner).get(set).copied().unwrap_or(0);
        let step = (wanted / 10).max(1);
        if entry.status == Status::Accepted && have.is_multiple_of(step) {
            tracing::info!(set = %set, "{have} of {wanted} images");
        }
    }
}

/// Log lines printed above the progress bars instead of through them.
#[derive(Clone)]
struct AboveBars(MultiProgress);

/// One log event, written when the formatter is done with it.
struct AboveBarsLine {
    bars: MultiProgress,
    line: Vec<u8>,
}

impl<'a> MakeWriter<'a> for AboveBars {
    type Writer = AboveBarsLine;

    fn make_writer(&'a self) -> AboveBarsLine {
        AboveBarsLine { bars: self.0.clone(), line: Vec::new() }
    }
}

impl Write for AboveBarsLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for AboveBarsLine {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            // A log line that cannot be written has nowhere else to go.
            self.bars.suspend(|| {
                let _ = std::io::stderr().write_all(&self.line);
            });
        }
    }
}
