//! Cell and model specifications, validated when a model is built.

use crate::cell::activation::{Activation, Activations};
use crate::error::{Error, Result};

/// How an LSTM couples its input and forget gates (CIFG). The two
/// conventions in use are opposite and must not be confused.
///
/// ```
/// use rnncell::{CellKind, Coupling, LstmOptions};
/// let tflite_cifg = CellKind::Lstm(LstmOptions {
///     coupling: Coupling::InputFromForget,
///     ..LstmOptions::default()
/// });
/// assert_eq!(tflite_cifg.gates(), 4);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Coupling {
    /// Independent input and forget gates (the standard LSTM).
    #[default]
    None,
    /// TFLite CIFG: i = 1 − f. The input-gate weights are ignored.
    InputFromForget,
    /// ONNX `input_forget = 1` as ONNX Runtime computes it: f = 1 − i. The
    /// forget-gate weights are ignored.
    ForgetFromInput,
}

/// LSTM variants (DESIGN §1). `LstmOptions::default()` is the plain LSTM
/// of PyTorch, ONNX and Keras.
///
/// ```
/// use rnncell::LstmOptions;
/// let lstmp = LstmOptions { proj_size: 128, ..LstmOptions::default() };
/// assert_eq!(lstmp.proj_size, 128);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LstmOptions {
    /// Peephole connections: `+ p_i⊙c` in i, `+ p_f⊙c` in f, `+ p_o⊙c'` in o.
    pub peephole: bool,
    /// Projection size P (PyTorch `proj_size`); 0 means no projection.
    /// With a projection, h = W_proj (o⊙tanh(c')) has size P.
    pub proj_size: usize,
    /// A bias on the projection (TFLite); needs `proj_size > 0`.
    pub proj_bias: bool,
    /// Clamp of the projected output to ±`proj_clip` (TFLite).
    pub proj_clip: Option<f32>,
    /// Coupled input and forget gates.
    pub coupling: Coupling,
    /// ONNX `clip`: every activation input is clamped to ±clip (the stored
    /// cell state is not, as in ONNX Runtime).
    pub clip: Option<f32>,
    /// TFLite `cell_clip`: the stored cell state c' is clamped to ±cell_clip.
    pub cell_clip: Option<f32>,
}

/// GRU variants.
///
/// ```
/// use rnncell::GruOptions;
/// let onnx_default = GruOptions { linear_before_reset: false, clip: None };
/// assert_ne!(onnx_default, GruOptions::default());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GruOptions {
    /// `true`: n = tanh(W_n x + b_wn + r⊙(R_n h + b_rn)) (PyTorch, cuDNN,
    /// ONNX `linear_before_reset=1`, Keras `reset_after=True`; the
    /// default). `false`: n = tanh(W_n x + R_n (r⊙h) + b_n) (ONNX default,
    /// Keras `reset_after=False`, the textbook form).
    pub linear_before_reset: bool,
    /// ONNX `clip` of every activation input.
    pub clip: Option<f32>,
}

impl Default for GruOptions {
    fn default() -> Self {
        GruOptions {
            linear_before_reset: true,
            clip: None,
        }
    }
}

/// The framework a model comes from, for the options whose default differs
/// between frameworks (today one: the form of a GRU).
///
/// ```
/// use rnncell::{CellKind, Framework};
/// // ONNX's GRU is reset-before unless linear_before_reset = 1.
/// assert_eq!(CellKind::gru_for(Framework::Onnx), CellKind::gru_reset_before());
/// assert_eq!(CellKind::gru_for(Framework::PyTorch), CellKind::gru());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Framework {
    /// PyTorch (`nn.LSTM`, `nn.GRU`, `nn.RNN` and their cell modules).
    PyTorch,
    /// ONNX (the `LSTM`, `GRU`, `RNN` operators).
    Onnx,
    /// Keras 3 (and tf.keras 2) `LSTM`, `GRU`, `SimpleRNN`.
    Keras,
}

impl Framework {
    /// Every framework.
    pub const ALL: [Framework; 3] = [Framework::PyTorch, Framework::Onnx, Framework::Keras];

    /// The GRU form the framework computes unless told otherwise: PyTorch
    /// `true` (its only form), ONNX `false` (`linear_before_reset`
    /// defaults to 0), Keras `true` (`reset_after=True` is the default of
    /// Keras 3 and of tf.keras 2).
    ///
    /// ```
    /// use rnncell::Framework;
    /// assert!(!Framework::Onnx.gru_linear_before_reset());
    /// assert!(Framework::Keras.gru_linear_before_reset());
    /// ```
    pub fn gru_linear_before_reset(self) -> bool {
        match self {
            Framework::PyTorch | Framework::Keras => true,
            Framework::Onnx => false,
        }
    }

