//! Version 2: netplan's `ethernets`, `bonds`, `bridges` and `vlans` maps, keyed by id. A
//! virtual device's id is its interface name; an ethernet's id is its name unless it has a
//! `match:`, and then only a label that other entries refer to.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{
    bad, boolean, check_route, default_route, describe, expected, fields, if_name, index, join,
    list, mac, metric, mtu, string, vlan_id, Link, Translator, R,
};
use crate::network::{Bridge, Cidr, Interface, Route, Selector, Vlan};

/// netplan bond `parameters` → sysfs bonding attributes (`primary` is resolved apart: it
/// names an id).
const BOND_PARAMS: &[(&str, &str)] = &[
    ("mode", "mode"),
    ("lacp-rate", "lacp_rate"),
    ("mii-monitor-interval", "miimon"),
    ("min-links", "min_links"),
    ("transmit-hash-policy", "xmit_hash_policy"),
    ("ad-select", "ad_select"),
    ("all-slaves-active", "all_slaves_active"),
    ("arp-interval", "arp_interval"),
    ("arp-ip-targets", "arp_ip_target"),
    ("arp-validate", "arp_validate"),
    ("arp-all-targets", "arp_all_targets"),
    ("up-delay", "updelay"),
    ("down-delay", "downdelay"),
    ("fail-over-mac-policy", "fail_over_mac"),
    ("gratuitous-arp", "num_grat_arp"),
    // netplan's old misspelling, still accepted by netplan and cloud-init.
    ("gratuitious-arp", "num_grat_arp"),
    ("packets-per-slave", "packets_per_slave"),
    ("primary-reselect-policy", "primary_reselect"),
    ("resend-igmp", "resend_igmp"),
    ("learn-packet-interval", "lp_interval"),
];

const UNSUPPORTED_TYPES: &[&str] = &[
    "wifis",
    "modems",
    "tunnels",
    "vrfs",
    "nm-devices",
    "dummy-devices",
    "virtual-ethernets",
];

#[derive(Clone, Copy)]
enum Kind {
    Ethernet,
    Bond,
    Bridge,
    Vlan,
}

pub(super) fn walk(t: &mut Translator, doc: &Map<String, Value>, root: &str) -> R<()> {
    t.strict_refs = true;
    for (k, v) in doc {
        let p = join(root, k);
        let kind = match k.as_str() {
            "version" => continue,
            "renderer" => {
                t.warn(&p, "ros configures the network itself; ignored");
                continue;
            }
            "ethernets" => Kind::Ethernet,
            "bonds" => Kind::Bond,
            "bridges" => Kind::Bridge,
            "vlans" => Kind::Vlan,
            _ if UNSUPPORTED_TYPES.contains(&k.as_str()) => {
                t.warn(&p, format!("{k} are not supported; skipped"));
                continue;
            }
            _ => {
                t.warn(&p, "not part of network-config v2; ignored");
                continue;
            }
        };
        for (id, cfg) in fields(v, &p)? {
            let ip = join(&p, id);
            match (id.as_str(), kind) {
                // netplan allows a renderer per device type.
                ("renderer", _) => t.warn(&ip, "ros configures the network itself; ignored"),
                (_, Kind::Ethernet) => ethernet(t, id, cfg, &ip)?,
                (_, Kind::Bond) => bond(t, id, cfg, &ip)?,
                (_, Kind::Bridge) => bridge(t, id, cfg, &ip)?,
                (_, Kind::Vlan) => vlan(t, id, cfg, &ip)?,
            }
        }
    }
    Ok(())
}

fn ethernet(t: &mut Translator, id: &str, cfg: &Value, path: &str) -> R<()> {
    let m = fields(cfg, path)?;
    let selector = match m.get("match") {
        Some(sel) => match selector(t, sel, &join(path, "match"))? {
            Some(s) => Some(s),
            None => {
                t.skipped.insert(id.to_owned());
                return Ok(());
            }
        },
        None => None,
    };
    let mut iface = Interface::default();
    match selector {
        // The id is a label: it needs only to be a valid key.
        Some(s) => {
            Selector::parse(id).map_err(|m| bad(path, format!("as an entry key: {m}")))?;
            if s != Selector::Name(id.to_owned()) {
                iface.match_ = Some(s);
            }
        }
        // The id is the interface's name.
        None => {
            if_name(id, path)?;
        }
    }
    for (k, v) in m {
        let p = join(path, k);
        match k.as_str() {
            "match" => {}
            "set-name" => t.warn(
                &p,
                format!(
                    "renaming is not supported; the link keeps its kernel name ({} not applied)",
                    describe(v)
                ),
            ),
            _ => common(t, &mut iface, k, v, &p)?,
        }
    }
    t.define(id, id, path, iface)
}

