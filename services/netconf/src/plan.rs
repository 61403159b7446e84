//! From the `network.interfaces` config and the links the host has to what netconf does to
//! each link: pure, so every rule below is unit-tested without a kernel.
//!
//! - An entry selects links by its key or its `match:`: a literal name, a glob, or
//!   `mac=`. A link takes the most specific entry that selects it: a literal name, then a
//!   MAC, then the glob with the most literal characters (`eth*` before `*`; ties by key
//!   order). Globs and MACs never select `lo`, links netconf creates, VLANs,
//!   bonds and bridges (they carry a NIC's MAC), or the user engine's links (`docker*`,
//!   `veth*`, `br-*`).
//! - Bonds are the entries with `bond_opts` and every name some entry's `bond:` names;
//!   bridges the entries with `bridge: true` and every name a `bridge:` names. VLANs are
//!   made on each link their entry selects (`vlans: 100` on `eth*` gives `eth0.100`,
//!   `eth1.100`). A created link is configured by the entry whose literal name is its own.
//! - `gateway`/`gateway_ipv6` are default routes. A link that is a port of a bond or a
//!   bridge gets no address and no DHCP (said as a warning when asked for).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ros_cloud_config::network::{
    parse_destination, Bridge, Cidr, Interface, Network, Route, Selector,
};

use crate::netlink::LinkKind;

/// A link the host has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// The kernel's `DEVTYPE` (`vlan`, `bond`, `bridge`; None for Ethernet NICs and veth).
    pub devtype: Option<String>,
}

/// What to do to one link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkPlan {
    pub name: String,
    /// Created by netconf, and as what.
    pub create: Option<LinkKind>,
    /// `bonding/<key>` sysfs options of a bond.
    pub bond_opts: Vec<(String, String)>,
    /// The bond or bridge this link is a port of.
    pub master: Option<String>,
    pub mtu: Option<u32>,
    pub addresses: Vec<Cidr>,
    pub routes: Vec<Route>,
    pub dhcp: bool,
    /// The config key this link's settings came from, for messages.
    pub entry: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Masters first (bonds, bridges), then the links the host has, then VLANs.
    pub links: Vec<LinkPlan>,
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn get(&self, name: &str) -> Option<&LinkPlan> {
        self.links.iter().find(|l| l.name == name)
    }

    /// No link gets an address or DHCP: the host would be unreachable.
    pub fn reaches_nothing(&self) -> bool {
        !self.links.iter().any(|l| l.dhcp || !l.addresses.is_empty())
    }
}

fn engine_link(name: &str) -> bool {
    name == "lo"
        || name.starts_with("docker")
        || name.starts_with("veth")
        || name.starts_with("br-")
}

struct Entry<'c> {
    key: &'c str,
    selector: Selector,
    config: &'c Interface,
}

/// How specifically `sel` selects `link` (higher wins), or None: a literal name, a MAC,
/// then globs by how many literal characters they have (`eth*` before `*`).
fn rank(sel: &Selector, link: &Link, created: &BTreeSet<String>) -> Option<(u8, usize)> {
    if let Some(name) = sel.literal() {
        return (name == link.name).then_some((3, 0));
    }
    // A VLAN or a bond carries the MAC of a NIC: only a literal name selects it.
    let made = matches!(link.devtype.as_deref(), Some("vlan" | "bond" | "bridge"));
    if made
        || engine_link(&link.name)
        || created.contains(&link.name)
        || !sel.matches(&link.name, link.mac)
    {
        return None;
    }
    match sel {
        Selector::Mac(_) => Some((2, 0)),
        Selector::Name(p) => Some((1, p.chars().filter(|c| !"*?[]!".contains(*c)).count())),
    }
}

