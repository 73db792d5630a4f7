//! Native training and evaluation of IntegraBNER's models. The models
//! themselves (`integrabner-models`) are platform-neutral; this crate adds the
//! file system, the optimizer, the loops, and each model's whole training
//! run as one function that the CLI calls.

pub mod adamw;
pub mod bundle_dir;
pub mod checkpoint;
pub mod coding_eval;
pub mod export;
pub mod files;
pub mod fusion;
pub mod hybrid;
pub mod image;
pub mod negbio;
pub mod ner;
pub mod nih_eval;
pub mod progress;
pub mod qualifier_eval;
pub mod qualifier_fit;
pub mod report;
pub mod resnet_training;
pub mod source;
pub mod trainer;
