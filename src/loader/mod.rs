//! Loading trained weights from [safetensors] files: a PyTorch
//! `state_dict` of `nn.LSTM` / `nn.GRU` / `nn.RNN` (or of the cell modules
//! `nn.LSTMCell` / `nn.GRUCell` / `nn.RNNCell`), or Keras 3 weights saved
//! under their paths (`{w.path: w.numpy() for w in model.weights}`).
//!
//! The caller says only the cell kind (and the RNN nonlinearity); layers,
//! directions, input, hidden and projection sizes and whether there are
//! biases are read from the tensors present. F32, F16 and BF16 tensors are
//! accepted (widened exactly to f32), and the model is built in the
//! precision [`SafetensorsOptions::precision`] names (f32 unless told; or the
//! file's stored dtype).
//!
//! Every problem with the file is an [`Error::Format`] whose message names
//! the tensor and says what is wrong; [`Error::Io`] if the file cannot be
//! read (or is not a regular file, or a buffer cannot be allocated);
//! [`Error::InvalidArgument`] for options that no such file can satisfy
//! (peepholes, a projection bias). The file is validated before any tensor
//! is read (a header of at most 100 MB, each name once, offsets inside the
//! file, sizes matching shapes, the data tiled exactly), and the loader
//! never panics on any input (it is fuzzed, see `fuzz/`).
//!
//! Layout: this file holds the public API and the rules both naming schemes
//! share; `safetensors.rs` the container (file reading, header, layout);
//! `tensor.rs` the format-independent [`tensor::Tensor`] and its widening to
//! f32; `pytorch.rs` and `keras.rs` the two naming schemes. ONNX model
//! files (`onnx/`: recurrent nodes, their attributes and constant-folded
//! weights) are loaded by [`load_onnx`] / [`load_onnx_bytes`].
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

mod keras;
mod onnx;
mod pytorch;
mod safetensors;
mod tensor;

use std::path::Path;

use crate::cell::activation::Activations;
use crate::cell::model::Model;
use crate::cell::spec::{
    CellKind, Direction, GruOptions, LstmOptions, MergeMode, ModelSpec, WeightPrecision,
};
use crate::error::{Error, Result};
use crate::isa::Isa;
use tensor::{Dtype, Tensor};

pub use onnx::{MAX_ONNX_BYTES, OnnxNodeInfo, OnnxOptions, load_onnx, load_onnx_bytes, onnx_nodes};
pub(crate) use safetensors::read_whole_file;

/// Which framework saved the weights, and so how they are named and laid
/// out.
///
/// ```
/// assert_ne!(rnncell::WeightFormat::PyTorch, rnncell::WeightFormat::Keras);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightFormat {
    /// A PyTorch `state_dict` of `nn.LSTM`, `nn.GRU` or `nn.RNN`:
    /// `weight_ih_l{k}` [G·H, in], `weight_hh_l{k}` [G·H, H or P],
    /// `bias_ih_l{k}`, `bias_hh_l{k}` [G·H] (both or neither), `weight_hr_l{k}`
    /// [P, H] (LSTM with `proj_size`), each with the suffix `_reverse` for
    /// the backward direction of a bidirectional module.
    ///
    /// Also the cell modules `nn.LSTMCell`, `nn.GRUCell` and `nn.RNNCell`
    /// (one layer, one direction, no projection), whose `state_dict` has the
    /// same tensors without the layer suffix: `weight_ih`, `weight_hh`,
    /// `bias_ih`, `bias_hh` (as silero-vad ships its decoder cell). The
    /// naming is recognised from the names; tensors of both namings under
    /// one prefix are an [`Error::Format`] naming one of each.
    #[default]
    PyTorch,
    /// Keras 3 (or tf.keras) `LSTM`, `GRU`, `SimpleRNN` layers, possibly
    /// wrapped in `Bidirectional`, saved under their weight paths:
    ///
    /// ```text
    /// sequential/lstm/lstm_cell/kernel                       [in, G·H]
    /// sequential/lstm/lstm_cell/recurrent_kernel             [H, G·H]
    /// sequential/lstm/lstm_cell/bias                         [G·H]  (GRU reset_after: [2, G·H])
    /// sequential/lstm_1/lstm_cell/...                        the next layer of the stack
    /// sequential/bidirectional/forward_lstm/lstm_cell/...    forward direction
    /// sequential/bidirectional/backward_lstm/lstm_cell/...   backward direction
    /// ```
    ///
    /// Naming convention: below the prefix, a tensor's path is
    /// `<layer>[/forward_*|/backward_*][/<cell>]/<leaf>` where `<leaf>` is
    /// `kernel`, `recurrent_kernel` or `bias` (a trailing `:0`, as tf.keras
    /// 2 writes, is ignored), `<cell>` is an optional last component ending
    /// in `cell` (`lstm_cell`), and a component starting with `forward_` or
    /// `backward_` marks a direction of a `Bidirectional` layer named
    /// `<layer>`. `<layer>` may contain `/` and may be empty (the prefix
    /// names the layer itself). Layers stack in the order of
    /// [`SafetensorsOptions::keras_layers`] if given, else in the natural
    /// order of their names (`lstm` < `lstm_1` < `lstm_2` < `lstm_10`, the
    /// order in which Keras auto-names them). A GRU's `reset_after` is read
    /// from its bias shape (`[2, 3H]`: `true`, `[3H]`: `false`).
    Keras,
}

