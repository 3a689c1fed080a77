//! The safetensors container: reading a file (bounded by what its header
//! declares), parsing the header without building a JSON tree, and checking
//! the layout, with errors that name the tensor.
//!
//! A file is an 8-byte little-endian header length `n`, `n` bytes of JSON
//! (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [start,
//! end]}, .., "__metadata__": {"key": "value"}}`), then the data, which the
//! tensors' byte ranges must tile exactly (sorted by offset, no gap, no
//! overlap, nothing after the last). These are the rules of the
//! safetensors crate 0.8, plus: a header longer than [`MAX_HEADER_BYTES`]
//! is refused before anything else is read, and a name given twice is an
//! error (JSON parsers differ on which one wins).

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::tensor::{Dtype, Tensor};
use super::{format_err, out_of_memory};
use crate::error::{Error, Result};

/// The largest header accepted, in bytes (the safetensors crate's limit).
pub(crate) const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Every tensor of the file `bytes`, sorted by name, after checking the
/// whole layout.
pub(crate) fn tensors(bytes: &[u8]) -> Result<Vec<Tensor<'_>>> {
    let n = header_len(bytes)?;
    let rest = (bytes.len() - 8) as u64;
    if n > rest {
        return Err(format_err(format!(
            "the header length field says {n} bytes, but only {rest} bytes follow it \
             (truncated file, or not a safetensors file)"
        )));
    }
    // n <= rest < bytes.len() <= usize::MAX
    let (header, data) = bytes[8..].split_at(n as usize);
    let mut tensors = parse_header(header)?;
    validate(&mut tensors, data)?;
    Ok(tensors)
}

/// The header length field, checked against [`MAX_HEADER_BYTES`].
fn header_len(bytes: &[u8]) -> Result<u64> {
    let Some(len8) = bytes.first_chunk::<8>() else {
        return Err(format_err(format!(
            "file too short ({} bytes): a safetensors file starts with an 8-byte header length",
            bytes.len()
        )));
    };
    let n = u64::from_le_bytes(*len8);
    if n > MAX_HEADER_BYTES {
        return Err(format_err(format!(
            "the header length field says {n} bytes, more than the limit of \
             {MAX_HEADER_BYTES} bytes (a corrupt file, or not a safetensors file)"
        )));
    }
    Ok(n)
}

// --------------------------------------------------------------------------
// Reading a file
// --------------------------------------------------------------------------

/// Reads the safetensors file at `path`: only a regular file (opened
/// without blocking, so a FIFO cannot hang the caller), and only as many
/// bytes as its header declares. Every buffer is allocated fallibly. A file
/// longer than its header declares is a Format error (as from memory). A
/// file that ends early (in the length, the header or the data) is returned
/// as read, for [`tensors`] to report which part or tensor is missing.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    let io_err =
        |what: &str, e: std::io::Error| Error::Io(format!("{what} {}: {e}", path.display()));
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        // O_NONBLOCK: opening a FIFO without a writer returns at once
        // instead of waiting for one. It changes nothing for the regular
        // files that are read below.
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NONBLOCK);
    }
    let mut file = open.open(path).map_err(|e| io_err("opening", e))?;
    // fstat of the opened file: no race with a rename between check and read.
    let meta = file
        .metadata()
        .map_err(|e| io_err("reading the metadata of", e))?;
    if !meta.is_file() {
        return Err(Error::Io(format!(
            "{} is {}, not a regular file; only regular files are read (for other \
             sources, read the bytes yourself and use load_safetensors_bytes)",
            path.display(),
            file_kind(&meta.file_type())
        )));
    }
    let file_len = meta.len();
    let mut buf = Vec::new();
    read_up_to(&mut file, &mut buf, path, file_len, 8)?;
    if buf.len() < 8 {
        return Ok(buf);
    }
    let n = header_len(&buf)?;
    read_up_to(&mut file, &mut buf, path, file_len, n)?;
    if (buf.len() as u64) < 8 + n {
        return Ok(buf);
    }
    let declared = parse_header(&buf[8..])?
        .iter()
        .map(|t| t.end)
        .max()
        .unwrap_or(0);
    read_up_to(&mut file, &mut buf, path, file_len, declared)?;
    let end = buf.len() as u64;
    if end == 8 + n + declared {
        let mut one = [0u8; 1];
        let more = loop {
            match file.read(&mut one) {
                Ok(k) => break k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("reading", e)),
            }
        };
        if more > 0 {
            return Err(trailing_bytes(
                file_len.saturating_sub(end).max(1),
                declared,
            ));
        }
    }
    Ok(buf)
}

