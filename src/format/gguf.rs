//! GGUF files: a generic, panic-free parser ([`GgufFile`]) and the Mamba-1
//! language-model loader ([`load`]) for files written by llama.cpp (arch `mamba`).
//!
//! The parser knows nothing about any architecture: it reads the header, the
//! metadata key/value pairs and the tensor infos, and checks that every tensor
//! lies inside the file. It never allocates more than the input justifies:
//! every count and length is compared with the bytes that remain before any
//! memory is reserved, all arithmetic is checked, and nested arrays are
//! limited in depth so hostile files cannot exhaust the stack.
//!
//! Layout (little-endian; versions 2 and 3 are identical for little-endian
//! files, version 3 only adds big-endian files, which are rejected here):
//! `"GGUF"`, u32 version, u64 tensor count, u64 metadata count, the metadata
//! (`string key, u32 type, value`), the tensor infos (`string name, u32 n_dims,
//! u64 dims[n_dims]` fastest dimension first, `u32 ggml type, u64 offset`),
//! padding to `general.alignment` (32 when absent), then the tensor data.
//! Tensor offsets are relative to the start of the data section and must be
//! multiples of the alignment. Tensors may overlap (they are read-only views;
//! llama.cpp's writer never produces overlapping tensors, and nothing here
//! depends on them being disjoint).

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Backing, DType, LmConfig, LmLayer, LmWeights, MixerWeights, Model, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and the tensor offsets when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The key that overrides [`DEFAULT_ALIGNMENT`].
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// Most metadata entries and most tensors a file may declare (real files have
/// tens of keys and at most tens of thousands of tensors). Together with the
/// byte bounds this caps what a hostile header can make the parser allocate.
pub const MAX_KV: usize = 1 << 20;
pub const MAX_TENSORS: usize = 1 << 20;
/// Deepest nesting of arrays accepted in metadata values.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// ggml type ids this crate reads.
pub const GGML_TYPE_F32: u32 = 0;
pub const GGML_TYPE_F16: u32 = 1;
pub const GGML_TYPE_Q8_0: u32 = 8;
pub const GGML_TYPE_BF16: u32 = 30;
/// libmamba's own row-wise 8-bit type ([`DType::Q8Row`]): each row is an f32
/// scale followed by `ne0` int8 values, padded to a multiple of 4 bytes.
pub const GGML_TYPE_Q8_ROW: u32 = 1024;

/// Value type ids of GGUF metadata.
pub mod value_type {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

/// A metadata array, stored compactly by element type (a u8 array costs one
/// byte per element, so memory stays proportional to the file).
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
}

impl Array {
    /// The GGUF type id of the elements.
    pub fn elem_type(&self) -> u32 {
        use value_type as t;
        match self {
            Array::U8(_) => t::U8,
            Array::I8(_) => t::I8,
            Array::U16(_) => t::U16,
            Array::I16(_) => t::I16,
            Array::U32(_) => t::U32,
            Array::I32(_) => t::I32,
            Array::U64(_) => t::U64,
            Array::I64(_) => t::I64,
            Array::F32(_) => t::F32,
            Array::F64(_) => t::F64,
            Array::Bool(_) => t::BOOL,
            Array::String(_) => t::STRING,
            Array::Array(_) => t::ARRAY,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as an integer, for integer arrays.
    pub fn int_at(&self, i: usize) -> Option<i128> {
        Some(match self {
            Array::U8(v) => *v.get(i)? as i128,
            Array::I8(v) => *v.get(i)? as i128,
            Array::U16(v) => *v.get(i)? as i128,
            Array::I16(v) => *v.get(i)? as i128,
            Array::U32(v) => *v.get(i)? as i128,
            Array::I32(v) => *v.get(i)? as i128,
            Array::U64(v) => *v.get(i)? as i128,
            Array::I64(v) => *v.get(i)? as i128,
            _ => return None,
        })
    }
}

impl Value {
    /// The GGUF type id of this value.
    pub fn type_id(&self) -> u32 {
        use value_type as t;
        match self {
            Value::U8(_) => t::U8,
            Value::I8(_) => t::I8,
            Value::U16(_) => t::U16,
            Value::I16(_) => t::I16,
            Value::U32(_) => t::U32,
            Value::I32(_) => t::I32,
            Value::U64(_) => t::U64,
            Value::I64(_) => t::I64,
            Value::F32(_) => t::F32,
            Value::F64(_) => t::F64,
            Value::Bool(_) => t::BOOL,
            Value::String(_) => t::STRING,
            Value::Array(..) => t::ARRAY,
        }
    }

    /// A short description of the type, for messages ("u32", "array of string").
    pub fn type_name(&self) -> String {
        match self {
            Value::Array(a) => format!("array of {}", value_type_name(a.elem_type())),
            v => value_type_name(v.type_id()).to_string(),
        }
    }

    /// The value as a signed 128-bit integer, for any integer type.
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v as i128,
            Value::I8(v) => v as i128,
            Value::U16(v) => v as i128,
            Value::I16(v) => v as i128,
            Value::U32(v) => v as i128,
            Value::I32(v) => v as i128,
            Value::U64(v) => v as i128,
            Value::I64(v) => v as i128,
            _ => return None,
        })
    }
}

