//! Models: building from PyTorch, ONNX and Keras weight arrays, queries,
//! freeing; library-wide queries (version, ISAs).

use std::borrow::Cow;
use std::ffi::c_char;

use super::marshal::{Handle, Regions, Tagged, Unaligned, unaligned_slice};
use super::{
    FfiResult, RnncellIsa, RnncellKerasLayer, RnncellModelInfo, RnncellOnnxLayer,
    RnncellPytorchLayer, RnncellSpec, RnncellStatus, RnncellTensor, RnncellWeightPrecision,
    boundary, check_count, fail, floats_in, guarded, versioned, write_msg,
};
use crate::cell::fit::{self, Api, Counts};
use crate::cell::frameworks::pytorch::tensor_name;
use crate::cell::model::{KerasTensors, Model, OnnxTensors};
use crate::cell::spec::{CellKind, Framework, ModelSpec};
use crate::cell::weights::{LayerTensors, LayerWeights, Layout};
use crate::error::Error;
use crate::isa::Isa;
use std::mem::size_of;

/// An immutable, packed model. Opaque: create with `rnncell_model_new_*`,
/// free with `rnncell_model_free`. Any number of threads may use one model
/// at the same time (every call takes it as `const RnncellModel *`).
pub struct RnncellModel {
    /// The model behind [`Handle::MAGIC`] (the only field: offset 0).
    t: Tagged<Model>,
}

const _: () = assert!(std::mem::offset_of!(RnncellModel, t) == 0);

// SAFETY: the only field is a Tagged (offset 0, asserted above), tagged
// MAGIC only by `RnncellModel::new` and FREED before the box is dropped.
unsafe impl Handle for RnncellModel {
    const KIND: &'static str = "model";
    const MAGIC: u64 = 0x726e_6e63_6d6f_646c; // "rnncmodl"
    fn magic_mut(&mut self) -> &mut u64 {
        self.t.magic_mut()
    }
}

impl RnncellModel {
    pub(super) fn new(inner: Model) -> RnncellModel {
        RnncellModel {
            t: Tagged::new::<RnncellModel>(inner),
        }
    }
}

/// Why a model could not be built: a status and, when known, a message.
pub(super) struct Failure {
    pub(super) status: RnncellStatus,
    pub(super) msg: Option<String>,
}

impl super::OnPanic for Result<*mut RnncellModel, Failure> {
    fn on_panic() -> Self {
        Err(Failure {
            status: RnncellStatus::Panic,
            msg: Some("internal panic caught (a bug in rnncell)".into()),
        })
    }
}

impl From<RnncellStatus> for Failure {
    /// A status from a check that recorded its message (`fail`): the
    /// message goes into the builder's `err_msg` too.
    fn from(status: RnncellStatus) -> Failure {
        Failure {
            status,
            msg: super::detail::fresh_text(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            msg: Some(e.to_string()),
            status: e.into(),
        }
    }
}

impl Failure {
    pub(super) fn new(status: RnncellStatus, msg: impl Into<String>) -> Failure {
        Failure {
            status,
            msg: Some(msg.into()),
        }
    }