/// What `match:` selects: by MAC, else by name glob. `None` (warned) if neither is given:
/// ros has no other way to pick links, and the entry is skipped.
fn selector(t: &mut Translator, sel: &Value, path: &str) -> R<Option<Selector>> {
    let mut by_mac = None;
    let mut by_name = None;
    for (k, v) in fields(sel, path)? {
        let p = join(path, k);
        match k.as_str() {
            "macaddress" => by_mac = Some((Selector::Mac(mac(v, &p)?), p)),
            "name" => {
                let glob = string(v, &p)?;
                by_name = Some((Selector::parse(glob).map_err(|m| bad(&p, m))?, p));
            }
            "driver" => t.warn(&p, "matching by driver is not supported; ignored"),
            _ => t.warn(&p, "not supported; ignored"),
        }
    }
    Ok(match (by_mac, by_name) {
        (Some((mac, _)), Some((_, np))) => {
            t.warn(
                &np,
                "ros matches by MAC or by name, not both; matching by MAC",
            );
            Some(mac)
        }
        (Some((s, _)), None) | (None, Some((s, _))) => Some(s),
        (None, None) => {
            t.warn(
                path,
                "selects no MAC address or name ros can match; entry skipped",
            );
            None
        }
    })
}

/// A bond's or bridge's `interfaces` list: one link each, resolved once all are defined.
fn members(
    t: &mut Translator,
    v: &Value,
    path: &str,
    link: impl Fn(String, String) -> Link,
) -> R<()> {
    for (i, member) in list(v, path)?.iter().enumerate() {
        let mp = index(path, i);
        t.links.push(link(string(member, &mp)?.to_owned(), mp));
    }
    Ok(())
}

fn bond(t: &mut Translator, id: &str, cfg: &Value, path: &str) -> R<()> {
    let name = if_name(id, path)?;
    let mut iface = Interface::default();
    let mut opts = BTreeMap::new();
    for (k, v) in fields(cfg, path)? {
        let p = join(path, k);
        match k.as_str() {
            "interfaces" => members(t, v, &p, |member, path| Link::BondMember {
                bond: name.clone(),
                member,
                path,
            })?,
            "parameters" => {
                for (pk, pv) in fields(v, &p)? {
                    let pp = join(&p, pk);
                    if pk == "primary" {
                        let member = string(pv, &pp)?.to_owned();
                        t.links.push(Link::Primary {
                            bond: id.to_owned(),
                            member,
                            path: pp,
                        });
                    } else if let Some((_, attr)) = BOND_PARAMS.iter().find(|(k, _)| k == pk) {
                        t.bond_opt(&mut opts, attr, pv, &pp);
                    } else {
                        t.warn(&pp, "not a bond parameter ros supports; ignored");
                    }
                }
            }
            _ => common(t, &mut iface, k, v, &p)?,
        }
    }
    iface.bond_opts = Some(opts);
    t.define(id, id, path, iface)
}

fn bridge(t: &mut Translator, id: &str, cfg: &Value, path: &str) -> R<()> {
    let name = if_name(id, path)?;
    let mut iface = Interface {
        bridge: Some(Bridge::Is(true)),
        ..Interface::default()
    };
    for (k, v) in fields(cfg, path)? {
        let p = join(path, k);
        match k.as_str() {
            "interfaces" => members(t, v, &p, |member, path| Link::BridgePort {
                bridge: name.clone(),
                member,
                path,
            })?,
            "parameters" => {
                for pk in fields(v, &p)?.keys() {
                    t.warn(
                        &join(&p, pk),
                        "bridge parameters are not supported; ignored",
                    );
                }
            }
            _ => common(t, &mut iface, k, v, &p)?,
        }
    }
    t.define(id, id, path, iface)
}

