//! Which split each class image goes to.
//!
//! An image's split is a function of the salt, its class and its content
//! hash alone: the hash gives a position `u` in [0, 1), and the split
//! fractions cut [0, 1) into train | validation | test. So adding or removing
//! other images never moves an image between splits, and the same bytes land
//! in the same split on every machine and thread count.
//!
//! Images are placed in units: a group of near duplicates, or the frames of
//! one GIF, always share one split, the one its representative (its first
//! member in priority order) draws, so that no near copy of a test image is
//! trained on.
//!
//! The one exception keeps small classes usable: when a class has at least 3
//! units but a split with a non-zero fraction got none, the unit whose
//! position lies closest to that split's interval moves there from a split
//! that keeps at least one unit (ties: the smaller content hash). Only such
//! moved units can move again when images are added later, unless a split
//! lockfile pins them (see [`crate::lock`]): locked units never move.

use tcav_core::{KeyBuilder, SetName, Split};

use crate::config::SplitFractions;

/// The position in [0, 1) of the image with content hash `source_hash` in
/// class `class`.
pub fn split_position(salt: &str, class: &SetName, source_hash: &str) -> f64 {
    let key = KeyBuilder::new("preprocess-split")
        .content("salt", salt)
        .content("class", class.as_str())
        .content("source", source_hash)
        .finish();
    // The key is 64 hex digits, so its first 16 always parse as a u64.
    let bits = key.as_str().get(..16).and_then(|hex| u64::from_str_radix(hex, 16).ok()).unwrap_or(0);
    // The top 53 bits fill an f64 mantissa exactly, so u < 1 always.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The interval of positions `[lo, hi)` that `split` covers. The last split
/// with a non-zero fraction reaches up to 1, so that fractions that add up to
/// 1 only within rounding still cover every position.
fn interval(split: Split, fractions: &SplitFractions) -> (f64, f64) {
    let mut lo = 0.0;
    for s in Split::ALL {
        let share = fractions.get(s);
        if s == split {
            let is_last = Split::ALL.iter().filter(|&&later| later > s).all(|&later| fractions.get(later) <= 0.0);
            return (lo, if is_last && share > 0.0 { 1.0 } else { lo + share });
        }
        lo += share;
    }
    (lo, lo)
}

/// The split of the image at position `u`, before the small-class fix.
pub fn natural_split(u: f64, fractions: &SplitFractions) -> Split {
    let mut last_nonempty = Split::Train;
    for split in Split::ALL {
        if fractions.get(split) <= 0.0 {
            continue;
        }
        last_nonempty = split;
        let (_, hi) = interval(split, fractions);
        if u < hi {
            return split;
        }
    }
    last_nonempty
}

/// One unit of a class (see the module docs), for split assignment.
#[derive(Clone, Debug)]
pub(crate) struct Placed {
    pub position: f64,
    pub source_hash: String,
    pub split: Split,
    /// Pinned by the lockfile: never moved.
    pub locked: bool,
}

/// Moves units so that every split with a non-zero fraction holds at least
/// one, when the class has at least 3. Returns the indices moved.
pub(crate) fn fill_empty_splits(images: &mut [Placed], fractions: &SplitFractions) -> Vec<usize> {
    let mut moved = Vec::new();
    if images.len() < 3 {
        return moved;
    }
    loop {
        let count = |split: Split, images: &[Placed]| images.iter().filter(|p| p.split == split).count();
        let Some(empty) = Split::ALL.into_iter().find(|&s| fractions.get(s) > 0.0 && count(s, images) == 0) else {
            break;
        };
        // At most two splits hold the >= 3 units, so at least one holds 2 or
        // more and stays non-empty after giving one away.
        let counts = Split::ALL.map(|s| count(s, images));
        let can_give = |split: Split| counts[Split::ALL.iter().position(|&s| s == split).unwrap_or(0)] >= 2;
        let (lo, hi) = interval(empty, fractions);
        let distance = |u: f64| {
            if u < lo {
                lo - u
            } else if u >= hi {
                u - hi
            } else {
                0.0
            }
        };
        let chosen = images
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.locked && can_give(p.split))
            .min_by(|(_, a), (_, b)| {
                distance(a.position).total_cmp(&distance(b.position)).then_with(|| a.source_hash.cmp(&b.source_hash))
            })
            .map(|(i, _)| i);
        let Some(i) = chosen else { break };
        images[i].split = empty;
        moved.push(i);
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str) -> SetName {
        SetName::new(name).unwrap()
    }

    fn fake_hash(i: usize) -> String {
        blake3::hash(&i.to_le_bytes()).to_hex().to_string()
    }

    #[test]
    fn positions_depend_on_salt_class_and_content() {
        let fire = class("fire");
        let u = split_position("tcav", &fire, &fake_hash(1));
        assert!((0.0..1.0).contains(&u));
        assert_eq!(u, split_position("tcav", &fire, &fake_hash(1)));
        assert_ne!(u, split_position("other", &fire, &fake_hash(1)));
        assert_ne!(u, split_position("tcav", &class("water"), &fake_hash(1)));
        assert_ne!(u, split_position("tcav", &fire, &fake_hash(2)));
    }

    #[test]
    fn splits_follow_the_fractions() {
        let fractions = SplitFractions::default();
        assert_eq!(natural_split(0.0, &fractions), Split::Train);
        assert_eq!(natural_split(0.6999, &fractions), Split::Train);
        assert_eq!(natural_split(0.7, &fractions), Split::Validation);
        assert_eq!(natural_split(0.8499, &fractions), Split::Validation);
        assert_eq!(natural_split(0.85, &fractions), Split::Test);
        assert_eq!(natural_split(0.999_999_999_999, &fractions), Split::Test);
        // A zero fraction is never drawn, even at the rounding edge.
        let no_test = SplitFractions { train: 0.8, validation: 0.2 - 1e-12, test: 0.0 };
        assert_eq!(natural_split(0.999_999_999_999_9, &no_test), Split::Validation);
        let only_train = SplitFractions { train: 1.0, validation: 0.0, test: 0.0 };
        assert_eq!(natural_split(0.99, &only_train), Split::Train);

        let fire = class("fire");
        let mut counts = [0usize; 3];
        for i in 0..4000 {
            let split = natural_split(split_position("tcav", &fire, &fake_hash(i)), &fractions);
            counts[Split::ALL.iter().position(|&s| s == split).unwrap_or(0)] += 1;
        }
        // Binomial standard deviations are about 29, 23 and 23.
        assert!((2650..=2950).contains(&counts[0]), "{counts:?}");
        assert!((480..=720).contains(&counts[1]), "{counts:?}");
        assert!((480..=720).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn small_classes_get_every_split_and_the_closest_image_moves() {
        let fractions = SplitFractions { train: 0.8, validation: 0.1, test: 0.1 };
        let placed = |u: f64, h: &str| Placed {
            position: u,
            source_hash: h.into(),
            split: natural_split(u, &fractions),
            locked: false,
        };
        let mut images = vec![placed(0.1, "a"), placed(0.75, "b"), placed(0.3, "c"), placed(0.5, "d")];
        let moved = fill_empty_splits(&mut images, &fractions);
        // Validation [0.8, 0.9) takes 0.75 (closest); test [0.9, 1) takes 0.5.
        assert_eq!(moved, [1, 3]);
        let splits: Vec<_> = images.iter().map(|p| p.split).collect();
        assert_eq!(splits, [Split::Train, Split::Validation, Split::Train, Split::Test]);

        // Two images: nothing to guarantee.
        let mut two = vec![placed(0.1, "a"), placed(0.2, "b")];
        assert!(fill_empty_splits(&mut two, &fractions).is_empty());

        // A split with fraction 0 stays empty.
        let no_test = SplitFractions { train: 0.5, validation: 0.5, test: 0.0 };
        let mut three: Vec<_> = [0.1, 0.2, 0.3]
            .iter()
            .map(|&u| Placed { position: u, source_hash: String::new(), split: Split::Train, locked: false })
            .collect();
        assert_eq!(fill_empty_splits(&mut three, &no_test), [2]);
        assert_eq!(three[2].split, Split::Validation);

        // Locked units stay put; the closest unlocked one moves instead.
        let mut locked = vec![placed(0.1, "a"), placed(0.75, "b"), placed(0.3, "c"), placed(0.5, "d")];
        locked[1].locked = true;
        assert_eq!(fill_empty_splits(&mut locked, &fractions), [3, 2]);
        assert_eq!(locked[1].split, Split::Train);
        // Nothing unlocked to move: the split stays empty.
        let mut all_locked = vec![placed(0.1, "a"), placed(0.2, "b"), placed(0.3, "c")];
        all_locked.iter_mut().for_each(|p| p.locked = true);
        assert!(fill_empty_splits(&mut all_locked, &fractions).is_empty());
    }
}
