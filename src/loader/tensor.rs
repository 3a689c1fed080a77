//! A tensor read from a weights file, independent of the file format: its
//! name, element type, shape and little-endian bytes, and the checked
//! widening to f32 of the safetensors loader. (The ONNX loader keeps its
//! own owned values, `onnx/fold.rs`: ONNX tensors come from typed fields as
//! often as from raw bytes, and folding reshapes them; both share the
//! f16/bf16 widening of `kernels/elem.rs`.)

use std::borrow::Cow;

use super::{format_err, out_of_memory};
use crate::error::Result;
use crate::kernels::elem::{bf16_to_f32, f16_to_f32};

/// The element types a safetensors header may name (the safetensors crate's
/// `Dtype`, 0.8). Only [`Dtype::F32`], [`Dtype::F16`] and [`Dtype::BF16`]
/// can be weights; the others are valid in a file (a `num_batches_tracked`
/// counter beside the weights, say) but not loadable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dtype {
    Bool,
    F4,
    F6E2M3,
    F6E3M2,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    F8E8M0,
    F8E4M3Fnuz,
    F8E5M2Fnuz,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    C64,
    F64,
    I64,
    U64,
}

/// Every dtype with its name in a header and its size in bits.
const DTYPES: [(Dtype, &str, u64); 22] = [
    (Dtype::Bool, "BOOL", 8),
    (Dtype::F4, "F4", 4),
    (Dtype::F6E2M3, "F6_E2M3", 6),
    (Dtype::F6E3M2, "F6_E3M2", 6),
    (Dtype::U8, "U8", 8),
    (Dtype::I8, "I8", 8),
    (Dtype::F8E5M2, "F8_E5M2", 8),
    (Dtype::F8E4M3, "F8_E4M3", 8),
    (Dtype::F8E8M0, "F8_E8M0", 8),
    (Dtype::F8E4M3Fnuz, "F8_E4M3FNUZ", 8),
    (Dtype::F8E5M2Fnuz, "F8_E5M2FNUZ", 8),
    (Dtype::I16, "I16", 16),
    (Dtype::U16, "U16", 16),
    (Dtype::F16, "F16", 16),
    (Dtype::BF16, "BF16", 16),
    (Dtype::I32, "I32", 32),
    (Dtype::U32, "U32", 32),
    (Dtype::F32, "F32", 32),
    (Dtype::C64, "C64", 64),
    (Dtype::F64, "F64", 64),
    (Dtype::I64, "I64", 64),
    (Dtype::U64, "U64", 64),
];

impl Dtype {
    /// The dtype a header calls `name`, if any.
    pub(crate) fn from_name(name: &str) -> Option<Dtype> {
        DTYPES.iter().find(|d| d.1 == name).map(|d| d.0)
    }

    /// The name a header gives it (`"F32"`).
    pub(crate) fn name(self) -> &'static str {
        DTYPES.iter().find(|d| d.0 == self).map_or("?", |d| d.1)
    }

    /// Bits per element.
    pub(crate) fn bits(self) -> u64 {
        DTYPES.iter().find(|d| d.0 == self).map_or(0, |d| d.2)
    }
}

/// A tensor of a file. Once the container has validated it, its byte range
/// lies inside the file and matches shape × dtype, and `data` holds it.
#[derive(Debug)]
pub(crate) struct Tensor<'a> {
    /// The full name (prefix included), as in the file.
    pub(crate) name: Cow<'a, str>,
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    /// The byte range in the container's data section.
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// Exactly elements × dtype size bytes, little-endian.
    pub(crate) data: &'a [u8],
}

impl Tensor<'_> {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// F32, F16 or BF16, else an error naming the tensor and its dtype.
    pub(crate) fn check_dtype(&self) -> Result<()> {
        match self.dtype {
            Dtype::F32 | Dtype::F16 | Dtype::BF16 => Ok(()),
            other => Err(format_err(format!(
                "tensor {:?} has dtype {}; only F32, F16 and BF16 weights are supported",
                self.name,
                other.name()
            ))),
        }
    }

    /// Checks the dtype and the shape exactly, then widens to f32 (into a
    /// buffer allocated fallibly: its size comes from the file).
    pub(crate) fn read(&self, expected: &[usize], why: &dyn Fn() -> String) -> Result<Vec<f32>> {
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
        let n: usize = expected.iter().product();
        let width = if self.dtype == Dtype::F32 { 4 } else { 2 };
        if self.data.len() != n.saturating_mul(width) {
            // Unreachable after validation; kept so that a bug cannot become a panic later.
            return Err(format_err(format!(
                "tensor {:?}: {} bytes of data for {} elements",
                self.name,
                self.data.len(),
                n
            )));
        }
        let mut out: Vec<f32> = Vec::new();
        out.try_reserve_exact(n).map_err(|_| {
            out_of_memory(
                n.saturating_mul(4),
                &format!("the f32 values of tensor {:?}", self.name),
            )
        })?;
        match self.dtype {
            Dtype::F32 => out.extend(
                self.data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            Dtype::F16 => out.extend(
                self.data
                    .chunks_exact(2)
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            ),
            // BF16 (the only other dtype check_dtype lets through)
            _ => out.extend(
                self.data
                    .chunks_exact(2)
                    .map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            ),
        }
        Ok(out)
    }

    /// A weight matrix: a supported dtype, 2 dimensions, none empty.
    pub(crate) fn dims2(&self) -> Result<(usize, usize)> {
        self.check_dtype()?;
        if self.shape().contains(&0) {
            return Err(format_err(format!(
                "tensor {:?} has shape {:?}: a weight cannot have an empty dimension",
                self.name,
                self.shape()
            )));
        }
        match *self.shape() {
            [a, b] => Ok((a, b)),
            ref s => Err(format_err(format!(
                "tensor {:?} has shape {s:?}, expected a matrix (2 dimensions)",
                self.name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_names_round_trip() {
        for (d, name, bits) in DTYPES {
            assert_eq!(Dtype::from_name(name), Some(d));
            assert_eq!((d.name(), d.bits()), (name, bits));
        }
        assert_eq!(Dtype::from_name("f32"), None);
    }
}
