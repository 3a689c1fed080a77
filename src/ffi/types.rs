//! The plain C types: enums, the model spec, tensors and sequences.
//!
//! Enum-typed fields and arguments that C fills in are `uint32_t` in the
//! ABI (a C enum variable may legally hold any integer, and an out-of-range
//! value in a Rust enum would be undefined behaviour); the enums give their
//! values names and an unknown value is `RNNCELL_STATUS_INVALID_ARGUMENT`.

use std::ffi::c_char;
use std::ptr;

use super::{FfiResult, RnncellActivationSpec, RnncellStatus};
use crate::cell::spec::{
    CellKind, Coupling, Direction, Framework, GruOptions, LstmOptions, MergeMode, ModelSpec,
    RnnActivation, RnnOptions, WeightPrecision,
};
use crate::error::Error;
use crate::isa::Isa;

/// An instruction-set level. `RNNCELL_ISA_AUTO` (0) asks for the best level
/// of this CPU, lowered by the `RNNCELL_ISA` environment variable (an
/// unknown value of it is `RNNCELL_STATUS_INVALID_ARGUMENT`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnncellIsa {
    /// The best available level (see `rnncell_isa_detected`).
    Auto = 0,
    /// Portable scalar code.
    Scalar = 1,
    /// x86-64 AVX2 + FMA.
    Avx2 = 2,
    /// x86-64 AVX-512F and AVX-512BW.
    Avx512 = 3,
    /// AArch64 NEON.
    Neon = 4,
}

impl RnncellIsa {
    pub(crate) fn from_isa(isa: Isa) -> RnncellIsa {
        match isa {
            Isa::Scalar => RnncellIsa::Scalar,
            Isa::Avx2 => RnncellIsa::Avx2,
            Isa::Avx512 => RnncellIsa::Avx512,
            Isa::Neon => RnncellIsa::Neon,
        }
    }

    /// `None` for `Auto`; an error for a value that is not an `RnncellIsa`.
    pub(crate) fn to_isa(v: u32) -> FfiResult<Option<Isa>> {
        Ok(match v {
            0 => None,
            1 => Some(Isa::Scalar),
            2 => Some(Isa::Avx2),
            3 => Some(Isa::Avx512),
            4 => Some(Isa::Neon),
            _ => return Err(RnncellStatus::InvalidArgument),
        })
    }
}

/// The recurrent cell. Starts at 1 so that a zeroed spec is rejected.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnncellCell {
    /// Long short-term memory (gates i, f, g, o).
    Lstm = 1,
    /// Gated recurrent unit (gates r, z, n).
    Gru = 2,
    /// Elman RNN (one gate, tanh or relu).
    Rnn = 3,
}

/// Direction of every layer.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnncellDirection {
    /// Left to right (the default; the only direction `rnncell_model_step`
    /// accepts).
    Forward = 0,
    /// Right to left; outputs in the original time order (as ONNX).
    Reverse = 1,
    /// Both; forward first in outputs and state arrays.
    Bidirectional = 2,
}

/// How the two directions of a bidirectional layer are combined.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnncellMerge {
    /// `[forward || backward]` (PyTorch, ONNX; the default).
    Concat = 0,
    /// forward + backward (Keras `merge_mode="sum"`).
    Sum = 1,
}

/// LSTM coupled input/forget gate (CIFG); the two conventions are opposite.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnncellCoupling {
    /// Independent gates (the default).
    None = 0,
    /// TFLite CIFG: i = 1 - f (the input-gate weights are ignored).
    InputFromForget = 1,
    /// ONNX `input_forget = 1` as ONNX Runtime computes it: f = 1 - i (the
    /// forget-gate weights are ignored).
    ForgetFromInput = 2,
}

/// The nonlinearity of a vanilla RNN (`RnncellSpec.rnn_activation`; for
/// any other function, or other cells, see `RnncellSpec.activations`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnncellActivation {
    /// h' = tanh(W x + R h + b) (the default).
    Tanh = 0,
    /// h' = max(0, W x + R h + b).
    Relu = 1,
}

