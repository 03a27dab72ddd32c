//! Serde for numbers that may legitimately be infinite.
//!
//! JSON has no infinity: serde_json writes `null` for it and then refuses to
//! read that `null` back as a number. A t statistic or Cohen's d of ±inf is
//! a defined result (both samples constant, with different means), so such
//! fields are written as the strings `"inf"` / `"-inf"` and read back from
//! them. Finite numbers are written as plain JSON numbers, so files written
//! before this existed read unchanged.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrName {
    Number(f64),
    Name(String),
}

fn to_name(value: f64) -> Option<&'static str> {
    if value.is_finite() {
        None
    } else if value.is_nan() {
        Some("nan")
    } else if value > 0.0 {
        Some("inf")
    } else {
        Some("-inf")
    }
}

fn from_name<E: serde::de::Error>(found: NumberOrName) -> Result<f64, E> {
    match found {
        NumberOrName::Number(v) => Ok(v),
        NumberOrName::Name(name) => match name.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            other => Err(E::custom(format!("expected a number, \"inf\", \"-inf\" or \"nan\", found {other:?}"))),
        },
    }
}

/// For `f64` fields.
pub(crate) mod plain {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        match to_name(*value) {
            None => serializer.serialize_f64(*value),
            Some(name) => serializer.serialize_str(name),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        from_name(NumberOrName::deserialize(deserializer)?)
    }
}

/// An `f64` that serialises as [`plain`] does.
struct MaybeInfinite(f64);

impl Serialize for MaybeInfinite {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        plain::serialize(&self.0, serializer)
    }
}

/// For `Option<f64>` fields; `None` is `null`.
pub(crate) mod optional {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            None => serializer.serialize_none(),
            Some(v) => serializer.serialize_some(&MaybeInfinite(*v)),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
        Option::<NumberOrName>::deserialize(deserializer)?.map(from_name).transpose()
    }
}
