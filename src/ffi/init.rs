//! The init functions of the versioned structs: `rnncell_spec_init*`,
//! `rnncell_sequence_init`, `rnncell_safetensors_options_init`,
//! `rnncell_onnx_options_init`, `rnncell_model_info_init`,
//! `rnncell_onnx_node_info_init` (see `versioned.rs` for the rule).

use super::{
    RnncellModelInfo, RnncellOnnxNodeInfo, RnncellOnnxOptions, RnncellSafetensorsOptions,
    RnncellSequence, RnncellSpec, RnncellStatus, fail, guarded, versioned,
};
use crate::cell::spec::Framework;

/// Fills `*spec` with the defaults for `cell` (an `RnncellCell`) with the
/// given sizes: one forward layer, concat merge, no clipping, no LSTM
/// peepholes, projection or coupling, tanh RNN, f32 weights
/// (`weight_precision` 0), and `gru_linear_before_reset` =
/// `RNNCELL_FRAMEWORK_DEFAULT`: the GRU form of the framework whose builder
/// reads the spec (reset-before for `rnncell_model_new_onnx`,
/// linear-before-reset for PyTorch and Keras), standard activations
/// (`activations` all 0). Sizes are checked when a model is built, not
/// here.
///
/// `struct_size` is `sizeof(RnncellSpec)` as the caller's header declares
/// it (pass `sizeof *spec`): the library writes the fields it knows (at
/// most `struct_size` bytes), zeros past them (the default of every field a
/// newer header appends) and `spec->struct_size = struct_size`. Less than
/// the 0.5 size, or more than 4096, is `RNNCELL_STATUS_INVALID_ARGUMENT`
/// (nothing is written).
///
/// # Safety
/// `spec` NULL or writable for `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_spec_init(
    spec: *mut RnncellSpec,
    struct_size: usize,
    cell: u32,
    input_size: usize,
    hidden_size: usize,
) -> RnncellStatus {
    // SAFETY: forwarded (caller).
    unsafe {
        spec_init(
            "rnncell_spec_init",
            spec,
            struct_size,
            cell,
            input_size,
            hidden_size,
            None,
        )
    }
}

/// As `rnncell_spec_init`, with PyTorch's defaults written out: a GRU is
/// linear-before-reset (`gru_linear_before_reset` = 1, PyTorch's only form).
///
/// # Safety
/// `spec` NULL or writable for `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_spec_init_pytorch(
    spec: *mut RnncellSpec,
    struct_size: usize,
    cell: u32,
    input_size: usize,
    hidden_size: usize,
) -> RnncellStatus {
    // SAFETY: forwarded (caller).
    unsafe {
        spec_init(
            "rnncell_spec_init_pytorch",
            spec,
            struct_size,
            cell,
            input_size,
            hidden_size,
            Some(Framework::PyTorch),
        )
    }
}

/// As `rnncell_spec_init`, with ONNX's defaults written out: a GRU is
/// reset-before (`gru_linear_before_reset` = 0, as ONNX's
/// `linear_before_reset` defaults to 0; set it to 1 for a node with
/// `linear_before_reset=1`, as PyTorch's exporter writes).
///
/// # Safety
/// `spec` NULL or writable for `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_spec_init_onnx(
    spec: *mut RnncellSpec,
    struct_size: usize,
    cell: u32,
    input_size: usize,
    hidden_size: usize,
) -> RnncellStatus {
    // SAFETY: forwarded (caller).
    unsafe {
        spec_init(
            "rnncell_spec_init_onnx",
            spec,
            struct_size,
            cell,
            input_size,
            hidden_size,
            Some(Framework::Onnx),
        )
    }
}

/// As `rnncell_spec_init`, with Keras's defaults written out: a GRU is
/// linear-before-reset (`gru_linear_before_reset` = 1: Keras 3 and tf.keras
/// 2 default to `reset_after=True`; set 0 for `reset_after=False`).
///
/// # Safety
/// `spec` NULL or writable for `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_spec_init_keras(
    spec: *mut RnncellSpec,
    struct_size: usize,
    cell: u32,
    input_size: usize,
    hidden_size: usize,
) -> RnncellStatus {
    // SAFETY: forwarded (caller).
    unsafe {
        spec_init(
            "rnncell_spec_init_keras",
            spec,
            struct_size,
            cell,
            input_size,
            hidden_size,
            Some(Framework::Keras),
        )
    }
}

