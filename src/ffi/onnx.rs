//! ONNX model files from C: `rnncell_model_load_onnx[_bytes]` (beside the
//! safetensors loaders in `model.rs`, same conventions: status, `err_msg`,
//! `*out_model` NULL on failure) and `rnncell_onnx_node_count` /
//! `rnncell_onnx_node_info` to list a file's recurrent nodes.

use std::ffi::c_char;
use std::ptr;

use super::marshal::{Regions, unaligned_slice};
use super::model::{Failure, RnncellModel, build_with, report, resolve_isa, utf8};
use super::{
    RnncellCell, RnncellDirection, RnncellStatus, RnncellWeightPrecision, boundary, check_count,
    versioned, write_msg,
};
use crate::cell::model::Model;
use crate::cell::spec::{Direction, WeightPrecision};
use crate::error::Error;
use crate::isa::Isa;
use crate::loader::{OnnxNodeInfo, OnnxOptions, onnx_nodes};

/// Options of `rnncell_model_load_onnx`. All zero / NULL but `struct_size`
/// (or a NULL pointer to it) is: the file's one chain of recurrent nodes,
/// f32 weights. Versioned: fill it with `rnncell_onnx_options_init` (or set
/// `struct_size` to `sizeof(RnncellOnnxOptions)`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnncellOnnxOptions {
    /// `sizeof(RnncellOnnxOptions)`.
    pub struct_size: usize,
    /// An `RnncellWeightPrecision` (0: f32). `RNNCELL_WEIGHT_PRECISION_STORED`
    /// keeps the file's type of W and R (float16, bfloat16, float32).
    pub weight_precision: u32,
    /// The nodes to load, first layer first, as NUL-terminated UTF-8 names
    /// (a node's name, `OP#i` for an unnamed node, or the qualified name
    /// `rnncell_onnx_node_info` returns). One node, or nodes that chain
    /// (each one's `Y` is the next one's `X`), loaded as one stacked model.
    /// NULL with 0: the model's recurrent nodes if they form exactly one
    /// chain (otherwise `RNNCELL_STATUS_INVALID_ARGUMENT`, `err_msg` lists
    /// them).
    pub nodes: *const *const c_char,
    /// Entries of `nodes`.
    pub nodes_len: usize,
}

const _: () = assert!(
    std::mem::offset_of!(RnncellOnnxOptions, nodes_len) + std::mem::size_of::<usize>()
        == std::mem::size_of::<RnncellOnnxOptions>()
);

impl Default for RnncellOnnxOptions {
    fn default() -> RnncellOnnxOptions {
        RnncellOnnxOptions {
            struct_size: std::mem::size_of::<RnncellOnnxOptions>(),
            nodes: ptr::null(),
            nodes_len: 0,
            weight_precision: RnncellWeightPrecision::F32 as u32,
        }
    }
}

/// One recurrent node of an ONNX file (`rnncell_onnx_node_info`). Versioned
/// output: set `struct_size` to `sizeof(RnncellOnnxNodeInfo)` before the
/// call (`RnncellOnnxNodeInfo info = {.struct_size = sizeof info};`); fields past it are
/// not written.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnncellOnnxNodeInfo {
    /// `sizeof(RnncellOnnxNodeInfo)`, set by the caller.
    pub struct_size: usize,
    /// An `RnncellCell`: LSTM, GRU or RNN.
    pub cell: u32,
    /// An `RnncellDirection` (its `direction` attribute).
    pub direction: u32,
    /// Its `layout` attribute, 0 or 1 (changes only ONNX's tensor layouts
    /// around the node, not the model).
    pub layout: u32,
    /// 1 if it has a bias B.
    pub has_bias: u32,
    /// 1 if it has peepholes P (LSTM).
    pub has_peephole: u32,
    /// 1 if `rnncell_model_load_onnx` can load it (0: that call's `err_msg`
    /// says why).
    pub loadable: u32,
    /// Its hidden size (0 if unknown).
    pub hidden_size: usize,
    /// Its input size (0 if its W cannot be read).
    pub input_size: usize,
    /// Bytes of its qualified name including the terminating NUL: the
    /// `name_len` that holds it whole.
    pub name_size: usize,
    /// The index of the first recurrent node whose `X` is this node's `Y`
    /// (through Squeeze, Reshape, Transpose only), or `SIZE_MAX` if none:
    /// the next layer of a chain.
    pub next_index: usize,
}

