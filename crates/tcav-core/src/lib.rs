//! Types shared by every tcav-rs stage, and nothing else.
//!
//! Takes: nothing from other stages. Produces: the vocabulary the stages use
//! to talk to each other through files: [`SetName`]s, the on-disk
//! [`layout`]s of a dataset, [`seed`] derivation, and the content-addressed
//! [`store`] where every job writes its output atomically under a key derived
//! from its inputs.
//!
//! Invariant: this crate never depends on tch, the network or the `image`
//! crate, so every stage can depend on it at no cost.

#![deny(missing_docs)]

pub mod error;
pub mod layout;
pub mod matrix;
pub mod seed;
pub mod store;

pub use error::{CoreError, Result};
pub use layout::{ImageSetDir, SetName, Split, TcavLayout, TrainLayout};
pub use matrix::Matrix;
pub use store::{ArtifactKey, ArtifactStore, KeyBuilder};
