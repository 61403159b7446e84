//! A NoCloud / cloud-init network-config (version 1, and version 2 — the netplan subset
//! cloud-init documents) translated into ros's own schema, [`Network`].
//!
//! What ros can express is translated; what it cannot — DHCPv6, SLAAC and router
//! advertisement options, Wi-Fi and other device types, renaming (`set-name`), bridge
//! parameters, keys this module does not know — becomes a warning naming the item's path
//! (`config[2].type: "infiniband" is not supported; skipped`) and is left out. A document
//! that is not a network-config, or a value that cannot be read (an address without its
//! prefix in v2, VLAN id 5000), is an error naming the path and the value.
//!
//! Where ros's model differs from cloud-init's, and what the translation does about it:
//! - DNS is global in ros: per-interface and per-subnet nameservers and search domains are
//!   merged, in order, without duplicates.
//! - ros does not rename links: a v1 `physical` entry with `mac_address` is keyed by its
//!   `name` and matched by MAC (the link keeps its kernel name); a v2 entry with `match:` is
//!   keyed by its id and matched by MAC or name glob.
//! - v1 `route` entries are global; ros routes belong to an interface, so each goes to the
//!   interface with a static address on the gateway's subnet (the most specific one).
//! - A bond entry always carries `bond_opts`, empty if none were given: that marks it as a
//!   bond to create. A list value (`arp-ip-targets`) becomes one comma-separated value, the
//!   bonding module parameter's form.
//!
//! Does not own: reading the seed (the datasources), applying the result (netconf).

mod v1;
mod v2;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::network::{Bridge, Cidr, Dns, IfName, Interface, Network, Route, Selector, Vlan};
use crate::types::{Hostname, SingleLine};

/// A translated network-config and what it could not carry over.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translated {
    pub network: Network,
    /// `PATH: message`, in the order the document is walked (map keys sorted), those about
    /// links between entries (members, VLAN parents, global routes) last.
    pub warnings: Vec<String>,
}

/// Translates a network-config given bare (`{version: 1, config: [...]}`,
/// `{version: 2, ethernets: ...}`) or under a top-level `network:` key. The error reads
/// `network-config: PATH: message`.
pub fn translate(config: &Value) -> Result<Translated, String> {
    let Value::Object(top) = config else {
        return Err(expected("", "a map", config));
    };
    let mut t = Translator::default();
    let (doc, root) = match top.get("network") {
        Some(inner) if !top.contains_key("version") => {
            for k in top.keys().filter(|k| *k != "network") {
                t.warn(k, "not part of a network-config; ignored");
            }
            match inner {
                Value::Object(doc) => (doc, "network"),
                _ => return Err(expected("network", "a map", inner)),
            }
        }
        _ => (top, ""),
    };
    // cloud-init's switch for "leave the network alone".
    if doc.get("config").and_then(Value::as_str) == Some("disabled") {
        t.warn(
            &join(root, "config"),
            "network configuration is disabled; nothing to translate",
        );
        return Ok(Translated {
            network: Network::default(),
            warnings: t.warnings,
        });
    }
    let vp = join(root, "version");
    let v = doc
        .get("version")
        .ok_or_else(|| bad(&vp, "missing; expected 1 or 2"))?;
    let version = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match version {
        Some(1) => v1::walk(&mut t, doc, root)?,
        Some(2) => v2::walk(&mut t, doc, root)?,
        _ => return Err(expected(&vp, "1 or 2", v)),
    }
    t.finish()
}

/// The state of one translation: entries as they are defined, and the links between them
/// (bond members, bridge ports, VLAN parents, global routes), resolved once every entry is
/// known — both formats may refer to an entry before defining it.
#[derive(Default)]
struct Translator {
    interfaces: BTreeMap<String, Interface>,
    /// key → the path that defined it, for "defined twice".
    defined: BTreeMap<String, String>,
    /// What references name (a v1 name, a v2 id) → the entry's key.
    ids: BTreeMap<String, String>,
    /// Ids whose entry was skipped with a warning; references to them are dropped.
    skipped: BTreeSet<String>,
    links: Vec<Link>,
    /// v2: a reference to an undefined id is worth a warning (netplan refuses it); in v1
    /// cloud-init takes it as an interface name.
    strict_refs: bool,
    nameservers: Vec<IpAddr>,
    search: Vec<SingleLine>,
    warnings: Vec<String>,
}

