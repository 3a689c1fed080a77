//! Models: building from PyTorch, ONNX and Keras weight arrays, queries,
//! freeing; library-wide queries (version, ISAs).

use std::borrow::Cow;
use std::ffi::c_char;

use super::{
    FfiResult, RnncellIsa, RnncellKerasLayer, RnncellModelInfo, RnncellOnnxLayer,
    RnncellPytorchLayer, RnncellSafetensorsOptions, RnncellSpec, RnncellStatus, RnncellTensor,
    boundary, check_count, guarded, read_in, required_tensor, tensor_in, write_msg, write_out,
};
use crate::cell::model::{KerasTensors, Model, OnnxTensors};
use crate::cell::weights::{LayerTensors, LayerWeights, Layout};
use crate::error::Error;
use crate::isa::Isa;
use crate::loader::{SafetensorsOptions, WeightFormat};

/// An immutable, packed model. Opaque: create with `rnncell_model_new_*`,
/// free with `rnncell_model_free`. Any number of threads may use one model
/// at the same time (every call takes it as `const RnncellModel *`).
pub struct RnncellModel {
    pub(crate) inner: Model,
}

/// Why a model could not be built: a status and, when known, a message.
struct Failure {
    status: RnncellStatus,
    msg: Option<String>,
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
    fn from(status: RnncellStatus) -> Failure {
        Failure { status, msg: None }
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

/// Shared tail of every `rnncell_model_new_*`: reads the spec and ISA, runs
/// `build` inside the panic boundary, stores the handle or NULL, writes the
/// message.
///
/// # Safety
/// `spec` null or a valid `RnncellSpec`; `out` null or writable; `msg` null
/// or writable for `msg_len` bytes.
unsafe fn build_model(
    spec: *const RnncellSpec,
    isa: u32,
    out: *mut *mut RnncellModel,
    msg: *mut c_char,
    msg_len: usize,
    build: impl FnOnce(RnncellSpec, Isa) -> Result<Model, Failure>,
) -> RnncellStatus {
    let r = boundary(|| -> Result<*mut RnncellModel, Failure> {
        if out.is_null() {
            return Err(Failure {
                status: RnncellStatus::NullPointer,
                msg: Some("out_model is NULL".into()),
            });
        }
        // SAFETY: `out` is non-null and writable (caller); clear it first so
        // that every failure leaves NULL there.
        unsafe { write_out(out, std::ptr::null_mut())? };
        // SAFETY: `spec` is null or a valid RnncellSpec (caller).
        let spec = unsafe { read_in(spec) }.map_err(|s| Failure {
            status: s,
            msg: Some("spec is NULL".into()),
        })?;
        let isa = match RnncellIsa::to_isa(isa).map_err(|s| Failure {
            status: s,
            msg: Some(format!("{isa} is not an RnncellIsa value")),
        })? {
            Some(isa) => isa,
            None => Isa::detect(),
        };
        let model = build(spec, isa)?;
        Ok(Box::into_raw(Box::new(RnncellModel { inner: model })))
    });
    let r = match r {
        Ok(p) => {
            // SAFETY: checked non-null and writable above.
            unsafe { out.write_unaligned(p) };
            Ok(())
        }
        Err(f) => Err(f),
    };
    match r {
        Ok(()) => {
            // SAFETY: `msg` is null or writable for msg_len bytes (caller).
            unsafe { write_msg(msg, msg_len, "") };
            RnncellStatus::Ok
        }
        Err(f) => {
            let text = f.msg.as_deref().unwrap_or("");
            // SAFETY: as above.
            unsafe { write_msg(msg, msg_len, text) };
            f.status
        }
    }
}

/// Reads an array of `n` C structs (any alignment).
///
/// # Safety
/// `p` null or valid for reads of `n` initialised `T`s.
unsafe fn read_array<T: Copy>(p: *const T, n: usize, what: &str) -> Result<Vec<T>, Failure> {
    if p.is_null() {
        return Err(Failure {
            status: RnncellStatus::NullPointer,
            msg: Some(format!("{what} is NULL")),
        });
    }
    check_count::<T>(n)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| RnncellStatus::Allocation)?;
    for i in 0..n {
        // SAFETY: i < n and `p` is valid for n reads (caller); add stays in
        // bounds because n * size_of::<T>() <= isize::MAX (check_count).
        v.push(unsafe { p.add(i).read_unaligned() });
    }
    Ok(v)
}

fn null_tensor(what: &str) -> impl Fn(RnncellStatus) -> Failure + '_ {
    move |status| Failure {
        status,
        msg: Some(match status {
            RnncellStatus::NullPointer => format!("{what}: data is NULL"),
            RnncellStatus::SizeOverflow => format!("{what}: element count overflows"),
            _ => format!("{what}: cannot read"),
        }),
    }
}

