//! Kernel modules: what each one needs, read from its own `.modinfo` ELF section (the
//! `depends=`, `alias=` and `softdep=` strings modpost writes), the closure of a list of
//! modules, and the index files modprobe reads (`modules.dep`, `modules.alias`,
//! `modules.softdep`) for the modules shipped.
//!
//! Debian's kernel packages carry no `modules.dep`: depmod makes it in the package's
//! maintainer script, which never runs here, so the index is made from the modules
//! themselves. Module names treat `-` and `_` alike (the kernel does); they are kept with
//! `_`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// `virtio-blk` → `virtio_blk`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a path in `modules.builtin`/`modules.order`
/// (`kernel/fs/ext4/ext4.ko` → `ext4`, `…/crc32c-intel.ko.xz` → `crc32c_intel`).
pub fn name_of_path(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|s| file.strip_suffix(s))?;
    Some(normalize(stem))
}

/// One loadable module of a kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    pub name: String,
    /// Relative to `/lib/modules/<release>/` (`kernel/drivers/block/virtio_blk.ko`).
    pub path: String,
    /// Modules it needs loaded first (names).
    pub depends: Vec<String>,
    pub aliases: Vec<String>,
    /// `softdep=` strings as written (`pre: crc32c`).
    pub softdeps: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("{path}: {message}")]
    Elf { path: String, message: String },
    #[error("module {0}: the kernel has no such module, loadable or built in")]
    Unknown(String),
    #[error("module {module}: depends on {missing}, which the kernel does not have")]
    MissingDependency { module: String, missing: String },
}

/// The `key=value` strings of an ELF64 little-endian object's `.modinfo` section.
pub fn modinfo(elf: &[u8]) -> Result<Vec<(String, String)>, String> {
    let u16_at = |o: usize| -> Result<u64, String> {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
            .ok_or_else(|| "truncated".to_string())
    };
    let u32_at = |o: usize| -> Result<u64, String> {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
            .ok_or_else(|| "truncated".to_string())
    };
    let u64_at = |o: usize| -> Result<u64, String> {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .ok_or_else(|| "truncated".to_string())
    };
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB.
    if elf.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err("not a 64-bit little-endian ELF object".into());
    }
    let shoff = u64_at(0x28)? as usize;
    let shentsize = u16_at(0x3a)? as usize;
    let shnum = u16_at(0x3c)? as usize;
    let shstrndx = u16_at(0x3e)? as usize;
    if shentsize < 64 || shstrndx >= shnum {
        return Err("bad section header table".into());
    }
    // (name offset, file offset, size) of section i.
    let section = |i: usize| -> Result<(usize, usize, usize), String> {
        let at = shoff + i * shentsize;
        Ok((
            u32_at(at)? as usize,
            u64_at(at + 24)? as usize,
            u64_at(at + 32)? as usize,
        ))
    };
    let (_, names_at, names_len) = section(shstrndx)?;
    let names = elf
        .get(names_at..names_at.saturating_add(names_len))
        .ok_or("truncated section names")?;
    for i in 0..shnum {
        let (name, at, len) = section(i)?;
        let n = names.get(name..).unwrap_or_default();
        let n = &n[..n.iter().position(|b| *b == 0).unwrap_or(n.len())];
        if n != b".modinfo" {
            continue;
        }
        let data = elf
            .get(at..at.saturating_add(len))
            .ok_or("truncated .modinfo")?;
        return Ok(data
            .split(|b| *b == 0)
            .filter_map(|s| {
                let s = String::from_utf8_lossy(s);
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect());
    }
    Err("no .modinfo section".into())
}

/// A [`Module`] from the `.ko` at `path` (relative to the release's module directory).
pub fn read_module(path: &str, elf: &[u8]) -> Result<Module, ModuleError> {
    let info = modinfo(elf).map_err(|message| ModuleError::Elf {
        path: path.to_string(),
        message,
    })?;
    let get = |k: &'static str| info.iter().filter(move |(key, _)| key == k).map(|(_, v)| v);
    let name = get("name")
        .next()
        .map(|n| normalize(n))
        .or_else(|| name_of_path(path))
        .unwrap_or_default();
    Ok(Module {
        name,
        path: path.to_string(),
        depends: get("depends")
            .flat_map(|d| d.split(','))
            .filter(|d| !d.is_empty())
            .map(normalize)
            .collect(),
        aliases: get("alias").cloned().collect(),
        softdeps: get("softdep").cloned().collect(),
    })
}

/// The modules of one kernel release: loadable ones by name, and the names of those built
/// in.
#[derive(Debug, Default, Clone)]
pub struct Modules {
    pub by_name: BTreeMap<String, Module>,
    pub builtin: BTreeSet<String>,
}

/// What a list of wanted modules comes to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Closure {
    /// The modules to ship: the wanted ones, what they depend on and their soft
    /// dependencies, by name.
    pub modules: BTreeSet<String>,
    /// Wanted modules that are built into the kernel (nothing to ship).
    pub builtin: Vec<String>,
    /// Soft dependencies that name nothing this kernel has as a module.
    pub unresolved_softdeps: Vec<String>,
}

