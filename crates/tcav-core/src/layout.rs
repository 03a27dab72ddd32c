//! The on-disk layouts that stages hand to each other.
//!
//! * The **training layout** holds one folder per split and class:
//!   `<root>/<split>/<class>/*.png`. The classifier stage reads it.
//! * The **TCAV layout** holds one folder per image set (concept or random
//!   set): `<root>/<set>/*.png`. The activation stage reads it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// File extensions that count as images, lower case.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "webp", "bmp"];

/// The name of a class, concept or random set; also its folder name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SetName(String);

impl SetName {
    /// Validates `name` as a folder-safe set name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let ok = !name.is_empty()
            && name != "."
            && name != ".."
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok { Ok(SetName(name)) } else { Err(CoreError::InvalidSetName { name }) }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SetName {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self> {
        SetName::new(value)
    }
}

impl From<SetName> for String {
    fn from(value: SetName) -> Self {
        value.0
    }
}

impl fmt::Display for SetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A split of the class images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Images the classifier is fitted on.
    Train,
    /// Images used to pick the best epoch.
    Validation,
    /// Held-out images, used for accuracy and for TCAV scores.
    Test,
}

impl Split {
    /// All splits, in layout order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    /// The folder name of the split.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `<root>/<split>/<class>/*.png`: what the classifier trains and is tested on.
#[derive(Clone, Debug)]
pub struct TrainLayout {
    root: PathBuf,
}

impl TrainLayout {
    /// A layout rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        TrainLayout { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one class in one split.
    pub fn class_dir(&self, split: Split, class: &SetName) -> PathBuf {
        self.root.join(split.as_str()).join(class.as_str())
    }

    /// The images of one class in one split, sorted by path.
    pub fn images(&self, split: Split, class: &SetName) -> Result<Vec<PathBuf>> {
        ImageSetDir::new(self.class_dir(split, class), format!("{split} images of class `{class}`")).list()
    }
}

/// `<root>/<set>/*.png`: concept sets and random sets for CAVs.
#[derive(Clone, Debug)]
pub struct TcavLayout {
    root: PathBuf,
}

impl TcavLayout {
    /// A layout rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        TcavLayout { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one set.
    pub fn set_dir(&self, set: &SetName) -> PathBuf {
        self.root.join(set.as_str())
    }

    /// The images of one set, sorted by path.
    pub fn images(&self, set: &SetName) -> Result<Vec<PathBuf>> {
        ImageSetDir::new(self.set_dir(set), format!("set `{set}`")).list()
    }
}

/// A folder of images and a human description of what it should hold, used
/// to produce errors that say what is missing.
#[derive(Clone, Debug)]
pub struct ImageSetDir {
    path: PathBuf,
    what: String,
}

impl ImageSetDir {
    /// Describes the folder `path`, which should hold `what`.
    pub fn new(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        ImageSetDir { path: path.into(), what: what.into() }
    }

    /// Lists the image files (by extension) directly in the folder, sorted.
    ///
    /// Fails with a message naming the folder when it is missing or holds no
    /// images, so that an empty concept never silently yields a CAV.
    pub fn list(&self) -> Result<Vec<PathBuf>> {
        if !self.path.is_dir() {
            return Err(CoreError::MissingFolder { path: self.path.clone(), what: self.what.clone() });
        }
        let entries = std::fs::read_dir(&self.path).map_err(|e| CoreError::io("listing", &self.path, e))?;
        let mut images = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CoreError::io("listing", &self.path, e))?;
            let path = entry.path();
            if path.is_file() && is_image_path(&path) {
                images.push(path);
            }
        }
        if images.is_empty() {
            return Err(CoreError::EmptyFolder { path: self.path.clone(), what: self.what.clone() });
        }
        images.sort();
        Ok(images)
    }
}

/// Whether the path has one of the [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|known| e.eq_ignore_ascii_case(known)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_reject_path_tricks() {
        assert!(SetName::new("random500_0").is_ok());
        assert!(SetName::new("red").is_ok());
        for bad in ["", "..", "a/b", "a b", "é"] {
            assert!(SetName::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn missing_and_empty_folders_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let layout = TcavLayout::new(dir.path());
        let red = SetName::new("red").unwrap();
        let err = layout.images(&red).unwrap_err().to_string();
        assert!(err.contains("does not exist") && err.contains("red"), "{err}");

        std::fs::create_dir(layout.set_dir(&red)).unwrap();
        std::fs::write(layout.set_dir(&red).join("notes.txt"), "x").unwrap();
        let err = layout.images(&red).unwrap_err().to_string();
        assert!(err.contains("holds no images") && err.contains("red"), "{err}");

        std::fs::write(layout.set_dir(&red).join("b.PNG"), "x").unwrap();
        std::fs::write(layout.set_dir(&red).join("a.png"), "x").unwrap();
        let listed = layout.images(&red).unwrap();
        let names: Vec<_> = listed.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["a.png", "b.PNG"]);
    }
}