/// How a model stores its weight matrices (W, R and the LSTM projection);
/// biases, peepholes and states stay f32. The rounding (or quantization)
/// happens once, when the model is built.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnncellWeightPrecision {
    /// f32 weights (the default).
    F32 = 0,
    /// IEEE binary16 weights, rounded to nearest even.
    F16 = 1,
    /// bfloat16 weights, rounded to nearest even.
    Bf16 = 2,
    /// int8 weights with one f32 scale per row, f32 activations.
    I8w = 3,
    /// int8 weights (as `I8W`) and int8 activations (one scale per vector,
    /// computed in each call), exact int32 dot products, one f32 rescale
    /// per row. Every K (input size, state size, hidden size) must be at
    /// most `RNNCELL_MAX_INT8_K` (133143).
    I8 = 4,
    /// The precision the file stores its weight matrices in (all F16: f16,
    /// all BF16: bf16, all F32: f32; mixed dtypes are
    /// `RNNCELL_STATUS_FORMAT`). Only the loaders accept it
    /// (`rnncell_model_load_safetensors[_bytes]`,
    /// `rnncell_model_load_onnx[_bytes]`); anywhere else it is
    /// `RNNCELL_STATUS_INVALID_ARGUMENT`.
    Stored = 255,
}

/// The largest K (columns of a weight matrix) of an
/// `RNNCELL_WEIGHT_PRECISION_I8` model: `input_size`, the input of the
/// layers above the first (state size times directions) and `hidden_size`
/// must each be at most this, so that an int32 dot of K products of two
/// int8 values (|v| <= 127) cannot overflow (K * 127 * 127 < 2^31). A larger
/// size is `RNNCELL_STATUS_INVALID_ARGUMENT`; the other precisions have no
/// such limit.
pub const RNNCELL_MAX_INT8_K: usize = 133_143;

const _: () = assert!(RNNCELL_MAX_INT8_K == crate::cell::spec::MAX_INT8_K);

/// The value of a spec field whose default differs between frameworks
/// (today `gru_linear_before_reset`) that means "the default of the
/// framework whose builder reads the spec": `rnncell_spec_init` writes it,
/// and `rnncell_model_new_pytorch`, `rnncell_model_new_onnx`,
/// `rnncell_model_new_keras` and the safetensors loaders each read it as
/// their framework's value. `rnncell_spec_init_pytorch`, `_onnx` and
/// `_keras` write the framework's value instead. `rnncell_model_spec`
/// never reports it (a built model has a definite form).
pub const RNNCELL_FRAMEWORK_DEFAULT: u32 = u32::MAX;

impl RnncellWeightPrecision {
    pub(crate) fn from_precision(p: WeightPrecision) -> RnncellWeightPrecision {
        match p {
            WeightPrecision::F32 => RnncellWeightPrecision::F32,
            WeightPrecision::F16 => RnncellWeightPrecision::F16,
            WeightPrecision::Bf16 => RnncellWeightPrecision::Bf16,
            WeightPrecision::Int8Weights => RnncellWeightPrecision::I8w,
            WeightPrecision::Int8 => RnncellWeightPrecision::I8,
        }
    }
}

