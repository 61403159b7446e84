//! `ros service …`: list, enable, disable, up, down, restart, logs, ps. Thin: the work is
//! `ros_services`'; this parses arguments, prints, and picks the exit code.

use std::io::Write;

use clap::{Args, Subcommand};
use ros_services::control::{self, LogOptions, LogStream};
use ros_services::reconcile::{self, Desired, UpOptions};
use ros_services::user_config::set_include;
use ros_services::{status, DockerEngine, Engine, Paths, ServiceReport, ServicesConfig};

#[derive(Args, Debug)]
pub struct ServiceArgs {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Subcommand, Debug)]
enum ServiceCommand {
    /// List configured and catalog services: enabled or not, and their containers' state
    List,
    /// Enable an optional catalog service (saved in the user's cloud-config.yml)
    Enable { name: String },
    /// Disable an optional catalog service (saved in the user's cloud-config.yml)
    Disable { name: String },
    /// Create, recreate and start service containers to match the config (all services,
    /// or the named ones and what they depend on)
    Up {
        names: Vec<String>,
        /// Recreate every container not marked io.ros.persistent, as a boot does
        #[arg(long)]
        fresh: bool,
    },
    /// Stop and remove the containers of services
    Down {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Restart the containers of services
    Restart {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show a service's logs
    Logs {
        /// Follow the output
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines
        #[arg(short = 'n', long, value_name = "N")]
        tail: Option<u64>,
        /// Show timestamps
        #[arg(short, long)]
        timestamps: bool,
        name: String,
    },
    /// List the service containers and their status
    Ps,
    /// (run by init at boot) bring the services up in phases and print the ready line
    #[command(hide = true)]
    Boot,
    /// (run by init at shutdown) stop every service, dependents first
    #[command(hide = true)]
    StopAll {
        /// Seconds each service gets before it is killed
        #[arg(long, default_value_t = 10)]
        timeout: i64,
    },
}

/// Prints what loading the config reported; true when it reported anything.
fn report_issues(cfg: &ServicesConfig) -> bool {
    for issue in &cfg.issues {
        eprintln!("ros: {issue}");
    }
    !cfg.issues.is_empty()
}

/// Prints per-service results; true when none failed.
fn print_reports(reports: &[ServiceReport]) -> bool {
    let mut ok = true;
    for r in reports {
        println!("{r}");
        ok &= !r.outcome.is_failure();
    }
    ok
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("ros: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Runs a `ros service` command against the engine at `host`, with config under `paths`.
pub fn run(host: &str, paths: &Paths, args: ServiceArgs) -> i32 {
    match args.command {
        ServiceCommand::Boot => {
            crate::log_to_stderr("ros: services: ", log::LevelFilter::Info);
            return ros_init::bringup::run();
        }
        ServiceCommand::StopAll { timeout } => {
            crate::log_to_stderr("ros: shutdown: ", log::LevelFilter::Info);
            return ros_init::bringup::stop_all(timeout);
        }
        _ => {}
    }
    let engine = match DockerEngine::new(host) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ros: {e}");
            return 2;
        }
    };
    let Some(rt) = runtime() else { return 1 };
    let cfg = ServicesConfig::load(paths);
    match args.command {
        ServiceCommand::List => {
            report_issues(&cfg);
            let containers = match rt.block_on(engine.list()) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("ros: cannot list containers (states shown as unknown): {e}");
                    None
                }
            };
            let rows = status::list_rows(&cfg, containers.as_deref());
            print!("{}", status::list_table(&rows));
            0
        }
        ServiceCommand::Enable { name } => include(paths, &cfg, &name, true),
        ServiceCommand::Disable { name } => include(paths, &cfg, &name, false),
        ServiceCommand::Up { names, fresh } => {
            let had_issues = report_issues(&cfg);
            let desired = Desired::from(&cfg);
            // A full `up` answers for the whole config; `up NAME…` for the named services.
            let config_counts = names.is_empty() && had_issues;
            let opts = UpOptions {
                only: names,
                fresh,
                ..UpOptions::default()
            };
            match rt.block_on(reconcile::up(&engine, &desired, &opts)) {
                Ok(report) => {
                    let ok = print_reports(&report.services);
                    i32::from(!ok || config_counts)
                }
                Err(e) => {
                    eprintln!("ros: {e}");
                    1
                }
            }
        }
        ServiceCommand::Down { names } => {
            let desired = Desired::from(&cfg);
            match rt.block_on(control::down(&engine, &desired, &names)) {
                Ok(reports) => {
                    print_reports(&reports);
                    i32::from(reports.iter().any(|r| r.outcome.is_failure()))
                }
                Err(e) => {
                    eprintln!("ros: {e}");
                    1
                }
            }
        }
        ServiceCommand::Restart { names } => {
            let desired = Desired::from(&cfg);
            match rt.block_on(control::restart(&engine, &desired, &names)) {
                Ok(reports) => i32::from(!print_reports(&reports)),
                Err(e) => {
                    eprintln!("ros: {e}");
                    1
                }
            }
        }
        ServiceCommand::Logs {
            follow,
            tail,
            timestamps,
            name,
        } => {
            let opts = LogOptions {
                follow,
                tail,
                timestamps,
            };
            let sink = |stream: LogStream, data: &[u8]| match stream {
                LogStream::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(data)?;
                    out.flush()
                }
                LogStream::Stderr => std::io::stderr().lock().write_all(data),
            };
            match rt.block_on(control::logs(&engine, &name, &opts, sink)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("ros: {e}");
                    1
                }
            }
        }
        ServiceCommand::Boot | ServiceCommand::StopAll { .. } => 0,
        ServiceCommand::Ps => match rt.block_on(engine.list()) {
            Ok(containers) => {
                print!("{}", status::ps_table(&containers));
                0
            }
            Err(e) => {
                eprintln!("ros: {e}");
                1
            }
        },
    }
}

fn include(paths: &Paths, cfg: &ServicesConfig, name: &str, on: bool) -> i32 {
    let verb = if on { "enabled" } else { "disabled" };
    match set_include(paths, cfg, name, on) {
        Ok(change) => {
            if !change.changed {
                println!("{name} was already {verb}");
            } else {
                println!(
                    "{verb} {name} in {}; `ros service up` applies it",
                    change.file.display()
                );
            }
            if change.reformatted {
                eprintln!(
                    "ros: note: {} was rewritten from its parsed content: its comments and \
                     formatting were not kept",
                    change.file.display()
                );
            }
            0
        }
        Err(e) => {
            eprintln!("ros: {e}");
            1
        }
    }
}