/// The whole of a regular file of at most `max` bytes (an ONNX model): opened
/// as [`read_file`] opens one (a FIFO does not block; a directory, device or
/// socket is an [`Error::Io`] naming its kind), a longer file an
/// [`Error::Format`] before anything is read, the buffer reserved fallibly.
pub(crate) fn read_whole_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    let io_err =
        |what: &str, e: std::io::Error| Error::Io(format!("{what} {}: {e}", path.display()));
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NONBLOCK);
    }
    let mut file = open.open(path).map_err(|e| io_err("opening", e))?;
    let meta = file
        .metadata()
        .map_err(|e| io_err("reading the metadata of", e))?;
    if !meta.is_file() {
        return Err(Error::Io(format!(
            "{} is {}, not a regular file; only regular files are read (for other \
             sources, read the bytes yourself and load them from memory)",
            path.display(),
            file_kind(&meta.file_type())
        )));
    }
    if meta.len() > max {
        return Err(format_err(format!(
            "the file has {} bytes, more than the {max} this loader reads",
            meta.len()
        )));
    }
    let mut buf = Vec::new();
    read_up_to(&mut file, &mut buf, path, meta.len(), max.saturating_add(1))?;
    if buf.len() as u64 > max {
        return Err(format_err(format!(
            "the file grew past the {max} bytes this loader reads while it was read"
        )));
    }
    Ok(buf)
}

/// Appends up to `n` more bytes of `file` to `buf` (fewer at the end of the
/// file), reserving (fallibly) at most what is left of a file of `file_len`
/// bytes.
fn read_up_to(
    file: &mut std::fs::File,
    buf: &mut Vec<u8>,
    path: &Path,
    file_len: u64,
    n: u64,
) -> Result<()> {
    let left = file_len.saturating_sub(buf.len() as u64);
    let want = usize::try_from(n.min(left)).unwrap_or(usize::MAX);
    buf.try_reserve_exact(want)
        .map_err(|_| out_of_memory(want, &format!("reading {}", path.display())))?;
    let start = buf.len();
    match file.by_ref().take(n).read_to_end(buf) {
        Ok(_) => Ok(()),
        // read_to_end grows the buffer fallibly when the file grew since fstat
        Err(e) if e.kind() == std::io::ErrorKind::OutOfMemory => Err(out_of_memory(
            buf.len().saturating_sub(start),
            &format!("reading {} (it grew while it was read)", path.display()),
        )),
        Err(e) => Err(Error::Io(format!("reading {}: {e}", path.display()))),
    }
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

fn trailing_bytes(extra: u64, data_end: u64) -> Error {
    format_err(format!(
        "the file has {extra} bytes after the last tensor's data (which ends at data byte \
         {data_end}): a header that lies about sizes, or something appended to the file"
    ))
}

// --------------------------------------------------------------------------
// The header
// --------------------------------------------------------------------------

/// Parses the header into one small record per tensor (no JSON tree; names
/// are borrowed from `header` unless they contain escapes; the data slices
/// still empty), sorted by name, rejecting malformed entries and names
/// given twice.
fn parse_header(header: &[u8]) -> Result<Vec<Tensor<'_>>> {
    let mut at: Option<String> = None;
    let mut de = serde_json::Deserializer::from_slice(header);
    let parsed = de
        .deserialize_map(HeaderVisitor { at: &mut at })
        .and_then(|v| de.end().map(|()| v));
    let mut entries = parsed.map_err(|e| {
        let at = at.map_or_else(String::new, |n| format!("tensor {n:?}: "));
        format_err(format!("the header is not valid safetensors JSON: {at}{e}"))
    })?;
    // Sorted by name (for deterministic errors), then names given twice
    // (compared after unescaping) are neighbours.
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = entries.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(format_err(format!(
            "tensor {:?} is given twice in the header",
            w[0].name
        )));
    }
    Ok(entries)
}

