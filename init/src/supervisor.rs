//! Supervision: which configured process runs, and when a dead one is started again.
//!
//! Pure state machine: processes are started through [`Spawner`] and their exits are fed in
//! by the reaper, so the restart and backoff rules are unit-tested without processes.

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::plan::{Restart, ServiceSpec};

/// A service that stayed up this long is healthy again: its backoff starts over.
pub const BACKOFF_RESET: Duration = Duration::from_secs(10);

pub trait Spawner {
    fn spawn(&mut self, spec: &ServiceSpec) -> std::io::Result<Pid>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    NotStarted,
    Running {
        pid: Pid,
        since: Instant,
    },
    /// Dead; started again at `at`.
    Backoff {
        at: Instant,
    },
    /// Dead and not to be restarted (policy, or shutdown).
    Finished,
}

#[derive(Debug)]
pub struct Slot {
    pub spec: ServiceSpec,
    pub state: State,
    /// Quick deaths in a row; the next backoff doubles with each.
    failures: u32,
    pub starts: u32,
}

/// Delay before restart number `failures` (1 = first): `initial * 2^(failures-1)`, capped.
pub fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(31);
    initial.saturating_mul(1u32 << shift).min(max)
}

#[derive(Debug, Default)]
pub struct Supervisor {
    /// In start order.
    pub slots: Vec<Slot>,
    stopping: bool,
}

impl Supervisor {
    pub fn new(ordered: Vec<ServiceSpec>) -> Self {
        let slots = ordered
            .into_iter()
            .map(|spec| Slot {
                spec,
                state: State::NotStarted,
                failures: 0,
                starts: 0,
            })
            .collect();
        Supervisor {
            slots,
            stopping: false,
        }
    }

    fn start(slot: &mut Slot, spawner: &mut dyn Spawner, now: Instant, finished: &[String]) {
        let restart = slot.starts > 0
            && !slot.spec.restart_argv.is_empty()
            && slot
                .spec
                .restart_argv_after
                .iter()
                .all(|n| finished.contains(n));
        slot.starts = slot.starts.saturating_add(1);
        let spawned = if restart {
            let spec = ServiceSpec {
                argv: slot.spec.restart_argv.clone(),
                ..slot.spec.clone()
            };
            spawner.spawn(&spec)
        } else {
            spawner.spawn(&slot.spec)
        };
        match spawned {
            Ok(pid) => {
                log::info!("{}: started, pid {pid}", slot.spec.name);
                slot.state = State::Running { pid, since: now };
            }
            Err(e) => {
                log::error!("{}: cannot start {:?}: {e}", slot.spec.name, slot.spec.argv);
                Self::died(slot, true, now, now);
            }
        }
    }

    fn died(slot: &mut Slot, failed: bool, since: Instant, now: Instant) {
        if now.saturating_duration_since(since) >= BACKOFF_RESET {
            slot.failures = 0;
        }
        let again = match slot.spec.restart {
            Restart::Always => true,
            Restart::OnFailure => failed,
            Restart::No => false,
        };
        if !again {
            slot.state = State::Finished;
            return;
        }
        slot.failures = slot.failures.saturating_add(1);
        let delay = backoff(
            Duration::from_millis(slot.spec.backoff_initial_ms),
            Duration::from_millis(slot.spec.backoff_max_ms),
            slot.failures,
        );
        log::warn!("{}: restarting in {delay:?}", slot.spec.name);
        slot.state = State::Backoff { at: now + delay };
    }

    /// Starts every service not started yet, in order.
    pub fn start_all(&mut self, spawner: &mut dyn Spawner, now: Instant) {
        for slot in &mut self.slots {
            if slot.state == State::NotStarted {
                Self::start(slot, spawner, now, &[]);
            }
        }
    }

    /// Records the death of `pid`; returns whether it was a supervised process.
    pub fn exited(&mut self, pid: Pid, failed: bool, now: Instant) -> bool {
        let stopping = self.stopping;
        for slot in &mut self.slots {
            if let State::Running { pid: p, since } = slot.state {
                if p == pid {
                    log::info!(
                        "{}: pid {pid} exited{}",
                        slot.spec.name,
                        if failed { " (failed)" } else { "" }
                    );
                    if stopping {
                        slot.state = State::Finished;
                    } else {
                        Self::died(slot, failed, since, now);
                    }
                    return true;
                }
            }
        }
        false
    }

    /// Restarts the services whose backoff has passed.
    pub fn tick(&mut self, spawner: &mut dyn Spawner, now: Instant) {
        if self.stopping {
            return;
        }
        let finished: Vec<String> = self
            .slots
            .iter()
            .filter(|s| s.state == State::Finished)
            .map(|s| s.spec.name.clone())
            .collect();
        for slot in &mut self.slots {
            if let State::Backoff { at } = slot.state {
                if at <= now {
                    Self::start(slot, spawner, now, &finished);
                }
            }
        }
    }

