//! The subset of `onnx.proto` (ONNX 1.23, proto2 syntax) the loader reads,
//! declared by hand for prost: field numbers exactly as in `onnx/onnx.proto`
//! (<https://github.com/onnx/onnx/blob/main/onnx/onnx.proto>). Fields not
//! declared here (doc strings, value infos, type protos, training info,
//! functions, metadata, …) are skipped by the decoder without being stored.
//!
//! Self-contained (only `prost`): `tests/onnx.rs` includes this file to decode
//! the backend tests' `TensorProto` files.

#![allow(dead_code)]

/// `ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `OperatorSetIdProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

/// `GraphProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "15")]
    pub sparse_initializer: Vec<SparseTensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `ValueInfoProto`: only the name (the type is skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
}

/// `NodeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub domain: Option<String>,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `AttributeProto.AttributeType`.
pub mod attribute_type {
    pub(crate) const FLOAT: i32 = 1;
    pub(crate) const INT: i32 = 2;
    pub(crate) const STRING: i32 = 3;
    pub(crate) const TENSOR: i32 = 4;
    pub(crate) const GRAPH: i32 = 5;
    pub(crate) const FLOATS: i32 = 6;
    pub(crate) const INTS: i32 = 7;
    pub(crate) const STRINGS: i32 = 8;
    pub(crate) const TENSORS: i32 = 9;
    pub(crate) const GRAPHS: i32 = 10;
    pub(crate) const SPARSE_TENSOR: i32 = 11;
}

/// `AttributeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Set when the attribute refers to an attribute of an enclosing
    /// function (only valid inside a FunctionProto).
    #[prost(string, optional, tag = "21")]
    pub ref_attr_name: Option<String>,
    #[prost(int32, optional, tag = "20")]
    pub r#type: Option<i32>,
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(message, optional, boxed, tag = "6")]
    pub g: Option<Box<GraphProto>>,
    #[prost(message, optional, tag = "22")]
    pub sparse_tensor: Option<SparseTensorProto>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub graphs: Vec<GraphProto>,
}

/// `TensorProto.DataType`.
pub mod data_type {
    pub(crate) const FLOAT: i32 = 1;
    pub(crate) const UINT8: i32 = 2;
    pub(crate) const INT8: i32 = 3;
    pub(crate) const UINT16: i32 = 4;
    pub(crate) const INT16: i32 = 5;
    pub(crate) const INT32: i32 = 6;
    pub(crate) const INT64: i32 = 7;
    pub(crate) const STRING: i32 = 8;
    pub(crate) const BOOL: i32 = 9;
    pub(crate) const FLOAT16: i32 = 10;
    pub(crate) const DOUBLE: i32 = 11;
    pub(crate) const UINT32: i32 = 12;
    pub(crate) const UINT64: i32 = 13;
    pub(crate) const BFLOAT16: i32 = 16;
}

/// `TensorProto.DataLocation::EXTERNAL`.
pub(crate) const DATA_LOCATION_EXTERNAL: i32 = 1;

/// `TensorProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    /// Present only in tensors split into segments (not supported).
    #[prost(message, optional, tag = "3")]
    pub segment: Option<Segment>,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16 (the
    /// 16-bit floats as their bit patterns).
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    #[prost(int32, optional, tag = "14")]
    pub data_location: Option<i32>,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
}

/// `TensorProto.Segment`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Segment {
    #[prost(int64, optional, tag = "1")]
    pub begin: Option<i64>,
    #[prost(int64, optional, tag = "2")]
    pub end: Option<i64>,
}

/// `StringStringEntryProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `SparseTensorProto`: only what names it (its values' name) and its
/// shape; the indices are skipped.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SparseTensorProto {
    #[prost(message, optional, tag = "1")]
    pub values: Option<TensorProto>,
    #[prost(int64, repeated, tag = "3")]
    pub dims: Vec<i64>,
}

/// The messages above, for [`decoded_size`].
#[derive(Clone, Copy)]
enum Kind {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
    Sparse,
    ValueInfo,
    OpSet,
    Entry,
    Segment,
}