/// Checks every tensor's byte range against `data` and its shape × dtype
/// (in name order, naming the tensor), then that the ranges tile `data`;
/// then points each tensor at its bytes.
fn validate<'a>(entries: &mut [Tensor<'a>], data: &'a [u8]) -> Result<()> {
    let data_len = data.len() as u64;
    for e in entries.iter() {
        let Tensor {
            name, start, end, ..
        } = e;
        if end < start || *end > data_len {
            return Err(format_err(format!(
                "tensor {name:?}: the header puts its data at bytes {start}..{end}, but the file \
                 holds {data_len} data bytes (truncated file, or a header that lies about sizes)"
            )));
        }
        let need = e
            .shape
            .iter()
            .try_fold(e.dtype.bits(), |acc, &d| acc.checked_mul(d as u64));
        let dtype = e.dtype.name();
        let shape = &e.shape;
        match need {
            Some(bits) if bits % 8 != 0 => {
                return Err(format_err(format!(
                    "tensor {name:?}: {dtype} of shape {shape:?} needs {bits} bits, not a whole \
                     number of bytes"
                )));
            }
            Some(bits) if bits / 8 == end - start => {}
            _ => {
                return Err(format_err(format!(
                    "tensor {name:?}: {dtype} of shape {shape:?} needs {} bytes, but the header \
                     gives it {} (bytes {start}..{end})",
                    need.filter(|b| b / 8 <= data_len).map_or_else(
                        || "more than the file's".to_string(),
                        |b| (b / 8).to_string()
                    ),
                    end - start
                )));
            }
        }
    }
    // Header entries are far larger than 4 bytes, and the header is at most
    // MAX_HEADER_BYTES: every index fits in a u32.
    let mut by_offset: Vec<u32> = Vec::new();
    by_offset
        .try_reserve_exact(entries.len())
        .map_err(|_| out_of_memory(entries.len() * 4, "checking the header"))?;
    by_offset.extend((0..entries.len()).map(|i| i as u32));
    by_offset.sort_unstable_by_key(|&i| (entries[i as usize].start, entries[i as usize].end));
    let mut pos = 0u64;
    let mut prev: Option<&str> = None;
    for &i in &by_offset {
        let e = &entries[i as usize];
        if e.start != pos {
            let (name, s, t) = (&e.name, e.start, e.end);
            let why = match prev {
                Some(p) if s < pos => {
                    format!("they overlap those of {p:?}, which end at byte {pos}")
                }
                Some(p) => {
                    format!("they leave a gap after those of {p:?}, which end at byte {pos}")
                }
                None => "the first tensor's data must start at byte 0".to_string(),
            };
            return Err(format_err(format!(
                "not a valid safetensors file: tensor {name:?} has data_offsets {s}..{t}, but \
                 {why} (the tensors' data must follow each other without gaps or overlaps)"
            )));
        }
        pos = e.end;
        prev = Some(&e.name);
    }
    if pos != data_len {
        return Err(trailing_bytes(data_len - pos, pos));
    }
    for t in entries.iter_mut() {
        // Checked above: start <= end <= data.len().
        t.data = &data[t.start as usize..t.end as usize];
    }
    Ok(())
}

/// The top-level object. `at` receives the name of the tensor being parsed
/// when an error occurs, for the message.
struct HeaderVisitor<'s> {
    at: &'s mut Option<String>,
}

impl<'de> Visitor<'de> for HeaderVisitor<'_> {
    type Value = Vec<Tensor<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of tensors")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut entries: Vec<Tensor<'de>> = Vec::new();
        let mut metadata = false;
        while let Some(Name(name)) = map.next_key()? {
            if name == "__metadata__" {
                if metadata {
                    return Err(de::Error::custom(
                        "tensor \"__metadata__\" is given twice in the header",
                    ));
                }
                metadata = true;
                let r = map.next_value::<Metadata>();
                if r.is_err() {
                    *self.at = Some(name.into_owned());
                }
                r?;
                continue;
            }
            let info = match map.next_value::<Info>() {
                Ok(i) => i,
                Err(e) => {
                    *self.at = Some(name.into_owned());
                    return Err(e);
                }
            };
            entries
                .try_reserve(1)
                .map_err(|_| de::Error::custom("out of memory for the list of tensors"))?;
            entries.push(Tensor {
                name,
                dtype: info.dtype,
                shape: info.shape,
                start: info.offsets.0,
                end: info.offsets.1,
                data: &[],
            });
        }
        Ok(entries)
    }
}

/// A string, borrowed from the header when it has no escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                s: &'de str,
            ) -> std::result::Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> std::result::Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// `__metadata__`: null or an object of strings, checked and dropped.
struct Metadata;

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("__metadata__ as an object of strings")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Metadata, E> {
                Ok(Metadata)
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Metadata, A::Error> {
                while map.next_entry::<Name<'de>, Name<'de>>()?.is_some() {}
                Ok(Metadata)
            }
        }
        d.deserialize_any(V)
    }
}

/// One tensor's `{"dtype", "shape", "data_offsets"}` (other keys ignored).
struct Info {
    dtype: Dtype,
    shape: Vec<usize>,
    offsets: (u64, u64),
}