/// The name of a metadata value type id.
pub fn value_type_name(t: u32) -> &'static str {
    use value_type as v;
    match t {
        v::U8 => "u8",
        v::I8 => "i8",
        v::U16 => "u16",
        v::I16 => "i16",
        v::U32 => "u32",
        v::I32 => "i32",
        v::F32 => "f32",
        v::BOOL => "bool",
        v::STRING => "string",
        v::ARRAY => "array",
        v::U64 => "u64",
        v::I64 => "i64",
        v::F64 => "f64",
        _ => "unknown",
    }
}

/// Block size (elements) and block bytes of a ggml type, when known.
/// [`GGML_TYPE_Q8_ROW`] is not block-based and returns `None` (see [`TensorInfo::nbytes`]).
pub fn ggml_type_size(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 40),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18),
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        29 => (256, 56),
        30 => (1, 2),
        34 => (256, 54),
        35 => (256, 66),
        39 => (32, 17),
        _ => return None,
    })
}

/// The name of a ggml type id ("Q8_0", "F16", "unknown type 77").
pub fn ggml_type_name(t: u32) -> String {
    let s = match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        GGML_TYPE_Q8_ROW => "Q8_ROW",
        _ => return format!("unknown type {t}"),
    };
    s.to_string()
}

/// The [`DType`] a ggml type id maps to, when this crate can compute with it.
pub fn dtype_of(ggml_type: u32) -> Option<DType> {
    match ggml_type {
        GGML_TYPE_F32 => Some(DType::F32),
        GGML_TYPE_F16 => Some(DType::F16),
        GGML_TYPE_BF16 => Some(DType::BF16),
        GGML_TYPE_Q8_0 => Some(DType::Q8_0),
        GGML_TYPE_Q8_ROW => Some(DType::Q8Row),
        _ => None,
    }
}

/// One tensor's description from the header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the fastest-varying (the row length).
    pub dims: Vec<u64>,
    /// The ggml type id (see [`ggml_type_name`]).
    pub ggml_type: u32,
    /// Offset of the data, relative to [`GgufFile::data_offset`].
    pub offset: u64,
    /// Bytes of data; `None` for a type whose size this parser does not know
    /// (then the data could not be bounds-checked and must not be used).
    pub nbytes: Option<u64>,
}

impl TensorInfo {
    /// Number of elements (product of the dims; checked against overflow at parse time).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The dims with trailing 1s removed (`[n, 1]` becomes `[n]`), for shape comparisons.
    pub fn squeezed_dims(&self) -> Vec<u64> {
        let mut d = self.dims.clone();
        while d.len() > 1 && d[d.len() - 1] == 1 {
            d.pop();
        }
        d
    }

    /// The shape as text, ggml order: `[24, 40]`.
    pub fn shape_string(&self) -> String {
        format!("{:?}", self.dims)
    }

    pub fn type_name(&self) -> String {
        ggml_type_name(self.ggml_type)
    }
}

