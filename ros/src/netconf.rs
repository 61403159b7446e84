//! `ros netconf`: the network service's entry point; the work is in `ros_netconf`.

use std::path::Path;
use std::time::Duration;

use clap::Args;

#[derive(Args, Debug)]
pub struct NetconfArgs {
    /// The interface to configure [default: the first NIC in /sys/class/net]
    #[arg(long, value_name = "NAME")]
    iface: Option<String>,
    /// Exit after the first lease is applied (non-zero when none comes within --timeout)
    #[arg(long)]
    once: bool,
    /// Seconds one DHCP acquisition attempt may take, retransmissions included
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// Log every packet sent and dropped
    #[arg(short, long)]
    verbose: bool,
}

/// Logs to stderr, one line per record (system-docker captures it as the service's log).
pub fn run(root: &Path, args: NetconfArgs) -> i32 {
    crate::log_to_stderr(
        "",
        if args.verbose {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        },
    );
    let mut opts = ros_netconf::Options::new(root);
    opts.iface = args.iface;
    opts.once = args.once;
    opts.timeout = Duration::from_secs(args.timeout.max(1));
    match ros_netconf::run(&opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ros netconf: {e}");
            1
        }
    }
}
