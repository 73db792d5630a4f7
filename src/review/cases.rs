//! Reading the cases of a review session from the files the expert chose: a
//! JSONL or CSV of reports (id, text, optional image file name) or an OpenI
//! XML archive (`.tgz`), with the images selected alongside.

use super::session::Case;
use integrabner_core::cases::CaseLine;
use integrabner_core::openi::{self, Corpus, ImageRef};
use std::collections::HashSet;

/// Cases one session takes; the rest of a larger file is left out, with a
/// notice (a session is reviewed by a person, case by case).
pub const MAX_CASES: usize = 500;

#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub cases: Vec<Case>,
    /// Lines or records that were skipped or changed, each with its reason.
    pub problems: Vec<String>,
}

/// Reads `bytes` of the file `name`, pairing cases with the chosen `images`
/// (file names). Fails with a reason when the file has no readable case.
pub fn read_cases(name: &str, bytes: &[u8], images: &[String]) -> Result<Parsed, String> {
    let lower = name.to_lowercase();
    let mut parsed = if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        read_jsonl(bytes)
    } else if lower.ends_with(".csv") {
        read_csv(bytes)?
    } else if lower.ends_with(".tgz") || lower.ends_with(".tar.gz") {
        read_openi(bytes, images)?
    } else {
        return Err(format!(
            "{name} is not a case file: choose a .jsonl or .csv of reports (id, text, image) or an OpenI .tgz"
        ));
    };
    check(&mut parsed, images);
    if parsed.cases.is_empty() {
        let why = parsed
            .problems
            .first()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        return Err(format!("{name} has no case to review{why}"));
    }
    Ok(parsed)
}

/// The last part of a path, as a file picker names the file.
fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Drops duplicate and empty cases, unpairs images that were not chosen, and
/// keeps at most [`MAX_CASES`].
fn check(parsed: &mut Parsed, images: &[String]) {
    let chosen: HashSet<&str> = images.iter().map(|i| file_name(i)).collect();
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    for mut case in std::mem::take(&mut parsed.cases) {
        if let Some(image) = case.image.take() {
            let image = file_name(&image).to_string();
            if chosen.contains(image.as_str()) {
                case.image = Some(image);
            } else {
                parsed.problems.push(format!(
                    "case {}: its image {image} was not among the chosen files, so it is reviewed without it",
                    case.id
                ));
            }
        }
        if case.text.trim().is_empty() && case.image.is_none() {
            parsed.problems.push(format!(
                "case {}: no report text and no image; skipped",
                case.id
            ));
        } else if !seen.insert(case.id.clone()) {
            parsed.problems.push(format!(
                "case {}: the id appears again; the first one is kept",
                case.id
            ));
        } else {
            kept.push(case);
        }
    }
    if kept.len() > MAX_CASES {
        parsed.problems.push(format!(
            "the file has {} cases; this session takes the first {MAX_CASES}",
            kept.len()
        ));
        kept.truncate(MAX_CASES);
    }
    parsed.cases = kept;
}

fn read_jsonl(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let text = String::from_utf8_lossy(bytes);
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match CaseLine::parse(line) {
            Ok(case) => parsed.cases.push(Case::new(
                case.id.unwrap_or_else(|| format!("line {line_no}")),
                case.text,
                case.images.into_iter().next(),
            )),
            Err(e) => parsed
                .problems
                .push(format!("line {line_no}: {e}; skipped")),
        }
    }
    parsed
}

fn read_csv(bytes: &[u8]) -> Result<Parsed, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| format!("unreadable CSV header: {e}"))?
        .clone();
    let column = |names: &[&str]| {
        headers
            .iter()
            .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
    };
    let text_col = column(&["text", "report"]).ok_or_else(|| {
        format!(
            "the CSV needs a \"text\" (or \"report\") column; its columns are {}",
            headers.iter().collect::<Vec<_>>().join(", ")
        )
    })?;
    let (id_col, image_col) = (column(&["id"]), column(&["image", "image_file"]));
    let mut parsed = Parsed::default();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                parsed.problems.push(format!("row {row}: {e}; skipped"));
                continue;
            }
        };
        let cell = |col: Option<usize>| {
            col.and_then(|c| record.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let id = cell(id_col)
            .map(str::to_string)
            .unwrap_or_else(|| format!("row {row}"));
        let text = record.get(text_col).unwrap_or("").to_string();
        parsed
            .cases
            .push(Case::new(id, text, cell(image_col).map(str::to_string)));
    }
    Ok(parsed)
}