/// Bytes a tensor of `ggml_type` with `dims` occupies; `Ok(None)` when the type is unknown.
fn tensor_nbytes(name: &str, ggml_type: u32, dims: &[u64]) -> Result<Option<u64>> {
    let ne0 = dims.first().copied().unwrap_or(1);
    let rows = dims.iter().skip(1).try_fold(1u64, |a, &d| a.checked_mul(d));
    let overflow = || Error::format(format!("GGUF: tensor {name}: size {dims:?} overflows"));
    let rows = rows.ok_or_else(overflow)?;
    if ggml_type == GGML_TYPE_Q8_ROW {
        let row = ne0
            .checked_add(3)
            .map(|c| c / 4 * 4)
            .and_then(|c| c.checked_add(4));
        return row
            .and_then(|r| r.checked_mul(rows))
            .map(Some)
            .ok_or_else(overflow);
    }
    let Some((block, block_bytes)) = ggml_type_size(ggml_type) else {
        return Ok(None);
    };
    if ne0 % block != 0 {
        return Err(Error::format(format!(
            "GGUF: tensor {name}: first dimension {ne0} is not a multiple of the {} block size {block}",
            ggml_type_name(ggml_type)
        )));
    }
    (ne0 / block)
        .checked_mul(block_bytes)
        .and_then(|r| r.checked_mul(rows))
        .map(Some)
        .ok_or_else(overflow)
}

/// A parsed GGUF header: metadata and tensor infos. Holds no tensor data.
/// Read-only after parsing (the fields are private so the lookup indexes and
/// the bounds checks done at parse time stay valid).
#[derive(Debug, Clone)]
pub struct GgufFile {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: u64,
    file_len: u64,
    key_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
}

/// A bounds-checked little-endian reader over the input.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::format(format!(
                "GGUF: file truncated at offset {} while reading {} ({n} bytes needed, {} left)",
                self.pos,
                what(),
                self.remaining()
            )));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A u64 length/count that must fit in what remains when each item needs `min_item` bytes.
    fn count(&mut self, min_item: usize, what: &dyn Fn() -> String) -> Result<usize> {
        let at = self.pos;
        let n = self.u64(what)?;
        let fits = (self.remaining() / min_item.max(1)) as u64;
        if n > fits {
            return Err(Error::format(format!(
                "GGUF: {} at offset {at} is {n}, more than the {} bytes left in the file can hold",
                what(),
                self.remaining()
            )));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.count(1, &|| format!("length of {}", what()))?;
        let at = self.pos;
        let s = self.take(len, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| {
            Error::format(format!(
                "GGUF: {} at offset {at} is not valid UTF-8",
                what()
            ))
        })
    }

    /// Smallest encoding of one value of type `t` (for bounding array counts).
    fn min_size(t: u32) -> usize {
        use value_type as v;
        match t {
            v::U8 | v::I8 | v::BOOL => 1,
            v::U16 | v::I16 => 2,
            v::U32 | v::I32 | v::F32 => 4,
            v::U64 | v::I64 | v::F64 | v::STRING => 8,
            _ => 12, // array: u32 type + u64 count
        }
    }

    fn bool(&mut self, what: &dyn Fn() -> String) -> Result<bool> {
        let at = self.pos;
        match self.array::<1>(what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Error::format(format!(
                "GGUF: {} at offset {at} is a bool with byte value {b} (must be 0 or 1)",
                what()
            ))),
        }
    }

    fn value(&mut self, t: u32, depth: usize, what: &dyn Fn() -> String) -> Result<Value> {
        use value_type as v;
        Ok(match t {
            v::U8 => Value::U8(self.array::<1>(what)?[0]),
            v::I8 => Value::I8(self.array::<1>(what)?[0] as i8),
            v::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            v::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            v::U32 => Value::U32(u32::from_le_bytes(self.array(what)?)),
            v::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            v::U64 => Value::U64(u64::from_le_bytes(self.array(what)?)),
            v::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            v::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            v::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            v::BOOL => Value::Bool(self.bool(what)?),
            v::STRING => Value::String(self.string(what)?),
            v::ARRAY => Value::Array(self.array_value(depth, what)?),
            _ => {
                return Err(Error::format(format!(
                    "GGUF: {} has unknown value type {t}",
                    what()
                )))
            }
        })
    }

    /// An array value (element type, count, elements); `depth` counts enclosing arrays.
    fn array_value(&mut self, depth: usize, what: &dyn Fn() -> String) -> Result<Array> {
        use value_type as v;
        if depth >= MAX_ARRAY_DEPTH {
            return Err(Error::format(format!(
                "GGUF: {} nests arrays deeper than {MAX_ARRAY_DEPTH} levels",
                what()
            )));
        }
        let et = self.u32(&|| format!("element type of {}", what()))?;
        if value_type_name(et) == "unknown" {
            return Err(Error::format(format!(
                "GGUF: {} is an array of unknown value type {et}",
                what()
            )));
        }
        // The count is bounded by the bytes left, so the vectors below hold at
        // most ~3 bytes of memory per byte of file (strings, nested arrays).
        let n = self.count(Self::min_size(et), &|| {
            format!("element count of {}", what())
        })?;
        macro_rules! fixed {
            ($variant:ident, $ty:ty) => {{
                let mut out: Vec<$ty> = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(<$ty>::from_le_bytes(self.array(what)?));
                }
                Array::$variant(out)
            }};
        }
        Ok(match et {
            v::U8 => Array::U8(self.take(n, what)?.to_vec()),
            v::I8 => Array::I8(self.take(n, what)?.iter().map(|&b| b as i8).collect()),
            v::U16 => fixed!(U16, u16),
            v::I16 => fixed!(I16, i16),
            v::U32 => fixed!(U32, u32),
            v::I32 => fixed!(I32, i32),
            v::U64 => fixed!(U64, u64),
            v::I64 => fixed!(I64, i64),
            v::F32 => fixed!(F32, f32),
            v::F64 => fixed!(F64, f64),
            v::BOOL => {
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push(self.bool(&|| format!("{}[{i}]", what()))?);
                }
                Array::Bool(out)
            }
            v::STRING => {
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push(self.string(&|| format!("{}[{i}]", what()))?);
                }
                Array::String(out)
            }
            _ => {
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push(self.array_value(depth + 1, &|| format!("{}[{i}]", what()))?);
                }
                Array::Array(out)
            }
        })
    }
}

