//! `ros`: the ros command, and the one multi-call binary of the OS userland. Invoked by
//! another name (a symlink such as `system-docker`), it runs that tool instead, so the OS
//! image carries one binary.

mod cloud_init;
mod config;
mod install;
mod netconf;
mod power;
mod service;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use ros_services::Paths;

#[derive(Parser, Debug)]
#[command(
    name = "ros",
    version,
    about = "Control a ros host",
    disable_help_subcommand = true
)]
struct Cli {
    /// The system-docker socket [default: /run/system-docker.sock under --root].
    /// DOCKER_HOST is ignored: in the console it points at the user's engine.
    #[arg(short = 'H', long = "host", value_name = "unix:///PATH")]
    host: Option<String>,
    /// Relocate every path ros reads or writes (config, state, default socket) under DIR
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
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
    /// Manage system services (containers on system-docker)
    Service(service::ServiceArgs),
    /// Read and change the config (cloud-config)
    Config(config::ConfigArgs),
    /// Install ros to a disk from the live system (`ros install -d /dev/vda`)
    Install(install::InstallArgs),
    /// Configure the network: loopback, then DHCP on one interface (foreground)
    Netconf(netconf::NetconfArgs),
    /// Fetch and apply the instance's cloud-config (datasources)
    #[command(name = "cloud-init")]
    CloudInit(cloud_init::CloudInitArgs),
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
        "init" => ros_init::main(),
        "poweroff" | "reboot" | "halt" | "shutdown" => power::main(&name, &rest),
        _ => run_ros(),
    };
    std::process::exit(code);
}

/// Log records to stderr, each line after `prefix`.
struct StderrLogger(&'static str);

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        // At boot and shutdown, the seconds since the kernel started, as the kernel's own
        // lines show them.
        match ros_init::early::uptime() {
            Some(t) if self.0.starts_with("ros: ") => {
                eprintln!("[{t:>9.3}] {}{}", self.0, record.args())
            }
            _ => eprintln!("{}{}", self.0, record.args()),
        }
    }
    fn flush(&self) {}
}

/// Sends `log` records to stderr (the first call wins).
pub fn log_to_stderr(prefix: &'static str, level: log::LevelFilter) {
    if log::set_boxed_logger(Box::new(StderrLogger(prefix))).is_ok() {
        log::set_max_level(level);
    }
}

fn run_ros() -> i32 {
    let cli = Cli::parse();
    let paths = Paths::new(&cli.root);
    match cli.command {
        Command::Version => {
            println!("ros version {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::SystemDocker { args } => system_docker::main(args),
        Command::Service(args) => {
            let host = cli.host.unwrap_or_else(|| paths.default_host());
            service::run(&host, &paths, args)
        }
        Command::Netconf(args) => netconf::run(&cli.root, args),
        Command::Install(args) => install::run(args),
        Command::Config(args) => config::run(&cli.root, args),
        Command::CloudInit(args) => cloud_init::run(&cli.root, args),
    }
}
