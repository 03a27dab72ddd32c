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

/// Writes named matrices and string metadata to a safetensors file,
/// atomically.
pub fn write_safetensors(path: &Path, tensors: &[(&str, &Matrix)], metadata: HashMap<String, String>) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, [usize; 2])> = tensors
        .iter()
        .map(|(name, m)| {
            let raw = m.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.to_string(), raw, [m.rows, m.cols])
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (name, raw, shape) in &bytes {
        let view = TensorView::new(Dtype::F32, shape.to_vec(), raw)
            .map_err(|e| CoreError::Tensors { path: path.into(), reason: e.to_string() })?;
        views.push((name.clone(), view));
    }
    let serialized = safetensors::serialize(views, Some(metadata))
        .map_err(|e| CoreError::Tensors { path: path.into(), reason: e.to_string() })?;
    write_atomic(path, &serialized)
}

/// Reads the 2-D `f32` tensor `name` from a safetensors file.
pub fn read_safetensors(path: &Path, name: &str) -> Result<Matrix> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io("reading", path, e))?;
    let bad = |reason: String| CoreError::Tensors { path: path.into(), reason };
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
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
