//! Cells, models and per-stream state: specs and validation, weight
//! conversion, streaming steps and whole sequences.

#![forbid(unsafe_code)]

pub(crate) mod activation;
pub(crate) mod fit;
pub(crate) mod frameworks;
pub(crate) mod model;
pub(crate) mod spec;
pub(crate) mod weights;
