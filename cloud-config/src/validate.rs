//! The checker: walks a located YAML tree ([`crate::node`]) into a [`CloudConfig`].
//!
//! The first invalid value stops the walk with a [`ConfigError`] naming source, line, column
//! and key path; a key the schema does not know becomes a [`Warning`] with the nearest known
//! key, and is left out of the typed result (it is never applied, but the user is told).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::network::{self, Bridge, Cidr, Dns, IfName, Interface, Network, Route, Selector, Vlan};
use crate::node::{Key, Kind, Node, Pos};
use crate::schema::{
    decode_content, CaCerts, CloudConfig, CloudInit, Command, Encoding, Ntp, Owner, Ros, User,
    WriteFile,
};
use crate::types::{AbsPath, Hostname, OctalMode, SingleLine, UserName, ZramSize};
use crate::{ConfigError, Warning};

const TOP_KEYS: &[&str] = &[
    "hostname",
    "fqdn",
    "preserve_hostname",
    "ssh_authorized_keys",
    "users",
    "write_files",
    "runcmd",
    "bootcmd",
    "mounts",
    "ntp",
    "timezone",
    "ca_certs",
    "ros",
];
const ROS_KEYS: &[&str] = &[
    "services",
    "services_include",
    "network",
    "docker",
    "console",
    "sysctl",
    "modules",
    "environment",
    "zram",
    "state",
    "upgrade",
    "agent",
    "vms",
    "cloud_init",
    "cloud_config_url",
    "cloud_config",
    "debug",
    "recovery",
    "boot_timeout",
    "shutdown_timeout",
    "autologin",
    "images",
];
const USER_KEYS: &[&str] = &[
    "name",
    "gecos",
    "primary_group",
    "groups",
    "homedir",
    "shell",
    "sudo",
    "lock_passwd",
    "uid",
    "ssh_authorized_keys",
];
const WRITE_FILE_KEYS: &[&str] = &[
    "path",
    "content",
    "encoding",
    "permissions",
    "owner",
    "append",
    "defer",
];

/// The result of checking one document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Validated {
    pub config: CloudConfig,
    pub warnings: Vec<Warning>,
}

/// Checks a parsed document; `source` names it in messages (`user-data`, a file path).
pub fn validate(source: &str, root: &Node) -> Result<Validated, ConfigError> {
    let mut w = Walker {
        source,
        warnings: Vec::new(),
    };
    let config = w.top(root)?;
    // Fields are walked in key order; report in document order.
    w.warnings.sort_by_key(|w| (w.line, w.column));
    Ok(Validated {
        config,
        warnings: w.warnings,
    })
}

struct Walker<'a> {
    source: &'a str,
    warnings: Vec<Warning>,
}

type R<T> = Result<T, ConfigError>;

