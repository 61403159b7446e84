//! The typed `ros.network` section: what netconf configures.
//!
//! ```yaml
//! ros:
//!   network:
//!     dns: {nameservers: [10.0.0.1], search: [lan]}
//!     interfaces:
//!       eth0: {dhcp: true}                    # by name
//!       "eth*": {dhcp: true, mtu: 1400}       # by glob
//!       mac=52:54:00:12:34:56:                # by hardware address
//!         addresses: [10.0.0.5/24, fd00::5/64]
//!         gateway: 10.0.0.1
//!         routes: [{to: 10.8.0.0/16, via: 10.0.0.254}]
//!         vlans: 100,200:mgmt                 # eth0.100 and mgmt on VLAN 200
//!       bond0: {bond_opts: {mode: active-backup, miimon: 100}, dhcp: true}
//!       eth1: {bond: bond0}
//!       br0: {bridge: true, address: 10.1.0.1/24}
//!       eth2: {bridge: br0}
//! ```
//!
//! The map key names an interface, a glob over names (`eth*`), or `mac=` a hardware address;
//! `match:` overrides the key, so two entries can select by MAC and be named for humans.
//! RancherOS's spellings are accepted (`address` beside `addresses`, `vlans` as a
//! comma-separated string). NoCloud network-config v1/v2 translates into this
//! ([`crate::netcfg`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Serialize, Serializer};

use crate::instance::Metadata;
use crate::types::SingleLine;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Network {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<BTreeMap<String, Interface>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Dns {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nameservers: Option<Vec<IpAddr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<Vec<SingleLine>>,
}

/// One `interfaces` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Interface {
    /// Which links this entry configures; the map key when absent.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<Selector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<bool>,
    /// Static addresses (`address:` is folded in here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Cidr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_ipv6: Option<Ipv6Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlans: Option<Vec<Vlan>>,
    /// The bond this link is enslaved to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bond: Option<IfName>,
    /// Options of the bond this entry creates (`/sys/class/net/<bond>/bonding/<key>`;
    /// `arp_ip_target` comma-separated). Present, even empty, makes the entry a bond.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bond_opts: Option<BTreeMap<String, SingleLine>>,
    /// `true`: this entry is a bridge; a name: this link is a port of that bridge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<Bridge>,
}

/// What an entry selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// A name or a glob over names (`*`, `?`, `[...]`).
    Name(String),
    Mac([u8; 6]),
}

impl Selector {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(mac) = s.strip_prefix("mac=") {
            return parse_mac(mac)
                .map(Selector::Mac)
                .ok_or_else(|| format!("expected mac=xx:xx:xx:xx:xx:xx, got {s:?}"));
        }
        let ok = !s.is_empty()
            && s.len() < 64
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'_' | b'.' | b'*' | b'?' | b'[' | b']' | b'!' | b':' | b'@'
                    )
            });
        if !ok {
            return Err(format!(
                "expected an interface name, a glob (eth*) or mac=ADDRESS, got {s:?}"
            ));
        }
        Ok(Selector::Name(s.to_owned()))
    }

    /// Whether a link named `name` with hardware address `mac` is selected.
    pub fn matches(&self, name: &str, mac: Option<[u8; 6]>) -> bool {
        match self {
            Selector::Name(p) => glob(p.as_bytes(), name.as_bytes()),
            Selector::Mac(m) => mac == Some(*m),
        }
    }

    /// The pattern is one literal name (no glob characters, not a MAC).
    pub fn literal(&self) -> Option<&str> {
        match self {
            Selector::Name(p) if !p.contains(['*', '?', '[']) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Selector::Name(p) => f.write_str(p),
            Selector::Mac(m) => write!(
                f,
                "mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `aa:bb:cc:dd:ee:ff` (case-insensitive; `-` separators accepted).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Shell-style glob: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().skip(1).position(|&b| b == b']').map(|i| i + 1) else {
                return s.first() == Some(&b'[') && glob(rest, &s[1..]);
            };
            let Some((&c, tail)) = s.split_first() else {
                return false;
            };
            let (negate, set) = match rest[..end].split_first() {
                Some((b'!', set)) => (true, set),
                _ => (false, &rest[..end]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= (set[i]..=set[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob(&rest[end + 1..], tail)
        }
        Some((&c, rest)) => s.first() == Some(&c) && glob(rest, &s[1..]),
    }
}

/// A kernel interface name: 1–15 bytes, no `/`, whitespace or `:`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct IfName(String);

impl IfName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() < 16
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b'*' | b'?'));
        if !ok {
            return Err(format!(
                "expected an interface name (1 to 15 characters, no '/', ':' or spaces), got {s:?}"
            ));
        }
        Ok(IfName(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An address with its prefix length: `10.0.0.5/24`, `fd00::5/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("expected ADDRESS/PREFIX (10.0.0.5/24, fd00::5/64), got {s:?}");
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("prefix /{prefix} is longer than {max} in {s:?}"));
        }
        Ok(Cidr { addr, prefix })
    }

    /// The network part (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A static route: `to` (a network, or `default`), `via` a gateway, an optional metric.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    pub to: Cidr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// `default`, `0.0.0.0/0`, `::/0`, or a network.
pub fn parse_destination(s: &str) -> Result<Cidr, String> {
    match s {
        "default" | "0.0.0.0/0" => Ok(Cidr {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            prefix: 0,
        }),
        "::/0" => Ok(Cidr {
            addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            prefix: 0,
        }),
        _ => Cidr::parse(s),
    }
}

/// A VLAN on the entry's link: `100` (named `<link>.100`) or `200:mgmt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vlan {
    pub id: u16,
    pub name: Option<IfName>,
}

impl Vlan {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (id, name) = match s.split_once(':') {
            Some((id, name)) => (id, Some(IfName::parse(name.trim())?)),
            None => (s, None),
        };
        let id: u16 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| (1..=4094).contains(id))
            .ok_or_else(|| format!("expected a VLAN id 1-4094 (or ID:NAME), got {s:?}"))?;
        Ok(Vlan { id, name })
    }

    /// The link's name on `parent`.
    pub fn link_name(&self, parent: &str) -> String {
        match &self.name {
            Some(n) => n.to_string(),
            None => format!("{parent}.{}", self.id),
        }
    }
}

impl Serialize for Vlan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.name {
            Some(n) => s.collect_str(&format_args!("{}:{n}", self.id)),
            None => s.collect_str(&self.id),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bridge {
    /// `bridge: true`: the entry is a bridge (false: it is not).
    Is(bool),
    /// `bridge: br0`: the link is a port of `br0`.
    Port(IfName),
}

impl Serialize for Bridge {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Bridge::Is(b) => s.serialize_bool(*b),
            Bridge::Port(n) => n.serialize(s),
        }
    }
}

