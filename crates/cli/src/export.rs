//! `integrabner export`: write (or check) the manifest of the shipped bundle.

use anyhow::{bail, Context, Result};
use integrabner_core::bundle::{MANIFEST_FILE, RULE_FILES};
use integrabner_train::export::manifest_for;
use std::path::Path;

const PROVENANCE: &str = "Rule set of IntegraBNER: concept vocabulary (OpenI MeSH headings; \
RadLex ids, RSNA licence), radiology assertion cues, and medspaCy ConText rules (MIT, \
rules/medspacy_LICENSE). Manifest written by `integrabner export`.";

/// Writes `manifest.json`, or with `check` fails when the committed one is stale.
pub fn run(bundle_dir: &Path, check: bool) -> Result<()> {
    let rendered =
        manifest_for(bundle_dir, &RULE_FILES, PROVENANCE, Default::default())?.to_json_pretty();
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
    Ok(())
}