    /// A size or argument failure with `hint()` (which spec field the
    /// tensors imply, see `cell::fit`) appended to its message.
    fn with_hint(mut self, hint: impl FnOnce() -> Option<String>) -> Failure {
        if matches!(
            self.status,
            RnncellStatus::SizeMismatch | RnncellStatus::InvalidArgument
        ) && let (Some(m), Some(h)) = (self.msg.as_mut(), hint())
        {
            m.push_str("; ");
            m.push_str(&h);
        }
        self
    }
}

/// The element count of a C tensor for `cell::fit` (`None`: absent).
fn count_of(t: RnncellTensor) -> Option<usize> {
    (!t.data.is_null()).then_some(t.len)
}

/// Shared tail of every `rnncell_model_new_*` and of the safetensors
/// loaders: reads the spec (by the `struct_size` rule) and the ISA, then
/// runs `build` (see [`build_with`]).
///
/// # Safety
/// `spec` null or a valid `RnncellSpec` of its `struct_size`; `out` null or
/// writable; `msg` null or writable for `msg_len` bytes.
pub(super) unsafe fn build_model(
    name: &str,
    spec: *const RnncellSpec,
    isa: u32,
    out: *mut *mut RnncellModel,
    msg: *mut c_char,
    msg_len: usize,
    build: impl FnOnce(RnncellSpec, Isa) -> Result<Model, Failure>,
) -> RnncellStatus {
    let run = || {
        // SAFETY: `spec` is null or a valid RnncellSpec of its struct_size
        // (caller).
        let spec = unsafe { versioned::read(spec, "spec") }?;
        build(spec, resolve_isa(isa)?)
    };
    // SAFETY: `out` and `msg` forwarded (caller).
    unsafe { build_with(name, out, msg, msg_len, run) }
}

/// The ISA a C `isa` argument names; `RNNCELL_ISA_AUTO` is the detected one
/// (an unknown `RNNCELL_ISA` value is an error naming it).
pub(super) fn resolve_isa(isa: u32) -> Result<Isa, Failure> {
    match RnncellIsa::to_isa(isa)
        .map_err(|s| Failure::new(s, format!("{isa} is not an RnncellIsa value")))?
    {
        Some(isa) => Ok(isa),
        None => Ok(Isa::try_detect()?),
    }
}

/// The one tail of every call that makes a model (builders and loaders):
/// checks that `*out` and the message buffer are disjoint, runs `build`
/// inside the panic boundary, and only then, after the last read of caller
/// memory, stores the handle (or NULL on failure) and writes the message
/// (and the error detail, through [`report`]).
///
/// # Safety
/// `out` null or writable; `msg` null or writable for `msg_len` bytes.
pub(super) unsafe fn build_with(
    name: &str,
    out: *mut *mut RnncellModel,
    msg: *mut c_char,
    msg_len: usize,
    build: impl FnOnce() -> Result<Model, Failure>,
) -> RnncellStatus {
    // The two outputs: each message byte written must not land in *out.
    let mut outs = Regions::<2>::new();
    let regions = outs
        .write(out, 1)
        .and_then(|_| outs.write(msg, msg_len))
        .and_then(|_| outs.check_writes());
    if let Err(s) = regions {
        // Writing either output could corrupt the other: write nothing.
        report(name, s, "");
        return s;
    }
    let r = boundary(|| -> Result<*mut RnncellModel, Failure> {
        if out.is_null() {
            return Err(Failure::new(
                RnncellStatus::NullPointer,
                "out_model is NULL",
            ));
        }
        let model = build()?;
        Ok(RnncellModel::into_raw(RnncellModel::new(model)))
    });
    // Every input has been read: now the outputs may be written.
    let (status, text) = match r {
        Ok(p) => {
            // SAFETY: `out` is non-null (checked in the boundary, which
            // returned Ok) and writable (caller).
            unsafe { out.write_unaligned(p) };
            (RnncellStatus::Ok, String::new())
        }
        Err(f) => {
            if !out.is_null() {
                // SAFETY: non-null and writable (caller).
                unsafe { out.write_unaligned(std::ptr::null_mut()) };
            }
            (f.status, f.msg.unwrap_or_default())
        }
    };
    // SAFETY: `msg` is null or writable for msg_len bytes (caller) and
    // disjoint from `*out` (checked).
    unsafe { write_msg(msg, msg_len, &text) };
    report(name, status, &text);
    status
}

/// Leaves a failed builder's or loader's message (`text`, or what a check
/// recorded when it is empty) as the error detail of the call `name`.
pub(super) fn report(name: &str, status: RnncellStatus, text: &str) {
    if status != RnncellStatus::Ok {
        if !text.is_empty() {
            fail(status, format_args!("{text}"));
        }
        super::detail::finish(name, status);
    }
}

/// The `n` C structs at `p` (any alignment), after `n` was compared with
/// `expected`, so that no element past the count the model needs is read.
///
/// # Safety
/// `p` null or valid for reads of `n` initialised `T`s.
unsafe fn read_array<'a, T: Copy>(
    p: *const T,
    n: usize,
    expected: usize,
    what: &str,
) -> Result<&'a [Unaligned<T>], Failure> {
    if p.is_null() {
        return Err(Failure::new(
            RnncellStatus::NullPointer,
            format!("{what} is NULL"),
        ));
    }
    check_count::<T>(n)?;
    if n != expected {
        return Err(Error::size(what, expected, n).into());
    }
    // SAFETY: non-null, readable for n elements (caller), count checked.
    Ok(unsafe { unaligned_slice(p, n) })
}

