//! Loading kernel modules the way modprobe does, without kmod in the initrd: the dependency
//! order from `modules.dep`, then finit_module(2) for each file not already loaded.
//!
//! Not here: aliases (`modules.alias`), module parameters, blacklists, unloading.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

/// finit_module(2) flag: the file is compressed and the kernel decompresses it (Linux 6.4+,
/// `CONFIG_MODULE_DECOMPRESS`). nix's flag type does not name it yet.
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;
/// The compressions the kernel's in-kernel decompressor reads.
const COMPRESSED_SUFFIXES: [&str; 3] = [".ko.xz", ".ko.zst", ".ko.gz"];

#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error("module {name} is not in modules.dep or modules.builtin")]
    Unknown { name: String },
    #[error("module {name} depends on {dep}, which modules.dep does not list")]
    MissingDependency { name: String, dep: String },
    #[error("modules.dep has a dependency cycle through {name}")]
    Cycle { name: String },
    #[error("opening module file {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("loading module {name} from {}", path.display())]
    Load {
        name: String,
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("the thread loading it panicked")]
    Panicked,
}

/// Module name of a path or name: the file stem without `.ko` and compression, `-` → `_`
/// (the kernel treats the two alike in module names).
pub fn module_name(s: &str) -> String {
    let base = s.rsplit('/').next().unwrap_or(s);
    let stem = match base.find(".ko") {
        Some(i) if matches!(&base[i..], ".ko" | ".ko.xz" | ".ko.zst" | ".ko.gz") => &base[..i],
        _ => base,
    };
    stem.replace('-', "_")
}

#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    deps: Vec<String>,
}

/// What `/lib/modules/<release>` says: each module's file and its dependencies, and which
/// modules are built into the kernel.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    modules: HashMap<String, Entry>,
    builtin: HashSet<String>,
}

impl ModuleIndex {
    /// Reads `dir/modules.dep` and, when present, `dir/modules.builtin`.
    pub fn load(dir: &Path) -> io::Result<ModuleIndex> {
        let dep_path = dir.join("modules.dep");
        let dep = std::fs::read_to_string(&dep_path).map_err(|e| {
            io::Error::new(e.kind(), format!("reading {}: {e}", dep_path.display()))
        })?;
        let builtin_path = dir.join("modules.builtin");
        let builtin = match std::fs::read_to_string(&builtin_path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("reading {}: {e}", builtin_path.display()),
                ))
            }
        };
        Ok(ModuleIndex::parse(dir, &dep, &builtin))
    }

    /// Builds the index from the text of `modules.dep` and `modules.builtin`; relative paths
    /// are relative to `dir`. Lines that do not parse are skipped.
    pub fn parse(dir: &Path, modules_dep: &str, modules_builtin: &str) -> ModuleIndex {
        let mut modules = HashMap::new();
        for line in modules_dep.lines() {
            let Some((module, deps)) = line.split_once(':') else {
                continue;
            };
            let module = module.trim();
            if module.is_empty() {
                continue;
            }
            let entry = Entry {
                path: dir.join(module),
                deps: deps.split_whitespace().map(module_name).collect(),
            };
            modules.insert(module_name(module), entry);
        }
        let builtin = modules_builtin
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(module_name)
            .collect();
        ModuleIndex { modules, builtin }
    }

    /// The files to load for `name`, dependencies first, each once. Empty for a builtin
    /// module.
    pub fn resolve(&self, name: &str) -> Result<Vec<PathBuf>, KmodError> {
        let name = module_name(name);
        if !self.modules.contains_key(&name) {
            if self.builtin.contains(&name) {
                return Ok(Vec::new());
            }
            return Err(KmodError::Unknown { name });
        }
        let mut order = Vec::new();
        let mut done = HashSet::new();
        let mut visiting = HashSet::new();
        self.visit(&name, &mut visiting, &mut done, &mut order)?;
        Ok(order)
    }

    /// Depth-first, dependencies before dependents. Each dependency's own line is followed,
    /// so the order does not rely on how depmod sorted a line.
    fn visit(
        &self,
        name: &str,
        visiting: &mut HashSet<String>,
        done: &mut HashSet<String>,
        order: &mut Vec<PathBuf>,
    ) -> Result<(), KmodError> {
        if done.contains(name) {
            return Ok(());
        }
        let Some(entry) = self.modules.get(name) else {
            return Err(KmodError::Unknown {
                name: name.to_string(),
            });
        };
        if !visiting.insert(name.to_string()) {
            return Err(KmodError::Cycle {
                name: name.to_string(),
            });
        }
        for dep in &entry.deps {
            if done.contains(dep) || (self.builtin.contains(dep) && !self.modules.contains_key(dep))
            {
                continue;
            }
            if !self.modules.contains_key(dep) {
                return Err(KmodError::MissingDependency {
                    name: name.to_string(),
                    dep: dep.clone(),
                });
            }
            self.visit(dep, visiting, done, order)?;
        }
        visiting.remove(name);
        done.insert(name.to_string());
        order.push(entry.path.clone());
        Ok(())
    }
}

