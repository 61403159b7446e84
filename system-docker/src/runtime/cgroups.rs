//! cgroup placement and limits for one container.
//!
//! Each controller (memory, cpu, pids) is used on cgroup v2 when the unified hierarchy offers
//! it, else on its v1 hierarchy: hybrid hosts (such as the build machines, whose v2 carries
//! only `hugetlb`) split controllers between the two. A requested limit that no hierarchy can
//! apply is an error — never silently ignored. The mount table and cgroup root are
//! parameters so the placement logic is tested without touching the host.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::spec::Resources;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot apply the {limit} limit: no {controller} cgroup controller on this host (cgroup v2 offers: {v2})")]
    NoController {
        limit: &'static str,
        controller: &'static str,
        v2: String,
    },
    #[error("cgroup {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where each hierarchy is mounted.
#[derive(Debug, Clone, Default)]
pub struct Hierarchies {
    /// The cgroup2 mount, if any.
    pub unified: Option<PathBuf>,
    /// v1 mounts with their controller lists.
    pub v1: Vec<(PathBuf, Vec<String>)>,
}

impl Hierarchies {
    /// Reads the cgroup mounts from a mountinfo-format table (`/proc/self/mountinfo`).
    pub fn from_mountinfo(text: &str) -> Hierarchies {
        let mut h = Hierarchies::default();
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = left.split(' ').nth(4).unwrap_or("");
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or("");
            let _source = r.next();
            let opts = r.next().unwrap_or("");
            match fstype {
                "cgroup2" if h.unified.is_none() => h.unified = Some(PathBuf::from(mount_point)),
                "cgroup" => {
                    let ctrls = opts
                        .split(',')
                        .filter(|o| matches!(*o, "memory" | "cpu" | "pids" | "cpuacct" | "cpuset"))
                        .map(str::to_string)
                        .collect::<Vec<_>>();
                    if !ctrls.is_empty() {
                        h.v1.push((PathBuf::from(mount_point), ctrls));
                    }
                }
                _ => {}
            }
        }
        h
    }

    pub fn host() -> Hierarchies {
        Hierarchies::from_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
    }

    fn v2_controllers(&self) -> Vec<String> {
        self.unified
            .as_ref()
            .and_then(|u| fs::read_to_string(u.join("cgroup.controllers")).ok())
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn v1_mount(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(_, c)| c.iter().any(|x| x == controller))
            .map(|(p, _)| p.as_path())
    }
}

/// Where a controller lives for this container.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placement {
    V2(PathBuf),
    V1(PathBuf),
}

/// The cgroups of one container: the directories it is placed in and the limits set there.
#[derive(Debug, Default)]
pub struct ContainerCgroups {
    /// Directories whose `cgroup.procs` the container's processes join.
    pub dirs: Vec<PathBuf>,
}

