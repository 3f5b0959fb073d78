//! herald's command line: arguments are parsed here, and [`herald::cli::run`] does the rest.

use clap::Parser;
use std::process::ExitCode;

// Linked for its `malloc`, which replaces glibc's for the whole process (see Cargo.toml).
#[cfg(target_os = "linux")]
use tikv_jemalloc_sys as _;

/// jemalloc's settings, read when it starts: freed pages go back to the system within half a
/// second instead of ten. Draining a large queue frees as fast as it allocates; with the default,
/// the pages freed in the last ten seconds stayed resident and doubled the peak RSS.
/// (`MALLOC_CONF` in the environment still overrides it.)
#[cfg(target_os = "linux")]
#[no_mangle]
#[used]
pub static malloc_conf: JemallocConf =
    JemallocConf(c"dirty_decay_ms:500,muzzy_decay_ms:0".as_ptr());

/// A C string pointer that may live in a static (it points at a literal, never written).
#[cfg(target_os = "linux")]
#[repr(transparent)]
pub struct JemallocConf(*const std::ffi::c_char);

#[cfg(target_os = "linux")]
unsafe impl Sync for JemallocConf {}

fn main() -> ExitCode {
    herald::cli::run(herald::cli::Cli::parse())
}