/// The modules `/proc/modules` lists as loaded (empty when it cannot be read: a kernel
/// without module support has no such file).
fn loaded_modules(proc_modules: &Path) -> HashSet<String> {
    match std::fs::read_to_string(proc_modules) {
        Ok(s) => s
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(module_name)
            .collect(),
        Err(e) => {
            log::debug!("reading {}: {e}", proc_modules.display());
            HashSet::new()
        }
    }
}

/// Loads each of `names` with its dependencies, skipping what `/proc/modules` shows loaded;
/// one result per name, in order. A module the kernel already has (`EEXIST`) counts as
/// loaded. Never stops at a failure: the next name is tried.
pub fn load_modules(index: &ModuleIndex, names: &[String]) -> Vec<(String, Result<(), KmodError>)> {
    let mut loaded = loaded_modules(Path::new("/proc/modules"));
    names
        .iter()
        .map(|name| (name.clone(), load_one(index, name, &mut loaded)))
        .collect()
}

/// [`load_modules`] on `threads` threads, `names` dealt out round-robin; one result per name,
/// in the order of `names`. Each module load waits on the kernel (RCU grace periods, probes),
/// so several at once finish sooner. A dependency two threads need is loaded once: the
/// kernel makes the second wait for the first and answers `EEXIST`.
pub fn load_modules_parallel(
    index: &ModuleIndex,
    names: &[String],
    threads: usize,
) -> Vec<(String, Result<(), KmodError>)> {
    let threads = threads.clamp(1, names.len().max(1));
    let groups: Vec<Vec<String>> = (0..threads)
        .map(|t| names.iter().skip(t).step_by(threads).cloned().collect())
        .collect();
    let mut results: Vec<Vec<(String, Result<(), KmodError>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .map(|g| s.spawn(|| load_modules(index, g)))
            .collect();
        handles
            .into_iter()
            .zip(&groups)
            .map(|(h, g)| {
                h.join().unwrap_or_else(|_| {
                    g.iter()
                        .map(|n| (n.clone(), Err(KmodError::Panicked)))
                        .collect()
                })
            })
            .collect()
    });
    // Back into the order of `names`: name i is the (i / threads)th of group i % threads.
    let mut iters: Vec<_> = results.iter_mut().map(|r| r.drain(..)).collect();
    (0..names.len())
        .filter_map(|i| iters[i % threads].next())
        .collect()
}

