//! The review session's local store: IndexedDB, in this browser profile only.
//! Two object stores: `session` (the session JSON under one key) and `images`
//! (the chosen image files by name, so a reload can show them again).

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbRequest, IdbTransactionMode};

const DB_NAME: &str = "integrabner-review";
const DB_VERSION: u32 = 1;
pub const SESSION_STORE: &str = "session";
pub const IMAGE_STORE: &str = "images";
/// The key of the session in progress.
pub const CURRENT: &str = "current";
/// The key of the token of the tab that holds the session: only that tab
/// saves it, so two tabs never overwrite each other's judgments.
pub const HOLDER: &str = "holder";

#[derive(Clone)]
pub struct Db(IdbDatabase);

fn describe(e: JsValue) -> String {
    e.dyn_ref::<web_sys::DomException>()
        .map(|d| d.message())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "IndexedDB failed".into())
}

/// Resolves when `request` succeeds, with its result.
async fn done(request: &IdbRequest) -> Result<JsValue, String> {
    let promise = Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    JsFuture::from(promise).await.map_err(|_| {
        request
            .error()
            .ok()
            .flatten()
            .map(|e| e.message())
            .unwrap_or_else(|| "IndexedDB request failed".into())
    })?;
    request.result().map_err(describe)
}

impl Db {
    pub async fn open() -> Result<Self, String> {
        let factory = leptos::prelude::window()
            .indexed_db()
            .map_err(describe)?
            .ok_or("this browser keeps no local database (IndexedDB is off, e.g. in some private modes), so a session cannot be saved")?;
        let request = factory
            .open_with_u32(DB_NAME, DB_VERSION)
            .map_err(describe)?;
        let upgrade = Closure::<dyn FnMut(web_sys::Event)>::new({
            let request = request.clone();
            move |_| {
                if let Ok(db) = request.result().and_then(|r| r.dyn_into::<IdbDatabase>()) {
                    for store in [SESSION_STORE, IMAGE_STORE] {
                        if !db.object_store_names().contains(store) {
                            let _ = db.create_object_store(store);
                        }
                    }
                }
            }
        });
        request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let db = done(&request).await?;
        request.set_onupgradeneeded(None);
        Ok(Self(db.unchecked_into()))
    }

    fn store(
        &self,
        name: &str,
        mode: IdbTransactionMode,
    ) -> Result<web_sys::IdbObjectStore, String> {
        self.0
            .transaction_with_str_and_mode(name, mode)
            .and_then(|t| t.object_store(name))
            .map_err(describe)
    }

    pub async fn put(&self, store: &str, key: &str, value: &JsValue) -> Result<(), String> {
        let request = self
            .store(store, IdbTransactionMode::Readwrite)?
            .put_with_key(value, &JsValue::from_str(key))
            .map_err(describe)?;
        done(&request).await.map(|_| ())
    }

    /// Writes `value` under `key` only if `allow` accepts what is under
    /// `check_key`, deciding inside the same read-write transaction, so that
    /// no other tab can write in between. Returns whether it wrote.
    pub async fn put_if(
        &self,
        store: &str,
        check_key: &str,
        allow: impl FnOnce(Option<JsValue>) -> bool + 'static,
        key: &str,
        value: JsValue,
    ) -> Result<bool, String> {
        let object_store = self.store(store, IdbTransactionMode::Readwrite)?;
        let transaction = object_store.transaction();
        let check = object_store
            .get(&JsValue::from_str(check_key))
            .map_err(describe)?;
        let written = std::rc::Rc::new(std::cell::Cell::new(false));
        let on_checked = Closure::once({
            let (check, written, key) = (check.clone(), written.clone(), key.to_string());
            move |_: web_sys::Event| {
                let current = check.result().ok().filter(|v| !v.is_undefined());
                // Called from the request's success event: the transaction
                // is still active, so the write joins it.
                if allow(current)
                    && object_store
                        .put_with_key(&value, &JsValue::from_str(&key))
                        .is_ok()
                {
                    written.set(true);
                }
            }
        });
        check.set_onsuccess(Some(on_checked.as_ref().unchecked_ref()));
        let finished = Promise::new(&mut |resolve, reject| {
            transaction.set_oncomplete(Some(&resolve));
            transaction.set_onerror(Some(&reject));
            transaction.set_onabort(Some(&reject));
        });
        JsFuture::from(finished).await.map_err(|_| {
            transaction
                .error()
                .map(|e| e.message())
                .unwrap_or_else(|| "IndexedDB transaction failed".into())
        })?;
        Ok(written.get())
    }

    /// The value under `key`, or `None`.
    pub async fn get(&self, store: &str, key: &str) -> Result<Option<JsValue>, String> {
        let request = self
            .store(store, IdbTransactionMode::Readonly)?
            .get(&JsValue::from_str(key))
            .map_err(describe)?;
        let value = done(&request).await?;
        Ok((!value.is_undefined()).then_some(value))
    }

    /// Empties both stores: the session and its images.
    pub async fn clear(&self) -> Result<(), String> {
        for store in [SESSION_STORE, IMAGE_STORE] {
            let request = self
                .store(store, IdbTransactionMode::Readwrite)?
                .clear()
                .map_err(describe)?;
            done(&request).await?;
        }
        Ok(())
    }
}