/// What one tensor argument may be: absent-or-`n` floats, required `n`
/// floats, or not allowed by the spec (the message says why).
#[derive(Clone, Copy)]
enum Want<'s> {
    Optional(usize),
    Required(usize),
    /// Either of two sizes (a Keras GRU bias: [G*H] or [2, G*H]).
    OneOf(usize, usize),
    Forbidden(&'s str),
}

/// Reads one tensor argument after checking its count against `want`:
/// a wrong count is `RNNCELL_STATUS_SIZE_MISMATCH` before any of its floats
/// is read. Aligned tensors are borrowed; misaligned ones copied.
///
/// # Safety
/// `t.data` null or readable for `t.len` floats (any alignment), not
/// written during 'a.
unsafe fn tensor<'a>(
    t: RnncellTensor,
    want: Want<'_>,
    what: &str,
) -> Result<Option<Cow<'a, [f32]>>, Failure> {
    if t.data.is_null() {
        if t.len != 0 {
            return Err(Failure::new(
                RnncellStatus::NullPointer,
                format!("{what}: data is NULL"),
            ));
        }
        return match want {
            Want::Required(_) => Err(Failure::new(
                RnncellStatus::NullPointer,
                format!("{what}: required but absent (data is NULL)"),
            )),
            _ => Ok(None),
        };
    }
    check_count::<f32>(t.len)
        .map_err(|s| Failure::new(s, format!("{what}: element count overflows")))?;
    let ok = match want {
        Want::Optional(n) | Want::Required(n) => t.len == n,
        Want::OneOf(a, b) => t.len == a || t.len == b,
        Want::Forbidden(why) => {
            return Err(Error::invalid(format!("{what}: given, but {why}")).into());
        }
    };
    if !ok {
        let n = match want {
            Want::Optional(n) | Want::Required(n) | Want::OneOf(n, _) => n,
            Want::Forbidden(_) => 0,
        };
        return Err(Error::size(what, n, t.len).into());
    }
    // SAFETY: forwarded; the count matches the model (checked above).
    unsafe { floats_in(t.data, t.len, false) }.map_err(|s| {
        Failure::new(
            s,
            match s {
                RnncellStatus::SizeOverflow => format!("{what}: element count overflows"),
                RnncellStatus::Allocation => format!("{what}: cannot allocate a copy"),
                _ => format!("{what}: cannot read"),
            },
        )
    })
}

/// The LSTM options that decide which optional tensors a layer may have:
/// (peephole, proj_bias).
fn lstm_flags(spec: &ModelSpec) -> (bool, bool) {
    match spec.cell {
        CellKind::Lstm(o) => (o.peephole, o.proj_bias),
        _ => (false, false),
    }
}