fn load_one(
    index: &ModuleIndex,
    name: &str,
    loaded: &mut HashSet<String>,
) -> Result<(), KmodError> {
    if loaded.contains(&module_name(name)) {
        return Ok(());
    }
    for path in index.resolve(name)? {
        let module = module_name(&path.to_string_lossy());
        if loaded.contains(&module) {
            continue;
        }
        let file = File::open(&path).map_err(|source| KmodError::Open {
            path: path.clone(),
            source,
        })?;
        let compressed = path
            .file_name()
            .map(|f| f.to_string_lossy())
            .is_some_and(|f| COMPRESSED_SUFFIXES.iter().any(|s| f.ends_with(s)));
        let flags = if compressed {
            ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
        } else {
            ModuleInitFlags::empty()
        };
        match finit_module(&file, c"", flags) {
            Ok(()) | Err(Errno::EEXIST) => {
                log::debug!("loaded module {module} from {}", path.display());
                loaded.insert(module);
            }
            Err(source) => {
                return Err(KmodError::Load {
                    name: module,
                    path,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// The running kernel's release (`uname -r`), which names its `/lib/modules` directory.
pub fn kernel_release() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => u.release().to_string_lossy().into_owned(),
        Err(e) => {
            log::warn!("uname: {e}");
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz
kernel/drivers/virtio/virtio_ring.ko.xz: kernel/drivers/virtio/virtio.ko.xz
kernel/drivers/virtio/virtio.ko.xz:
kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/llc/llc.ko:
kernel/fs/isofs/isofs.ko.zst: kernel/lib/crc-itu-t.ko
kernel/drivers/broken.ko: kernel/drivers/absent.ko
this line has no colon
";
    const BUILTIN: &str = "kernel/fs/ext4/ext4.ko\nkernel/lib/crc-itu-t.ko\n\n";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(Path::new("/lib/modules/6.1.0"), DEP, BUILTIN)
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| module_name(&p.to_string_lossy()))
            .collect()
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(
            module_name("kernel/drivers/block/virtio_blk.ko.xz"),
            "virtio_blk"
        );
        assert_eq!(module_name("virtio-blk"), "virtio_blk");
        assert_eq!(module_name("crc-itu-t.ko"), "crc_itu_t");
        assert_eq!(module_name("isofs.ko.zst"), "isofs");
        assert_eq!(module_name("a.ko.gz"), "a");
    }

    #[test]
    fn dependencies_come_first_once() {
        let idx = index();
        let order = idx.resolve("br-netfilter").unwrap();
        assert_eq!(names(&order), ["llc", "stp", "bridge", "br_netfilter"]);
        assert_eq!(
            order[0],
            Path::new("/lib/modules/6.1.0/kernel/net/llc/llc.ko"),
            "paths are relative to the modules directory"
        );
        // virtio_blk's line lists virtio_ring before virtio; virtio still loads first.
        assert_eq!(
            names(&idx.resolve("virtio_blk").unwrap()),
            ["virtio", "virtio_ring", "virtio_blk"]
        );
        assert_eq!(names(&idx.resolve("llc").unwrap()), ["llc"]);
    }

    #[test]
    fn builtin_and_unknown() {
        let idx = index();
        assert!(idx.resolve("ext4").unwrap().is_empty());
        assert!(idx.resolve("crc_itu_t").unwrap().is_empty());
        // A builtin dependency is not loaded.
        assert_eq!(names(&idx.resolve("isofs").unwrap()), ["isofs"]);
        let err = idx.resolve("nosuch-module").unwrap_err();
        assert!(matches!(&err, KmodError::Unknown { name } if name == "nosuch_module"));
        assert!(err.to_string().contains("nosuch_module"), "{err}");
        let err = idx.resolve("broken").unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn cycle_is_an_error_not_a_hang() {
        let idx = ModuleIndex::parse(Path::new("/m"), "a.ko: b.ko\nb.ko: a.ko\n", "");
        assert!(matches!(idx.resolve("a"), Err(KmodError::Cycle { .. })));
    }

    #[test]
    fn load_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("modules.dep"), DEP).unwrap();
        let idx = ModuleIndex::load(dir.path()).unwrap();
        assert!(
            idx.resolve("ext4").is_err(),
            "no modules.builtin: ext4 is unknown"
        );
        assert_eq!(
            idx.resolve("llc").unwrap(),
            [dir.path().join("kernel/net/llc/llc.ko")]
        );
        let missing = ModuleIndex::load(&dir.path().join("nope")).unwrap_err();
        assert!(
            missing.to_string().contains("nope/modules.dep"),
            "{missing}"
        );
    }

    #[test]
    fn load_modules_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let idx = ModuleIndex::parse(
            dir.path(),
            "kernel/x/missing.ko.xz:\n",
            "kernel/fs/ext4/ext4.ko\n",
        );
        let names = [
            "missing".to_string(),
            "unknown".to_string(),
            "ext4".to_string(),
        ];
        let results = load_modules(&idx, &names);
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].0, "missing");
        assert!(
            matches!(&results[0].1, Err(KmodError::Open { path, .. }) if path.ends_with("missing.ko.xz")),
            "{:?}",
            results[0].1
        );
        assert!(matches!(&results[1].1, Err(KmodError::Unknown { .. })));
        assert!(results[2].1.is_ok(), "builtin needs no loading");
    }

    #[test]
    fn parallel_loading_keeps_the_order_of_names() {
        let dir = tempfile::tempdir().unwrap();
        let idx = ModuleIndex::parse(dir.path(), "kernel/x/missing.ko:\n", "kernel/fs/b.ko\n");
        let names: Vec<String> = ["b", "missing", "u1", "b", "u2", "missing", "u3"]
            .map(String::from)
            .to_vec();
        for threads in [1, 2, 3, 4, 16] {
            let results = load_modules_parallel(&idx, &names, threads);
            let got: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(got, names, "{threads} threads");
            for (name, r) in &results {
                match name.as_str() {
                    "b" => assert!(r.is_ok()),
                    "missing" => assert!(matches!(r, Err(KmodError::Open { .. }))),
                    _ => assert!(matches!(r, Err(KmodError::Unknown { .. }))),
                }
            }
        }
        assert!(load_modules_parallel(&idx, &[], 4).is_empty());
    }

    #[test]
    fn release_is_not_empty() {
        assert!(!kernel_release().is_empty());
    }
}
