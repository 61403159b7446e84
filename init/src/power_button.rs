//! The ACPI power button: with the `button` module loaded the kernel makes it an input
//! device named "Power Button"; a KEY_POWER press read from it means an orderly poweroff,
//! as pressing the button on a server (or `system_powerdown` in QEMU, or a cloud's "stop")
//! expects.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

/// `struct input_event` on 64-bit Linux: a timeval (16 bytes), type, code, value.
const EVENT_SIZE: usize = 24;
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;

/// The power button's event device, opened non-blocking.
pub struct PowerButton {
    file: File,
}

impl PowerButton {
    /// Finds the device named "Power Button" under `sys` (`/sys/class/input`) and opens its
    /// node under `dev` (`/dev/input`).
    pub fn open(sys: &Path, dev: &Path) -> Option<PowerButton> {
        let mut names: Vec<_> = fs::read_dir(sys)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("event"))
            .collect();
        names.sort();
        for name in names {
            let label = fs::read_to_string(sys.join(&name).join("device/name")).unwrap_or_default();
            if label.trim() != "Power Button" {
                continue;
            }
            use std::os::unix::fs::OpenOptionsExt;
            match fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(dev.join(&name))
            {
                Ok(file) => {
                    log::info!(
                        "power button: {} (pressing it powers off)",
                        dev.join(&name).display()
                    );
                    return Some(PowerButton { file });
                }
                Err(e) => log::warn!("power button {}: {e}", dev.join(&name).display()),
            }
        }
        None
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Reads what is pending; true when the button was pressed.
    pub fn pressed(&mut self) -> bool {
        let mut buf = [0u8; EVENT_SIZE * 16];
        let mut pressed = false;
        loop {
            match self.file.read(&mut buf) {
                Ok(0) | Err(_) => return pressed,
                Ok(n) => pressed |= key_power_pressed(&buf[..n]),
            }
        }
    }
}

/// Whether a run of input events holds a KEY_POWER press.
pub fn key_power_pressed(events: &[u8]) -> bool {
    events.chunks_exact(EVENT_SIZE).any(|e| {
        let kind = u16::from_ne_bytes([e[16], e[17]]);
        let code = u16::from_ne_bytes([e[18], e[19]]);
        let value = i32::from_ne_bytes([e[20], e[21], e[22], e[23]]);
        kind == EV_KEY && code == KEY_POWER && value == 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut e = vec![0u8; 16];
        e.extend(kind.to_ne_bytes());
        e.extend(code.to_ne_bytes());
        e.extend(value.to_ne_bytes());
        e
    }

    #[test]
    fn a_press_of_key_power_counts_and_nothing_else() {
        let mut press = event(0, 0, 0);
        press.extend(event(EV_KEY, KEY_POWER, 1));
        assert!(key_power_pressed(&press));
        assert!(!key_power_pressed(&event(EV_KEY, KEY_POWER, 0)));
        assert!(!key_power_pressed(&event(EV_KEY, 30, 1)));
        assert!(!key_power_pressed(&press[..30]));
    }

    #[test]
    fn finds_the_device_by_name() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let dev = t.path().join("dev");
        for (n, name) in [
            ("event0", "AT Translated Set 2 keyboard"),
            ("event1", "Power Button"),
        ] {
            fs::create_dir_all(sys.join(n).join("device")).unwrap();
            fs::write(sys.join(n).join("device/name"), format!("{name}\n")).unwrap();
        }
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("event1"), event(EV_KEY, KEY_POWER, 1)).unwrap();
        let mut b = PowerButton::open(&sys, &dev).expect("found");
        assert!(b.pressed());
        assert!(PowerButton::open(&sys, &t.path().join("nothing")).is_none());
    }
}
