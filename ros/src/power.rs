//! `poweroff`, `reboot`, `halt` and `shutdown`: ask PID 1 for an orderly shutdown with the
//! signal busybox init takes for it (SIGUSR2 poweroff, SIGTERM reboot, SIGUSR1 halt), or
//! with `-f` do it at once (sync and reboot(2), as `poweroff -f` does).

use std::ffi::OsString;

use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Poweroff,
    Reboot,
    Halt,
}

impl Action {
    fn signal(self) -> Signal {
        match self {
            Action::Poweroff => Signal::SIGUSR2,
            Action::Reboot => Signal::SIGTERM,
            Action::Halt => Signal::SIGUSR1,
        }
    }

    fn mode(self) -> RebootMode {
        match self {
            Action::Poweroff => RebootMode::RB_POWER_OFF,
            Action::Reboot => RebootMode::RB_AUTOBOOT,
            Action::Halt => RebootMode::RB_HALT_SYSTEM,
        }
    }
}

const USAGE: &str = "Usage: poweroff|reboot|halt [-f] [-n]
       shutdown [-h|-P|-r|-H] [now]

Ask PID 1 to stop every service in order, unmount the state partition and power off,
reboot or halt.

  -f   force: do it at once, without stopping services (sync first unless -n)
  -n   with -f: do not sync
  shutdown -h/-P powers off, -r reboots, -H halts; a time other than `now` is refused";

/// Parses the arguments of `name`; `Err` carries the message (and exit code 2).
pub fn parse(name: &str, args: &[OsString]) -> Result<(Action, bool, bool), String> {
    let mut action = match name {
        "reboot" => Action::Reboot,
        "halt" => Action::Halt,
        _ => Action::Poweroff,
    };
    let (mut force, mut no_sync) = (false, false);
    for a in args {
        match a.to_str().unwrap_or("") {
            "-f" | "--force" => force = true,
            "-n" | "--no-sync" => no_sync = true,
            "-h" | "-P" | "--poweroff" if name == "shutdown" => action = Action::Poweroff,
            "-r" | "--reboot" if name == "shutdown" => action = Action::Reboot,
            "-H" | "--halt" if name == "shutdown" => action = Action::Halt,
            "now" | "+0" if name == "shutdown" => {}
            "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("{name}: unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok((action, force, no_sync))
}

pub fn main(name: &str, args: &[OsString]) -> i32 {
    let (action, force, no_sync) = match parse(name, args) {
        Ok(p) => p,
        Err(msg) if msg == USAGE => {
            println!("{msg}");
            return 0;
        }
        Err(msg) => {
            eprintln!("{msg}");
            return 2;
        }
    };
    if force {
        if !no_sync {
            nix::unistd::sync();
        }
        let Err(e) = reboot(action.mode());
        eprintln!("{name}: reboot(2): {e}");
        return 1;
    }
    match kill(Pid::from_raw(1), action.signal()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{name}: cannot signal PID 1: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, args: &[&str]) -> Result<(Action, bool, bool), String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(name, &args)
    }

    #[test]
    fn names_and_flags() {
        assert_eq!(p("poweroff", &[]), Ok((Action::Poweroff, false, false)));
        assert_eq!(p("reboot", &["-f"]), Ok((Action::Reboot, true, false)));
        assert_eq!(p("halt", &["-f", "-n"]), Ok((Action::Halt, true, true)));
        assert_eq!(
            p("shutdown", &["-r", "now"]),
            Ok((Action::Reboot, false, false))
        );
        assert_eq!(
            p("shutdown", &["-h", "now"]),
            Ok((Action::Poweroff, false, false))
        );
        assert!(p("shutdown", &["+5"])
            .unwrap_err()
            .contains("unknown argument"));
        assert!(p("reboot", &["-r"]).is_err());
        assert_eq!(Action::Poweroff.signal(), Signal::SIGUSR2);
        assert_eq!(Action::Reboot.signal(), Signal::SIGTERM);
        assert_eq!(Action::Halt.signal(), Signal::SIGUSR1);
    }
}
