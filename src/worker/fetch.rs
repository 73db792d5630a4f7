//! `fetch` and the Cache API from inside the worker, as plain async functions.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Cache, ReadableStreamDefaultReader, RequestCache, RequestInit, Response, WorkerGlobalScope,
};

/// Name of the Cache API store for bundle files.
const CACHE_NAME: &str = "integrabner-models";

fn scope() -> WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn describe(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Fetches `url` past the HTTP cache, reporting each chunk's size as it arrives.
pub async fn fetch_bytes(url: &str, mut on_chunk: impl FnMut(u64)) -> Result<Vec<u8>, String> {
    let init = RequestInit::new();
    init.set_cache(RequestCache::NoStore);
    let response: Response = JsFuture::from(scope().fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| format!("cannot reach {url}: {}", describe(e)))?
        .unchecked_into();
    if !response.ok() {
        return Err(format!("{url}: the server answered {}", response.status()));
    }
    let body = response
        .body()
        .ok_or_else(|| format!("{url}: the response has no body"))?;
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| format!("{url}: download interrupted: {}", describe(e)))?;
        if Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true)
        {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(describe)?
            .unchecked_into();
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
        on_chunk(u64::from(value.length()));
    }
    Ok(bytes)
}

/// The bundle cache; `None` where the browser offers none (some private modes).
pub async fn open_cache() -> Option<Cache> {
    let caches = scope().caches().ok()?;
    JsFuture::from(caches.open(CACHE_NAME))
        .await
        .ok()
        .map(|c| c.unchecked_into())
}

pub async fn cached_bytes(cache: &Cache, key: &str) -> Option<Vec<u8>> {
    let found = JsFuture::from(cache.match_with_str(key)).await.ok()?;
    let response: Response = found.dyn_into().ok()?;
    let buffer = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
    Some(Uint8Array::new(&buffer).to_vec())
}

pub async fn store(cache: &Cache, key: &str, bytes: &[u8]) -> Result<(), String> {
    let body = Uint8Array::from(bytes);
    let response = Response::new_with_opt_buffer_source(Some(&body)).map_err(describe)?;
    JsFuture::from(cache.put_with_str(key, &response))
        .await
        .map(|_| ())
        .map_err(describe)
}

/// Deletes every cached entry whose URL does not end with one of `keep`.
pub async fn prune(cache: &Cache, keep: &[String]) {
    let Ok(keys) = JsFuture::from(cache.keys()).await else {
        return;
    };
    for request in js_sys::Array::from(&keys).iter() {
        let Ok(request) = request.dyn_into::<web_sys::Request>() else {
            continue;
        };
        let url = request.url();
        if !keep.iter().any(|k| url.ends_with(k.as_str())) {
            let _ = JsFuture::from(cache.delete_with_str(&url)).await;
        }
    }
}