/// The whole shape of a model: cell, variant options, sizes, layers,
/// direction, weight precision, activation functions. Fill it with
/// `rnncell_spec_init` (or the framework's `rnncell_spec_init_pytorch`,
/// `_onnx`, `_keras`), then change fields.
///
/// Versioned: `struct_size` is `sizeof(RnncellSpec)` of the caller's
/// header (the init functions write it); fields are only appended, 0 is
/// each new field's default (see the README, "How the C ABI is versioned").
///
/// Enum fields hold the values of the enum named in their comment. A clip
/// of 0 means "no clipping"; a negative or NaN clip is invalid. Options of
/// a cell kind other than `cell` must keep the values `rnncell_spec_init`
/// gives them (else `RNNCELL_STATUS_INVALID_ARGUMENT`), so that a misplaced
/// option is an error rather than silently ignored.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnncellSpec {
    /// `sizeof(RnncellSpec)` (set by `rnncell_spec_init*`).
    pub struct_size: usize,
    /// An `RnncellCell`.
    pub cell: u32,
    /// Input features per step (I), at least 1.
    pub input_size: usize,
    /// Hidden units per layer and direction (H), at least 1.
    pub hidden_size: usize,
    /// Stacked layers, at least 1 (default 1).
    pub num_layers: usize,
    /// An `RnncellDirection` (default forward).
    pub direction: u32,
    /// An `RnncellMerge` (default concat).
    pub merge: u32,
    /// ONNX `clip`: every activation input clamped to +-clip (any cell); 0 =
    /// none.
    pub clip: f32,
    /// LSTM: peephole connections (p_i, p_f on c; p_o on c'): 0 or 1 (any
    /// other value is `RNNCELL_STATUS_INVALID_ARGUMENT`).
    pub lstm_peephole: u32,
    /// LSTM: projection size P (PyTorch `proj_size`); 0 = no projection.
    /// With a projection, h has P elements.
    pub lstm_proj_size: usize,
    /// LSTM: a bias on the projection (TFLite), 0 or 1; needs
    /// `lstm_proj_size > 0`.
    pub lstm_proj_bias: u32,
    /// LSTM: clamp of the projected output to +-`lstm_proj_clip` (TFLite);
    /// 0 = none; needs `lstm_proj_size > 0`.
    pub lstm_proj_clip: f32,
    /// LSTM: an `RnncellCoupling` (default none).
    pub lstm_coupling: u32,
    /// LSTM: TFLite `cell_clip`, clamp of the stored c' to +-cell_clip; 0 =
    /// none.
    pub lstm_cell_clip: f32,
    /// GRU: 1 for linear-before-reset, n = tanh(W_n x + b_wn +
    /// r*(R_n h + b_rn)) (PyTorch, ONNX `linear_before_reset=1`, Keras
    /// `reset_after=True`); 0 for reset-before, n = tanh(W_n x +
    /// R_n (r*h) + b_n) (ONNX `linear_before_reset=0`, Keras
    /// `reset_after=False`); or `RNNCELL_FRAMEWORK_DEFAULT` (what
    /// `rnncell_spec_init` writes, and the only value a cell other than a
    /// GRU may have): the builder's framework decides, 1 for
    /// `rnncell_model_new_pytorch` and PyTorch files, 0 for
    /// `rnncell_model_new_onnx` (ONNX's default), 1 for
    /// `rnncell_model_new_keras` (Keras 3's `reset_after=True`) and for a
    /// Keras file's GRU without bias (with a bias, its shape decides).
    pub gru_linear_before_reset: u32,
    /// RNN: an `RnncellActivation` (default tanh).
    pub rnn_activation: u32,
    /// An `RnncellWeightPrecision` (default f32).
    /// `RNNCELL_WEIGHT_PRECISION_STORED` only for the safetensors loaders.
    pub weight_precision: u32,
    /// The activation functions, `activations[direction][slot]`: direction
    /// 0 is forward (or the only direction), 1 the backward direction of a
    /// bidirectional model; slot 0 is f (LSTM gates i, f, o; GRU gates z,
    /// r; the RNN's one function), 1 is g (LSTM and GRU candidate), 2 is h
    /// (LSTM output, h = o * h(c')). A GRU uses slots 0 and 1, an RNN slot
    /// 0 only: the others must stay 0. Kind 0 is the cell's default
    /// (sigmoid, tanh, tanh; an RNN's f is `rnn_activation`'s function,
    /// and a relu RNN's f may only be relu). Direction 1 all 0 on a
    /// bidirectional model means "as direction 0"; on a model with one
    /// direction it must be all 0. All zero (what the init functions
    /// write): the standard functions. As ONNX's `activations`,
    /// `activation_alpha`, `activation_beta` attributes.
    pub activations: [[RnncellActivationSpec; 3]; 2],
    /// Must be 0 (room for a future option without trailing padding).
    pub reserved: u32,
}

// No trailing padding: a field appended later starts at the old sizeof.
const _: () =
    assert!(std::mem::offset_of!(RnncellSpec, reserved) + 4 == std::mem::size_of::<RnncellSpec>());

impl Default for RnncellSpec {
    /// What `rnncell_spec_init(spec, RNNCELL_CELL_LSTM, 0, 0)` writes.
    fn default() -> RnncellSpec {
        RnncellSpec::defaults(RnncellCell::Lstm as u32, 0, 0, None)
    }
}

fn bad(field: &str, v: u32) -> Error {
    Error::InvalidArgument(format!("spec.{field}: {v} is not valid"))
}

/// A C flag: 0 or 1; anything else names the field.
pub(crate) fn flag(field: &str, v: u32) -> Result<bool, Error> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(Error::InvalidArgument(format!(
            "{field}: {v} is not 0 or 1"
        ))),
    }
}

fn clip_in(v: f32) -> Option<f32> {
    // 0 (or -0) means none; anything else, including NaN and negative
    // values, is passed on for ModelSpec::validate to accept or reject.
    if v == 0.0 { None } else { Some(v) }
}

fn clip_out(v: Option<f32>) -> f32 {
    v.unwrap_or(0.0)
}