/// Builds a model from weights in PyTorch's layout (the canonical one):
/// `layers` holds `n_layers` = L*D entries, index `layer * D + direction`
/// (direction 1 is PyTorch's `_reverse`). See `RnncellPytorchLayer` for the
/// shapes. `isa` is an `RnncellIsa` (`RNNCELL_ISA_AUTO` for the best one).
///
/// On success `*out_model` receives a new model that the caller owns and
/// must free with `rnncell_model_free`; the weights are copied (packed), so
/// the caller's arrays may be freed at once. On failure `*out_model` is set
/// to NULL (when `out_model` is not NULL). `err_msg` (optional, may be
/// NULL) receives a NUL-terminated message of at most `err_msg_len` bytes
/// naming what was wrong (the empty string on success).
///
/// # Safety
/// Every non-NULL pointer must be valid for the count given with it;
/// `layers` for `n_layers` elements; `err_msg` for `err_msg_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_new_pytorch(
    spec: *const RnncellSpec,
    layers: *const RnncellPytorchLayer,
    n_layers: usize,
    isa: u32,
    out_model: *mut *mut RnncellModel,
    err_msg: *mut c_char,
    err_msg_len: usize,
) -> RnncellStatus {
    let build = |spec: RnncellSpec, isa: Isa| -> Result<Model, Failure> {
        let spec = spec.to_model_spec(Framework::PyTorch)?;
        let d = spec.directions();
        let n = spec.num_layers * d;
        // SAFETY: `layers` is valid for n_layers elements (caller); only
        // read once n_layers == n.
        let layers =
            unsafe { read_array(layers, n_layers, n, "layers (PyTorch layers x directions)") }
                .map_err(|f| {
                    f.with_hint(|| fit::count_hint(Layout::PyTorch, &spec, n_layers, Api::C))
                })?;
        let counts = || -> Vec<Counts> {
            layers
                .iter()
                .map(|t| {
                    let t = t.get();
                    Counts {
                        w: count_of(t.weight_ih).unwrap_or(0),
                        r: count_of(t.weight_hh).unwrap_or(0),
                        b_w: count_of(t.bias_ih),
                        b_r: count_of(t.bias_hh),
                        proj: count_of(t.weight_hr),
                        peephole: count_of(t.peephole),
                    }
                })
                .collect()
        };
        // The model; each tensor's count is checked before it is read.
        let model = || -> Result<Model, Failure> {
            let (g, h, hr, p) = (
                spec.cell.gates(),
                spec.hidden_size,
                spec.state_size(),
                spec.proj_size(),
            );
            let (peephole, proj_bias) = lstm_flags(&spec);
            let mut all = Vec::new();
            all.try_reserve_exact(n)
                .map_err(|_| RnncellStatus::Allocation)?;
            for (i, t) in layers.iter().map(Unaligned::get).enumerate() {
                let l = i / d;
                // The Rust builder's name and the state_dict name (with the
                // direction of a bidirectional model).
                let name = |f: &str| {
                    if d == 2 {
                        let n = tensor_name(f, l, i % d);
                        format!("layer {l} {f} ({n}, direction {})", i % d)
                    } else {
                        format!("layer {l} {f} ({})", tensor_name(f, l, 0))
                    }
                };
                let gh = g * h;
                let w_n = gh * spec.layer_input_size(l);
                let want_proj = if p > 0 {
                    Want::Required(p * h)
                } else {
                    Want::Forbidden("the spec has lstm_proj_size 0")
                };
                let want_peep = if peephole {
                    Want::Optional(3 * h)
                } else {
                    Want::Forbidden("the spec has no peepholes")
                };
                let want_pb = if proj_bias {
                    Want::Optional(p)
                } else {
                    Want::Forbidden("the spec has lstm_proj_bias 0")
                };
                // SAFETY: each tensor is null or
                // readable for its count (caller); counts are checked first.
                let w = unsafe { tensor(t.weight_ih, Want::Required(w_n), &name("weight_ih")) }?;
                // SAFETY: as above.
                let r =
                    unsafe { tensor(t.weight_hh, Want::Required(gh * hr), &name("weight_hh")) }?;
                // SAFETY: as above.
                let b_w = unsafe { tensor(t.bias_ih, Want::Optional(gh), &name("bias_ih")) }?;
                // SAFETY: as above.
                let b_r = unsafe { tensor(t.bias_hh, Want::Optional(gh), &name("bias_hh")) }?;
                // SAFETY: as above.
                let proj = unsafe { tensor(t.weight_hr, want_proj, &name("weight_hr")) }?;
                // SAFETY: as above.
                let peep = unsafe { tensor(t.peephole, want_peep, &name("peephole")) }?;
                // SAFETY: as above.
                let pb = unsafe { tensor(t.proj_bias, want_pb, &name("proj_bias")) }?;
                let (Some(w), Some(r)) = (w, r) else {
                    return Err(RnncellStatus::Panic.into());
                };
                let lt = LayerTensors {
                    w: &w,
                    r: &r,
                    b_w: b_w.as_deref(),
                    b_r: b_r.as_deref(),
                    peephole: peep.as_deref(),
                    proj: proj.as_deref(),
                    proj_bias: pb.as_deref(),
                };
                all.push(LayerWeights::from_layout(Layout::PyTorch, &spec, l, &lt)?);
            }
            Ok(Model::with_isa(spec, &all, isa)?)
        };
        model().map_err(|f| f.with_hint(|| fit::hint(Layout::PyTorch, &spec, &counts(), Api::C)))
    };
    // SAFETY: forwarded pointer contracts (see `# Safety`).
    unsafe {
        build_model(
            "rnncell_model_new_pytorch",
            spec,
            isa,
            out_model,
            err_msg,
            err_msg_len,
            build,
        )
    }
}