/// The plan for `network` on a host with `links`.
pub fn plan(network: &Network, links: &[Link]) -> Plan {
    let mut out = Plan::default();
    let empty = Default::default();
    let interfaces = network.interfaces.as_ref().unwrap_or(&empty);
    let entries: Vec<Entry> = interfaces
        .iter()
        .filter_map(|(key, config)| {
            let selector = match &config.match_ {
                Some(s) => s.clone(),
                None => Selector::parse(key).ok()?,
            };
            Some(Entry {
                key,
                selector,
                config,
            })
        })
        .collect();

    // Masters: bonds and bridges, by name.
    let mut bonds = BTreeSet::new();
    let mut bridges = BTreeSet::new();
    for e in &entries {
        if let Some(b) = &e.config.bond {
            bonds.insert(b.to_string());
        }
        if let Some(Bridge::Port(b)) = &e.config.bridge {
            bridges.insert(b.to_string());
        }
        if let Some(name) = e.selector.literal() {
            if e.config.bond_opts.is_some() {
                bonds.insert(name.to_owned());
            }
            if e.config.bridge == Some(Bridge::Is(true)) {
                bridges.insert(name.to_owned());
            }
        }
    }
    for name in bonds.intersection(&bridges) {
        out.warnings
            .push(format!("{name}: both a bond and a bridge; made a bond"));
    }
    let bridges: BTreeSet<String> = bridges.difference(&bonds).cloned().collect();
    let mut created: BTreeSet<String> = bonds.union(&bridges).cloned().collect();

    let literal_entry = |name: &str| entries.iter().find(|e| e.selector.literal() == Some(name));
    let best_entry = |link: &Link, created: &BTreeSet<String>| {
        entries
            .iter()
            .filter_map(|e| rank(&e.selector, link, created).map(|r| (r, e)))
            // max_by_key keeps the last maximum: reverse so the first key wins ties.
            .rev()
            .max_by_key(|(r, _)| *r)
            .map(|(_, e)| e)
    };

    // A link netconf creates, configured by the entry of its own name.
    let made = |name: &str, kind: LinkKind, warnings: &mut Vec<String>| {
        let mut p = LinkPlan {
            name: name.to_owned(),
            create: Some(kind),
            ..Default::default()
        };
        if let Some(e) = literal_entry(name) {
            configure(&mut p, e, warnings);
        }
        p
    };
    for name in &bonds {
        let p = made(name, LinkKind::Bond, &mut out.warnings);
        out.links.push(p);
    }
    for name in &bridges {
        let p = made(name, LinkKind::Bridge, &mut out.warnings);
        out.links.push(p);
    }

    // The links the host has (created ones from an earlier run are masters, above).
    let mut vlans = Vec::new();
    let mut sorted: Vec<&Link> = links
        .iter()
        .filter(|l| !created.contains(&l.name) && l.name != "lo")
        .collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for link in sorted {
        let Some(e) = best_entry(link, &created) else {
            continue;
        };
        let mut p = LinkPlan {
            name: link.name.clone(),
            ..Default::default()
        };
        configure(&mut p, e, &mut out.warnings);
        for v in e.config.vlans.iter().flatten() {
            vlans.push((link.name.clone(), v.clone()));
        }
        out.links.push(p);
    }
    // VLANs on created links (a bond's VLANs).
    for name in bonds.iter().chain(&bridges) {
        if let Some(e) = literal_entry(name) {
            for v in e.config.vlans.iter().flatten() {
                vlans.push((name.clone(), v.clone()));
            }
        }
    }
    for (parent, v) in vlans {
        let name = v.link_name(&parent);
        if !created.insert(name.clone()) {
            out.warnings
                .push(format!("{name}: VLAN {} named twice; made once", v.id));
            continue;
        }
        let p = made(
            &name,
            LinkKind::Vlan { parent, id: v.id },
            &mut out.warnings,
        );
        out.links.push(p);
    }

    for e in &entries {
        if let Some(name) = e.selector.literal() {
            if out.get(name).is_none() {
                out.warnings.push(format!(
                    "interfaces.{}: no link named {name} (not configured)",
                    e.key
                ));
            }
        }
    }
    out
}

fn configure(p: &mut LinkPlan, e: &Entry, warnings: &mut Vec<String>) {
    let c = e.config;
    p.entry = Some(e.key.to_owned());
    p.mtu = c.mtu;
    if let Some(opts) = &c.bond_opts {
        if p.create == Some(LinkKind::Bond) {
            // The mode can only change while the bond has no ports: it goes first.
            let mut opts: Vec<(String, String)> = opts
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
                .collect();
            opts.sort_by_key(|(k, _)| k != "mode");
            p.bond_opts = opts;
        } else {
            warnings.push(format!(
                "interfaces.{}: bond_opts on {}, which is not a bond",
                e.key, p.name
            ));
        }
    }
    p.master = match (&c.bond, &c.bridge) {
        (Some(b), _) => Some(b.to_string()),
        (None, Some(Bridge::Port(b))) => Some(b.to_string()),
        _ => None,
    };
    if p.master.as_deref() == Some(p.name.as_str()) {
        warnings.push(format!(
            "interfaces.{}: {} cannot be its own port",
            e.key, p.name
        ));
        p.master = None;
    }
    let addresses = c.addresses.clone().unwrap_or_default();
    let mut routes = c.routes.clone().unwrap_or_default();
    if let Some(gw) = c.gateway {
        routes.push(default_route(IpAddr::V4(gw)));
    }
    if let Some(gw) = c.gateway_ipv6 {
        routes.push(default_route(IpAddr::V6(gw)));
    }
    let dhcp = c.dhcp.unwrap_or(false);
    if let Some(m) = &p.master {
        if dhcp || !addresses.is_empty() || !routes.is_empty() {
            warnings.push(format!(
                "interfaces.{}: {} is a port of {m}: its addresses, routes and DHCP are not used",
                e.key, p.name
            ));
        }
        return;
    }
    p.addresses = addresses;
    p.routes = routes;
    p.dhcp = dhcp;
}

fn default_route(via: IpAddr) -> Route {
    let to = if via.is_ipv4() { "default" } else { "::/0" };
    Route {
        // Both spellings parse.
        to: parse_destination(to).unwrap_or(Cidr {
            addr: via,
            prefix: 0,
        }),
        via: Some(via),
        metric: None,
    }
}

#[cfg(test)]
mod tests;
