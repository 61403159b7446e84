//! Version 1: a list of `config` entries — `physical`, `bond`, `bridge`, `vlan` links with
//! their `subnets`, and global `nameserver` and `route` entries
//! (cloudinit/net/network_state.py reads the same).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::{
    bad, check_route, default_route, expected, fields, index, items, join, list, mac, mask_prefix,
    metric, mtu, scalar, string, vlan_id, Link, Translator, BOND_ATTRS, R,
};
use crate::network::{Bridge, Cidr, Interface, Route, Selector, Vlan};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Physical,
    Bond,
    Bridge,
    Vlan,
}

pub(super) fn walk(t: &mut Translator, doc: &Map<String, Value>, root: &str) -> R<()> {
    for k in doc
        .keys()
        .filter(|k| !matches!(k.as_str(), "version" | "config"))
    {
        t.warn(&join(root, k), "not part of network-config v1; ignored");
    }
    let cp = join(root, "config");
    let config = doc
        .get("config")
        .ok_or_else(|| bad(&cp, "missing; expected a list"))?;
    let Value::Array(entries) = config else {
        return Err(expected(&cp, "a list", config));
    };
    for (i, entry) in entries.iter().enumerate() {
        let p = index(&cp, i);
        let m = fields(entry, &p)?;
        let tp = join(&p, "type");
        let ty = string(m.get("type").ok_or_else(|| bad(&tp, "missing"))?, &tp)?;
        match ty {
            "physical" => device(t, Kind::Physical, m, &p)?,
            "bond" => device(t, Kind::Bond, m, &p)?,
            "bridge" => device(t, Kind::Bridge, m, &p)?,
            "vlan" => device(t, Kind::Vlan, m, &p)?,
            "nameserver" => nameserver(t, m, &p)?,
            "route" => {
                if let Some(route) = route(t, m, &p)? {
                    t.links.push(Link::Route { route, path: p });
                }
            }
            "loopback" => t.warn(&tp, "lo is always brought up by ros; skipped"),
            _ => t.warn(&tp, format!("{ty:?} is not supported; skipped")),
        }
    }
    Ok(())
}

fn device(t: &mut Translator, kind: Kind, m: &Map<String, Value>, path: &str) -> R<()> {
    let np = join(path, "name");
    let name = string(m.get("name").ok_or_else(|| bad(&np, "missing"))?, &np)?;
    let name = super::if_name(name, &np)?;
    let mut iface = Interface::default();
    match kind {
        Kind::Bond => iface.bond_opts = Some(BTreeMap::new()),
        Kind::Bridge => iface.bridge = Some(Bridge::Is(true)),
        Kind::Physical | Kind::Vlan => {}
    }
    let required: &[&str] = match kind {
        Kind::Bond => &["bond_interfaces"],
        Kind::Bridge => &["bridge_interfaces"],
        Kind::Vlan => &["vlan_id", "vlan_link"],
        Kind::Physical => &[],
    };
    if let Some(k) = required.iter().find(|k| !m.contains_key(**k)) {
        return Err(bad(&join(path, k), "missing"));
    }
    for (k, v) in m {
        let p = join(path, k);
        match (k.as_str(), kind) {
            ("type" | "name", _) => {}
            // The name is what cloud-init would rename the link to; ros does not rename, so
            // the name keys the entry and the MAC selects the link.
            ("mac_address", Kind::Physical) => iface.match_ = Some(Selector::Mac(mac(v, &p)?)),
            ("mac_address", _) => {
                t.warn(&p, "setting a hardware address is not supported; ignored")
            }
            ("mtu", _) => iface.mtu = Some(mtu(v, &p)?),
            ("subnets", _) => {
                for (i, s) in list(v, &p)?.iter().enumerate() {
                    subnet(t, &mut iface, s, &index(&p, i))?;
                }
            }
            ("bond_interfaces", Kind::Bond) => {
                for (i, member) in list(v, &p)?.iter().enumerate() {
                    let mp = index(&p, i);
                    t.links.push(Link::BondMember {
                        bond: name.clone(),
                        member: string(member, &mp)?.to_owned(),
                        path: mp,
                    });
                }
            }
            ("params", Kind::Bond) => {
                let opts = iface.bond_opts.get_or_insert_with(BTreeMap::new);
                for (pk, pv) in fields(v, &p)? {
                    let pp = join(&p, pk);
                    match bond_attr(pk) {
                        Some(attr) => t.bond_opt(opts, &attr, pv, &pp),
                        None => t.warn(&pp, "not a bonding option ros knows; ignored"),
                    }
                }
            }
            ("bridge_interfaces", Kind::Bridge) => {
                for (i, member) in list(v, &p)?.iter().enumerate() {
                    let mp = index(&p, i);
                    t.links.push(Link::BridgePort {
                        bridge: name.clone(),
                        member: string(member, &mp)?.to_owned(),
                        path: mp,
                    });
                }
            }
            ("params", Kind::Bridge) => {
                for pk in fields(v, &p)?.keys() {
                    t.warn(
                        &join(&p, pk),
                        "bridge parameters are not supported; ignored",
                    );
                }
            }
            ("vlan_id" | "vlan_link", Kind::Vlan) => {}
            ("accept-ra", _) => t.warn(
                &p,
                "router advertisement options are not supported; ignored",
            ),
            _ => t.warn(&p, "not supported; ignored"),
        }
    }
    if let (Kind::Vlan, Some(link), Some(id)) = (kind, m.get("vlan_link"), m.get("vlan_id")) {
        let lp = join(path, "vlan_link");
        let parent = string(link, &lp)?.to_owned();
        let id = vlan_id(id, &join(path, "vlan_id"))?;
        let vlan = Vlan {
            id,
            name: Some(name.clone()),
        };
        t.links.push(Link::Vlan {
            parent,
            vlan,
            path: lp,
        });
    }
    t.define(name.as_str(), name.as_str(), path, iface)
}

