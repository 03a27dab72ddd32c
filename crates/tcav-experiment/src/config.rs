//! The experiment config: one TOML file that names everything a run does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tcav_cav::CavConfig;
use tcav_datagen::DatagenConfig;
use tcav_preprocess::PreprocessConfig;
use tcav_stats::{Correction, TTestKind};
use tcav_train::TrainConfig;

use crate::error::{ExperimentError, Result};

/// A whole experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The experiment's name; runs are written under `runs/<name>/`.
    pub name: String,
    /// The master seed: every random choice derives from it.
    #[serde(default)]
    pub seed: u64,
    /// Where the images come from.
    pub data: DataConfig,
    /// How images are cleaned, cropped, resized and split.
    #[serde(default)]
    pub preprocess: PreprocessConfig,
    /// How the classifier is trained.
    #[serde(default)]
    pub train: TrainConfig,
    /// What TCAV tests and how.
    #[serde(default)]
    pub tcav: TcavConfig,
    /// Cues whose use by the trained model is measured (built-in data only):
    /// the accuracy drop on the test images regenerated without the cue.
    #[serde(default)]
    pub measure_reliance: Vec<tcav_datagen::Cue>,
}

/// The image sources of an experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataConfig {
    /// The built-in generator: three creature families, colour concepts and
    /// random sets, made offline, with a known answer.
    Builtin {
        /// The generator's settings.
        #[serde(default)]
        generator: DatagenConfig,
    },
    /// Image folders the user already has (crawled or collected), one per
    /// set. Relative paths are relative to the config file.
    Folders {
        /// A crawl definition (`tcav-crawl`'s TOML) to run first, topping
        /// up its sets under the definition's folder; it needs network.
        /// Without it the folders are used as they are.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        crawl: Option<PathBuf>,
        /// Class name → folder of that class's images.
        classes: BTreeMap<String, PathBuf>,
        /// Concept name → folder of that concept's images.
        concepts: BTreeMap<String, PathBuf>,
        /// Random set name → folder of that random set's images.
        random_sets: BTreeMap<String, PathBuf>,
    },
}

/// What TCAV tests.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcavConfig {
    /// Bottleneck layers to test.
    pub layers: Vec<String>,
    /// Classes to explain; empty means every class.
    pub classes: Vec<String>,
    /// Concepts to test; empty means every concept of the data.
    pub concepts: Vec<String>,
    /// How many random sets to use (the first ones by name order); 0 means
    /// all. Each concept is scored against every one of them (one random
    /// run per random set).
    pub random_runs: usize,
    /// Sanity control: test this many random sets (the last ones by name)
    /// as if they were concepts. They are excluded from the random runs. A
    /// sound test finds them significant no more often than α allows.
    pub random_sets_as_concepts: usize,
    /// Images per forward/backward batch.
    pub batch_size: usize,
    /// How CAVs are fitted.
    pub cav: CavConfig,
    /// Significance level, before correction.
    pub alpha: f64,
    /// Correction for multiple tests over the whole experiment.
    pub correction: Correction,
    /// Which test turns scores into verdicts.
    pub test: TestMethod,
    /// The per-run quantity the `concept-as-unit` test compares.
    pub statistic: Statistic,
    /// How the random-vs-random baseline is built.
    pub baseline: Baseline,
    /// Mean held-out CAV accuracy below which a concept is flagged as
    /// unreliable and no significance is claimed for it.
    pub accuracy_threshold: f64,
    /// Relative TCAV: concepts scored against another concept, or against
    /// the union of the other concepts, instead of against random sets, e.g.
    /// `relative = [{ concept = "red", against = "blue" }, { concept = "red", against = "others" }]`.
    /// Each gets one result row (`red vs blue`) with as many runs as there
    /// are random runs, tested against the random-vs-random baseline; see
    /// docs/STATISTICS.md. Empty by default.
    pub relative: Vec<RelativeTest>,
}

/// One relative TCAV test: CAVs of `concept` against `against`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelativeTest {
    /// The concept the CAVs point toward.
    pub concept: String,
    /// The concept on the negative side, or `"others"` ([`OTHERS`]): the
    /// union of every other concept tested (`tcav.concepts`, plus any
    /// random sets tested as concepts).
    pub against: String,
}

/// The `against` value that means "the union of the other concepts".
pub const OTHERS: &str = "others";