    /// `PyTorch`, `ONNX`, `Keras`.
    ///
    /// ```
    /// assert_eq!(rnncell::Framework::Onnx.name(), "ONNX");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Framework::PyTorch => "PyTorch",
            Framework::Onnx => "ONNX",
            Framework::Keras => "Keras",
        }
    }
}

impl GruOptions {
    /// The GRU options a framework uses by default: see
    /// [`Framework::gru_linear_before_reset`]; no clip.
    ///
    /// ```
    /// use rnncell::{Framework, GruOptions};
    /// assert!(!GruOptions::for_framework(Framework::Onnx).linear_before_reset);
    /// assert_eq!(GruOptions::for_framework(Framework::PyTorch), GruOptions::default());
    /// ```
    pub fn for_framework(framework: Framework) -> GruOptions {
        GruOptions {
            linear_before_reset: framework.gru_linear_before_reset(),
            clip: None,
        }
    }
}

/// The nonlinearity of a vanilla RNN.
///
/// ```
/// assert_eq!(rnncell::RnnActivation::default(), rnncell::RnnActivation::Tanh);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RnnActivation {
    /// h' = tanh(W x + R h + b)
    #[default]
    Tanh,
    /// h' = max(0, W x + R h + b)
    Relu,
}

/// Vanilla RNN options.
///
/// ```
/// use rnncell::{RnnActivation, RnnOptions};
/// let o = RnnOptions { activation: RnnActivation::Relu, clip: None };
/// assert_eq!(o.activation, RnnActivation::Relu);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RnnOptions {
    /// tanh or relu.
    pub activation: RnnActivation,
    /// ONNX `clip` of the activation input.
    pub clip: Option<f32>,
}

/// Which recurrent cell, with its variant options.
///
/// ```
/// use rnncell::CellKind;
/// assert_eq!(CellKind::lstm().gates(), 4);
/// assert_eq!(CellKind::gru().gates(), 3);
/// assert_eq!(CellKind::rnn_tanh().gates(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CellKind {
    /// Long short-term memory.
    Lstm(LstmOptions),
    /// Gated recurrent unit.
    Gru(GruOptions),
    /// Elman RNN.
    Rnn(RnnOptions),
}

impl CellKind {
    /// A plain LSTM.
    ///
    /// ```
    /// assert!(matches!(rnncell::CellKind::lstm(), rnncell::CellKind::Lstm(_)));
    /// ```
    pub fn lstm() -> CellKind {
        CellKind::Lstm(LstmOptions::default())
    }
    /// A PyTorch-style (linear-before-reset) GRU.
    ///
    /// ```
    /// assert!(matches!(rnncell::CellKind::gru(), rnncell::CellKind::Gru(_)));
    /// ```
    pub fn gru() -> CellKind {
        CellKind::Gru(GruOptions::default())
    }
    /// The GRU a framework computes by default (PyTorch and Keras:
    /// linear-before-reset; ONNX: reset-before). Build the spec of ONNX
    /// tensors with `gru_for(Framework::Onnx)` rather than [`CellKind::gru`],
    /// which is PyTorch's form.
    ///
    /// ```
    /// use rnncell::{CellKind, Framework};
    /// let c = CellKind::gru_for(Framework::Keras);
    /// assert!(matches!(c, CellKind::Gru(o) if o.linear_before_reset));
    /// ```
    pub fn gru_for(framework: Framework) -> CellKind {
        CellKind::Gru(GruOptions::for_framework(framework))
    }
    /// A reset-before GRU (ONNX `linear_before_reset = 0`, Keras
    /// `reset_after = False`).
    ///
    /// ```
    /// let c = rnncell::CellKind::gru_reset_before();
    /// assert!(matches!(c, rnncell::CellKind::Gru(o) if !o.linear_before_reset));
    /// ```
    pub fn gru_reset_before() -> CellKind {
        CellKind::Gru(GruOptions {
            linear_before_reset: false,
            clip: None,
        })
    }
    /// A tanh RNN.
    ///
    /// ```
    /// assert_eq!(rnncell::CellKind::rnn_tanh().gates(), 1);
    /// ```
    pub fn rnn_tanh() -> CellKind {
        CellKind::Rnn(RnnOptions::default())
    }
    /// A relu RNN.
    ///
    /// ```
    /// assert_eq!(rnncell::CellKind::rnn_relu().gates(), 1);
    /// ```
    pub fn rnn_relu() -> CellKind {
        CellKind::Rnn(RnnOptions {
            activation: RnnActivation::Relu,
            clip: None,
        })
    }
    /// Number of gates stacked in the weight matrices (4, 3 or 1).
    ///
    /// ```
    /// assert_eq!(rnncell::CellKind::lstm().gates(), 4);
    /// ```
    pub fn gates(&self) -> usize {
        match self {
            CellKind::Lstm(_) => 4,
            CellKind::Gru(_) => 3,
            CellKind::Rnn(_) => 1,
        }
    }
    /// Short name: `lstm`, `gru`, `rnn`.
    ///
    /// ```
    /// assert_eq!(rnncell::CellKind::gru().name(), "gru");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            CellKind::Lstm(_) => "lstm",
            CellKind::Gru(_) => "gru",
            CellKind::Rnn(_) => "rnn",
        }
    }
}

