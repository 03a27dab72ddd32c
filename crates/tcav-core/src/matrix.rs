//! Row-major `f32` matrices and their safetensors files.
//!
//! Stages hand activations, gradients and CAVs to each other as plain
//! matrices (one row per image or per CAV), stored as safetensors so that
//! Python users can open them with `safetensors.numpy.load_file`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{CoreError, Result};
use crate::store::write_atomic;

/// A dense row-major matrix of `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// Wraps `data` as a `rows`×`cols` matrix; `None` if the length is wrong.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Option<Self> {
        (rows.checked_mul(cols) == Some(data.len())).then_some(Matrix { rows, cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// All values, row after row.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Consumes the matrix, returning its values row after row.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= rows()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Iterates over the rows.
    pub fn iter_rows(&self) -> impl ExactSizeIterator<Item = &[f32]> + '_ {
        // chunks_exact of a zero-width matrix would panic; it has no data.
        (0..self.rows).map(move |i| self.row(i))
    }
}

/// The metadata key under which [`write_safetensors`] records a blake3 hash
/// of the file's tensors, so a truncated or damaged file is detected.
pub const CHECKSUM_KEY: &str = "blake3";

/// The checksum of a file's tensors: name and raw bytes, in name order.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut sorted: Vec<(&str, &[u8])> = tensors.collect();
    sorted.sort_by_key(|(name, _)| *name);
    let mut hasher = blake3::Hasher::new();
    for (name, data) in sorted {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(&(data.len() as u64).to_le_bytes());
        hasher.update(data);
    }
    hasher.finalize().to_hex().to_string()
}

/// Writes named matrices and string metadata to a safetensors file,
/// atomically, with a checksum of the tensors in the metadata
/// ([`CHECKSUM_KEY`]).
pub fn write_safetensors(
    path: &Path,
    tensors: &[(&str, &Matrix)],
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, [usize; 2])> = tensors
        .iter()
        .map(|(name, m)| {
            let raw = m.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.to_string(), raw, [m.rows, m.cols])
        })
        .collect();
    metadata.insert(CHECKSUM_KEY.to_string(), checksum(bytes.iter().map(|(n, raw, _)| (n.as_str(), raw.as_slice()))));
    let mut views = Vec::with_capacity(bytes.len());
    for (name, raw, shape) in &bytes {
        let view = TensorView::new(Dtype::F32, shape.to_vec(), raw)
            .map_err(|e| CoreError::Tensors { path: path.into(), reason: e.to_string() })?;
        views.push((name.clone(), view));
    }
    let serialized = safetensors::serialize(views, Some(metadata))
        .map_err(|e| CoreError::Tensors { path: path.into(), reason: e.to_string() })?;
    write_atomic(path, &sorted_header(serialized).map_err(|reason| CoreError::Tensors { path: path.into(), reason })?)
}

/// Rewrites a serialized file's JSON header with its keys sorted.
///
/// safetensors writes the metadata from a `HashMap`, whose order changes
/// from process to process, so the same tensors would give different bytes
/// and a run could not be reproduced bit for bit. The header is
/// `u64 length, JSON padded with spaces to a multiple of 8`; data offsets
/// are relative to the end of the header, so re-encoding it is safe.
fn sorted_header(file: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let length = file.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).ok_or("no header length")?;
    let end = usize::try_from(length).map_err(|e| e.to_string())?.checked_add(8).ok_or("header too long")?;
    let header = file.get(8..end).ok_or("header past the end of the file")?;
    // serde_json's `Value` keeps object keys in a BTreeMap: sorted.
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    let mut json = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + file.len() - end);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&file[end..]);
    Ok(out)
}

/// Whether a safetensors file exists, parses, and matches the checksum
/// [`write_safetensors`] recorded in it (a file without one is not intact).
pub fn is_intact(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| matches!(verified(path, &bytes), Ok((_, true))))
}

/// Parses a safetensors file and checks its checksum when it has one:
/// returns the parsed file and whether a checksum was present.
fn verified<'a>(path: &Path, bytes: &'a [u8]) -> Result<(safetensors::SafeTensors<'a>, bool)> {
    let bad = |reason: String| CoreError::Tensors { path: path.into(), reason };
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let Some(expected) = header.metadata().as_ref().and_then(|m| m.get(CHECKSUM_KEY)) else {
        return Ok((file, false));
    };
    let tensors = file.tensors();
    let actual = checksum(tensors.iter().map(|(n, v)| (n.as_str(), v.data())));
    if &actual != expected {
        return Err(bad("its tensors do not match the checksum recorded when it was written".into()));
    }
    Ok((file, true))
}

/// Reads the 2-D `f32` tensor `name` from a safetensors file, checking the
/// checksum when the file has one.
pub fn read_safetensors(path: &Path, name: &str) -> Result<Matrix> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io("reading", path, e))?;
    let bad = |reason: String| CoreError::Tensors { path: path.into(), reason };
    let (file, _) = verified(path, &bytes)?;
    let view = file.tensor(name).map_err(|e| bad(format!("no tensor `{name}` ({e})")))?;
    let (rows, cols) = match (view.dtype(), view.shape()) {
        (Dtype::F32, [rows, cols]) => (*rows, *cols),
        (dtype, shape) => {
            return Err(bad(format!("tensor `{name}` is {dtype:?} {shape:?}, expected a 2-D F32 matrix")));
        }
    };
    let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Matrix::new(rows, cols, data).ok_or_else(|| bad(format!("tensor `{name}` has the wrong number of values")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tensors_and_metadata_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let m = Matrix::new(1, 2, vec![1.0, 2.0]).unwrap();
        let metadata: HashMap<String, String> = (0..20).map(|i| (format!("key{i}"), format!("v{i}"))).collect();
        let mut files = Vec::new();
        for i in 0..4 {
            // Fresh maps: each has its own random iteration order.
            let path = dir.path().join(format!("{i}.safetensors"));
            write_safetensors(&path, &[("b", &m), ("a", &m)], metadata.clone().into_iter().collect()).unwrap();
            assert_eq!(read_safetensors(&path, "a").unwrap(), m);
            files.push(std::fs::read(&path).unwrap());
        }
        assert!(files.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn damaged_files_fail_their_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let m = Matrix::new(1, 4, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        write_safetensors(&path, &[("x", &m)], HashMap::new()).unwrap();
        assert!(is_intact(&path));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40; // one flipped bit in the last value
        std::fs::write(&path, &bytes).unwrap();
        assert!(!is_intact(&path));
        let err = read_safetensors(&path, "x").unwrap_err().to_string();
        assert!(err.contains("checksum") && err.contains("m.safetensors"), "{err}");
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(!is_intact(&path), "truncated");
        assert!(!is_intact(&dir.path().join("missing.safetensors")));
    }

    #[test]
    fn matrices_round_trip_through_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let a = Matrix::new(2, 3, vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, 7.25]).unwrap();
        let b = Matrix::new(1, 1, vec![9.0]).unwrap();
        write_safetensors(&path, &[("a", &a), ("b", &b)], HashMap::new()).unwrap();
        assert_eq!(read_safetensors(&path, "a").unwrap(), a);
        assert_eq!(read_safetensors(&path, "b").unwrap(), b);
        let err = read_safetensors(&path, "c").unwrap_err().to_string();
        assert!(err.contains("no tensor `c`"), "{err}");
        assert_eq!(a.row(1), &[0.0, f32::MIN_POSITIVE, 7.25]);
        assert!(Matrix::new(2, 2, vec![0.0; 3]).is_none());
    }
}