impl RnncellSpec {
    /// What `rnncell_spec_init` (`framework` `None`) or a framework's
    /// `rnncell_spec_init_*` writes: a GRU of a framework gets its form,
    /// every other framework-dependent field stays
    /// `RNNCELL_FRAMEWORK_DEFAULT`.
    pub(crate) fn defaults(
        cell: u32,
        input_size: usize,
        hidden_size: usize,
        framework: Option<Framework>,
    ) -> RnncellSpec {
        let lbr = match framework {
            Some(f) if cell == RnncellCell::Gru as u32 => f.gru_linear_before_reset().into(),
            _ => RNNCELL_FRAMEWORK_DEFAULT,
        };
        RnncellSpec {
            struct_size: std::mem::size_of::<RnncellSpec>(),
            cell,
            input_size,
            hidden_size,
            num_layers: 1,
            direction: RnncellDirection::Forward as u32,
            merge: RnncellMerge::Concat as u32,
            clip: 0.0,
            lstm_peephole: 0,
            lstm_proj_size: 0,
            lstm_proj_bias: 0,
            lstm_proj_clip: 0.0,
            lstm_coupling: RnncellCoupling::None as u32,
            lstm_cell_clip: 0.0,
            gru_linear_before_reset: lbr,
            rnn_activation: RnncellActivation::Tanh as u32,
            weight_precision: RnncellWeightPrecision::F32 as u32,
            activations: Default::default(),
            reserved: 0,
        }
    }