const _: () = assert!(
    std::mem::offset_of!(RnncellOnnxNodeInfo, next_index) + std::mem::size_of::<usize>()
        == std::mem::size_of::<RnncellOnnxNodeInfo>()
);

impl Default for RnncellOnnxNodeInfo {
    fn default() -> RnncellOnnxNodeInfo {
        RnncellOnnxNodeInfo {
            struct_size: std::mem::size_of::<RnncellOnnxNodeInfo>(),
            cell: 0,
            direction: 0,
            layout: 0,
            has_bias: 0,
            has_peephole: 0,
            loadable: 0,
            hidden_size: 0,
            input_size: 0,
            name_size: 0,
            next_index: 0,
        }
    }
}

/// The precision a C value names.
fn precision(v: u32) -> Result<Option<WeightPrecision>, Failure> {
    const F32: u32 = RnncellWeightPrecision::F32 as u32;
    const F16: u32 = RnncellWeightPrecision::F16 as u32;
    const BF16: u32 = RnncellWeightPrecision::Bf16 as u32;
    const I8W: u32 = RnncellWeightPrecision::I8w as u32;
    const I8: u32 = RnncellWeightPrecision::I8 as u32;
    const STORED: u32 = RnncellWeightPrecision::Stored as u32;
    Ok(Some(match v {
        F32 => WeightPrecision::F32,
        F16 => WeightPrecision::F16,
        BF16 => WeightPrecision::Bf16,
        I8W => WeightPrecision::Int8Weights,
        I8 => WeightPrecision::Int8,
        STORED => return Ok(None),
        v => {
            return Err(Error::InvalidArgument(format!(
                "options.weight_precision: {v} is not an RnncellWeightPrecision value"
            ))
            .into());
        }
    }))
}

/// The Rust options from the C ones.
///
/// # Safety
/// `opts` NULL or valid, its `nodes` NULL or readable for `nodes_len`
/// NUL-terminated strings.
unsafe fn options(opts: *const RnncellOnnxOptions, isa: Isa) -> Result<OnnxOptions, Failure> {
    let o = if opts.is_null() {
        RnncellOnnxOptions::default()
    } else {
        // SAFETY: non-null and valid for its struct_size (caller).
        unsafe { versioned::read(opts, "options") }?
    };
    let mut names = Vec::new();
    if o.nodes_len > 0 {
        if o.nodes.is_null() {
            return Err(Failure::new(
                RnncellStatus::NullPointer,
                format!(
                    "options.nodes is NULL but options.nodes_len is {}",
                    o.nodes_len
                ),
            ));
        }
        check_count::<*const c_char>(o.nodes_len)?;
        names
            .try_reserve_exact(o.nodes_len)
            .map_err(|_| RnncellStatus::Allocation)?;
        // SAFETY: non-null, readable for nodes_len pointers (caller), count checked.
        let entries = unsafe { unaligned_slice(o.nodes, o.nodes_len) };
        for (i, p) in entries.iter().map(|e| e.get()).enumerate() {
            if p.is_null() {
                return Err(Failure::new(
                    RnncellStatus::NullPointer,
                    format!("options.nodes[{i}] is NULL"),
                ));
            }
            // SAFETY: non-null, NUL-terminated (caller).
            names.push(unsafe { utf8(p, "options.nodes entry") }?.to_owned());
        }
    }
    Ok(OnnxOptions {
        nodes: names,
        isa: Some(isa),
        precision: precision(o.weight_precision)?,
    })
}