/// Everything [`load_safetensors`] needs besides the file: plain data,
/// easy to fill from another language.
///
/// ```
/// use rnncell::*;
/// let opts = SafetensorsOptions::pytorch(CellKind::lstm()).prefix("encoder.rnn.");
/// assert_eq!(opts.format, WeightFormat::PyTorch);
/// assert_eq!(opts.prefix, "encoder.rnn.");
/// let keras = SafetensorsOptions::keras(CellKind::gru()).keras_layers(["gru", "gru_1"]);
/// assert_eq!(keras.keras_layers.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SafetensorsOptions {
    /// The cell and its options. Sizes are read from the file:
    /// `LstmOptions::proj_size` is ignored (inferred from `weight_hr_l*`),
    /// and so is `GruOptions::linear_before_reset` (PyTorch: always `true`;
    /// Keras: from the bias shape, or kept from here if the GRU has no
    /// bias). Options no file of these formats can hold (LSTM peepholes, a
    /// projection bias) are an [`Error::InvalidArgument`]. Options that do
    /// not change the weights (clips, the RNN activation, CIFG coupling)
    /// are kept.
    pub cell: CellKind,
    /// How the tensors are named and laid out.
    pub format: WeightFormat,
    /// Only tensors whose names start with this string are considered, and
    /// every one of them must belong to the model (include the separator:
    /// `"encoder.rnn."`, `"sequential/"`). Empty: the whole file.
    pub prefix: String,
    /// How a bidirectional model combines its directions (PyTorch and
    /// Keras' default: [`MergeMode::Concat`]; Keras `merge_mode="sum"`:
    /// [`MergeMode::Sum`]).
    pub merge: MergeMode,
    /// Keras only: the layer paths (relative to `prefix`, without the
    /// `forward_*`/cell components) of the stack, first layer first. When
    /// given, tensors under `prefix` that belong to other layers (a `Dense`
    /// head, say) are ignored. Empty: every layer under `prefix`, in natural
    /// name order.
    pub keras_layers: Vec<String>,
    /// The instruction set to build for; `None`: [`Isa::detect`].
    pub isa: Option<Isa>,
    /// The precision of the model's weight matrices. `Some(p)` (default
    /// `Some(WeightPrecision::F32)`) builds the model in `p`, whatever the
    /// file stores. `None` keeps the file's stored precision: if every
    /// weight matrix (PyTorch `weight_ih`, `weight_hh`, `weight_hr`; Keras
    /// `kernel`, `recurrent_kernel`) is F16 the model is
    /// [`WeightPrecision::F16`], all BF16 gives [`WeightPrecision::Bf16`],
    /// all F32 gives [`WeightPrecision::F32`]; mixed dtypes are an
    /// [`Error::Format`] naming two tensors and their dtypes. Biases are
    /// not weight matrices: they may have any of the three dtypes and are
    /// always widened to f32.
    ///
    /// Keeping F16 or BF16 is exact: each tensor is widened to f32 and
    /// rounded back to its own format when the model is packed, which gives
    /// back exactly the stored bits, so the model equals one built from the
    /// stored values. The transient f32 copy (4 bytes per weight while the
    /// model is built) is a memory cost only.
    pub precision: Option<WeightPrecision>,
    /// The activation functions (a file of weights does not say them):
    /// `None`, the cell's standard ones; see [`ModelSpec::activations`].
    pub activations: Option<[Activations; 2]>,
}

impl SafetensorsOptions {
    /// Options for a PyTorch `state_dict`, no prefix.
    ///
    /// ```
    /// let o = rnncell::SafetensorsOptions::pytorch(rnncell::CellKind::gru());
    /// assert!(o.prefix.is_empty());
    /// ```
    pub fn pytorch(cell: CellKind) -> SafetensorsOptions {
        SafetensorsOptions {
            cell,
            format: WeightFormat::PyTorch,
            prefix: String::new(),
            merge: MergeMode::Concat,
            keras_layers: Vec::new(),
            isa: None,
            precision: Some(WeightPrecision::F32),
            activations: None,
        }
    }

