//! Licence names, made comparable.
//!
//! Sources spell the same licence in different ways: Openverse says
//! `by-sa` with a separate version, Commons says `CC BY-SA 4.0` or
//! `Public domain`. `filters.licences` is matched on a short code, the one
//! Openverse uses (`by`, `by-sa`, `by-nd`, `by-nc`, `by-nc-sa`, `by-nc-nd`,
//! `cc0`, `pdm`), so a filter written once works for every source. A
//! licence outside that family keeps its lower-cased name as its code
//! (`gfdl`, `attribution`), so it can still be listed explicitly.

/// The Creative Commons and public-domain codes Openverse's API accepts.
pub const OPENVERSE_CODES: [&str; 8] = ["by", "by-sa", "by-nd", "by-nc", "by-nc-sa", "by-nc-nd", "cc0", "pdm"];

/// The short code of a licence as a source names it.
pub fn licence_code(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase().replace('_', "-");
    if lower.contains("cc0") || lower.contains("cc-zero") || lower.contains("cc zero") {
        return "cc0".to_owned();
    }
    if lower == "pd"
        || lower == "pdm"
        || lower.starts_with("pd-")
        || lower.starts_with("pdm ")
        || lower.starts_with("public domain")
    {
        return "pdm".to_owned();
    }
    let rest = ["creative commons ", "cc-", "cc "].iter().find_map(|p| lower.strip_prefix(p)).unwrap_or(&lower);
    // "by-sa 4.0", "by-sa-4.0 de", "attribution-sharealike 3.0": the code
    // is the words before the version.
    let first = rest.split_whitespace().next().unwrap_or_default();
    let words: Vec<&str> = first.split('-').take_while(|w| !w.starts_with(|c: char| c.is_ascii_digit())).collect();
    let code = words.join("-");
    if OPENVERSE_CODES.contains(&code.as_str()) { code } else { lower }
}

/// The Openverse licence line as a person reads it: `CC BY-SA 4.0`,
/// `CC0 1.0`, `Public Domain Mark 1.0`.
pub fn openverse_licence_name(code: &str, version: Option<&str>) -> String {
    let version = version.map(str::trim).filter(|v| !v.is_empty());
    let name = match code.trim().to_ascii_lowercase().as_str() {
        "cc0" => "CC0".to_owned(),
        "pdm" => "Public Domain Mark".to_owned(),
        other => format!("CC {}", other.to_ascii_uppercase()),
    };
    match version {
        Some(v) => format!("{name} {v}"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_licence_share_a_code() {
        let cases = [
            ("CC BY-SA 4.0", "by-sa"),
            ("by-sa", "by-sa"),
            ("cc-by-sa-3.0-de", "by-sa"),
            ("CC BY 2.0", "by"),
            ("Creative Commons by-nc-nd 4.0", "by-nc-nd"),
            ("CC0", "cc0"),
            ("CC0 1.0", "cc0"),
            ("cc-zero", "cc0"),
            ("Public domain", "pdm"),
            ("PD-self", "pdm"),
            ("pdm", "pdm"),
            ("GFDL", "gfdl"),
            ("Attribution", "attribution"),
            ("  ", ""),
        ];
        for (name, code) in cases {
            assert_eq!(licence_code(name), code, "{name}");
        }
    }

    #[test]
    fn openverse_licences_read_as_people_write_them() {
        assert_eq!(openverse_licence_name("by-sa", Some("4.0")), "CC BY-SA 4.0");
        assert_eq!(openverse_licence_name("cc0", Some("1.0")), "CC0 1.0");
        assert_eq!(openverse_licence_name("pdm", None), "Public Domain Mark");
        assert_eq!(licence_code(&openverse_licence_name("by-nc", Some("2.0"))), "by-nc");
    }
}
