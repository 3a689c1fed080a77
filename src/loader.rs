//! Loading trained weights from [safetensors] files: a PyTorch
//! `state_dict` of `nn.LSTM` / `nn.GRU` / `nn.RNN`, or Keras 3 weights saved
//! under their paths (`{w.path: w.numpy() for w in model.weights}`).
//!
//! The caller says only the cell kind (and the RNN nonlinearity); layers,
//! directions, input, hidden and projection sizes and whether there are
//! biases are read from the tensors present. F32, F16 and BF16 tensors are
//! accepted (widened exactly to f32).
//!
//! Every problem with the file is an [`Error::Format`] whose message names
//! the tensor and says what is wrong; [`Error::Io`] if the file cannot be
//! read; [`Error::InvalidArgument`] for options that no such file can
//! satisfy (peepholes, a projection bias). The file is validated before any
//! tensor is read (offsets inside the file, sizes matching shapes), and the
//! loader never panics on any input (it is fuzzed, see `fuzz/`).
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::cell::model::{KerasTensors, Model};
use crate::cell::spec::Direction;
use crate::cell::spec::{CellKind, GruOptions, LstmOptions, MergeMode, ModelSpec};
use crate::error::{Error, Result};
use crate::isa::Isa;

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
}

/// Loads a model from a safetensors file (see [`WeightFormat`] for the
/// tensor names and [`SafetensorsOptions`]). Reads the whole file into
/// memory, then calls [`load_safetensors_bytes`].
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
    let bytes =
        std::fs::read(path).map_err(|e| Error::Io(format!("reading {}: {e}", path.display())))?;
    load_safetensors_bytes(&bytes, opts).map_err(|e| match e {
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
    precheck(bytes)?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::Format(format!("not a valid safetensors file: {e}")))?;
    // Tensors under the prefix, by their name relative to it (sorted, so that
    // errors are reported deterministically).
    let mut under: BTreeMap<&str, (&str, TensorView<'_>)> = BTreeMap::new();
    for (name, view) in st.iter() {
        if let Some(rel) = name.strip_prefix(opts.prefix.as_str()) {
            under.insert(rel, (name, view));
        }
    }
    if under.is_empty() {
        let mut names = st.names();
        names.sort_unstable();
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
        WeightFormat::PyTorch => load_pytorch(under, opts, isa),
        WeightFormat::Keras => load_keras(under, opts, isa),
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
// File validation
// --------------------------------------------------------------------------

fn format_err(msg: impl Into<String>) -> Error {
    Error::Format(msg.into())
}

fn dtype_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" | "C64" => 8,
        _ => return None,
    })
}