impl GgufFile {
    /// Parses the header of a GGUF file held in `bytes` (normally the whole mapped file).
    /// Never panics; every malformed input gives an error that says what is wrong and where.
    pub fn parse(bytes: &[u8]) -> Result<GgufFile> {
        let mut r = Reader { b: bytes, pos: 0 };
        let magic = r.array::<4>(&|| "the magic".into())?;
        if magic != GGUF_MAGIC {
            return Err(Error::format(format!(
                "not a GGUF file: magic is {:?}, expected \"GGUF\"",
                String::from_utf8_lossy(&magic)
            )));
        }
        let version = r.u32(&|| "the version".into())?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "GGUF version 1 is not supported (it used 32-bit counts); re-convert the model with a current llama.cpp",
                ))
            }
            v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "big-endian GGUF files are not supported",
                ))
            }
            v => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("GGUF version {v} is not supported (only 2 and 3)"),
                ))
            }
        }
        // Each tensor info needs at least 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
        let n_tensors = r.u64(&|| "the tensor count".into())?;
        // Each key/value needs at least 8 (key len) + 4 (type) + 1 (value) bytes.
        let n_kv = r.count(13, &|| "the metadata count".into())?;
        if n_tensors > (r.remaining() / 24) as u64 {
            return Err(Error::format(format!(
                "GGUF: the tensor count {n_tensors} is more than the {} bytes left in the file can hold",
                r.remaining()
            )));
        }
        let n_tensors = n_tensors as usize;
        if n_kv > MAX_KV || n_tensors > MAX_TENSORS {
            return Err(Error::format(format!(
                "GGUF: {n_kv} metadata entries / {n_tensors} tensors exceed the limits ({MAX_KV} / {MAX_TENSORS})"
            )));
        }

        let mut metadata = Vec::with_capacity(n_kv);
        let mut key_index = HashMap::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = r.string(&|| format!("metadata key #{i}"))?;
            let t = r.u32(&|| format!("the type of metadata key {key:?}"))?;
            let v = r.value(t, 0, &|| format!("metadata key {key:?}"))?;
            if key_index.insert(key.clone(), i).is_some() {
                return Err(Error::format(format!(
                    "GGUF: metadata key {key:?} appears twice"
                )));
            }
            metadata.push((key, v));
        }

        let alignment = match key_index.get(ALIGNMENT_KEY).map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_int() {
                Some(a) if a > 0 && a <= (1 << 30) && (a as u64).is_power_of_two() => a as u64,
                Some(a) => {
                    return Err(Error::format(format!(
                        "GGUF: {ALIGNMENT_KEY} = {a} must be a non-zero power of two (at most 2^30)"
                    )))
                }
                None => {
                    return Err(Error::format(format!(
                        "GGUF: {ALIGNMENT_KEY} has type {}, expected an integer",
                        v.type_name()
                    )))
                }
            },
        };

        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = r.string(&|| format!("tensor name #{i}"))?;
            let n_dims = r.u32(&|| format!("n_dims of tensor {name}"))?;
            if n_dims as usize > MAX_DIMS {
                return Err(Error::format(format!(
                    "GGUF: tensor {name} has {n_dims} dimensions (at most {MAX_DIMS} allowed)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for j in 0..n_dims {
                let d = r.u64(&|| format!("dimension {j} of tensor {name}"))?;
                if d > i64::MAX as u64 {
                    return Err(Error::format(format!(
                        "GGUF: tensor {name} dimension {j} is {d}, out of range"
                    )));
                }
                dims.push(d);
            }
            let elems = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            if elems.is_none_or(|e| e > i64::MAX as u64) {
                return Err(Error::format(format!(
                    "GGUF: tensor {name} has dimensions {dims:?} whose product overflows"
                )));
            }
            let ggml_type = r.u32(&|| format!("the type of tensor {name}"))?;
            let offset = r.u64(&|| format!("the offset of tensor {name}"))?;
            if offset % alignment != 0 {
                return Err(Error::format(format!(
                    "GGUF: tensor {name} offset {offset} is not a multiple of the alignment {alignment}"
                )));
            }
            let nbytes = tensor_nbytes(&name, ggml_type, &dims)?;
            if tensor_index.insert(name.clone(), i).is_some() {
                return Err(Error::format(format!("GGUF: tensor {name} appears twice")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
                nbytes,
            });
        }

        let pos = r.pos as u64;
        let data_offset = pos
            .checked_add(alignment - 1)
            .map(|p| p / alignment * alignment)
            .ok_or_else(|| Error::format("GGUF: data offset overflows"))?;
        let file_len = bytes.len() as u64;
        for t in &tensors {
            let Some(nb) = t.nbytes else { continue };
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(nb));
            if end.is_none_or(|e| e > file_len) {
                return Err(Error::format(format!(
                    "GGUF: tensor {} ({} {}) at data offset {} needs {nb} bytes, past the end of the {file_len}-byte file",
                    t.name,
                    t.type_name(),
                    t.shape_string(),
                    t.offset
                )));
            }
        }
        Ok(GgufFile {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            file_len,
            key_index,
            tensor_index,
        })
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The data alignment in effect (`general.alignment` or 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset where the tensor data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Length of the parsed input in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.key_index.contains_key(key)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| Error::format(format!("GGUF: missing metadata key {key}")))
    }

    fn wrong_type(key: &str, v: &Value, expected: &str) -> Error {
        Error::format(format!(
            "GGUF: metadata key {key} has type {}, expected {expected}",
            v.type_name()
        ))
    }

    fn int_in<T: TryFrom<i128>>(key: &str, v: &Value, expected: &str) -> Result<T> {
        let i = v
            .as_int()
            .ok_or_else(|| Self::wrong_type(key, v, expected))?;
        T::try_from(i).map_err(|_| {
            Error::format(format!(
                "GGUF: metadata key {key} = {i} does not fit in {expected}"
            ))
        })
    }

    /// An integer key (stored as any integer type) as u32.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        Self::int_in(key, self.require(key)?, "u32")
    }

    /// An integer key (stored as any integer type) as u64.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        Self::int_in(key, self.require(key)?, "u64")
    }

    /// An integer key (stored as any integer type) as i64.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        Self::int_in(key, self.require(key)?, "i64")
    }

    /// Like [`get_u32`](Self::get_u32) but `Ok(None)` when the key is absent.
    pub fn get_u32_opt(&self, key: &str) -> Result<Option<u32>> {
        self.get(key)
            .map(|v| Self::int_in(key, v, "u32"))
            .transpose()
    }

    /// A float key (f32, or f64 narrowed).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        match self.require(key)? {
            Value::F32(f) => Ok(*f),
            Value::F64(f) => Ok(*f as f32),
            v => Err(Self::wrong_type(key, v, "f32")),
        }
    }

    /// Like [`get_f32`](Self::get_f32) but `Ok(None)` when the key is absent.
    pub fn get_f32_opt(&self, key: &str) -> Result<Option<f32>> {
        if self.contains_key(key) {
            self.get_f32(key).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(Self::wrong_type(key, v, "bool")),
        }
    }

    pub fn get_bool_opt(&self, key: &str) -> Result<Option<bool>> {
        if self.contains_key(key) {
            self.get_bool(key).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            v => Err(Self::wrong_type(key, v, "string")),
        }
    }

    /// Like [`get_str`](Self::get_str) but `Ok(None)` when the key is absent.
    pub fn get_str_opt(&self, key: &str) -> Result<Option<&str>> {
        if self.contains_key(key) {
            self.get_str(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        match self.require(key)? {
            Value::Array(Array::String(v)) => Ok(v),
            v => Err(Self::wrong_type(key, v, "array of string")),
        }
    }

    /// An array of integers (any integer element type) as i32.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let v = self.require(key)?;
        let a = match v {
            Value::Array(a) if a.is_empty() || a.int_at(0).is_some() => a,
            v => return Err(Self::wrong_type(key, v, "array of integers")),
        };
        (0..a.len())
            .map(|i| {
                let x = a.int_at(i).unwrap_or_default();
                i32::try_from(x).map_err(|_| {
                    Error::format(format!(
                        "GGUF: metadata key {key}[{i}] = {x} does not fit in i32"
                    ))
                })
            })
            .collect()
    }

    /// An array of floats (f32 or f64 elements) as f32.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        match self.require(key)? {
            Value::Array(Array::F32(v)) => Ok(v.clone()),
            Value::Array(Array::F64(v)) => Ok(v.iter().map(|&f| f as f32).collect()),
            v => Err(Self::wrong_type(key, v, "array of f32")),
        }
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor called `name`, or an error naming it.
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| Error::format(format!("GGUF: missing tensor {name}")))
    }

    /// Absolute file offset of a tensor's data (checked at parse time to lie inside the file).
    pub fn tensor_file_offset(&self, t: &TensorInfo) -> u64 {
        self.data_offset + t.offset
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }
}