/// Builds a model from ONNX LSTM/GRU/RNN node tensors: `layers` holds
/// `n_layers` = L entries, one per ONNX node (each node holds both
/// directions). See `RnncellOnnxLayer`. Ownership, `isa` and `err_msg` as in
/// `rnncell_model_new_pytorch`.
///
/// # Safety
/// As `rnncell_model_new_pytorch`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_new_onnx(
    spec: *const RnncellSpec,
    layers: *const RnncellOnnxLayer,
    n_layers: usize,
    isa: u32,
    out_model: *mut *mut RnncellModel,
    err_msg: *mut c_char,
    err_msg_len: usize,
) -> RnncellStatus {
    let build = |spec: RnncellSpec, isa: Isa| -> Result<Model, Failure> {
        let spec = spec.to_model_spec(Framework::Onnx)?;
        let n = spec.num_layers;
        // SAFETY: `layers` is valid for n_layers elements (caller); only
        // read once n_layers == n.
        let layers = unsafe { read_array(layers, n_layers, n, "layers (ONNX nodes)") }
            .map_err(|f| f.with_hint(|| fit::count_hint(Layout::Onnx, &spec, n_layers, Api::C)))?;
        let counts = || -> Vec<Counts> {
            layers
                .iter()
                .map(|t| {
                    let t = t.get();
                    Counts {
                        w: count_of(t.w).unwrap_or(0),
                        r: count_of(t.r).unwrap_or(0),
                        b_w: count_of(t.b),
                        peephole: count_of(t.p),
                        ..Counts::default()
                    }
                })
                .collect()
        };
        let hinted = |f: Failure| f.with_hint(|| fit::hint(Layout::Onnx, &spec, &counts(), Api::C));
        // The model; each tensor's count is checked before it is read.
        let model = || -> Result<Model, Failure> {
            let (d, g, h, hr) = (
                spec.directions(),
                spec.cell.gates(),
                spec.hidden_size,
                spec.state_size(),
            );
            let (peephole, _) = lstm_flags(&spec);
            let gh = g * h;
            let mut held = Vec::new();
            held.try_reserve_exact(n)
                .map_err(|_| RnncellStatus::Allocation)?;
            for (l, t) in layers.iter().map(Unaligned::get).enumerate() {
                let want_p = if peephole {
                    Want::Optional(d * 3 * h)
                } else {
                    Want::Forbidden("the spec has no peepholes")
                };
                let w_n = d * gh * spec.layer_input_size(l);
                // SAFETY: each tensor is null or
                // readable for its count (caller); counts are checked first.
                let w = unsafe { tensor(t.w, Want::Required(w_n), &format!("layer {l} W")) }?;
                // SAFETY: as above.
                let r =
                    unsafe { tensor(t.r, Want::Required(d * gh * hr), &format!("layer {l} R")) }?;
                // SAFETY: as above.
                let b =
                    unsafe { tensor(t.b, Want::Optional(d * 2 * gh), &format!("layer {l} B")) }?;
                // SAFETY: as above.
                let p = unsafe { tensor(t.p, want_p, &format!("layer {l} P")) }?;
                let (Some(w), Some(r)) = (w, r) else {
                    return Err(RnncellStatus::Panic.into());
                };
                held.push((w, r, b, p));
            }
            let tensors: Vec<OnnxTensors<'_>> = held
                .iter()
                .map(|(w, r, b, p)| OnnxTensors {
                    w,
                    r,
                    b: b.as_deref(),
                    p: p.as_deref(),
                })
                .collect();
            // The Rust builder's own hint (Api::Rust names) is not wanted here.
            Ok(Model::onnx_for_c(spec, &tensors, isa)?)
        };
        model().map_err(hinted)
    };
    // SAFETY: forwarded pointer contracts (see `# Safety`).
    unsafe {
        build_model(
            "rnncell_model_new_onnx",
            spec,
            isa,
            out_model,
            err_msg,
            err_msg_len,
            build,
        )
    }
}