impl<'de> Deserialize<'de> for Info {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Info;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with dtype, shape and data_offsets")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Info, A::Error> {
                let (mut dtype, mut shape, mut offsets) = (None, None, None);
                while let Some(Name(key)) = map.next_key()? {
                    let dup = match &*key {
                        "dtype" => dtype.replace(map.next_value::<DtypeName>()?.0).is_some(),
                        "shape" => shape.replace(map.next_value::<Shape>()?.0).is_some(),
                        "data_offsets" => offsets.replace(map.next_value::<Offsets>()?.0).is_some(),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            false
                        }
                    };
                    if dup {
                        return Err(de::Error::custom(format!("{key} is given twice")));
                    }
                }
                let missing = |f: &str| de::Error::custom(format!("missing {f}"));
                Ok(Info {
                    dtype: dtype.ok_or_else(|| missing("dtype"))?,
                    shape: shape.ok_or_else(|| missing("shape"))?,
                    offsets: offsets.ok_or_else(|| missing("data_offsets"))?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

struct DtypeName(Dtype);

impl<'de> Deserialize<'de> for DtypeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let Name(s) = Name::deserialize(d)?;
        Dtype::from_name(&s)
            .map(DtypeName)
            .ok_or_else(|| de::Error::custom(format!("unknown dtype {s:?}")))
    }
}

/// `[d0, d1, ..]`, each a usize.
struct Shape(Vec<usize>);

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("shape as an array of sizes")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Shape, A::Error> {
                let mut v: Vec<usize> = Vec::new();
                while let Some(x) = seq.next_element::<u64>()? {
                    let x = usize::try_from(x)
                        .map_err(|_| de::Error::custom(format!("shape entry {x} is too large")))?;
                    v.try_reserve(1)
                        .map_err(|_| de::Error::custom("out of memory for a shape"))?;
                    v.push(x);
                }
                Ok(Shape(v))
            }
        }
        d.deserialize_seq(V)
    }
}

/// `[start, end]`.
struct Offsets((u64, u64));

impl<'de> Deserialize<'de> for Offsets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Offsets;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("data_offsets as [start, end]")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Offsets, A::Error> {
                let bad = || de::Error::custom("data_offsets must be [start, end]");
                let s = seq.next_element::<u64>()?.ok_or_else(bad)?;
                let e = seq.next_element::<u64>()?.ok_or_else(bad)?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(bad());
                }
                if usize::try_from(e).is_err() {
                    return Err(de::Error::custom(format!(
                        "data_offsets end {e} is too large"
                    )));
                }
                Ok(Offsets((s, e)))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.resize(f.len() + data, 0);
        f
    }

    #[test]
    fn names_are_borrowed_unless_escaped() {
        let f = file(
            r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},
                "\u0062":{"dtype":"F16","shape":[],"data_offsets":[2,4]},
                "__metadata__":{"format":"pt"}}"#,
            4,
        );
        let t = tensors(&f).unwrap();
        assert_eq!(t.len(), 2);
        assert!(matches!(t[0].name, Cow::Borrowed("a")));
        assert!(matches!(&t[1].name, Cow::Owned(s) if s == "b"));
        assert_eq!(
            (t[1].dtype, t[1].shape.as_slice(), t[1].data.len()),
            (Dtype::F16, &[][..], 2)
        );
    }

    #[test]
    fn layout_rules() {
        let e = |h: &str, d: usize| match tensors(&file(h, d)) {
            Err(Error::Format(m)) => m,
            r => panic!("{r:?}"),
        };
        // a gap, an overlap, a late start, sub-byte sizes, extra keys
        assert!(
            e(
                r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#,
                2
            )
            .contains("byte 0")
        );
        let m = e(
            r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},
                "b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#,
            2,
        );
        assert!(m.contains("overlap"), "{m}");
        assert!(
            e(
                r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
                2
            )
            .contains("bits")
        );
        tensors(&file(
            r#"{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2],"x":[{}]}}"#,
            2,
        ))
        .unwrap();
        assert!(
            e(
                r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}"#,
                1
            )
            .contains("[start, end]")
        );
        assert!(e(r#"{"a":{"dtype":"U8","shape":[1]}}"#, 0).contains("missing data_offsets"));
        assert!(
            e(
                r#"{"a":{"dtype":"U8","dtype":"U8","shape":[],"data_offsets":[0,1]}}"#,
                1
            )
            .contains("twice")
        );
        assert!(
            e(r#"{"a":{"dtype":"X","shape":[],"data_offsets":[0,1]}}"#, 1)
                .contains("unknown dtype")
        );
        assert!(e(r#"{"__metadata__":{"a":1}}"#, 0).contains("__metadata__"));
        assert!(e(r#"{} x"#, 0).contains("JSON"));
        // empty tensors may share an offset; an empty file is valid
        tensors(&file(
            r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},
                "b":{"dtype":"U8","shape":[0,3],"data_offsets":[0,0]},"__metadata__":null}"#,
            0,
        ))
        .unwrap();
        assert!(tensors(&file("{}  ", 0)).unwrap().is_empty());
    }
}