/// A description of `general.file_type` (llama.cpp's `llama_ftype`): "mostly Q8_0" etc.
pub fn file_type_name(f: &GgufFile) -> String {
    let Some(v) = f.get("general.file_type") else {
        return "unspecified".to_string();
    };
    let Some(t) = v.as_int() else {
        return format!("invalid ({})", v.type_name());
    };
    let s = match t {
        0 => "all F32",
        1 => "mostly F16",
        2 => "mostly Q4_0",
        3 => "mostly Q4_1",
        7 => "mostly Q8_0",
        8 => "mostly Q5_0",
        9 => "mostly Q5_1",
        10 => "mostly Q2_K",
        11 => "mostly Q3_K_S",
        12 => "mostly Q3_K_M",
        13 => "mostly Q3_K_L",
        14 => "mostly Q4_K_S",
        15 => "mostly Q4_K_M",
        16 => "mostly Q5_K_S",
        17 => "mostly Q5_K_M",
        18 => "mostly Q6_K",
        32 => "mostly BF16",
        1024 => "guessed",
        _ => return format!("file type {t}"),
    };
    s.to_string()
}

// ---------------------------------------------------------------------------
// The Mamba-1 language-model loader.

/// The tokenizer the file carries (`tokenizer.ggml.*`), or `None` when
/// `tokenizer.ggml.model` is absent.
pub fn vocab(f: &GgufFile) -> Result<Option<crate::tokenizer::GgufVocab>> {
    let Some(model) = f.get_str_opt("tokenizer.ggml.model")? else {
        return Ok(None);
    };
    let tokens: Vec<String> = f.get_str_array("tokenizer.ggml.tokens")?.to_vec();
    let token_types = if f.contains_key("tokenizer.ggml.token_type") {
        f.get_i32_array("tokenizer.ggml.token_type")?
    } else {
        Vec::new()
    };
    if !token_types.is_empty() && token_types.len() != tokens.len() {
        return Err(Error::format(format!(
            "GGUF: tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
            token_types.len(),
            tokens.len()
        )));
    }
    let merges = if f.contains_key("tokenizer.ggml.merges") {
        f.get_str_array("tokenizer.ggml.merges")?.to_vec()
    } else {
        Vec::new()
    };
    Ok(Some(crate::tokenizer::GgufVocab {
        model: model.to_string(),
        tokens,
        token_types,
        merges,
        bos_id: f.get_u32_opt("tokenizer.ggml.bos_token_id")?,
        eos_id: f.get_u32_opt("tokenizer.ggml.eos_token_id")?,
    }))
}

