//! Property tests on hostile input: the text pipeline, image decoding, the
//! OpenI XML and `.tgz` readers, and the rule bundle's verification. Each
//! runs proptest's default budget (256 cases, or `PROPTEST_CASES`); the long
//! run, its command and its numbers are in BENCHMARKS.md.

mod common;
use common::{pipeline, tgz};
use integrabner_core::bundle::{BundleFile, BundleManifest};
use integrabner_core::image_input::{decode, MAX_IMAGE_PIXELS};
use integrabner_core::openi::{parse_report_xml, read_tgz, Corpus};
use integrabner_core::RulePipeline;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Records the largest single allocation made on each thread, so that a
/// property can say "nothing asked for more than the limit".
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

fn largest_allocation_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

fn shared(path: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(path);
    assert!(
        p.exists(),
        "{} is missing: the data tests need ../shared",
        p.display()
    );
    p
}

/// Words and characters reports are made of, with the odd ones fuzzers find.
fn report_piece() -> impl Strategy<Value = String> {
    const WORDS: [&str; 24] = [
        "no",
        "right",
        "left",
        "pleural",
        "effusion",
        "pneumothorax",
        "not",
        "cardiomegaly",
        "may",
        "represent",
        "resolved",
        "tube",
        "chest",
        "heart",
        "lung",
        "FINDINGS:",
        "IMPRESSION:",
        "mild",
        "opacity",
        "atelectasis",
        "without",
        "evidence",
        "of",
        "base",
    ];
    prop_oneof![
        4 => proptest::sample::select(&WORDS[..]).prop_map(str::to_string),
        2 => Just(" ".to_string()),
        1 => prop_oneof![Just("."), Just("\n"), Just(","), Just(":"), Just("-")]
            .prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
        1 => prop_oneof![
            Just('\u{00AD}'), Just('\u{200B}'), Just('\u{FEFF}'), Just('\u{0301}'),
            Just('\u{0000}'), Just('\u{202E}'), Just('🫁'), Just('İ'), Just('ß'),
        ]
        .prop_map(String::from),
    ]
}

fn report_like() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(report_piece(), 0..120).prop_map(|p| p.concat()),
        1 => any::<String>(),
    ]
}

proptest! {
    /// Any text: an error or a prediction whose entities are exact slices
    /// of the text at char offsets, the same on every run.
    #[test]
    fn fuzz_text_pipeline_keeps_offsets_exact_and_is_deterministic(text in report_like()) {
        let chars: Vec<char> = text.chars().collect();
        match pipeline().predict("fuzz", &text) {
            Err(_) => prop_assert!(pipeline().predict("fuzz", &text).is_err()),
            Ok(p) => {
                for e in &p.entities {
                    prop_assert!(e.start < e.end && e.end <= chars.len(), "{e:?}");
                    prop_assert_eq!(chars[e.start..e.end].iter().collect::<String>(), e.text.clone());
                }
                prop_assert_eq!(Some(p), pipeline().predict("fuzz", &text).ok());
            }
        }
    }
}

/// A small real radiograph as PNG and JPEG, from an NIH image.
fn real_images() -> &'static [Vec<u8>; 2] {
    static IMAGES: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let png = std::fs::read(shared("nih-cxr/images/00000061_012.png")).unwrap();
        let small = decode(&png).unwrap().thumbnail(48, 48);
        let encode = |format| {
            let mut out = std::io::Cursor::new(Vec::new());
            small.write_to(&mut out, format).unwrap();
            out.into_inner()
        };
        [
            encode(image::ImageFormat::Png),
            encode(image::ImageFormat::Jpeg),
        ]
    })
}

/// Real image bytes with some bytes overwritten (the header more often than
/// not, where sizes live) and maybe cut short.
fn damaged_image() -> impl Strategy<Value = Vec<u8>> {
    (
        0..2usize,
        proptest::collection::vec((0..1usize << 16, any::<u8>(), any::<bool>()), 1..8),
        proptest::option::of(0..1usize << 16),
    )
        .prop_map(|(which, edits, cut)| {
            let mut bytes = real_images()[which].clone();
            for (at, value, header) in edits {
                let at = (if header { at % 64 } else { at }) % bytes.len();
                bytes[at] = value;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            bytes
        })
}

fn image_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => damaged_image(),
        1 => proptest::collection::vec(any::<u8>(), 0..2048),
        1 => (prop_oneof![Just(&b"\x89PNG\r\n\x1a\n"[..]), Just(&b"\xff\xd8\xff"[..])],
              proptest::collection::vec(any::<u8>(), 0..2048))
            .prop_map(|(magic, rest)| [magic, &rest].concat()),
    ]
}