/// Builds a model from Keras layer weights: `layers` holds `n_layers` =
/// L*D entries, index `layer * D + direction` (a `Bidirectional` wrapper's
/// forward layer, then its backward layer). See `RnncellKerasLayer`.
/// Ownership, `isa` and `err_msg` as in `rnncell_model_new_pytorch`.
///
/// # Safety
/// As `rnncell_model_new_pytorch`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_new_keras(
    spec: *const RnncellSpec,
    layers: *const RnncellKerasLayer,
    n_layers: usize,
    isa: u32,
    out_model: *mut *mut RnncellModel,
    err_msg: *mut c_char,
    err_msg_len: usize,
) -> RnncellStatus {
    let build = |spec: RnncellSpec, isa: Isa| -> Result<Model, Failure> {
        let spec = spec.to_model_spec(Framework::Keras)?;
        let d = spec.directions();
        let n = spec.num_layers * d;
        // SAFETY: `layers` is valid for n_layers elements (caller); only
        // read once n_layers == n.
        let layers =
            unsafe { read_array(layers, n_layers, n, "layers (Keras layers x directions)") }
                .map_err(|f| {
                    f.with_hint(|| fit::count_hint(Layout::Keras, &spec, n_layers, Api::C))
                })?;
        let counts = || -> Vec<Counts> {
            layers
                .iter()
                .map(|t| {
                    let t = t.get();
                    Counts {
                        w: count_of(t.kernel).unwrap_or(0),
                        r: count_of(t.recurrent_kernel).unwrap_or(0),
                        b_w: count_of(t.bias),
                        ..Counts::default()
                    }
                })
                .collect()
        };
        // The model; each tensor's count is checked before it is read.
        let model = || -> Result<Model, Failure> {
            let (g, h, hr) = (spec.cell.gates(), spec.hidden_size, spec.state_size());
            let gh = g * h;
            let want_b = match spec.cell {
                CellKind::Gru(_) => Want::OneOf(gh, 2 * gh),
                _ => Want::Optional(gh),
            };
            let mut held = Vec::new();
            held.try_reserve_exact(n)
                .map_err(|_| RnncellStatus::Allocation)?;
            for (i, t) in layers.iter().map(Unaligned::get).enumerate() {
                let k_n = gh * spec.layer_input_size(i / d);
                // SAFETY: each tensor is null or
                // readable for its count (caller); counts are checked first.
                let k =
                    unsafe { tensor(t.kernel, Want::Required(k_n), &format!("layer {i} kernel")) }?;
                // SAFETY: as above.
                let rk = unsafe {
                    tensor(
                        t.recurrent_kernel,
                        Want::Required(gh * hr),
                        &format!("layer {i} recurrent_kernel"),
                    )
                }?;
                // SAFETY: as above.
                let b = unsafe { tensor(t.bias, want_b, &format!("layer {i} bias")) }?;
                let (Some(k), Some(rk)) = (k, rk) else {
                    return Err(RnncellStatus::Panic.into());
                };
                held.push((k, rk, b));
            }
            let tensors: Vec<KerasTensors<'_>> = held
                .iter()
                .map(|(k, rk, b)| KerasTensors {
                    kernel: k,
                    recurrent_kernel: rk,
                    bias: b.as_deref(),
                })
                .collect();
            Ok(Model::keras_for_c(spec, &tensors, isa)?)
        };
        model().map_err(|f| f.with_hint(|| fit::hint(Layout::Keras, &spec, &counts(), Api::C)))
    };
    // SAFETY: forwarded pointer contracts (see `# Safety`).
    unsafe {
        build_model(
            "rnncell_model_new_keras",
            spec,
            isa,
            out_model,
            err_msg,
            err_msg_len,
            build,
        )
    }
}