/// Direction of every layer.
///
/// ```
/// assert_eq!(rnncell::Direction::Bidirectional.count(), 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// Left to right.
    #[default]
    Forward,
    /// Right to left; outputs are written back in the original time order
    /// (as ONNX does).
    Reverse,
    /// Both; forward first in the outputs and the state arrays.
    Bidirectional,
}

impl Direction {
    /// 1 or 2.
    ///
    /// ```
    /// assert_eq!(rnncell::Direction::Reverse.count(), 1);
    /// ```
    pub fn count(self) -> usize {
        if self == Direction::Bidirectional {
            2
        } else {
            1
        }
    }
}

/// How the two directions of a bidirectional layer are combined.
///
/// ```
/// assert_eq!(rnncell::MergeMode::default(), rnncell::MergeMode::Concat);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MergeMode {
    /// [forward ‖ backward] (PyTorch, ONNX).
    #[default]
    Concat,
    /// forward + backward (Keras `merge_mode="sum"`, oneDNN bi-sum).
    Sum,
}

/// How a model stores its weight matrices (W, R, the LSTM projection).
/// Biases, peepholes and every state stay f32 in every precision; the
/// rounding or quantization happens once, when the model is built, and
/// every ISA then computes the same bits (README, "Reduced precision").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WeightPrecision {
    /// f32 weights (the default).
    #[default]
    F32,
    /// IEEE binary16 weights, rounded to nearest even from f32 and widened
    /// exactly to f32 in the kernel.
    F16,
    /// bfloat16 weights (the top 16 bits of an f32, rounded to nearest
    /// even), widened exactly to f32 in the kernel.
    Bf16,
    /// int8 weights with one f32 scale per row of each matrix, f32
    /// activations.
    Int8Weights,
    /// int8 weights (as [`WeightPrecision::Int8Weights`]) and int8
    /// activations: x, h (and the GRU's r⊙h, the LSTM projection input)
    /// quantized in each call with one scale per vector, dotted in exact
    /// int32 arithmetic, one f32 rescale per row (`reference.rs`, "Weight
    /// precisions", states the rule). Every matrix's K (input size, state
    /// size, hidden size) must be at most [`MAX_INT8_K`].
    Int8,
}

/// The largest K (columns of a weight matrix) an [`WeightPrecision::Int8`]
/// model takes: K · 127 · 127 < 2^31, so an int32 dot never overflows.
pub const MAX_INT8_K: usize = 133_143;

impl WeightPrecision {
    /// Every precision, in the order of their C values.
    pub const ALL: [WeightPrecision; 5] = [
        WeightPrecision::F32,
        WeightPrecision::F16,
        WeightPrecision::Bf16,
        WeightPrecision::Int8Weights,
        WeightPrecision::Int8,
    ];