    /// When [`Supervisor::tick`] next has work.
    pub fn next_due(&self) -> Option<Instant> {
        if self.stopping {
            return None;
        }
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                State::Backoff { at } => Some(at),
                _ => None,
            })
            .min()
    }

    /// No more (re)starts; pending restarts are dropped.
    pub fn begin_stop(&mut self) {
        self.stopping = true;
        for slot in &mut self.slots {
            if matches!(slot.state, State::Backoff { .. } | State::NotStarted) {
                slot.state = State::Finished;
            }
        }
    }

    pub fn pid_of(&self, index: usize) -> Option<Pid> {
        match self.slots.get(index)?.state {
            State::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        next: i32,
        fail: bool,
        spawned: Vec<String>,
        argvs: Vec<String>,
    }

    impl Spawner for Fake {
        fn spawn(&mut self, spec: &ServiceSpec) -> std::io::Result<Pid> {
            self.spawned.push(spec.name.clone());
            self.argvs.push(spec.argv.join(" "));
            if self.fail {
                return Err(std::io::Error::from_raw_os_error(2));
            }
            self.next += 1;
            Ok(Pid::from_raw(self.next))
        }
    }

    fn fake() -> Fake {
        Fake {
            next: 100,
            fail: false,
            spawned: Vec::new(),
            argvs: Vec::new(),
        }
    }

    fn spec(name: &str, restart: Restart) -> ServiceSpec {
        ServiceSpec {
            restart,
            stop_timeout_ms: 1000,
            backoff_initial_ms: 100,
            backoff_max_ms: 1000,
            ..ServiceSpec::new(name, vec!["x".into()])
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_and_caps() {
        let d: Vec<u128> = (1..=6)
            .map(|n| backoff(100 * MS, 1000 * MS, n).as_millis())
            .collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(100 * MS, 1000 * MS, u32::MAX), 1000 * MS);
    }

    #[test]
    fn starts_in_order_and_applies_policies() {
        let t0 = Instant::now();
        let mut sp = fake();
        let mut s = Supervisor::new(vec![
            spec("a", Restart::Always),
            spec("f", Restart::OnFailure),
            spec("n", Restart::No),
        ]);
        s.start_all(&mut sp, t0);
        assert_eq!(sp.spawned, ["a", "f", "n"]);
        let (a, f, n) = (
            s.pid_of(0).unwrap(),
            s.pid_of(1).unwrap(),
            s.pid_of(2).unwrap(),
        );
        assert!(
            !s.exited(Pid::from_raw(1), true, t0),
            "a stranger is not ours"
        );
        assert!(s.exited(a, false, t0));
        assert!(s.exited(f, false, t0));
        assert!(s.exited(n, true, t0));
        assert_eq!(s.slots[0].state, State::Backoff { at: t0 + 100 * MS });
        assert_eq!(s.slots[1].state, State::Finished, "clean exit: no restart");
        assert_eq!(s.slots[2].state, State::Finished);
        assert_eq!(s.next_due(), Some(t0 + 100 * MS));
        s.tick(&mut sp, t0 + 50 * MS);
        assert_eq!(sp.spawned.len(), 3, "not before the backoff");
        s.tick(&mut sp, t0 + 100 * MS);
        assert_eq!(sp.spawned, ["a", "f", "n", "a"]);
    }

    #[test]
    fn restarts_use_the_restart_argv() {
        let t0 = Instant::now();
        let mut sp = fake();
        let mut s = Supervisor::new(vec![
            ServiceSpec {
                restart_argv: vec!["x".into(), "--again".into()],
                restart_argv_after: vec!["job".into()],
                ..spec("d", Restart::Always)
            },
            spec("job", Restart::No),
        ]);
        s.start_all(&mut sp, t0);
        // The job still runs: a restart is a plain one.
        assert!(s.exited(s.pid_of(0).unwrap(), true, t0));
        s.tick(&mut sp, t0 + 100 * MS);
        assert!(s.exited(s.pid_of(1).unwrap(), false, t0 + 100 * MS));
        assert!(s.exited(s.pid_of(0).unwrap(), true, t0 + 100 * MS));
        s.tick(&mut sp, t0 + 400 * MS);
        assert!(s.exited(s.pid_of(0).unwrap(), true, t0 + 400 * MS));
        s.tick(&mut sp, t0 + 2000 * MS);
        assert_eq!(sp.argvs, ["x", "x", "x", "x --again", "x --again"]);
    }

    #[test]
    fn on_failure_restarts_failures_with_growing_backoff_then_resets() {
        let mut t = Instant::now();
        let mut sp = fake();
        let mut s = Supervisor::new(vec![spec("f", Restart::OnFailure)]);
        s.start_all(&mut sp, t);
        let mut delays = Vec::new();
        for _ in 0..5 {
            let pid = s.pid_of(0).unwrap();
            s.exited(pid, true, t);
            let due = s.next_due().unwrap();
            delays.push((due - t).as_millis());
            t = due;
            s.tick(&mut sp, t);
        }
        assert_eq!(delays, [100, 200, 400, 800, 1000]);
        // Up long enough: healthy again.
        let pid = s.pid_of(0).unwrap();
        t += BACKOFF_RESET;
        s.exited(pid, true, t);
        assert_eq!(s.next_due(), Some(t + 100 * MS));
    }

    #[test]
    fn spawn_errors_count_as_failures() {
        let t0 = Instant::now();
        let mut sp = fake();
        sp.fail = true;
        let mut s = Supervisor::new(vec![spec("a", Restart::Always), spec("n", Restart::No)]);
        s.start_all(&mut sp, t0);
        assert!(matches!(s.slots[0].state, State::Backoff { .. }));
        assert_eq!(s.slots[1].state, State::Finished);
    }

    #[test]
    fn stopping_prevents_restarts() {
        let t0 = Instant::now();
        let mut sp = fake();
        let mut s = Supervisor::new(vec![spec("a", Restart::Always), spec("b", Restart::Always)]);
        s.start_all(&mut sp, t0);
        let a = s.pid_of(0).unwrap();
        s.exited(a, true, t0);
        s.begin_stop();
        assert_eq!(s.slots[0].state, State::Finished);
        assert_eq!(s.next_due(), None);
        let b = s.pid_of(1).unwrap();
        s.exited(b, true, t0);
        assert_eq!(s.slots[1].state, State::Finished);
        s.tick(&mut sp, t0 + BACKOFF_RESET);
        assert_eq!(sp.spawned.len(), 2);
    }
}