    /// Options for Keras weights, no prefix.
    ///
    /// ```
    /// let o = rnncell::SafetensorsOptions::keras(rnncell::CellKind::lstm());
    /// assert_eq!(o.format, rnncell::WeightFormat::Keras);
    /// ```
    pub fn keras(cell: CellKind) -> SafetensorsOptions {
        SafetensorsOptions {
            format: WeightFormat::Keras,
            ..SafetensorsOptions::pytorch(cell)
        }
    }

    /// Sets [`SafetensorsOptions::prefix`].
    ///
    /// ```
    /// let o = rnncell::SafetensorsOptions::pytorch(rnncell::CellKind::gru()).prefix("rnn.");
    /// assert_eq!(o.prefix, "rnn.");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> SafetensorsOptions {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`SafetensorsOptions::merge`].
    ///
    /// ```
    /// use rnncell::*;
    /// let o = SafetensorsOptions::keras(CellKind::gru()).merge(MergeMode::Sum);
    /// assert_eq!(o.merge, MergeMode::Sum);
    /// ```
    pub fn merge(mut self, merge: MergeMode) -> SafetensorsOptions {
        self.merge = merge;
        self
    }

    /// Sets [`SafetensorsOptions::keras_layers`].
    ///
    /// ```
    /// let o = rnncell::SafetensorsOptions::keras(rnncell::CellKind::gru())
    ///     .keras_layers(["encoder_gru", "decoder_gru"]);
    /// assert_eq!(o.keras_layers[1], "decoder_gru");
    /// ```
    pub fn keras_layers<S: Into<String>>(
        mut self,
        layers: impl IntoIterator<Item = S>,
    ) -> SafetensorsOptions {
        self.keras_layers = layers.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`SafetensorsOptions::isa`].
    ///
    /// ```
    /// use rnncell::*;
    /// let o = SafetensorsOptions::pytorch(CellKind::lstm()).isa(Isa::Scalar);
    /// assert_eq!(o.isa, Some(Isa::Scalar));
    /// ```
    pub fn isa(mut self, isa: Isa) -> SafetensorsOptions {
        self.isa = Some(isa);
        self
    }

    /// Builds the model in `precision` (sets [`SafetensorsOptions::precision`]
    /// to `Some(precision)`).
    ///
    /// ```
    /// use rnncell::*;
    /// let o = SafetensorsOptions::pytorch(CellKind::lstm()).precision(WeightPrecision::Bf16);
    /// assert_eq!(o.precision, Some(WeightPrecision::Bf16));
    /// ```
    pub fn precision(mut self, precision: WeightPrecision) -> SafetensorsOptions {
        self.precision = Some(precision);
        self
    }

    /// Keeps the precision the file stores its weight matrices in (sets
    /// [`SafetensorsOptions::precision`] to `None`).
    ///
    /// ```
    /// use rnncell::*;
    /// let o = SafetensorsOptions::keras(CellKind::gru()).stored_precision();
    /// assert_eq!(o.precision, None);
    /// ```
    pub fn stored_precision(mut self) -> SafetensorsOptions {
        self.precision = None;
        self
    }

    /// Sets the activation functions of every direction (Keras layers
    /// with `activation=` / `recurrent_activation=`: see
    /// [`crate::Activation::from_keras`]).
    ///
    /// ```
    /// use rnncell::*;
    /// let keras2 = Activations { f: Activation::from_keras2("hard_sigmoid")?, ..Activations::STANDARD };
    /// let o = SafetensorsOptions::keras(CellKind::gru()).activations(keras2);
    /// assert_eq!(o.activations, Some([keras2; 2]));
    /// # Ok::<(), rnncell::Error>(())
    /// ```
    pub fn activations(mut self, a: Activations) -> SafetensorsOptions {
        self.activations = Some([a, a]);
        self
    }

    /// Sets the activation functions of each direction of a bidirectional
    /// model.
    pub fn activations_per_direction(
        mut self,
        forward: Activations,
        backward: Activations,
    ) -> SafetensorsOptions {
        self.activations = Some([forward, backward]);
        self
    }
}