fn vlan(t: &mut Translator, id: &str, cfg: &Value, path: &str) -> R<()> {
    let name = if_name(id, path)?;
    let m = fields(cfg, path)?;
    let mut iface = Interface::default();
    for (k, v) in m {
        match k.as_str() {
            "id" | "link" => {}
            _ => common(t, &mut iface, k, v, &join(path, k))?,
        }
    }
    let (ip, lp) = (join(path, "id"), join(path, "link"));
    let vid = vlan_id(m.get("id").ok_or_else(|| bad(&ip, "missing"))?, &ip)?;
    let link = string(m.get("link").ok_or_else(|| bad(&lp, "missing"))?, &lp)?;
    t.links.push(Link::Vlan {
        parent: link.to_owned(),
        vlan: Vlan {
            id: vid,
            name: Some(name),
        },
        path: lp,
    });
    t.define(id, id, path, iface)
}

/// Keys every device type has: addressing, routes, DNS, MTU.
fn common(t: &mut Translator, iface: &mut Interface, key: &str, v: &Value, path: &str) -> R<()> {
    match key {
        "dhcp4" => iface.dhcp = Some(boolean(v, path)?),
        "dhcp6" => {
            if boolean(v, path)? {
                t.warn(path, "DHCPv6 is not supported; skipped");
            }
        }
        "addresses" => {
            for (i, a) in list(v, path)?.iter().enumerate() {
                let ap = index(path, i);
                let cidr = address(t, a, &ap)?;
                iface.addresses.get_or_insert_with(Vec::new).push(cidr);
            }
        }
        "gateway4" => {
            let gw = super::ipv4(v, path)?;
            t.gateway(iface, gw.into(), path);
        }
        "gateway6" => {
            let gw = super::ipv6(v, path)?;
            t.gateway(iface, gw.into(), path);
        }
        "routes" => {
            for (i, r) in list(v, path)?.iter().enumerate() {
                if let Some(route) = route(t, r, &index(path, i))? {
                    iface.routes.get_or_insert_with(Vec::new).push(route);
                }
            }
        }
        "nameservers" => {
            for (k, nv) in fields(v, path)? {
                let p = join(path, k);
                if k == "address" || !t.dns_list(k, nv, &p)? {
                    t.warn(&p, "not supported; ignored");
                }
            }
        }
        "mtu" => iface.mtu = Some(mtu(v, path)?),
        "renderer" => t.warn(path, "ros configures the network itself; ignored"),
        "macaddress" => t.warn(path, "setting a hardware address is not supported; ignored"),
        "accept-ra"
        | "ipv6-privacy"
        | "ipv6-address-generation"
        | "ipv6-address-token"
        | "ipv6-mtu"
        | "link-local"
        | "dhcp6-overrides" => t.warn(
            path,
            "IPv6 autoconfiguration options are not supported; ignored",
        ),
        _ => t.warn(path, "not supported; ignored"),
    }
    Ok(())
}

/// `10.0.0.5/24`, or netplan's `{10.0.0.5/24: {lifetime: 0, label: x}}` (options warned).
fn address(t: &mut Translator, a: &Value, path: &str) -> R<Cidr> {
    let text = match a {
        Value::Object(m) if m.len() == 1 => {
            let (k, _) = m
                .iter()
                .next()
                .ok_or_else(|| expected(path, "an address", a))?;
            t.warn(
                path,
                "address options (lifetime, label) are not supported; ignored",
            );
            k.as_str()
        }
        _ => string(a, path)?,
    };
    Cidr::parse(text.trim()).map_err(|m| bad(path, m))
}

/// A route; `None` (warned) for one ros would install wrongly: in another routing table, or
/// of a type other than unicast.
fn route(t: &mut Translator, r: &Value, path: &str) -> R<Option<Route>> {
    let m = fields(r, path)?;
    if !super::main_table_unicast(t, m, path) {
        return Ok(None);
    }
    let via = match m.get("via") {
        Some(v) => Some(super::ip(v, &join(path, "via"))?),
        None => None,
    };
    let tp = join(path, "to");
    let to = m.get("to").ok_or_else(|| bad(&tp, "missing"))?;
    let to = match string(to, &tp)?.trim() {
        "default" => default_route(via),
        s => crate::network::parse_destination(s).map_err(|m| bad(&tp, m))?,
    };
    let metric = match m.get("metric") {
        Some(v) => Some(metric(v, &join(path, "metric"))?),
        None => None,
    };
    for k in m.keys() {
        if !matches!(k.as_str(), "to" | "via" | "metric" | "type" | "table") {
            t.warn(&join(path, k), "not supported; ignored");
        }
    }
    let route = Route { to, via, metric };
    check_route(&route, path)?;
    Ok(Some(route))
}
