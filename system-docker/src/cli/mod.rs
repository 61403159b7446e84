//! The `system-docker` command-line client: a Docker Engine API client that behaves like
//! the stock `docker` CLI for the commands a system engine needs (`ps`, `images`, `load`,
//! `pull`, `run`, `create`, `start`, `stop`, `restart`, `kill`, `rm`, `rmi`, `logs`,
//! `inspect`, `exec`, `events`, `info`, `version`, `tag`, `wait`, and the `container …` /
//! `image …` forms).
//!
//! It owns argument parsing, the HTTP client ([`client`]), output formatting ([`format`],
//! [`tabwriter`], [`units`], [`progress`]) and stream handling ([`stream`]). It does not own
//! the daemon: `system-docker daemon …` and the hidden `shim` are handed to the engine's own
//! entry points.

use crate::client;

mod commands;
mod format;
mod progress;
mod reference;
mod stream;
mod tabwriter;
mod units;

use std::ffi::OsString;

use clap::{CommandFactory, Parser, Subcommand};

use commands::{container, exec, image, inspect, run, system};

const AFTER_HELP: &str = "\
system-docker talks to the system engine at unix:///run/system-docker.sock unless -H says
otherwise. It ignores DOCKER_HOST on purpose: on a ros host DOCKER_HOST points at the user
engine, which the plain `docker` command manages.

The engine itself: 'system-docker daemon [OPTIONS]' (see 'system-docker daemon --help').

Run 'system-docker COMMAND --help' for more information on a command.";

const RUN_USAGE: &str = "system-docker run [OPTIONS] IMAGE [COMMAND] [ARG...]";
const CREATE_USAGE: &str = "system-docker create [OPTIONS] IMAGE [COMMAND] [ARG...]";
const EXEC_USAGE: &str = "system-docker exec [OPTIONS] CONTAINER COMMAND [ARG...]";
const CONTAINER_RUN_USAGE: &str = "system-docker container run [OPTIONS] IMAGE [COMMAND] [ARG...]";
const CONTAINER_CREATE_USAGE: &str =
    "system-docker container create [OPTIONS] IMAGE [COMMAND] [ARG...]";
const CONTAINER_EXEC_USAGE: &str =
    "system-docker container exec [OPTIONS] CONTAINER COMMAND [ARG...]";

#[derive(Parser, Debug)]
#[command(
    name = "system-docker",
    about = "A client for the system container engine",
    disable_version_flag = true,
    after_help = AFTER_HELP,
    subcommand_value_name = "COMMAND"
)]
struct Cli {
    /// Daemon socket to connect to (unix:///path); DOCKER_HOST is ignored
    #[arg(short = 'H', long = "host", value_name = "HOST", global = true)]
    host: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List containers
    Ps(container::PsArgs),
    /// List images
    Images(image::ImagesArgs),
    /// Load an image from a tar archive or STDIN
    Load(image::LoadArgs),
    /// Download an image from a registry
    Pull(image::PullArgs),
    /// Create and run a new container from an image
    #[command(disable_help_flag = true, override_usage = RUN_USAGE)]
    Run(run::RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true, override_usage = CREATE_USAGE)]
    Create(run::RunArgs),
    /// Start one or more stopped containers
    Start(container::StartArgs),
    /// Stop one or more running containers
    Stop(container::StopArgs),
    /// Restart one or more containers
    Restart(container::StopArgs),
    /// Kill one or more running containers
    Kill(container::KillArgs),
    /// Remove one or more containers
    Rm(container::RmArgs),
    /// Remove one or more images
    Rmi(image::RmiArgs),
    /// Fetch the logs of a container
    Logs(container::LogsArgs),
    /// Return low-level information on Docker objects
    Inspect(inspect::InspectArgs),
    /// Execute a command in a running container
    #[command(override_usage = EXEC_USAGE)]
    Exec(exec::ExecArgs),
    /// Get real time events from the server
    Events(system::EventsArgs),
    /// Display system-wide information
    Info(system::FormatArgs),
    /// Show the version information
    Version(system::FormatArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(image::TagArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(container::WaitArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Subcommand, Debug)]
enum ContainerCommand {
    /// List containers
    #[command(name = "ls", visible_aliases = ["ps", "list"])]
    Ls(container::PsArgs),
    /// Create and run a new container from an image
    #[command(disable_help_flag = true, override_usage = CONTAINER_RUN_USAGE)]
    Run(run::RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true, override_usage = CONTAINER_CREATE_USAGE)]
    Create(run::RunArgs),
    /// Start one or more stopped containers
    Start(container::StartArgs),
    /// Stop one or more running containers
    Stop(container::StopArgs),
    /// Restart one or more containers
    Restart(container::StopArgs),
    /// Kill one or more running containers
    Kill(container::KillArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(container::RmArgs),
    /// Fetch the logs of a container
    Logs(container::LogsArgs),
    /// Display detailed information on one or more containers
    Inspect(inspect::TypedInspectArgs),
    /// Execute a command in a running container
    #[command(override_usage = CONTAINER_EXEC_USAGE)]
    Exec(exec::ExecArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(container::WaitArgs),
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// List images
    #[command(name = "ls", visible_alias = "list")]
    Ls(image::ImagesArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(image::RmiArgs),
    /// Display detailed information on one or more images
    Inspect(inspect::TypedInspectArgs),
    /// Load an image from a tar archive or STDIN
    Load(image::LoadArgs),
    /// Download an image from a registry
    Pull(image::PullArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(image::TagArgs),
}

/// Runs the client with `args` (without the program name); returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    match args.first().and_then(|a| a.to_str()) {
        Some("daemon") => return run_daemon(args[1..].to_vec()),
        Some("shim") => return run_shim(args[1..].to_vec()),
        _ => {}
    }
    let argv = std::iter::once(OsString::from("system-docker")).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                // docker: a missing argument is an ordinary error, a bad flag a usage error.
                ErrorKind::MissingRequiredArgument => 1,
                ErrorKind::UnknownArgument if !is_flag_error(&e) => 1,
                _ => 125,
            };
            let _ = e.print();
            return code;
        }
    };
    if cli.version {
        println!("system-docker version {}", crate::VERSION);
        return 0;
    }
    let Some(command) = cli.command else {
        let _ = Cli::command().print_help();
        return 0;
    };
    let host = cli
        .host
        .unwrap_or_else(|| format!("unix://{}", crate::DEFAULT_SOCKET));
    let client = match client::Client::new(&host) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("system-docker: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let code = runtime.block_on(dispatch(&client, command));
    // A task may still be blocked reading our stdin; don't wait for it.
    runtime.shutdown_background();
    match code {
        Ok(code) => code,
        Err(e) => commands::report(e),
    }
}

