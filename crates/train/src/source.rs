//! Reading the corpora from disk: OpenI as a `.tgz`, a directory of XML
//! files or the CSV layout; the split file; NIH ChestX-ray14's labels; the
//! image files a case names.

use crate::files::{read_regular, walk};
use anyhow::{bail, Context, Result};
use integrabner_core::image_input::{read, Radiograph, MAX_IMAGE_BYTES};
use integrabner_core::nih::{read_labels, NihImage};
use integrabner_core::openi::{
    present_views, read_csv, read_projections, read_tgz, Corpus, ImageRef, MAX_XML_BYTES,
};
use integrabner_core::split::{parse_split_file, Split};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Loads an OpenI corpus from `path`, printing a warning for every problem.
/// `projections` is the CSV layout's projections file (frontal / lateral); when
/// omitted, an `indiana_projections.csv` beside `path` is used if there is one.
pub fn load_corpus(path: &Path, projections: Option<&Path>) -> Result<Corpus> {
    let mut corpus = Corpus::default();
    let name = path.to_string_lossy();
    let beside = path.with_file_name("indiana_projections.csv");
    let projections = projections.or_else(|| beside.exists().then_some(beside.as_path()));
    let open_projections = || -> Result<Option<File>> {
        projections
            .map(|p| File::open(p).with_context(|| format!("cannot open {}", p.display())))
            .transpose()
    };
    if path.is_dir() {
        let files: Vec<PathBuf> = walk(path, "xml")?;
        if files.is_empty() {
            bail!("{name}: no .xml files in this directory");
        }
        for f in files {
            match read_regular(&f, MAX_XML_BYTES) {
                Ok(bytes) => corpus.add_xml(&f.to_string_lossy(), &bytes),
                Err(e) => corpus.skip(&f.to_string_lossy(), format!("unreadable: {e:#}")),
            }
        }
    } else if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
        let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
        read_tgz(file, &mut corpus).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    } else if name.ends_with(".csv") {
        let reports = File::open(path).with_context(|| format!("cannot open {name}"))?;
        read_csv(reports, open_projections()?, &mut corpus)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    } else {
        bail!("{name}: expected an OpenI .tgz, a directory of OpenI XML files, or indiana_reports.csv");
    }
    if !name.ends_with(".csv") {
        if let Some(file) = open_projections()? {
            let images = read_projections(file).map_err(|e| anyhow::anyhow!("{e}"))?;
            corpus.attach_projections(&images);
        }
    }
    for p in corpus.problems.iter().filter(|p| p.skipped) {
        eprintln!("warning: {}: {}; skipped", p.file, p.message);
    }
    let notes = corpus.problems.len() - corpus.skipped();
    if notes > 0 {
        eprintln!(
            "note: {notes} report(s) have no FINDINGS section; their impression is used alone"
        );
    }
    if corpus.skipped() > 0 {
        eprintln!("warning: {} report(s) skipped", corpus.skipped());
    }
    if corpus.reports.is_empty() {
        bail!("{name}: no readable reports");
    }
    corpus.sort();
    Ok(corpus)
}

/// The OpenI images a user has, by their OpenI key (`IM-0001-4001`), so that
/// both naming layouts (`CXR1_1_IM-0001-4001.png`, `1_IM-0001-4001.dcm.png`)
/// are found.
#[derive(Default)]
pub struct OpenIImages(HashMap<String, PathBuf>);

impl OpenIImages {
    /// The PNG and JPEG files of `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut files = HashMap::new();
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let is_image = name.as_deref().is_some_and(|n| {
                let n = n.to_ascii_lowercase();
                n.ends_with(".png") || n.ends_with(".jpg") || n.ends_with(".jpeg")
            });
            if let Some(key) = name
                .as_deref()
                .filter(|_| is_image)
                .and_then(ImageRef::image_key)
            {
                files.insert(key.to_string(), path.clone());
            }
        }
        Ok(Self(files))
    }

    /// A report's images that are present, frontal views first.
    pub fn views(&self, images: &[ImageRef]) -> Vec<PathBuf> {
        present_views(images, |key| self.0.get(key).cloned())
    }
}

/// Reads and decodes image files (a case's views): regular files of at
/// most `MAX_IMAGE_BYTES`, checked before they are read.
pub fn read_views(paths: &[PathBuf]) -> Result<Vec<Radiograph>> {
    paths
        .iter()
        .map(|p| {
            let bytes = read_regular(p, MAX_IMAGE_BYTES as u64)?;
            read(&bytes).with_context(|| format!("{}", p.display()))
        })
        .collect()
}

/// The split file's assignments (`id<TAB>split` lines) by report id.
pub fn read_split_file(path: &Path) -> Result<HashMap<String, Split>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read split file {}", path.display()))?;
    Ok(parse_split_file(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .into_iter()
        .collect())
}

/// The images NIH ChestX-ray14's `labels.csv` in `nih` lists, with their
/// labels, patients and splits.
pub fn read_nih_images(nih: &Path) -> Result<Vec<NihImage>> {
    let labels = nih.join("labels.csv");
    let text = std::fs::read_to_string(&labels)
        .with_context(|| format!("cannot read {}", labels.display()))?;
    read_labels(&text).map_err(anyhow::Error::msg)
}