/// `bond-xmit-hash-policy` (or `bond_xmit_hash_policy`, `bond-lacp_rate`: both spellings
/// occur) → `xmit_hash_policy`, if ros writes that attribute.
fn bond_attr(param: &str) -> Option<String> {
    let p = param.to_ascii_lowercase().replace('_', "-");
    let attr = match p.strip_prefix("bond-")? {
        "learn-packet-interval" => "lp_interval".to_owned(),
        other => other.replace('-', "_"),
    };
    BOND_ATTRS.contains(&attr.as_str()).then_some(attr)
}

fn subnet(t: &mut Translator, iface: &mut Interface, s: &Value, path: &str) -> R<()> {
    let m = fields(s, path)?;
    let tp = join(path, "type");
    let ty = string(m.get("type").ok_or_else(|| bad(&tp, "missing"))?, &tp)?;
    let is_static = match ty {
        "dhcp" | "dhcp4" => {
            iface.dhcp = Some(true);
            false
        }
        "static" | "static6" => true,
        // The link is brought up without addresses.
        "manual" => false,
        "dhcp6" | "ipv6_dhcpv6-stateful" | "ipv6_dhcpv6-stateless" | "ipv6_slaac" => {
            t.warn(
                &tp,
                format!(
                    "{ty:?} is not supported (ros has no DHCPv6 or SLAAC client); subnet skipped"
                ),
            );
            return Ok(());
        }
        _ => {
            t.warn(&tp, format!("{ty:?} is not supported; subnet skipped"));
            return Ok(());
        }
    };
    if is_static {
        let (key, address) = ["address", "ip_address"]
            .into_iter()
            .find_map(|k| Some((k, m.get(k)?)))
            .ok_or_else(|| {
                bad(
                    &join(path, "address"),
                    "missing (a static subnet needs one)",
                )
            })?;
        let cidr = cidr(t, m, key, address, path)?;
        iface.addresses.get_or_insert_with(Vec::new).push(cidr);
    }
    for (k, v) in m {
        let p = join(path, k);
        match k.as_str() {
            "type" => {}
            "address" | "ip_address" | "netmask" | "prefix" if is_static => {}
            "gateway" if is_static => {
                let gw = super::ip(v, &p)?;
                if !gw.is_unspecified() {
                    t.gateway(iface, gw, &p);
                }
            }
            "dns_nameservers" => {
                for (ns, np) in items(v, &p)? {
                    t.nameserver(&ns, &np)?;
                }
            }
            "dns_search" => {
                for (d, dp) in items(v, &p)? {
                    t.search_domain(&d, &dp)?;
                }
            }
            "routes" => {
                for (i, r) in list(v, &p)?.iter().enumerate() {
                    let rp = index(&p, i);
                    if let Some(route) = route(t, fields(r, &rp)?, &rp)? {
                        iface.routes.get_or_insert_with(Vec::new).push(route);
                    }
                }
            }
            "control" if v.as_str() == Some("auto") => {}
            _ => t.warn(&p, "not supported; ignored"),
        }
    }
    Ok(())
}

