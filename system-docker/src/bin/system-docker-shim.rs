//! `system-docker-shim`: the per-container process on its own, a small binary so each
//! running container costs little memory. The daemon uses it when it sits beside the
//! daemon's binary, else `system-docker shim` (same code) in the multi-call binary.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(system_docker::runtime::shim_main(args));
}
