//! DHCPv4 messages (RFC 2131 §2, options from RFC 2132): encoding the client's messages and
//! decoding the server's, with every length checked. Decoding never panics: a malformed
//! packet is a [`PacketError`] naming what was wrong, and the client drops it.

use std::net::Ipv4Addr;
use std::time::Duration;

/// Fixed BOOTP header (236 bytes) + the magic cookie.
const HEADER_LEN: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// RFC 2131 §2: a client must accept messages of up to 576 bytes; BOOTP relays expect
/// requests of at least 300 bytes, so short messages are padded to that.
const MIN_PACKET_LEN: usize = 300;
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const HTYPE_ETHERNET: u8 = 1;
/// The broadcast flag (RFC 2131 §4.1): until the address is configured the kernel drops
/// unicast replies to it, so the server must broadcast.
pub const FLAG_BROADCAST: u16 = 0x8000;

/// Option codes used here (RFC 2132).
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const MTU: u8 = 26;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAM_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const T1: u8 = 58;
    pub const T2: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const END: u8 = 255;
}

/// DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("packet too short: {0} bytes, a DHCP message has at least 240")]
    TooShort(usize),
    #[error("not a BOOTREPLY (op {0})")]
    NotReply(u8),
    #[error("hardware type {0} length {1} is not Ethernet")]
    NotEthernet(u8, u8),
    #[error("bad magic cookie {0:02x?}")]
    BadCookie([u8; 4]),
    #[error("option {code} truncated: needs {need} bytes, {left} left")]
    TruncatedOption { code: u8, need: usize, left: usize },
    #[error("options end without the END option")]
    NoEnd,
    #[error("no message type option")]
    NoMessageType,
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    #[error("option {code} has length {len}, expected {expected}")]
    BadOptionLength {
        code: u8,
        len: usize,
        expected: &'static str,
    },
    #[error("subnet mask {0} is not contiguous")]
    BadMask(Ipv4Addr),
    #[error("{0} has no {1}")]
    Missing(&'static str, &'static str),
}

/// One DHCP message, header fields and options in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub op: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub msg_type: MessageType,
    /// Options other than the message type, PAD and END.
    pub options: Vec<(u8, Vec<u8>)>,
}

/// What the client sends in every message: its identity.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub mac: [u8; 6],
    /// Option 61; RFC 2132 §9.14 form `01 <mac>` when built by [`ClientIdentity::new`].
    pub client_id: Vec<u8>,
    pub hostname: Option<String>,
}

impl ClientIdentity {
    pub fn new(mac: [u8; 6], hostname: Option<String>) -> Self {
        let mut client_id = vec![HTYPE_ETHERNET];
        client_id.extend_from_slice(&mac);
        Self {
            mac,
            client_id,
            hostname: hostname.filter(|h| !h.is_empty() && h.len() <= 255),
        }
    }
}

/// The parameters asked for in option 55.
const PARAMS: [u8; 7] = [
    opt::SUBNET_MASK,
    opt::ROUTER,
    opt::DNS,
    opt::DOMAIN_NAME,
    opt::MTU,
    opt::T1,
    opt::T2,
];

impl Packet {
    fn request(id: &ClientIdentity, msg_type: MessageType, xid: u32, secs: u16) -> Self {
        let mut options = vec![
            (opt::CLIENT_ID, id.client_id.clone()),
            (opt::MAX_MESSAGE_SIZE, 1500u16.to_be_bytes().to_vec()),
        ];
        if let Some(h) = &id.hostname {
            options.push((opt::HOSTNAME, h.as_bytes().to_vec()));
        }
        options.push((opt::PARAM_REQUEST_LIST, PARAMS.to_vec()));
        Packet {
            op: BOOTREQUEST,
            xid,
            secs,
            flags: FLAG_BROADCAST,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: id.mac,
            msg_type,
            options,
        }
    }

    /// DHCPDISCOVER (RFC 2131 §4.4.1).
    pub fn discover(id: &ClientIdentity, xid: u32, secs: u16) -> Self {
        Self::request(id, MessageType::Discover, xid, secs)
    }

    /// DHCPREQUEST in SELECTING state: requested IP and server id from the chosen offer.
    pub fn request_selecting(
        id: &ClientIdentity,
        xid: u32,
        secs: u16,
        requested: Ipv4Addr,
        server: Ipv4Addr,
    ) -> Self {
        let mut p = Self::request(id, MessageType::Request, xid, secs);
        p.options
            .insert(0, (opt::REQUESTED_IP, requested.octets().to_vec()));
        p.options
            .insert(1, (opt::SERVER_ID, server.octets().to_vec()));
        p
    }