/// Frees a model. NULL is a no-op. Every state made from it stays valid
/// memory and may still be freed, but may no longer be stepped (there is no
/// model to step it with). The caller must ensure no other thread is using
/// the model.
///
/// # Safety
/// `model` is NULL or a pointer from `rnncell_model_new_*` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_free(model: *mut RnncellModel) {
    // SAFETY: `model` is null or a model handle not in use elsewhere
    // (caller); anything without the live magic word is ignored.
    boundary(|| unsafe { RnncellModel::free(model) })
}

/// # Safety
/// `model` null or a live model.
pub(crate) unsafe fn model_ref<'a>(model: *const RnncellModel) -> FfiResult<&'a Model> {
    // SAFETY: `model` is null or a handle the library returned (caller),
    // only ever read through shared references.
    unsafe { RnncellModel::from_ptr(model) }.map(|m| &m.t.value)
}

/// Writes the sizes of `model` to `*out`: what each buffer of
/// `rnncell_model_step` and `rnncell_model_run` must hold. Set
/// `out->struct_size` first (`RnncellModelInfo info = {.struct_size = sizeof info};`): at
/// most that many bytes are written (`RNNCELL_STATUS_INVALID_ARGUMENT` if
/// it is less than the 0.5 size).
///
/// # Safety
/// `model` NULL or live; `out` NULL or readable and writable for its
/// `struct_size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_info(
    model: *const RnncellModel,
    out: *mut RnncellModelInfo,
) -> RnncellStatus {
    guarded("rnncell_model_info", || {
        // SAFETY: `model` is null or live (caller).
        let m = unsafe { model_ref(model) }?;
        let s = m.spec();
        let info = RnncellModelInfo {
            struct_size: size_of::<RnncellModelInfo>(),
            cell: RnncellSpec::from_model_spec(s).cell,
            input_size: s.input_size,
            hidden_size: s.hidden_size,
            state_size: s.state_size(),
            output_size: s.output_size(),
            num_layers: s.num_layers,
            num_directions: s.directions(),
            has_cell_state: s.has_cell_state(),
            isa: RnncellIsa::from_isa(m.isa()),
            weight_bytes: m.weight_bytes(),
            weight_precision: RnncellWeightPrecision::from_precision(m.precision()) as u32,
            int_dot: m.int_dot().map_or(std::ptr::null(), int_dot_name),
        };
        // SAFETY: `out` is null or readable and writable for its struct_size
        // (caller).
        unsafe { versioned::write(out, info, "out") }
    })
}

/// Writes the spec `model` was built from to `*out` (every option of other
/// cell kinds at its `rnncell_spec_init` default; activations set
/// explicitly, slot by slot, when the model has non-standard ones), so
/// that it can be inspected or used to build another model. Set
/// `out->struct_size` first (`rnncell_spec_init` does): at most that many
/// bytes are written, and it is kept.
///
/// # Safety
/// `model` NULL or live; `out` NULL or readable and writable for its
/// `struct_size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_spec(
    model: *const RnncellModel,
    out: *mut RnncellSpec,
) -> RnncellStatus {
    guarded("rnncell_model_spec", || {
        // SAFETY: `model` is null or live (caller).
        let m = unsafe { model_ref(model) }?;
        // SAFETY: `out` is null or readable and writable for its
        // struct_size (caller).
        unsafe { versioned::write(out, RnncellSpec::from_model_spec(m.spec()), "out") }
    })
}