/// # Safety
/// `t` null/empty or valid for its count.
unsafe fn req<'a>(t: RnncellTensor, what: &str) -> Result<Cow<'a, [f32]>, Failure> {
    // SAFETY: forwarded.
    unsafe { required_tensor(t) }.map_err(null_tensor(what))
}

/// # Safety
/// `t` null/empty or valid for its count.
unsafe fn opt<'a>(t: RnncellTensor, what: &str) -> Result<Option<Cow<'a, [f32]>>, Failure> {
    // SAFETY: forwarded.
    unsafe { tensor_in(t) }.map_err(null_tensor(what))
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
        let spec = spec.to_model_spec()?;
        // SAFETY: `layers` is valid for n_layers elements (caller).
        let layers = unsafe { read_array(layers, n_layers, "layers") }?;
        let d = spec.directions();
        let n = spec.num_layers * d;
        if layers.len() != n {
            return Err(
                Error::size("PyTorch layers (layers x directions)", n, layers.len()).into(),
            );
        }
        let mut all = Vec::with_capacity(n);
        for (i, t) in layers.iter().enumerate() {
            let name = |f: &str| {
                let sfx = if i % d == 1 { "_reverse" } else { "" };
                format!("{f}_l{}{sfx}", i / d)
            };
            // SAFETY: each tensor is valid for its count (caller).
            let w = unsafe { req(t.weight_ih, &name("weight_ih")) }?;
            // SAFETY: as above.
            let r = unsafe { req(t.weight_hh, &name("weight_hh")) }?;
            // SAFETY: as above.
            let b_w = unsafe { opt(t.bias_ih, &name("bias_ih")) }?;
            // SAFETY: as above.
            let b_r = unsafe { opt(t.bias_hh, &name("bias_hh")) }?;
            // SAFETY: as above.
            let proj = unsafe { opt(t.weight_hr, &name("weight_hr")) }?;
            // SAFETY: as above.
            let peep = unsafe { opt(t.peephole, &name("peephole")) }?;
            // SAFETY: as above.
            let pb = unsafe { opt(t.proj_bias, &name("proj_bias")) }?;
            let lt = LayerTensors {
                w: &w,
                r: &r,
                b_w: b_w.as_deref(),
                b_r: b_r.as_deref(),
                peephole: peep.as_deref(),
                proj: proj.as_deref(),
                proj_bias: pb.as_deref(),
            };
            let lw = LayerWeights::from_layout(Layout::PyTorch, &spec, i / d, &lt).map_err(
                |e| match e {
                    Error::SizeMismatch {
                        what,
                        expected,
                        actual,
                    } if d == 2 => {
                        Error::size(format!("{what} (direction {})", i % d), expected, actual)
                    }
                    e => e,
                },
            )?;
            all.push(lw);
        }
        Ok(Model::with_isa(spec, &all, isa)?)
    };
    // SAFETY: forwarded pointer contracts (see `# Safety`).
    unsafe { build_model(spec, isa, out_model, err_msg, err_msg_len, build) }
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
        let spec = spec.to_model_spec()?;
        // SAFETY: `layers` is valid for n_layers elements (caller).
        let layers = unsafe { read_array(layers, n_layers, "layers") }?;
        let mut held = Vec::with_capacity(layers.len());
        for (l, t) in layers.iter().enumerate() {
            // SAFETY: each tensor is valid for its count (caller).
            let w = unsafe { req(t.w, &format!("layer {l} W")) }?;
            // SAFETY: as above.
            let r = unsafe { req(t.r, &format!("layer {l} R")) }?;
            // SAFETY: as above.
            let b = unsafe { opt(t.b, &format!("layer {l} B")) }?;
            // SAFETY: as above.
            let p = unsafe { opt(t.p, &format!("layer {l} P")) }?;
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
        Ok(Model::from_onnx_with_isa(spec, &tensors, isa)?)
    };
    // SAFETY: forwarded pointer contracts (see `# Safety`).
    unsafe { build_model(spec, isa, out_model, err_msg, err_msg_len, build) }
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
        let spec = spec.to_model_spec()?;
        // SAFETY: `layers` is valid for n_layers elements (caller).
        let layers = unsafe { read_array(layers, n_layers, "layers") }?;
        let mut held = Vec::with_capacity(layers.len());
        for (i, t) in layers.iter().enumerate() {
            // SAFETY: each tensor is valid for its count (caller).
            let k = unsafe { req(t.kernel, &format!("layer {i} kernel")) }?;
            // SAFETY: as above.
            let rk = unsafe { req(t.recurrent_kernel, &format!("layer {i} recurrent_kernel")) }?;
            // SAFETY: as above.
            let b = unsafe { opt(t.bias, &format!("layer {i} bias")) }?;
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
        Ok(Model::from_keras_with_isa(spec, &tensors, isa)?)
    };
    // SAFETY: forwarded pointer contracts (see `# Safety`).
    unsafe { build_model(spec, isa, out_model, err_msg, err_msg_len, build) }
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
    boundary(|| {
        if !model.is_null() {
            // SAFETY: a non-null `model` came from Box::into_raw in
            // build_model and has not been freed (caller).
            drop(unsafe { Box::from_raw(model) });
        }
    })
}

