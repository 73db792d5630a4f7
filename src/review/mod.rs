//! Expert review sessions: an expert judges the model's output case by case
//! in the page. Everything here is platform-neutral (tested natively); the
//! page's review view (`app::review`) shows it and saves it to IndexedDB.

pub mod cases;
pub mod keys;
pub mod session;
pub mod summary;
pub mod vocabulary;