/// The library version, e.g. `"0.5.0"` (the `RNNCELL_VERSION` the library
/// was built with; compare it with the header's macro). Static; never free.
#[unsafe(no_mangle)]
pub extern "C" fn rnncell_version() -> *const c_char {
    boundary(|| concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
}

/// The ISA `RNNCELL_ISA_AUTO` selects: the best level of this CPU, lowered
/// by the environment variable `RNNCELL_ISA=scalar|avx2|avx512|neon` if set
/// (read once, at the first call that needs it). An unknown `RNNCELL_ISA`
/// value lowers nothing here, and makes every build with `RNNCELL_ISA_AUTO`
/// fail with `RNNCELL_STATUS_INVALID_ARGUMENT` and a message naming it.
#[unsafe(no_mangle)]
pub extern "C" fn rnncell_isa_detected() -> RnncellIsa {
    boundary(|| RnncellIsa::from_isa(Isa::detect()))
}

/// The ISAs this CPU can run, as a bit mask: bit `1u << isa` is set for each
/// `RnncellIsa` value that `rnncell_model_new_*` accepts here (independent
/// of `RNNCELL_ISA`). `RNNCELL_ISA_SCALAR` is always set.
#[unsafe(no_mangle)]
pub extern "C" fn rnncell_isa_available() -> u32 {
    boundary(|| {
        Isa::ALL
            .into_iter()
            .filter(|i| i.is_supported())
            .map(|i| 1u32 << RnncellIsa::from_isa(i) as u32)
            .fold(0, |a, b| a | b)
    })
}

/// The lower-case name of an `RnncellIsa` value: `"auto"`, `"scalar"`,
/// `"avx2"`, `"avx512"`, `"neon"`; NULL for any other value. Static; never
/// free.
#[unsafe(no_mangle)]
pub extern "C" fn rnncell_isa_name(isa: u32) -> *const c_char {
    boundary(|| match RnncellIsa::to_isa(isa) {
        Ok(None) => c"auto".as_ptr(),
        Ok(Some(i)) => match i {
            Isa::Scalar => c"scalar".as_ptr(),
            Isa::Avx2 => c"avx2".as_ptr(),
            Isa::Avx512 => c"avx512".as_ptr(),
            Isa::Neon => c"neon".as_ptr(),
        },
        Err(_) => std::ptr::null(),
    })
}

/// # Safety
/// `s` NULL or a NUL-terminated string.
pub(super) unsafe fn utf8<'a>(s: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if s.is_null() {
        return Ok("");
    }
    // SAFETY: a non-null `s` is NUL-terminated and live (caller).
    unsafe { std::ffi::CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| Error::InvalidArgument(format!("{what} is not UTF-8")).into())
}

/// The static C string of an integer dot sequence's name (`Model::int_dot`);
/// NUL-terminated `'static` data, nothing allocated. An unknown name (a
/// bug: every name of `kernels::int_dots` is listed) is `"unknown"`.
fn int_dot_name(name: &str) -> *const c_char {
    const NAMES: [&std::ffi::CStr; 8] = [
        c"portable",
        c"avx2-sign",
        c"avx-vnni",
        c"avx512-amx",
        c"avx512-vnni",
        c"avx512bw-sign",
        c"neon-sdot",
        c"neon-smull",
    ];
    NAMES
        .iter()
        .find(|c| c.to_bytes() == name.as_bytes())
        .map_or(c"unknown".as_ptr(), |c| c.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::Isa;

    #[test]
    fn every_int_dot_has_a_c_name() {
        for isa in Isa::ALL {
            for name in crate::kernels::int_dots(isa) {
                let p = int_dot_name(name);
                // SAFETY: int_dot_name returns static NUL-terminated strings.
                let c = unsafe { std::ffi::CStr::from_ptr(p) };
                assert_eq!(c.to_str().unwrap(), name);
            }
        }
    }
}