enum Link {
    BondMember {
        bond: IfName,
        member: String,
        path: String,
    },
    BridgePort {
        bridge: IfName,
        member: String,
        path: String,
    },
    Vlan {
        parent: String,
        vlan: Vlan,
        path: String,
    },
    /// A v1 top-level route: onto the interface with an address on the gateway's subnet.
    Route { route: Route, path: String },
    /// v2 `primary:` names an id; the bond option needs the link's name.
    Primary {
        bond: String,
        member: String,
        path: String,
    },
}

type R<T> = Result<T, String>;

impl Translator {
    fn warn(&mut self, path: &str, message: impl fmt::Display) {
        self.warnings.push(if path.is_empty() {
            message.to_string()
        } else {
            format!("{path}: {message}")
        });
    }

    /// Adds the entry `key`, which references call `id`.
    fn define(&mut self, key: &str, id: &str, path: &str, iface: Interface) -> R<()> {
        Selector::parse(key).map_err(|m| bad(path, m))?;
        if let Some(first) = self.defined.get(key) {
            return Err(bad(
                path,
                format!("{key:?} is defined twice (first at {first})"),
            ));
        }
        self.defined.insert(key.to_owned(), path.to_owned());
        self.ids.insert(id.to_owned(), key.to_owned());
        self.interfaces.insert(key.to_owned(), iface);
        Ok(())
    }

    /// The key of the entry `id` refers to: a defined one, or a new empty entry taking `id`
    /// as an interface name. `None` (warned) when `id`'s entry was skipped.
    fn resolve(&mut self, id: &str, path: &str) -> R<Option<String>> {
        if let Some(key) = self.ids.get(id) {
            return Ok(Some(key.clone()));
        }
        if self.skipped.contains(id) {
            self.warn(path, format!("{id:?} was skipped; not linked"));
            return Ok(None);
        }
        let name = IfName::parse(id).map_err(|m| bad(path, m))?;
        Selector::parse(name.as_str()).map_err(|m| bad(path, m))?;
        if self.strict_refs {
            self.warn(
                path,
                format!("{id:?} is not defined; taken as an interface name"),
            );
        }
        self.ids.insert(id.to_owned(), id.to_owned());
        self.interfaces.insert(id.to_owned(), Interface::default());
        Ok(Some(id.to_owned()))
    }

    fn finish(mut self) -> R<Translated> {
        for link in std::mem::take(&mut self.links) {
            self.link(link)?;
        }
        let dns = (!self.nameservers.is_empty() || !self.search.is_empty()).then(|| Dns {
            nameservers: some_if_any(self.nameservers),
            search: some_if_any(self.search),
        });
        let interfaces = (!self.interfaces.is_empty()).then_some(self.interfaces);
        Ok(Translated {
            network: Network { dns, interfaces },
            warnings: self.warnings,
        })
    }

    fn link(&mut self, link: Link) -> R<()> {
        match link {
            Link::BondMember { bond, member, path } => {
                let Some(key) = self.resolve(&member, &path)? else {
                    return Ok(());
                };
                let Some(iface) = self.interfaces.get_mut(&key) else {
                    return Ok(());
                };
                let conflict = if key == bond.as_str() {
                    Some("a bond cannot be its own member; ignored".to_owned())
                } else {
                    taken(iface, Some(bond.as_str()), None)
                };
                match conflict {
                    Some(m) => self.warn(&path, m),
                    None => iface.bond = Some(bond),
                }
            }
            Link::BridgePort {
                bridge,
                member,
                path,
            } => {
                let Some(key) = self.resolve(&member, &path)? else {
                    return Ok(());
                };
                let Some(iface) = self.interfaces.get_mut(&key) else {
                    return Ok(());
                };
                let conflict = if iface.bridge == Some(Bridge::Is(true)) {
                    Some("a bridge cannot be a port of a bridge; ignored".to_owned())
                } else {
                    taken(iface, None, Some(bridge.as_str()))
                };
                match conflict {
                    Some(m) => self.warn(&path, m),
                    None => iface.bridge = Some(Bridge::Port(bridge)),
                }
            }
            Link::Vlan { parent, vlan, path } => {
                let Some(key) = self.resolve(&parent, &path)? else {
                    return Ok(());
                };
                let Some(iface) = self.interfaces.get_mut(&key) else {
                    return Ok(());
                };
                let vlans = iface.vlans.get_or_insert_with(Vec::new);
                if vlans.iter().any(|v| v.id == vlan.id) {
                    self.warn(
                        &path,
                        format!("{parent:?} already has VLAN {}; ignored", vlan.id),
                    );
                } else {
                    vlans.push(vlan);
                }
            }
            Link::Route { route, path } => {
                let Some(via) = route.via else {
                    self.warn(
                        &path,
                        "a route without a gateway belongs to no interface; skipped",
                    );
                    return Ok(());
                };
                let on_link = self
                    .interfaces
                    .iter_mut()
                    .filter_map(|(_, iface)| {
                        let prefix = iface
                            .addresses
                            .iter()
                            .flatten()
                            .filter(|a| contains(a, via))
                            .map(|a| a.prefix)
                            .max()?;
                        Some((prefix, iface))
                    })
                    // The first of the most specific: `max_by_key` would take the last.
                    .fold(
                        None,
                        |best: Option<(u8, &mut Interface)>, (p, i)| match best {
                            Some((bp, _)) if bp >= p => best,
                            _ => Some((p, i)),
                        },
                    );
                match on_link {
                    Some((_, iface)) => iface.routes.get_or_insert_with(Vec::new).push(route),
                    None => self.warn(
                        &path,
                        format!(
                            "no interface has a static address on the subnet of gateway {via}; \
                             skipped"
                        ),
                    ),
                }
            }
            Link::Primary { bond, member, path } => {
                let name = match self.ids.get(&member) {
                    Some(key) => match self.interfaces.get(key).map(|i| &i.match_) {
                        Some(None) => Some(key.clone()),
                        Some(Some(s)) => s.literal().map(str::to_owned),
                        None => None,
                    },
                    None if self.skipped.contains(&member) => None,
                    None => Some(member.clone()),
                };
                let value = name.and_then(|n| SingleLine::parse(&n).ok());
                match (value, self.interfaces.get_mut(&bond)) {
                    (Some(v), Some(iface)) => {
                        iface
                            .bond_opts
                            .get_or_insert_with(BTreeMap::new)
                            .insert("primary".to_owned(), v);
                    }
                    _ => self.warn(
                        &path,
                        format!("{member:?} has no fixed interface name to make primary; ignored"),
                    ),
                }
            }
        }
        Ok(())
    }