/// # Safety
/// `model` null or a live model.
pub(crate) unsafe fn model_ref<'a>(model: *const RnncellModel) -> FfiResult<&'a Model> {
    // SAFETY: a non-null `model` is a live Box<RnncellModel> (caller), only
    // ever read through shared references.
    unsafe { model.as_ref() }
        .map(|m| &m.inner)
        .ok_or(RnncellStatus::NullPointer)
}

/// Writes the sizes of `model` to `*out`: what each buffer of
/// `rnncell_model_step` and `rnncell_model_run` must hold.
///
/// # Safety
/// `model` NULL or live; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_info(
    model: *const RnncellModel,
    out: *mut RnncellModelInfo,
) -> RnncellStatus {
    guarded(|| {
        // SAFETY: `model` is null or live (caller).
        let m = unsafe { model_ref(model) }?;
        let s = m.spec();
        let info = RnncellModelInfo {
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
        };
        // SAFETY: `out` is null or writable (caller).
        unsafe { write_out(out, info) }
    })
}

/// Writes the spec `model` was built from to `*out` (every option of other
/// cell kinds at its `rnncell_spec_init` default), so that it can be
/// inspected or used to build another model.
///
/// # Safety
/// `model` NULL or live; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_spec(
    model: *const RnncellModel,
    out: *mut RnncellSpec,
) -> RnncellStatus {
    guarded(|| {
        // SAFETY: `model` is null or live (caller).
        let m = unsafe { model_ref(model) }?;
        // SAFETY: `out` is null or writable (caller).
        unsafe { write_out(out, RnncellSpec::from_model_spec(m.spec())) }
    })
}