/// The network a host is configured with: `ros.network` from the merged config, and when
/// that lists no `interfaces`, the datasource's network-config (NoCloud v1/v2) translated.
/// The `dns` of `ros.network` wins over the translated one. Also returns what was said
/// about it (translation warnings, a merged section that does not validate).
pub fn for_host(merged: &serde_json::Value, meta: Option<&Metadata>) -> (Network, Vec<String>) {
    let mut said = Vec::new();
    let mut network = Network::default();
    if let Some(v) = merged.get("ros").and_then(|r| r.get("network")) {
        let doc = serde_json::json!({ "ros": { "network": v } });
        match crate::parse_document("ros.network (merged)", &doc.to_string()) {
            Ok(v) => {
                said.extend(v.warnings.iter().map(|w| w.to_string()));
                network = v.config.ros.and_then(|r| r.network).unwrap_or_default();
            }
            Err(e) => said.push(format!("{e} (network config not used)")),
        }
    }
    let configured = network.interfaces.as_ref().is_some_and(|i| !i.is_empty());
    if let (false, Some(nc)) = (configured, meta.and_then(|m| m.network_config.as_ref())) {
        match crate::netcfg::translate(nc) {
            Ok(t) => {
                said.extend(
                    t.warnings
                        .into_iter()
                        .map(|w| format!("network-config: {w}")),
                );
                network.interfaces = t.network.interfaces;
                if network.dns.is_none() {
                    network.dns = t.network.dns;
                }
            }
            Err(e) => said.push(format!("{e} (not used)")),
        }
    }
    (network, said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(b"eth*", b"eth0"));
        assert!(glob(b"eth*", b"eth"));
        assert!(!glob(b"eth*", b"ens3"));
        assert!(glob(b"en?3", b"ens3"));
        assert!(glob(b"eth[0-2]", b"eth1"));
        assert!(!glob(b"eth[0-2]", b"eth3"));
        assert!(glob(b"eth[!0]", b"eth3"));
        assert!(!glob(b"eth[!0]", b"eth0"));
        assert!(glob(b"*", b"anything"));
        assert!(glob(b"a[", b"a["));
    }

    #[test]
    fn selectors() {
        let m = Selector::parse("mac=52:54:00:AB:cd:01").unwrap();
        assert!(m.matches("x", Some([0x52, 0x54, 0, 0xab, 0xcd, 1])));
        assert!(!m.matches("x", None));
        assert_eq!(m.to_string(), "mac=52:54:00:ab:cd:01");
        assert!(Selector::parse("mac=52:54").is_err());
        assert!(Selector::parse("eth0 ; rm").is_err());
        assert_eq!(Selector::parse("eth*").unwrap().literal(), None);
        assert_eq!(Selector::parse("eth0").unwrap().literal(), Some("eth0"));
    }

    #[test]
    fn cidrs_routes_vlans() {
        let c = Cidr::parse("10.1.2.3/16").unwrap();
        assert_eq!(c.network().to_string(), "10.1.0.0");
        assert_eq!(c.to_string(), "10.1.2.3/16");
        assert_eq!(
            Cidr::parse("fd00::5/64").unwrap().network().to_string(),
            "fd00::"
        );
        assert!(Cidr::parse("10.0.0.1").is_err());
        assert!(Cidr::parse("10.0.0.1/33").is_err());
        assert_eq!(parse_destination("default").unwrap().prefix, 0);
        assert_eq!(Vlan::parse("100").unwrap().link_name("eth0"), "eth0.100");
        assert_eq!(Vlan::parse("200:mgmt").unwrap().link_name("eth0"), "mgmt");
        assert!(Vlan::parse("5000").is_err());
        assert!(Vlan::parse("0").is_err());
        assert!(IfName::parse("a-very-long-interface").is_err());
        assert!(IfName::parse("bond0").is_ok());
    }
}