/// The hyperparameters of a `mamba` file. `padded_vocab` comes from the rows of
/// `token_embd.weight`; `vocab_size` counts the tokenizer's tokens that are not
/// `[PAD…]` (or equals `padded_vocab` without a tokenizer).
pub fn lm_config(f: &GgufFile) -> Result<LmConfig> {
    let arch = f.architecture()?;
    if arch != "mamba" {
        return Err(Error::unsupported(format!(
            "GGUF architecture {arch:?} is not supported (only \"mamba\")"
        )));
    }
    if f.get_bool_opt("mamba.ssm.dt_b_c_rms")? == Some(true) {
        return Err(Error::unsupported(
            "GGUF mamba.ssm.dt_b_c_rms = true (Falcon-Mamba's extra norms) is not supported",
        ));
    }
    let u = |k: &str| f.get_u32(k).map(|v| v as usize);
    let emb = f.require_tensor("token_embd.weight")?;
    if emb.dims.len() != 2 {
        return Err(Error::format(format!(
            "GGUF: tensor token_embd.weight has shape {}, expected 2 dimensions",
            emb.shape_string()
        )));
    }
    let padded_vocab = usize::try_from(emb.dims[1])
        .map_err(|_| Error::format("GGUF: token_embd.weight has too many rows"))?;
    let vocab_size = if f.contains_key("tokenizer.ggml.tokens") {
        f.get_str_array("tokenizer.ggml.tokens")?
            .iter()
            .filter(|t| !t.starts_with("[PAD"))
            .count()
    } else {
        padded_vocab
    };
    let c = LmConfig {
        n_layers: u("mamba.block_count")?,
        d_model: u("mamba.embedding_length")?,
        d_inner: u("mamba.ssm.inner_size")?,
        d_state: u("mamba.ssm.state_size")?,
        d_conv: u("mamba.ssm.conv_kernel")?,
        dt_rank: u("mamba.ssm.time_step_rank")?,
        vocab_size,
        padded_vocab,
        norm_eps: f
            .get_f32_opt("mamba.attention.layer_norm_rms_epsilon")?
            .unwrap_or(1e-5),
        tied: f.tensor("output.weight").is_none(),
    };
    c.validate().map_err(|e| e.context("GGUF"))?;
    Ok(c)
}