    /// The short name: `f32`, `f16`, `bf16`, `i8w`, `i8`.
    ///
    /// ```
    /// use rnncell::WeightPrecision;
    /// assert_eq!(WeightPrecision::Int8Weights.name(), "i8w");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            WeightPrecision::F32 => "f32",
            WeightPrecision::F16 => "f16",
            WeightPrecision::Bf16 => "bf16",
            WeightPrecision::Int8Weights => "i8w",
            WeightPrecision::Int8 => "i8",
        }
    }

    /// The precision called `name` (see [`WeightPrecision::name`]).
    ///
    /// ```
    /// use rnncell::WeightPrecision;
    /// assert_eq!(WeightPrecision::from_name("bf16"), Some(WeightPrecision::Bf16));
    /// assert_eq!(WeightPrecision::from_name("f64"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<WeightPrecision> {
        WeightPrecision::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Bytes per stored weight element.
    pub fn element_bytes(self) -> usize {
        match self {
            WeightPrecision::F32 => 4,
            WeightPrecision::F16 | WeightPrecision::Bf16 => 2,
            WeightPrecision::Int8Weights | WeightPrecision::Int8 => 1,
        }
    }
}

impl std::fmt::Display for WeightPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The whole shape of a model: cell, sizes, layers and directions.
///
/// ```
/// use rnncell::{CellKind, Direction, ModelSpec};
/// let spec = ModelSpec::new(CellKind::lstm(), 40, 128)
///     .layers(2)
///     .direction(Direction::Bidirectional);
/// spec.validate().unwrap();
/// assert_eq!(spec.layer_input_size(1), 256);
/// assert_eq!(spec.output_size(), 256);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelSpec {
    /// The cell and its variant options.
    pub cell: CellKind,
    /// Input features per step (I).
    pub input_size: usize,
    /// Hidden units per layer and direction (H).
    pub hidden_size: usize,
    /// Stacked layers (≥ 1).
    pub num_layers: usize,
    /// Direction of every layer.
    pub direction: Direction,
    /// How bidirectional outputs are combined.
    pub merge: MergeMode,
    /// How the weight matrices are stored (default f32).
    pub precision: WeightPrecision,
    /// The activation functions, forward direction first (the second is
    /// used only by a bidirectional model); `None` (the default): the
    /// cell's standard ones (sigmoid, tanh, tanh; the RNN's
    /// [`RnnOptions::activation`]). See [`ModelSpec::activations_of`].
    pub activations: Option<[Activations; 2]>,
}

