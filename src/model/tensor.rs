//! Typed, read-only views of weight tensors.
//!
//! A [`Tensor`] points into memory owned by the [`crate::model::Model`] that
//! holds it: either the memory-mapped model file (weights used in place) or a
//! heap buffer the loader filled when it had to convert something. The model
//! keeps that memory alive for as long as the tensor exists, which is why the
//! raw pointer inside is sound to share across threads.

use crate::error::{Error, Result};
use std::sync::Arc;

/// Element encodings a weight matrix may have. Compute is always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    BF16,
    /// llama.cpp's Q8_0: blocks of 32 int8 with one f16 scale (34 bytes/block).
    Q8_0,
    /// Row-wise 8-bit for rows of any length: each row is an f32 scale followed
    /// by `cols` int8 values, padded to a multiple of 4 bytes.
    Q8Row,
    /// Plain int8 (the C project's legacy files; the tensor-wide `scale` applies).
    I8,
    /// The C project's "bfloat8": 1 sign, 5 exponent (bias 15), 2 mantissa bits.
    BF8,
}

impl DType {
    /// Bytes one row of `cols` elements occupies.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        match self {
            DType::F32 => cols.checked_mul(4),
            DType::F16 | DType::BF16 => cols.checked_mul(2),
            DType::Q8_0 => {
                if cols % 32 != 0 {
                    None
                } else {
                    Some(cols / 32 * 34)
                }
            }
            DType::Q8Row => Some(4 + cols.checked_add(3)? / 4 * 4),
            DType::I8 | DType::BF8 => Some(cols),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Q8_0 => "q8_0",
            DType::Q8Row => "q8_row",
            DType::I8 => "int8",
            DType::BF8 => "bfloat8",
        }
    }
}

/// Keeps the memory behind tensors alive: the mapping or converted buffers.
pub enum Backing {
    Mmap(memmap2::Mmap),
    /// 8-byte aligned heap memory (stored as u64 so f32/f16 views are aligned).
    Heap(Vec<u64>),
    /// Like `Heap`, holding a file copied into memory: only the first `.1` bytes count.
    HeapExact(Vec<u64>, usize),
}

impl Backing {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => &m[..],
            Backing::Heap(v) => {
                // SAFETY: u64 memory reinterpreted as bytes, same length in bytes.
                unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 8) }
            }
            Backing::HeapExact(v, len) => {
                // SAFETY: as above; len <= v.len() * 8 by construction.
                unsafe {
                    std::slice::from_raw_parts(v.as_ptr() as *const u8, (*len).min(v.len() * 8))
                }
            }
        }
    }
}

/// A 2-D (rows × cols, row-major) or 1-D (rows = 1) weight tensor.
#[derive(Clone)]
pub struct Tensor {
    ptr: *const u8,
    nbytes: usize,
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
    /// Tensor-wide multiplier (the legacy formats' per-tensor scale); 1.0 otherwise.
    pub scale: f32,
    /// The same weights in the VNNI kernel's layout, when the loader
    /// converted them (8-bit matrices on AVX-512 VNNI; `kernels::panels`).
    /// The stored bytes stay mapped for the other kernels.
    pub panels: Option<Arc<crate::kernels::panels::Panels>>,
    _keep: Arc<Backing>,
}

// SAFETY: the pointed-to memory is immutable and owned by `_keep`, which is
// itself Send + Sync (an Mmap or a Vec), so sharing views across threads is fine.
unsafe impl Send for Tensor {}
unsafe impl Sync for Tensor {}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({}, {}x{})",
            self.dtype.name(),
            self.rows,
            self.cols
        )
    }
}

