//! File loaders: bytes in, a [`crate::model::Model`] out.
//!
//! - [`v1`]: the C project's "Mamb" files (float32, int8/fp16/bfloat8 + .scales);
//! - [`gguf`]: GGUF, the native format (arch `mamba`).
//!
//! [`load`] maps the file and picks the loader by its magic. Adding a format
//! means adding one module and one arm here; the model knows no formats.

pub mod classifier;
pub mod gguf;
pub mod v1;
pub mod v1_classifier;

use crate::error::{Error, ErrorKind, Result};
use crate::model::classifier::ClassifierModel;
use crate::model::{Backing, Model};
use std::sync::Arc;

/// How to load a model file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Read the whole file into memory instead of mapping it. Protects against
    /// the file being truncated or rewritten while the model is in use.
    pub copy: bool,
    /// Read one-byte v1 weights as the C project's "bfloat8" instead of int8
    /// (the file cannot tell them apart; int8 is what the C program assumes).
    pub legacy_bfloat8: bool,
    /// Linux: if the mapping comes out in 4 KiB pages because the page cache
    /// holds the file in small pages (a file just written, or read before
    /// with no hint), drop this file's cached pages that no process maps and
    /// map it again, so they are read back in 2 MiB pages where the kernel
    /// and the file system can (see [`map_file`]). Costs one read of the
    /// file from disk, once: later loads find the 2 MiB pages cached. Also
    /// turned on by the environment variable `MAMBA_HUGE_PAGES=1` (the way
    /// for C callers).
    pub huge_pages: bool,
}

/// Whether `MAMBA_HUGE_PAGES=1` asks every load for [`LoadOptions::huge_pages`].
pub fn huge_pages_from_env() -> bool {
    std::env::var("MAMBA_HUGE_PAGES").is_ok_and(|v| v.trim() == "1")
}

/// Maps `file` read-only and reads it in. On Linux the mapping is first
/// advised `MADV_HUGEPAGE`, so that pages the kernel reads in for it may be
/// 2 MiB ones (kernels and file systems with large page-cache folios; pages
/// already cached stay as they are), then populated with
/// `MADV_POPULATE_READ`, or by touching each page where that is missing.
/// Pages of 2 MiB spare the TLB a miss every 4 KiB of a weight stream: on
/// this project's host 2, a batch-8 f16 step ran 2.5–19% faster (4 paired runs,
/// the same file mapped both ways in one process), one sequence ~1%.
pub(crate) fn map_file(file: &std::fs::File, path: &str) -> Result<memmap2::Mmap> {
    // SAFETY: the map is read-only. If another process truncates the file
    // while it is mapped, reads past the new end raise SIGBUS: use `copy` for
    // files that may change (documented in the README).
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(|e| Error::io(path, &e))?;
    #[cfg(target_os = "linux")]
    {
        // Hints only: an older kernel refusing either is no error.
        let _ = map.advise(memmap2::Advice::HugePage);
        if map.advise(memmap2::Advice::PopulateRead).is_ok() {
            return Ok(map);
        }
    }
    // Populate the page tables now: the first forward would otherwise take
    // one page fault per 4 KiB of weights.
    let mut sum = 0u8;
    for off in (0..map.len()).step_by(4096) {
        // SAFETY: off < len, inside the mapping.
        sum = sum.wrapping_add(unsafe { std::ptr::read_volatile(map.as_ptr().add(off)) });
    }
    std::hint::black_box(sum);
    Ok(map)
}

/// The share of the file mapping holding `at` that the kernel maps in 2 MiB
/// pages (`FilePmdMapped` over `Size` in `/proc/self/smaps`), if it can tell.
#[cfg(target_os = "linux")]
pub fn huge_page_share(at: *const u8) -> Option<f64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    smaps_huge_share(&smaps, at as usize)
}

/// [`huge_page_share`]'s parser, for one `smaps` text.
pub fn smaps_huge_share(smaps: &str, at: usize) -> Option<f64> {
    // A mapping's header: "start-end perms offset dev inode path", in hex.
    let range = |l: &str| -> Option<(usize, usize)> {
        let (a, b) = l.split_whitespace().next()?.split_once('-')?;
        Some((
            usize::from_str_radix(a, 16).ok()?,
            usize::from_str_radix(b, 16).ok()?,
        ))
    };
    let mut lines = smaps
        .lines()
        .skip_while(|l| !range(l).is_some_and(|(a, b)| (a..b).contains(&at)));
    lines.next()?;
    let (mut size, mut pmd) = (None, None);
    for l in lines {
        let mut w = l.split_whitespace();
        match w.next() {
            Some("Size:") => size = w.next().and_then(|v| v.parse::<f64>().ok()),
            Some("FilePmdMapped:") => pmd = w.next().and_then(|v| v.parse::<f64>().ok()),
            // The next mapping's header: "start-end perms ...".
            Some(k) if !k.ends_with(':') => break,
            _ => {}
        }
    }
    let (size, pmd) = (size?, pmd?);
    (size > 0.0).then(|| pmd / size)
}

/// Maps (or reads) a file into a [`Backing`]. `huge_pages`: see
/// [`LoadOptions::huge_pages`].
pub fn open_backing(path: &str, copy: bool) -> Result<Arc<Backing>> {
    open_backing_with(path, copy, huge_pages_from_env())
}

