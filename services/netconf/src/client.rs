//! The DHCPv4 client state machine (RFC 2131 §4.4): INIT → SELECTING → REQUESTING → BOUND
//! → RENEWING (unicast at T1) → REBINDING (broadcast at T2) → INIT at expiry.
//!
//! One UDP socket on 0.0.0.0:68, bound to the interface (`SO_BINDTODEVICE`) with
//! `SO_BROADCAST`: Linux routes a limited broadcast out of the bound device even before it
//! has an address, and delivers broadcast replies to the socket, so no raw socket is needed.
//! Requests set the broadcast flag until the address is configured, because the kernel
//! drops unicast to an address it does not have yet.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::packet::{prefix_to_mask, ClientIdentity, Lease, MessageType, Packet};
use crate::{netlink, resolv, sys, Error, Options};

const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;
/// RFC 2131 §4.1: first retransmission after 4 s, doubling up to 64 s, ±1 s of jitter.
const FIRST_RETRANSMIT: Duration = Duration::from_secs(4);
const MAX_RETRANSMIT: Duration = Duration::from_secs(64);
/// Pause between failed acquisition attempts in the foreground.
const RETRY_PAUSE: Duration = Duration::from_secs(10);

pub struct Client {
    iface: String,
    id: ClientIdentity,
    sock: UdpSocket,
    root: PathBuf,
    once: bool,
    timeout: Duration,
    /// Whether leases write resolv.conf (not when the config names the DNS servers).
    write_resolv: bool,
    /// Whether a lease's MTU is applied (not when the config sets the link's MTU).
    lease_mtu: bool,
}

/// How an exchange with the server ended.
enum Outcome {
    Ack(Lease),
    Nak(String),
    /// Nothing acceptable before the deadline; `sent` requests went out.
    Silent {
        sent: u32,
    },
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // A failing getrandom only makes the xid predictable, not wrong.
    let _ = getrandom::getrandom(&mut b);
    u32::from_ne_bytes(b)
}

/// `base` ± up to one second.
fn jittered(base: Duration) -> Duration {
    let ms = u64::from(random_u32() % 2001);
    (base + Duration::from_millis(ms)).saturating_sub(Duration::from_secs(1))
}

impl Client {
    pub fn new(
        iface: &str,
        mac: [u8; 6],
        hostname: Option<String>,
        opts: &Options,
    ) -> Result<Self, Error> {
        let sock = open_socket(iface).map_err(|source| Error::Socket {
            iface: iface.to_string(),
            source,
        })?;
        Ok(Client {
            iface: iface.to_string(),
            id: ClientIdentity::new(mac, hostname),
            sock,
            root: opts.root.clone(),
            once: opts.once,
            timeout: opts.timeout,
            write_resolv: true,
            lease_mtu: true,
        })
    }

    /// Leases leave resolv.conf alone (the config names the DNS servers).
    pub fn keep_resolv(mut self) -> Self {
        self.write_resolv = false;
        self
    }

    /// Leases leave the MTU alone (the config sets it).
    pub fn keep_mtu(mut self) -> Self {
        self.lease_mtu = false;
        self
    }

    /// Acquires, applies, and (unless `--once`) keeps the lease renewed forever.
    pub fn run(&self) -> Result<(), Error> {
        loop {
            let (mut lease, mut since) = match self.acquire() {
                Ok(l) => l,
                Err(e) if self.once => return Err(e),
                Err(e) => {
                    log::warn!("{e}; retrying in {}s", RETRY_PAUSE.as_secs());
                    thread::sleep(jittered(RETRY_PAUSE));
                    continue;
                }
            };
            self.apply(&lease, None)?;
            log::info!("dhcp: {} leased {}", self.iface, describe(&lease));
            if self.once {
                return Ok(());
            }
            // BOUND: renew until a NAK or expiry sends us back to INIT.
            loop {
                // A zero T1 from a confused server must not become a busy loop.
                sleep_until(since + lease.t1.max(Duration::from_secs(1)));
                log::info!(
                    "dhcp: {} renewing {} with {}",
                    self.iface,
                    lease.address,
                    lease.server
                );
                let started = Instant::now();
                let server = SocketAddrV4::new(lease.server, SERVER_PORT);
                let mut outcome = self.renew(&lease, server, false, since + lease.t2)?;
                if let Outcome::Silent { sent } = outcome {
                    log::info!(
                        "dhcp: {} rebinding {} ({sent} unanswered renewals)",
                        self.iface,
                        lease.address
                    );
                    let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
                    outcome = self.renew(&lease, bcast, true, since + lease.lease_time)?;
                }
                match outcome {
                    Outcome::Ack(new) => {
                        self.apply(&new, Some(&lease))?;
                        log::info!("dhcp: {} renewed {}", self.iface, describe(&new));
                        lease = new;
                        since = started;
                    }
                    Outcome::Nak(msg) => {
                        log::warn!(
                            "dhcp: {} lease refused by server ({msg}); restarting",
                            self.iface
                        );
                        self.unapply();
                        break;
                    }
                    Outcome::Silent { .. } => {
                        log::warn!(
                            "dhcp: {} lease on {} expired; restarting",
                            self.iface,
                            lease.address
                        );
                        self.unapply();
                        break;
                    }
                }
            }
        }
    }

