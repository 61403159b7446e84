//! `ros netconf`: the network service's entry point: it reads the host's config under
//! `--root` (the merged `ros.network`, else the datasource's network-config) and hands it to
//! `ros_netconf`, which does the work.

use std::path::Path;
use std::time::Duration;

use clap::Args;
use ros_cloud_config::load::{load, ConfigPaths};
use ros_cloud_config::{instance, network};

#[derive(Args, Debug)]
pub struct NetconfArgs {
    /// Only DHCP on this interface, ignoring the configured `network.interfaces`
    /// [default: the configured interfaces, else DHCP on the first NIC in /sys/class/net]
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

/// SIGTERM and SIGINT end netconf at once, leaving the links as they are (a host that stops
/// its network service stays reachable). As PID 1 of its container it has no default
/// action for them, so without this a stop waited for the kill timeout. The signals are
/// blocked here, before any thread starts, and taken by one thread with sigwait(2).
fn exit_on_stop_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    if let Err(e) = set.thread_block() {
        log::warn!("netconf: blocking SIGTERM: {e}");
        return;
    }
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            log::info!("netconf: {sig}: exiting, links left configured");
            std::process::exit(0);
        }
    });
}

/// Loads a kernel module and what it depends on from `/lib/modules/<release>`.
fn load_module(name: &str) -> Result<(), String> {
    use ros_init::kmod;
    let dir = Path::new("/lib/modules").join(kmod::kernel_release());
    let index = kmod::ModuleIndex::load(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (_, r) in kmod::load_modules(&index, &[name.to_owned()]) {
        r.map_err(|e| format!("{e:#}"))?;
    }
    Ok(())
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
    let loaded = load(&ConfigPaths::new(root));
    for e in &loaded.errors {
        log::warn!("netconf: config: {e} (left out)");
    }
    let meta = instance::read(root).unwrap_or_else(|e| {
        log::warn!("netconf: {}: {e}", instance::metadata_path(root).display());
        None
    });
    let (network, said) = network::for_host(&loaded.value, meta.as_ref());
    for s in said {
        log::warn!("netconf: {s}");
    }
    opts.network = network;
    opts.load_module = Some(load_module);
    opts.iface = args.iface;
    opts.once = args.once;
    opts.timeout = Duration::from_secs(args.timeout.max(1));
    exit_on_stop_signals();
    match ros_netconf::run(&opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ros netconf: {e}");
            1
        }
    }
}