/// Fills `*spec` with the defaults for `cell` (an `RnncellCell`) with the
/// given sizes: one forward layer, concat merge, no clipping, no LSTM
/// peepholes, projection or coupling, linear-before-reset GRU, tanh RNN.
/// Sizes are checked when a model is built, not here.
///
/// # Safety
/// `spec` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_spec_init(
    spec: *mut RnncellSpec,
    cell: u32,
    input_size: usize,
    hidden_size: usize,
) -> RnncellStatus {
    guarded(|| {
        if spec.is_null() {
            return Err(RnncellStatus::NullPointer);
        }
        if !(1..=3).contains(&cell) {
            return Err(RnncellStatus::InvalidArgument);
        }
        // SAFETY: `spec` is non-null and writable (caller).
        unsafe { write_out(spec, RnncellSpec::defaults(cell, input_size, hidden_size)) }
    })
}

/// The library version, e.g. `"0.1.0"` (the `RNNCELL_VERSION` the library
/// was built with; compare it with the header's macro). Static; never free.
#[unsafe(no_mangle)]
pub extern "C" fn rnncell_version() -> *const c_char {
    boundary(|| concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
}

/// The ISA `RNNCELL_ISA_AUTO` selects: the best level of this CPU, lowered
/// by the environment variable `RNNCELL_ISA=scalar|avx2|avx512|neon` if set
/// (read once, at the first call that needs it).
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
unsafe fn utf8<'a>(s: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if s.is_null() {
        return Ok("");
    }
    // SAFETY: a non-null `s` is NUL-terminated and live (caller).
    unsafe { std::ffi::CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| Error::InvalidArgument(format!("{what} is not UTF-8")).into())
}

/// The Rust loader options from the C spec (cell and merge) and options.
///
/// # Safety
/// `opts` NULL or a valid struct whose strings are NULL or NUL-terminated
/// and whose `keras_layers` is NULL or readable for its count.
unsafe fn load_options(
    spec: RnncellSpec,
    opts: *const RnncellSafetensorsOptions,
    isa: Isa,
) -> Result<SafetensorsOptions, Failure> {
    let o = if opts.is_null() {
        RnncellSafetensorsOptions::default()
    } else {
        // SAFETY: non-null and valid (caller).
        unsafe { read_in(opts) }?
    };
    let format = match o.format {
        0 => WeightFormat::PyTorch,
        1 => WeightFormat::Keras,
        v => {
            return Err(Error::InvalidArgument(format!("options.format: {v} is not valid")).into());
        }
    };
    // SAFETY: NULL or NUL-terminated (caller).
    let prefix = unsafe { utf8(o.prefix, "options.prefix") }?;
    if o.keras_layers.is_null() && o.keras_layers_len != 0 {
        return Err(Failure {
            status: RnncellStatus::NullPointer,
            msg: Some("options.keras_layers is NULL".into()),
        });
    }
    check_count::<*const c_char>(o.keras_layers_len)?;
    let mut layers = Vec::new();
    for i in 0..o.keras_layers_len {
        // SAFETY: i < keras_layers_len, readable array (caller), any
        // alignment.
        let p = unsafe { o.keras_layers.add(i).read_unaligned() };
        if p.is_null() {
            return Err(Failure {
                status: RnncellStatus::NullPointer,
                msg: Some(format!("options.keras_layers[{i}] is NULL")),
            });
        }
        // SAFETY: non-null, NUL-terminated (caller).
        layers.push(unsafe { utf8(p, "options.keras_layers entry") }?.to_owned());
    }
    Ok(SafetensorsOptions {
        cell: spec.cell_kind()?,
        format,
        prefix: prefix.to_owned(),
        merge: spec.merge_mode()?,
        keras_layers: layers,
        isa: Some(isa),
    })
}

