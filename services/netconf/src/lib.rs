//! `ros netconf`: the network service of ros. It brings up `lo`, then configures the links
//! the `network` config names ([`plan`]): bonds, bridges and VLANs created over rtnetlink
//! ([`netlink`]), ports enslaved, MTUs, static IPv4/IPv6 addresses and routes, DNS servers
//! in `<root>/etc/resolv.conf`, and a DHCPv4 client per DHCP link (RFC 2131:
//! DISCOVER/OFFER/REQUEST/ACK, renewal at T1, rebinding at T2, restart at expiry). With no
//! `interfaces` configured, or with a config that gives none of the host's links an address
//! or DHCP, it runs DHCP on one interface: the one named, else the first physical NIC.
//!
//! It does not own: DHCPv6 and router advertisements (the kernel's SLAAC still works); ARP
//! probing of an offered address (DHCPDECLINE); renaming links; loading the config (the
//! caller passes it).
//!
//! Log levels: `info` one line per link configured and per DHCP state change (leased,
//! renewed, rebinding, expired), `warn` a failed step or attempt that will be retried,
//! `debug` every packet sent or dropped.

mod client;
pub mod iface;
pub mod netlink;
pub mod packet;
pub mod plan;
pub mod resolv;
mod sys;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use client::Client;
use ros_cloud_config::network::Network;

use crate::netlink::LinkKind;
use crate::plan::{LinkPlan, Plan};

/// Loads a kernel module by name; the error says why not.
pub type LoadModule = fn(&str) -> Result<(), String>;

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
    /// The `network` config; DHCP on one interface when it lists no `interfaces`.
    pub network: Network,
    /// Loads a kernel module by name (`bonding`, `8021q`, `bridge`) before netconf creates
    /// a link that needs it; None where modules cannot be loaded.
    pub load_module: Option<LoadModule>,
}