/// Loads a model from a safetensors file (see [`WeightFormat`] for the
/// tensor names and [`SafetensorsOptions`]). Reads the file into memory,
/// then does what [`load_safetensors_bytes`] does.
///
/// Only a regular file is read (symbolic links are followed): a directory,
/// a FIFO, a device (`/dev/zero`) or a socket is an [`Error::Io`] naming the
/// path and its kind, and a FIFO does not block (it is opened
/// non-blocking). The file is read in three bounded steps: the 8-byte
/// header length (more than 100 MB is an [`Error::Format`] before anything
/// else is read), the header, then exactly the data the header declares
/// (the largest end offset); a shorter file is an [`Error::Format`] naming
/// the tensor that does not fit, a longer one an [`Error::Format`] saying
/// how many bytes follow the data. Every buffer sized by the file is
/// allocated fallibly: a failure is an [`Error::Io`] saying how many bytes
/// could not be allocated.
///
/// ```no_run
/// use rnncell::*;
/// // torch: safetensors.torch.save_file(model.state_dict(), "model.safetensors")
/// // where model.encoder.rnn is an nn.LSTM.
/// let opts = SafetensorsOptions::pytorch(CellKind::lstm()).prefix("encoder.rnn.");
/// let model = load_safetensors("model.safetensors", &opts)?;
/// println!("{:?}", model.spec());
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn load_safetensors(path: impl AsRef<Path>, opts: &SafetensorsOptions) -> Result<Model> {
    let path = path.as_ref();
    check_cell_options(&opts.cell)?;
    safetensors::read_file(path)
        .and_then(|bytes| load_safetensors_bytes(&bytes, opts))
        .map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
            e => e,
        })
}

/// Loads a model from the bytes of a safetensors file (see
/// [`load_safetensors`]).
///
/// ```
/// use rnncell::*;
/// // A hand-made file: nn.RNN(input_size=2, hidden_size=1, bias=False).
/// let header = br#"{"weight_ih_l0":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},
///                   "weight_hh_l0":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]}}"#;
/// let mut file = (header.len() as u64).to_le_bytes().to_vec();
/// file.extend_from_slice(header);
/// for v in [0.5f32, -0.25, 0.75] {
///     file.extend_from_slice(&v.to_le_bytes());
/// }
/// let model = load_safetensors_bytes(&file, &SafetensorsOptions::pytorch(CellKind::rnn_tanh()))?;
/// assert_eq!((model.spec().input_size, model.spec().hidden_size), (2, 1));
///
/// file.truncate(file.len() - 1);
/// let err = load_safetensors_bytes(&file, &SafetensorsOptions::pytorch(CellKind::rnn_tanh()));
/// assert!(matches!(err, Err(Error::Format(m)) if m.contains("weight_hh_l0")));
/// # Ok::<(), rnncell::Error>(())
/// ```
pub fn load_safetensors_bytes(bytes: &[u8], opts: &SafetensorsOptions) -> Result<Model> {
    check_cell_options(&opts.cell)?;
    let all = safetensors::tensors(bytes)?;
    // Tensors under the prefix, by their name relative to it (sorted, so that
    // errors are reported deterministically).
    // (`all` is sorted by name, so these are sorted by relative name.)
    let under = || {
        all.iter()
            .filter_map(|t| Some((t.name().strip_prefix(opts.prefix.as_str())?, t)))
    };
    if under().next().is_none() {
        // `all` is sorted by name
        let names: Vec<&str> = all.iter().map(Tensor::name).collect();
        let shown: Vec<&str> = names.iter().take(8).copied().collect();
        let more = if names.len() > 8 { ", …" } else { "" };
        return Err(Error::Format(format!(
            "no tensor under the prefix {:?} (the file has {} tensors: {}{more})",
            opts.prefix,
            names.len(),
            shown.join(", ")
        )));
    }
    let isa = opts.isa.unwrap_or_else(Isa::detect);
    match opts.format {
        WeightFormat::PyTorch => pytorch::load(under(), opts, isa),
        WeightFormat::Keras => keras::load(under(), opts, isa),
    }
}

impl Model {
    /// Same as [`load_safetensors`].
    ///
    /// ```no_run
    /// use rnncell::*;
    /// let m = Model::from_safetensors("gru.safetensors",
    ///                                 &SafetensorsOptions::pytorch(CellKind::gru()))?;
    /// # Ok::<(), rnncell::Error>(())
    /// ```
    pub fn from_safetensors(path: impl AsRef<Path>, opts: &SafetensorsOptions) -> Result<Model> {
        load_safetensors(path, opts)
    }

