//! What signals mean to PID 1, as busybox init reads them.

use nix::sys::reboot::RebootMode;
use nix::sys::signal::Signal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    Reboot,
    Halt,
    Poweroff,
}

impl Shutdown {
    /// SIGTERM and SIGINT (ctrl-alt-del) reboot, SIGUSR1 halts, SIGUSR2 powers off.
    pub fn from_signal(sig: Signal) -> Option<Shutdown> {
        match sig {
            Signal::SIGTERM | Signal::SIGINT => Some(Shutdown::Reboot),
            Signal::SIGUSR1 => Some(Shutdown::Halt),
            Signal::SIGUSR2 => Some(Shutdown::Poweroff),
            _ => None,
        }
    }

    pub fn reboot_mode(self) -> RebootMode {
        match self {
            Shutdown::Reboot => RebootMode::RB_AUTOBOOT,
            Shutdown::Halt => RebootMode::RB_HALT_SYSTEM,
            Shutdown::Poweroff => RebootMode::RB_POWER_OFF,
        }
    }
}

/// Everything PID 1 takes through its signalfd (blocked, so never delivered asynchronously).
pub const HANDLED: [Signal; 6] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGHUP,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_semantics() {
        use Shutdown::*;
        assert_eq!(Shutdown::from_signal(Signal::SIGTERM), Some(Reboot));
        assert_eq!(Shutdown::from_signal(Signal::SIGINT), Some(Reboot));
        assert_eq!(Shutdown::from_signal(Signal::SIGUSR1), Some(Halt));
        assert_eq!(Shutdown::from_signal(Signal::SIGUSR2), Some(Poweroff));
        assert_eq!(Shutdown::from_signal(Signal::SIGHUP), None);
        assert_eq!(Shutdown::from_signal(Signal::SIGCHLD), None);
        assert_eq!(Reboot.reboot_mode(), RebootMode::RB_AUTOBOOT);
        assert_eq!(Poweroff.reboot_mode(), RebootMode::RB_POWER_OFF);
        assert_eq!(Halt.reboot_mode(), RebootMode::RB_HALT_SYSTEM);
    }
}
