//! The content-addressed artifact store.
//!
//! Every job of an experiment is a pure function of its inputs. Its output is
//! a folder `<store>/<kind>/<key>/`, where the key is a blake3 hash of the
//! job kind, its parameters and the keys (or content hashes) of its inputs.
//! A folder appears only when complete: jobs build into a temporary sibling
//! and rename it into place, so a killed job never leaves a half-written
//! artifact that a later run would trust. The store holds no state outside
//! the file system, so it can live on a shared disk that many machines use.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{CoreError, Result};

/// The hex blake3 key of an artifact.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ArtifactKey(String);

impl ArtifactKey {
    /// The full hex key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for logs and folder names people read.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for ArtifactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds an [`ArtifactKey`] from everything a job's output depends on.
///
/// Each part is framed with its name and length, so that two different lists
/// of parts can never produce the same byte stream.
pub struct KeyBuilder {
    hasher: blake3::Hasher,
}

impl KeyBuilder {
    /// Starts a key for jobs of `kind` (for example `"train"`).
    pub fn new(kind: &str) -> Self {
        let mut builder = KeyBuilder { hasher: blake3::Hasher::new() };
        builder.bytes("tcav-artifact-v1", kind.as_bytes());
        builder
    }

    fn bytes(&mut self, name: &str, bytes: &[u8]) -> &mut Self {
        self.hasher.update(&(name.len() as u64).to_le_bytes());
        self.hasher.update(name.as_bytes());
        self.hasher.update(&(bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
        self
    }

    /// Adds a parameter, hashed through its JSON form.
    pub fn param<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> &mut Self {
        // Serialising plain config structs to JSON cannot fail; if a custom
        // Serialize impl ever does, hashing its error message still changes
        // the key, which is the safe direction.
        let json = serde_json::to_vec(value).unwrap_or_else(|e| e.to_string().into_bytes());
        self.bytes(name, &json)
    }

    /// Adds the key of an input artifact.
    pub fn input(&mut self, name: &str, key: &ArtifactKey) -> &mut Self {
        self.bytes(name, key.as_str().as_bytes())
    }

    /// Adds a content hash (for example of an image file).
    pub fn content(&mut self, name: &str, hash: &str) -> &mut Self {
        self.bytes(name, hash.as_bytes())
    }

    /// The key.
    pub fn finish(&self) -> ArtifactKey {
        ArtifactKey(self.hasher.finalize().to_hex().to_string())
    }
}

/// The blake3 hex hash of a file's bytes.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap(path).map_err(|e| CoreError::io("hashing", path, e))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// flushed, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating", dir, e))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| CoreError::io("creating a temporary file in", dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| CoreError::io("writing", tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| CoreError::io("flushing", tmp.path(), e))?;
    tmp.persist(path).map_err(|e| CoreError::io("renaming into", path, e.error))?;
    Ok(())
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(value).map_err(|source| CoreError::Json { path: path.into(), source })?;
    json.push(b'\n');
    write_atomic(path, &json)
}

/// Reads JSON from `path`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| CoreError::Json { path: path.into(), source })
}

/// A folder of completed artifacts, one sub-folder per job kind and key.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    root: PathBuf,
}

/// The file every completed artifact folder holds, recording its key.
pub const COMPLETE_MARKER: &str = "artifact.json";

impl ArtifactStore {
    /// A store rooted at `root`, created on first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ArtifactStore { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the artifact `kind`/`key` lives once complete.
    pub fn path(&self, kind: &str, key: &ArtifactKey) -> PathBuf {
        self.root.join(kind).join(key.as_str())
    }

    /// The artifact's folder, if it is complete.
    pub fn get(&self, kind: &str, key: &ArtifactKey) -> Option<PathBuf> {
        let path = self.path(kind, key);
        path.join(COMPLETE_MARKER).is_file().then_some(path)
    }

    /// Returns the artifact's folder, running `build` to create it first when
    /// it is not in the store. `build` writes into an empty temporary folder;
    /// only if it succeeds is that folder renamed into place. Returns the
    /// folder and whether it was built (false: it came from the store).
    pub fn get_or_build<E>(
        &self,
        kind: &str,
        key: &ArtifactKey,
        build: impl FnOnce(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<(PathBuf, bool), E>
    where
        E: From<CoreError>,
    {
        if let Some(done) = self.get(kind, key) {
            return Ok((done, false));
        }
        let kind_dir = self.root.join(kind);
        std::fs::create_dir_all(&kind_dir).map_err(|e| CoreError::io("creating", &kind_dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".tmp-{}-", key.short()))
            .tempdir_in(&kind_dir)
            .map_err(|e| CoreError::io("creating a temporary folder in", &kind_dir, e))?;
        build(tmp.path())?;
        write_json(&tmp.path().join(COMPLETE_MARKER), &serde_json::json!({ "kind": kind, "key": key }))?;
        let final_path = self.path(kind, key);
        let tmp_path = tmp.keep();
        if let Err(e) = std::fs::rename(&tmp_path, &final_path) {
            // Another process finished the same pure job first: its output is
            // as good as ours.
            let _ = std::fs::remove_dir_all(&tmp_path);
            if self.get(kind, key).is_none() {
                return Err(CoreError::io("renaming into", final_path, e).into());
            }
        }
        Ok((final_path, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_every_part() {
        let base = KeyBuilder::new("train").param("epochs", &3).finish();
        assert_eq!(base, KeyBuilder::new("train").param("epochs", &3).finish());
        assert_ne!(base, KeyBuilder::new("train").param("epochs", &4).finish());
        assert_ne!(base, KeyBuilder::new("cav").param("epochs", &3).finish());
        assert_ne!(base, KeyBuilder::new("train").param("epoch", &3).finish());
        // Framing: moving bytes between name and value changes the key.
        assert_ne!(KeyBuilder::new("k").content("ab", "c").finish(), KeyBuilder::new("k").content("a", "bc").finish());
    }

    #[test]
    fn failed_builds_leave_nothing_and_successful_ones_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let key = KeyBuilder::new("t").finish();

        let failed: std::result::Result<_, CoreError> = store.get_or_build("t", &key, |tmp| {
            std::fs::write(tmp.join("half.bin"), b"x").unwrap();
            Err(CoreError::InvalidSetName { name: "boom".into() })
        });
        assert!(failed.is_err());
        assert!(store.get("t", &key).is_none());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("t")).unwrap().collect();
        assert!(leftovers.is_empty(), "a failed build must not leave files behind");

        let mut runs = 0;
        for _ in 0..2 {
            let (path, _) = store
                .get_or_build::<CoreError>("t", &key, |tmp| {
                    runs += 1;
                    std::fs::write(tmp.join("out.txt"), b"ok").map_err(|e| CoreError::io("w", tmp, e))
                })
                .unwrap();
            assert_eq!(std::fs::read(path.join("out.txt")).unwrap(), b"ok");
        }
        assert_eq!(runs, 1, "the second call must come from the store");
    }

    #[test]
    fn atomic_writes_replace_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.json");
        write_json(&path, &serde_json::json!({"a": 1})).unwrap();
        write_json(&path, &serde_json::json!({"a": 2})).unwrap();
        let back: serde_json::Value = read_json(&path).unwrap();
        assert_eq!(back["a"], 2);
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 1);
    }
}
