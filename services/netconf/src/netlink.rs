//! rtnetlink requests: creating bonds, bridges and VLANs, enslaving links, MTU and link
//! state, static addresses (IPv4 and IPv6) and routes. One request per call, acknowledged
//! (`NLM_F_ACK`); the kernel's error comes back as an `io::Error` naming the request.
//!
//! Messages are built by hand from <linux/netlink.h>, <linux/rtnetlink.h> and
//! <linux/if_link.h>: a header, the family's fixed struct, then attributes (type, length,
//! value, padded to 4 bytes). Requests are idempotent where the kernel allows it: an
//! existing link, address or route is not an error.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VLAN_ID: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;

const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;

const IFF_UP: u32 = 0x1;

static SEQ: AtomicU32 = AtomicU32::new(1);

/// A request under construction: header, fixed part, attributes.
struct Message {
    buf: Vec<u8>,
    /// Offsets of open nested attributes, whose lengths are patched when closed.
    nests: Vec<usize>,
}

impl Message {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish()
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&SEQ.fetch_add(1, Ordering::Relaxed).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        buf.extend_from_slice(fixed);
        pad(&mut buf);
        Message {
            buf,
            nests: Vec::new(),
        }
    }

    fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = (4 + value.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        pad(&mut self.buf);
        self
    }

    fn attr_u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    fn attr_str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    fn begin(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Self {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// `struct ifinfomsg`: family, type, index, flags, change.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

fn family(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn octets(addr: &IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Sends one request and waits for its acknowledgement. `EEXIST` is success when
/// `exists_ok`.
fn request(what: &str, msg: Message, exists_ok: bool) -> io::Result<()> {
    let buf = msg.finish();
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &NetlinkAddr::new(0, 0),
    )?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    sendto(raw, &buf, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
    let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
    let mut reply = vec![0u8; 8192];
    loop {
        let n = recv(raw, &mut reply, MsgFlags::empty())?;
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_ne_bytes(reply[at..at + 4].try_into().unwrap_or([0; 4])) as usize;
            let kind = u16::from_ne_bytes([reply[at + 4], reply[at + 5]]);
            let rseq = u32::from_ne_bytes(reply[at + 8..at + 12].try_into().unwrap_or([0; 4]));
            if len < 16 || at + len > n {
                break;
            }
            if kind == NLMSG_ERROR && rseq == seq && len >= 20 {
                let code = i32::from_ne_bytes(reply[at + 16..at + 20].try_into().unwrap_or([0; 4]));
                return match code {
                    0 => Ok(()),
                    c if exists_ok && -c == libc::EEXIST => Ok(()),
                    c => {
                        let e = io::Error::from_raw_os_error(-c);
                        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
                    }
                };
            }
            at += (len + 3) & !3;
        }
    }
}

/// The index of link `name`.
pub fn index(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name)
        .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("no link {name}: {e}")))
}

/// What a created link is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkKind {
    Bond,
    Bridge,
    Vlan { parent: String, id: u16 },
}

/// Creates link `name` of `kind` (an existing one is left as it is).
pub fn create(name: &str, kind: &LinkKind) -> io::Result<()> {
    let mut m = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifinfomsg(0, 0, 0));
    m.attr_str(IFLA_IFNAME, name);
    match kind {
        LinkKind::Bond => {
            m.begin(IFLA_LINKINFO)
                .attr_str(IFLA_INFO_KIND, "bond")
                .end();
        }
        LinkKind::Bridge => {
            m.begin(IFLA_LINKINFO)
                .attr_str(IFLA_INFO_KIND, "bridge")
                .end();
        }
        LinkKind::Vlan { parent, id } => {
            m.attr_u32(IFLA_LINK, index(parent)?);
            m.begin(IFLA_LINKINFO)
                .attr_str(IFLA_INFO_KIND, "vlan")
                .begin(IFLA_INFO_DATA)
                .attr(IFLA_VLAN_ID, &id.to_ne_bytes())
                .end()
                .end();
        }
    }
    request(&format!("creating {name} ({kind:?})"), m, true)
}