impl Tensor {
    /// A view of `backing[offset..]` holding rows × cols elements of `dtype`.
    /// Checks bounds, size arithmetic and alignment; `name` goes into errors.
    pub fn view(
        backing: &Arc<Backing>,
        offset: usize,
        dtype: DType,
        rows: usize,
        cols: usize,
        name: &str,
    ) -> Result<Tensor> {
        let row_bytes = dtype.row_bytes(cols).ok_or_else(|| {
            Error::format(format!(
                "tensor {name}: {cols} columns cannot be stored as {}",
                dtype.name()
            ))
        })?;
        let nbytes = row_bytes
            .checked_mul(rows)
            .ok_or_else(|| Error::format(format!("tensor {name}: size {rows}x{cols} overflows")))?;
        let bytes = backing.bytes();
        let end = offset.checked_add(nbytes).filter(|&e| e <= bytes.len()).ok_or_else(|| {
            Error::format(format!(
                "tensor {name} ({rows}x{cols} {}) at offset {offset} needs {nbytes} bytes but the file has {}",
                dtype.name(),
                bytes.len()
            ))
        })?;
        let _ = end;
        let ptr = bytes[offset..].as_ptr();
        let align = match dtype {
            DType::F32 | DType::Q8Row => 4,
            DType::F16 | DType::BF16 => 2,
            _ => 1,
        };
        if (ptr as usize) % align != 0 {
            return Err(Error::format(format!(
                "tensor {name} at offset {offset} is not aligned to {align} bytes"
            )));
        }
        Ok(Tensor {
            ptr,
            nbytes,
            dtype,
            rows,
            cols,
            scale: 1.0,
            panels: None,
            _keep: backing.clone(),
        })
    }

