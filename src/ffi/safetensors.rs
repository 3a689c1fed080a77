//! The safetensors loaders from C: `rnncell_model_load_safetensors` and
//! `_bytes` (same conventions as the builders in `model.rs`: status,
//! `err_msg`, `*out_model` NULL on failure).

use std::ffi::c_char;

use super::marshal::{Unaligned, unaligned_slice};
use super::model::{Failure, RnncellModel, build_model, utf8};
use super::{RnncellSafetensorsOptions, RnncellSpec, RnncellStatus, check_count, versioned};
use crate::cell::model::Model;
use crate::cell::spec::Framework;
use crate::error::Error;
use crate::isa::Isa;
use crate::loader::{SafetensorsOptions, WeightFormat};

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
        // SAFETY: non-null and valid for its struct_size (caller).
        unsafe { versioned::read(opts, "options") }?
    };
    let (format, framework) = match o.format {
        0 => (WeightFormat::PyTorch, Framework::PyTorch),
        1 => (WeightFormat::Keras, Framework::Keras),
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
    let entries = if o.keras_layers.is_null() {
        &[]
    } else {
        // SAFETY: non-null and readable for keras_layers_len pointers
        // (caller), count checked, any alignment.
        unsafe { unaligned_slice(o.keras_layers, o.keras_layers_len) }
    };
    let mut layers = Vec::new();
    layers
        .try_reserve_exact(entries.len())
        .map_err(|_| RnncellStatus::Allocation)?;
    for (i, p) in entries.iter().map(Unaligned::get).enumerate() {
        if p.is_null() {
            return Err(Failure::new(
                RnncellStatus::NullPointer,
                format!("options.keras_layers[{i}] is NULL"),
            ));
        }
        // SAFETY: non-null, NUL-terminated (caller).
        layers.push(unsafe { utf8(p, "options.keras_layers entry") }?.to_owned());
    }
    let cell = spec.cell_kind(framework)?;
    // The file decides the directions: a backward set is validated then.
    let activations = spec.model_activations(&cell, None)?;
    Ok(SafetensorsOptions {
        cell,
        format,
        prefix: prefix.to_owned(),
        merge: spec.merge_mode()?,
        keras_layers: layers,
        isa: Some(isa),
        precision: spec.load_precision()?,
        activations,
    })
}

/// Loads a model from a safetensors file (PyTorch `state_dict` or Keras
/// weights, F32/F16/BF16): layers, directions and every size are read from
/// the tensors. From `spec` only the cell kind, its options (clips, LSTM
/// coupling, RNN activation, GRU form for a Keras GRU without bias),
/// `merge` and `weight_precision` are used (`RNNCELL_WEIGHT_PRECISION_STORED`
/// keeps the precision the file stores its weight matrices in; a file that
/// mixes F32, F16 and BF16 weight matrices is then `RNNCELL_STATUS_FORMAT`;
/// biases may have any of the three dtypes and are always widened); sizes, `num_layers` and `direction` are ignored (read
/// them back with `rnncell_model_info` / `rnncell_model_spec`). `opts` may
/// be NULL (PyTorch, whole file). `path` is a NUL-terminated path (bytes on
/// Unix, UTF-8 elsewhere). A malformed file is `RNNCELL_STATUS_FORMAT`, an
/// unreadable one `RNNCELL_STATUS_IO`; `err_msg` then names the tensor or
/// the problem. Only a regular file is read (symbolic links are followed):
/// a directory, FIFO, device or socket is `RNNCELL_STATUS_IO` (the message
/// names the path and its kind), and a FIFO does not block. The header
/// length is capped at 100 MB before anything else is read, and at most the
/// data the header declares is read. Ownership, `isa` and `err_msg` as in
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
    unsafe {
        build_model(
            "rnncell_model_load_safetensors",
            spec,
            isa,
            out_model,
            err_msg,
            err_msg_len,
            build,
        )
    }
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
    unsafe {
        build_model(
            "rnncell_model_load_safetensors_bytes",
            spec,
            isa,
            out_model,
            err_msg,
            err_msg_len,
            build,
        )
    }
}