impl ContainerCgroups {
    /// Creates the container's cgroups under `parent/id` and writes the limits. Without
    /// limits the container still gets a v2 cgroup when v2 exists (so all of its processes
    /// can be found and killed), and no v1 cgroups.
    pub fn create(
        h: &Hierarchies,
        parent: &str,
        id: &str,
        res: &Resources,
    ) -> Result<ContainerCgroups, CgroupError> {
        let v2 = h.v2_controllers();
        let v2_has = |c: &str| v2.iter().any(|x| x == c);
        let rel = Path::new(parent.trim_start_matches('/')).join(id);
        let place =
            |limit: &'static str, controller: &'static str| -> Result<Placement, CgroupError> {
                if let (Some(u), true) = (&h.unified, v2_has(controller)) {
                    return Ok(Placement::V2(u.join(&rel)));
                }
                if let Some(m) = h.v1_mount(controller) {
                    return Ok(Placement::V1(m.join(&rel)));
                }
                Err(CgroupError::NoController {
                    limit,
                    controller,
                    v2: if v2.is_empty() {
                        "nothing".into()
                    } else {
                        v2.join(" ")
                    },
                })
            };

        let mut writes: Vec<(Placement, &'static str, String)> = Vec::new();
        if let Some(m) = res.memory {
            match place("memory", "memory")? {
                p @ Placement::V2(_) => {
                    writes.push((p.clone(), "memory.max", m.to_string()));
                    writes.push((p, "memory.swap.max", "0".into()));
                }
                p @ Placement::V1(_) => writes.push((p, "memory.limit_in_bytes", m.to_string())),
            }
        }
        if let Some(q) = res.cpu_quota {
            let period = res.cpu_period.unwrap_or(100_000);
            match place("cpu", "cpu")? {
                p @ Placement::V2(_) => writes.push((p, "cpu.max", format!("{q} {period}"))),
                p @ Placement::V1(_) => {
                    writes.push((p.clone(), "cpu.cfs_period_us", period.to_string()));
                    writes.push((p, "cpu.cfs_quota_us", q.to_string()));
                }
            }
        }
        if let Some(n) = res.pids {
            let p = place("pids", "pids")?;
            writes.push((
                p,
                "pids.max",
                if n <= 0 { "max".into() } else { n.to_string() },
            ));
        }

        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut add_dir = |d: &Path| {
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
        };
        if let Some(u) = &h.unified {
            add_dir(&u.join(&rel));
        }
        for (p, _, _) in &writes {
            match p {
                Placement::V2(d) | Placement::V1(d) => add_dir(d),
            }
        }
        let cg = ContainerCgroups { dirs };
        for d in &cg.dirs {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        // v2 limits need their controllers enabled in every ancestor's subtree_control.
        if let Some(u) = &h.unified {
            let needed: Vec<&str> = writes
                .iter()
                .filter_map(|(p, f, _)| match p {
                    Placement::V2(_) => Some(f.split('.').next().unwrap_or("")),
                    Placement::V1(_) => None,
                })
                .collect();
            if !needed.is_empty() {
                let mut dir = u.clone();
                for comp in rel.parent().into_iter().flat_map(|p| p.components()) {
                    enable_controllers(&dir, &needed)?;
                    dir = dir.join(comp);
                }
                enable_controllers(&dir, &needed)?;
            }
        }
        for (p, file, value) in &writes {
            let d = match p {
                Placement::V2(d) | Placement::V1(d) => d,
            };
            let path = d.join(file);
            // memory.swap.max is absent without swap accounting; the memory limit still holds.
            if *file == "memory.swap.max" && !path.exists() {
                continue;
            }
            fs::write(&path, value).map_err(io_err(&path))?;
        }
        Ok(cg)
    }

    /// Moves the calling process into every cgroup of the container.
    pub fn join_self(&self) -> Result<(), CgroupError> {
        for d in &self.dirs {
            let path = d.join("cgroup.procs");
            fs::write(&path, "0").map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// Reads back the directories of a container (for `exec`, which joins them too).
    pub fn existing(h: &Hierarchies, parent: &str, id: &str) -> ContainerCgroups {
        let rel = Path::new(parent.trim_start_matches('/')).join(id);
        let mut dirs = Vec::new();
        if let Some(u) = &h.unified {
            dirs.push(u.join(&rel));
        }
        for (m, _) in &h.v1 {
            dirs.push(m.join(&rel));
        }
        dirs.retain(|d| d.is_dir());
        dirs.dedup();
        ContainerCgroups { dirs }
    }

    /// Kills whatever is left in the container's cgroups and removes them.
    pub fn destroy(&self) {
        for d in &self.dirs {
            let kill = d.join("cgroup.kill");
            if kill.exists() {
                let _ = fs::write(&kill, "1");
            } else if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = crate::sys::kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
            // rmdir fails while the killed processes are still exiting; retry briefly.
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

fn enable_controllers(dir: &Path, ctrls: &[&str]) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    let current = fs::read_to_string(&path).unwrap_or_default();
    for c in ctrls {
        if !current.split_whitespace().any(|x| x == *c) {
            fs::write(&path, format!("+{c}")).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
33 25 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
";

    #[test]
    fn parses_hybrid_mounts() {
        let h = Hierarchies::from_mountinfo(HYBRID);
        assert_eq!(h.unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(
            h.v1_mount("memory"),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert_eq!(h.v1_mount("pids"), Some(Path::new("/sys/fs/cgroup/pids")));
        assert_eq!(h.v1_mount("freezer"), None);
    }

    #[test]
    fn limits_go_to_v1_when_v2_lacks_the_controller() {
        let t = tempfile::tempdir().unwrap();
        let u = t.path().join("unified");
        let mem = t.path().join("memory");
        fs::create_dir_all(&u).unwrap();
        fs::create_dir_all(&mem).unwrap();
        fs::write(u.join("cgroup.controllers"), "hugetlb\n").unwrap();
        let h = Hierarchies {
            unified: Some(u.clone()),
            v1: vec![(mem.clone(), vec!["memory".into()])],
        };
        let res = Resources {
            memory: Some(64 << 20),
            ..Default::default()
        };
        let cg = ContainerCgroups::create(&h, "sd", "c1", &res).unwrap();
        assert!(cg.dirs.contains(&u.join("sd/c1")));
        assert_eq!(
            fs::read_to_string(mem.join("sd/c1/memory.limit_in_bytes")).unwrap(),
            "67108864"
        );
        // No pids hierarchy anywhere: the limit is an error, not ignored.
        let res = Resources {
            pids: Some(10),
            ..Default::default()
        };
        let err = ContainerCgroups::create(&h, "sd", "c2", &res).unwrap_err();
        assert!(err.to_string().contains("pids"), "{err}");
    }

    #[test]
    fn limits_go_to_v2_when_it_has_them() {
        let t = tempfile::tempdir().unwrap();
        let u = t.path().join("unified");
        fs::create_dir_all(&u).unwrap();
        fs::write(u.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let h = Hierarchies {
            unified: Some(u.clone()),
            v1: vec![],
        };
        let res = Resources {
            memory: Some(1000),
            pids: Some(5),
            cpu_quota: Some(50_000),
            cpu_period: None,
        };
        ContainerCgroups::create(&h, "sd", "c1", &res).unwrap();
        assert_eq!(
            fs::read_to_string(u.join("sd/c1/memory.max")).unwrap(),
            "1000"
        );
        assert_eq!(fs::read_to_string(u.join("sd/c1/pids.max")).unwrap(), "5");
        assert_eq!(
            fs::read_to_string(u.join("sd/c1/cpu.max")).unwrap(),
            "50000 100000"
        );
        let sc = fs::read_to_string(u.join("cgroup.subtree_control")).unwrap();
        assert!(!sc.is_empty());
    }
}
