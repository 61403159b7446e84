//! `ros`: the ros command, and the one multi-call binary of the OS userland. Invoked by
//! another name (a symlink such as `system-docker`), it runs that tool instead, so the OS
//! image carries one binary.

use std::ffi::OsString;
use std::path::Path;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ros",
    version,
    about = "Control a ros host",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the version of ros.
    Version,
    /// Run the system container engine's client or daemon (`ros system-docker ps`).
    #[command(name = "system-docker", disable_help_flag = true)]
    SystemDocker {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rest: Vec<OsString> = args.collect();
    let code = match name.as_str() {
        "system-docker" => system_docker::main(rest),
        _ => run_ros(),
    };
    std::process::exit(code);
}

fn run_ros() -> i32 {
    match Cli::parse().command {
        Command::Version => {
            println!("ros version {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::SystemDocker { args } => system_docker::main(args),
    }
}
