//! Keras: the weights of an `LSTM` / `GRU` / `SimpleRNN` layer (`kernel`
//! [in, G·H], `recurrent_kernel` [H, G·H], `bias` [G·H] or [2, G·H]) and
//! [`Model::from_keras`]. The transposed layout and gate orders (i f c o,
//! z r h) are [`Layout::Keras`], converted in [`LayerWeights::from_layout`].

use crate::cell::fit::{self, Allowed, Api, Counts, Which};
use crate::cell::model::Model;
use crate::cell::spec::{CellKind, ModelSpec};
use crate::cell::weights::{LayerTensors, LayerWeights, Layout};
use crate::error::{Error, Result};
use crate::isa::Isa;

/// Keras LSTM gates i f c o, the canonical order: `LSTM_GATES[canonical
/// gate]` = Keras gate. (Keras matrices are transposed: [in, G·H].)
pub(crate) const LSTM_GATES: [usize; 4] = [0, 1, 2, 3];
/// Keras GRU gates z r h (canonical r z n).
pub(crate) const GRU_GATES: [usize; 3] = [1, 0, 2];
/// What [`LayerWeights::from_layout`] calls W, R and the two biases.
pub(crate) const NAMES: [&str; 4] = ["kernel", "recurrent_kernel", "bias", "bias (recurrent row)"];

/// The weights of one Keras LSTM/GRU/SimpleRNN layer (one direction).
///
/// ```
/// let t = rnncell::KerasTensors { kernel: &[], recurrent_kernel: &[], bias: None };
/// assert!(t.bias.is_none());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct KerasTensors<'a> {
    /// kernel [in, G·H].
    pub kernel: &'a [f32],
    /// recurrent_kernel [H, G·H].
    pub recurrent_kernel: &'a [f32],
    /// bias [G·H], or [2, G·H] for a GRU with `reset_after=True`.
    pub bias: Option<&'a [f32]>,
}

impl Model {
    /// Builds a model from Keras layer weights, one [`KerasTensors`] per
    /// layer and direction (index `layer * directions + direction`).
    /// A GRU bias of [2, 3H] (`reset_after=True`) is split into input and
    /// recurrent biases.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::lstm(), 2, 3);
    /// let (k, rk, b) = (vec![0.0; 2 * 12], vec![0.0; 3 * 12], vec![0.0; 12]);
    /// let t = KerasTensors { kernel: &k, recurrent_kernel: &rk, bias: Some(&b) };
    /// let m = Model::from_keras(spec, &[t]).unwrap();
    /// assert_eq!(m.spec().hidden_size, 3);
    /// ```
    pub fn from_keras(spec: ModelSpec, layers: &[KerasTensors<'_>]) -> Result<Model> {
        Model::from_keras_with_isa(spec, layers, Isa::try_detect()?)
    }

    /// [`Model::from_keras`] for a chosen ISA.
    ///
    /// ```
    /// use rnncell::*;
    /// let spec = ModelSpec::new(CellKind::lstm(), 2, 3);
    /// assert!(Model::from_keras_with_isa(spec, &[], Isa::Scalar).is_err());
    /// ```
    pub fn from_keras_with_isa(
        spec: ModelSpec,
        layers: &[KerasTensors<'_>],
        isa: Isa,
    ) -> Result<Model> {
        Model::keras_for_c(spec, layers, isa).map_err(|e| {
            let counts: Vec<Counts> = layers
                .iter()
                .map(|t| Counts {
                    w: t.kernel.len(),
                    r: t.recurrent_kernel.len(),
                    b_w: t.bias.map(<[f32]>::len),
                    ..Counts::default()
                })
                .collect();
            e.with_hint(fit::hint(Layout::Keras, &spec, &counts, Api::Rust))
        })
    }

    /// [`Model::from_keras_with_isa`] without the hint in Rust names (the C
    /// builder adds its own).
    pub(crate) fn keras_for_c(
        spec: ModelSpec,
        layers: &[KerasTensors<'_>],
        isa: Isa,
    ) -> Result<Model> {
        spec.validate()?;
        let d = spec.directions();
        if layers.len() != spec.num_layers * d {
            return Err(Error::size(
                "Keras layers (layers × directions)",
                spec.num_layers * d,
                layers.len(),
            ));
        }
        let gh = spec.cell.gates() * spec.hidden_size;
        let mut all = Vec::new();
        for (i, t) in layers.iter().enumerate() {
            let (b_w, b_r) = match t.bias {
                Some(b) if b.len() == 2 * gh => (Some(&b[..gh]), Some(&b[gh..])),
                b => (b, None),
            };
            let lt = LayerTensors {
                w: t.kernel,
                r: t.recurrent_kernel,
                b_w,
                b_r,
                ..LayerTensors::default()
            };
            all.push(LayerWeights::from_layout(Layout::Keras, &spec, i / d, &lt)?);
        }
        Model::with_isa(spec, &all, isa)
    }
}

/// Entries of a spec in Keras: one per layer and direction.
pub(crate) fn entries(spec: &ModelSpec) -> usize {
    spec.num_layers * spec.directions()
}

/// The element count each tensor of entry `i` may have (`fit`'s table for
/// this layout): `kernel` [in, G·H], `recurrent_kernel` [Hr, G·H], `bias`
/// [G·H] optional (a GRU's [2, G·H] with `reset_after`); nothing else.
pub(crate) fn allowed(spec: &ModelSpec, i: usize, which: Which) -> Allowed {
    let d = fit::dims(spec, i / spec.directions());
    match which {
        Which::W => Allowed::Required(vec![d.g, d.h, d.input]),
        Which::R => Allowed::Required(vec![d.g, d.h, d.hr]),
        Which::BW if matches!(spec.cell, CellKind::Gru(_)) => {
            Allowed::OneOf(vec![d.g, d.h], vec![(2, "2"), d.g, d.h])
        }
        Which::BW => Allowed::Optional(vec![d.g, d.h]),
        _ => Allowed::Forbidden,
    }
}