    fn nameserver(&mut self, v: &Value, path: &str) -> R<()> {
        let ip = ip(v, path)?;
        if !self.nameservers.contains(&ip) {
            self.nameservers.push(ip);
        }
        Ok(())
    }

    /// A DNS entry's `addresses`/`address` (v2/v1) or `search` list; false for other keys.
    fn dns_list(&mut self, key: &str, v: &Value, path: &str) -> R<bool> {
        match key {
            "address" | "addresses" => {
                for (ns, np) in items(v, path)? {
                    self.nameserver(&ns, &np)?;
                }
            }
            "search" => {
                for (d, dp) in items(v, path)? {
                    self.search_domain(&d, &dp)?;
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn search_domain(&mut self, v: &Value, path: &str) -> R<()> {
        let s = string(v, path)?;
        // Normalized as validate.rs normalizes `dns.search`, so the translation reads back equal.
        let domain = Hostname::parse(s)
            .and_then(|h| SingleLine::parse(h.as_str()))
            .map_err(|m| bad(path, m))?;
        if !self.search.contains(&domain) {
            self.search.push(domain);
        }
        Ok(())
    }

    /// `gateway` or `gateway_ipv6` by the address's family; ros keeps one of each.
    fn gateway(&mut self, iface: &mut Interface, gw: IpAddr, path: &str) {
        let kept = match gw {
            IpAddr::V4(a) => IpAddr::V4(*iface.gateway.get_or_insert(a)),
            IpAddr::V6(a) => IpAddr::V6(*iface.gateway_ipv6.get_or_insert(a)),
        };
        if kept != gw {
            self.warn(
                path,
                format!("a second gateway ({gw}) for the interface; {kept} is kept"),
            );
        }
    }

    /// One bonding option, as the text written to `/sys/class/net/BOND/bonding/ATTR`.
    fn bond_opt(
        &mut self,
        opts: &mut BTreeMap<String, SingleLine>,
        attr: &str,
        v: &Value,
        path: &str,
    ) {
        let text = match v {
            Value::Bool(b) => Some(u8::from(*b).to_string()),
            Value::Number(n) if BOND_MILLIS.contains(&attr) || attr == "lp_interval" => {
                n.as_u64().map(|n| n.to_string())
            }
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if BOND_MILLIS.contains(&attr) => millis(s),
            Value::String(s) if attr == "lp_interval" => {
                let s = s.trim();
                let n = s.strip_suffix('s').unwrap_or(s);
                all_digits(n).then(|| n.to_owned())
            }
            Value::String(s) => Some(s.trim().to_owned()),
            Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Some(s.trim().to_owned()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|v| v.join(",")),
            Value::Null | Value::Object(_) => None,
        };
        match text
            .filter(|t| !t.is_empty())
            .and_then(|t| SingleLine::parse(&t).ok())
        {
            Some(t) => {
                opts.insert(attr.to_owned(), t);
            }
            None => self.warn(
                path,
                format!(
                    "{} is not a value for bonding option {attr}; ignored",
                    describe(v)
                ),
            ),
        }
    }
}

/// Why `iface` cannot join bond `bond` / bridge `bridge`, if it cannot: a link is enslaved
/// to one master.
fn taken(iface: &Interface, bond: Option<&str>, bridge: Option<&str>) -> Option<String> {
    if let Some(b) = &iface.bond {
        if Some(b.as_str()) != bond {
            return Some(format!("already a member of bond {b}; ignored"));
        }
    }
    if let Some(Bridge::Port(b)) = &iface.bridge {
        if Some(b.as_str()) != bridge {
            return Some(format!("already a port of bridge {b}; ignored"));
        }
    }
    None
}

/// Whether `ip` is on the subnet of `net` (same family, not a default route's /0).
fn contains(net: &Cidr, ip: IpAddr) -> bool {
    net.prefix > 0
        && net.addr.is_ipv4() == ip.is_ipv4()
        && Cidr {
            addr: ip,
            prefix: net.prefix,
        }
        .network()
            == net.network()
}

fn some_if_any<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// sysfs bonding attributes (Documentation/networking/bonding.rst) that ros will write.
const BOND_ATTRS: &[&str] = &[
    "mode",
    "miimon",
    "updelay",
    "downdelay",
    "lacp_rate",
    "xmit_hash_policy",
    "primary",
    "primary_reselect",
    "ad_select",
    "ad_actor_sys_prio",
    "ad_actor_system",
    "ad_user_port_key",
    "all_slaves_active",
    "arp_interval",
    "arp_ip_target",
    "arp_validate",
    "arp_all_targets",
    "arp_missed_max",
    "fail_over_mac",
    "lp_interval",
    "min_links",
    "num_grat_arp",
    "num_unsol_na",
    "packets_per_slave",
    "peer_notif_delay",
    "resend_igmp",
    "tlb_dynamic_lb",
    "use_carrier",
];

/// Attributes in milliseconds; netplan also takes `100ms` and `1s` for them.
const BOND_MILLIS: &[&str] = &[
    "miimon",
    "updelay",
    "downdelay",
    "arp_interval",
    "peer_notif_delay",
];

fn millis(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return all_digits(ms).then(|| ms.to_owned());
    }
    if let Some(secs) = s.strip_suffix('s') {
        let n: u64 = secs.parse().ok().filter(|_| all_digits(secs))?;
        return n.checked_mul(1000).map(|ms| ms.to_string());
    }
    all_digits(s).then(|| s.to_owned())
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

// --- Paths and messages ---

use crate::validate::{index, join};

fn bad(path: &str, message: impl fmt::Display) -> String {
    if path.is_empty() {
        format!("network-config: {message}")
    } else {
        format!("network-config: {path}: {message}")
    }
}

fn expected(path: &str, what: &str, v: &Value) -> String {
    bad(path, format!("expected {what}, got {}", describe(v)))
}

/// A value as a message shows it (the wording of [`crate::node::Kind::describe`]).
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a map".into(),
    }
}

// --- Reading values ---

static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

/// A map; `null` (`eth0:` with nothing under it) is an empty one.
fn fields<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(&EMPTY),
        _ => Err(expected(path, "a map", v)),
    }
}

