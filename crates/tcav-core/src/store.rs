//! The content-addressed artifact store.
//!
//! Every job of an experiment is a pure function of its inputs. Its output is
//! a folder `<store>/<kind>/<key>/`, where the key is a blake3 hash of the
//! job kind, its parameters and the keys (or content hashes) of its inputs.
//! A folder appears only when complete: jobs build into a temporary sibling
//! and rename it into place, so a killed job never leaves a half-written
//! artifact that a later run would trust. The store holds no state outside
//! the file system, so it can live on a shared disk that many machines use.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
///
/// It also keeps a digest per part name ([`KeyBuilder::parts`]), which a
/// run records, so that a later plan can say *which* input of a job changed.
pub struct KeyBuilder {
    hasher: blake3::Hasher,
    parts: BTreeMap<String, blake3::Hasher>,
}

impl KeyBuilder {
    /// Starts a key for jobs of `kind` (for example `"train"`).
    pub fn new(kind: &str) -> Self {
        let mut builder = KeyBuilder { hasher: blake3::Hasher::new(), parts: BTreeMap::new() };
        builder.bytes("tcav-artifact-v1", kind.as_bytes());
        builder.parts.clear();
        builder
    }

    fn bytes(&mut self, name: &str, bytes: &[u8]) -> &mut Self {
        for hasher in [&mut self.hasher, self.parts.entry(name.to_string()).or_default()] {
            hasher.update(&(name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        self
    }

    /// A short digest of each named part (parts added several times under
    /// one name, like the images of a set, share one digest).
    pub fn parts(&self) -> BTreeMap<String, String> {
        self.parts.iter().map(|(name, h)| (name.clone(), h.finalize().to_hex()[..16].to_string())).collect()
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
    // tempfile creates files readable by their owner only; artifacts and
    // reports are meant to be shared (a store on a cluster's shared disk).
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder.tempfile_in(dir).map_err(|e| CoreError::io("creating a temporary file in", dir, e))?;
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
///
/// Cloning is cheap and clones share the forcing and counting state below,
/// which lives in this process only: the store itself is just files.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    root: PathBuf,
    /// Job kinds whose artifacts are rebuilt once in this process even when
    /// stored (`--force`).
    forced: Arc<BTreeSet<String>>,
    /// (kind, key) rebuilt under `forced` so far, so a forced job runs once.
    rebuilt: Arc<Mutex<BTreeSet<(String, ArtifactKey)>>>,
    /// Work done through this store, per kind: how many artifacts were
    /// built and how many were reused.
    work: Arc<Mutex<BTreeMap<String, Work>>>,
}

/// How many artifacts of one kind a process built and reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Work {
    /// Built (the job ran).
    pub built: usize,
    /// Taken from the store (the job did not run).
    pub reused: usize,
    /// Found corrupted (a file missing or with the wrong hash) and rebuilt.
    pub corrupted: usize,
}

/// The file every completed artifact folder holds, recording its key and
/// the blake3 hash of every other file in the folder. It is written last.
pub const COMPLETE_MARKER: &str = "artifact.json";

/// What [`COMPLETE_MARKER`] records.
#[derive(Serialize, serde::Deserialize)]
struct Marker {
    kind: String,
    key: ArtifactKey,
    /// Relative path (with `/`) → blake3 hex of the file's bytes.
    files: BTreeMap<String, String>,
}

impl ArtifactStore {
    /// A store rooted at `root`, created on first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ArtifactStore { root: root.into(), forced: Arc::default(), rebuilt: Arc::default(), work: Arc::default() }
    }

    /// The same store, rebuilding the artifacts of the given kinds once
    /// each in this process even when they are stored. The rebuilt folder
    /// replaces the stored one only once complete.
    pub fn forcing<I: IntoIterator<Item = S>, S: Into<String>>(mut self, kinds: I) -> Self {
        self.forced = Arc::new(kinds.into_iter().map(Into::into).collect());
        self
    }

    /// Whether artifacts of `kind` are being forced.
    pub fn is_forced(&self, kind: &str) -> bool {
        self.forced.contains(kind)
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Work done through this store (and its clones) so far, per kind.
    pub fn work(&self) -> BTreeMap<String, Work> {
        self.work.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Counts work done outside [`ArtifactStore::get_or_build`], for
    /// caches that keep one file per entry (activations, gradients).
    pub fn count(&self, kind: &str, update: impl FnOnce(&mut Work)) {
        if let Ok(mut work) = self.work.lock() {
            update(work.entry(kind.to_string()).or_default());
        }
    }

    /// The digest of the stored artifact's files under each of `prefixes`
    /// (relative folders like `splited/`), from the hashes its marker
    /// recorded (read once): keys for what a later job reads of it, so that
    /// job is reused when those files did not change even if others did.
    pub fn files_digests<S: AsRef<str>>(&self, kind: &str, key: &ArtifactKey, prefixes: &[S]) -> Result<Vec<String>> {
        let marker: Marker = read_json(&self.path(kind, key).join(COMPLETE_MARKER))?;
        Ok(prefixes
            .iter()
            .map(|prefix| {
                let prefix = prefix.as_ref();
                let mut hasher = KeyBuilder::new("files");
                for (file, hash) in marker.files.range(prefix.to_string()..).take_while(|(f, _)| f.starts_with(prefix))
                {
                    hasher.content(file, hash);
                }
                hasher.finish().to_string()
            })
            .collect())
    }

    /// Where the artifact `kind`/`key` lives once complete.
    pub fn path(&self, kind: &str, key: &ArtifactKey) -> PathBuf {
        self.root.join(kind).join(key.as_str())
    }

    /// The artifact's folder, if it is complete and intact. A folder whose
    /// files no longer match the hashes its marker recorded (a truncated
    /// copy, a disk error, a hand edit) is removed, so it is rebuilt.
    pub fn get(&self, kind: &str, key: &ArtifactKey) -> Option<PathBuf> {
        let path = self.path(kind, key);
        if !path.join(COMPLETE_MARKER).is_file() {
            return None;
        }
        match verify(&path, kind, key) {
            Ok(()) => Some(path),
            Err(problem) => {
                tracing::warn!(kind, key = key.short(), folder = %path.display(), problem, "corrupted artifact: rebuilding it");
                self.count(kind, |w| w.corrupted += 1);
                discard(&path);
                None
            }
        }
    }

    /// Whether the artifact is stored and intact, without counting or
    /// repairing anything (for plans).
    pub fn contains(&self, kind: &str, key: &ArtifactKey) -> bool {
        let path = self.path(kind, key);
        path.join(COMPLETE_MARKER).is_file() && verify(&path, kind, key).is_ok()
    }

    /// Returns the artifact's folder, running `build` to create it first when
    /// it is not in the store (or is forced). `build` writes into an empty
    /// temporary folder; only if it succeeds are its files hashed, the
    /// marker written, and the folder renamed into place. Returns the folder
    /// and whether it was built (false: it came from the store).
    pub fn get_or_build<E>(
        &self,
        kind: &str,
        key: &ArtifactKey,
        build: impl FnOnce(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<(PathBuf, bool), E>
    where
        E: From<CoreError>,
    {
        let force = self.is_forced(kind)
            && self.rebuilt.lock().map(|r| !r.contains(&(kind.to_string(), key.clone()))).unwrap_or(true);
        if !force && let Some(done) = self.get(kind, key) {
            self.count(kind, |w| w.reused += 1);
            return Ok((done, false));
        }
        let kind_dir = self.root.join(kind);
        std::fs::create_dir_all(&kind_dir).map_err(|e| CoreError::io("creating", &kind_dir, e))?;
        let prefix = format!(".tmp-{}-", key.short());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        // Readable by everyone sharing the store, like any finished folder.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755));
        let tmp =
            builder.tempdir_in(&kind_dir).map_err(|e| CoreError::io("creating a temporary folder in", &kind_dir, e))?;
        build(tmp.path())?;
        let marker = Marker { kind: kind.to_string(), key: key.clone(), files: hash_tree(tmp.path())? };
        write_json(&tmp.path().join(COMPLETE_MARKER), &marker)?;
        let final_path = self.path(kind, key);
        if force && final_path.exists() {
            discard(&final_path);
        }
        let tmp_path = tmp.keep();
        if let Err(e) = std::fs::rename(&tmp_path, &final_path) {
            // Another process finished the same pure job first: its output is
            // as good as ours.
            let _ = std::fs::remove_dir_all(&tmp_path);
            if self.get(kind, key).is_none() {
                return Err(CoreError::io("renaming into", final_path, e).into());
            }
        }
        if force && let Ok(mut rebuilt) = self.rebuilt.lock() {
            rebuilt.insert((kind.to_string(), key.clone()));
        }
        self.count(kind, |w| w.built += 1);
        Ok((final_path, true))
    }
}

/// Moves a folder out of the store's namespace at once (a rename), then
/// deletes it; a reader never sees it half deleted under its key.
fn discard(path: &Path) {
    let parent = path.parent().unwrap_or(Path::new("."));
    let aside = tempfile::Builder::new().prefix(".discarded-").tempdir_in(parent).map(tempfile::TempDir::keep);
    match aside {
        Ok(aside) => {
            let target = aside.join("artifact");
            if std::fs::rename(path, &target).is_ok() {
                let _ = std::fs::remove_dir_all(&aside);
                return;
            }
            let _ = std::fs::remove_dir_all(&aside);
            let _ = std::fs::remove_dir_all(path);
        }
        Err(_) => {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Blake3 of every file under `dir` (recursively), by relative path with
/// `/` separators.
pub fn hash_tree(dir: &Path) -> Result<BTreeMap<String, String>> {
    files_in(dir)?
        .into_iter()
        .map(|file| {
            let hash = hash_file(&dir.join(&file))?;
            Ok((file, hash))
        })
        .collect()
}

/// Every file under `dir` (recursively), by relative path with `/`
/// separators, sorted.
pub fn files_in(dir: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| CoreError::io("listing", dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| CoreError::io("listing", dir, e))?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                let name: Vec<String> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                out.push(name.join("/"));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    Ok(files)
}

/// Checks a stored folder against its marker: the same key, and every
/// recorded file present with the recorded hash.
fn verify(dir: &Path, kind: &str, key: &ArtifactKey) -> std::result::Result<(), String> {
    let marker: Marker = read_json(&dir.join(COMPLETE_MARKER)).map_err(|e| e.to_string())?;
    if marker.kind != kind || &marker.key != key {
        return Err(format!("its marker names {}/{}", marker.kind, marker.key.short()));
    }
    for (file, expected) in &marker.files {
        let path = dir.join(file);
        match hash_file(&path) {
            Ok(actual) if &actual == expected => {}
            Ok(_) => return Err(format!("{file} does not match its recorded hash")),
            Err(_) => return Err(format!("{file} is missing or unreadable")),
        }
    }
    Ok(())
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

    fn build_counting(store: &ArtifactStore, key: &ArtifactKey, runs: &mut usize) -> PathBuf {
        let (path, _) = store
            .get_or_build::<CoreError>("t", key, |tmp| {
                *runs += 1;
                std::fs::create_dir_all(tmp.join("sub")).map_err(|e| CoreError::io("mkdir", tmp, e))?;
                std::fs::write(tmp.join("sub/out.txt"), b"payload").map_err(|e| CoreError::io("w", tmp, e))
            })
            .unwrap();
        path
    }

    #[test]
    fn corrupted_truncated_or_missing_files_are_detected_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let key = KeyBuilder::new("t").finish();
        let mut runs = 0;
        let path = build_counting(&store, &key, &mut runs);
        let file = path.join("sub/out.txt");
        let damages: [&dyn Fn(&Path); 3] =
            [&|f| std::fs::write(f, b"payloaX").unwrap(), &|f| std::fs::write(f, b"pay").unwrap(), &|f| {
                std::fs::remove_file(f).unwrap()
            }];
        for damage in damages {
            damage(&file);
            assert!(!store.contains("t", &key));
            build_counting(&store, &key, &mut runs);
            assert_eq!(std::fs::read(&file).unwrap(), b"payload");
        }
        assert_eq!(runs, 4, "each damaged copy is rebuilt once");
        let work = store.work()["t"];
        assert_eq!((work.built, work.corrupted), (4, 3));
        // Nothing is left beside the artifact.
        assert_eq!(std::fs::read_dir(dir.path().join("t")).unwrap().count(), 1);
    }

    #[test]
    fn forced_kinds_are_rebuilt_once_per_process() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyBuilder::new("t").finish();
        let mut runs = 0;
        build_counting(&ArtifactStore::new(dir.path()), &key, &mut runs);
        let forced = ArtifactStore::new(dir.path()).forcing(["t"]);
        build_counting(&forced, &key, &mut runs);
        build_counting(&forced, &key, &mut runs);
        assert_eq!(runs, 2, "forced once, then reused");
        assert_eq!(forced.work()["t"], Work { built: 1, reused: 1, corrupted: 0 });
        assert!(ArtifactStore::new(dir.path()).forcing(["other"]).get("t", &key).is_some());
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o044, 0o044, "written files must be readable by others: {mode:o}");
        }
    }
}
