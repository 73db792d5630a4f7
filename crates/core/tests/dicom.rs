//! DICOM reading against files pydicom wrote from an NIH PNG
//! (`scripts/dicom-fixtures`, listed in their `manifest.json`): each
//! lossless encoding gives the PNG's grey levels back exactly.

use integrabner_core::dicom;
use integrabner_core::image_input::{decode, read, Radiograph};
use integrabner_core::{ImageFormat, View};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
struct Manifest {
    png: PathBuf,
    files: Vec<Fixture>,
}

#[derive(Deserialize)]
struct Fixture {
    file: String,
    expect: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    frames: u32,
}

fn fixtures() -> (PathBuf, Manifest) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dicom-fixtures");
    let manifest = std::fs::read(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/dicom-fixtures first", dir.display()));
    (dir, serde_json::from_slice(&manifest).unwrap())
}

fn grey(image: &image::DynamicImage) -> image::GrayImage {
    image.to_luma8()
}

#[test]
fn every_fixture_reads_as_its_manifest_says() {
    let (dir, manifest) = fixtures();
    let png = grey(&decode(&std::fs::read(&manifest.png).unwrap()).unwrap());
    assert!(manifest.files.len() >= 15);
    for f in &manifest.files {
        let bytes = std::fs::read(dir.join(&f.file)).unwrap();
        let result = read(&bytes);
        match f.expect.as_str() {
            "same" | "lateral" => {
                let r = result.unwrap_or_else(|e| panic!("{}: {e}", f.file));
                assert_eq!(r.info.format, ImageFormat::Dicom);
                assert_eq!(grey(&r.image), png, "{}: not the PNG's grey levels", f.file);
                let want = if f.expect == "lateral" {
                    View::Lateral
                } else {
                    View::Frontal
                };
                assert_eq!(r.info.view, want, "{}", f.file);
                if f.frames > 1 {
                    assert_eq!(r.info.dicom.as_ref().unwrap().frames, f.frames);
                    assert!(r.info.notes[0].contains("the first was read"));
                }
            }
            "close" => {
                let r = result.unwrap_or_else(|e| panic!("{}: {e}", f.file));
                let jpeg =
                    grey(&decode(&std::fs::read(dir.join("jpeg-baseline.jpg")).unwrap()).unwrap());
                let largest = |a: &image::GrayImage, b: &image::GrayImage| {
                    a.pixels()
                        .zip(b.pixels())
                        .map(|(x, y)| x[0].abs_diff(y[0]))
                        .max()
                        .unwrap()
                };
                // Two JPEG decoders (dicom-rs's and the image crate's) may
                // round differently; against the PNG, quality 95's loss.
                assert!(largest(&grey(&r.image), &jpeg) <= 2, "{}", f.file);
                assert!(largest(&grey(&r.image), &png) <= 32, "{}", f.file);
            }
            "refused" => {
                let e = result
                    .err()
                    .unwrap_or_else(|| panic!("{} was read", f.file));
                assert!(
                    e.to_string().contains(&f.message),
                    "{}: {e:?} does not say {:?}",
                    f.file,
                    f.message
                );
            }
            other => panic!("unknown expectation {other}"),
        }
    }
}

#[test]
fn the_header_stays_out_of_the_image_info() {
    let (dir, _) = fixtures();
    let bytes = std::fs::read(dir.join("mono2-8bit.dcm")).unwrap();
    let image = dicom::read(&bytes).unwrap();
    assert_eq!(image.header.patient_name.as_deref(), Some("Fixture Jane"));
    assert_eq!(image.header.accession_number.as_deref(), Some("ACC123456"));
    let info = serde_json::to_string(&Radiograph::of_dicom(&image).unwrap().info).unwrap();
    for identifier in [
        "Fixture",
        "NIH-00000061",
        "19550101",
        "ACC123456",
        "1.2.826",
    ] {
        assert!(!info.contains(identifier), "{identifier} in {info}");
    }
    assert!(info.contains("\"view_position\":\"PA\""), "{info}");
}

#[test]
fn re_windowing_and_inverting_change_the_picture() {
    let (dir, _) = fixtures();
    let image = dicom::read(&std::fs::read(dir.join("mono2-16bit-rescale.dcm")).unwrap()).unwrap();
    assert_eq!(image.presets.len(), 1);
    let (lo, hi) = image.value_range();
    assert!(lo >= -1024.0 && hi <= 8.0 * 255.0 - 1024.0, "{lo}..{hi}");
    let own = image.render(None, false);
    let inverted = image.render(None, true);
    assert!(own
        .pixels()
        .zip(inverted.pixels())
        .all(|(a, b)| a[0] == 255 - b[0]));
    let narrow = image.render(
        Some(dicom::Window {
            center: -500.0,
            width: 10.0,
        }),
        false,
    );
    // A 10-unit window: almost every pixel is black or white.
    let mid = narrow.pixels().filter(|p| p[0] > 5 && p[0] < 250).count();
    assert!(mid * 100 < narrow.pixels().len(), "{mid}");
}

/// Prefixes and one-byte changes of valid files: each reads or is refused,
/// and nothing panics (a panic would kill the worker). A changed length
/// field can make dicom-rs reserve gigabytes before it finds the file too
/// short (natively slow, in wasm a refused reservation), which bounds how
/// many changes this test affords.
#[test]
fn damaged_files_are_refused_without_a_panic() {
    let (dir, _) = fixtures();
    for name in [
        "mono2-8bit.dcm",
        "rle.dcm",
        "jpeg2000-lossless.dcm",
        "voi-lut-table.dcm",
    ] {
        let whole = std::fs::read(dir.join(name)).unwrap();
        let header = whole.len().min(1024);
        for cut in (0..header)
            .step_by(5)
            .chain((header..whole.len()).step_by(8191))
        {
            let _ = read(&whole[..cut]);
        }
        let mut rng = integrabner_core::rng::SplitMix64::new(7);
        for _ in 0..60 {
            let mut damaged = whole.clone();
            let at = (rng.next_u64() % header as u64) as usize;
            damaged[at] = rng.next_u64() as u8;
            let _ = read(&damaged);
        }
    }
}