impl Kind {
    fn size(self) -> usize {
        use std::mem::size_of;
        match self {
            Kind::Model => size_of::<ModelProto>(),
            Kind::Graph => size_of::<GraphProto>(),
            Kind::Node => size_of::<NodeProto>(),
            Kind::Attribute => size_of::<AttributeProto>(),
            Kind::Tensor => size_of::<TensorProto>(),
            Kind::Sparse => size_of::<SparseTensorProto>(),
            Kind::ValueInfo => size_of::<ValueInfoProto>(),
            Kind::OpSet => size_of::<OperatorSetIdProto>(),
            Kind::Entry => size_of::<StringStringEntryProto>(),
            Kind::Segment => size_of::<Segment>(),
        }
    }

    /// The message a length-delimited field holds, if it is one declared
    /// here.
    fn sub(self, tag: u32) -> Option<Kind> {
        Some(match (self, tag) {
            (Kind::Model, 7) => Kind::Graph,
            (Kind::Model, 8) => Kind::OpSet,
            (Kind::Graph, 1) => Kind::Node,
            (Kind::Graph, 5) => Kind::Tensor,
            (Kind::Graph, 15) => Kind::Sparse,
            (Kind::Graph, 11 | 12) => Kind::ValueInfo,
            (Kind::Node, 5) => Kind::Attribute,
            (Kind::Attribute, 5 | 10) => Kind::Tensor,
            (Kind::Attribute, 6 | 11) => Kind::Graph,
            (Kind::Attribute, 22) => Kind::Sparse,
            (Kind::Tensor, 3) => Kind::Segment,
            (Kind::Tensor, 13) => Kind::Entry,
            (Kind::Sparse, 1) => Kind::Tensor,
            _ => return None,
        })
    }

    /// Whether a length-delimited field is a packed list of varints (each
    /// at least one byte, decoded to at most eight).
    fn packed_varints(self, tag: u32) -> bool {
        matches!(
            (self, tag),
            (Kind::Tensor, 1 | 5 | 7 | 11) | (Kind::Attribute, 8) | (Kind::Sparse, 3)
        )
    }
}

/// An upper bound on the memory prost allocates to decode `bytes` as a
/// [`ModelProto`], from one pass over the wire format (prost's own
/// `decode_key` / `decode_varint`; nothing is stored): every declared
/// message counts twice its size (a `Vec` grows to at most twice its
/// length), every string or bytes field its length plus 24, every packed
/// list of varints 8 bytes per input byte, every unpacked repeated scalar 8
/// bytes. A file with many empty messages (2 bytes each in the file, a few
/// hundred bytes each decoded) is the case this bounds. `Err` (prost's
/// message) if the wire format is broken (prost's decoder would reject it
/// too) or nested deeper than prost's limit of 100.
pub(crate) fn decoded_size(bytes: &[u8]) -> Result<usize, String> {
    fn scan(mut buf: &[u8], kind: Kind, depth: u32) -> Result<usize, String> {
        use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
        if depth > 100 {
            return Err("recursion limit reached".into());
        }
        let mut total = 0usize;
        while !buf.is_empty() {
            let (tag, wire) = decode_key(&mut buf).map_err(|e| e.to_string())?;
            let cost = match wire {
                WireType::LengthDelimited => {
                    let len = decode_varint(&mut buf).map_err(|e| e.to_string())?;
                    let len = usize::try_from(len)
                        .ok()
                        .filter(|&l| l <= buf.len())
                        .ok_or("buffer underflow")?;
                    let (field, rest) = buf.split_at(len);
                    buf = rest;
                    match kind.sub(tag) {
                        Some(k) => scan(field, k, depth + 1)?.saturating_add(2 * k.size()),
                        None if kind.packed_varints(tag) => len.saturating_mul(8),
                        None => len.saturating_add(24),
                    }
                }
                WireType::Varint => {
                    decode_varint(&mut buf).map_err(|e| e.to_string())?;
                    8
                }
                WireType::SixtyFourBit | WireType::ThirtyTwoBit => {
                    let n = if wire == WireType::SixtyFourBit { 8 } else { 4 };
                    if buf.len() < n {
                        return Err("buffer underflow".into());
                    }
                    buf = &buf[n..];
                    8
                }
                WireType::StartGroup | WireType::EndGroup => {
                    // Not used by ONNX; prost skips groups without storing them.
                    skip_field(wire, tag, &mut buf, DecodeContext::default())
                        .map_err(|e| e.to_string())?;
                    0
                }
            };
            total = total.saturating_add(cost);
        }
        Ok(total)
    }
    scan(bytes, Kind::Model, 0).map(|n| n.saturating_add(Kind::Model.size()))
}