/// Builds tensor views over `backing` for the tensors of a parsed file.
pub(crate) struct Views<'a> {
    pub(crate) f: &'a GgufFile,
    pub(crate) backing: &'a Arc<Backing>,
}

impl Views<'_> {
    /// The tensor `name` as rows × cols (ggml {cols, rows}; a 1-D tensor has rows = 1).
    /// `alt` is another accepted ggml shape (e.g. the 3-D conv weight).
    pub(crate) fn get(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        alt: Option<&[u64]>,
    ) -> Result<Tensor> {
        let t = self.f.require_tensor(name)?;
        let want: Vec<u64> = if rows == 1 {
            vec![cols as u64]
        } else {
            vec![cols as u64, rows as u64]
        };
        let got = t.squeezed_dims();
        if got != want && alt.is_none_or(|a| t.dims != a) {
            return Err(Error::format(format!(
                "GGUF: {name} has shape {} (ggml order), expected {want:?}",
                t.shape_string()
            )));
        }
        let dtype = dtype_of(t.ggml_type).ok_or_else(|| {
            Error::unsupported(format!(
                "GGUF: tensor {name} has type {} ({}), which is not supported (F32, F16, BF16, Q8_0 and Q8_ROW are)",
                t.type_name(),
                t.ggml_type
            ))
        })?;
        let offset = usize::try_from(self.f.tensor_file_offset(t)).map_err(|_| {
            Error::format(format!("GGUF: tensor {name} offset does not fit in memory"))
        })?;
        Tensor::view(self.backing, offset, dtype, rows, cols, name)
    }

    pub(crate) fn opt(&self, name: &str, rows: usize, cols: usize) -> Result<Option<Tensor>> {
        if self.f.tensor(name).is_some() {
            self.get(name, rows, cols, None).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A tensor that the model needs as f32 (converted on the heap when stored otherwise).
    pub(crate) fn f32(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        alt: Option<&[u64]>,
    ) -> Result<Tensor> {
        Ok(self.get(name, rows, cols, alt)?.into_f32())
    }

    pub(crate) fn f32_opt(&self, name: &str, n: usize) -> Result<Option<Tensor>> {
        Ok(self.opt(name, 1, n)?.map(Tensor::into_f32))
    }
}

#[allow(clippy::too_many_arguments)]
/// The Mamba mixer of block `i` (`blk.{i}.ssm_*`), shared by the language
/// model and the classifier families.
pub(crate) fn mixer_weights(
    v: &Views,
    i: usize,
    dm: usize,
    di: usize,
    ds: usize,
    dc: usize,
    dr: usize,
) -> Result<MixerWeights> {
    let n = |s: &str| format!("blk.{i}.{s}");
    let conv_alt = [dc as u64, 1, di as u64];
    Ok(MixerWeights {
        in_proj: v.get(&n("ssm_in.weight"), 2 * di, dm, None)?,
        in_proj_bias: v.f32_opt(&n("ssm_in.bias"), 2 * di)?,
        conv_w: v.f32(&n("ssm_conv1d.weight"), di, dc, Some(&conv_alt))?,
        conv_b: v.f32_opt(&n("ssm_conv1d.bias"), di)?,
        x_proj: v.get(&n("ssm_x.weight"), dr + 2 * ds, di, None)?,
        dt_proj: v.get(&n("ssm_dt.weight"), di, dr, None)?,
        dt_proj_t: None,
        x_proj_t: None,
        dt_bias: v.f32(&n("ssm_dt.bias"), 1, di, None)?,
        a: v.f32(&n("ssm_a"), di, ds, None)?,
        d: v.f32(&n("ssm_d"), 1, di, None)?,
        out_proj: v.get(&n("ssm_out.weight"), dm, di, None)?,
        out_proj_bias: v.f32_opt(&n("ssm_out.bias"), dm)?,
    })
}

/// Builds the weights of a `mamba` file whose config is `c`.
pub fn lm_weights(f: &GgufFile, c: &LmConfig, backing: &Arc<Backing>) -> Result<LmWeights> {
    let v = Views { f, backing };
    let mut layers = Vec::with_capacity(c.n_layers);
    for i in 0..c.n_layers {
        let mixer = mixer_weights(&v, i, c.d_model, c.d_inner, c.d_state, c.d_conv, c.dt_rank)?;
        let norm = v.f32(&format!("blk.{i}.attn_norm.weight"), 1, c.d_model, None)?;
        layers.push(LmLayer { norm, mixer });
    }
    if f.tensor(&format!("blk.{}.ssm_in.weight", c.n_layers))
        .is_some()
    {
        return Err(Error::format(format!(
            "GGUF: the file has more blocks than mamba.block_count = {}",
            c.n_layers
        )));
    }
    Ok(LmWeights {
        embedding: v.get("token_embd.weight", c.padded_vocab, c.d_model, None)?,
        layers,
        norm_f: v.f32("output_norm.weight", 1, c.d_model, None)?,
        lm_head: v.opt("output.weight", c.padded_vocab, c.d_model)?,
    })
}

/// Loads a Mamba-1 language model from a GGUF file whose bytes are `backing`
/// (normally the memory-mapped file). Weights are used in place; only the small
/// tensors the model needs as f32 (norms, biases, conv weight, A, D) are copied
/// when stored in another type. `path` names the file in messages.
///
/// When the file carries a tokenizer (`tokenizer.ggml.model`), it is built with
/// [`crate::tokenizer::Tokenizer::from_gguf`]; a tokenizer error fails the load.
pub fn load(path: &str, backing: Arc<Backing>) -> Result<Model> {
    let bytes = backing.bytes();
    let ctx = |e: Error| e.context(path);
    let f = GgufFile::parse(bytes).map_err(ctx)?;
    let config = lm_config(&f).map_err(ctx)?;
    let weights = lm_weights(&f, &config, &backing).map_err(ctx)?;
    let mut model = Model::new_lm(config, weights, path, bytes.len() as u64)?;
    if let Some(v) = vocab(&f).map_err(ctx)? {
        let tok = crate::tokenizer::Tokenizer::from_gguf(v)
            .map_err(|e| e.context(format!("{path}: tokenizer")))?;
        model.tokenizer = Some(Arc::new(tok));
    }
    Ok(model)
}

/// Maps the file at `path` and [`load`]s it.
pub fn load_path(path: &str) -> Result<Model> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, &e))?;
    // As with every mmap-based loader, the file must not be truncated or
    // rewritten while the model is alive.
    let map = super::map_file(&file, path)?;
    load(path, Arc::new(Backing::Mmap(map)))
}