/// Checks what the safetensors crate would reject, but names the tensor:
/// the header fits in the file, and each tensor's byte range lies inside the
/// data and matches its shape and dtype. Runs before
/// `SafeTensors::deserialize`, which then re-validates everything
/// (contiguity, sizes) with its own, less specific messages.
fn precheck(bytes: &[u8]) -> Result<()> {
    let Some(len8) = bytes.get(..8) else {
        return Err(format_err(format!(
            "file too short ({} bytes): a safetensors file starts with an 8-byte header length",
            bytes.len()
        )));
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(len8);
    let n = u64::from_le_bytes(n);
    let rest = (bytes.len() - 8) as u64;
    if n > rest {
        return Err(format_err(format!(
            "the header length field says {n} bytes, but only {rest} bytes follow it \
             (truncated file, or not a safetensors file)"
        )));
    }
    let header = &bytes[8..8 + n as usize];
    let data_len = rest - n;
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| format_err(format!("the header is not a JSON object: {e}")))?;
    for (name, info) in &json {
        if name == "__metadata__" {
            continue;
        }
        let offsets = info.get("data_offsets").and_then(|v| v.as_array());
        let (Some(start), Some(end)) = (
            offsets.and_then(|o| o.first()).and_then(|v| v.as_u64()),
            offsets.and_then(|o| o.get(1)).and_then(|v| v.as_u64()),
        ) else {
            return Err(format_err(format!(
                "tensor {name:?}: missing or malformed data_offsets in the header"
            )));
        };
        if end < start || end > data_len {
            return Err(format_err(format!(
                "tensor {name:?}: the header puts its data at bytes {start}..{end}, but the file \
                 holds {data_len} data bytes (truncated file, or a header that lies about sizes)"
            )));
        }
        let dtype = info.get("dtype").and_then(|v| v.as_str()).unwrap_or("");
        let shape: Option<Vec<u64>> = info
            .get("shape")
            .and_then(|v| v.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect());
        if let (Some(size), Some(shape)) = (dtype_bytes(dtype), shape) {
            let need = shape
                .iter()
                .try_fold(size, |acc, &d| acc.checked_mul(d))
                .filter(|&b| b <= data_len);
            if need != Some(end - start) {
                return Err(format_err(format!(
                    "tensor {name:?}: {dtype} of shape {shape:?} needs {} bytes, but the header \
                     gives it {} (bytes {start}..{end})",
                    need.map_or_else(|| "more than the file's".to_string(), |b| b.to_string()),
                    end - start
                )));
            }
        }
    }
    Ok(())
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

/// Converts IEEE 754 binary16 bits to f32 (exact: every f16 is an f32).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let neg = h & 0x8000 != 0;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let sign = if neg { 0x8000_0000u32 } else { 0 };
    match exp {
        // zero and subnormals: man · 2^-24, exact in f32
        0 => {
            let v = man as f32 * (1.0 / 16_777_216.0);
            if neg { -v } else { v }
        }
        // infinities and NaNs (payload kept)
        31 => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        // normal: rebias the exponent from 15 to 127
        e => f32::from_bits(sign | ((e + 112) << 23) | (man << 13)),
    }
}

/// Converts bfloat16 bits to f32 (the upper half of an f32).
pub(crate) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// A tensor read from the file and widened to f32.
struct Tensor<'a> {
    name: &'a str,
    view: TensorView<'a>,
}

impl Tensor<'_> {
    fn shape(&self) -> &[usize] {
        self.view.shape()
    }

    /// F32, F16 or BF16, else an error naming the tensor and its dtype.
    fn check_dtype(&self) -> Result<()> {
        match self.view.dtype() {
            Dtype::F32 | Dtype::F16 | Dtype::BF16 => Ok(()),
            other => Err(format_err(format!(
                "tensor {:?} has dtype {other}; only F32, F16 and BF16 weights are supported",
                self.name
            ))),
        }
    }

    /// Checks the dtype and the shape exactly, then widens to f32.
    fn read(&self, expected: &[usize], why: &dyn Fn() -> String) -> Result<Vec<f32>> {
        self.check_dtype()?;
        if self.shape() != expected {
            return Err(format_err(format!(
                "tensor {:?} has shape {:?}, expected {:?} ({})",
                self.name,
                self.shape(),
                expected,
                why()
            )));
        }
        let data = self.view.data();
        let out: Vec<f32> = match self.view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            // checked above
            _ => Vec::new(),
        };
        let n: usize = expected.iter().product();
        if out.len() != n {
            // Unreachable after validation; kept so that a bug cannot become a panic later.
            return Err(format_err(format!(
                "tensor {:?}: {} bytes of data for {} elements",
                self.name,
                data.len(),
                n
            )));
        }
        Ok(out)
    }
}

fn has_empty_dim(t: &Tensor<'_>) -> Result<()> {
    if t.shape().contains(&0) {
        return Err(format_err(format!(
            "tensor {:?} has shape {:?}: a weight cannot have an empty dimension",
            t.name,
            t.shape()
        )));
    }
    Ok(())
}

fn dims2(t: &Tensor<'_>) -> Result<(usize, usize)> {
    t.check_dtype()?;
    has_empty_dim(t)?;
    match *t.shape() {
        [a, b] => Ok((a, b)),
        ref s => Err(format_err(format!(
            "tensor {:?} has shape {s:?}, expected a matrix (2 dimensions)",
            t.name
        ))),
    }
}

/// The cell with the options read from the file.
fn cell_with(cell: CellKind, proj_size: usize, lbr: Option<bool>) -> CellKind {
    match cell {
        CellKind::Lstm(o) => CellKind::Lstm(LstmOptions { proj_size, ..o }),
        CellKind::Gru(o) => CellKind::Gru(GruOptions {
            linear_before_reset: lbr.unwrap_or(o.linear_before_reset),
            ..o
        }),
        c => c,
    }
}