/// A list; `null` is an empty one.
fn list<'a>(v: &'a Value, path: &str) -> R<&'a [Value]> {
    match v {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(expected(path, "a list", v)),
    }
}

/// A list of scalars, or one string of items separated by spaces or commas (cloud-init
/// splits `dns_nameservers: "1.1.1.1 8.8.8.8"`), each with its path.
fn items(v: &Value, path: &str) -> R<Vec<(Value, String)>> {
    match v {
        Value::String(s) => Ok(s
            .split([' ', ',', '\t'])
            .filter(|w| !w.is_empty())
            .map(|w| (Value::String(w.to_owned()), path.to_owned()))
            .collect()),
        _ => Ok(list(v, path)?
            .iter()
            .enumerate()
            .map(|(i, item)| (item.clone(), index(path, i)))
            .collect()),
    }
}

fn string<'a>(v: &'a Value, path: &str) -> R<&'a str> {
    v.as_str().ok_or_else(|| expected(path, "a string", v))
}

/// A string or a number as text (`vlan_id: "100"`, `mtu: 1500`).
fn scalar(v: &Value, path: &str) -> R<String> {
    match v {
        Value::String(s) => Ok(s.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(expected(path, "a string or number", v)),
    }
}

fn uint(v: &Value, path: &str, what: &str) -> R<u64> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| expected(path, what, v))
}