/// Loads a model from a safetensors file (PyTorch `state_dict` or Keras
/// weights, F32/F16/BF16): layers, directions and every size are read from
/// the tensors. From `spec` only the cell kind, its options (clips, LSTM
/// coupling, RNN activation, GRU form for a Keras GRU without bias) and
/// `merge` are used; sizes, `num_layers` and `direction` are ignored (read
/// them back with `rnncell_model_info` / `rnncell_model_spec`). `opts` may
/// be NULL (PyTorch, whole file). `path` is a NUL-terminated path (bytes on
/// Unix, UTF-8 elsewhere). A malformed file is `RNNCELL_STATUS_FORMAT`, an
/// unreadable one `RNNCELL_STATUS_IO`; `err_msg` then names the tensor or
/// the problem. Ownership, `isa` and `err_msg` as in
/// `rnncell_model_new_pytorch`.
///
/// # Safety
/// `path` NULL or NUL-terminated; `spec`, `opts` NULL or valid (strings
/// NUL-terminated, arrays readable for their counts); `out_model` NULL or
/// writable; `err_msg` NULL or writable for `err_msg_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_load_safetensors(
    path: *const c_char,
    spec: *const RnncellSpec,
    opts: *const RnncellSafetensorsOptions,
    isa: u32,
    out_model: *mut *mut RnncellModel,
    err_msg: *mut c_char,
    err_msg_len: usize,
) -> RnncellStatus {
    let build = |spec: RnncellSpec, isa: Isa| -> Result<Model, Failure> {
        if path.is_null() {
            return Err(Failure {
                status: RnncellStatus::NullPointer,
                msg: Some("path is NULL".into()),
            });
        }
        // SAFETY: non-null and NUL-terminated (caller).
        let bytes = unsafe { std::ffi::CStr::from_ptr(path) }.to_bytes();
        #[cfg(unix)]
        let path = {
            use std::os::unix::ffi::OsStrExt;
            std::path::Path::new(std::ffi::OsStr::from_bytes(bytes))
        };
        #[cfg(not(unix))]
        let path = std::path::Path::new(
            std::str::from_utf8(bytes)
                .map_err(|_| Failure::from(Error::InvalidArgument("path is not UTF-8".into())))?,
        );
        // SAFETY: forwarded (caller).
        let o = unsafe { load_options(spec, opts, isa) }?;
        Ok(Model::from_safetensors(path, &o)?)
    };
    // SAFETY: forwarded pointer contracts (see `# Safety`).
    unsafe { build_model(spec, isa, out_model, err_msg, err_msg_len, build) }
}

/// Loads a model from the bytes of a safetensors file in memory (`bytes`,
/// `len` bytes, any alignment; copied as needed, free it afterwards). As
/// `rnncell_model_load_safetensors` otherwise.
///
/// # Safety
/// `bytes` NULL or readable for `len` bytes; the rest as
/// `rnncell_model_load_safetensors`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_load_safetensors_bytes(
    bytes: *const u8,
    len: usize,
    spec: *const RnncellSpec,
    opts: *const RnncellSafetensorsOptions,
    isa: u32,
    out_model: *mut *mut RnncellModel,
    err_msg: *mut c_char,
    err_msg_len: usize,
) -> RnncellStatus {
    let build = |spec: RnncellSpec, isa: Isa| -> Result<Model, Failure> {
        if bytes.is_null() {
            return Err(Failure {
                status: RnncellStatus::NullPointer,
                msg: Some("bytes is NULL".into()),
            });
        }
        check_count::<u8>(len)?;
        // SAFETY: non-null, readable for len bytes (caller), len <=
        // isize::MAX (checked); u8 has no alignment requirement.
        let data = unsafe { std::slice::from_raw_parts(bytes, len) };
        // SAFETY: forwarded (caller).
        let o = unsafe { load_options(spec, opts, isa) }?;
        Ok(Model::from_safetensors_bytes(data, &o)?)
    };
    // SAFETY: forwarded pointer contracts (see `# Safety`).
    unsafe { build_model(spec, isa, out_model, err_msg, err_msg_len, build) }
}
