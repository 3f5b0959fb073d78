//! herald's command line: arguments are parsed here, and [`herald::cli::run`] does the rest.

use clap::Parser;
use std::process::ExitCode;

// Linked for its `malloc`, which replaces glibc's for the whole process (see Cargo.toml).
#[cfg(target_os = "linux")]
use tikv_jemalloc_sys as _;

/// jemalloc's settings, read when it starts (`MALLOC_CONF` in the environment still overrides
/// them):
/// - Freed pages go back to the system within half a second instead of ten. Draining a large queue
///   frees as fast as it allocates; with the default, the pages freed in the last ten seconds
///   stayed resident and doubled the peak RSS.
/// - Two arenas instead of four per core. Each arena keeps its own freed pages until they decay,
///   and threads take arenas in turn, so with eight a drain's freed pages were held by many of
///   them at once: the peak RSS while draining 100,000 jobs (`bench/delivery.sh`) was 34–35 MiB with
///   the default and 26 MiB with two arenas (25 MiB with one), at the same rate. Two rather than
///   one keep a second core's allocations off the first one's lock.
#[cfg(target_os = "linux")]
#[no_mangle]
#[used]
pub static malloc_conf: JemallocConf =
    JemallocConf(c"dirty_decay_ms:500,muzzy_decay_ms:0,narenas:2".as_ptr());

/// A C string pointer that may live in a static (it points at a literal, never written).
#[cfg(target_os = "linux")]
#[repr(transparent)]
pub struct JemallocConf(*const std::ffi::c_char);

#[cfg(target_os = "linux")]
unsafe impl Sync for JemallocConf {}

fn main() -> ExitCode {
    herald::cli::run(herald::cli::Cli::parse())
}
