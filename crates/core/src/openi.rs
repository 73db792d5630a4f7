//! OpenI (Indiana University chest X-ray collection) reports, read from the
//! original XML (`ecgen-radiology/<n>.xml`, loose or in a `.tgz`) or from the
//! CSV layout (`indiana_reports.csv` + `indiana_projections.csv`).
//!
//! Parsing never panics: every bad file becomes a `Problem` naming it. Input
//! is bounded before it is parsed: a report's bytes (`MAX_XML_BYTES`), its
//! element nesting (`MAX_XML_DEPTH`) and nodes (`MAX_XML_NODES`), and what a
//! `.tgz` may inflate to (`MAX_ARCHIVE_INFLATED_BYTES`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;

/// Largest OpenI XML report read, in bytes (OpenI's are about 3 KB).
pub const MAX_XML_BYTES: u64 = 4 * 1024 * 1024;
/// Deepest element nesting parsed (OpenI's is 6): deeper files are refused
/// before a tree is built.
pub const MAX_XML_DEPTH: usize = 64;
/// Most XML nodes (elements, text, attributes' owners) built for one report.
pub const MAX_XML_NODES: u32 = 200_000;
/// Most bytes a `.tgz` is inflated to; the entries after that point are
/// skipped with a problem (NLMCXR_reports.tgz inflates to about 30 MB).
pub const MAX_ARCHIVE_INFLATED_BYTES: u64 = 1024 * 1024 * 1024;

/// A MeSH term of the coding: `Opacity/lung/upper lobe/right/streaky` is heading
/// `Opacity` with qualifiers `lung`, `upper lobe`, `right`, `streaky`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshTerm {
    pub heading: String,
    pub qualifiers: Vec<String>,
}

