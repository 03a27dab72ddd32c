//! Seed derivation.
//!
//! Every random choice in an experiment draws from a seed derived from the
//! experiment's one master seed and a label naming the choice. Derived seeds
//! do not depend on the order in which jobs run, so a job run alone (or on
//! another machine) draws exactly what it would draw inside the whole
//! experiment.

/// Derives the seed for the random choice `label` from `master`.
///
/// ```
/// let a = tcav_core::seed::derive(7, "split/fire");
/// assert_eq!(a, tcav_core::seed::derive(7, "split/fire"));
/// assert_ne!(a, tcav_core::seed::derive(7, "split/water"));
/// ```
pub fn derive(master: u64, label: &str) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"tcav-seed-v1\0");
    hasher.update(&master.to_le_bytes());
    hasher.update(label.as_bytes());
    let bytes = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_depend_on_master_and_label() {
        assert_ne!(derive(1, "a"), derive(2, "a"));
        assert_ne!(derive(1, "a"), derive(1, "b"));
        assert_eq!(derive(1, "a"), derive(1, "a"));
    }
}