impl Modules {
    /// `builtin` is the text of `modules.builtin` (one path per line).
    pub fn new(modules: impl IntoIterator<Item = Module>, builtin: &str) -> Modules {
        Modules {
            by_name: modules.into_iter().map(|m| (m.name.clone(), m)).collect(),
            builtin: builtin.lines().filter_map(name_of_path).collect(),
        }
    }

    /// The modules a soft dependency names: the module of that name, else every module
    /// with it as an alias (`crc32c` is an alias of `crc32c_generic` and `crc32c_intel`).
    fn soft_targets(&self, name: &str) -> Vec<String> {
        let n = normalize(name);
        if self.by_name.contains_key(&n) {
            return vec![n];
        }
        self.by_name
            .values()
            .filter(|m| m.aliases.iter().any(|a| a == name))
            .map(|m| m.name.clone())
            .collect()
    }

    /// The closure of `wanted` under `depends` and soft dependencies. A wanted module built
    /// into the kernel is skipped; one the kernel lacks is an error.
    pub fn closure(&self, wanted: &[String]) -> Result<Closure, ModuleError> {
        let mut c = Closure::default();
        let mut todo: Vec<String> = Vec::new();
        for w in wanted {
            let n = normalize(w);
            if self.by_name.contains_key(&n) {
                todo.push(n);
            } else if self.builtin.contains(&n) {
                if !c.builtin.contains(&n) {
                    c.builtin.push(n);
                }
            } else {
                return Err(ModuleError::Unknown(w.clone()));
            }
        }
        while let Some(n) = todo.pop() {
            if !c.modules.insert(n.clone()) {
                continue;
            }
            let m = &self.by_name[&n];
            for d in &m.depends {
                if self.by_name.contains_key(d) {
                    todo.push(d.clone());
                } else if !self.builtin.contains(d) {
                    return Err(ModuleError::MissingDependency {
                        module: n.clone(),
                        missing: d.clone(),
                    });
                }
            }
            for s in m.softdeps.iter().flat_map(|s| softdep_names(s)) {
                let targets = self.soft_targets(s);
                if targets.is_empty() && !self.builtin.contains(&normalize(s)) {
                    let what = format!("{n}: {s}");
                    if !c.unresolved_softdeps.contains(&what) {
                        c.unresolved_softdeps.push(what);
                    }
                }
                todo.extend(targets);
            }
        }
        Ok(c)
    }

    /// The dependencies of `name`, transitively, each listed before what it depends on (the
    /// order depmod writes: modprobe loads them from the last one back).
    fn dependencies(&self, name: &str) -> Vec<String> {
        fn visit(m: &Modules, n: &str, seen: &mut BTreeSet<String>, post: &mut Vec<String>) {
            let Some(module) = m.by_name.get(n) else {
                return;
            };
            let mut deps: Vec<&String> = module.depends.iter().collect();
            deps.sort();
            for d in deps {
                if seen.insert(d.clone()) {
                    visit(m, d, seen, post);
                    post.push(d.clone());
                }
            }
        }
        let mut seen = BTreeSet::from([name.to_string()]);
        let mut post = Vec::new();
        visit(self, name, &mut seen, &mut post);
        post.reverse();
        post
    }

