//! `system-docker`: the daemon (`system-docker daemon`) and the client, in one binary.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(system_docker::main(args));
}