impl RelativeTest {
    /// The result row's name: `red vs blue`, `red vs others`.
    pub fn label(&self) -> String {
        format!("{} vs {}", self.concept, self.against)
    }
}

/// The significance test of a (class, layer, concept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestMethod {
    /// The concept set is the unit: its mean `statistic` over runs is
    /// compared with the same mean for each random set acting as a concept
    /// (Student's t with a sample of one, `N − 1` df). Calibrated when the
    /// concept is just another random set; needs the `all-pairs` or `ring`
    /// baseline.
    ConceptAsUnit,
    /// Welch's two-sample t-test of the concept's per-run TCAV scores
    /// against the baseline's, counting every run as independent, as Kim
    /// et al. and tensorflow/tcav do (with Student's). Runs share the
    /// concept set, so this is anti-conservative; see docs/STATISTICS.md.
    Welch,
    /// Student's version of `welch` (tensorflow/tcav's `ttest_ind`).
    Student,
}

impl TestMethod {
    /// The run-level t-test, if this is one.
    pub fn run_level(self) -> Option<TTestKind> {
        match self {
            TestMethod::ConceptAsUnit => None,
            TestMethod::Welch => Some(TTestKind::Welch),
            TestMethod::Student => Some(TTestKind::Student),
        }
    }
}

/// The per-run quantity the `concept-as-unit` test averages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Statistic {
    /// The mean directional derivative `S(x)` over the class's images: how
    /// strongly moving toward the concept raises the class logit. It does
    /// not saturate, so it separates concepts from random sets even where
    /// sign-count scores of random sets pile up at 0 and 1.
    MeanDerivative,
    /// The sign-count TCAV score (fraction of images with `S(x) > 0`).
    SignCount,
    /// Captum's magnitude score.
    Magnitude,
}

/// How the random-vs-random baseline is built from random sets
/// `r_0 … r_{N-1}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// One CAV per unordered pair of random sets; the reverse direction is
    /// the same CAV negated, so each pair is fitted once. The baseline has
    /// N(N−1) scores.
    AllPairs,
    /// CAVs `r_j` vs `r_{j+1 mod N}`: each random set is once positive and
    /// once negative, N scores.
    Ring,
    /// tensorflow/tcav's design: the named random set is the positive side
    /// of every baseline CAV (against each other random set) and is not
    /// used as a negative for concepts.
    SingleCounterpart(String),
}

impl Default for TcavConfig {
    fn default() -> Self {
        TcavConfig {
            layers: vec!["conv2".into(), "conv3".into()],
            classes: Vec::new(),
            concepts: Vec::new(),
            random_runs: 0,
            random_sets_as_concepts: 0,
            batch_size: 64,
            cav: CavConfig::default(),
            alpha: 0.05,
            correction: Correction::Bonferroni,
            test: TestMethod::ConceptAsUnit,
            statistic: Statistic::MeanDerivative,
            baseline: Baseline::AllPairs,
            accuracy_threshold: tcav_cav::DEFAULT_ACCURACY_THRESHOLD,
            relative: Vec::new(),
        }
    }
}