impl MeshTerm {
    pub fn parse(term: &str) -> Option<Self> {
        let mut parts = term.split('/').map(str::trim);
        let heading = parts.next().filter(|h| !h.is_empty())?.to_string();
        Some(Self {
            heading,
            qualifiers: parts
                .filter(|q| !q.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    /// `normal` and `No Indexing` are not findings.
    pub fn is_finding(&self) -> bool {
        !self.heading.eq_ignore_ascii_case("normal")
            && !self.heading.eq_ignore_ascii_case("no indexing")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Projection {
    Frontal,
    Lateral,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// OpenI's image id, e.g. `CXR1_1_IM-0001-4001` (CSV file names are mapped to it).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<Projection>,
}

/// A report's images that the user has, frontal views first (otherwise in
/// the report's order): `find` looks an image up by its `ImageRef::image_key`
/// (`IM-0001-4001`), the part of its name every OpenI layout shares. The
/// one pairing of reports with image files, for `predict --openi-images`,
/// `fusion train` and review sessions.
pub fn present_views<T>(images: &[ImageRef], find: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let mut refs: Vec<&ImageRef> = images.iter().collect();
    refs.sort_by_key(|r| r.projection != Some(Projection::Frontal));
    refs.iter()
        .filter_map(|r| find(ImageRef::image_key(&r.id)?))
        .collect()
}

impl ImageRef {
    /// The part of an image name that is the same in every OpenI layout
    /// (`IM-0001-4001` for `CXR1_1_IM-0001-4001.png` and `1_IM-0001-4001.dcm.png`).
    pub fn image_key(name: &str) -> Option<&str> {
        let start = name.find("IM-")?;
        let rest = &name[start..];
        Some(rest.split('.').next().unwrap_or(rest))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sections {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indication: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impression: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// OpenI's report id, its `uId` (`CXR1` for `CXR1` / `1.xml` / CSV
    /// uid 1): the id of every tool's output.
    pub id: String,
    pub sections: Sections,
    /// The manual MeSH coding (`<major>`), the gold standard.
    pub mesh: Vec<MeshTerm>,
    /// The indexer's automatic terms (`<automatic>`).
    #[serde(default)]
    pub automatic: Vec<MeshTerm>,
    #[serde(default)]
    pub images: Vec<ImageRef>,
}

impl Report {
    /// The report as one text with section headers, in reading order.
    pub fn text(&self) -> String {
        let s = &self.sections;
        [
            ("INDICATION", &s.indication),
            ("COMPARISON", &s.comparison),
            ("FINDINGS", &s.findings),
            ("IMPRESSION", &s.impression),
        ]
        .into_iter()
        .filter_map(|(title, body)| body.as_deref().map(|b| format!("{title}: {b}")))
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// The distinct manually coded headings that are findings, as written.
    pub fn gold_headings(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.mesh.iter().filter(|t| t.is_finding()) {
            if !out.iter().any(|h| h.eq_ignore_ascii_case(&t.heading)) {
                out.push(t.heading.clone());
            }
        }
        out
    }
}

/// A file that could not be read, or was read with a caveat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub file: String,
    pub message: String,
    /// Whether the report was left out.
    pub skipped: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Corpus {
    pub reports: Vec<Report>,
    pub problems: Vec<Problem>,
}

impl Corpus {
    pub fn skipped(&self) -> usize {
        self.problems.iter().filter(|p| p.skipped).count()
    }

    /// Adds one XML file's outcome.
    pub fn add_xml(&mut self, file: &str, bytes: &[u8]) {
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => return self.skip(file, format!("not valid UTF-8 ({e})")),
        };
        match parse_report_xml(text) {
            Ok(report) => {
                if report.sections.findings.is_none() && report.sections.impression.is_none() {
                    return self.skip(file, "no findings or impression text".to_string());
                }
                if report.sections.findings.is_none() {
                    self.warn(file, "no FINDINGS section; using the impression alone");
                }
                self.reports.push(report);
            }
            Err(message) => self.skip(file, message),
        }
    }

    /// Records that `file` was left out, and why.
    pub fn skip(&mut self, file: &str, message: String) {
        self.problems.push(Problem {
            file: file.to_string(),
            message,
            skipped: true,
        });
    }

    fn warn(&mut self, file: &str, message: &str) {
        self.problems.push(Problem {
            file: file.to_string(),
            message: message.to_string(),
            skipped: false,
        });
    }

    /// Sorts reports by numeric id so that output order is stable.
    pub fn sort(&mut self) {
        self.reports
            .sort_by_key(|r| (report_number(&r.id), r.id.clone()));
    }
}

/// Whether elements in `xml` nest deeper than `limit`, found in one pass
/// over the bytes without building a tree (a deep tree is what overflows a
/// parser's stack). Comments, CDATA, processing instructions and
/// declarations are skipped; quoted attribute values may hold `>`.
fn nests_deeper_than(xml: &str, limit: usize) -> bool {
    let b = xml.as_bytes();
    // The index just past the next `pattern` at or after `from`, or the end.
    let past = |from: usize, pattern: &[u8]| {
        b[from.min(b.len())..]
            .windows(pattern.len())
            .position(|w| w == pattern)
            .map_or(b.len(), |p| from + p + pattern.len())
    };
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(offset) = b[i..].iter().position(|&c| c == b'<') {
        i += offset + 1;
        let rest = &b[i..];
        if rest.starts_with(b"!--") {
            i = past(i, b"-->");
        } else if rest.starts_with(b"![CDATA[") {
            i = past(i, b"]]>");
        } else if rest.starts_with(b"?") {
            i = past(i, b"?>");
        } else if rest.starts_with(b"!") {
            i = past(i, b">");
        } else if rest.starts_with(b"/") {
            depth = depth.saturating_sub(1);
            i = past(i, b">");
        } else {
            let (mut quote, mut last) = (None, 0u8);
            while let Some(&c) = b.get(i) {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == b'>' => break,
                    None => {}
                }
                last = c;
                i += 1;
            }
            if last != b'/' {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
        }
    }
    false
}

/// Parses one OpenI XML report.
pub fn parse_report_xml(xml: &str) -> Result<Report, String> {
    if xml.len() as u64 > MAX_XML_BYTES {
        return Err(format!(
            "{} bytes of XML; at most {MAX_XML_BYTES} are read for one report",
            xml.len()
        ));
    }
    if nests_deeper_than(xml, MAX_XML_DEPTH) {
        return Err(format!(
            "elements nest deeper than {MAX_XML_DEPTH} levels; not an OpenI report"
        ));
    }
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
    };
    let doc = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|e| format!("malformed XML: {e}"))?;
    let root = doc.root_element();
    let attribute = |tag: &str| {
        root.descendants()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.attribute("id"))
            .filter(|id| !id.trim().is_empty())
    };
    let id = report_uid(
        attribute("uId")
            .or_else(|| attribute("IUXRId"))
            .ok_or("no report id (<uId> or <IUXRId>)")?,
    );
    let mut sections = Sections::default();
    for node in root
        .descendants()
        .filter(|n| n.has_tag_name("AbstractText"))
    {
        let body: String = node
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .collect();
        let body = clean(&body);
        let slot = match node
            .attribute("Label")
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("INDICATION") => &mut sections.indication,
            Some("COMPARISON") => &mut sections.comparison,
            Some("FINDINGS") => &mut sections.findings,
            Some("IMPRESSION") => &mut sections.impression,
            _ => continue,
        };
        *slot = body;
    }
    let terms = |tag: &str| -> Vec<MeshTerm> {
        root.descendants()
            .filter(|n| n.has_tag_name("MeSH"))
            .flat_map(|m| {
                m.children()
                    .filter(|c| c.has_tag_name(tag))
                    .collect::<Vec<_>>()
            })
            .filter_map(|n| n.text().and_then(MeshTerm::parse))
            .collect()
    };
    let images = root
        .descendants()
        .filter(|n| n.has_tag_name("parentImage"))
        .filter_map(|n| n.attribute("id"))
        .map(|id| ImageRef {
            id: id.to_string(),
            projection: None,
        })
        .collect();
    Ok(Report {
        id,
        sections,
        mesh: terms("major"),
        automatic: terms("automatic"),
        images,
    })
}

/// Trims and collapses whitespace; `None` for empty text.
fn clean(s: &str) -> Option<String> {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!joined.is_empty()).then_some(joined)
}

/// A reader that fails once more than `left` bytes have come through it.
struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other(format!(
                "the archive inflates to more than {} bytes",
                self.limit
            )));
        }
        let n = self.inner.read(buf)?;
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

/// Reads every `*.xml` entry of a gzip-compressed tar archive. An entry
/// larger than `MAX_XML_BYTES` is skipped unread (its size is in its
/// header); an archive that breaks off or inflates past
/// `MAX_ARCHIVE_INFLATED_BYTES` keeps the reports read before that point,
/// with a problem naming where it stopped. An archive that cannot be read at
/// all is an error.
pub fn read_tgz<R: Read>(reader: R, corpus: &mut Corpus) -> Result<(), String> {
    read_tgz_within(reader, corpus, MAX_ARCHIVE_INFLATED_BYTES)
}

/// [`read_tgz`] with another limit on the bytes the archive inflates to.
pub fn read_tgz_within<R: Read>(reader: R, corpus: &mut Corpus, limit: u64) -> Result<(), String> {
    let inflated = Bounded {
        inner: flate2::read::GzDecoder::new(reader),
        left: limit,
        limit,
    };
    let mut archive = tar::Archive::new(inflated);
    let entries = archive
        .entries()
        .map_err(|e| format!("not a readable .tgz: {e}"))?;
    let mut last_name = None;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => match last_name {
                None => return Err(format!("not a readable .tgz: {e}")),
                Some(after) => {
                    corpus.skip(
                        "<rest of the archive>",
                        format!("unreadable after {after}: {e}"),
                    );
                    break;
                }
            },
        };
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "<unnamed entry>".to_string());
        last_name = Some(name.clone());
        if !name.ends_with(".xml") {
            continue;
        }
        let size = entry.size();
        if size > MAX_XML_BYTES {
            corpus.skip(
                &name,
                format!("{size} bytes of XML; at most {MAX_XML_BYTES} are read for one report"),
            );
            continue;
        }
        let mut bytes = Vec::new();
        match entry.read_to_end(&mut bytes) {
            Ok(_) => corpus.add_xml(&name, &bytes),
            Err(e) => corpus.skip(&name, format!("unreadable archive entry: {e}")),
        }
    }
    Ok(())
}