fn gate_names(cell: &CellKind) -> &'static str {
    match cell {
        CellKind::Lstm(_) => "the 4 gates of an LSTM",
        CellKind::Gru(_) => "the 3 gates of a GRU",
        CellKind::Rnn(_) => "the 1 gate of an RNN",
    }
}

// --------------------------------------------------------------------------
// PyTorch
// --------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PtKind {
    WeightIh,
    WeightHh,
    BiasIh,
    BiasHh,
    WeightHr,
}

impl PtKind {
    fn base(self) -> &'static str {
        match self {
            PtKind::WeightIh => "weight_ih",
            PtKind::WeightHh => "weight_hh",
            PtKind::BiasIh => "bias_ih",
            PtKind::BiasHh => "bias_hh",
            PtKind::WeightHr => "weight_hr",
        }
    }
}

/// `weight_ih_l3_reverse` → (WeightIh, 3, true). Only canonical layer
/// numbers (no leading zeros, at most 4096).
fn parse_pytorch_name(rel: &str) -> Option<(PtKind, usize, bool)> {
    let (rest, rev) = match rel.strip_suffix("_reverse") {
        Some(r) => (r, true),
        None => (rel, false),
    };
    let (base, num) = rest.rsplit_once("_l")?;
    let kind = [
        PtKind::WeightIh,
        PtKind::WeightHh,
        PtKind::BiasIh,
        PtKind::BiasHh,
        PtKind::WeightHr,
    ]
    .into_iter()
    .find(|k| k.base() == base)?;
    let canonical = !num.is_empty()
        && num.len() <= 4
        && num.bytes().all(|b| b.is_ascii_digit())
        && (num == "0" || !num.starts_with('0'));
    if !canonical {
        return None;
    }
    let layer: usize = num.parse().ok()?;
    (layer < 4096).then_some((kind, layer, rev))
}