/// The path argument as a `Path`.
///
/// # Safety
/// `path` null or NUL-terminated.
unsafe fn path_arg<'a>(path: *const c_char) -> Result<&'a std::path::Path, Failure> {
    if path.is_null() {
        return Err(Failure::new(RnncellStatus::NullPointer, "path is NULL"));
    }
    // SAFETY: non-null and NUL-terminated (caller).
    let bytes = unsafe { std::ffi::CStr::from_ptr(path) }.to_bytes();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(std::path::Path::new(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        Ok(std::path::Path::new(std::str::from_utf8(bytes).map_err(
            |_| Failure::from(Error::InvalidArgument("path is not UTF-8".into())),
        )?))
    }
}

/// The bytes argument as a slice.
///
/// # Safety
/// `bytes` null or readable for `len` bytes, unchanged during 'a.
unsafe fn bytes_arg<'a>(bytes: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    if bytes.is_null() {
        return Err(Failure::new(RnncellStatus::NullPointer, "bytes is NULL"));
    }
    check_count::<u8>(len)?;
    // SAFETY: non-null, readable for len bytes (caller), len <= isize::MAX
    // (checked); u8 has no alignment requirement.
    Ok(unsafe { std::slice::from_raw_parts(bytes, len) })
}

/// Loads the recurrent nodes (`LSTM`, `GRU`, `RNN`, also inside `If`/`Loop`/
/// `Scan` subgraphs) of an ONNX model file: the cell, direction, sizes,
/// clip, `linear_before_reset`, `input_forget` and activations come from the
/// node's attributes, W/R/B/P from its initializers or constant chains in
/// front of them (float32, float16, bfloat16). `opts` may be NULL (the
/// file's one chain, f32). A malformed file, external or sparse weights, a
/// weight computed from runtime data are `RNNCELL_STATUS_FORMAT`; an
/// activation rnncell does not implement is `RNNCELL_STATUS_UNSUPPORTED`; a
/// selection naming no node, nodes that do not chain, or no selection when
/// the file has several chains are `RNNCELL_STATUS_INVALID_ARGUMENT`;
/// `err_msg` names the node and tensor. Only a regular file is read
/// (`RNNCELL_STATUS_IO` otherwise; a FIFO does not block), of at most
/// 2147483647 bytes (protobuf's limit; `RNNCELL_STATUS_FORMAT` beyond).
/// Ownership, `isa` and `err_msg` as in `rnncell_model_new_pytorch`.
///
/// # Safety
/// `path` NULL or NUL-terminated; `opts` NULL or valid (its names
/// NUL-terminated, `nodes` readable for `nodes_len` pointers); `out_model`
/// NULL or writable; `err_msg` NULL or writable for `err_msg_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_load_onnx(
    path: *const c_char,
    opts: *const RnncellOnnxOptions,
    isa: u32,
    out_model: *mut *mut RnncellModel,
    err_msg: *mut c_char,
    err_msg_len: usize,
) -> RnncellStatus {
    let build = || -> Result<Model, Failure> {
        let isa = resolve_isa(isa)?;
        // SAFETY: forwarded (caller).
        let path = unsafe { path_arg(path) }?;
        // SAFETY: forwarded (caller).
        let o = unsafe { options(opts, isa) }?;
        Ok(Model::from_onnx_file(path, &o)?)
    };
    // SAFETY: forwarded pointer contracts (see `# Safety`).
    unsafe {
        build_with(
            "rnncell_model_load_onnx",
            out_model,
            err_msg,
            err_msg_len,
            build,
        )
    }
}

