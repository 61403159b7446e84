//! The DHCP client's kernel calls: the classic `SIOC*` interface ioctls (the primary
//! address, netmask and broadcast, the default route), which replace a lease's address in
//! one call. Link state and MTU go through [`crate::netlink`]. Every `unsafe` of the crate
//! is here.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// Any AF_INET socket is the handle for the interface ioctls.
fn control_socket() -> io::Result<OwnedFd> {
    socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    // SAFETY: ifreq is a plain C struct (name array + union of integers, sockaddrs and a raw
    // pointer); all-zero is a valid value for every field.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) and sockaddr has no
    // invalid bit patterns; this is the cast the ioctl ABI expects.
    unsafe { mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl(request: libc::Ioctl, req: &mut libc::ifreq, what: &str) -> io::Result<()> {
    let fd = control_socket()?;
    // SAFETY: `fd` is an open socket, `req` is a valid, exclusively borrowed ifreq that lives
    // across the call, and every request passed here reads or writes one ifreq.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, req as *mut libc::ifreq) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// Sets the primary IPv4 address, netmask and broadcast of `name`. Idempotent: the kernel
/// keeps an unchanged address (and its routes) as it is.
pub fn set_address(name: &str, addr: Ipv4Addr, mask: Ipv4Addr) -> io::Result<()> {
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    ioctl(libc::SIOCSIFADDR, &mut req, "SIOCSIFADDR")?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_netmask = sockaddr_in(mask);
    ioctl(libc::SIOCSIFNETMASK, &mut req, "SIOCSIFNETMASK")?;
    let broadcast = Ipv4Addr::from(u32::from(addr) | !u32::from(mask));
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_broadaddr = sockaddr_in(broadcast);
    ioctl(libc::SIOCSIFBRDADDR, &mut req, "SIOCSIFBRDADDR")
}

/// Removes the primary IPv4 address (`ifconfig NAME 0.0.0.0`), and with it its routes.
pub fn clear_address(name: &str) -> io::Result<()> {
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    match ioctl(libc::SIOCSIFADDR, &mut req, "SIOCSIFADDR") {
        // No address to remove.
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
        r => r,
    }
}

/// `struct rtentry` of <linux/route.h> (the gnu target of the libc crate lacks it).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

/// Adds `default via GW dev NAME`. An existing identical route is not an error.
pub fn add_default_route(name: &str, gateway: Ipv4Addr) -> io::Result<()> {
    let dev = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    let mut rt = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr_in(Ipv4Addr::UNSPECIFIED),
        rt_gateway: sockaddr_in(gateway),
        rt_genmask: sockaddr_in(Ipv4Addr::UNSPECIFIED),
        rt_flags: (libc::RTF_UP | libc::RTF_GATEWAY),
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        // The kernel subtracts one (`route` counts metrics from 1).
        rt_metric: 1,
        rt_dev: dev.as_ptr() as *mut libc::c_char,
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    let fd = control_socket()?;
    // SAFETY: `rt` is a valid rtentry matching the kernel layout; `rt_dev` points to `dev`,
    // a NUL-terminated string that outlives the call and that the kernel only reads.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCADDRT, &mut rt as *mut RtEntry) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            return Ok(());
        }
        return Err(io::Error::new(e.kind(), format!("SIOCADDRT: {e}")));
    }
    Ok(())
}