fn read_openi(bytes: &[u8], images: &[String]) -> Result<Parsed, String> {
    let mut corpus = Corpus::default();
    openi::read_tgz(bytes, &mut corpus)?;
    corpus.sort();
    let mut parsed = Parsed::default();
    parsed.problems.extend(
        corpus
            .problems
            .iter()
            .filter(|p| p.skipped)
            .map(|p| format!("{}: {}; skipped", p.file, p.message)),
    );
    for report in &corpus.reports {
        // A session shows one image: the first view (frontal first).
        let image = openi::present_views(&report.images, |key| {
            images
                .iter()
                .find(|name| ImageRef::image_key(file_name(name)) == Some(key))
                .cloned()
        })
        .into_iter()
        .next();
        parsed
            .cases
            .push(Case::new(report.id.clone(), report.text(), image));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_cases_pair_chosen_images_and_bad_lines_are_named() {
        let jsonl = concat!(
            "{\"id\":\"a\",\"text\":\"Cardiomegaly.\",\"image\":\"imgs/a.png\"}\n",
            "{\"id\":7,\"report\":\"No effusion.\",\"image\":\"missing.png\"}\n",
            "not json\n",
            "\n",
            "{\"id\":\"a\",\"text\":\"again\"}\n",
            "{\"id\":\"b\",\"images\":[\"b.png\"]}\n",
            "{\"id\":\"c\",\"text\":\"  \"}\n",
            "[1,2]\n",
        );
        let images = vec!["a.png".to_string(), "b.png".to_string()];
        let p = read_cases("cases.JSONL", jsonl.as_bytes(), &images).unwrap();
        let got: Vec<(&str, &str, Option<&str>)> = p
            .cases
            .iter()
            .map(|c| (c.id.as_str(), c.text.as_str(), c.image.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "Cardiomegaly.", Some("a.png")),
                ("7", "No effusion.", None),
                ("b", "", Some("b.png"))
            ]
        );
        let problems = p.problems.join("\n");
        for needle in [
            "missing.png was not among",
            "line 3:",
            "case a: the id appears again",
            "case c: no report text",
            "line 8: expected {",
        ] {
            assert!(problems.contains(needle), "{needle} in {problems}");
        }
    }

    #[test]
    fn csv_cases_need_a_text_column_and_quote_like_spreadsheets() {
        let csv =
            "ID,Report,Image\n1,\"Heart normal, lungs clear.\",x.png\n2,\"Line one\nline two\",\n";
        let p = read_cases("r.csv", csv.as_bytes(), &["x.png".into()]).unwrap();
        assert_eq!(p.cases.len(), 2);
        assert_eq!(p.cases[0].text, "Heart normal, lungs clear.");
        assert_eq!(p.cases[0].image.as_deref(), Some("x.png"));
        assert_eq!(p.cases[1].text, "Line one\nline two");
        let err = read_cases("r.csv", b"id,findings\n1,x\n", &[]).unwrap_err();
        assert!(err.contains("needs a \"text\""), "{err}");
        let err = read_cases("r.txt", b"", &[]).unwrap_err();
        assert!(err.contains("not a case file"), "{err}");
        let err = read_cases("r.jsonl", b"\n\n", &[]).unwrap_err();
        assert!(err.contains("no case to review"), "{err}");
    }

    #[test]
    fn the_real_openi_archive_gives_a_capped_session_paired_with_its_images() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/openi/NLMCXR_reports.tgz"
        );
        let bytes = std::fs::read(path).expect("the data tests need ../shared beside the checkout");
        let images = vec!["CXR1_1_IM-0001-4001.png".to_string()];
        let p = read_cases("NLMCXR_reports.tgz", &bytes, &images).unwrap();
        assert_eq!(p.cases.len(), MAX_CASES);
        assert!(
            p.problems
                .iter()
                .any(|m| m.contains("this session takes the first 500")),
            "{:?}",
            p.problems
        );
        let first = &p.cases[0];
        assert_eq!(first.id, "CXR1");
        assert_eq!(first.image.as_deref(), Some("CXR1_1_IM-0001-4001.png"));
        assert!(first.text.contains("IMPRESSION:"), "{}", first.text);
        assert!(p.cases[1..].iter().all(|c| c.image.is_none()));
    }

    #[test]
    fn openi_archives_give_a_case_per_report_with_its_frontal_image() {
        let xml = |id: &str, findings: &str, images: &[&str]| {
            let imgs: String = images
                .iter()
                .map(|i| format!("<parentImage id=\"{i}\"></parentImage>"))
                .collect();
            format!(
                "<eCitation><MedlineCitation><Article><Abstract><AbstractText Label=\"FINDINGS\">{findings}</AbstractText>\
                 <AbstractText Label=\"IMPRESSION\">Normal.</AbstractText></Abstract></Article></MedlineCitation>\
                 <MeSH><major>normal</major></MeSH><uId id=\"CXR{id}\"/>{imgs}</eCitation>"
            )
        };
        let mut tar = tar::Builder::new(Vec::new());
        for (name, body) in [
            (
                "ecgen-radiology/2.xml",
                xml(
                    "2",
                    "Heart normal.",
                    &["CXR2_IM-0652-1001", "CXR2_IM-0652-2001"],
                ),
            ),
            ("ecgen-radiology/1.xml", xml("1", "Lungs clear.", &[])),
            ("ecgen-radiology/3.xml", "<broken".to_string()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, body.as_bytes()).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        let bytes = gz.finish().unwrap();
        let images = vec!["2_IM-0652-2001.dcm.png".to_string()];
        let p = read_cases("NLMCXR_reports.tgz", &bytes, &images).unwrap();
        let ids: Vec<&str> = p.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["CXR1", "CXR2"]);
        assert!(
            p.cases[1].text.contains("FINDINGS: Heart normal."),
            "{}",
            p.cases[1].text
        );
        assert_eq!(p.cases[1].image.as_deref(), Some("2_IM-0652-2001.dcm.png"));
        assert!(
            p.problems.iter().any(|m| m.contains("3.xml")),
            "{:?}",
            p.problems
        );
    }
}
