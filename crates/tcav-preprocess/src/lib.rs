//! The preprocessing stage: raw image folders in, clean square PNGs out.
//!
//! **Takes** one folder of raw images per class, concept and random set, as
//! crawled or generated: any size, orientation, colour type (RGB, RGBA,
//! greyscale, palette, CMYK) or bit depth, animated GIFs, duplicates,
//! truncated downloads and files that are not images at all; plus, from the
//! config, an exclusion list written during manual review
//! ([`exclusions`]) and a split lockfile ([`lock`]).
//!
//! **Produces**, with [`prepare_dataset`], the seed project's two layouts in
//! one output folder: `splited/{train,validation,test}/<class>/*.png`
//! ([`tcav_core::TrainLayout`]) and `for_tcav/<set>/*.png`
//! ([`tcav_core::TcavLayout`]); a report ([`Manifest`], as `report.json` and
//! `report.txt`: counts per set and split, rejections by reason, one line per
//! bad file, the duplicate groups); the split lock; and one HTML contact
//! sheet per set for review. [`prepare_training`] and [`prepare_sets`]
//! write one layout each, without cross-set duplicate detection.
//!
//! Every output image is an upright, 8-bit RGB, `size` × `size` PNG named
//! after the content hash of its source file, decoded under limits on file
//! size, dimensions and memory (a decompression bomb is rejected from its
//! header), checked for truncation, composited onto the background, cropped
//! or padded to a square and resized. Exact duplicates (the same decoded
//! pixels) and near duplicates (perceptual hashes within a Hamming distance,
//! confirmed by colour thumbnails: [`DuplicateConfig`]) are found within and
//! across all sets, and each group is kept in one set
//! only, by the rule documented on [`prepare_dataset`]. Class images are
//! split into train, validation and test by a salted hash of their content,
//! one group of near duplicates (or frames of one GIF) at a time, and the
//! lockfile keeps every earlier assignment ([`split`]). The result is the
//! same whatever the number of rayon threads.
//!
//! **Invariant:** this crate never modifies or deletes an input image, never
//! writes into an input folder (only the lockfile, at the path the config
//! names, is rewritten), and never trains a model or touches tensors (it
//! does not depend on tch).

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test"))]

mod config;
mod contact_sheet;
mod decode;
mod error;
pub mod exclusions;
mod geometry;
pub mod lock;
mod manifest;
mod pipeline;
mod prepare;
pub mod split;

#[cfg(test)]
mod acceptance;
#[cfg(test)]
mod fixtures;

pub use config::{
    BadImagePolicy, CropMode, DuplicateConfig, GifFrames, MAX_DECODE_BYTES, MAX_FILE_BYTES, MAX_GIF_FRAMES,
    MAX_NEAR_DUPLICATE_DISTANCE, MAX_SIDE, NEAR_UNIFORM_LUMA_STD, PreprocessConfig, ResizeFilter, SplitFractions,
    WithinSet,
};
pub use decode::Rejection;
pub use error::PreprocessError;
pub use lock::SplitLock;
pub use manifest::{
    DuplicateGroup, DuplicateMember, DuplicateRelation, LayoutKind, LockConflict, Manifest, ManifestEntry, Outcome,
    RejectionKind, SetRole, SetSummary, SplitCounts,
};
pub use pipeline::{Frame, PERCEPTUAL_HASH, PreprocessedImage, perceptual_hash, preprocess_bytes};
pub use prepare::{
    CONTACT_SHEETS_DIR, DatasetInputs, LOCK_FILE, OUTPUT_VERSION, REPORT_JSON, REPORT_TEXT, TCAV_DIR, TRAIN_DIR,
    prepare_dataset, prepare_sets, prepare_training, tcav_layout, train_layout,
};