/// Loads from the bytes of an ONNX file in memory (`bytes`, `len` bytes,
/// not retained). As `rnncell_model_load_onnx` otherwise.
///
/// # Safety
/// `bytes` NULL or readable for `len` bytes; the rest as
/// `rnncell_model_load_onnx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_model_load_onnx_bytes(
    bytes: *const u8,
    len: usize,
    opts: *const RnncellOnnxOptions,
    isa: u32,
    out_model: *mut *mut RnncellModel,
    err_msg: *mut c_char,
    err_msg_len: usize,
) -> RnncellStatus {
    let build = || -> Result<Model, Failure> {
        let isa = resolve_isa(isa)?;
        // SAFETY: forwarded (caller).
        let data = unsafe { bytes_arg(bytes, len) }?;
        // SAFETY: forwarded (caller).
        let o = unsafe { options(opts, isa) }?;
        Ok(Model::from_onnx_bytes(data, &o)?)
    };
    // SAFETY: forwarded pointer contracts (see `# Safety`).
    unsafe {
        build_with(
            "rnncell_model_load_onnx_bytes",
            out_model,
            err_msg,
            err_msg_len,
            build,
        )
    }
}

/// Writes a failure's message (or "") and returns its status.
///
/// # Safety
/// `msg` null or writable for `msg_len` bytes.
unsafe fn finish(
    name: &str,
    r: Result<(), Failure>,
    msg: *mut c_char,
    msg_len: usize,
) -> RnncellStatus {
    let (status, text) = match r {
        Ok(()) => (RnncellStatus::Ok, String::new()),
        Err(f) => (f.status, f.msg.unwrap_or_default()),
    };
    // SAFETY: forwarded (caller).
    unsafe { write_msg(msg, msg_len, &text) };
    report(name, status, &text);
    status
}

impl super::OnPanic for Result<(), Failure> {
    fn on_panic() -> Self {
        Err(Failure::new(
            RnncellStatus::Panic,
            "internal panic caught (a bug in rnncell)",
        ))
    }
}

/// Counts the recurrent nodes (`LSTM`, `GRU`, `RNN`, subgraphs included) of
/// the ONNX file in `bytes` (`len` bytes) into `*out_count`. A file that
/// cannot be decoded is `RNNCELL_STATUS_FORMAT` (`err_msg` says why).
///
/// # Safety
/// `bytes` NULL or readable for `len` bytes; `out_count` NULL or writable;
/// `err_msg` NULL or writable for `err_msg_len` bytes, disjoint from
/// `*out_count`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnncell_onnx_node_count(
    bytes: *const u8,
    len: usize,
    out_count: *mut usize,
    err_msg: *mut c_char,
    err_msg_len: usize,
) -> RnncellStatus {
    let mut outs = Regions::<2>::new();
    let regions = outs
        .write(out_count, 1)
        .and_then(|_| outs.write(err_msg, err_msg_len))
        .and_then(|_| outs.check_writes());
    if let Err(s) = regions {
        report("rnncell_onnx_node_count", s, "");
        return s;
    }
    let r = boundary(|| -> Result<(), Failure> {
        if out_count.is_null() {
            return Err(Failure::new(
                RnncellStatus::NullPointer,
                "out_count is NULL",
            ));
        }
        // SAFETY: forwarded (caller).
        let data = unsafe { bytes_arg(bytes, len) }?;
        let n = onnx_nodes(data)?.len();
        // SAFETY: non-null (checked), writable (caller).
        unsafe { out_count.write_unaligned(n) };
        Ok(())
    });
    // SAFETY: forwarded (caller).
    unsafe { finish("rnncell_onnx_node_count", r, err_msg, err_msg_len) }
}