/// OpenI's `uId` of a report id in any layout: `CXR8` for the XML's
/// `<uId id="CXR8">`, its `<IUXRId id="8">`, file `8.xml` and CSV uid 8.
pub fn report_uid(id: &str) -> String {
    let id = id.trim();
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        format!("CXR{id}")
    } else {
        id.to_string()
    }
}

/// The number of a report id as written (`8` for `CXR8` and for `8`): what
/// the split hashes.
pub fn report_number_text(id: &str) -> &str {
    let id = id.trim();
    id.strip_prefix("CXR").unwrap_or(id)
}

/// The number of a report id (8 for `CXR8`): what reports are ordered by.
/// An id without one sorts last.
pub fn report_number(id: &str) -> u64 {
    report_number_text(id).parse().unwrap_or(u64::MAX)
}

/// The OpenI image id of a CSV-layout file name: `2_IM-0652-1001.dcm.png`
/// becomes `CXR2_IM-0652-1001`, as in the XML. (Report 1 alone is named
/// `CXR1_1_IM-…` in the XML; compare images by `image_key` to be safe.)
pub fn image_id_from_csv_name(file: &str) -> String {
    let stem = file.trim_end_matches(".png").trim_end_matches(".dcm");
    format!("CXR{stem}")
}

/// Reads `indiana_projections.csv` (uid, filename, projection) into the images
/// of each report id.
pub fn read_projections<P: Read>(
    projections: P,
) -> Result<BTreeMap<String, Vec<ImageRef>>, String> {
    let mut images: BTreeMap<String, Vec<ImageRef>> = BTreeMap::new();
    let mut rdr = csv::Reader::from_reader(projections);
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("indiana_projections.csv line {}: {e}", line + 2))?;
        let (Some(uid), Some(file)) = (rec.get(0), rec.get(1)) else {
            continue;
        };
        let projection = match rec.get(2).map(str::trim) {
            Some("Frontal") => Some(Projection::Frontal),
            Some("Lateral") => Some(Projection::Lateral),
            _ => None,
        };
        images.entry(report_uid(uid)).or_default().push(ImageRef {
            id: image_id_from_csv_name(file.trim()),
            projection,
        });
    }
    Ok(images)
}