    /// An f32 tensor on the heap holding `data` (rows × cols).
    pub fn from_f32(data: &[f32], rows: usize, cols: usize) -> Tensor {
        assert_eq!(data.len(), rows * cols);
        let mut v = vec![0u64; (data.len() + 1) / 2];
        // SAFETY: v has at least data.len()*4 bytes, u64 alignment >= f32 alignment.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), v.as_mut_ptr() as *mut f32, data.len())
        };
        let backing = Arc::new(Backing::Heap(v));
        Tensor::view(&backing, 0, DType::F32, rows, cols, "converted").expect("heap view")
    }

    /// A tensor on the heap holding a copy of `bytes`: rows × cols of
    /// `dtype`, stored as in a file (8-byte aligned, so any type's view is).
    pub fn from_bytes(
        bytes: &[u8],
        dtype: DType,
        rows: usize,
        cols: usize,
        name: &str,
    ) -> Result<Tensor> {
        let mut v = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: v holds at least bytes.len() bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr() as *mut u8, bytes.len())
        };
        Tensor::view(&Arc::new(Backing::Heap(v)), 0, dtype, rows, cols, name)
    }

    pub fn with_scale(mut self, scale: f32) -> Tensor {
        self.scale = scale;
        self
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr..ptr+nbytes was bounds-checked in `view` and is kept alive by `_keep`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.nbytes) }
    }

    pub fn row_bytes(&self) -> usize {
        self.dtype.row_bytes(self.cols).unwrap_or(0)
    }

    /// Whether the bytes are the memory-mapped model file (not a heap copy).
    pub fn is_mapped(&self) -> bool {
        matches!(&*self._keep, Backing::Mmap(_))
    }

    /// Hands the memory-mapped file pages that lie wholly inside rows
    /// `rows` back to the kernel (`madvise(MADV_DONTNEED)`): they stop
    /// counting in the process's memory, and a later read maps them again
    /// from the file, unchanged. No effect on heap-held tensors.
    pub fn release_rows(&self, rows: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let Backing::Mmap(_) = &*self._keep {
            let rb = self.row_bytes();
            let start = self.ptr as usize + rows.start.min(self.rows) * rb;
            let end = self.ptr as usize + rows.end.min(self.rows) * rb;
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
            let (a, e) = (start.div_ceil(page) * page, end / page * page);
            if e > a {
                // SAFETY: [a, e) lies inside this tensor's bytes, inside the
                // mapping `_keep` holds; the mapping is read-only and backed
                // by the file, so dropped pages read back the same bytes.
                unsafe {
                    // The file may be mapped in 2 MiB pages: a read of a
                    // neighbouring tensor would map a whole one again,
                    // released rows included. 4 KiB pages over these rows.
                    #[cfg(target_os = "linux")]
                    libc::madvise(a as *mut libc::c_void, e - a, libc::MADV_NOHUGEPAGE);
                    libc::madvise(a as *mut libc::c_void, e - a, libc::MADV_DONTNEED);
                }
            }
        }
        #[cfg(not(unix))]
        let _ = rows;
    }

    /// Raw bytes of row `r`.
    pub fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.bytes()[r * rb..(r + 1) * rb]
    }

    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as f32, when stored as f32 with scale 1 (vectors, norms, A, D, ...).
    pub fn as_f32(&self) -> &[f32] {
        assert!(
            self.dtype == DType::F32,
            "as_f32 on a {} tensor",
            self.dtype.name()
        );
        // SAFETY: alignment and length were checked in `view`.
        unsafe { std::slice::from_raw_parts(self.ptr as *const f32, self.rows * self.cols) }
    }

    /// Reinterprets the bytes as a slice of T (checked alignment; used by kernels).
    pub fn as_slice<T: Copy>(&self) -> &[T] {
        let size = std::mem::size_of::<T>();
        assert!((self.ptr as usize) % std::mem::align_of::<T>() == 0);
        // SAFETY: alignment checked above, length rounded down to whole elements.
        unsafe { std::slice::from_raw_parts(self.ptr as *const T, self.nbytes / size) }
    }

    /// Every element converted to f32 (scale applied). For small tensors and tests.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.rows * self.cols];
        for r in 0..self.rows {
            crate::kernels::dequant_row(self, r, &mut out[r * self.cols..(r + 1) * self.cols]);
        }
        out
    }

    /// Replaces subnormal f32 weights (nonzero, below `f32::MIN_POSITIVE` in
    /// magnitude) by zero, in a heap copy; a tensor without any stays as it
    /// is (mapped). Products with subnormal operands take microcode assists
    /// on Intel CPUs (~100+ cycles each): a trained keyword spotter with 4%
    /// of its weights subnormal ran 10x slower on one. The change to any
    /// product is below 1.2e-38 per weight. Other dtypes are left alone.
    pub fn flush_subnormals(&mut self) {
        if self.dtype != DType::F32 {
            return;
        }
        let w = self.as_f32();
        if !w.iter().any(|v| v.is_subnormal()) {
            return;
        }
        let flushed: Vec<f32> = w
            .iter()
            .map(|&v| if v.is_subnormal() { 0.0 } else { v })
            .collect();
        let (scale, panels) = (self.scale, self.panels.take());
        *self = Tensor::from_f32(&flushed, self.rows, self.cols).with_scale(scale);
        self.panels = panels;
    }

    /// This tensor as f32: the same view when already plain f32, else a converted copy.
    pub fn into_f32(self) -> Tensor {
        if self.dtype == DType::F32 && self.scale == 1.0 {
            self
        } else {
            Tensor::from_f32(&self.to_f32_vec(), self.rows, self.cols)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_subnormals_zeroes_only_subnormals_and_keeps_clean_tensors_in_place() {
        let tiny = f32::MIN_POSITIVE / 8.0;
        assert!(tiny.is_subnormal());
        let data = [1.0, -tiny, f32::MIN_POSITIVE, 0.0, tiny, -2.5];
        let mut t = Tensor::from_f32(&data, 2, 3).with_scale(0.5);
        t.flush_subnormals();
        assert_eq!(t.as_f32(), &[1.0, 0.0, f32::MIN_POSITIVE, 0.0, 0.0, -2.5]);
        assert_eq!((t.rows, t.cols, t.scale), (2, 3, 0.5));

        let mut clean = Tensor::from_f32(&[1.0, f32::MIN_POSITIVE, -3.0], 1, 3);
        let before = clean.bytes().as_ptr();
        clean.flush_subnormals();
        assert_eq!(
            clean.bytes().as_ptr(),
            before,
            "a clean tensor is not copied"
        );
    }
}
