//! The `flashsale-loadgen` binary: a thin entry over [`flashsale_loadgen::cli`], which owns the
//! command line; this file only picks the allocator.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    flashsale_loadgen::cli::main()
}