    /// DHCPREQUEST in RENEWING (unicast) or REBINDING (broadcast) state: `ciaddr` set, no
    /// requested IP or server id (RFC 2131 §4.3.2).
    pub fn request_renew(
        id: &ClientIdentity,
        xid: u32,
        secs: u16,
        ciaddr: Ipv4Addr,
        broadcast: bool,
    ) -> Self {
        let mut p = Self::request(id, MessageType::Request, xid, secs);
        p.ciaddr = ciaddr;
        p.flags = if broadcast { FLAG_BROADCAST } else { 0 };
        p
    }

    /// The first value of option `code`.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MIN_PACKET_LEN);
        b.extend_from_slice(&[self.op, HTYPE_ETHERNET, 6, 0]);
        b.extend_from_slice(&self.xid.to_be_bytes());
        b.extend_from_slice(&self.secs.to_be_bytes());
        b.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            b.extend_from_slice(&a.octets());
        }
        b.extend_from_slice(&self.chaddr);
        b.resize(HEADER_LEN, 0); // chaddr padding, sname, file
        b.extend_from_slice(&MAGIC_COOKIE);
        b.extend_from_slice(&[opt::MESSAGE_TYPE, 1, self.msg_type as u8]);
        for (code, value) in &self.options {
            // Longer values are split into several instances (RFC 3396); ours never are.
            for chunk in value.chunks(255) {
                b.push(*code);
                b.push(chunk.len() as u8);
                b.extend_from_slice(chunk);
            }
        }
        b.push(opt::END);
        if b.len() < MIN_PACKET_LEN {
            b.resize(MIN_PACKET_LEN, opt::PAD);
        }
        b
    }

    /// Parses a server's message (BOOTREPLY, Ethernet).
    pub fn decode(buf: &[u8]) -> Result<Self, PacketError> {
        if buf.len() < HEADER_LEN + MAGIC_COOKIE.len() {
            return Err(PacketError::TooShort(buf.len()));
        }
        if buf[0] != BOOTREPLY {
            return Err(PacketError::NotReply(buf[0]));
        }
        if buf[1] != HTYPE_ETHERNET || buf[2] != 6 {
            return Err(PacketError::NotEthernet(buf[1], buf[2]));
        }
        let u32_at = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let ip_at = |i: usize| Ipv4Addr::from(u32_at(i));
        let cookie = [buf[236], buf[237], buf[238], buf[239]];
        if cookie != MAGIC_COOKIE {
            return Err(PacketError::BadCookie(cookie));
        }
        let mut chaddr = [0u8; 6];
        chaddr.copy_from_slice(&buf[28..34]);

        let mut options = Vec::new();
        let mut msg_type = None;
        let mut rest = &buf[HEADER_LEN + 4..];
        let mut ended = false;
        while let Some((&code, tail)) = rest.split_first() {
            match code {
                opt::PAD => {
                    rest = tail;
                    continue;
                }
                opt::END => {
                    ended = true;
                    break;
                }
                _ => {}
            }
            let Some((&len, tail)) = tail.split_first() else {
                return Err(PacketError::TruncatedOption {
                    code,
                    need: 1,
                    left: 0,
                });
            };
            let len = usize::from(len);
            if tail.len() < len {
                return Err(PacketError::TruncatedOption {
                    code,
                    need: len,
                    left: tail.len(),
                });
            }
            let (value, tail) = tail.split_at(len);
            rest = tail;
            if code == opt::MESSAGE_TYPE {
                let [t] = value else {
                    return Err(PacketError::BadOptionLength {
                        code,
                        len,
                        expected: "1",
                    });
                };
                msg_type =
                    Some(MessageType::from_u8(*t).ok_or(PacketError::UnknownMessageType(*t))?);
            } else if let Some((_, v)) = options.iter_mut().find(|(c, _)| *c == code) {
                // RFC 3396: repeated options are concatenated.
                let v: &mut Vec<u8> = v;
                v.extend_from_slice(value);
            } else {
                options.push((code, value.to_vec()));
            }
        }
        if !ended {
            return Err(PacketError::NoEnd);
        }
        Ok(Packet {
            op: buf[0],
            xid: u32_at(4),
            secs: u16::from_be_bytes([buf[8], buf[9]]),
            flags: u16::from_be_bytes([buf[10], buf[11]]),
            ciaddr: ip_at(12),
            yiaddr: ip_at(16),
            siaddr: ip_at(20),
            giaddr: ip_at(24),
            chaddr,
            msg_type: msg_type.ok_or(PacketError::NoMessageType)?,
            options,
        })
    }

    fn ip_option(&self, code: u8) -> Result<Option<Ipv4Addr>, PacketError> {
        Ok(self.ip_list(code)?.into_iter().next())
    }

    fn ip_list(&self, code: u8) -> Result<Vec<Ipv4Addr>, PacketError> {
        let Some(v) = self.option(code) else {
            return Ok(Vec::new());
        };
        if v.is_empty() || v.len() % 4 != 0 {
            return Err(PacketError::BadOptionLength {
                code,
                len: v.len(),
                expected: "a multiple of 4",
            });
        }
        Ok(v.chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            .collect())
    }

    fn u32_option(&self, code: u8) -> Result<Option<u32>, PacketError> {
        match self.option(code) {
            None => Ok(None),
            Some(&[a, b, c, d]) => Ok(Some(u32::from_be_bytes([a, b, c, d]))),
            Some(v) => Err(PacketError::BadOptionLength {
                code,
                len: v.len(),
                expected: "4",
            }),
        }
    }

    /// The server identifier (option 54).
    pub fn server_id(&self) -> Result<Option<Ipv4Addr>, PacketError> {
        self.ip_option(opt::SERVER_ID)
    }

    /// The server's message (option 56), for NAK logs.
    pub fn message(&self) -> Option<String> {
        self.option(opt::MESSAGE)
            .map(|m| String::from_utf8_lossy(m).into_owned())
    }
}