/// Sets or clears IFF_UP on `name`.
pub fn set_up(name: &str, up: bool) -> io::Result<()> {
    let idx = index(name)?;
    let m = Message::new(
        RTM_NEWLINK,
        0,
        &ifinfomsg(idx, if up { IFF_UP } else { 0 }, IFF_UP),
    );
    let state = if up { "up" } else { "down" };
    request(&format!("setting {name} {state}"), m, false)
}

pub fn set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let mut m = Message::new(RTM_NEWLINK, 0, &ifinfomsg(index(name)?, 0, 0));
    m.attr_u32(IFLA_MTU, mtu);
    request(&format!("setting the MTU of {name} to {mtu}"), m, false)
}

/// Makes `name` a port of `master` (a bond or a bridge).
pub fn set_master(name: &str, master: &str) -> io::Result<()> {
    let mut m = Message::new(RTM_NEWLINK, 0, &ifinfomsg(index(name)?, 0, 0));
    m.attr_u32(IFLA_MASTER, index(master)?);
    request(&format!("adding {name} to {master}"), m, false)
}

/// Adds `addr/prefix` to `name` (an existing identical address is kept).
pub fn add_address(name: &str, addr: IpAddr, prefix: u8) -> io::Result<()> {
    let idx = index(name)?;
    let mut fixed = [0u8; 8];
    fixed[0] = family(&addr);
    fixed[1] = prefix;
    fixed[3] = RT_SCOPE_UNIVERSE;
    fixed[4..8].copy_from_slice(&idx.to_ne_bytes());
    let mut m = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &fixed);
    m.attr(IFA_LOCAL, &octets(&addr))
        .attr(IFA_ADDRESS, &octets(&addr));
    if let IpAddr::V4(a) = addr {
        if prefix < 31 {
            let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            let broadcast = std::net::Ipv4Addr::from(u32::from(a) | host);
            m.attr(IFA_BROADCAST, &broadcast.octets());
        }
    }
    request(&format!("adding {addr}/{prefix} to {name}"), m, true)
}

/// Adds or replaces the route to `dst/prefix` via `gateway` (or directly on the link) on
/// `name`, with `metric`.
pub fn add_route(
    name: &str,
    dst: IpAddr,
    prefix: u8,
    gateway: Option<IpAddr>,
    metric: Option<u32>,
) -> io::Result<()> {
    let idx = index(name)?;
    let mut fixed = [0u8; 12];
    fixed[0] = family(&dst);
    fixed[1] = prefix;
    fixed[4] = RT_TABLE_MAIN;
    fixed[5] = RTPROT_STATIC;
    fixed[6] = if gateway.is_some() {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_LINK
    };
    fixed[7] = RTN_UNICAST;
    let mut m = Message::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &fixed);
    if prefix > 0 {
        m.attr(RTA_DST, &octets(&dst));
    }
    if let Some(gw) = gateway {
        m.attr(RTA_GATEWAY, &octets(&gw));
    }
    m.attr_u32(RTA_OIF, idx);
    if let Some(metric) = metric {
        m.attr_u32(RTA_PRIORITY, metric);
    }
    let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
    request(
        &format!("adding the route {dst}/{prefix}{via} on {name}"),
        m,
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_padded_and_nested() {
        let mut m = Message::new(RTM_NEWLINK, NLM_F_CREATE, &ifinfomsg(7, 0, 0));
        m.attr_str(IFLA_IFNAME, "br0")
            .begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "bridge")
            .end();
        let b = m.finish();
        assert_eq!(b.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), RTM_NEWLINK);
        // header 16 + ifinfomsg 16; "br0\0" attribute: 4 + 4 bytes.
        assert_eq!(&b[32..40], &[8, 0, 3, 0, b'b', b'r', b'0', 0]);
        // linkinfo: 4 + ("bridge\0" attribute: 4 + 7, padded to 12) = 16.
        assert_eq!(u16::from_ne_bytes([b[40], b[41]]), 16);
        assert_eq!(u16::from_ne_bytes([b[42], b[43]]), IFLA_LINKINFO);
        assert_eq!(b.len(), 40 + 4 + 12);
    }
}