/// [`open_backing`] with [`LoadOptions::huge_pages`] given.
pub fn open_backing_with(path: &str, copy: bool, huge_pages: bool) -> Result<Arc<Backing>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, &e))?;
    let len = file.metadata().map_err(|e| Error::io(path, &e))?.len();
    if len == 0 {
        return Err(Error::format(format!("{path}: the file is empty")));
    }
    if copy {
        let mut v = vec![0u64; (len as usize).div_ceil(8)];
        // SAFETY: viewing the u64 buffer as bytes for reading into it.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, len as usize) };
        use std::io::Read;
        let mut f = file;
        f.read_exact(buf).map_err(|e| Error::io(path, &e))?;
        // Trim to the exact length by keeping the padded tail zeroed; views check `len`.
        return Ok(Arc::new(Backing::HeapExact(v, len as usize)));
    }
    let mut map = map_file(&file, path)?;
    #[cfg(target_os = "linux")]
    if huge_pages && map.len() >= 4 << 20 {
        // Mostly 4 KiB pages: the cache held the file in small pages. Drop
        // the cached pages nobody maps (clean ones: the file reads back the
        // same) and read it again under the hint. Pages still mapped by
        // another process stay, and stay small.
        if huge_page_share(map.as_ptr()).is_some_and(|s| s < 0.5) {
            drop(map);
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open descriptor; advice only.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            map = map_file(&file, path)?;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = huge_pages;
    Ok(Arc::new(Backing::Mmap(map)))
}

/// Maps (or reads) the file at `path` as `opts` ask.
fn open_for(path: &str, opts: &LoadOptions) -> Result<Arc<Backing>> {
    open_backing_with(path, opts.copy, opts.huge_pages || huge_pages_from_env())
}

/// Loads a model file, detecting its format from the first bytes.
pub fn load(path: &str, opts: &LoadOptions) -> Result<Model> {
    load_lm(path, open_for(path, opts)?, opts)
}

/// [`load`] from the file's bytes, already mapped or read.
fn load_lm(path: &str, backing: Arc<Backing>, opts: &LoadOptions) -> Result<Model> {
    let bytes = backing.bytes();
    if bytes.len() < 4 {
        return Err(Error::format(format!(
            "{path}: file too short ({} bytes)",
            bytes.len()
        )));
    }
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let result = if &bytes[..4] == b"GGUF" {
        gguf::load(path, backing.clone())
    } else if magic == v1::MAGIC {
        v1::load(path, backing.clone(), opts.legacy_bfloat8)
    } else {
        Err(Error::new(
            ErrorKind::Format,
            format!(
                "{path}: unknown file format (magic {:02x?}; expected GGUF or 'Mamb' v1)",
                &bytes[..4]
            ),
        ))
    };
    result
}

/// A loaded model of either family.
pub enum AnyModel {
    Lm(Model),
    Classifier(ClassifierModel),
}

/// Loads a language model or a classifier: GGUF by `general.architecture`,
/// v1 files by which family's reading makes the file size exact.
pub fn load_any(path: &str, opts: &LoadOptions) -> Result<AnyModel> {
    let backing = open_for(path, opts)?;
    let bytes = backing.bytes();
    if bytes.len() >= 4 && &bytes[..4] == b"GGUF" {
        let f = gguf::GgufFile::parse(bytes).map_err(|e| e.context(path))?;
        if f.get_str_opt("general.architecture").ok().flatten() == Some(classifier::ARCH) {
            return Ok(AnyModel::Classifier(classifier::load(
                path,
                &f,
                backing.clone(),
            )?));
        }
    } else if bytes.len() >= 4
        && u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == v1::MAGIC
    {
        if let Some(m) = v1_classifier::try_load(path, &backing)? {
            return Ok(AnyModel::Classifier(m));
        }
    }
    // A language model, from the same mapping (not the file opened again).
    load_lm(path, backing, opts).map(AnyModel::Lm)
}

#[cfg(test)]
mod tests {
    use super::smaps_huge_share;

    const SMAPS: &str = "\
7f0000000000-7f0000400000 r--s 00000000 fe:00 123                        /m/a.gguf
Size:               4096 kB
Rss:                4096 kB
FilePmdMapped:      2048 kB
VmFlags: rd sh mr mw me ms hg
7f0000400000-7f0000401000 rw-p 00000000 00:00 0
Size:                  4 kB
FilePmdMapped:         0 kB
7f0001000000-7f0001200000 r--s 00000000 fe:00 124                        /m/b.gguf
Size:               2048 kB
Rss:                2048 kB
";

    #[test]
    fn smaps_share_reads_the_mapping_that_holds_the_address() {
        // Anywhere inside the first mapping: half of it in 2 MiB pages.
        assert_eq!(smaps_huge_share(SMAPS, 0x7f00_0000_0000), Some(0.5));
        assert_eq!(smaps_huge_share(SMAPS, 0x7f00_003f_ffff), Some(0.5));
        // The next one, not the first's fields.
        assert_eq!(smaps_huge_share(SMAPS, 0x7f00_0040_0000), Some(0.0));
        // No FilePmdMapped line (an older kernel): cannot tell.
        assert_eq!(smaps_huge_share(SMAPS, 0x7f00_0100_0000), None);
        // Outside every mapping.
        assert_eq!(smaps_huge_share(SMAPS, 0x7f00_0080_0000), None);
        assert_eq!(smaps_huge_share("", 0x1000), None);
    }
}
