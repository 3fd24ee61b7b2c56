//! The thresholds of glibc's malloc, which Python's objects of more than
//! 512 bytes come from (the `malloc_thresholds` application setting).
//!
//! A Python process on its own lets glibc raise its mmap threshold as large
//! blocks are freed (up to 32 MiB) and its trim threshold with it, so making
//! a 1 MB `bytes` again and again reuses the same memory. The BEAM calls
//! `mallopt(M_TRIM_THRESHOLD, 128 KiB)` and `mallopt(M_TOP_PAD, 0)` in
//! `erts_alloc_init` (its `+MYtt`/`+MYtp`), and setting either turns glibc's
//! adjustment off for the process. In a VM every block of 128 KiB or more is
//! then a fresh `mmap`, faulted in page by page and unmapped when freed:
//! about 0.4 ms per MB here, for a 1 MB argument or result once for Python's
//! object and once more for each copy (docs/benchmarks.md, "Large binaries").
//! Setting both thresholds again gives the reuse back.

/// Sets glibc's mmap and trim thresholds (bytes), unless the environment
/// already sets either (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`,
/// or `GLIBC_TUNABLES`), which is left to win. Whether they were set: false
/// on another libc, for a value glibc refuses, or when left to the
/// environment.
pub fn set_thresholds(mmap: usize, trim: usize) -> bool {
    let (Ok(mmap), Ok(trim)) = (i32::try_from(mmap), i32::try_from(trim)) else { return false };
    if chosen_by_environment() {
        return false;
    }
    set(mmap, trim)
}

fn chosen_by_environment() -> bool {
    std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("mmap_threshold") || t.contains("trim_threshold"))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set(mmap: i32, trim: i32) -> bool {
    // SAFETY: mallopt takes glibc's malloc lock; it may be called from any
    // thread at any time, and only changes when memory is mapped and
    // returned.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, mmap) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, trim) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set(_mmap: i32, _trim: i32) -> bool {
    false
}