async fn dispatch(client: &client::Client, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => {
            container::ps(client, a).await
        }
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => image::images(client, a).await,
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => image::load(client, a).await,
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => image::pull(client, a).await,
        Command::Run(a) | Command::Container(ContainerCommand::Run(a)) => run::run(client, a).await,
        Command::Create(a) | Command::Container(ContainerCommand::Create(a)) => {
            run::create(client, a).await
        }
        Command::Start(a) | Command::Container(ContainerCommand::Start(a)) => {
            container::start(client, a).await
        }
        Command::Stop(a) | Command::Container(ContainerCommand::Stop(a)) => {
            container::stop(client, a, "stop").await
        }
        Command::Restart(a) | Command::Container(ContainerCommand::Restart(a)) => {
            container::stop(client, a, "restart").await
        }
        Command::Kill(a) | Command::Container(ContainerCommand::Kill(a)) => {
            container::kill(client, a).await
        }
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => {
            container::rm(client, a).await
        }
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => image::rmi(client, a).await,
        Command::Logs(a) | Command::Container(ContainerCommand::Logs(a)) => {
            container::logs(client, a).await
        }
        Command::Wait(a) | Command::Container(ContainerCommand::Wait(a)) => {
            container::wait(client, a).await
        }
        Command::Inspect(a) => inspect::inspect(client, a).await,
        Command::Container(ContainerCommand::Inspect(a)) => {
            inspect::inspect(client, a.with_type(inspect::Kind::Container)).await
        }
        Command::Image(ImageCommand::Inspect(a)) => {
            inspect::inspect(client, a.with_type(inspect::Kind::Image)).await
        }
        Command::Exec(a) | Command::Container(ContainerCommand::Exec(a)) => {
            exec::exec(client, a).await
        }
        Command::Events(a) => system::events(client, a).await,
        Command::Info(a) => system::info(client, a).await,
        Command::Version(a) => system::version(client, a).await,
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => image::tag(client, a).await,
    }
}

/// Whether a parse error is about a flag (rather than a surplus argument).
fn is_flag_error(e: &clap::Error) -> bool {
    use clap::error::{ContextKind, ContextValue};
    match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.starts_with('-'),
        _ => true,
    }
}

/// `system-docker daemon …`: the engine itself, owned by the daemon module.
fn run_daemon(args: Vec<OsString>) -> i32 {
    crate::daemon::run_from_args(args)
}

/// `system-docker shim …` (hidden): the per-container supervisor, owned by the runtime.
fn run_shim(args: Vec<OsString>) -> i32 {
    crate::runtime::shim_main(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("system-docker").chain(args.iter().copied()))
    }

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn host_before_or_after_the_command() {
        let cli = parse(&["-H", "unix:///tmp/x.sock", "ps", "-a"]).unwrap();
        assert_eq!(cli.host.as_deref(), Some("unix:///tmp/x.sock"));
        let cli = parse(&["ps", "--host", "unix:///tmp/y.sock"]).unwrap();
        assert_eq!(cli.host.as_deref(), Some("unix:///tmp/y.sock"));
    }

    #[test]
    fn aliases() {
        assert!(matches!(
            parse(&["container", "ls", "-q"]).unwrap().command,
            Some(Command::Container(ContainerCommand::Ls(_)))
        ));
        assert!(matches!(
            parse(&["image", "list"]).unwrap().command,
            Some(Command::Image(ImageCommand::Ls(_)))
        ));
        assert!(matches!(
            parse(&["container", "remove", "x"]).unwrap().command,
            Some(Command::Container(ContainerCommand::Rm(_)))
        ));
    }

    #[test]
    fn version_flag() {
        assert!(parse(&["-v"]).unwrap().version);
        assert!(parse(&["--version"]).unwrap().version);
    }
}