    /// The validated Rust spec, `RNNCELL_FRAMEWORK_DEFAULT` fields read as
    /// `framework`'s value; an enum value out of range or an option of
    /// another cell kind is an `InvalidArgument` naming the field.
    pub(crate) fn to_model_spec(self, framework: Framework) -> Result<ModelSpec, Error> {
        let direction = match self.direction {
            0 => Direction::Forward,
            1 => Direction::Reverse,
            2 => Direction::Bidirectional,
            v => return Err(bad("direction", v)),
        };
        let cell = self.cell_kind(framework)?;
        let activations = self.model_activations(&cell, Some(direction.count()))?;
        let spec = ModelSpec {
            cell,
            input_size: self.input_size,
            hidden_size: self.hidden_size,
            num_layers: self.num_layers,
            direction,
            merge: self.merge_mode()?,
            precision: self.weight_precision()?,
            activations,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The weight precision; `RNNCELL_WEIGHT_PRECISION_STORED` is an error
    /// here (only the loaders accept it: see `load_precision`).
    pub(crate) fn weight_precision(self) -> Result<WeightPrecision, Error> {
        match self.load_precision()? {
            Some(p) => Ok(p),
            None => Err(Error::InvalidArgument(format!(
                "spec.weight_precision: {} (RNNCELL_WEIGHT_PRECISION_STORED) is only valid for \
                 rnncell_model_load_safetensors and rnncell_model_load_safetensors_bytes",
                self.weight_precision
            ))),
        }
    }

    /// The weight precision of a safetensors load: `None` for
    /// `RNNCELL_WEIGHT_PRECISION_STORED` (keep the file's dtype).
    pub(crate) fn load_precision(self) -> Result<Option<WeightPrecision>, Error> {
        Ok(Some(match self.weight_precision {
            0 => WeightPrecision::F32,
            1 => WeightPrecision::F16,
            2 => WeightPrecision::Bf16,
            3 => WeightPrecision::Int8Weights,
            4 => WeightPrecision::Int8,
            255 => return Ok(None),
            v => return Err(bad("weight_precision", v)),
        }))
    }

    /// The merge mode.
    pub(crate) fn merge_mode(self) -> Result<MergeMode, Error> {
        match self.merge {
            0 => Ok(MergeMode::Concat),
            1 => Ok(MergeMode::Sum),
            v => Err(bad("merge", v)),
        }
    }

    /// The cell kind and its options, `RNNCELL_FRAMEWORK_DEFAULT` fields
    /// read as `framework`'s value (not validated: clips are checked when a
    /// model is built).
    pub(crate) fn cell_kind(self, framework: Framework) -> Result<CellKind, Error> {
        if self.reserved != 0 {
            return Err(Error::InvalidArgument(format!(
                "spec.reserved: {} is not 0",
                self.reserved
            )));
        }
        let misplaced = |kind: &str| {
            Error::InvalidArgument(format!(
                "spec: {kind} options are set but the cell is not {kind} (keep rnncell_spec_init's defaults)"
            ))
        };
        let peephole = flag("spec.lstm_peephole", self.lstm_peephole)?;
        let proj_bias = flag("spec.lstm_proj_bias", self.lstm_proj_bias)?;
        let linear_before_reset = match self.gru_linear_before_reset {
            RNNCELL_FRAMEWORK_DEFAULT => framework.gru_linear_before_reset(),
            v => flag("spec.gru_linear_before_reset", v).map_err(|_| {
                Error::InvalidArgument(format!(
                    "spec.gru_linear_before_reset: {v} is not 0, 1 or RNNCELL_FRAMEWORK_DEFAULT"
                ))
            })?,
        };
        let d = RnncellSpec::defaults(self.cell, 0, 0, None);
        let lstm_default = self.lstm_peephole == d.lstm_peephole
            && self.lstm_proj_size == d.lstm_proj_size
            && self.lstm_proj_bias == d.lstm_proj_bias
            && self.lstm_proj_clip == d.lstm_proj_clip
            && self.lstm_coupling == d.lstm_coupling
            && self.lstm_cell_clip == d.lstm_cell_clip;
        let gru_default = self.gru_linear_before_reset == d.gru_linear_before_reset;
        let rnn_default = self.rnn_activation == d.rnn_activation;
        let clip = clip_in(self.clip);
        let cell = match self.cell {
            1 if !gru_default => return Err(misplaced("GRU")),
            1 if !rnn_default => return Err(misplaced("RNN")),
            2 | 3 if !lstm_default => return Err(misplaced("LSTM")),
            2 if !rnn_default => return Err(misplaced("RNN")),
            3 if !gru_default => return Err(misplaced("GRU")),
            1 => CellKind::Lstm(LstmOptions {
                peephole,
                proj_size: self.lstm_proj_size,
                proj_bias,
                proj_clip: clip_in(self.lstm_proj_clip),
                coupling: match self.lstm_coupling {
                    0 => Coupling::None,
                    1 => Coupling::InputFromForget,
                    2 => Coupling::ForgetFromInput,
                    v => return Err(bad("lstm_coupling", v)),
                },
                clip,
                cell_clip: clip_in(self.lstm_cell_clip),
            }),
            2 => CellKind::Gru(GruOptions {
                linear_before_reset,
                clip,
            }),
            3 => CellKind::Rnn(RnnOptions {
                activation: match self.rnn_activation {
                    0 => RnnActivation::Tanh,
                    1 => RnnActivation::Relu,
                    v => return Err(bad("rnn_activation", v)),
                },
                clip,
            }),
            v => return Err(bad("cell", v)),
        };
        Ok(cell)
    }

    /// The C spec of a Rust spec (inverse of `to_model_spec`).
    pub(crate) fn from_model_spec(s: &ModelSpec) -> RnncellSpec {
        let (cell, mut out) = match s.cell {
            CellKind::Lstm(_) => (RnncellCell::Lstm, RnncellSpec::default()),
            CellKind::Gru(_) => (RnncellCell::Gru, RnncellSpec::default()),
            CellKind::Rnn(_) => (RnncellCell::Rnn, RnncellSpec::default()),
        };
        out.cell = cell as u32;
        out.input_size = s.input_size;
        out.hidden_size = s.hidden_size;
        out.num_layers = s.num_layers;
        out.direction = match s.direction {
            Direction::Forward => RnncellDirection::Forward,
            Direction::Reverse => RnncellDirection::Reverse,
            Direction::Bidirectional => RnncellDirection::Bidirectional,
        } as u32;
        out.merge = match s.merge {
            MergeMode::Concat => RnncellMerge::Concat,
            MergeMode::Sum => RnncellMerge::Sum,
        } as u32;
        out.weight_precision = RnncellWeightPrecision::from_precision(s.precision) as u32;
        out.set_activations(s);
        match s.cell {
            CellKind::Lstm(o) => {
                out.clip = clip_out(o.clip);
                out.lstm_peephole = o.peephole.into();
                out.lstm_proj_size = o.proj_size;
                out.lstm_proj_bias = o.proj_bias.into();
                out.lstm_proj_clip = clip_out(o.proj_clip);
                out.lstm_coupling = match o.coupling {
                    Coupling::None => RnncellCoupling::None,
                    Coupling::InputFromForget => RnncellCoupling::InputFromForget,
                    Coupling::ForgetFromInput => RnncellCoupling::ForgetFromInput,
                } as u32;
                out.lstm_cell_clip = clip_out(o.cell_clip);
            }
            CellKind::Gru(o) => {
                out.clip = clip_out(o.clip);
                out.gru_linear_before_reset = o.linear_before_reset.into();
            }
            CellKind::Rnn(o) => {
                out.clip = clip_out(o.clip);
                out.rnn_activation = match o.activation {
                    RnnActivation::Tanh => RnncellActivation::Tanh,
                    RnnActivation::Relu => RnncellActivation::Relu,
                } as u32;
            }
        }
        out
    }
}

/// A read-only float buffer and its element count. `{NULL, 0}` means
/// "absent" where a tensor is optional; `data == NULL` with `len > 0` is
/// `RNNCELL_STATUS_NULL_POINTER`. `data` may have any alignment. Frozen
/// (not versioned): its layout never changes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnncellTensor {
    /// The first element, row-major.
    pub data: *const f32,
    /// Number of floats (not bytes).
    pub len: usize,
}

impl Default for RnncellTensor {
    fn default() -> RnncellTensor {
        RnncellTensor {
            data: ptr::null(),
            len: 0,
        }
    }
}

/// A writable float buffer and its element count; `{NULL, 0}` means
/// "not wanted" where an output is optional. `data` may have any alignment.
/// Frozen (not versioned): its layout never changes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnncellTensorMut {
    /// The first element, row-major.
    pub data: *mut f32,
    /// Number of floats (not bytes).
    pub len: usize,
}