/// `a.b` (or `b` at the top): the key path in messages.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The known key closest to `key` by edit distance, if close enough to be a likely typo.
pub fn nearest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm = key.to_ascii_lowercase().replace('-', "_");
    known
        .iter()
        .map(|k| (levenshtein(&norm, k), *k))
        .min()
        .filter(|(d, k)| *d <= (k.len().max(key.len()) / 3).max(1) + usize::from(norm != key))
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Walker<'_> {
    fn err(&self, pos: Pos, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            source: self.source.to_owned(),
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
            message: message.into(),
        }
    }

    fn expected(&self, n: &Node, path: &str, what: &str) -> ConfigError {
        self.err(
            n.pos,
            path,
            format!("expected {what}, got {}", n.kind.describe()),
        )
    }

    /// The entries of a map whose keys are in `known`; other keys are warned about and dropped.
    /// `aliases` maps an accepted spelling to its key.
    fn fields<'n>(
        &mut self,
        n: &'n Node,
        path: &str,
        known: &[&str],
        aliases: &[(&str, &str)],
    ) -> R<BTreeMap<String, &'n Node>> {
        let entries: &[(Key, Node)] = match &n.kind {
            Kind::Map(entries) => entries,
            // `ros:` with nothing under it is an empty section, as in cloud-init.
            Kind::Null => &[],
            _ => return Err(self.expected(n, path, "a map")),
        };
        let mut out: BTreeMap<String, &Node> = BTreeMap::new();
        for (Key { pos, name }, v) in entries {
            let canonical = aliases
                .iter()
                .find(|(a, _)| a == name)
                .map(|(_, k)| *k)
                .or_else(|| known.iter().find(|k| *k == name).copied());
            match canonical {
                Some(k) => {
                    if out.insert(k.to_owned(), v).is_some() {
                        return Err(self.err(
                            *pos,
                            &join(path, name),
                            format!("same key as {k:?}, given twice"),
                        ));
                    }
                }
                None => {
                    let message = match nearest(name, known) {
                        Some(k) => format!("unknown key (did you mean {:?}?)", join(path, k)),
                        None => "unknown key".to_owned(),
                    };
                    self.warnings.push(Warning {
                        source: self.source.to_owned(),
                        line: pos.line,
                        column: pos.column,
                        path: join(path, name),
                        message,
                    });
                }
            }
        }
        Ok(out)
    }

    fn string<'n>(&self, n: &'n Node, path: &str) -> R<&'n str> {
        match &n.kind {
            Kind::Str(s) => Ok(s),
            _ => Err(self.expected(n, path, "a string")),
        }
    }

    /// A scalar as text: for values cloud-init stringifies (sysctl, environment, mounts).
    fn scalar_text(&self, n: &Node, path: &str) -> R<SingleLine> {
        let s = match &n.kind {
            Kind::Str(s) => s.clone(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Bool(b) => b.to_string(),
            _ => return Err(self.expected(n, path, "a scalar")),
        };
        SingleLine::parse(&s).map_err(|m| self.err(n.pos, path, m))
    }

    fn checked<T>(&self, n: &Node, path: &str, f: fn(&str) -> Result<T, String>) -> R<T> {
        let s = self.string(n, path)?;
        f(s).map_err(|m| self.err(n.pos, path, m))
    }

    fn boolean(&self, n: &Node, path: &str) -> R<bool> {
        match n.kind {
            Kind::Bool(b) => Ok(b),
            _ => Err(self.expected(n, path, "a boolean")),
        }
    }

    fn unsigned<T: TryFrom<i128>>(&self, n: &Node, path: &str) -> R<T> {
        match n.kind {
            Kind::Int(i) => {
                T::try_from(i).map_err(|_| self.expected(n, path, "an unsigned integer"))
            }
            _ => Err(self.expected(n, path, "an unsigned integer")),
        }
    }

    fn list<T>(
        &mut self,
        n: &Node,
        path: &str,
        mut f: impl FnMut(&mut Self, &Node, &str) -> R<T>,
    ) -> R<Vec<T>> {
        let Kind::Seq(items) = &n.kind else {
            return Err(self.expected(n, path, "a list"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| f(self, item, &index(path, i)))
            .collect()
    }

    /// A list, or one string of comma-separated items (cloud-init's `groups: a, b`).
    fn list_or_csv<T>(
        &mut self,
        n: &Node,
        path: &str,
        f: fn(&str) -> Result<T, String>,
    ) -> R<Vec<T>> {
        if let Kind::Str(s) = &n.kind {
            return s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| f(s).map_err(|m| self.err(n.pos, path, m)))
                .collect();
        }
        self.list(n, path, |w, item, p| w.checked(item, p, f))
    }

    fn raw_map(&self, n: &Node, path: &str) -> R<Value> {
        match n.kind {
            Kind::Map(_) => Ok(n.to_json()),
            _ => Err(self.expected(n, path, "a map")),
        }
    }

    fn text_map(&mut self, n: &Node, path: &str) -> R<BTreeMap<String, SingleLine>> {
        let Kind::Map(entries) = &n.kind else {
            return Err(self.expected(n, path, "a map"));
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let p = join(path, &k.name);
            let key = SingleLine::parse(&k.name).map_err(|m| self.err(k.pos, &p, m))?;
            out.insert(key.as_str().to_owned(), self.scalar_text(v, &p)?);
        }
        Ok(out)
    }

    fn top(&mut self, root: &Node) -> R<CloudConfig> {
        let f = self.fields(
            root,
            "",
            TOP_KEYS,
            &[("rancher", "ros"), ("ca-certs", "ca_certs")],
        )?;
        let mut c = CloudConfig::default();
        for (key, n) in &f {
            let n: &Node = n;
            let p = key.as_str();
            match p {
                "hostname" => c.hostname = Some(self.checked(n, p, Hostname::parse)?),
                "fqdn" => c.fqdn = Some(self.checked(n, p, Hostname::parse)?),
                "preserve_hostname" => c.preserve_hostname = Some(self.boolean(n, p)?),
                "ssh_authorized_keys" => {
                    c.ssh_authorized_keys =
                        Some(self.list(n, p, |w, i, p| w.checked(i, p, SingleLine::parse))?)
                }
                "users" => c.users = Some(self.list(n, p, Self::user)?),
                "write_files" => c.write_files = Some(self.list(n, p, Self::write_file)?),
                "runcmd" => c.runcmd = Some(self.list(n, p, Self::command)?),
                "bootcmd" => c.bootcmd = Some(self.list(n, p, Self::command)?),
                "mounts" => c.mounts = Some(self.list(n, p, Self::mount)?),
                "ntp" => c.ntp = Some(self.ntp(n, p)?),
                "timezone" => c.timezone = Some(self.checked(n, p, SingleLine::parse)?),
                "ca_certs" => c.ca_certs = Some(self.ca_certs(n, p)?),
                "ros" => c.ros = Some(self.ros(n, p)?),
                _ => unreachable_key(p),
            }
        }
        Ok(c)
    }

    fn user(&mut self, n: &Node, path: &str) -> R<User> {
        if let Kind::Str(_) = n.kind {
            return Ok(User::named(self.checked(n, path, UserName::parse)?));
        }
        let f = self.fields(n, path, USER_KEYS, &[])?;
        let Some(name) = f.get("name") else {
            return Err(self.err(n.pos, &join(path, "name"), "missing required key"));
        };
        let name = self.checked(name, &join(path, "name"), UserName::parse)?;
        let mut u = User::named(name);
        for (key, n) in &f {
            let n: &Node = n;
            let p = &join(path, key);
            match key.as_str() {
                "name" => {}
                "gecos" => u.gecos = Some(self.checked(n, p, SingleLine::parse)?),
                "primary_group" => u.primary_group = Some(self.checked(n, p, UserName::parse)?),
                "groups" => u.groups = Some(self.list_or_csv(n, p, UserName::parse)?),
                "homedir" => u.homedir = Some(self.checked(n, p, AbsPath::parse)?),
                "shell" => u.shell = Some(self.checked(n, p, AbsPath::parse)?),
                "sudo" => {
                    u.sudo = Some(match &n.kind {
                        Kind::Bool(false) | Kind::Null => Vec::new(),
                        Kind::Str(_) => vec![self.checked(n, p, SingleLine::parse)?],
                        Kind::Seq(_) => {
                            self.list(n, p, |w, i, p| w.checked(i, p, SingleLine::parse))?
                        }
                        _ => {
                            return Err(self.expected(
                                n,
                                p,
                                "a sudoers rule, a list of them or false",
                            ))
                        }
                    })
                }
                "lock_passwd" => u.lock_passwd = Some(self.boolean(n, p)?),
                "uid" => u.uid = Some(self.unsigned(n, p)?),
                "ssh_authorized_keys" => {
                    u.ssh_authorized_keys =
                        Some(self.list(n, p, |w, i, p| w.checked(i, p, SingleLine::parse))?)
                }
                other => unreachable_key(other),
            }
        }
        Ok(u)
    }

    fn write_file(&mut self, n: &Node, path: &str) -> R<WriteFile> {
        let f = self.fields(n, path, WRITE_FILE_KEYS, &[])?;
        let Some(p) = f.get("path") else {
            return Err(self.err(n.pos, &join(path, "path"), "missing required key"));
        };
        let mut wf = WriteFile {
            path: self.checked(p, &join(path, "path"), AbsPath::parse)?,
            content: String::new(),
            encoding: Encoding::Text,
            permissions: None,
            owner: None,
            append: false,
            defer: false,
        };
        for (key, n) in &f {
            let n: &Node = n;
            let p = &join(path, key);
            match key.as_str() {
                "path" | "content" => {}
                "encoding" => {
                    wf.encoding = match self.string(n, p)?.to_ascii_lowercase().as_str() {
                        "text/plain" | "text" => Encoding::Text,
                        "b64" | "base64" => Encoding::Base64,
                        "gz" | "gzip" => Encoding::Gzip,
                        "gz+b64" | "gz+base64" | "gzip+b64" | "gzip+base64" => Encoding::GzipBase64,
                        _ => {
                            return Err(self.expected(
                                n,
                                p,
                                "encoding b64, base64, gzip, gz, gz+b64 or text/plain",
                            ))
                        }
                    }
                }
                "permissions" => {
                    wf.permissions = Some(match &n.kind {
                        Kind::Int(i) => {
                            OctalMode::from_int(*i).map_err(|m| self.err(n.pos, p, m))?
                        }
                        Kind::Str(s) => OctalMode::parse(s).map_err(|m| self.err(n.pos, p, m))?,
                        _ => return Err(self.expected(n, p, "octal mode")),
                    })
                }
                "owner" => {
                    let s = self.checked(n, p, SingleLine::parse)?;
                    let (user, group) = match s.as_str().split_once(':') {
                        Some((u, g)) => (u, Some(g)),
                        None => (s.as_str(), None),
                    };
                    let part = |x: &str| {
                        if x.is_empty() || x.contains(char::is_whitespace) {
                            Err(self.expected(n, p, "owner as user or user:group"))
                        } else {
                            SingleLine::parse(x).map_err(|m| self.err(n.pos, p, m))
                        }
                    };
                    wf.owner = Some(Owner {
                        user: part(user)?,
                        group: group.map(part).transpose()?,
                    });
                }
                "append" => wf.append = self.boolean(n, p)?,
                "defer" => wf.defer = self.boolean(n, p)?,
                other => unreachable_key(other),
            }
        }
        if let Some(c) = f.get("content") {
            let p = &join(path, "content");
            wf.content = match &c.kind {
                Kind::Null => String::new(),
                _ => self.string(c, p)?.to_owned(),
            };
            decode_content(&wf.content, wf.encoding).map_err(|m| self.err(c.pos, p, m))?;
        }
        Ok(wf)
    }

    fn command(&mut self, n: &Node, path: &str) -> R<Command> {
        match &n.kind {
            Kind::Str(s) => Ok(Command::Shell(s.clone())),
            Kind::Seq(_) => {
                let argv = self.list(n, path, |w, i, p| {
                    Ok(w.scalar_text(i, p)?.as_str().to_owned())
                })?;
                if argv.is_empty() {
                    return Err(self.expected(n, path, "a non-empty argument list"));
                }
                Ok(Command::Argv(argv))
            }
            _ => Err(self.expected(n, path, "a command string or argument list")),
        }
    }

    fn mount(&mut self, n: &Node, path: &str) -> R<Vec<SingleLine>> {
        let fields = self.list(n, path, |w, i, p| w.scalar_text(i, p))?;
        if fields.is_empty() || fields.len() > 6 {
            return Err(self.err(
                n.pos,
                path,
                format!("expected 1 to 6 fstab fields, got {}", fields.len()),
            ));
        }
        Ok(fields)
    }

    fn ntp(&mut self, n: &Node, path: &str) -> R<Ntp> {
        let f = self.fields(n, path, &["enabled", "servers", "pools"], &[])?;
        let mut out = Ntp::default();
        for (key, n) in &f {
            let n: &Node = n;
            let p = &join(path, key);
            match key.as_str() {
                "enabled" => out.enabled = Some(self.boolean(n, p)?),
                "servers" => {
                    out.servers =
                        Some(self.list(n, p, |w, i, p| w.checked(i, p, SingleLine::parse))?)
                }
                "pools" => {
                    out.pools = Some(self.list(n, p, |w, i, p| w.checked(i, p, SingleLine::parse))?)
                }
                other => unreachable_key(other),
            }
        }
        Ok(out)
    }

    fn ca_certs(&mut self, n: &Node, path: &str) -> R<CaCerts> {
        let f = self.fields(
            n,
            path,
            &["remove_defaults", "trusted"],
            &[("remove-defaults", "remove_defaults")],
        )?;
        let mut out = CaCerts::default();
        for (key, n) in &f {
            let n: &Node = n;
            let p = &join(path, key);
            match key.as_str() {
                "remove_defaults" => out.remove_defaults = Some(self.boolean(n, p)?),
                "trusted" => {
                    out.trusted = Some(self.list(n, p, |w, i, p| {
                        let s = w.string(i, p)?;
                        if !s.contains("-----BEGIN CERTIFICATE-----") {
                            return Err(w.expected(i, p, "a PEM certificate"));
                        }
                        Ok(s.to_owned())
                    })?)
                }
                other => unreachable_key(other),
            }
        }
        Ok(out)
    }

    fn network(&mut self, n: &Node, path: &str) -> R<Network> {
        let f = self.fields(n, path, &["dns", "interfaces"], &[])?;
        let mut out = Network::default();
        if let Some(d) = f.get("dns") {
            let dp = &join(path, "dns");
            let df = self.fields(d, dp, &["nameservers", "search"], &[])?;
            let mut dns = Dns::default();
            if let Some(ns) = df.get("nameservers") {
                let p = &join(dp, "nameservers");
                dns.nameservers = Some(self.list_or_csv(ns, p, |s| {
                    s.parse()
                        .map_err(|_| format!("expected an IP address, got {s:?}"))
                })?);
            }
            if let Some(s) = df.get("search") {
                let p = &join(dp, "search");
                dns.search = Some(self.list_or_csv(s, p, |s| {
                    Hostname::parse(s).and_then(|h| SingleLine::parse(h.as_str()))
                })?);
            }
            out.dns = Some(dns);
        }
        if let Some(i) = f.get("interfaces") {
            let ip = &join(path, "interfaces");
            let entries: &[(Key, Node)] = match &i.kind {
                Kind::Map(entries) => entries,
                Kind::Null => &[],
                _ => return Err(self.expected(i, ip, "a map of interfaces")),
            };
            let mut interfaces = BTreeMap::new();
            for (k, v) in entries {
                let p = &join(ip, &k.name);
                Selector::parse(&k.name).map_err(|m| self.err(k.pos, p, m))?;
                interfaces.insert(k.name.clone(), self.interface(v, p)?);
            }
            out.interfaces = Some(interfaces);
        }
        Ok(out)
    }

    fn interface(&mut self, n: &Node, path: &str) -> R<Interface> {
        const KEYS: &[&str] = &[
            "match",
            "dhcp",
            "address",
            "addresses",
            "gateway",
            "gateway_ipv6",
            "routes",
            "mtu",
            "vlans",
            "bond",
            "bond_opts",
            "bridge",
        ];
        let f = self.fields(n, path, KEYS, &[])?;
        let mut out = Interface::default();
        let mut addresses = Vec::new();
        for (key, n) in &f {
            let n: &Node = n;
            let p = &join(path, key);
            match key.as_str() {
                "match" => out.match_ = Some(self.checked(n, p, Selector::parse)?),
                "dhcp" => out.dhcp = Some(self.boolean(n, p)?),
                "address" => addresses.insert(0, self.checked(n, p, Cidr::parse)?),
                "addresses" => addresses.extend(self.list_or_csv(n, p, Cidr::parse)?),
                "gateway" => {
                    out.gateway = Some(self.checked(n, p, |s| {
                        s.parse()
                            .map_err(|_| format!("expected an IPv4 address, got {s:?}"))
                    })?)
                }
                "gateway_ipv6" => {
                    out.gateway_ipv6 = Some(self.checked(n, p, |s| {
                        s.parse()
                            .map_err(|_| format!("expected an IPv6 address, got {s:?}"))
                    })?)
                }
                "routes" => out.routes = Some(self.list(n, p, |w, i, p| w.route(i, p))?),
                "mtu" => {
                    let mtu: u32 = self.unsigned(n, p)?;
                    if !(68..=65535).contains(&mtu) {
                        return Err(self.err(
                            n.pos,
                            p,
                            format!("expected an MTU 68-65535, got {mtu}"),
                        ));
                    }
                    out.mtu = Some(mtu)
                }
                "vlans" => {
                    out.vlans = Some(match &n.kind {
                        Kind::Int(_) => vec![self.checked_text(n, p, Vlan::parse)?],
                        _ => self.list_or_csv_scalars(n, p, Vlan::parse)?,
                    })
                }
                "bond" => out.bond = Some(self.checked(n, p, IfName::parse)?),
                "bond_opts" => out.bond_opts = Some(self.text_map(n, p)?),
                "bridge" => {
                    out.bridge = Some(match n.kind {
                        Kind::Bool(b) => Bridge::Is(b),
                        _ => Bridge::Port(self.checked(n, p, IfName::parse)?),
                    })
                }
                other => unreachable_key(other),
            }
        }
        if !addresses.is_empty() {
            out.addresses = Some(addresses);
        }
        Ok(out)
    }

    fn route(&mut self, n: &Node, path: &str) -> R<Route> {
        let f = self.fields(
            n,
            path,
            &["to", "via", "metric"],
            &[("gateway", "via"), ("destination", "to")],
        )?;
        let Some(to) = f.get("to") else {
            return Err(self.err(n.pos, path, "a route needs `to` (a network, or default)"));
        };
        let to = self.checked(to, &join(path, "to"), network::parse_destination)?;
        let via = match f.get("via") {
            Some(v) => Some(self.checked(v, &join(path, "via"), |s| {
                s.parse::<std::net::IpAddr>()
                    .map_err(|_| format!("expected an IP address, got {s:?}"))
            })?),
            None => None,
        };
        if via.is_some_and(|v| v.is_ipv4() != to.addr.is_ipv4()) {
            return Err(self.err(
                n.pos,
                path,
                format!("`via` and `to` ({to}) are of different IP versions"),
            ));
        }
        let metric = match f.get("metric") {
            Some(m) => Some(self.unsigned(m, &join(path, "metric"))?),
            None => None,
        };
        Ok(Route { to, via, metric })
    }

    /// A scalar's text checked by `f` (`vlans: 100`).
    fn checked_text<T>(&self, n: &Node, path: &str, f: fn(&str) -> Result<T, String>) -> R<T> {
        let s = self.scalar_text(n, path)?;
        f(s.as_str()).map_err(|m| self.err(n.pos, path, m))
    }

    /// A list of scalars, or one comma-separated string (`vlans: 100,200:mgmt`).
    fn list_or_csv_scalars<T>(
        &mut self,
        n: &Node,
        path: &str,
        f: fn(&str) -> Result<T, String>,
    ) -> R<Vec<T>> {
        if let Kind::Str(_) = &n.kind {
            return self.list_or_csv(n, path, f);
        }
        self.list(n, path, |w, i, p| w.checked_text(i, p, f))
    }

    fn ros(&mut self, n: &Node, path: &str) -> R<Ros> {
        let f = self.fields(n, path, ROS_KEYS, &[])?;
        let mut r = Ros::default();
        for (key, n) in &f {
            let n: &Node = n;
            let p = &join(path, key);
            match key.as_str() {
                "services" => {
                    let Kind::Map(entries) = &n.kind else {
                        return Err(self.expected(n, p, "a map of services"));
                    };
                    let mut services = BTreeMap::new();
                    for (k, v) in entries {
                        let sp = join(p, &k.name);
                        if !matches!(v.kind, Kind::Map(_) | Kind::Null) {
                            return Err(self.expected(v, &sp, "a service definition (a map)"));
                        }
                        services.insert(k.name.clone(), v.to_json());
                    }
                    r.services = Some(services);
                }
                "services_include" => {
                    let Kind::Map(entries) = &n.kind else {
                        return Err(self.expected(n, p, "a map of service names to booleans"));
                    };
                    let mut inc = BTreeMap::new();
                    for (k, v) in entries {
                        inc.insert(k.name.clone(), self.boolean(v, &join(p, &k.name))?);
                    }
                    r.services_include = Some(inc);
                }
                "network" => r.network = Some(self.network(n, p)?),
                "docker" => r.docker = Some(self.raw_map(n, p)?),
                "console" => r.console = Some(self.checked(n, p, SingleLine::parse)?),
                "sysctl" => r.sysctl = Some(self.text_map(n, p)?),
                "modules" => {
                    r.modules = Some(self.list(n, p, |w, i, p| w.checked(i, p, SingleLine::parse))?)
                }
                "environment" => r.environment = Some(self.text_map(n, p)?),
                "zram" => {
                    let text = self.scalar_text(n, p)?;
                    ZramSize::parse(text.as_str()).map_err(|m| self.err(n.pos, p, m))?;
                    r.zram = Some(text);
                }
                "state" => r.state = Some(self.raw_map(n, p)?),
                "upgrade" => r.upgrade = Some(self.raw_map(n, p)?),
                "agent" => r.agent = Some(self.raw_map(n, p)?),
                "vms" => r.vms = Some(self.raw_map(n, p)?),
                "cloud_init" => {
                    let ci = self.fields(n, p, &["datasources", "allow_imdsv1"], &[])?;
                    let mut out = CloudInit::default();
                    if let Some(d) = ci.get("datasources") {
                        let dp = &join(p, "datasources");
                        out.datasources =
                            Some(self.list(d, dp, |w, i, p| w.checked(i, p, SingleLine::parse))?);
                    }
                    if let Some(a) = ci.get("allow_imdsv1") {
                        out.allow_imdsv1 = Some(self.boolean(a, &join(p, "allow_imdsv1"))?);
                    }
                    r.cloud_init = Some(out);
                }
                "cloud_config_url" => {
                    r.cloud_config_url = Some(self.checked(n, p, SingleLine::parse)?)
                }
                "cloud_config" => r.cloud_config = Some(self.checked(n, p, SingleLine::parse)?),
                "debug" => r.debug = Some(self.boolean(n, p)?),
                "recovery" => r.recovery = Some(self.boolean(n, p)?),
                "boot_timeout" => r.boot_timeout = Some(self.unsigned(n, p)?),
                "shutdown_timeout" => r.shutdown_timeout = Some(self.unsigned(n, p)?),
                "autologin" => r.autologin = Some(self.checked(n, p, SingleLine::parse)?),
                "images" => r.images = Some(self.checked(n, p, SingleLine::parse)?),
                other => unreachable_key(other),
            }
        }
        Ok(r)
    }
}

/// `fields` only returns keys from the list the caller matches on; reaching this is a bug in
/// this module, and the key is ignored rather than taking the caller down.
fn unreachable_key(key: &str) {
    debug_assert!(false, "schema walker missed known key {key}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_key() {
        assert_eq!(nearest("hostnme", TOP_KEYS), Some("hostname"));
        assert_eq!(
            nearest("ssh-authorized-keys", TOP_KEYS),
            Some("ssh_authorized_keys")
        );
        assert_eq!(nearest("Runcmd", TOP_KEYS), Some("runcmd"));
        assert_eq!(nearest("package_update", TOP_KEYS), None);
        assert_eq!(nearest("x", TOP_KEYS), None);
    }

    #[test]
    fn null_sections_are_empty() {
        let root = crate::node::parse("ros:\nntp:\n").unwrap();
        let v = validate("t", &root).unwrap();
        assert_eq!(v.config.ros, Some(Ros::default()));
        assert_eq!(v.config.ntp, Some(Ntp::default()));
    }
}
