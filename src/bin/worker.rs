//! The inference worker binary (built by Trunk as a Web Worker).

fn main() {
    #[cfg(target_arch = "wasm32")]
    integrabner_web::worker::run();
}