impl Default for RnncellTensorMut {
    fn default() -> RnncellTensorMut {
        RnncellTensorMut {
            data: ptr::null_mut(),
            len: 0,
        }
    }
}

/// The weights of one layer and one direction in PyTorch's layout (also the
/// canonical layout: LSTM gate rows i, f, g, o; GRU r, z, n). G = 4, 3 or 1
/// gates, H hidden, `in` = I for layer 0 and the previous layer's output
/// size above it, Hr = P with a projection, else H. Frozen (an array
/// element, not versioned): its layout never changes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RnncellPytorchLayer {
    /// `weight_ih_l{k}` `[G*H, in]`, required.
    pub weight_ih: RnncellTensor,
    /// `weight_hh_l{k}` `[G*H, Hr]`, required.
    pub weight_hh: RnncellTensor,
    /// `bias_ih_l{k}` `[G*H]`, optional (zeros).
    pub bias_ih: RnncellTensor,
    /// `bias_hh_l{k}` `[G*H]`, optional (zeros).
    pub bias_hh: RnncellTensor,
    /// `weight_hr_l{k}` `[P, H]`: required with `lstm_proj_size > 0`, else
    /// absent.
    pub weight_hr: RnncellTensor,
    /// Peepholes `[3*H]` in the order p_i, p_f, p_o (not a PyTorch tensor:
    /// TFLite, oneDNN); only with `lstm_peephole` (absent: zeros).
    pub peephole: RnncellTensor,
    /// Projection bias `[P]`; only with `lstm_proj_bias` (absent: zeros).
    pub proj_bias: RnncellTensor,
}

/// The tensors of one ONNX LSTM/GRU/RNN node: one layer, all D directions
/// (ONNX gate order LSTM i, o, f, c; GRU z, r, h). Frozen (an array
/// element, not versioned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RnncellOnnxLayer {
    /// W `[D, G*H, in]`, required.
    pub w: RnncellTensor,
    /// R `[D, G*H, H]`, required.
    pub r: RnncellTensor,
    /// B `[D, 2*G*H]` = Wb || Rb, optional (zeros).
    pub b: RnncellTensor,
    /// P `[D, 3*H]` = p_i || p_o || p_f, LSTM with `lstm_peephole` only,
    /// optional (zeros).
    pub p: RnncellTensor,
}

/// The weights of one Keras LSTM/GRU/SimpleRNN layer and direction (Keras
/// gate order LSTM i, f, c, o; GRU z, r, h; transposed). Frozen (an array
/// element, not versioned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RnncellKerasLayer {
    /// kernel `[in, G*H]`, required.
    pub kernel: RnncellTensor,
    /// recurrent_kernel `[H, G*H]`, required.
    pub recurrent_kernel: RnncellTensor,
    /// bias `[G*H]`, or `[2, G*H]` for a GRU with `reset_after=True`;
    /// optional (zeros).
    pub bias: RnncellTensor,
}

/// The sizes of a model, as `rnncell_model_info` reports them. Versioned
/// output: set `struct_size` to `sizeof(RnncellModelInfo)` before the call
/// (`RnncellModelInfo info = {.struct_size = sizeof info};` or
/// `rnncell_model_info_init`); fields past it are not written.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnncellModelInfo {
    /// `sizeof(RnncellModelInfo)`, set by the caller.
    pub struct_size: usize,
    /// An `RnncellCell`.
    pub cell: u32,
    /// I: floats of `x` per step.
    pub input_size: usize,
    /// H: hidden units per layer and direction (the size of c).
    pub hidden_size: usize,
    /// Hr: the size of h per layer and direction (P with a projection, else
    /// H); `y` of `rnncell_model_step` has this many floats.
    pub state_size: usize,
    /// Floats per step and sequence in the output of `rnncell_model_run`
    /// (D*Hr with concat, Hr with sum).
    pub output_size: usize,
    /// L: stacked layers.
    pub num_layers: usize,
    /// D: 1 or 2.
    pub num_directions: usize,
    /// Whether the cell has a c state (LSTM).
    pub has_cell_state: bool,
    /// The ISA whose kernels the model runs (never `RNNCELL_ISA_AUTO`).
    pub isa: RnncellIsa,
    /// Bytes of packed weights one step reads.
    pub weight_bytes: usize,
    /// An `RnncellWeightPrecision`: the precision of the weight matrices
    /// (never `RNNCELL_WEIGHT_PRECISION_STORED`; a model loaded with it
    /// reports the file's precision).
    pub weight_precision: u32,
    /// The integer dot sequence an `RNNCELL_WEIGHT_PRECISION_I8` model's
    /// kernels run (`"portable"`, `"avx2-sign"`, `"avx-vnni"`,
    /// `"avx512-amx"`, `"avx512-vnni"`, `"avx512bw-sign"`, `"neon-sdot"`,
    /// `"neon-smull"`),
    /// a static NUL-terminated string (never free it); NULL for every other
    /// precision.
    pub int_dot: *const c_char,
}

