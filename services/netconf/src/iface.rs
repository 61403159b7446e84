//! Choosing the interface and reading its hardware address from sysfs.

use std::fs;
use std::path::Path;

use crate::Error;

/// The first non-loopback interface in `sys_class_net`, by name; interfaces backed by a
/// device (a `device` link: real NICs, virtio) are preferred over virtual ones (veth,
/// bridges, docker0), which are used only when there is nothing else.
pub fn pick(sys_class_net: &Path) -> Result<String, Error> {
    let links = list(sys_class_net)?;
    let mut names = links.iter().map(|l| &l.name).filter(|n| *n != "lo");
    let physical = names
        .clone()
        .find(|n| sys_class_net.join(n).join("device").exists());
    physical
        .or(names.next())
        .cloned()
        .ok_or_else(|| Error::NoInterface(sys_class_net.to_path_buf()))
}

/// Every link in `sys_class_net` with its hardware address (None for links without an
/// Ethernet one, such as `lo`).
pub fn list(sys_class_net: &Path) -> Result<Vec<crate::plan::Link>, Error> {
    let entries = fs::read_dir(sys_class_net).map_err(|source| Error::ListInterfaces {
        path: sys_class_net.to_path_buf(),
        source,
    })?;
    let mut links: Vec<crate::plan::Link> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .map(|name| {
            let mac = fs::read_to_string(sys_class_net.join(&name).join("address"))
                .ok()
                .and_then(|t| parse_mac(t.trim()))
                .filter(|m| m != &[0; 6]);
            let devtype = fs::read_to_string(sys_class_net.join(&name).join("uevent"))
                .ok()
                .and_then(|u| {
                    u.lines()
                        .find_map(|l| l.strip_prefix("DEVTYPE=").map(str::to_owned))
                });
            crate::plan::Link { name, mac, devtype }
        })
        .collect();
    links.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(links)
}

/// The MAC address of `iface` (`<sys_class_net>/<iface>/address`).
pub fn mac(sys_class_net: &Path, iface: &str) -> Result<[u8; 6], Error> {
    let path = sys_class_net.join(iface).join("address");
    let err = |source| Error::Mac {
        iface: iface.to_string(),
        source,
    };
    let text = fs::read_to_string(&path).map_err(err)?;
    parse_mac(text.trim()).ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is not an Ethernet address: {:?}",
                path.display(),
                text.trim()
            ),
        ))
    })
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(dir: &Path, name: &str, device: bool) {
        fs::create_dir(dir.join(name)).unwrap();
        fs::write(dir.join(name).join("address"), "02:00:00:00:00:0a\n").unwrap();
        if device {
            fs::create_dir(dir.join(name).join("device")).unwrap();
        }
    }

    #[test]
    fn picks_first_physical_then_first_virtual() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(pick(t.path()), Err(Error::NoInterface(_))));
        iface(t.path(), "lo", false);
        assert!(matches!(pick(t.path()), Err(Error::NoInterface(_))));
        iface(t.path(), "veth0", false);
        assert_eq!(pick(t.path()).unwrap(), "veth0");
        iface(t.path(), "eth1", true);
        iface(t.path(), "eth0", true);
        iface(t.path(), "docker0", false);
        assert_eq!(pick(t.path()).unwrap(), "eth0");
        assert_eq!(mac(t.path(), "eth0").unwrap(), [2, 0, 0, 0, 0, 0x0a]);
    }

    #[test]
    fn parses_macs() {
        assert_eq!(
            parse_mac("aa:bb:cc:00:11:22"),
            Some([0xaa, 0xbb, 0xcc, 0, 0x11, 0x22])
        );
        assert_eq!(parse_mac("aa:bb:cc:00:11"), None);
        assert_eq!(parse_mac("aa:bb:cc:00:11:22:33"), None);
        assert_eq!(parse_mac("zz:bb:cc:00:11:22"), None);
    }
}
