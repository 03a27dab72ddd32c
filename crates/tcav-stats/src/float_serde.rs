//! Serde for `f64` fields that may legitimately be infinite.
//!
//! JSON has no infinity: serde_json writes `null` for it and then refuses to
//! read that `null` back as a number. A t statistic of ±inf is a defined
//! result here (two constant samples with different means), so such fields
//! are written as the strings `"inf"` / `"-inf"` and read back from them.

use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else if value.is_nan() {
        serializer.serialize_str("nan")
    } else if *value > 0.0 {
        serializer.serialize_str("inf")
    } else {
        serializer.serialize_str("-inf")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrName {
    Number(f64),
    Name(String),
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    match NumberOrName::deserialize(deserializer)? {
        NumberOrName::Number(v) => Ok(v),
        NumberOrName::Name(name) => match name.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            other => Err(serde::de::Error::custom(format!(
                "expected a number, \"inf\", \"-inf\" or \"nan\", found {other:?}"
            ))),
        },
    }
}