impl Default for RnncellModelInfo {
    fn default() -> RnncellModelInfo {
        RnncellModelInfo {
            struct_size: std::mem::size_of::<RnncellModelInfo>(),
            cell: 0,
            input_size: 0,
            hidden_size: 0,
            state_size: 0,
            output_size: 0,
            num_layers: 0,
            num_directions: 0,
            has_cell_state: false,
            isa: RnncellIsa::Auto,
            weight_bytes: 0,
            weight_precision: 0,
            int_dot: ptr::null(),
        }
    }
}

const _: () = assert!(
    std::mem::offset_of!(RnncellModelInfo, int_dot) + std::mem::size_of::<*const c_char>()
        == std::mem::size_of::<RnncellModelInfo>()
);

/// A batch of sequences for `rnncell_model_run`. T = `steps`, B = `batch`,
/// L layers, D directions, Hr = state size, out = output size. Versioned:
/// fill it with `rnncell_sequence_init` (or set `struct_size` to
/// `sizeof(RnncellSequence)` and every other field to 0), then set fields.
///
/// Shapes by `layout`:
///
/// | layout | input | h0, c0, h_n, c_n | output |
/// |---|---|---|---|
/// | NATIVE, time-major | [T, B, I] | [L*D, B, Hr or H] | [T, B, out] |
/// | NATIVE, `batch_major` | [B, T, I] | [L*D, B, Hr or H] | [B, T, out] |
/// | ONNX0 | X [T, B, I] | [L*D, B, Hr or H] | Y [T, D, B, Hr] |
/// | ONNX1 | X [B, T, I] | [B, L*D, Hr or H] | Y [B, T, D, Hr] |
///
/// The ONNX layouts take ONNX's `X`, `initial_h`, `initial_c` and give
/// `Y`, `Y_h`, `Y_c` unchanged; with `RNNCELL_MERGE_SUM` their output is
/// [T, B, Hr] or [B, T, Hr]. The element counts are the same in every
/// layout; only the order differs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnncellSequence {
    /// `sizeof(RnncellSequence)` (set by `rnncell_sequence_init`).
    pub struct_size: usize,
    /// The input, `[T, B, I]` or `[B, T, I]` (see the table), required.
    pub input: RnncellTensor,
    /// T, at least 1.
    pub steps: usize,
    /// B, at least 1.
    pub batch: usize,
    /// 1 for `[B, T, ...]` input and output, 0 for `[T, B, ...]` (any
    /// other value is `RNNCELL_STATUS_INVALID_ARGUMENT`); native layout
    /// only (must be 0 with an ONNX layout, which decides the order).
    pub batch_major: u32,
    /// B per-sequence lengths as `size_t`, each <= T, or NULL for all T
    /// (at most one of `seq_lens`, `seq_lens_i32`, `seq_lens_i64` is
    /// non-NULL). ONNX
    /// semantics: outputs past a sequence's end are zero, its final state is
    /// the state after its last valid step, the reverse direction starts at
    /// its own last step; a length of 0 returns the initial state. Any
    /// alignment.
    pub seq_lens: *const usize,
    /// Elements of the lengths array given (B), or 0 when all three are
    /// NULL.
    pub seq_lens_len: usize,
    /// Initial h `[L*D, B, Hr]`, optional (zeros).
    pub h0: RnncellTensor,
    /// Initial c `[L*D, B, H]` (LSTM), optional (zeros).
    pub c0: RnncellTensor,
    /// An `RnncellSequenceLayout` (default native).
    pub layout: u32,
    /// B per-sequence lengths as int32 (ONNX `sequence_lens`), or NULL;
    /// semantics of `seq_lens`. A negative entry or one above T is
    /// `RNNCELL_STATUS_INVALID_ARGUMENT` naming it. Any alignment.
    pub seq_lens_i32: *const i32,
    /// B per-sequence lengths as int64 (PyTorch), or NULL; as
    /// `seq_lens_i32`.
    pub seq_lens_i64: *const i64,
}

