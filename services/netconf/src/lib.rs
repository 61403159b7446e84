//! `ros netconf`: the network service of ros, minimal form. It brings up `lo`, picks one
//! interface (the one named, else the first physical NIC), and runs a DHCPv4 client on it
//! (RFC 2131: DISCOVER/OFFER/REQUEST/ACK, renewal at T1, rebinding at T2, restart at expiry),
//! applying each lease: address, default route, MTU and `<root>/etc/resolv.conf`.
//!
//! It does not own: the `network.interfaces` config (static addresses, VLAN, bond, bridge,
//! matching by MAC) — that comes with cloud-config; DHCPv6; ARP probing of an offered
//! address (DHCPDECLINE).
//!
//! Log levels: `info` one line per state change (leased, renewed, rebinding, expired),
//! `warn` a failed attempt that will be retried, `debug` every packet sent or dropped.

mod client;
pub mod iface;
pub mod packet;
pub mod resolv;
mod sys;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use client::Client;

/// What `ros netconf` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The interface to configure; default: [`iface::pick`] over `sys_class_net`.
    pub iface: Option<String>,
    /// Exit once the first lease is applied (non-zero if none within `timeout`).
    pub once: bool,
    /// Filesystem root for files netconf writes (`etc/resolv.conf`).
    pub root: PathBuf,
    /// Bound on one acquisition attempt (DISCOVER … ACK, retransmissions included).
    pub timeout: Duration,
    /// Where interfaces are listed (`/sys/class/net`; a parameter for tests).
    pub sys_class_net: PathBuf,
}

impl Options {
    pub fn new(root: &Path) -> Self {
        Options {
            iface: None,
            once: false,
            root: root.to_path_buf(),
            timeout: Duration::from_secs(60),
            sys_class_net: PathBuf::from("/sys/class/net"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no network interface to configure in {0} (besides lo)")]
    NoInterface(PathBuf),
    #[error("listing interfaces in {path}: {source}")]
    ListInterfaces { path: PathBuf, source: io::Error },
    #[error("reading the MAC address of {iface}: {source}")]
    Mac { iface: String, source: io::Error },
    #[error("bringing up {iface}: {source}")]
    LinkUp { iface: String, source: io::Error },
    #[error("opening the DHCP socket on {iface}: {source}")]
    Socket { iface: String, source: io::Error },
    #[error("sending on {iface}: {source}")]
    Send { iface: String, source: io::Error },
    #[error("dhcp: {iface}: no lease within {}s ({detail})", .timeout.as_secs())]
    Timeout {
        iface: String,
        timeout: Duration,
        detail: String,
    },
    #[error("configuring {iface}: {source}")]
    Apply { iface: String, source: io::Error },
    #[error("writing {path}: {source}")]
    Resolv { path: PathBuf, source: io::Error },
}

/// The interface to configure. As a service (not `--once`), a host without one besides
/// `lo` keeps running on loopback and takes the first interface that appears (a NIC that a
/// module brings up late, a hot-plugged one) instead of failing and being restarted.
fn wait_for_interface(opts: &Options) -> Result<String, Error> {
    let mut said = false;
    loop {
        match iface::pick(&opts.sys_class_net) {
            Err(Error::NoInterface(_)) if !opts.once => {
                if !said {
                    log::warn!(
                        "netconf: no network interface besides lo: loopback only until one appears"
                    );
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Runs netconf: loopback, the interface, then DHCP in the foreground (or once).
pub fn run(opts: &Options) -> Result<(), Error> {
    if let Err(source) = sys::link_up("lo") {
        return Err(Error::LinkUp {
            iface: "lo".into(),
            source,
        });
    }
    log::info!("netconf: lo up");
    let name = match &opts.iface {
        Some(n) => n.clone(),
        None => wait_for_interface(opts)?,
    };
    sys::link_up(&name).map_err(|source| Error::LinkUp {
        iface: name.clone(),
        source,
    })?;
    log::info!("netconf: {name} up");
    let mac = iface::mac(&opts.sys_class_net, &name)?;
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| h != "(none)" && h != "localhost");
    let client = Client::new(&name, mac, hostname, opts)?;
    client.run()
}