fn load_pytorch(
    under: BTreeMap<&str, (&str, TensorView<'_>)>,
    opts: &SafetensorsOptions,
    isa: Isa,
) -> Result<Model> {
    let mut found: BTreeMap<(usize, usize, PtKind), Tensor<'_>> = BTreeMap::new();
    for (rel, (name, view)) in under {
        let Some((kind, layer, rev)) = parse_pytorch_name(rel) else {
            return Err(format_err(format!(
                "unexpected tensor {name:?} under the prefix {:?}: not a weight of \
                 nn.LSTM/GRU/RNN (weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k>, \
                 weight_hr_l<k>, with an optional _reverse suffix)",
                opts.prefix
            )));
        };
        found.insert((layer, usize::from(rev), kind), Tensor { name, view });
    }
    let p = &opts.prefix;
    let full = |kind: PtKind, l: usize, d: usize| {
        let sfx = if d == 1 { "_reverse" } else { "" };
        format!("{p}{}_l{l}{sfx}", kind.base())
    };
    let num_layers = found.keys().map(|k| k.0).max().unwrap_or(0) + 1;
    let dirs = if found.keys().any(|k| k.1 == 1) { 2 } else { 1 };
    let missing = |kind: PtKind, l: usize, d: usize, why: &str| {
        format_err(format!("missing tensor {:?} ({why})", full(kind, l, d)))
    };
    let g = opts.cell.gates();
    let cellname = opts.cell.name();

    // Sizes from layer 0, forward direction.
    let wih = found.get(&(0, 0, PtKind::WeightIh)).ok_or_else(|| {
        missing(
            PtKind::WeightIh,
            0,
            0,
            "every nn.LSTM/GRU/RNN state_dict has it",
        )
    })?;
    let whh = found
        .get(&(0, 0, PtKind::WeightHh))
        .ok_or_else(|| missing(PtKind::WeightHh, 0, 0, "every state_dict has it"))?;
    let (gh, input) = dims2(wih)?;
    let (gh2, hr) = dims2(whh)?;
    if gh % g != 0 {
        return Err(format_err(format!(
            "tensor {:?} has {gh} rows, not a multiple of {g} ({}): is the cell kind \
             ({cellname}) right?",
            wih.name,
            gate_names(&opts.cell)
        )));
    }
    if gh2 != gh {
        return Err(format_err(format!(
            "tensor {:?} has {gh2} rows but {:?} has {gh}",
            whh.name, wih.name
        )));
    }
    let hidden = gh / g;
    let proj = match found.get(&(0, 0, PtKind::WeightHr)) {
        Some(t) => {
            if !matches!(opts.cell, CellKind::Lstm(_)) {
                return Err(format_err(format!(
                    "unexpected tensor {:?}: only an LSTM with proj_size has weight_hr \
                     (the cell kind given is {cellname})",
                    t.name
                )));
            }
            let (pp, ph) = dims2(t)?;
            if ph != hidden {
                return Err(format_err(format!(
                    "tensor {:?} has shape {:?}, expected [proj_size, {hidden}] (hidden size \
                     {hidden} from {:?})",
                    t.name,
                    t.shape(),
                    wih.name
                )));
            }
            pp
        }
        None => 0,
    };
    let state = if proj > 0 { proj } else { hidden };
    if hr != state {
        let why = if proj > 0 {
            format!("proj_size {proj} from weight_hr_l0")
        } else {
            format!(
                "hidden size {hidden} from weight_ih_l0, and no weight_hr_l0; is the cell kind \
                 ({cellname}) right?"
            )
        };
        return Err(format_err(format!(
            "tensor {:?} has shape [{gh2}, {hr}], expected [{gh}, {state}] ({why})",
            whh.name
        )));
    }
    let has_bias =
        found.contains_key(&(0, 0, PtKind::BiasIh)) || found.contains_key(&(0, 0, PtKind::BiasHh));

    let spec = ModelSpec::new(cell_with(opts.cell, proj, Some(true)), input, hidden)
        .layers(num_layers)
        .direction(if dirs == 2 {
            Direction::Bidirectional
        } else {
            Direction::Forward
        })
        .merge(opts.merge);
    spec.validate()
        .map_err(|e| format_err(format!("the sizes read from the file are not valid: {e}")))?;

    let mut weights: HashMap<String, Vec<f32>> = HashMap::new();
    for l in 0..num_layers {
        let in_l = spec.layer_input_size(l);
        for d in 0..dirs {
            let mut take = |kind: PtKind, shape: &[usize], why: &dyn Fn() -> String| {
                let t = found.remove(&(l, d, kind)).ok_or_else(|| {
                    let have = if dirs == 2 {
                        format!("{num_layers} bidirectional layers")
                    } else {
                        format!("{num_layers} layers")
                    };
                    missing(kind, l, d, &format!("the file has tensors of {have}"))
                })?;
                let v = t.read(shape, why)?;
                weights.insert(full(kind, l, d)[p.len()..].to_string(), v);
                Ok::<(), Error>(())
            };
            take(PtKind::WeightIh, &[gh, in_l], &|| {
                if l == 0 {
                    format!("{g} gates × hidden size {hidden}, input size {input}")
                } else {
                    format!(
                        "{g} gates × hidden size {hidden}; layer {l} input = {} of layer {}",
                        if dirs == 2 && opts.merge == MergeMode::Concat {
                            format!("2 directions × {state}")
                        } else {
                            format!("output size {state}")
                        },
                        l - 1
                    )
                }
            })?;
            take(PtKind::WeightHh, &[gh, state], &|| {
                format!("{g} gates × hidden size {hidden}, recurrent input {state}")
            })?;
            if has_bias {
                for kind in [PtKind::BiasIh, PtKind::BiasHh] {
                    take(kind, &[gh], &|| format!("{g} gates × hidden size {hidden}"))?;
                }
            }
            if proj > 0 {
                take(PtKind::WeightHr, &[proj, hidden], &|| {
                    format!("proj_size {proj} × hidden size {hidden}")
                })?;
            }
        }
    }
    if let Some(t) = found.values().next() {
        let why = if t.name.contains("bias") {
            "layer 0 has no biases".to_string()
        } else if t.name.contains("weight_hr") {
            "layer 0 has no projection".to_string()
        } else {
            "it does not fit the model read from the other tensors".to_string()
        };
        return Err(format_err(format!(
            "unexpected tensor {:?} ({why})",
            t.name
        )));
    }
    Model::from_pytorch_with_isa(spec, |n| weights.get(n).map(Vec::as_slice), isa)
}

// --------------------------------------------------------------------------
// Keras
// --------------------------------------------------------------------------

#[derive(Default)]
struct KerasDir<'a> {
    kernel: Option<Tensor<'a>>,
    recurrent: Option<Tensor<'a>>,
    bias: Option<Tensor<'a>>,
}