    /// Same as [`load_safetensors_bytes`].
    ///
    /// ```
    /// use rnncell::*;
    /// let err = Model::from_safetensors_bytes(b"nonsense",
    ///                                         &SafetensorsOptions::pytorch(CellKind::gru()));
    /// assert!(matches!(err, Err(Error::Format(_))));
    /// ```
    pub fn from_safetensors_bytes(bytes: &[u8], opts: &SafetensorsOptions) -> Result<Model> {
        load_safetensors_bytes(bytes, opts)
    }
}

// --------------------------------------------------------------------------
// Rules shared by every format
// --------------------------------------------------------------------------

fn format_err(msg: impl Into<String>) -> Error {
    Error::Format(msg.into())
}

/// A buffer of `bytes` sized by the file could not be allocated.
pub(crate) fn out_of_memory(bytes: usize, what: &str) -> Error {
    Error::Allocation(format!("{bytes} bytes for {what}"))
}

fn check_cell_options(cell: &CellKind) -> Result<()> {
    if let CellKind::Lstm(o) = cell {
        if o.peephole {
            return Err(Error::invalid(
                "peephole LSTMs cannot be loaded from PyTorch or Keras weights (they have none)",
            ));
        }
        if o.proj_bias {
            return Err(Error::invalid(
                "PyTorch and Keras LSTMs have no projection bias; set proj_bias = false",
            ));
        }
    }
    Ok(())
}

/// The cell with the options read from the file.
/// The spec of the sizes read from a file (both naming schemes), validated.
pub(crate) fn inferred_spec(
    cell: CellKind,
    input: usize,
    hidden: usize,
    layers: usize,
    bidirectional: bool,
    opts: &SafetensorsOptions,
) -> Result<ModelSpec> {
    let spec = ModelSpec::new(cell, input, hidden)
        .layers(layers)
        .direction(if bidirectional {
            Direction::Bidirectional
        } else {
            Direction::Forward
        })
        .merge(opts.merge);
    spec.validate()
        .map_err(|e| format_err(format!("the sizes read from the file are not valid: {e}")))?;
    // `None` (the stored precision) is resolved once every weight has been
    // read: see `model_precision`. Sizes that are valid in f32 but not in
    // the precision asked for (a K above MAX_INT8_K for i8) are the
    // caller's choice, not a malformed file: `InvalidArgument`.
    let mut spec = spec.precision(opts.precision.unwrap_or_default());
    spec.activations = opts.activations;
    spec.validate()?;
    Ok(spec)
}

/// The precision to build in: the one asked for, or (`None`) the dtype
/// every weight matrix of the model is stored in (`weights`: W, R and
/// projection tensors, in file order; biases excluded). Mixed dtypes are an
/// [`Error::Format`] naming the first tensor and the first that differs.
pub(crate) fn model_precision<'t, 'a: 't>(
    opts: &SafetensorsOptions,
    weights: impl IntoIterator<Item = &'t Tensor<'a>>,
) -> Result<WeightPrecision> {
    if let Some(p) = opts.precision {
        return Ok(p);
    }
    let mut weights = weights.into_iter();
    let Some(first) = weights.next() else {
        // Unreachable: every model has a W and an R.
        return Ok(WeightPrecision::F32);
    };
    if let Some(other) = weights.find(|t| t.dtype != first.dtype) {
        return Err(format_err(format!(
            "tensor {:?} is {} but {:?} is {}: keeping the stored precision needs every weight \
             matrix in one dtype (or ask for a precision: f32, f16, bf16, i8w, i8)",
            first.name(),
            first.dtype.name(),
            other.name(),
            other.dtype.name()
        )));
    }
    match first.dtype {
        Dtype::F16 => Ok(WeightPrecision::F16),
        Dtype::BF16 => Ok(WeightPrecision::Bf16),
        Dtype::F32 => Ok(WeightPrecision::F32),
        // Unreachable: every weight has been read (check_dtype) before.
        _ => first.check_dtype().map(|()| WeightPrecision::F32),
    }
}

pub(crate) fn cell_with(cell: CellKind, proj_size: usize, lbr: Option<bool>) -> CellKind {
    match cell {
        CellKind::Lstm(o) => CellKind::Lstm(LstmOptions { proj_size, ..o }),
        CellKind::Gru(o) => CellKind::Gru(GruOptions {
            linear_before_reset: lbr.unwrap_or(o.linear_before_reset),
            ..o
        }),
        c => c,
    }
}

/// The gates of the cell kind, for messages.
pub(crate) fn gate_names(cell: &CellKind) -> &'static str {
    match cell {
        CellKind::Lstm(_) => "the 4 gates of an LSTM",
        CellKind::Gru(_) => "the 3 gates of a GRU",
        CellKind::Rnn(_) => "the 1 gate of an RNN",
    }
}
