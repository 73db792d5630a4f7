//! The page binary: mounts the Leptos app.

fn main() {
    #[cfg(target_arch = "wasm32")]
    integrabner_web::app::mount();
}