/// A lease from a DHCPACK (or the offer it answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub server: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub mtu: Option<u16>,
    pub lease_time: Duration,
    pub t1: Duration,
    pub t2: Duration,
}

/// Prefix length of a contiguous mask.
pub fn mask_to_prefix(mask: Ipv4Addr) -> Result<u8, PacketError> {
    let m = u32::from(mask);
    let prefix = m.leading_ones();
    if m.checked_shl(prefix).unwrap_or(0) != 0 {
        return Err(PacketError::BadMask(mask));
    }
    Ok(prefix as u8)
}

/// The netmask of a prefix length (0..=32).
pub fn prefix_to_mask(prefix: u8) -> Ipv4Addr {
    let p = u32::from(prefix.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - p).unwrap_or(0))
}

/// The classful default mask, for servers that send no option 1 (RFC 2131 §4.4.1 lets the
/// client pick; udhcpc and dhclient do this).
fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

impl Lease {
    /// Reads the lease out of an OFFER or ACK. `fallback_server` is the server the client
    /// talked to, for ACKs to a renewal that omit option 54.
    pub fn from_packet(p: &Packet, fallback_server: Option<Ipv4Addr>) -> Result<Self, PacketError> {
        let what = match p.msg_type {
            MessageType::Offer => "DHCPOFFER",
            _ => "DHCPACK",
        };
        if p.yiaddr.is_unspecified() {
            return Err(PacketError::Missing(what, "address (yiaddr)"));
        }
        let server = p
            .server_id()?
            .or(fallback_server)
            .ok_or(PacketError::Missing(what, "server identifier"))?;
        let prefix = match p.ip_option(opt::SUBNET_MASK)? {
            Some(m) => mask_to_prefix(m)?,
            None => classful_prefix(p.yiaddr),
        };
        let lease_secs = p
            .u32_option(opt::LEASE_TIME)?
            .ok_or(PacketError::Missing(what, "lease time"))?;
        // 0xffffffff is "infinite" (RFC 2132 §9.2); a year is as good for a renewal timer.
        let lease_secs = lease_secs.min(365 * 24 * 3600);
        let lease_time = Duration::from_secs(u64::from(lease_secs));
        // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease; out-of-order values
        // from a server are clamped so that T1 <= T2 <= lease.
        let t2 = p
            .u32_option(opt::T2)?
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(lease_time.mul_f64(0.875))
            .min(lease_time);
        let t1 = p
            .u32_option(opt::T1)?
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(lease_time / 2)
            .min(t2);
        let mtu = match p.option(opt::MTU) {
            None => None,
            Some(&[a, b]) => Some(u16::from_be_bytes([a, b])).filter(|m| *m >= 68),
            Some(v) => {
                return Err(PacketError::BadOptionLength {
                    code: opt::MTU,
                    len: v.len(),
                    expected: "2",
                })
            }
        };
        let domain = p
            .option(opt::DOMAIN_NAME)
            .map(|d| {
                String::from_utf8_lossy(d)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .filter(|d| {
                !d.is_empty()
                    && d.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            });
        Ok(Lease {
            address: p.yiaddr,
            prefix,
            server,
            routers: p.ip_list(opt::ROUTER)?,
            dns: p.ip_list(opt::DNS)?,
            domain,
            mtu,
            lease_time,
            t1,
            t2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ClientIdentity {
        ClientIdentity::new([0x02, 0, 0, 0, 0, 0x01], Some("ros".into()))
    }

    #[test]
    fn discover_golden_bytes() {
        let b = Packet::discover(&id(), 0x1234_5678, 3).encode();
        assert_eq!(b.len(), 300);
        let mut want = vec![1u8, 1, 6, 0, 0x12, 0x34, 0x56, 0x78, 0, 3, 0x80, 0];
        want.extend_from_slice(&[0; 16]); // ciaddr yiaddr siaddr giaddr
        want.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        want.resize(236, 0);
        want.extend_from_slice(&[99, 130, 83, 99]);
        want.extend_from_slice(&[53, 1, 1]);
        want.extend_from_slice(&[61, 7, 1, 0x02, 0, 0, 0, 0, 0x01]);
        want.extend_from_slice(&[57, 2, 0x05, 0xdc]);
        want.extend_from_slice(&[12, 3, b'r', b'o', b's']);
        want.extend_from_slice(&[55, 7, 1, 3, 6, 15, 26, 58, 59]);
        want.push(255);
        want.resize(300, 0);
        assert_eq!(b, want);
    }

    fn reply(msg_type: u8, options: &[u8]) -> Vec<u8> {
        let mut b = vec![2u8, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0x80, 0];
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&[10, 99, 0, 55]); // yiaddr
        b.extend_from_slice(&[10, 99, 0, 1]); // siaddr
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        b.resize(236, 0);
        b.extend_from_slice(&MAGIC_COOKIE);
        b.extend_from_slice(&[53, 1, msg_type]);
        b.extend_from_slice(options);
        b
    }

    const ACK_OPTIONS: &[u8] = &[
        54, 4, 10, 99, 0, 1, // server id
        51, 4, 0, 0, 0, 120, // lease 120 s
        58, 4, 0, 0, 0, 10, // T1 10 s
        1, 4, 255, 255, 255, 0, // mask
        0, // pad
        3, 4, 10, 99, 0, 1, // router
        6, 8, 10, 99, 0, 1, 1, 1, 1, 1, // dns
        26, 2, 0x05, 0xdc, // mtu 1500
        15, 4, b'l', b'a', b'n', 0, // domain, NUL-terminated as some servers send it
        255,
    ];

    #[test]
    fn parses_offer_and_ack_with_options() {
        let p = Packet::decode(&reply(5, ACK_OPTIONS)).unwrap();
        assert_eq!(p.msg_type, MessageType::Ack);
        assert_eq!(p.xid, 0xdead_beef);
        let l = Lease::from_packet(&p, None).unwrap();
        assert_eq!(l.address, Ipv4Addr::new(10, 99, 0, 55));
        assert_eq!(l.prefix, 24);
        assert_eq!(l.server, Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(l.routers, vec![Ipv4Addr::new(10, 99, 0, 1)]);
        assert_eq!(
            l.dns,
            vec![Ipv4Addr::new(10, 99, 0, 1), Ipv4Addr::new(1, 1, 1, 1)]
        );
        assert_eq!(l.mtu, Some(1500));
        assert_eq!(l.domain.as_deref(), Some("lan"));
        assert_eq!(l.lease_time, Duration::from_secs(120));
        assert_eq!(l.t1, Duration::from_secs(10));
        assert_eq!(l.t2, Duration::from_secs(105));

        let offer = Packet::decode(&reply(2, ACK_OPTIONS)).unwrap();
        assert_eq!(offer.msg_type, MessageType::Offer);
        assert_eq!(
            offer.server_id().unwrap(),
            Some(Ipv4Addr::new(10, 99, 0, 1))
        );
    }

    #[test]
    fn round_trips_its_own_requests_as_replies() {
        let mut b = Packet::request_selecting(
            &id(),
            7,
            0,
            Ipv4Addr::new(10, 0, 0, 5),
            Ipv4Addr::new(10, 0, 0, 1),
        )
        .encode();
        b[0] = BOOTREPLY;
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.msg_type, MessageType::Request);
        assert_eq!(p.option(opt::REQUESTED_IP), Some(&[10, 0, 0, 5][..]));
        assert_eq!(p.server_id().unwrap(), Some(Ipv4Addr::new(10, 0, 0, 1)));
        let r = Packet::request_renew(&id(), 8, 0, Ipv4Addr::new(10, 0, 0, 5), false);
        assert_eq!(r.flags, 0);
        assert_eq!(r.option(opt::SERVER_ID), None);
    }

    #[test]
    fn rejects_malformed_packets() {
        assert_eq!(Packet::decode(&[]), Err(PacketError::TooShort(0)));
        assert_eq!(Packet::decode(&[2; 100]), Err(PacketError::TooShort(100)));
        let mut req = reply(5, &[255]);
        req[0] = 1;
        assert_eq!(Packet::decode(&req), Err(PacketError::NotReply(1)));
        let mut bad = reply(5, &[255]);
        bad[236] = 0;
        assert!(matches!(
            Packet::decode(&bad),
            Err(PacketError::BadCookie(_))
        ));
        assert_eq!(
            Packet::decode(&reply(5, &[3, 8, 1, 2])),
            Err(PacketError::TruncatedOption {
                code: 3,
                need: 8,
                left: 2
            })
        );
        assert_eq!(
            Packet::decode(&reply(5, &[3])),
            Err(PacketError::TruncatedOption {
                code: 3,
                need: 1,
                left: 0
            })
        );
        assert_eq!(Packet::decode(&reply(5, &[])), Err(PacketError::NoEnd));
        assert_eq!(
            Packet::decode(&reply(9, &[255])),
            Err(PacketError::UnknownMessageType(9))
        );
        // A packet without option 53 is BOOTP, not DHCP.
        let mut bootp = reply(5, &[255]);
        bootp.truncate(240);
        bootp.push(255);
        assert_eq!(Packet::decode(&bootp), Err(PacketError::NoMessageType));

        let p = Packet::decode(&reply(5, &[54, 4, 10, 99, 0, 1, 3, 3, 1, 2, 3, 255])).unwrap();
        assert!(matches!(
            Lease::from_packet(&p, None),
            Err(PacketError::Missing("DHCPACK", "lease time"))
        ));
        let p = Packet::decode(&reply(
            5,
            &[
                54, 4, 10, 99, 0, 1, 51, 4, 0, 0, 0, 9, 1, 4, 255, 0, 255, 0, 255,
            ],
        ))
        .unwrap();
        assert_eq!(
            Lease::from_packet(&p, None),
            Err(PacketError::BadMask(Ipv4Addr::new(255, 0, 255, 0)))
        );
        let p = Packet::decode(&reply(5, &[51, 4, 0, 0, 0, 9, 3, 3, 1, 2, 3, 255])).unwrap();
        assert!(matches!(
            Lease::from_packet(&p, Some(Ipv4Addr::new(10, 99, 0, 1))),
            Err(PacketError::BadOptionLength { code: 3, .. })
        ));
    }

    #[test]
    fn never_panics_on_truncations_and_corruptions() {
        let good = reply(5, ACK_OPTIONS);
        for n in 0..good.len() {
            let _ = Packet::decode(&good[..n]);
            let mut b = good.clone();
            b[n] ^= 0xff;
            if let Ok(p) = Packet::decode(&b) {
                let _ = Lease::from_packet(&p, None);
            }
        }
    }

    #[test]
    fn masks_and_prefixes() {
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 255, 255, 0)), Ok(24));
        assert_eq!(mask_to_prefix(Ipv4Addr::new(0, 0, 0, 0)), Ok(0));
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 255, 255, 255)), Ok(32));
        assert_eq!(prefix_to_mask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(prefix_to_mask(20), Ipv4Addr::new(255, 255, 240, 0));
        assert_eq!(prefix_to_mask(32), Ipv4Addr::new(255, 255, 255, 255));
    }
}