const _: () = assert!(
    std::mem::offset_of!(RnncellSequence, seq_lens_i64) + std::mem::size_of::<*const i64>()
        == std::mem::size_of::<RnncellSequence>()
);

/// How `rnncell_model_run` lays out the tensors of an `RnncellSequence` and
/// its `RnncellSequenceOutput` (see `RnncellSequence`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnncellSequenceLayout {
    /// rnncell's own layout, also PyTorch's (the default; `batch_major`
    /// picks time- or batch-major).
    Native = 0,
    /// ONNX `layout = 0`: X [T, B, I], Y [T, D, B, Hr], states [L*D, B, .].
    Onnx0 = 1,
    /// ONNX `layout = 1`: X [B, T, I], Y [B, T, D, Hr], states [B, L*D, .].
    Onnx1 = 2,
}

impl Default for RnncellSequence {
    fn default() -> RnncellSequence {
        RnncellSequence {
            struct_size: std::mem::size_of::<RnncellSequence>(),
            input: RnncellTensor::default(),
            steps: 0,
            batch: 0,
            batch_major: 0,
            seq_lens: ptr::null(),
            seq_lens_len: 0,
            h0: RnncellTensor::default(),
            c0: RnncellTensor::default(),
            layout: RnncellSequenceLayout::Native as u32,
            seq_lens_i32: ptr::null(),
            seq_lens_i64: ptr::null(),
        }
    }
}

/// Where `rnncell_model_run` writes. Outputs must not overlap each other;
/// they may overlap the inputs (inputs are then read before anything is
/// written, e.g. `h_n == h0` updates a state in place). Frozen (not
/// versioned; new outputs would come with a new struct).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RnncellSequenceOutput {
    /// `[T, B, out]` or `[B, T, out]` (out = `output_size`), required.
    pub output: RnncellTensorMut,
    /// Final h `[L*D, B, Hr]`, optional.
    pub h_n: RnncellTensorMut,
    /// Final c `[L*D, B, H]` (LSTM), optional.
    pub c_n: RnncellTensorMut,
}

/// Which framework saved a safetensors file (see
/// `rnncell_model_load_safetensors`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnncellWeightFormat {
    /// A PyTorch `state_dict` of `nn.LSTM`/`nn.GRU`/`nn.RNN`:
    /// `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`,
    /// `weight_hr_l{k}`, with `_reverse` for the backward direction; or of
    /// `nn.LSTMCell`/`nn.GRUCell`/`nn.RNNCell` (one forward layer):
    /// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`, no suffix. A prefix
    /// holding tensors of both namings is `RNNCELL_STATUS_FORMAT`.
    Pytorch = 0,
    /// Keras 3 / tf.keras `LSTM`, `GRU`, `SimpleRNN` layers (possibly in
    /// `Bidirectional`) saved under their weight paths, e.g.
    /// `sequential/lstm/lstm_cell/kernel`.
    Keras = 1,
}

/// Where the tensors are in a safetensors file. All fields but
/// `struct_size` may be zero / NULL (a PyTorch `state_dict` holding only
/// the RNN). Versioned: fill it with `rnncell_safetensors_options_init`
/// (or set `struct_size` to `sizeof(RnncellSafetensorsOptions)`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnncellSafetensorsOptions {
    /// `sizeof(RnncellSafetensorsOptions)`.
    pub struct_size: usize,
    /// An `RnncellWeightFormat`.
    pub format: u32,
    /// Only tensors whose names start with this NUL-terminated UTF-8 string
    /// are used, and all of them must belong to the model (include the
    /// separator: `"encoder.rnn."`, `"sequential/"`). NULL: the whole file.
    pub prefix: *const c_char,
    /// Keras only: the layer paths (relative to `prefix`) of the stack,
    /// first layer first, as NUL-terminated UTF-8 strings; other tensors
    /// under the prefix (a `Dense` head) are then ignored. NULL with 0:
    /// every layer under the prefix, in natural name order.
    pub keras_layers: *const *const c_char,
    /// Entries of `keras_layers`.
    pub keras_layers_len: usize,
}

impl Default for RnncellSafetensorsOptions {
    fn default() -> RnncellSafetensorsOptions {
        RnncellSafetensorsOptions {
            struct_size: std::mem::size_of::<RnncellSafetensorsOptions>(),
            format: RnncellWeightFormat::Pytorch as u32,
            prefix: ptr::null(),
            keras_layers: ptr::null(),
            keras_layers_len: 0,
        }
    }
}
