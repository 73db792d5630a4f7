//! The IntegraBNER web app: a Leptos page (`app`) and a Web Worker (`worker`)
//! that loads the bundle and runs the pipeline, so the page never freezes.
//!
//! The page and the worker talk only through [`protocol`] messages. Everything
//! outside `app` and `worker` is platform-neutral and tested natively.

pub mod export;
pub mod highlight;
pub mod protocol;
pub mod review;
pub mod samples;
pub mod table;

#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod worker;
