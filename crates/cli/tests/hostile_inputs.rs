//! The `integrabner` binary against hostile input: damaged model bundles,
//! inputs that used to crash, hang or read without bound. Each case is
//! bounded in time, so a regression fails instead of hanging the suite.

mod common;
use candle_core::{Device, Tensor};
use common::{bin, exact_entities, run_within, shared, workspace};
use integrabner_core::bundle::{BundleManifest, FileRole};
use integrabner_models::quantized::{from_gguf, to_gguf};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> Output {
    run_within(cmd, b"", Duration::from_secs(120))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the app bundle (rules, report, image and fusion models and the
/// bundle manifest), to damage.
fn bundle_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let models = workspace().join("models");
    let to = dir.path().join("models");
    for sub in ["rules", "text", "image", "fusion"] {
        copy_dir(&models.join(sub), &to.join(sub));
    }
    std::fs::copy(models.join("manifest.json"), to.join("manifest.json")).unwrap();
    dir
}

fn flip(path: &Path, positions: impl IntoIterator<Item = usize>) {
    let mut bytes = std::fs::read(path).unwrap();
    for p in positions {
        let at = p % bytes.len();
        bytes[at] ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
}

/// Replaces the text file at `path` with `change` of it, which must differ.
fn rewrite(path: &Path, change: impl FnOnce(&str) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    let changed = change(&text);
    assert_ne!(changed, text, "{} unchanged", path.display());
    std::fs::write(path, changed).unwrap();
}

/// Flips 64 bytes spread over the file.
fn flip_64(path: &Path) {
    flip(path, (0..64).map(|i| 7_919 * i + 2_048));
}

/// Rewrites `dir/manifest.json` (and the bundle's, one level up) to match
/// the files as they are now: what a buggy export would do, so that only
/// the loader's own checks stand between damaged weights and the user.
fn rewrite_manifests(dir: &Path) {
    for (manifest_path, prefix) in [
        (dir.join("manifest.json"), String::new()),
        (
            dir.parent().unwrap().join("manifest.json"),
            format!("{}/", dir.file_name().unwrap().to_string_lossy()),
        ),
    ] {
        let mut manifest =
            BundleManifest::from_json(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
        let files: Vec<(String, FileRole, Vec<u8>)> = manifest
            .files
            .iter()
            .map(|f| {
                let local = f.path.strip_prefix(&prefix).map(|p| dir.join(p));
                let path = local.unwrap_or_else(|| manifest_path.parent().unwrap().join(&f.path));
                (f.path.clone(), f.role, std::fs::read(path).unwrap())
            })
            .collect();
        let described: Vec<(&str, FileRole, &[u8])> = files
            .iter()
            .map(|(p, r, b)| (p.as_str(), *r, b.as_slice()))
            .collect();
        let rebuilt =
            BundleManifest::build(&described, &manifest.provenance, manifest.metrics.clone())
                .unwrap();
        manifest.files = rebuilt.files;
        std::fs::write(&manifest_path, manifest.to_json_pretty()).unwrap();
    }
}

/// Writes NaN into the first value of the tensor whose name ends in `suffix`.
fn poison(gguf: &Path, suffix: &str) {
    let device = Device::Cpu;
    let (mut tensors, metadata) = from_gguf(&std::fs::read(gguf).unwrap(), &device).unwrap();
    let name = tensors
        .keys()
        .find(|n| n.ends_with(suffix))
        .unwrap_or_else(|| panic!("no tensor *{suffix} in {}", gguf.display()))
        .clone();
    let t = &tensors[&name];
    let mut values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    values[0] = f32::NAN;
    let poisoned = Tensor::from_vec(values, t.dims(), &device).unwrap();
    tensors.insert(name, poisoned);
    let metadata: Vec<(&str, String)> = metadata
        .iter()
        .filter(|(k, _)| !k.starts_with("shape."))
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let tensors: HashMap<String, Tensor> = tensors;
    std::fs::write(gguf, to_gguf(&tensors, &metadata).unwrap()).unwrap();
}

/// `predict` of one case with a report and an NIH image through every
/// model of the bundle in `root`, writing to `root/out.jsonl`.
fn predict_case(root: &Path, extra: &[&str]) -> Output {
    let cases = root.join("cases.jsonl");
    let image = shared("nih-cxr/images/00000061_012.png");
    std::fs::write(
        &cases,
        format!(
            "{{\"id\": \"c1\", \"text\": \"Small right pleural effusion. No pneumothorax.\", \"image\": {:?}}}\n",
            image.display().to_string()
        ),
    )
    .unwrap();
    let models = root.join("models");
    run(bin()
        .arg("predict")
        .arg(&cases)
        .arg("--text-model")
        .arg(models.join("text"))
        .arg("--image-model")
        .arg(models.join("image"))
        .arg("--fusion-model")
        .arg(models.join("fusion"))
        .arg("-o")
        .arg(root.join("out.jsonl"))
        .args(extra))
}

#[test]
fn predict_refuses_a_damaged_bundle_with_the_file_named_and_nothing_written() {
    type Damage = fn(&Path);
    let damages: [(&str, Damage, &[&str]); 10] = [
        (
            "one byte of the report model",
            |m| flip(&m.join("text/model.gguf"), [1_000_003]),
            &["text/model.gguf", "SHA-256 mismatch"],
        ),
        (
            "64 bytes of the report model",
            |m| flip_64(&m.join("text/model.gguf")),
            &["text/model.gguf", "SHA-256 mismatch"],
        ),
        (
            "64 bytes of the image model",
            |m| flip_64(&m.join("image/model.gguf")),
            &["image/model.gguf", "SHA-256 mismatch"],
        ),
        (
            "every SHA-256 of a manifest zeroed",
            |m| {
                rewrite(&m.join("text/manifest.json"), |text| {
                    let zero = |l: &str| match l.split_once("\"sha256\": \"") {
                        Some((head, _)) => format!("{head}\"sha256\": \"{}\"", "0".repeat(64)),
                        None => l.to_string(),
                    };
                    text.lines().map(zero).collect::<Vec<_>>().join("\n")
                })
            },
            &["text/config.json", "SHA-256 mismatch"],
        ),
        (
            "the report model's manifest deleted",
            |m| std::fs::remove_file(m.join("text/manifest.json")).unwrap(),
            &["text has no manifest.json", "--unverified"],
        ),
        (
            "token ids swapped in the tokenizer",
            |m| {
                rewrite(&m.join("text/tokenizer.json"), |text| {
                    text.replace("\"lung\":", "\"@@\":")
                        .replace("\"heart\":", "\"lung\":")
                        .replace("\"@@\":", "\"heart\":")
                })
            },
            &["text/tokenizer.json", "SHA-256 mismatch"],
        ),
        (
            "a model replaced without `integrabner export`",
            |m| {
                flip(&m.join("fusion/model.gguf"), [4_000]);
                // The model's own manifest now matches; the bundle's does not.
                let fusion = m.join("fusion");
                let mut manifest = BundleManifest::from_json(
                    &std::fs::read_to_string(fusion.join("manifest.json")).unwrap(),
                )
                .unwrap();
                let bytes = std::fs::read(fusion.join("model.gguf")).unwrap();
                for f in &mut manifest.files {
                    if f.path == "model.gguf" {
                        f.sha256 = integrabner_core::bundle::sha256_hex(&bytes);
                    }
                }
                std::fs::write(fusion.join("manifest.json"), manifest.to_json_pretty()).unwrap();
            },
            &[
                "fusion/model.gguf",
                "models/manifest.json",
                "integrabner export",
            ],
        ),
        (
            "NaN in the findings head, manifests rewritten",
            |m| {
                poison(&m.join("text/model.gguf"), "findings_classifier.bias");
                rewrite_manifests(&m.join("text"));
            },
            &["findings_classifier.bias", "NaN"],
        ),
        (
            "NaN in the entity bias, manifests rewritten",
            |m| {
                poison(&m.join("text/model.gguf"), "entity_classifier.bias");
                rewrite_manifests(&m.join("text"));
            },
            &["entity_classifier.bias", "NaN"],
        ),
        (
            "NaN in the image head, manifests rewritten",
            |m| {
                poison(&m.join("image/model.gguf"), "image_head.bias");
                rewrite_manifests(&m.join("image"));
            },
            &["image_head.bias", "NaN"],
        ),
    ];
    for (what, damage, expected) in damages {
        let root = bundle_copy();
        damage(&root.path().join("models"));
        let out = predict_case(root.path(), &[]);
        let message = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {message}");
        for e in expected {
            assert!(message.contains(e), "{what}: no {e:?} in {message}");
        }
        assert!(
            !message.contains("candle_core::"),
            "{what}: a backtrace in {message}"
        );
        assert!(
            !root.path().join("out.jsonl").exists(),
            "{what}: output written"
        );
    }
}

#[test]
fn the_intact_bundle_runs_and_an_unverified_training_output_runs_with_a_warning() {
    let root = bundle_copy();
    let out = predict_case(root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let verified = std::fs::read_to_string(root.path().join("out.jsonl")).unwrap();

    for manifest in ["text", "image", "fusion"] {
        std::fs::remove_file(
            root.path()
                .join("models")
                .join(manifest)
                .join("manifest.json"),
        )
        .unwrap();
    }
    let out = predict_case(root.path(), &["--unverified"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out)
            .matches("is used unverified (--unverified)")
            .count(),
        3,
        "{}",
        stderr(&out)
    );
    let unverified = std::fs::read_to_string(root.path().join("out.jsonl")).unwrap();
    assert_eq!(unverified, verified);
}

#[test]
fn a_damaged_model_file_is_one_line_without_a_backtrace_unless_asked() {
    let root = bundle_copy();
    let text = root.path().join("models/text");
    std::fs::write(text.join("model.gguf"), b"not a gguf file at all").unwrap();
    let predict = |backtrace: Option<&str>| {
        let mut cmd = bin();
        cmd.args(["predict", "--unverified", "--text-model"])
            .arg(&text)
            .env("RUST_LIB_BACKTRACE", "1")
            .env_remove("RUST_BACKTRACE");
        if let Some(value) = backtrace {
            cmd.env("RUST_BACKTRACE", value);
        }
        run_within(&mut cmd, b"No pneumothorax.", Duration::from_secs(60))
    };
    let plain = predict(None);
    assert_eq!(plain.status.code(), Some(1));
    let message = stderr(&plain);
    let errors: Vec<&str> = message
        .lines()
        .filter(|l| !l.starts_with("warning:"))
        .collect();
    assert_eq!(errors.len(), 1, "{message}");
    assert!(
        errors[0].starts_with("error: cannot load the report model in"),
        "{message}"
    );
    assert!(errors[0].contains("magic"), "{message}");
    let asked = stderr(&predict(Some("1")));
    assert!(
        asked.lines().count() > 3,
        "RUST_BACKTRACE=1 shows the backtrace: {asked}"
    );
}

fn report_xml(id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<eCitation><uId id="CXR{id}"/><IUXRId id="{id}"/>
<MedlineCitation><Article><Abstract>
<AbstractText Label="FINDINGS">Small right pleural effusion.</AbstractText>
<AbstractText Label="IMPRESSION">No pneumothorax.</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH><major>Pleural Effusion/right/small</major></MeSH>
</eCitation>"#
    )
}

fn ids(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// `dir/reports.tgz` of the folder `dir/ecgen-radiology`, made by the
/// system's tar as a user would make one.
fn tgz_of(dir: &Path) -> PathBuf {
    let archive = dir.join("reports.tgz");
    let made = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(dir)
        .arg("ecgen-radiology")
        .status()
        .unwrap();
    assert!(made.success());
    archive
}

/// A folder `ecgen-radiology` in a new temporary directory with `files`.
fn openi_folder(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("ecgen-radiology");
    std::fs::create_dir(&xml).unwrap();
    for (name, bytes) in files {
        std::fs::write(xml.join(name), bytes).unwrap();
    }
    dir
}

#[test]
fn deeply_nested_xml_is_a_problem_naming_the_file_alone_and_in_an_archive() {
    let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let dir = openi_folder(&[
        ("1.xml", report_xml("1").as_bytes()),
        ("2.xml", deep.as_bytes()),
    ]);
    // The folder alone, and the folder as a .tgz.
    for input in [dir.path().join("ecgen-radiology"), tgz_of(dir.path())] {
        let out = run(bin().args(["predict", "--rules-only"]).arg(&input));
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert_eq!(ids(&out), ["CXR1"]);
        assert!(
            stderr(&out).contains("ecgen-radiology/2.xml: elements nest deeper than 64"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn an_oversized_archive_member_is_skipped_unread() {
    let huge = 64 * 1024 * 1024;
    let spaces = vec![b' '; huge];
    let dir = openi_folder(&[("9.xml", &spaces), ("1.xml", report_xml("1").as_bytes())]);
    let out = run(bin()
        .args(["predict", "--rules-only"])
        .arg(tgz_of(dir.path())));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(ids(&out), ["CXR1"]);
    assert!(
        stderr(&out).contains(&format!(
            "ecgen-radiology/9.xml: {huge} bytes of XML; at most 4194304"
        )),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn link_loops_fifos_devices_and_sparse_files_neither_hang_nor_flood() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("xml");
    std::fs::create_dir_all(xml.join("a")).unwrap();
    std::fs::write(xml.join("a/1.xml"), report_xml("1")).unwrap();
    std::fs::write(xml.join("2.xml"), report_xml("2")).unwrap();
    symlink(&xml, xml.join("a/b")).unwrap();
    symlink(".", xml.join("loop")).unwrap();
    let out = run_within(
        bin().args(["predict", "--rules-only"]).arg(&xml),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ids(&out), ["CXR1", "CXR2"], "each real report once");
    assert!(
        stderr(&out).contains("links to a directory; not followed"),
        "{}",
        stderr(&out)
    );

    let fifo = dir.path().join("pipe.png");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let sparse = dir.path().join("sparse.png");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let cases = dir.path().join("cases.jsonl");
    let line = |id: &str, image: &Path| {
        format!(
            "{{\"id\": \"{id}\", \"image\": {:?}}}\n",
            image.display().to_string()
        )
    };
    std::fs::write(
        &cases,
        [
            line("fifo", &fifo),
            line("zero", Path::new("/dev/zero")),
            line("random", Path::new("/dev/urandom")),
            line("sparse", &sparse),
        ]
        .concat(),
    )
    .unwrap();
    let started = Instant::now();
    let out = run_within(
        bin()
            .args(["predict", "--image-model"])
            .arg(workspace().join("models/image"))
            .arg(&cases),
        b"",
        Duration::from_secs(60),
    );
    // Every case was skipped: nothing was written, which is a failure.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let message = stderr(&out);
    assert!(
        message.contains("nothing was written: no case of the input could be analysed (4 skipped)"),
        "{message}"
    );
    for (id, why) in [
        ("fifo", "not a regular file"),
        ("zero", "not a regular file"),
        ("random", "not a regular file"),
        ("sparse", "1073741824 bytes; at most 67108864 are read"),
    ] {
        assert!(
            message.contains(&format!("case {id}: ")) && message.contains(why),
            "{id}: {message}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn oversized_and_undecodable_lines_are_skipped_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.jsonl");
    let long = format!(
        "{{\"id\": \"long\", \"text\": \"{}\"}}\n",
        "a".repeat(900_000)
    );
    let mut bytes = b"{\"id\": \"a\", \"text\": \"No pneumothorax.\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"id\": \"b\", \"text\": \"\xff\xfe effusion\"}\n");
    bytes.extend_from_slice(long.as_bytes());
    bytes.extend_from_slice(b"{\"id\": \"c\", \"text\": \"Right pleural effusion.\"}\n");
    std::fs::write(&cases, bytes).unwrap();
    let out = run(bin().args(["predict", "--rules-only"]).arg(&cases));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(ids(&out), ["a", "c"]);
    let message = stderr(&out);
    assert!(
        message.contains("line 2 is not UTF-8 text; skipped"),
        "{message}"
    );
    assert!(message.contains("line 3 is longer than"), "{message}");

    let out = run_within(
        bin().args(["predict", "--rules-only"]),
        &vec![b'a'; 900_000],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("standard input holds more than 800000 bytes"),
        "{}",
        stderr(&out)
    );
}

/// The peak resident memory of `predict --rules-only` over `lines` short
/// JSONL lines, in kB, read from /proc while it runs.
#[cfg(target_os = "linux")]
fn peak_memory_kb(dir: &Path, lines: usize) -> u64 {
    let cases = dir.join(format!("{lines}.jsonl"));
    let mut text = String::new();
    for i in 0..lines {
        text.push_str(&format!(
            "{{\"id\": \"{i}\", \"text\": \"No pneumothorax. Small left effusion.\"}}\n"
        ));
    }
    std::fs::write(&cases, text).unwrap();
    let mut child = bin()
        .args(["predict", "--rules-only", "-o"])
        .arg(dir.join("out.jsonl"))
        .arg(&cases)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "predict ran too long"
        );
        if let Ok(s) = std::fs::read_to_string(&status) {
            let hwm = s.lines().find_map(|l| l.strip_prefix("VmHWM:"));
            if let Some(kb) = hwm.and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak = kb;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(child.wait().unwrap().success());
    let written = std::fs::read_to_string(dir.join("out.jsonl")).unwrap();
    assert_eq!(written.lines().count(), lines);
    peak
}

#[cfg(target_os = "linux")]
#[test]
fn jsonl_cases_stream_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let few = peak_memory_kb(dir.path(), 1_000);
    let many = peak_memory_kb(dir.path(), 100_000);
    // Held whole, 100,000 cases take about 15 MB more.
    assert!(
        many < few + 4_000,
        "{few} kB for 1,000 lines, {many} kB for 100,000"
    );
}

#[test]
fn invisible_characters_inside_words_do_not_hide_them() {
    let text = "Small right pleural effu\u{AD}sion. No pneu\u{200B}mothorax.";
    let out = run_within(
        bin().args(["predict", "--rules-only"]),
        text.as_bytes(),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entities: Vec<(String, String, String)> = exact_entities(text, &p)
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap().to_string();
            (field("text"), field("concept"), field("assertion"))
        })
        .collect();
    assert!(
        entities.contains(&(
            "pleural effu\u{AD}sion".into(),
            "Pleural Effusion".into(),
            "present".into()
        )),
        "{entities:?}"
    );
    assert!(
        entities.contains(&(
            "pneu\u{200B}mothorax".into(),
            "Pneumothorax".into(),
            "absent".into()
        )),
        "{entities:?}"
    );
}

#[test]
fn pictures_that_are_not_radiographs_are_refused_not_coded() {
    let dir = tempfile::tempdir().unwrap();
    let black = dir.path().join("black.png");
    image::GrayImage::new(512, 512).save(&black).unwrap();
    let dot = dir.path().join("dot.png");
    image::GrayImage::from_pixel(1, 1, image::Luma([128]))
        .save(&dot)
        .unwrap();
    let xray = image::open(shared("nih-cxr/images/00000061_012.png")).unwrap();
    let mut jpeg = std::io::Cursor::new(Vec::new());
    xray.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let jpeg = jpeg.into_inner();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() * 2 / 3]).unwrap();
    let whole = dir.path().join("whole.jpg");
    std::fs::write(&whole, &jpeg).unwrap();
    for (file, why) in [
        (
            &black,
            "almost uniform (98 % of it lies between grey levels 0 and 0 of 255): not a radiograph",
        ),
        (
            &dot,
            "1 × 1 pixels; a radiograph has at least 32 on each side",
        ),
        (&cut, "the JPEG ends before its image data does"),
    ] {
        let out = run(bin()
            .args(["predict", "--image-model"])
            .arg(workspace().join("models/image"))
            .arg("--image")
            .arg(file));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert!(
            stderr(&out).contains(why),
            "{}: {}",
            file.display(),
            stderr(&out)
        );
    }
    let out = run(bin()
        .args(["predict", "--image-model"])
        .arg(workspace().join("models/image"))
        .arg("--image")
        .arg(&whole));
    assert!(out.status.success(), "{}", stderr(&out));
}