fn nameserver(t: &mut Translator, m: &Map<String, Value>, path: &str) -> R<()> {
    for (k, v) in m {
        let p = join(path, k);
        match k.as_str() {
            // DNS is global in ros; `interface:` scoping is dropped.
            "type" | "interface" => {}
            "address" | "search" => {
                t.dns_list(k, v, &p)?;
            }
            _ => t.warn(&p, "not supported; ignored"),
        }
    }
    Ok(())
}

/// A route: `destination` (or `network`) with a prefix or `netmask`, `gateway`, `metric`.
/// `None` (warned) for one in another routing table.
fn route(t: &mut Translator, m: &Map<String, Value>, path: &str) -> R<Option<Route>> {
    if !super::main_table_unicast(t, m, path) {
        return Ok(None);
    }
    let via = match m.get("gateway").filter(|v| !v.is_null()) {
        Some(v) => Some(super::ip(v, &join(path, "gateway"))?).filter(|ip| !ip.is_unspecified()),
        None => None,
    };
    let (key, dest) = ["destination", "network"]
        .into_iter()
        .find_map(|k| Some((k, m.get(k)?)))
        .ok_or_else(|| bad(&join(path, "destination"), "missing"))?;
    let to = if dest.as_str() == Some("default") {
        default_route(via)
    } else {
        cidr(t, m, key, dest, path)?
    };
    let metric = match m.get("metric").filter(|v| !v.is_null()) {
        Some(v) => Some(metric(v, &join(path, "metric"))?),
        None => None,
    };
    for k in m.keys() {
        let known = [
            "type",
            "table",
            "destination",
            "network",
            "netmask",
            "prefix",
            "gateway",
            "metric",
        ];
        if !known.contains(&k.as_str()) {
            t.warn(&join(path, k), "not supported; ignored");
        }
    }
    let route = Route { to, via, metric };
    check_route(&route, path)?;
    Ok(Some(route))
}

/// `m`'s `key: value` as an address with its prefix: `/24` or `/255.255.255.0` after it, else
/// the entry's `prefix` or `netmask`, else what cloud-init assumes (/24, /64), with a warning.
fn cidr(
    t: &mut Translator,
    m: &Map<String, Value>,
    key: &str,
    value: &Value,
    path: &str,
) -> R<Cidr> {
    let ap = join(path, key);
    let text = scalar(value, &ap)?;
    let (a, mask) = match text.split_once('/') {
        Some((a, mask)) => (a, Some(mask)),
        None => (text.as_str(), None),
    };
    let addr: IpAddr = a.trim().parse().map_err(|_| {
        bad(
            &ap,
            format!("expected ADDRESS or ADDRESS/PREFIX, got {text:?}"),
        )
    })?;
    let v6 = addr.is_ipv6();
    let given = |k: &str| m.get(k).filter(|v| !v.is_null() && v.as_str() != Some(""));
    let prefix = if let Some(mask) = mask {
        mask_prefix(mask, v6).ok_or_else(|| {
            bad(
                &ap,
                format!("expected ADDRESS/PREFIX or ADDRESS/NETMASK, got {text:?}"),
            )
        })?
    } else if let Some(p) = given("prefix") {
        let pp = join(path, "prefix");
        mask_prefix(&scalar(p, &pp)?, v6)
            .ok_or_else(|| expected(&pp, "a prefix length of the address's family", p))?
    } else if let Some(nm) = given("netmask") {
        let np = join(path, "netmask");
        mask_prefix(&scalar(nm, &np)?, v6)
            .ok_or_else(|| expected(&np, "a netmask of the address's family", nm))?
    } else {
        let prefix = if v6 { 64 } else { 24 };
        t.warn(
            &ap,
            format!("no prefix or netmask; /{prefix} assumed, as cloud-init does"),
        );
        prefix
    };
    Ok(Cidr { addr, prefix })
}
