//! Contact sheets: one static HTML page per set, for manual review.
//!
//! The seed project removed off-topic images (other Pokémon, people, chibi
//! drawings) by eye. A contact sheet shows every image a set kept as a
//! thumbnail, with its file name and content hash, and a ready-made line for
//! the exclusion list, so that a person can skim a set and write down what
//! to leave out. Thumbnails are embedded as data URIs, so a page is one
//! self-contained file that can be mailed or archived.

use std::fmt::Write;
use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use rayon::prelude::*;
use tcav_core::store::write_atomic;

use crate::error::PreprocessError;
use crate::manifest::{Manifest, ManifestEntry, Outcome, SetRole};

/// Side of the thumbnails, in pixels.
const THUMBNAIL_SIDE: u32 = 128;

/// Writes `<dir>/<set>.html` for every set of `manifest`; outputs are read
/// from `out`, which their `output` paths are relative to.
pub(crate) fn write_all(
    manifest: &Manifest,
    out: &Path,
    dir: &Path,
    exclusions: Option<&Path>,
) -> Result<(), PreprocessError> {
    for summary in &manifest.sets {
        let entries: Vec<&ManifestEntry> = manifest.entries.iter().filter(|e| e.set == summary.set).collect();
        let html = page(summary.role, summary.set.as_str(), &summary.folder, &entries, out, exclusions);
        write_atomic(&dir.join(format!("{}.html", summary.set)), html.as_bytes())?;
    }
    Ok(())
}

fn page(
    role: Option<SetRole>,
    set: &str,
    folder: &Path,
    entries: &[&ManifestEntry],
    out: &Path,
    exclusions: Option<&Path>,
) -> String {
    let what = role.map_or("set", SetRole::as_str);
    let accepted: Vec<&ManifestEntry> =
        entries.iter().copied().filter(|e| matches!(e.outcome, Outcome::Accepted { .. })).collect();
    let thumbnails: Vec<Option<String>> = accepted
        .par_iter()
        .map(|entry| match &entry.outcome {
            Outcome::Accepted { output, .. } => thumbnail(&out.join(output)),
            Outcome::Rejected { .. } => None,
        })
        .collect();
    let list = exclusions.map_or_else(
        || "the exclusion list (the file named by <code>exclusions</code> in the preprocessing config)".to_owned(),
        |p| format!("the exclusion list <code>{}</code>", escape(&p.display().to_string())),
    );

    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{what} {set}: contact sheet</title>\n\
         <style>\nbody {{ font-family: sans-serif; margin: 1em; }}\n\
         .grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }}\n\
         figure {{ margin: 0; padding: 4px; border: 1px solid #ccc; font-size: 11px; overflow-wrap: anywhere; }}\n\
         figure img {{ width: {THUMBNAIL_SIDE}px; height: {THUMBNAIL_SIDE}px; display: block; }}\n\
         code {{ user-select: all; background: #f4f4f4; }}\n</style>\n</head>\n<body>\n\
         <h1>{what} <code>{set}</code>: {} images kept, {} left out</h1>\n\
         <p>From <code>{}</code>. To leave an image out of every later run, copy its line \
         (hash and file name) into {list} and run preprocessing again. A GIF's line leaves out all its frames.</p>\n\
         <div class=\"grid\">\n",
        accepted.len(),
        entries.len() - accepted.len(),
        escape(&folder.display().to_string()),
    );
    for (entry, thumb) in accepted.iter().zip(&thumbnails) {
        let hash = entry.source_hash.as_deref().unwrap_or_default();
        let short = hash.get(..16).unwrap_or(hash);
        let file = entry
            .source
            .file_name()
            .map_or_else(|| entry.source.display().to_string(), |n| n.to_string_lossy().into_owned());
        let frame = entry.frame.map_or(String::new(), |f| format!(" (frame {f})"));
        let split = match &entry.outcome {
            Outcome::Accepted { split: Some(split), .. } => format!("<br>{split}"),
            _ => String::new(),
        };
        let img = thumb.as_ref().map_or_else(
            || "<div>no thumbnail</div>".to_owned(),
            |data| format!("<img src=\"data:image/jpeg;base64,{data}\" alt=\"{}\">", escape(&file)),
        );
        let _ = writeln!(
            html,
            "<figure title=\"{}\">{img}<figcaption><code>{short}  # {}</code><br>{}{frame}{split}</figcaption></figure>",
            escape(hash),
            escape(&file),
            escape(&entry.source.display().to_string()),
        );
    }
    html.push_str("</div>\n");
    let rejected: Vec<&&ManifestEntry> =
        entries.iter().filter(|e| matches!(e.outcome, Outcome::Rejected { .. })).collect();
    if !rejected.is_empty() {
        let _ = writeln!(html, "<h2>Left out ({})</h2>\n<ul>", rejected.len());
        for entry in rejected {
            if let Outcome::Rejected { kind, reason } = &entry.outcome {
                let frame = entry.frame.map_or(String::new(), |f| format!(" frame {f}"));
                let _ = writeln!(
                    html,
                    "<li><code>{}</code>{frame}: {}: {}</li>",
                    escape(&entry.source.display().to_string()),
                    kind,
                    escape(reason)
                );
            }
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// A base64 JPEG thumbnail of the PNG at `path`; `None` if it cannot be read
/// (the page then says so instead of failing the whole run).
fn thumbnail(path: &Path) -> Option<String> {
    let image = image::open(path).ok()?.into_rgb8();
    let small = imageops::resize(&image, THUMBNAIL_SIDE, THUMBNAIL_SIDE, FilterType::Triangle);
    let mut bytes = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut bytes, 85).encode_image(&small).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes.into_inner()))
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">Tom & Jerry's</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#x27;s&lt;/a&gt;"
        );
    }
}