impl Corpus {
    /// Gives the XML layout's images their projection, matching by report id
    /// and `ImageRef::image_key`. Returns how many images got one.
    pub fn attach_projections(&mut self, images: &BTreeMap<String, Vec<ImageRef>>) -> usize {
        let mut attached = 0;
        for report in &mut self.reports {
            let Some(known) = images.get(&report.id) else {
                continue;
            };
            for image in &mut report.images {
                let key = ImageRef::image_key(&image.id);
                if let Some(k) = known
                    .iter()
                    .find(|k| key.is_some() && ImageRef::image_key(&k.id) == key)
                {
                    image.projection = k.projection;
                    attached += 1;
                }
            }
        }
        attached
    }
}

/// Reads the CSV layout. `projections` (uid, filename, projection) is optional.
pub fn read_csv<R: Read, P: Read>(
    reports: R,
    projections: Option<P>,
    corpus: &mut Corpus,
) -> Result<(), String> {
    let mut images = match projections {
        Some(p) => read_projections(p)?,
        None => BTreeMap::new(),
    };
    let mut rdr = csv::Reader::from_reader(reports);
    let headers = rdr
        .headers()
        .map_err(|e| format!("indiana_reports.csv: {e}"))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(uid), Some(mesh)) = (col("uid"), col("MeSH")) else {
        return Err("indiana_reports.csv: expected columns uid and MeSH".into());
    };
    let text_cols = [
        col("indication"),
        col("comparison"),
        col("findings"),
        col("impression"),
    ];
    for (line, rec) in rdr.records().enumerate() {
        let file = format!("indiana_reports.csv line {}", line + 2);
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                corpus.skip(&file, format!("unreadable CSV record: {e}"));
                continue;
            }
        };
        let raw = rec.get(uid).unwrap_or("").trim();
        if raw.is_empty() {
            corpus.skip(&file, "no uid".into());
            continue;
        }
        let id = report_uid(raw);
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).and_then(clean);
        let sections = Sections {
            indication: get(text_cols[0]),
            comparison: get(text_cols[1]),
            findings: get(text_cols[2]),
            impression: get(text_cols[3]),
        };
        if sections.findings.is_none() && sections.impression.is_none() {
            corpus.skip(
                &file,
                format!("report {id}: no findings or impression text"),
            );
            continue;
        }
        corpus.reports.push(Report {
            images: images.remove(&id).unwrap_or_default(),
            id,
            sections,
            mesh: rec
                .get(mesh)
                .unwrap_or("")
                .split(';')
                .filter_map(MeshTerm::parse)
                .collect(),
            automatic: Vec::new(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_terms_split_heading_and_qualifiers() {
        let t = MeshTerm::parse("Opacity/lung/upper lobe/right/streaky").unwrap();
        assert_eq!(t.heading, "Opacity");
        assert_eq!(t.qualifiers, ["lung", "upper lobe", "right", "streaky"]);
        assert_eq!(
            MeshTerm::parse("Aorta, Thoracic").unwrap().heading,
            "Aorta, Thoracic"
        );
        assert!(!MeshTerm::parse("normal").unwrap().is_finding());
        assert!(MeshTerm::parse(" ").is_none());
    }

    #[test]
    fn nesting_is_measured_past_comments_cdata_and_quoted_brackets() {
        let flat = r#"<?xml version="1.0"?><!-- <a><b><c> --><r x="<a>" y='/>'><e/><e/><![CDATA[<a><a>]]></r>"#;
        assert!(!nests_deeper_than(flat, 1));
        assert!(nests_deeper_than("<a><b><c/></b></a>", 1));
        assert!(!nests_deeper_than("<a><b><c/></b></a>", 2));
        assert!(!nests_deeper_than("<a></a><b></b><c></c>", 1));
        let deep = "<a>".repeat(MAX_XML_DEPTH + 1);
        assert!(nests_deeper_than(&deep, MAX_XML_DEPTH));
        assert!(!nests_deeper_than(
            &"<a>".repeat(MAX_XML_DEPTH),
            MAX_XML_DEPTH
        ));
    }

    #[test]
    fn csv_image_names_map_to_openi_ids() {
        assert_eq!(
            image_id_from_csv_name("2_IM-0652-1001.dcm.png"),
            "CXR2_IM-0652-1001"
        );
        for name in [
            "CXR1_1_IM-0001-4001.png",
            "1_IM-0001-4001.dcm.png",
            "CXR1_1_IM-0001-4001",
        ] {
            assert_eq!(ImageRef::image_key(name), Some("IM-0001-4001"));
        }
    }
}