/// A YAML 1.1 boolean, as cloud-init reads it (`true`, `"yes"`, `"on"`).
fn boolean(v: &Value, path: &str) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" => Ok(true),
            "false" | "no" | "off" | "n" => Ok(false),
            _ => Err(expected(path, "a boolean", v)),
        },
        _ => Err(expected(path, "a boolean", v)),
    }
}

fn ip(v: &Value, path: &str) -> R<IpAddr> {
    string(v, path)?
        .trim()
        .parse()
        .map_err(|_| expected(path, "an IP address", v))
}

fn ipv4(v: &Value, path: &str) -> R<Ipv4Addr> {
    string(v, path)?
        .trim()
        .parse()
        .map_err(|_| expected(path, "an IPv4 address", v))
}

fn ipv6(v: &Value, path: &str) -> R<Ipv6Addr> {
    string(v, path)?
        .trim()
        .parse()
        .map_err(|_| expected(path, "an IPv6 address", v))
}

fn mtu(v: &Value, path: &str) -> R<u32> {
    let what = "an MTU 68-65535";
    let n = uint(v, path, what)?;
    u32::try_from(n)
        .ok()
        .filter(|n| (68..=65535).contains(n))
        .ok_or_else(|| expected(path, what, v))
}

fn vlan_id(v: &Value, path: &str) -> R<u16> {
    let what = "a VLAN id 1-4094";
    let n = uint(v, path, what)?;
    u16::try_from(n)
        .ok()
        .filter(|n| (1..=4094).contains(n))
        .ok_or_else(|| expected(path, what, v))
}

fn metric(v: &Value, path: &str) -> R<u32> {
    let what = "a route metric (an unsigned integer)";
    u32::try_from(uint(v, path, what)?).map_err(|_| expected(path, what, v))
}

fn mac(v: &Value, path: &str) -> R<[u8; 6]> {
    let what = "a MAC address xx:xx:xx:xx:xx:xx (quoted in YAML)";
    v.as_str()
        .and_then(|s| crate::network::parse_mac(s.trim()))
        .ok_or_else(|| expected(path, what, v))
}

fn if_name(s: &str, path: &str) -> R<IfName> {
    IfName::parse(s).map_err(|m| bad(path, m))
}

/// The prefix length a netmask (`255.255.240.0`, `ffff:ffff::`) or a length (`20`) stands
/// for; `None` unless contiguous and of the address's family.
fn mask_prefix(mask: &str, v6: bool) -> Option<u8> {
    let mask = mask.trim();
    let max = if v6 { 128 } else { 32 };
    if all_digits(mask) {
        return mask.parse().ok().filter(|p| *p <= max);
    }
    let bits = if v6 {
        u128::from(mask.parse::<Ipv6Addr>().ok()?)
    } else {
        u128::from(u32::from(mask.parse::<Ipv4Addr>().ok()?)) << 96
    };
    let ones = bits.leading_ones();
    u8::try_from(ones)
        .ok()
        .filter(|p| ones + bits.trailing_zeros() >= 128 && *p <= max)
}

/// Whether a route (a v1 subnet or top-level one, a v2 one) belongs in the main table as a
/// unicast route, the only kind ros installs; if not, it is warned about. A v1 top-level
/// route's `type: route` is its entry type.
fn main_table_unicast(t: &mut Translator, m: &Map<String, Value>, path: &str) -> bool {
    if let Some(table) = m.get("table").filter(|v| !v.is_null()) {
        let main = matches!(table, Value::Number(n) if n.as_u64() == Some(254))
            || table.as_str() == Some("main");
        if !main {
            t.warn(
                &join(path, "table"),
                "routes in other tables are not supported; route skipped",
            );
            return false;
        }
    }
    match m.get("type").and_then(Value::as_str) {
        None | Some("unicast" | "route") => true,
        Some(ty) => {
            t.warn(
                &join(path, "type"),
                format!("{ty:?} routes are not supported; route skipped"),
            );
            false
        }
    }
}

/// A route's destination: `default` is the default route of the gateway's family.
fn default_route(via: Option<IpAddr>) -> Cidr {
    let addr = match via {
        Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    Cidr { addr, prefix: 0 }
}

/// `via` and `to` must be of one family (validate.rs refuses a mix).
fn check_route(route: &Route, path: &str) -> R<()> {
    match route.via {
        Some(via) if via.is_ipv4() != route.to.addr.is_ipv4() => Err(bad(
            path,
            format!(
                "gateway {via} and destination {} are of different IP versions",
                route.to
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