/// Describes recurrent node `index` (in the order `rnncell_onnx_node_count`
/// counts: graphs in file order, subgraphs after, nodes in graph order) of
/// the ONNX file in `bytes`: `*out_info`, and its qualified name (the name
/// that selects it in `RnncellOnnxOptions.nodes`) copied into `name`
/// (`name_len` bytes, NUL-terminated, truncated at a character boundary if
/// short: `out_info->name_size` is the size that holds it whole; `name`
/// may be NULL with 0). Each call decodes the file again (about as long as
/// loading the weights). `index` past the count is
/// `RNNCELL_STATUS_INVALID_ARGUMENT`; an undecodable file
/// `RNNCELL_STATUS_FORMAT`. `out_info->struct_size` must be set before the
/// call (versioned output: at most that many bytes are written).
///
/// # Safety
/// `bytes` NULL or readable for `len` bytes; `out_info` NULL or readable
/// and writable for its `struct_size` (set it first); `name` NULL or writable for `name_len` bytes; `err_msg` NULL or writable
/// for `err_msg_len` bytes; the three outputs disjoint.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rnncell_onnx_node_info(
    bytes: *const u8,
    len: usize,
    index: usize,
    out_info: *mut RnncellOnnxNodeInfo,
    name: *mut c_char,
    name_len: usize,
    err_msg: *mut c_char,
    err_msg_len: usize,
) -> RnncellStatus {
    let mut outs = Regions::<3>::new();
    let regions = outs
        .write(out_info, 1)
        .and_then(|_| outs.write(name, name_len))
        .and_then(|_| outs.write(err_msg, err_msg_len))
        .and_then(|_| outs.check_writes());
    if let Err(s) = regions {
        report("rnncell_onnx_node_info", s, "");
        return s;
    }
    let r = boundary(|| -> Result<(), Failure> {
        if out_info.is_null() {
            return Err(Failure::new(RnncellStatus::NullPointer, "out_info is NULL"));
        }
        if name.is_null() && name_len > 0 {
            return Err(Failure::new(
                RnncellStatus::NullPointer,
                format!("name is NULL but name_len is {name_len}"),
            ));
        }
        // SAFETY: forwarded (caller).
        let data = unsafe { bytes_arg(bytes, len) }?;
        let nodes = onnx_nodes(data)?;
        let Some(n) = nodes.get(index) else {
            return Err(Error::InvalidArgument(format!(
                "index {index}: the file has {} recurrent nodes",
                nodes.len()
            ))
            .into());
        };
        let info = c_info(n, &nodes);
        let q = n.qualified_name();
        // SAFETY: non-null (checked), readable and writable for its
        // struct_size (caller); `name` null or writable for name_len bytes
        // (caller), disjoint (checked).
        unsafe {
            versioned::write(out_info, info, "out_info")?;
            write_msg(name, name_len, &q);
        }
        Ok(())
    });
    // SAFETY: forwarded (caller).
    unsafe { finish("rnncell_onnx_node_info", r, err_msg, err_msg_len) }
}

fn c_info(n: &OnnxNodeInfo, all: &[OnnxNodeInfo]) -> RnncellOnnxNodeInfo {
    let cell = match n.op_type.as_str() {
        "LSTM" => RnncellCell::Lstm,
        "GRU" => RnncellCell::Gru,
        _ => RnncellCell::Rnn,
    };
    let direction = match n.direction {
        Direction::Forward => RnncellDirection::Forward,
        Direction::Reverse => RnncellDirection::Reverse,
        Direction::Bidirectional => RnncellDirection::Bidirectional,
    };
    let next_index = n
        .next
        .first()
        .and_then(|nx| all.iter().position(|m| m.graph == n.graph && m.name == *nx))
        .unwrap_or(usize::MAX);
    RnncellOnnxNodeInfo {
        struct_size: std::mem::size_of::<RnncellOnnxNodeInfo>(),
        cell: cell as u32,
        direction: direction as u32,
        layout: n.layout,
        has_bias: u32::from(n.has_bias),
        has_peephole: u32::from(n.has_peephole),
        loadable: u32::from(n.error.is_none()),
        hidden_size: n.hidden_size,
        input_size: n.input_size,
        name_size: n.qualified_name().len() + 1,
        next_index,
    }
}