impl ModelSpec {
    /// One forward layer.
    ///
    /// ```
    /// let s = rnncell::ModelSpec::new(rnncell::CellKind::gru(), 3, 5);
    /// assert_eq!(s.num_layers, 1);
    /// ```
    pub fn new(cell: CellKind, input_size: usize, hidden_size: usize) -> ModelSpec {
        ModelSpec {
            cell,
            input_size,
            hidden_size,
            num_layers: 1,
            direction: Direction::Forward,
            merge: MergeMode::Concat,
            precision: WeightPrecision::F32,
            activations: None,
        }
    }
    /// Sets the number of stacked layers.
    ///
    /// ```
    /// let s = rnncell::ModelSpec::new(rnncell::CellKind::gru(), 3, 5).layers(3);
    /// assert_eq!(s.num_layers, 3);
    /// ```
    pub fn layers(mut self, n: usize) -> ModelSpec {
        self.num_layers = n;
        self
    }
    /// Sets the direction.
    ///
    /// ```
    /// use rnncell::*;
    /// let s = ModelSpec::new(CellKind::gru(), 3, 5).direction(Direction::Reverse);
    /// assert_eq!(s.direction, Direction::Reverse);
    /// ```
    pub fn direction(mut self, d: Direction) -> ModelSpec {
        self.direction = d;
        self
    }
    /// Sets how bidirectional outputs are merged.
    ///
    /// ```
    /// use rnncell::*;
    /// let s = ModelSpec::new(CellKind::gru(), 3, 5)
    ///     .direction(Direction::Bidirectional)
    ///     .merge(MergeMode::Sum);
    /// assert_eq!(s.output_size(), 5);
    /// ```
    pub fn merge(mut self, m: MergeMode) -> ModelSpec {
        self.merge = m;
        self
    }
    /// Sets the weight precision.
    ///
    /// ```
    /// use rnncell::*;
    /// let s = ModelSpec::new(CellKind::gru(), 3, 5).precision(WeightPrecision::F16);
    /// assert_eq!(s.precision, WeightPrecision::F16);
    /// ```
    pub fn precision(mut self, p: WeightPrecision) -> ModelSpec {
        self.precision = p;
        self
    }
    /// Sets the activation functions of every direction.
    ///
    /// ```
    /// use rnncell::*;
    /// let relu_gru = Activations { g: Activation::Relu, ..Activations::STANDARD };
    /// let s = ModelSpec::new(CellKind::gru(), 3, 5).activations(relu_gru);
    /// assert_eq!(s.activations_of(0).g, Activation::Relu);
    /// ```
    pub fn activations(mut self, a: Activations) -> ModelSpec {
        self.activations = Some([a, a]);
        self
    }
    /// Sets the activation functions of each direction of a bidirectional
    /// model (ONNX lists them per direction).
    ///
    /// ```
    /// use rnncell::*;
    /// let fwd = Activations::STANDARD;
    /// let bwd = Activations { h: Activation::Softsign, ..fwd };
    /// let s = ModelSpec::new(CellKind::lstm(), 3, 5)
    ///     .direction(Direction::Bidirectional)
    ///     .activations_per_direction(fwd, bwd);
    /// assert_eq!(s.activations_of(1).h, Activation::Softsign);
    /// ```
    pub fn activations_per_direction(
        mut self,
        forward: Activations,
        backward: Activations,
    ) -> ModelSpec {
        self.activations = Some([forward, backward]);
        self
    }
    /// The activation functions direction `dir` computes: those set, or
    /// the cell's standard ones (sigmoid, tanh, tanh; for the RNN, f is
    /// [`RnnOptions::activation`] and g, h are unused).
    ///
    /// ```
    /// use rnncell::*;
    /// let s = ModelSpec::new(CellKind::rnn_relu(), 3, 5);
    /// assert_eq!(s.activations_of(0).f, Activation::Relu);
    /// ```
    pub fn activations_of(&self, dir: usize) -> Activations {
        match (self.activations, self.cell) {
            (Some(a), _) => a[dir.min(1)],
            (None, CellKind::Rnn(o)) => Activations {
                f: match o.activation {
                    RnnActivation::Tanh => Activation::Tanh,
                    RnnActivation::Relu => Activation::Relu,
                },
                ..Activations::STANDARD
            },
            (None, _) => Activations::STANDARD,
        }
    }
    /// Number of directions (1 or 2).
    ///
    /// ```
    /// let s = rnncell::ModelSpec::new(rnncell::CellKind::gru(), 3, 5);
    /// assert_eq!(s.directions(), 1);
    /// ```
    pub fn directions(&self) -> usize {
        self.direction.count()
    }
    /// Projection size, or 0.
    ///
    /// ```
    /// let s = rnncell::ModelSpec::new(rnncell::CellKind::gru(), 3, 5);
    /// assert_eq!(s.proj_size(), 0);
    /// ```
    pub fn proj_size(&self) -> usize {
        match self.cell {
            CellKind::Lstm(o) => o.proj_size,
            _ => 0,
        }
    }
    /// Size of h per layer and direction: P with a projection, else H.
    ///
    /// ```
    /// use rnncell::*;
    /// let cell = CellKind::Lstm(LstmOptions { proj_size: 2, ..Default::default() });
    /// assert_eq!(ModelSpec::new(cell, 3, 5).state_size(), 2);
    /// ```
    pub fn state_size(&self) -> usize {
        match self.proj_size() {
            0 => self.hidden_size,
            p => p,
        }
    }
    /// Whether the cell has a c state (LSTM).
    ///
    /// ```
    /// assert!(rnncell::ModelSpec::new(rnncell::CellKind::lstm(), 3, 5).has_cell_state());
    /// ```
    pub fn has_cell_state(&self) -> bool {
        matches!(self.cell, CellKind::Lstm(_))
    }
    /// Features per step in the model output (and into the next layer).
    ///
    /// ```
    /// use rnncell::*;
    /// let s = ModelSpec::new(CellKind::gru(), 3, 5).direction(Direction::Bidirectional);
    /// assert_eq!(s.output_size(), 10);
    /// ```
    pub fn output_size(&self) -> usize {
        match self.merge {
            MergeMode::Concat => self.directions() * self.state_size(),
            MergeMode::Sum => self.state_size(),
        }
    }
    /// Input features of layer `l`.
    ///
    /// ```
    /// let s = rnncell::ModelSpec::new(rnncell::CellKind::gru(), 3, 5).layers(2);
    /// assert_eq!(s.layer_input_size(0), 3);
    /// assert_eq!(s.layer_input_size(1), 5);
    /// ```
    pub fn layer_input_size(&self, l: usize) -> usize {
        if l == 0 {
            self.input_size
        } else {
            self.output_size()
        }
    }
    /// Checks every size and option; the error says which is wrong.
    ///
    /// ```
    /// use rnncell::*;
    /// assert!(ModelSpec::new(CellKind::lstm(), 3, 0).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.input_size == 0 {
            return Err(Error::invalid("input_size must be at least 1"));
        }
        if self.hidden_size == 0 {
            return Err(Error::invalid("hidden_size must be at least 1"));
        }
        if self.num_layers == 0 {
            return Err(Error::invalid("num_layers must be at least 1"));
        }
        const MAX: usize = 1 << 20;
        if self.input_size > MAX || self.hidden_size > MAX || self.num_layers > 4096 {
            return Err(Error::invalid(format!(
                "sizes too large (input {}, hidden {}, layers {})",
                self.input_size, self.hidden_size, self.num_layers
            )));
        }
        let check_clip = |name: &str, v: Option<f32>| match v {
            Some(c) if c.is_nan() || c <= 0.0 => Err(Error::invalid(format!(
                "{name} must be positive (and not NaN), got {c}"
            ))),
            _ => Ok(()),
        };
        match self.cell {
            CellKind::Lstm(o) => {
                check_clip("clip", o.clip)?;
                check_clip("cell_clip", o.cell_clip)?;
                check_clip("proj_clip", o.proj_clip)?;
                if o.proj_size > MAX {
                    return Err(Error::invalid("proj_size too large"));
                }
                if o.proj_size > self.hidden_size {
                    return Err(Error::invalid(format!(
                        "proj_size {} exceeds hidden_size {} (a projection must be smaller, \
                         as in PyTorch)",
                        o.proj_size, self.hidden_size
                    )));
                }
                if o.proj_size == 0 && (o.proj_bias || o.proj_clip.is_some()) {
                    return Err(Error::invalid("proj_bias and proj_clip need proj_size > 0"));
                }
            }
            CellKind::Gru(o) => check_clip("clip", o.clip)?,
            CellKind::Rnn(o) => check_clip("clip", o.clip)?,
        }
        if let Some(acts) = self.activations {
            self.check_activations(&acts)?;
        }
        if self.precision == WeightPrecision::Int8 {
            // Every matrix's K: W (each layer's input), R (the state),
            // W_proj (the hidden size).
            let ks = [
                ("input_size", self.input_size),
                ("the input size of layer 1 (state size × directions)", {
                    if self.num_layers > 1 {
                        self.state_size() * self.directions()
                    } else {
                        0
                    }
                }),
                ("hidden_size", self.hidden_size),
            ];
            for (what, k) in ks {
                if k > MAX_INT8_K {
                    return Err(Error::invalid(format!(
                        "{what} {k} exceeds {MAX_INT8_K}, the largest K of an i8 model \
                         (an int32 dot of K products of ±127 must not overflow)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Explicit activations: finite parameters, one set unless
    /// bidirectional, nothing set for a function the cell does not have,
    /// and no contradiction with an RNN's `activation`.
    fn check_activations(&self, acts: &[Activations; 2]) -> Result<()> {
        let dirs = ["forward", "backward"];
        for (a, dir) in acts.iter().zip(dirs) {
            for (v, role) in [(a.f, "f"), (a.g, "g"), (a.h, "h")] {
                if let Err(Error::InvalidArgument(m)) = v.validate() {
                    return Err(Error::invalid(format!("{dir} activation {role}: {m}")));
                }
            }
        }
        if self.directions() == 1 && acts[0] != acts[1] {
            return Err(Error::invalid(
                "per-direction activations need a bidirectional model",
            ));
        }
        for (a, dir) in acts.iter().take(self.directions()).zip(dirs) {
            let unused: &[(Activation, &str)] = match self.cell {
                CellKind::Lstm(_) => &[],
                CellKind::Gru(_) => &[(a.h, "h")],
                CellKind::Rnn(_) => &[(a.g, "g"), (a.h, "h")],
            };
            for &(v, role) in unused {
                if v != Activation::Tanh {
                    return Err(Error::invalid(format!(
                        "{dir} activation {role} is {}, but a {} has no {role} function \
                         (leave it at Activations::STANDARD's tanh)",
                        v.name(),
                        self.cell.name()
                    )));
                }
            }
            if let CellKind::Rnn(o) = self.cell
                && o.activation == RnnActivation::Relu
                && a.f != Activation::Relu
            {
                return Err(Error::invalid(format!(
                    "{dir} activation f is {}, but the RNN's activation is relu",
                    a.f.name()
                )));
            }
        }
        Ok(())
    }
}