    fn shipped<'a>(&'a self, shipped: &'a BTreeSet<String>) -> impl Iterator<Item = &'a Module> {
        let mut v: Vec<&Module> = shipped.iter().filter_map(|n| self.by_name.get(n)).collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v.into_iter()
    }

    /// `modules.dep` of the shipped modules: `path: dependency paths`.
    pub fn render_dep(&self, shipped: &BTreeSet<String>) -> String {
        let mut out = String::new();
        for m in self.shipped(shipped) {
            out.push_str(&m.path);
            out.push(':');
            for d in self.dependencies(&m.name) {
                if let Some(dm) = self.by_name.get(&d) {
                    out.push(' ');
                    out.push_str(&dm.path);
                }
            }
            out.push('\n');
        }
        out
    }

    /// `modules.alias` of the shipped modules: `alias <pattern> <module>`.
    pub fn render_alias(&self, shipped: &BTreeSet<String>) -> String {
        let mut out = String::from("# Aliases extracted from modules themselves.\n");
        for m in self.shipped(shipped) {
            for a in &m.aliases {
                out.push_str(&format!("alias {a} {}\n", m.name));
            }
        }
        out
    }

    /// `modules.softdep` of the shipped modules: `softdep <module> pre: … post: …`.
    pub fn render_softdep(&self, shipped: &BTreeSet<String>) -> String {
        let mut out = String::from("# Soft dependencies extracted from modules themselves.\n");
        for m in self.shipped(shipped) {
            for s in &m.softdeps {
                out.push_str(&format!("softdep {} {s}\n", m.name));
            }
        }
        out
    }

