//! herald's command line: arguments are parsed here, and [`herald::cli::run`] does the rest.

use clap::Parser;
use std::process::ExitCode;

// Linked for its `malloc`, which replaces glibc's for the whole process (see Cargo.toml).
#[cfg(target_os = "linux")]
use tikv_jemalloc_sys as _;

fn main() -> ExitCode {
    herald::cli::run(herald::cli::Cli::parse())
}
