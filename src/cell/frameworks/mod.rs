//! What each framework's weights look like, one module per framework:
//! its tensor names (with layer and direction suffixes), how its tensors
//! are grouped (per layer and direction, or per ONNX node with every
//! direction), the counts its size hints read, and its `Model::from_*`
//! constructor, which turns a spec plus that framework's tensors into
//! canonical [`LayerWeights`] through [`LayerWeights::from_layout`] (the
//! gate orders and orientations of [`Layout`]).
//!
//! The containers (`loader/`: safetensors files, ONNX files) only find and
//! read named tensors and attributes, then call in here.
//!
//! [`LayerWeights`]: crate::LayerWeights
//! [`LayerWeights::from_layout`]: crate::LayerWeights::from_layout
//! [`Layout`]: crate::Layout

pub(crate) mod keras;
pub(crate) mod onnx;
pub(crate) mod pytorch;

pub use keras::KerasTensors;
pub use onnx::OnnxTensors;
