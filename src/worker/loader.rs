//! Loading the bundle: manifest from the network when reachable (that is how
//! a new version is noticed), each file from the cache when its hash is
//! already there, otherwise downloaded with progress, verified, and cached.

use super::fetch::{cached_bytes, fetch_bytes, open_cache, prune, store};
use super::post;
use crate::protocol::{BundleOrigin, FromWorker, BUNDLE_DIR};
use integrabner_core::bundle::{BundleManifest, MANIFEST_FILE};
use integrabner_models::engine::Engine;

pub struct LoadedBundle {
    pub manifest: BundleManifest,
    pub engine: Engine,
    pub origin: BundleOrigin,
}

pub async fn load_bundle() -> Result<LoadedBundle, String> {
    let cache = open_cache().await;
    let manifest_url = format!("{BUNDLE_DIR}/{MANIFEST_FILE}");
    let manifest_bytes = match fetch_bytes(&manifest_url, |_| {}).await {
        Ok(bytes) => bytes,
        Err(network) => {
            let cached = match &cache {
                Some(cache) => cached_bytes(cache, &manifest_url).await,
                None => None,
            };
            cached.ok_or_else(|| {
                format!(
                    "the models are not available offline yet ({network}); \
                     open the page once while connected to download them"
                )
            })?
        }
    };
    let manifest = std::str::from_utf8(&manifest_bytes)
        .map_err(|_| "the model manifest is not text".to_string())
        .and_then(|text| BundleManifest::from_json(text).map_err(|e| e.to_string()))?;

    let total: u64 = manifest.loaded_files().map(|f| f.bytes).sum();
    let mut loaded = 0u64;
    let mut all_cached = true;
    let mut contents = Vec::new();
    let mut keep = vec![manifest_url.clone()];
    for file in manifest.loaded_files() {
        let url = format!("{BUNDLE_DIR}/{}", file.path);
        // The hash in the key makes a new version of a file a new entry.
        let key = format!("{url}?sha256={}", file.sha256);
        let cached = match &cache {
            Some(cache) => cached_bytes(cache, &key)
                .await
                .filter(|bytes| file.verify(bytes).is_ok()),
            None => None,
        };
        let bytes = match cached {
            Some(bytes) => {
                loaded += file.bytes;
                post(&progress(&file.path, loaded, total));
                bytes
            }
            None => {
                all_cached = false;
                let bytes = fetch_bytes(&url, |n| {
                    loaded += n;
                    post(&progress(&file.path, loaded, total));
                })
                .await?;
                file.verify(&bytes)
                    .map_err(|e| format!("a model file failed its integrity check: {e}"))?;
                if let Some(cache) = &cache {
                    // A full disk only costs the next visit a download.
                    let _ = store(cache, &key, &bytes).await;
                }
                bytes
            }
        };
        keep.push(key);
        contents.push((file, bytes));
    }
    let pairs: Vec<_> = contents.iter().map(|(f, b)| (*f, b.as_slice())).collect();
    let engine = Engine::from_bundle(&pairs).map_err(|e| e.to_string())?;
    if let Some(cache) = &cache {
        // Only a complete, verified bundle becomes the offline copy.
        let _ = store(cache, &manifest_url, &manifest_bytes).await;
        prune(cache, &keep).await;
    }
    Ok(LoadedBundle {
        manifest,
        engine,
        origin: if all_cached {
            BundleOrigin::Cache
        } else {
            BundleOrigin::Network
        },
    })
}

fn progress(file: &str, loaded: u64, total: u64) -> FromWorker {
    FromWorker::Progress {
        file: file.to_string(),
        loaded,
        total,
    }
}