impl Options {
    pub fn new(root: &Path) -> Self {
        Options {
            iface: None,
            once: false,
            root: root.to_path_buf(),
            timeout: Duration::from_secs(60),
            sys_class_net: PathBuf::from("/sys/class/net"),
            network: Network::default(),
            load_module: None,
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
    #[error("{link}: {source}")]
    Link { link: String, source: io::Error },
    #[error("{}", .0.join("; "))]
    Failed(Vec<String>),
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

/// Runs netconf: loopback, the configured links (or one DHCP interface), then DHCP in the
/// foreground (or once).
pub fn run(opts: &Options) -> Result<(), Error> {
    if let Err(source) = netlink::set_up("lo", true) {
        return Err(Error::LinkUp {
            iface: "lo".into(),
            source,
        });
    }
    log::info!("netconf: lo up");
    let dns = opts.network.dns.as_ref();
    let static_dns = dns
        .and_then(|d| d.nameservers.as_ref())
        .is_some_and(|n| !n.is_empty());
    if let Some(dns) = dns.filter(|_| static_dns) {
        let servers = dns.nameservers.clone().unwrap_or_default();
        let search: Vec<&str> = dns.search.iter().flatten().map(|s| s.as_str()).collect();
        resolv::write(&opts.root, &resolv::render_static(&servers, &search)).map_err(|source| {
            Error::Resolv {
                path: opts.root.join("etc/resolv.conf"),
                source,
            }
        })?;
        log::info!("netconf: DNS servers from the config written to resolv.conf");
    }
    let configured = opts
        .network
        .interfaces
        .as_ref()
        .is_some_and(|i| !i.is_empty());
    let plan = match (&opts.iface, configured) {
        (None, true) => {
            let links = iface::list(&opts.sys_class_net)?;
            let plan = plan::plan(&opts.network, &links);
            for w in &plan.warnings {
                log::warn!("netconf: {w}");
            }
            if plan.reaches_nothing() {
                // A config for another machine (names or MACs this host does not have)
                // must not leave the host unreachable.
                log::warn!(
                    "netconf: the network config gives no link of this host an address or \
                     DHCP: DHCP on the first interface instead"
                );
                None
            } else {
                Some(plan)
            }
        }
        _ => None,
    };
    let Some(plan) = plan else {
        let name = match &opts.iface {
            Some(n) => n.clone(),
            None => wait_for_interface(opts)?,
        };
        netlink::set_up(&name, true).map_err(|source| Error::LinkUp {
            iface: name.clone(),
            source,
        })?;
        log::info!("netconf: {name} up");
        let mut client = Client::new(
            &name,
            iface::mac(&opts.sys_class_net, &name)?,
            hostname(),
            opts,
        )?;
        if static_dns {
            client = client.keep_resolv();
        }
        return client.run();
    };

    let mut failed = apply_plan(opts, &plan);
    let dhcp: Vec<&LinkPlan> = plan
        .links
        .iter()
        .filter(|l| l.dhcp && !failed.iter().any(|(n, _)| n == &l.name))
        .collect();
    if dhcp.is_empty() {
        if !failed.is_empty() {
            return Err(Error::Failed(failed.into_iter().map(|(_, e)| e).collect()));
        }
        if opts.once {
            return Ok(());
        }
        log::info!("netconf: configured; no DHCP link, nothing to renew");
        loop {
            std::thread::park();
        }
    }
    // One DHCP client per link; in the foreground they renew forever.
    let results: Vec<(String, Result<(), Error>)> = std::thread::scope(|s| {
        let handles: Vec<_> = dhcp
            .iter()
            .map(|l| {
                let name = l.name.clone();
                let keep_mtu = l.mtu.is_some();
                let h = s.spawn(move || -> Result<(), Error> {
                    let mac = iface::mac(&opts.sys_class_net, &name)?;
                    let mut client = Client::new(&name, mac, hostname(), opts)?;
                    if static_dns {
                        client = client.keep_resolv();
                    }
                    if keep_mtu {
                        client = client.keep_mtu();
                    }
                    client.run()
                });
                (l.name.clone(), h)
            })
            .collect();
        handles
            .into_iter()
            .map(|(n, h)| {
                let r = h.join().unwrap_or_else(|_| {
                    Err(Error::Failed(vec![format!(
                        "dhcp: {n}: client thread panicked"
                    )]))
                });
                (n, r)
            })
            .collect()
    });
    for (name, r) in results {
        if let Err(e) = r {
            failed.push((name, e.to_string()));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(failed.into_iter().map(|(_, e)| e).collect()))
    }
}

fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| h != "(none)" && h != "localhost")
}

/// Configures every link of `plan` but DHCP: masters, ports, VLANs, MTUs, link state,
/// static addresses and routes. A link whose step fails is reported and skipped; the others
/// are still configured. Returns the failed links with their errors.
fn apply_plan(opts: &Options, plan: &Plan) -> Vec<(String, String)> {
    let mut failed: Vec<(String, String)> = Vec::new();
    fn fail(failed: &mut Vec<(String, String)>, link: &str, e: io::Error) {
        log::warn!("netconf: {link}: {e}");
        failed.push((link.to_owned(), format!("{link}: {e}")));
    }
    let module = |kind: &LinkKind| match kind {
        LinkKind::Bond => "bonding",
        LinkKind::Bridge => "bridge",
        LinkKind::Vlan { .. } => "8021q",
    };
    let mut loaded = std::collections::BTreeSet::new();
    let mut create = |l: &LinkPlan, kind: &LinkKind| -> io::Result<()> {
        let m = module(kind);
        if let Some(load) = opts.load_module {
            if loaded.insert(m) {
                if let Err(e) = load(m) {
                    log::warn!("netconf: loading module {m}: {e}");
                }
            }
        }
        netlink::create(&l.name, kind)?;
        for (key, value) in &l.bond_opts {
            let path = opts.sys_class_net.join(&l.name).join("bonding").join(key);
            // The sysfs file takes one `+IP` per write.
            let writes: Vec<String> = if key == "arp_ip_target" {
                value
                    .split(',')
                    .map(|ip| format!("+{}", ip.trim()))
                    .collect()
            } else {
                vec![value.clone()]
            };
            for w in writes {
                std::fs::write(&path, &w).map_err(|e| {
                    io::Error::new(e.kind(), format!("bonding option {key}={value}: {e}"))
                })?;
            }
        }
        Ok(())
    };
    // Masters before their ports, ports before the VLANs on them.
    for l in &plan.links {
        if let Some(kind) = l
            .create
            .as_ref()
            .filter(|k| !matches!(k, LinkKind::Vlan { .. }))
        {
            match create(l, kind) {
                Ok(()) => log::info!("netconf: {} ({}) created", l.name, module(kind)),
                Err(e) => fail(&mut failed, &l.name, e),
            }
        }
    }
    for l in &plan.links {
        let Some(master) = &l.master else { continue };
        let bad = |f: &[(String, String)]| f.iter().any(|(n, _)| n == master);
        if bad(&failed) {
            fail(
                &mut failed,
                &l.name,
                io::Error::other(format!("its master {master} failed")),
            );
            continue;
        }
        // A bond takes only ports that are down; a bridge does not mind.
        let r = netlink::set_up(&l.name, false).and_then(|()| netlink::set_master(&l.name, master));
        match r {
            Ok(()) => log::info!("netconf: {} is a port of {master}", l.name),
            Err(e) => fail(&mut failed, &l.name, e),
        }
    }
    for l in &plan.links {
        if let Some(kind @ LinkKind::Vlan { .. }) = &l.create {
            match create(l, kind) {
                Ok(()) => log::info!("netconf: {} created ({kind:?})", l.name),
                Err(e) => fail(&mut failed, &l.name, e),
            }
        }
    }
    for l in &plan.links {
        if failed.iter().any(|(n, _)| n == &l.name) {
            continue;
        }
        if let Err(e) = configure_link(l) {
            fail(&mut failed, &l.name, e);
        }
    }
    failed
}

/// MTU, link up, static addresses and routes of one link.
fn configure_link(l: &LinkPlan) -> io::Result<()> {
    if let Some(mtu) = l.mtu {
        netlink::set_mtu(&l.name, mtu)?;
    }
    netlink::set_up(&l.name, true)?;
    for a in &l.addresses {
        netlink::add_address(&l.name, a.addr, a.prefix)?;
    }
    for r in &l.routes {
        netlink::add_route(&l.name, r.to.network(), r.to.prefix, r.via, r.metric)?;
    }
    let what: Vec<String> = l.addresses.iter().map(|a| a.to_string()).collect();
    log::info!(
        "netconf: {} up{}{}{}",
        l.name,
        if what.is_empty() {
            String::new()
        } else {
            format!(" {}", what.join(" "))
        },
        if l.routes.is_empty() {
            String::new()
        } else {
            format!(", {} routes", l.routes.len())
        },
        if l.dhcp { ", DHCP" } else { "" }
    );
    Ok(())
}
