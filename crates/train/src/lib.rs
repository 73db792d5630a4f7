//! Native training and evaluation of IntegraBNER's models. The models
//! themselves (`integrabner-models`) are platform-neutral; this crate adds the
//! file system, the optimizer and the loops.

pub mod adamw;
pub mod checkpoint;
pub mod coding_eval;
pub mod export;
pub mod fusion;
pub mod hybrid;
pub mod image;
pub mod ner;
pub mod nih_eval;
pub mod report;
pub mod resnet_training;
pub mod trainer;