proptest! {
    /// Any bytes: `Ok` within the pixel limit or `Err`, never a panic, and
    /// no allocation beyond what the decoder's limits allow.
    #[test]
    fn fuzz_image_decoding_is_bounded(bytes in image_bytes()) {
        let (decoded, largest) = largest_allocation_of(|| decode(&bytes));
        if let Ok(image) = decoded {
            prop_assert!(u64::from(image.width()) * u64::from(image.height()) <= MAX_IMAGE_PIXELS);
        }
        prop_assert!(largest as u64 <= MAX_IMAGE_PIXELS * 8, "{largest} bytes allocated at once");
    }
}

/// The first few reports of the real OpenI archive, as their XML bytes.
fn real_reports() -> &'static Vec<(String, Vec<u8>)> {
    static REPORTS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    REPORTS.get_or_init(|| {
        let file = std::fs::File::open(shared("openi/NLMCXR_reports.tgz")).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".xml") {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
                out.push((name, bytes));
                if out.len() == 6 {
                    break;
                }
            }
        }
        out
    })
}

fn edited(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(at, value) in edits {
        if !bytes.is_empty() {
            let at = at % bytes.len();
            bytes[at] = value;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

fn edits() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
    (
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        proptest::option::of(any::<usize>()),
    )
}

proptest! {
    /// Damaged real reports: each is a report or a problem naming the file.
    #[test]
    fn fuzz_openi_xml_gives_a_report_or_a_problem(
        which in 0..6usize,
        (edits, cut) in edits(),
        nesting in proptest::option::of(0..5000usize),
    ) {
        let (name, bytes) = &real_reports()[which % real_reports().len()];
        let mut bytes = edited(bytes.clone(), &edits, cut);
        if let Some(depth) = nesting {
            bytes = [b"<x>".repeat(depth), bytes].concat();
        }
        let mut corpus = Corpus::default();
        corpus.add_xml(name, &bytes);
        prop_assert_eq!(corpus.reports.len() + corpus.skipped(), 1);
        prop_assert!(corpus.problems.iter().all(|p| &p.file == name));
    }

    #[test]
    fn fuzz_openi_xml_parser_takes_any_text(text in any::<String>()) {
        let _ = parse_report_xml(&text);
    }

    /// A damaged archive: an error, or what could be read with problems.
    #[test]
    fn fuzz_openi_tgz_never_panics((edits, cut) in edits()) {
        static ARCHIVE: OnceLock<Vec<u8>> = OnceLock::new();
        let archive = ARCHIVE.get_or_init(|| {
            let entries: Vec<(&str, Vec<u8>)> =
                real_reports().iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
            tgz(&entries)
        });
        let bytes = edited(archive.clone(), &edits, cut);
        let mut corpus = Corpus::default();
        if read_tgz(bytes.as_slice(), &mut corpus).is_ok() {
            prop_assert!(corpus.reports.len() <= real_reports().len());
        }
    }
}

/// The shipped rule files with their manifest entries.
fn rule_bundle() -> &'static Vec<(BundleFile, Vec<u8>)> {
    static FILES: OnceLock<Vec<(BundleFile, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let manifest = BundleManifest::from_json(
            &std::fs::read_to_string(models.join("manifest.json")).unwrap(),
        )
        .unwrap();
        manifest
            .files
            .into_iter()
            .filter(|f| f.path.starts_with("rules/"))
            .map(|f| {
                let bytes = std::fs::read(models.join(&f.path)).unwrap();
                (f, bytes)
            })
            .collect()
    })
}

#[test]
fn the_shipped_rule_bundle_loads() {
    let files: Vec<(&BundleFile, &[u8])> = rule_bundle()
        .iter()
        .map(|(f, b)| (f, b.as_slice()))
        .collect();
    assert!(RulePipeline::from_bundle(&files).is_ok());
}

proptest! {
    /// One flipped byte anywhere in the rule bundle is refused.
    #[test]
    fn fuzz_bundle_byte_flips_are_refused(which in any::<usize>(), at in any::<usize>(), flip in 1..=255u8) {
        let bundle = rule_bundle();
        let which = which % bundle.len();
        let mut damaged = bundle[which].1.clone();
        let at = at % damaged.len();
        damaged[at] ^= flip;
        let files: Vec<(&BundleFile, &[u8])> = bundle
            .iter()
            .enumerate()
            .map(|(i, (f, b))| (f, if i == which { damaged.as_slice() } else { b.as_slice() }))
            .collect();
        prop_assert!(RulePipeline::from_bundle(&files).is_err());
    }
}