    /// INIT → SELECTING → REQUESTING → BOUND, bounded by `timeout` overall. Returns the
    /// lease and the time its REQUEST went out (lease timers start there, RFC 2131 §4.4.1).
    fn acquire(&self) -> Result<(Lease, Instant), Error> {
        let deadline = Instant::now() + self.timeout;
        let start = Instant::now();
        let mut detail = String::from("no reply");
        while Instant::now() < deadline {
            let xid = random_u32();
            let secs = || start.elapsed().as_secs().min(u64::from(u16::MAX)) as u16;
            log::debug!("dhcp: {} DISCOVER xid {xid:#010x}", self.iface);
            let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
            let offer = self.exchange(
                || Packet::discover(&self.id, xid, secs()),
                bcast,
                xid,
                deadline,
                |p| {
                    (p.msg_type == MessageType::Offer)
                        .then(|| Lease::from_packet(p, None).ok())
                        .flatten()
                },
            )?;
            let offer = match offer {
                Ok(o) => o,
                Err(sent) => {
                    detail = format!("{sent} DISCOVERs, no OFFER");
                    break;
                }
            };
            log::info!(
                "dhcp: {} offered {} by {}",
                self.iface,
                offer.address,
                offer.server
            );
            let requested = Instant::now();
            let outcome = self.exchange(
                || Packet::request_selecting(&self.id, xid, secs(), offer.address, offer.server),
                bcast,
                xid,
                deadline,
                |p| self.ack_or_nak(p, Some(offer.server)),
            )?;
            match outcome {
                Ok(Outcome::Ack(lease)) => return Ok((lease, requested)),
                Ok(Outcome::Nak(msg)) => {
                    log::warn!("dhcp: {} REQUEST refused ({msg}); restarting", self.iface);
                    detail = format!("NAK: {msg}");
                }
                Ok(Outcome::Silent { .. }) | Err(_) => {
                    detail = format!(
                        "OFFER of {} from {} but no ACK",
                        offer.address, offer.server
                    );
                }
            }
        }
        Err(Error::Timeout {
            iface: self.iface.clone(),
            timeout: self.timeout,
            detail,
        })
    }

    /// A REQUEST in RENEWING (unicast to the server) or REBINDING (broadcast) state.
    fn renew(
        &self,
        lease: &Lease,
        to: SocketAddrV4,
        broadcast: bool,
        deadline: Instant,
    ) -> Result<Outcome, Error> {
        let xid = random_u32();
        let start = Instant::now();
        let r = self.exchange(
            || {
                let secs = start.elapsed().as_secs().min(u64::from(u16::MAX)) as u16;
                Packet::request_renew(&self.id, xid, secs, lease.address, broadcast)
            },
            to,
            xid,
            deadline,
            |p| self.ack_or_nak(p, Some(lease.server)),
        )?;
        Ok(r.unwrap_or_else(|sent| Outcome::Silent { sent }))
    }

    fn ack_or_nak(&self, p: &Packet, server: Option<Ipv4Addr>) -> Option<Outcome> {
        match p.msg_type {
            MessageType::Ack => match Lease::from_packet(p, server) {
                Ok(l) => Some(Outcome::Ack(l)),
                Err(e) => {
                    log::warn!("dhcp: {} unusable DHCPACK dropped: {e}", self.iface);
                    None
                }
            },
            MessageType::Nak => Some(Outcome::Nak(p.message().unwrap_or_default())),
            _ => None,
        }
    }