    /// `modules.order` kept to the shipped modules, in its own order.
    pub fn filter_order(&self, order: &str, shipped: &BTreeSet<String>) -> String {
        order
            .lines()
            .filter(|l| {
                name_of_path(l).is_some_and(|n| {
                    shipped.contains(&n) && self.by_name.get(&n).is_some_and(|m| m.path == *l)
                })
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

/// The module names of a `softdep=` string (`pre: a b post: c` → `a b c`).
fn softdep_names(s: &str) -> impl Iterator<Item = &str> {
    s.split_whitespace().filter(|w| !w.ends_with(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, depends: &[&str]) -> Module {
        Module {
            name: name_of_path(path).unwrap(),
            path: path.to_string(),
            depends: depends.iter().map(|d| d.to_string()).collect(),
            aliases: Vec::new(),
            softdeps: Vec::new(),
        }
    }

    /// A small kernel: bridge needs stp and llc, stp needs llc, br_netfilter needs bridge;
    /// ext4 needs jbd2, mbcache and crc16 and softly crc32c (an alias); af_packet and
    /// unix are built in.
    fn kernel() -> Modules {
        let mut ext4 = module("kernel/fs/ext4/ext4.ko", &["jbd2", "mbcache", "crc16"]);
        ext4.softdeps = vec!["pre: crc32c".into()];
        let mut crc = module("kernel/crypto/crc32c_generic.ko", &[]);
        crc.aliases = vec!["crc32c".into(), "crypto-crc32c".into()];
        Modules::new(
            [
                module("kernel/net/bridge/br_netfilter.ko", &["bridge"]),
                module("kernel/net/bridge/bridge.ko", &["stp", "llc"]),
                module("kernel/net/802/stp.ko", &["llc"]),
                module("kernel/net/llc/llc.ko", &[]),
                ext4,
                module("kernel/fs/jbd2/jbd2.ko", &[]),
                module("kernel/fs/mbcache.ko", &[]),
                module("kernel/lib/crc16.ko", &[]),
                crc,
                module("kernel/drivers/virtio/virtio_pci.ko", &[]),
                module("kernel/arch/x86/crypto/crc32c-intel.ko", &[]),
            ],
            "kernel/net/packet/af_packet.ko\nkernel/net/unix/unix.ko\n",
        )
    }

    fn names(c: &Closure) -> Vec<&str> {
        c.modules.iter().map(String::as_str).collect()
    }

    #[test]
    fn closes_over_dependencies_and_soft_dependencies() {
        let k = kernel();
        let c = k.closure(&["br_netfilter".into()]).unwrap();
        assert_eq!(names(&c), ["br_netfilter", "bridge", "llc", "stp"]);
        let c = k.closure(&["ext4".into()]).unwrap();
        assert_eq!(
            names(&c),
            ["crc16", "crc32c_generic", "ext4", "jbd2", "mbcache"]
        );
        assert!(c.unresolved_softdeps.is_empty());
    }

    #[test]
    fn dashes_and_underscores_are_one_name() {
        let k = kernel();
        let c = k
            .closure(&["virtio-pci".into(), "crc32c_intel".into()])
            .unwrap();
        assert_eq!(names(&c), ["crc32c_intel", "virtio_pci"]);
        assert_eq!(
            name_of_path("a/crc32c-intel.ko.xz").unwrap(),
            "crc32c_intel"
        );
        assert_eq!(normalize("nls-utf8"), "nls_utf8");
    }

    #[test]
    fn built_in_modules_are_skipped_and_unknown_ones_refused() {
        let k = kernel();
        let c = k
            .closure(&["af_packet".into(), "af-packet".into(), "llc".into()])
            .unwrap();
        assert_eq!(c.builtin, ["af_packet"]);
        assert_eq!(names(&c), ["llc"]);
        let err = k.closure(&["llc".into(), "no_such".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "module no_such: the kernel has no such module, loadable or built in"
        );
        let mut broken = kernel();
        broken
            .by_name
            .insert("x".into(), module("kernel/x.ko", &["gone"]));
        let err = broken.closure(&["x".into()]).unwrap_err().to_string();
        assert!(err.contains("gone"), "{err}");
    }

    #[test]
    fn renders_the_index_files_of_what_ships() {
        let k = kernel();
        let c = k.closure(&["br_netfilter".into()]).unwrap();
        assert_eq!(
            k.render_dep(&c.modules),
            "kernel/net/802/stp.ko: kernel/net/llc/llc.ko\n\
             kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko \
             kernel/net/802/stp.ko kernel/net/llc/llc.ko\n\
             kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n\
             kernel/net/llc/llc.ko:\n"
        );
        let c = k.closure(&["ext4".into()]).unwrap();
        let alias = k.render_alias(&c.modules);
        assert!(
            alias.contains("alias crypto-crc32c crc32c_generic\n"),
            "{alias}"
        );
        assert!(k
            .render_softdep(&c.modules)
            .contains("softdep ext4 pre: crc32c\n"));
        let order = "kernel/fs/ext4/ext4.ko\nkernel/net/llc/llc.ko\nkernel/fs/jbd2/jbd2.ko\n";
        assert_eq!(
            k.filter_order(order, &c.modules),
            "kernel/fs/ext4/ext4.ko\nkernel/fs/jbd2/jbd2.ko\n"
        );
    }

    #[test]
    fn reads_modinfo_from_an_elf_object() {
        // A minimal ELF64 object: header, then .modinfo, then .shstrtab, then 3 section
        // headers (null, .modinfo, .shstrtab).
        let info = b"license=GPL\0depends=jbd2,mbcache\0alias=fs-ext4\0alias=ext3\0softdep=pre: crc32c\0name=ext4\0";
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let modinfo_at = elf.len();
        elf.extend_from_slice(info);
        let shstr_at = elf.len();
        elf.extend_from_slice(shstrtab);
        while !elf.len().is_multiple_of(8) {
            elf.push(0);
        }
        let shoff = elf.len();
        let mut sh = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&h);
        };
        sh(0, 0, 0);
        sh(1, modinfo_at, info.len());
        sh(10, shstr_at, shstrtab.len());
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        let m = read_module("kernel/fs/ext4/ext4.ko", &elf).unwrap();
        assert_eq!(m.name, "ext4");
        assert_eq!(m.depends, ["jbd2", "mbcache"]);
        assert_eq!(m.aliases, ["fs-ext4", "ext3"]);
        assert_eq!(m.softdeps, ["pre: crc32c"]);
        assert!(modinfo(b"not elf").is_err());
        assert!(read_module("x.ko", &elf[..100]).is_err());
    }
}