impl ExperimentConfig {
    /// Reads and checks a config file; relative folder paths are resolved
    /// against the file's folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ExperimentError::ConfigRead { path: path.into(), source })?;
        let mut config: ExperimentConfig = toml::from_str(&text)
            .map_err(|e| ExperimentError::ConfigParse { path: path.into(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [&mut config.preprocess.exclusions, &mut config.preprocess.lockfile].into_iter().flatten() {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        if let DataConfig::Folders { crawl, classes, concepts, random_sets } = &mut config.data {
            for folder in crawl
                .iter_mut()
                .chain(classes.values_mut())
                .chain(concepts.values_mut())
                .chain(random_sets.values_mut())
            {
                if folder.is_relative() {
                    *folder = base.join(&*folder);
                }
            }
        }
        config.validate().map_err(|message| {
            // serde reports its own errors with line and column; for ours,
            // find the line of the field the message names.
            let line = named_field(&message).and_then(|field| line_of(&text, field));
            let message = match line {
                Some(line) => format!("line {line}: {message}"),
                None => message,
            };
            ExperimentError::ConfigInvalid { path: path.into(), message }
        })?;
        Ok(config)
    }

    /// Checks values that serde cannot, with a message naming the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.name.is_empty() || tcav_core::SetName::new(self.name.clone()).is_err() {
            return Err(format!(
                "`name` = {:?} must be a non-empty folder-safe name (letters, digits, _ - .)",
                self.name
            ));
        }
        let tcav = &self.tcav;
        if tcav.layers.is_empty() {
            return Err("`tcav.layers` is empty: name at least one bottleneck, e.g. [\"conv3\"]".into());
        }
        if !(tcav.alpha > 0.0 && tcav.alpha < 1.0) {
            return Err(format!("`tcav.alpha` = {} must be between 0 and 1", tcav.alpha));
        }
        if !(0.0..=1.0).contains(&tcav.accuracy_threshold) {
            return Err(format!("`tcav.accuracy_threshold` = {} must be between 0 and 1", tcav.accuracy_threshold));
        }
        if tcav.batch_size == 0 {
            return Err("`tcav.batch_size` must be at least 1".into());
        }
        if tcav.test == TestMethod::ConceptAsUnit && matches!(tcav.baseline, Baseline::SingleCounterpart(_)) {
            return Err("`tcav.test = \"concept-as-unit\"` needs random sets acting as concepts: use `tcav.baseline = \"all-pairs\"` (or \"ring\"), or a run-level test (\"welch\", \"student\") with the single counterpart".into());
        }
        if let Baseline::SingleCounterpart(name) = &tcav.baseline
            && let DataConfig::Folders { random_sets, .. } = &self.data
            && !random_sets.contains_key(name)
        {
            return Err(format!("`tcav.baseline.single-counterpart` = {name:?} is not one of `data.random_sets`"));
        }
        if tcav.random_runs == 1 {
            return Err(
                "`tcav.random_runs` = 1: the t-test needs at least 2 random runs (3 or more for a baseline)".into()
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for test in &tcav.relative {
            if test.concept == test.against {
                return Err(format!(
                    "`tcav.relative` compares `{}` with itself: name another concept or \"{OTHERS}\" in `against`",
                    test.concept
                ));
            }
            if test.concept == OTHERS {
                return Err(format!(
                    "`tcav.relative`: `concept` = \"{OTHERS}\" is not allowed; \"{OTHERS}\" may only be an `against`"
                ));
            }
            if !seen.insert(test.label()) {
                return Err(format!("`tcav.relative` lists `{}` twice: keep one", test.label()));
            }
            if let DataConfig::Folders { concepts, .. } = &self.data {
                for name in [&test.concept, &test.against] {
                    if name != OTHERS && !concepts.contains_key(name) {
                        return Err(format!(
                            "`tcav.relative` names `{name}`, which is not one of `data.concepts` ({})",
                            concepts.keys().cloned().collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
                if concepts.contains_key(OTHERS) {
                    return Err(format!(
                        "a concept is named `{OTHERS}`, which `tcav.relative` reserves for the union of the other concepts: rename that concept"
                    ));
                }
            }
        }
        if !self.measure_reliance.is_empty() && !matches!(self.data, DataConfig::Builtin { .. }) {
            return Err("`measure_reliance` needs `data.source = \"builtin\"`: only generated images can be regenerated without a cue".into());
        }
        if let DataConfig::Folders { classes, concepts, random_sets, .. } = &self.data {
            if classes.len() < 2 {
                return Err("`data.classes` needs at least 2 classes".into());
            }
            if concepts.is_empty() {
                return Err("`data.concepts` is empty: name at least one concept folder".into());
            }
            if random_sets.len() < 3 {
                return Err(format!(
                    "`data.random_sets` has {} sets; the random baseline needs at least 3",
                    random_sets.len()
                ));
            }
        }
        Ok(())
    }
}

/// The first dotted field path in backticks in a message (`` `tcav.alpha` ``).
fn named_field(message: &str) -> Option<&str> {
    message.split('`').skip(1).step_by(2).find(|part| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    })
}

/// The 1-based line where the dotted `field` is set in the TOML `text`.
fn line_of(text: &str, field: &str) -> Option<usize> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut segments = field.split('.').peekable();
    while let Some(segment) = segments.next() {
        let (key, value) = table.iter().find(|(key, _)| key.get_ref() == segment)?;
        match (segments.peek(), value.get_ref()) {
            (None, _) => return Some(text[..key.span().start].matches('\n').count() + 1),
            (Some(_), toml::de::DeValue::Table(inner)) => table = inner,
            (Some(_), _) => return Some(text[..key.span().start].matches('\n').count() + 1),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exp.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG.md")).unwrap();
        let section = &doc[doc.find("## Annotated example").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let example = &section[start..start + section[start..].find("```").unwrap()];
        let documented: ExperimentConfig = toml::from_str(example).unwrap();
        let minimal: ExperimentConfig = toml::from_str("name = \"example\"\n[data]\nsource = \"builtin\"\n").unwrap();
        assert_eq!(serde_json::to_value(&documented).unwrap(), serde_json::to_value(&minimal).unwrap());
    }

    #[test]
    fn the_shipped_default_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/builtin/experiment.toml");
        let config = ExperimentConfig::load(&path).unwrap();
        assert_eq!(config.name, "default");
        assert!(matches!(config.data, DataConfig::Builtin { .. }));
    }

    #[test]
    fn malformed_configs_name_the_file_and_field() {
        let (_d, path) = write("name = \"x\"\n[data]\nsource = \"builtin\"\n[tcav]\nlayerz = [\"conv3\"]\n");
        let err = ExperimentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("exp.toml") && err.contains("layerz"), "{err}");

        assert!(err.contains("line 5"), "{err}");

        let (_d, path) =
            write("name = \"x\"\n[data]\nsource = \"builtin\"\n[tcav]\nlayers = [\"conv3\"]\nalpha = 2.0\n");
        let err = ExperimentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("tcav.alpha") && err.contains("line 6"), "{err}");

        let err = ExperimentConfig::load(Path::new("/nonexistent/exp.toml")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/exp.toml"), "{err}");
    }

    #[test]
    fn relative_tests_parse_and_are_checked() {
        let (_d, path) = write(
            "name = \"x\"\n[data]\nsource = \"builtin\"\n[tcav]\nrelative = [{ concept = \"red\", against = \"blue\" }, { concept = \"red\", against = \"others\" }]\n",
        );
        let config = ExperimentConfig::load(&path).unwrap();
        let labels: Vec<String> = config.tcav.relative.iter().map(RelativeTest::label).collect();
        assert_eq!(labels, ["red vs blue", "red vs others"]);
        assert!(
            ExperimentConfig::load(&write("name = \"x\"\n[data]\nsource = \"builtin\"\n").1)
                .unwrap()
                .tcav
                .relative
                .is_empty()
        );

        for (relative, needle) in [
            ("[{ concept = \"red\", against = \"red\" }]", "itself"),
            ("[{ concept = \"red\", against = \"blue\" }, { concept = \"red\", against = \"blue\" }]", "twice"),
            ("[{ concept = \"others\", against = \"blue\" }]", "only be an `against`"),
            ("[{ concept = \"red\", agains = \"blue\" }]", "agains"),
        ] {
            let (_d, path) =
                write(&format!("name = \"x\"\n[data]\nsource = \"builtin\"\n[tcav]\nrelative = {relative}\n"));
            let err = ExperimentConfig::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        let (_d, path) = write(
            "name = \"m\"\n[data]\nsource = \"folders\"\nclasses = { a = \"a\", b = \"b\" }\nconcepts = { red = \"c/red\" }\nrandom_sets = { r0 = \"r/0\", r1 = \"r/1\", r2 = \"r/2\" }\n[tcav]\nrelative = [{ concept = \"red\", against = \"green\" }]\n",
        );
        let err = ExperimentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("`green`") && err.contains("data.concepts"), "{err}");
    }

    #[test]
    fn folder_paths_are_relative_to_the_config_file() {
        let (dir, path) = write(
            "name = \"mine\"\n[data]\nsource = \"folders\"\nclasses = { a = \"imgs/a\", b = \"/abs/b\" }\nconcepts = { red = \"c/red\" }\nrandom_sets = { r0 = \"r/0\", r1 = \"r/1\", r2 = \"r/2\" }\n",
        );
        let config = ExperimentConfig::load(&path).unwrap();
        let DataConfig::Folders { classes, .. } = config.data else { unreachable!("folders expected") };
        assert_eq!(classes["a"], dir.path().join("imgs/a"));
        assert_eq!(classes["b"], PathBuf::from("/abs/b"));
    }
}