    /// Sends `build()` to `to`, retransmitting with exponential backoff, until `accept`
    /// takes a reply with our xid and MAC, or `deadline` passes (`Err(sent)`).
    fn exchange<T>(
        &self,
        build: impl Fn() -> Packet,
        to: SocketAddrV4,
        xid: u32,
        deadline: Instant,
        mut accept: impl FnMut(&Packet) -> Option<T>,
    ) -> Result<Result<T, u32>, Error> {
        let mut delay = FIRST_RETRANSMIT;
        let mut sent = 0u32;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            let bytes = build().encode();
            match self.sock.send_to(&bytes, SocketAddr::V4(to)) {
                Ok(_) => sent += 1,
                // ENETUNREACH and friends while the link settles: retry on schedule.
                Err(e) if e.kind() != io::ErrorKind::InvalidInput => {
                    log::debug!("dhcp: {} send to {to}: {e}", self.iface)
                }
                Err(source) => {
                    return Err(Error::Send {
                        iface: self.iface.clone(),
                        source,
                    })
                }
            }
            let wait_end = (Instant::now() + jittered(delay)).min(deadline);
            delay = (delay * 2).min(MAX_RETRANSMIT);
            loop {
                let now = Instant::now();
                if now >= wait_end {
                    break;
                }
                let _ = self
                    .sock
                    .set_read_timeout(Some((wait_end - now).max(Duration::from_millis(1))));
                let (n, from) = match self.sock.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(e) => {
                        log::debug!("dhcp: {} recv: {e}", self.iface);
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                let p = match Packet::decode(&buf[..n]) {
                    Ok(p) => p,
                    Err(e) => {
                        log::debug!("dhcp: {} dropped a packet from {from}: {e}", self.iface);
                        continue;
                    }
                };
                if p.xid != xid || p.chaddr != self.id.mac {
                    log::debug!(
                        "dhcp: {} ignored a reply for another xid/client",
                        self.iface
                    );
                    continue;
                }
                if let Some(v) = accept(&p) {
                    return Ok(Ok(v));
                }
            }
        }
        Ok(Err(sent))
    }

    fn apply_err(&self, source: io::Error) -> Error {
        Error::Apply {
            iface: self.iface.clone(),
            source,
        }
    }

    /// Configures the interface from `lease`; `old` is the lease it replaces.
    fn apply(&self, lease: &Lease, old: Option<&Lease>) -> Result<(), Error> {
        if let Some(old) = old {
            if old.address != lease.address || old.prefix != lease.prefix {
                sys::clear_address(&self.iface).map_err(|e| self.apply_err(e))?;
            }
        }
        sys::set_address(&self.iface, lease.address, prefix_to_mask(lease.prefix))
            .map_err(|e| self.apply_err(e))?;
        if let Some(mtu) = lease.mtu.filter(|_| self.lease_mtu) {
            if let Err(e) = netlink::set_mtu(&self.iface, u32::from(mtu)) {
                log::warn!("dhcp: {} MTU {mtu} not applied: {e}", self.iface);
            }
        }
        if let Some(router) = lease.routers.first() {
            sys::add_default_route(&self.iface, *router).map_err(|e| self.apply_err(e))?;
        }
        if self.write_resolv
            && !lease.dns.is_empty()
            && old.is_none_or(|o| o.dns != lease.dns || o.domain != lease.domain)
        {
            let text = resolv::render(&lease.dns, lease.domain.as_deref());
            resolv::write(&self.root, &text).map_err(|source| Error::Resolv {
                path: self.root.join("etc/resolv.conf"),
                source,
            })?;
        }
        Ok(())
    }

    /// Drops the address (and with it the routes through it) after expiry or a NAK.
    fn unapply(&self) {
        if let Err(e) = sys::clear_address(&self.iface) {
            log::warn!("dhcp: {} removing the expired address: {e}", self.iface);
        }
    }
}

fn describe(l: &Lease) -> String {
    let join = |v: &[Ipv4Addr]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let mut s = format!(
        "{}/{} from {}, router {}, dns {}, lease {}s",
        l.address,
        l.prefix,
        l.server,
        join(&l.routers),
        join(&l.dns),
        l.lease_time.as_secs()
    );
    if let Some(mtu) = l.mtu {
        s.push_str(&format!(", mtu {mtu}"));
    }
    s
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

fn open_socket(iface: &str) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(iface.as_bytes()))?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT).into())?;
    Ok(s.into())
}