/// Splits a Keras path (relative to the prefix) into (layer, direction,
/// leaf); direction 0 is also a unidirectional layer, `bidi` says whether
/// a `forward_`/`backward_` component was present.
fn parse_keras_name(rel: &str) -> (String, Option<usize>, &str) {
    let rel = rel.strip_suffix(":0").unwrap_or(rel);
    let (group, leaf) = rel.rsplit_once('/').unwrap_or(("", rel));
    let mut parts: Vec<&str> = if group.is_empty() {
        Vec::new()
    } else {
        group.split('/').collect()
    };
    if parts.last().is_some_and(|c| c.ends_with("cell")) {
        parts.pop();
    }
    let dir = match parts.last() {
        Some(c) if c.starts_with("forward_") => Some(0),
        Some(c) if c.starts_with("backward_") => Some(1),
        _ => None,
    };
    if dir.is_some() {
        parts.pop();
    }
    (parts.join("/"), dir, leaf)
}

/// Natural order: digit runs compare as numbers (`lstm_2` < `lstm_10`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let ta = da
                    .iter()
                    .position(|&c| c != b'0')
                    .map_or(&da[na..], |i| &da[i..]);
                let tb = db
                    .iter()
                    .position(|&c| c != b'0')
                    .map_or(&db[nb..], |i| &db[i..]);
                let o = ta.len().cmp(&tb.len()).then(ta.cmp(tb)).then(na.cmp(&nb));
                if o != Ordering::Equal {
                    return o;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn load_keras(
    under: BTreeMap<&str, (&str, TensorView<'_>)>,
    opts: &SafetensorsOptions,
    isa: Isa,
) -> Result<Model> {
    let p = &opts.prefix;
    // layer path -> (bidirectional?, [forward, backward])
    let mut layers: BTreeMap<String, (bool, [KerasDir<'_>; 2])> = BTreeMap::new();
    for (rel, (name, view)) in under {
        let (layer, dir, leaf) = parse_keras_name(rel);
        if !opts.keras_layers.is_empty() && !opts.keras_layers.contains(&layer) {
            continue;
        }
        let entry = layers.entry(layer.clone()).or_default();
        entry.0 |= dir.is_some();
        let d = &mut entry.1[dir.unwrap_or(0)];
        let slot = match leaf {
            "kernel" => &mut d.kernel,
            "recurrent_kernel" => &mut d.recurrent,
            "bias" => &mut d.bias,
            _ => {
                return Err(format_err(format!(
                    "unexpected tensor {name:?} under the prefix {p:?}: not a weight of a Keras \
                     LSTM/GRU/SimpleRNN (kernel, recurrent_kernel, bias)"
                )));
            }
        };
        if let Some(prev) = slot {
            return Err(format_err(format!(
                "tensors {:?} and {name:?} are the same weight of layer {layer:?}",
                prev.name
            )));
        }
        *slot = Some(Tensor { name, view });
    }
    let order: Vec<String> = if opts.keras_layers.is_empty() {
        let mut v: Vec<String> = layers.keys().cloned().collect();
        v.sort_by(|a, b| natural_cmp(a, b));
        v
    } else {
        let mut seen = std::collections::HashSet::new();
        for l in &opts.keras_layers {
            if !seen.insert(l) {
                return Err(Error::invalid(format!("keras_layers lists {l:?} twice")));
            }
            if !layers.contains_key(l) {
                let mut have: Vec<&str> = layers.keys().map(String::as_str).collect();
                have.truncate(8);
                return Err(format_err(format!(
                    "layer {l:?} (from keras_layers) has no tensors under the prefix {p:?} \
                     (layers found: {have:?})"
                )));
            }
        }
        opts.keras_layers.clone()
    };
    let Some(first) = order.first() else {
        return Err(format_err(format!("no Keras layer under the prefix {p:?}")));
    };
    let bidi = layers[first].0;
    let dirs = if bidi { 2 } else { 1 };
    let path = |layer: &str, d: Option<usize>, leaf: &str| {
        let dir = match d {
            Some(0) => " (forward direction)",
            Some(_) => " (backward direction)",
            None => "",
        };
        format!("{leaf} of the Keras layer {:?}{dir}", format!("{p}{layer}"))
    };
    let g = opts.cell.gates();
    let cellname = opts.cell.name();

    // Sizes from the first layer, forward direction.
    let (input, hidden, gh) = {
        let f = &layers[first].1[0];
        let dsel = bidi.then_some(0);
        let k = f.kernel.as_ref().ok_or_else(|| {
            format_err(format!("missing tensor: {}", path(first, dsel, "kernel")))
        })?;
        let r = f.recurrent.as_ref().ok_or_else(|| {
            format_err(format!(
                "missing tensor: {}",
                path(first, dsel, "recurrent_kernel")
            ))
        })?;
        let (input, gh) = dims2(k)?;
        let (hidden, gh2) = dims2(r)?;
        if gh2 != hidden.saturating_mul(g) {
            return Err(format_err(format!(
                "tensor {:?} has shape [{hidden}, {gh2}], expected [{hidden}, {}] ({}, hidden \
                 size {hidden}): is the cell kind ({cellname}) right?",
                r.name,
                hidden.saturating_mul(g),
                gate_names(&opts.cell)
            )));
        }
        (input, hidden, gh)
    };
    // GRU reset_after from the first bias that exists.
    let first_bias = order
        .iter()
        .flat_map(|l| layers[l].1.iter())
        .find_map(|d| d.bias.as_ref());
    let lbr = match (opts.cell, first_bias) {
        (CellKind::Gru(_), Some(b)) => Some(b.shape().len() == 2),
        _ => None,
    };
    let spec = ModelSpec::new(cell_with(opts.cell, 0, lbr), input, hidden)
        .layers(order.len())
        .direction(if bidi {
            Direction::Bidirectional
        } else {
            Direction::Forward
        })
        .merge(opts.merge);
    spec.validate()
        .map_err(|e| format_err(format!("the sizes read from the file are not valid: {e}")))?;

    let mut all: Vec<[Vec<f32>; 3]> = Vec::with_capacity(order.len() * dirs);
    let mut has_bias: Vec<bool> = Vec::with_capacity(order.len() * dirs);
    for (l, name) in order.iter().enumerate() {
        let (lbidi, dirs_t) = &layers[name];
        if *lbidi != bidi {
            return Err(format_err(format!(
                "layer {name:?} is {} but layer {first:?} is {}: every layer of a model has the \
                 same direction",
                if *lbidi {
                    "bidirectional"
                } else {
                    "unidirectional"
                },
                if bidi {
                    "bidirectional"
                } else {
                    "unidirectional"
                },
            )));
        }
        let in_l = spec.layer_input_size(l);
        for (d, t) in dirs_t.iter().enumerate().take(dirs) {
            let dsel = bidi.then_some(d);
            let miss =
                |leaf: &str| format_err(format!("missing tensor: {}", path(name, dsel, leaf)));
            let k = t.kernel.as_ref().ok_or_else(|| miss("kernel"))?;
            let r = t
                .recurrent
                .as_ref()
                .ok_or_else(|| miss("recurrent_kernel"))?;
            let kv = k.read(&[in_l, gh], &|| {
                if l == 0 {
                    format!("input size {input}, {g} gates × hidden size {hidden}")
                } else {
                    format!(
                        "the input of layer {l} is the output of layer {:?}: {in_l} features",
                        order[l - 1]
                    )
                }
            })?;
            let rv = r.read(&[hidden, gh], &|| {
                format!("hidden size {hidden} from the first layer, {g} gates")
            })?;
            let bv = match &t.bias {
                None => {
                    has_bias.push(false);
                    Vec::new()
                }
                Some(b) => {
                    has_bias.push(true);
                    let shape: &[usize] = if lbr == Some(true) { &[2, gh] } else { &[gh] };
                    b.read(shape, &|| match lbr {
                        Some(true) => "GRU with reset_after=True, read from the first bias".into(),
                        Some(false) => {
                            "GRU with reset_after=False, read from the first bias".into()
                        }
                        None => format!("{g} gates × hidden size {hidden}"),
                    })?
                }
            };
            all.push([kv, rv, bv]);
        }
        if !bidi && dirs_t[1].kernel.is_some() {
            // unreachable: a backward_ component makes the layer bidirectional
            return Err(format_err(format!(
                "layer {name:?}: inconsistent directions"
            )));
        }
    }
    let tensors: Vec<KerasTensors<'_>> = all
        .iter()
        .zip(&has_bias)
        .map(|([k, r, b], &hb)| KerasTensors {
            kernel: k,
            recurrent_kernel: r,
            bias: hb.then_some(b.as_slice()),
        })
        .collect();
    Model::from_keras_with_isa(spec, &tensors, isa)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive against an independent formula computed in f64.
    #[test]
    fn f16_widening_is_exact() {
        for h in 0..=u16::MAX {
            let s = if h & 0x8000 != 0 { -1.0f64 } else { 1.0 };
            let e = i32::from((h >> 10) & 0x1f);
            let m = f64::from(h & 0x3ff);
            let got = f16_to_f32(h);
            match e {
                31 if m == 0.0 => assert_eq!(f64::from(got), s * f64::INFINITY),
                31 => {
                    assert!(got.is_nan());
                    assert_eq!(got.to_bits() >> 13 & 0x3ff, u32::from(h & 0x3ff));
                }
                0 => assert_eq!(got.to_bits(), ((s * m * 2f64.powi(-24)) as f32).to_bits()),
                _ => {
                    let want = s * (1.0 + m / 1024.0) * 2f64.powi(e - 15);
                    assert_eq!(got.to_bits(), (want as f32).to_bits(), "{h:#06x}");
                }
            }
        }
    }

    #[test]
    fn bf16_widening() {
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc000), -2.0);
        assert!(bf16_to_f32(0x7fc0).is_nan());
        assert_eq!(bf16_to_f32(0x0001).to_bits(), 0x0001_0000);
    }

    #[test]
    fn pytorch_names() {
        use PtKind::*;
        assert_eq!(
            parse_pytorch_name("weight_ih_l0"),
            Some((WeightIh, 0, false))
        );
        assert_eq!(
            parse_pytorch_name("bias_hh_l12_reverse"),
            Some((BiasHh, 12, true))
        );
        assert_eq!(
            parse_pytorch_name("weight_hr_l1"),
            Some((WeightHr, 1, false))
        );
        for bad in [
            "weight_ih_l01",
            "weight_ih_l",
            "weight_ih_l-1",
            "weight_ih_l99999",
            "weight_ih",
            "weight_xx_l0",
            "weight_ih_l0_reverse_reverse",
            "weight_ih_l0x",
        ] {
            assert_eq!(parse_pytorch_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn keras_names() {
        let p = |s| parse_keras_name(s);
        assert_eq!(p("lstm/lstm_cell/kernel"), ("lstm".into(), None, "kernel"));
        assert_eq!(
            p("bidirectional_1/backward_lstm_1/lstm_cell/bias:0"),
            ("bidirectional_1".into(), Some(1), "bias")
        );
        assert_eq!(
            p("forward_gru/gru_cell/kernel"),
            ("".into(), Some(0), "kernel")
        );
        assert_eq!(p("kernel"), ("".into(), None, "kernel"));
        assert_eq!(
            p("a/b/lstm_1/recurrent_kernel"),
            ("a/b/lstm_1".into(), None, "recurrent_kernel")
        );
    }

    #[test]
    fn natural_order() {
        let mut v = vec![
            "lstm_10", "lstm_2", "lstm", "lstm_1", "lstm_02", "a9b", "a10a",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "a9b", "a10a", "lstm", "lstm_1", "lstm_2", "lstm_02", "lstm_10"
            ]
        );
    }
}
