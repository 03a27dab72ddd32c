//! The preprocessing stage: raw image folders in, clean square PNGs out.
//!
//! Takes one folder of raw images per class, concept or random set, as
//! crawled or generated: any size, orientation, colour type or bit depth,
//! possibly with duplicates, truncated downloads and files that are not
//! images at all. Produces the training layout
//! (`<out>/<split>/<class>/*.png`, [`tcav_core::TrainLayout`]) with
//! [`prepare_training`], or the TCAV layout (`<out>/<set>/*.png`,
//! [`tcav_core::TcavLayout`]) with [`prepare_sets`], together with a
//! [`Manifest`] that records what happened to every input file and why.
//!
//! Every output image is an upright, 8-bit RGB, `size` × `size` PNG named
//! after the content hash of its source, so reruns are stable and identical
//! files collapse into one. Class images are split into train, validation
//! and test by a salted hash of their content ([`split`]), so adding images
//! never moves existing ones, and the output is the same whatever the number
//! of rayon threads.
//!
//! Invariant: this crate never deletes or modifies an input image, never
//! writes into an input folder, and never trains a model or touches tensors
//! (it does not depend on tch).

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test"))]

mod config;
mod decode;
mod error;
mod geometry;
mod manifest;
mod prepare;
pub mod split;

#[cfg(test)]
mod fixtures;

pub use config::{
    BadImagePolicy, CropMode, MAX_DECODE_BYTES, MAX_SIDE, NEAR_UNIFORM_LUMA_STD, PreprocessConfig, ResizeFilter,
    SplitFractions,
};
pub use error::PreprocessError;
pub use manifest::{LayoutKind, Manifest, ManifestEntry, Outcome, RejectionKind, SetSummary, SplitCounts};
pub use prepare::{prepare_sets, prepare_training};
