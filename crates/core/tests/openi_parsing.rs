//! OpenI reading on generated fixtures: XML, .tgz, CSV, and damaged files.

mod common;
use common::tgz;
use integrabner_core::openi::{
    parse_report_xml, read_csv, read_tgz, read_tgz_within, Corpus, Projection,
};

fn report_xml(id: &str, findings: &str, impression: &str, mesh: &[&str]) -> String {
    let mesh: String = mesh.iter().map(|m| format!("<major>{m}</major>")).collect();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<eCitation><uId id="CXR{id}"/><IUXRId id="{id}"/>
<MedlineCitation><Article><Abstract>
<AbstractText Label="COMPARISON">None.</AbstractText>
<AbstractText Label="INDICATION">Cough &amp; fever</AbstractText>
<AbstractText Label="FINDINGS">{findings}</AbstractText>
<AbstractText Label="IMPRESSION">{impression}</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH>{mesh}<automatic>Pulmonary Atelectasis/base</automatic></MeSH>
<parentImage id="CXR{id}_IM-0001-1001"><figureId>F1</figureId></parentImage>
<parentImage id="CXR{id}_IM-0001-2001"><figureId>F2</figureId></parentImage>
</eCitation>"#
    )
}

#[test]
fn xml_keeps_sections_coding_and_images() {
    let xml = report_xml(
        "7",
        "Streaky  opacity.",
        "Atelectasis.",
        &[
            "Opacity/lung/upper lobe/right/streaky",
            "Aorta, Thoracic/tortuous",
        ],
    );
    let r = parse_report_xml(&xml).unwrap();
    assert_eq!(r.id, "CXR7");
    assert_eq!(r.sections.indication.as_deref(), Some("Cough & fever"));
    assert_eq!(r.sections.findings.as_deref(), Some("Streaky opacity."));
    assert_eq!(r.mesh[0].heading, "Opacity");
    assert_eq!(
        r.mesh[0].qualifiers,
        ["lung", "upper lobe", "right", "streaky"]
    );
    assert_eq!(r.mesh[1].heading, "Aorta, Thoracic");
    assert_eq!(r.automatic[0].heading, "Pulmonary Atelectasis");
    assert_eq!(r.images.len(), 2);
    assert_eq!(r.gold_headings(), ["Opacity", "Aorta, Thoracic"]);
    assert!(r
        .text()
        .starts_with("INDICATION: Cough & fever\nCOMPARISON: None.\nFINDINGS: "));
}

#[test]
fn an_archive_that_inflates_past_its_limit_keeps_what_came_before() {
    let report = |id: &str| {
        format!(
            r#"<eCitation><IUXRId id="{id}"/><AbstractText Label="FINDINGS">Clear.</AbstractText></eCitation>{}"#,
            " ".repeat(3000)
        )
        .into_bytes()
    };
    let names: Vec<String> = (1..=4).map(|i| format!("{i}.xml")).collect();
    let entries: Vec<(&str, Vec<u8>)> = names
        .iter()
        .zip(["1", "2", "3", "4"])
        .map(|(n, id)| (n.as_str(), report(id)))
        .collect();
    let mut corpus = Corpus::default();
    read_tgz_within(tgz(&entries).as_slice(), &mut corpus, 8_000).unwrap();
    let ids: Vec<&str> = corpus.reports.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["CXR1", "CXR2"]);
    let last = corpus.problems.last().unwrap();
    assert_eq!(last.file, "<rest of the archive>");
    assert!(
        last.message.contains("inflates to more than 8000 bytes"),
        "{}",
        last.message
    );
}

#[test]
fn damaged_files_are_named_skipped_and_counted() {
    let good = report_xml("1", "Normal.", "Normal.", &["normal"]);
    let no_findings = report_xml("2", "", "Cardiomegaly.", &["Cardiomegaly"])
        .replace(r#"<AbstractText Label="FINDINGS"></AbstractText>"#, "");
    let empty = report_xml("3", "", "", &["normal"]);
    let archive = tgz(&[
        ("ecgen-radiology/1.xml", good.into_bytes()),
        ("ecgen-radiology/2.xml", no_findings.into_bytes()),
        ("ecgen-radiology/3.xml", empty.into_bytes()),
        ("ecgen-radiology/4.xml", b"<eCitation><unclosed>".to_vec()),
        ("ecgen-radiology/5.xml", vec![b'<', 0xff, 0xfe, b'>']),
        ("ecgen-radiology/README.txt", b"not a report".to_vec()),
    ]);
    let mut corpus = Corpus::default();
    read_tgz(archive.as_slice(), &mut corpus).unwrap();
    let ids: Vec<&str> = corpus.reports.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["CXR1", "CXR2"]);
    assert_eq!(corpus.skipped(), 3);
    let msg = |f: &str| {
        corpus
            .problems
            .iter()
            .find(|p| p.file.ends_with(f))
            .map(|p| (p.message.clone(), p.skipped))
            .unwrap()
    };
    assert!(msg("3.xml").0.contains("no findings or impression"));
    assert!(msg("4.xml").0.contains("malformed XML"));
    assert!(msg("5.xml").0.contains("UTF-8"));
    assert_eq!(
        msg("2.xml"),
        (
            "no FINDINGS section; using the impression alone".into(),
            false
        )
    );
}

#[test]
fn a_truncated_archive_is_an_error_not_a_panic() {
    let archive = tgz(&[("a.xml", report_xml("1", "x", "y", &[]).into_bytes())]);
    let mut corpus = Corpus::default();
    let result = read_tgz(&archive[..archive.len() / 2], &mut corpus);
    assert!(result.is_err() || corpus.reports.is_empty());
}

#[test]
fn csv_layout_with_projections() {
    let reports = "uid,MeSH,Problems,image,indication,comparison,findings,impression\n\
        1,normal,normal,Xray,Pain,None.,Clear lungs.,Normal.\n\
        2,Cardiomegaly/borderline;Pulmonary Artery/enlarged,x,y,,,\"Borderline cardiomegaly, enlarged arteries.\",No acute findings.\n\
        3,normal,normal,Xray,,,,\n";
    let projections = "uid,filename,projection\n1,1_IM-0001-4001.dcm.png,Frontal\n1,1_IM-0001-3001.dcm.png,Lateral\n2,2_IM-0652-1001.dcm.png,Frontal\n";
    let mut corpus = Corpus::default();
    read_csv(
        reports.as_bytes(),
        Some(projections.as_bytes()),
        &mut corpus,
    )
    .unwrap();
    assert_eq!(corpus.reports.len(), 2);
    assert_eq!(corpus.skipped(), 1);
    let r2 = &corpus.reports[1];
    assert_eq!(r2.gold_headings(), ["Cardiomegaly", "Pulmonary Artery"]);
    assert_eq!(r2.mesh[0].qualifiers, ["borderline"]);
    assert_eq!(r2.images[0].id, "CXR2_IM-0652-1001");
    assert_eq!(
        corpus.reports[0].images[1].projection,
        Some(Projection::Lateral)
    );
}