/// The body of every `rnncell_spec_init*`.
///
/// # Safety
/// `spec` NULL or writable for `struct_size` bytes.
unsafe fn spec_init(
    name: &str,
    spec: *mut RnncellSpec,
    struct_size: usize,
    cell: u32,
    input_size: usize,
    hidden_size: usize,
    framework: Option<Framework>,
) -> RnncellStatus {
    guarded(name, || {
        if spec.is_null() {
            return Err(fail(
                RnncellStatus::NullPointer,
                format_args!("spec is NULL"),
            ));
        }
        if !(1..=3).contains(&cell) {
            return Err(fail(
                RnncellStatus::InvalidArgument,
                format_args!("cell: {cell} is not an RnncellCell (1 LSTM, 2 GRU, 3 RNN)"),
            ));
        }
        let s = RnncellSpec::defaults(cell, input_size, hidden_size, framework);
        // SAFETY: `spec` is null or writable for struct_size bytes (caller).
        unsafe { versioned::init(spec, struct_size, s, "spec") }
    })
}

/// Fills `*seq` with the defaults of a sequence (every field 0 or NULL:
/// no input yet, native layout, full lengths, zero initial state) and
/// `seq->struct_size = struct_size`. `struct_size` is
/// `sizeof(RnncellSequence)` of the caller's header (pass `sizeof *seq`);
/// as `rnncell_spec_init` for the rule.
///
/// # Safety
/// `seq` NULL or writable for `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_sequence_init(
    seq: *mut RnncellSequence,
    struct_size: usize,
) -> RnncellStatus {
    guarded("rnncell_sequence_init", || {
        // SAFETY: null or writable for struct_size bytes (caller).
        unsafe { versioned::init(seq, struct_size, RnncellSequence::default(), "seq") }
    })
}

/// Fills `*opts` with the defaults of safetensors options (PyTorch, whole
/// file, every layer) and `opts->struct_size = struct_size`
/// (`sizeof *opts`; as `rnncell_spec_init` for the rule).
///
/// # Safety
/// `opts` NULL or writable for `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_safetensors_options_init(
    opts: *mut RnncellSafetensorsOptions,
    struct_size: usize,
) -> RnncellStatus {
    guarded("rnncell_safetensors_options_init", || {
        let v = RnncellSafetensorsOptions::default();
        // SAFETY: null or writable for struct_size bytes (caller).
        unsafe { versioned::init(opts, struct_size, v, "opts") }
    })
}

/// Fills `*opts` with the defaults of ONNX options (the file's one chain,
/// f32 weights) and `opts->struct_size = struct_size` (`sizeof *opts`; as
/// `rnncell_spec_init` for the rule).
///
/// # Safety
/// `opts` NULL or writable for `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_onnx_options_init(
    opts: *mut RnncellOnnxOptions,
    struct_size: usize,
) -> RnncellStatus {
    guarded("rnncell_onnx_options_init", || {
        let v = RnncellOnnxOptions::default();
        // SAFETY: null or writable for struct_size bytes (caller).
        unsafe { versioned::init(opts, struct_size, v, "opts") }
    })
}

/// Zeros `*info` and sets `info->struct_size = struct_size` (`sizeof
/// *info`), ready for `rnncell_model_info` (the same as
/// `RnncellModelInfo info = {.struct_size = sizeof info};`).
///
/// # Safety
/// `info` NULL or writable for `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_info_init(
    info: *mut RnncellModelInfo,
    struct_size: usize,
) -> RnncellStatus {
    guarded("rnncell_model_info_init", || {
        let v = RnncellModelInfo::default();
        // SAFETY: null or writable for struct_size bytes (caller).
        unsafe { versioned::init(info, struct_size, v, "info") }
    })
}

/// Zeros `*info` and sets `info->struct_size = struct_size` (`sizeof
/// *info`), ready for `rnncell_onnx_node_info`.
///
/// # Safety
/// `info` NULL or writable for `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_onnx_node_info_init(
    info: *mut RnncellOnnxNodeInfo,
    struct_size: usize,
) -> RnncellStatus {
    guarded("rnncell_onnx_node_info_init", || {
        let v = RnncellOnnxNodeInfo::default();
        // SAFETY: null or writable for struct_size bytes (caller).
        unsafe { versioned::init(info, struct_size, v, "info") }
    })
}
