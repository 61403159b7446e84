//! The declarative spec (`image-build/spec.yml`): its YAML shape, and its validation into a
//! [`Plan`] — layers in build order, each knowing its parent, and the images on top of them.
//!
//! The YAML is read with serde-saphyr: serde_yaml, the usual choice, is archived upstream and
//! no longer maintained.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::pattern::Pattern;

/// The version a spec gets with `version: workspace`: the Cargo workspace's version, which
/// this crate shares.
pub const WORKSPACE_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spec {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("spec {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// `spec.yml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub version: String,
    pub repository: String,
    pub source_date_epoch: i64,
    #[serde(default)]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub drop: Vec<String>,
    #[serde(default)]
    pub layers: BTreeMap<String, NodeFile>,
    pub images: BTreeMap<String, NodeFile>,
    pub boot: Option<BootFile>,
}

/// The `boot:` section: kernel package, modules, packages of the initrd.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootFile {
    pub kernel: String,
    #[serde(default)]
    pub modules: Vec<String>,
    #[serde(default)]
    pub load: Vec<String>,
    #[serde(default)]
    pub system_modules: Vec<String>,
    #[serde(default)]
    pub system_load: Vec<String>,
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub preload: Vec<String>,
    #[serde(default)]
    pub prefetch: Vec<String>,
}

/// A layer or an image (an image is a layer plus a container config; the config keys are
/// refused on plain layers).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub parent: Option<String>,
    #[serde(default)]
    pub packages: Vec<PackageFile>,
    #[serde(default)]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub drop: Vec<String>,
    pub files: Option<String>,
    #[serde(default)]
    pub dirs: BTreeMap<String, String>,
    #[serde(default)]
    pub symlinks: BTreeMap<String, String>,
    #[serde(default)]
    pub contents: BTreeMap<String, String>,
    #[serde(default)]
    pub attrs: BTreeMap<String, AttrFile>,
    #[serde(default)]
    pub busybox_applets: bool,
    #[serde(default)]
    pub ca_bundle: bool,
    // Image config.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PackageFile {
    Name(String),
    Partial(PartialPackageFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialPackageFile {
    pub name: String,
    pub only: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttrFile {
    pub mode: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Owner and mode overrides of one path.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Attr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// A package of a layer: all of it and its dependencies, or only some paths of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageReq {
    pub name: String,
    /// `Some`: only these paths (and their parent directories), no dependencies.
    pub only: Option<Vec<Pattern>>,
}

/// One layer, validated. Paths are relative to the image root (`usr/bin/x`).
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    /// Index of the parent in [`Plan::layers`] (always lower than this layer's).
    pub parent: Option<usize>,
    pub packages: Vec<PackageReq>,
    /// Global and per-layer, names sorted.
    pub ignore: Vec<String>,
    /// Global and per-layer.
    pub drop: Vec<Pattern>,
    /// The files directory copied in, if any.
    pub files: Option<PathBuf>,
    pub dirs: BTreeMap<String, u32>,
    pub symlinks: BTreeMap<String, String>,
    /// `{version}` already replaced.
    pub contents: BTreeMap<String, String>,
    pub attrs: BTreeMap<String, Attr>,
    pub busybox_applets: bool,
    pub ca_bundle: bool,
}

/// An image: its own layer (an index into [`Plan::layers`]) and its container config.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    /// `<repository>/<name>:<version>`
    pub tag: String,
    pub layer: usize,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
}

/// The boot section, validated. Module names are normalized (`-` → `_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// The kernel package, or a metapackage depending on one (`linux-image-amd64`).
    pub kernel: String,
    /// Modules shipped in the initrd (with their dependencies), in the spec's order.
    pub modules: Vec<String>,
    /// Modules init loads before it looks for disks, in order; each is in `modules`.
    pub load: Vec<String>,
    /// Modules shipped in `images.sqfs` (with their dependencies, and with `modules`), which
    /// init binds over `/lib/modules` once it has mounted the images: kept out of RAM.
    pub system_modules: Vec<String>,
    /// Modules init loads once the images and the state partition are mounted; each is in
    /// `modules` or `system_modules`.
    pub system_load: Vec<String>,
    /// Debian packages added to the `base` layer's contents in the initrd.
    pub packages: Vec<String>,
    /// Images of the spec whose archives the disk images and the ISO carry in
    /// `preload/docker/`, for the user engine to load at first boot.
    pub preload: Vec<String>,
    /// Files of images (`image:/path`) init reads into the page cache in the background
    /// while the boot goes on, when memory allows: the big programs the last services start.
    pub prefetch: Vec<(String, String)>,
}

/// The layer whose contents the initrd starts from.
pub const BOOT_BASE_LAYER: &str = "base";

/// The validated spec.
#[derive(Debug, Clone)]
pub struct Plan {
    pub version: String,
    pub repository: String,
    pub source_date_epoch: i64,
    /// Parents before children.
    pub layers: Vec<Layer>,
    /// Sorted by name.
    pub images: Vec<Image>,
    pub boot: Option<Boot>,
}

impl Plan {
    /// The chain of layer indices from the bottom layer up to `layer`.
    pub fn chain(&self, layer: usize) -> Vec<usize> {
        let mut chain = vec![layer];
        let mut at = layer;
        while let Some(p) = self.layers[at].parent {
            chain.push(p);
            at = p;
        }
        chain.reverse();
        chain
    }

    /// How far `layer` is from its bottom layer (0 for a bottom layer).
    pub fn depth(&self, layer: usize) -> usize {
        self.chain(layer).len() - 1
    }
}

/// Reads and validates the spec at `path`. Files directories are looked up beside it, in
/// `files/`. `version` overrides the spec's version.
pub fn load(path: &Path, version: Option<&str>) -> Result<Plan, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: SpecFile = serde_saphyr::from_str(&text).map_err(|e| SpecError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let files_root = path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("files");
    validate(file, &files_root, version).map_err(|message| SpecError::Invalid {
        path: path.to_path_buf(),
        message,
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// `/usr/bin/x` → `usr/bin/x`; refuses relative paths, `.`/`..` components and the root.
pub fn rel_path(p: &str) -> Result<String, String> {
    let Some(rest) = p.strip_prefix('/') else {
        return Err(format!("path {p:?} is not absolute"));
    };
    let parts: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
    if parts.is_empty() {
        return Err(format!("path {p:?} names the root"));
    }
    if parts.iter().any(|c| *c == "." || *c == "..") {
        return Err(format!("path {p:?} has a . or .. component"));
    }
    Ok(parts.join("/"))
}

/// An octal mode string (`"0640"`, `"1777"`).
pub fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("mode {s:?} is not an octal mode (like \"0644\")"))
}

fn validate(file: SpecFile, files_root: &Path, version: Option<&str>) -> Result<Plan, String> {
    let version = match version {
        Some(v) => v.to_string(),
        None if file.version == "workspace" => WORKSPACE_VERSION.to_string(),
        None => file.version.clone(),
    };
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(format!("version {version:?} is not a valid image tag"));
    }
    if !valid_name(&file.repository) {
        return Err(format!(
            "repository {:?} is not a valid name",
            file.repository
        ));
    }
    if file.source_date_epoch < 0 {
        return Err("source_date_epoch is negative".into());
    }
    if file.images.is_empty() {
        return Err("no images".into());
    }
    for name in file.layers.keys().chain(file.images.keys()) {
        if !valid_name(name) {
            return Err(format!(
                "{name:?} is not a valid name (lowercase letters, digits, . _ -)"
            ));
        }
    }
    if let Some(both) = file.layers.keys().find(|n| file.images.contains_key(*n)) {
        return Err(format!("{both:?} is both a layer and an image"));
    }
    for (name, node) in &file.layers {
        let image_only = [
            ("entrypoint", node.entrypoint.is_some()),
            ("cmd", node.cmd.is_some()),
            ("env", !node.env.is_empty()),
            ("labels", !node.labels.is_empty()),
            ("workdir", node.workdir.is_some()),
            ("user", node.user.is_some()),
            ("stop_signal", node.stop_signal.is_some()),
        ];
        if let Some((key, _)) = image_only.iter().find(|(_, set)| *set) {
            return Err(format!(
                "layer {name}: {key} is an image setting; layers have none"
            ));
        }
    }

    // Order: parents first. Layers may only have layers as parents, so images come last.
    let mut order: Vec<String> = Vec::new();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<&String> = file.layers.keys().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|name| {
            let parent = file.layers[*name].parent.as_ref();
            if parent.is_none_or(|p| placed.contains(p)) {
                placed.insert((*name).clone());
                order.push((*name).clone());
                false
            } else {
                true
            }
        });
        if pending.len() == before {
            let name = pending[0];
            let parent = file.layers[name].parent.clone().unwrap_or_default();
            return Err(if file.layers.contains_key(&parent) {
                format!("layer parents form a cycle through {name}")
            } else {
                format!("layer {name}: parent {parent:?} is not a layer")
            });
        }
    }

    let global_drop = patterns(&file.drop, "drop")?;
    let mut layers: Vec<Layer> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let nodes = order
        .iter()
        .map(|n| (n, &file.layers[n]))
        .chain(file.images.iter());
    for (name, node) in nodes {
        let parent = match &node.parent {
            None => None,
            Some(p) => Some(*index.get(p).ok_or_else(|| {
                format!("{name}: parent {p:?} is not a layer (images stack on layers)")
            })?),
        };
        let layer = layer(
            name,
            node,
            parent,
            &file.ignore,
            &global_drop,
            files_root,
            &version,
        )
        .map_err(|e| format!("{name}: {e}"))?;
        index.insert(name.clone(), layers.len());
        layers.push(layer);
    }

    let mut images = Vec::new();
    for (name, node) in &file.images {
        images.push(Image {
            name: name.clone(),
            tag: format!("{}/{name}:{version}", file.repository),
            layer: index[name],
            entrypoint: node.entrypoint.clone(),
            cmd: node.cmd.clone(),
            env: node.env.clone(),
            labels: node.labels.clone(),
            workdir: node.workdir.clone(),
            user: node.user.clone(),
            stop_signal: node.stop_signal.clone(),
        });
    }
    let boot = match &file.boot {
        Some(b) => {
            if !index.contains_key(BOOT_BASE_LAYER) || file.images.contains_key(BOOT_BASE_LAYER) {
                return Err(format!(
                    "boot: the initrd starts from a layer named {BOOT_BASE_LAYER:?}; there is none"
                ));
            }
            if let Some(p) = b.preload.iter().find(|p| !file.images.contains_key(*p)) {
                return Err(format!("boot: preload: {p:?} is not an image of the spec"));
            }
            for p in &b.prefetch {
                let image = p.split_once(':').map_or("", |(i, _)| i);
                if !file.images.contains_key(image) {
                    return Err(format!(
                        "boot: prefetch: {p:?} does not start with an image of the spec \
                         (image:/path)"
                    ));
                }
            }
            Some(boot(b).map_err(|e| format!("boot: {e}"))?)
        }
        None => None,
    };
    Ok(Plan {
        version,
        repository: file.repository,
        source_date_epoch: file.source_date_epoch,
        layers,
        images,
        boot,
    })
}

fn valid_package(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

fn boot(b: &BootFile) -> Result<Boot, String> {
    if !valid_package(&b.kernel) {
        return Err(format!(
            "kernel {:?} is not a Debian package name",
            b.kernel
        ));
    }
    let names = |list: &[String], what: &str| -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        for m in list {
            if m.is_empty()
                || !m
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
            {
                return Err(format!("{what}: {m:?} is not a module name"));
            }
            let n = crate::kmod::normalize(m);
            // A module listed twice is the same module; keep the first place.
            if !out.contains(&n) {
                out.push(n);
            }
        }
        Ok(out)
    };
    let modules = names(&b.modules, "modules")?;
    let load = names(&b.load, "load")?;
    if let Some(m) = load.iter().find(|m| !modules.contains(m)) {
        return Err(format!(
            "load: {m} is not in modules (init can only load what the initrd ships)"
        ));
    }
    let system_modules = names(&b.system_modules, "system_modules")?;
    let system_load = names(&b.system_load, "system_load")?;
    if let Some(m) = system_load
        .iter()
        .find(|m| !modules.contains(m) && !system_modules.contains(m))
    {
        return Err(format!(
            "system_load: {m} is in neither modules nor system_modules (init can only load \
             what the initrd or the images ship)"
        ));
    }
    let mut packages: Vec<String> = Vec::new();
    for p in &b.packages {
        if !valid_package(p) {
            return Err(format!("packages: {p:?} is not a Debian package name"));
        }
        if packages.contains(p) {
            return Err(format!("packages: {p} is listed twice"));
        }
        packages.push(p.clone());
    }
    Ok(Boot {
        kernel: b.kernel.clone(),
        modules,
        load,
        system_modules,
        system_load,
        packages,
        preload: b.preload.clone(),
        prefetch: b
            .prefetch
            .iter()
            .map(|p| match p.split_once(':') {
                Some((image, path))
                    if path.starts_with('/') && !path.split('/').any(|c| c == ".." || c == ".") =>
                {
                    Ok((image.to_owned(), path.to_owned()))
                }
                _ => Err(format!(
                    "prefetch: expected image:/absolute/path, got {p:?}"
                )),
            })
            .collect::<Result<_, _>>()?,
    })
}

fn patterns(list: &[String], what: &str) -> Result<Vec<Pattern>, String> {
    list.iter()
        .map(|p| Pattern::new(p).map_err(|e| format!("{what}: {e}")))
        .collect()
}

fn layer(
    name: &str,
    node: &NodeFile,
    parent: Option<usize>,
    global_ignore: &[String],
    global_drop: &[Pattern],
    files_root: &Path,
    version: &str,
) -> Result<Layer, String> {
    let mut packages = Vec::new();
    let mut seen = BTreeSet::new();
    for p in &node.packages {
        let req = match p {
            PackageFile::Name(n) => PackageReq {
                name: n.clone(),
                only: None,
            },
            PackageFile::Partial(pp) => {
                if pp.only.is_empty() {
                    return Err(format!("package {}: `only` is empty", pp.name));
                }
                PackageReq {
                    name: pp.name.clone(),
                    only: Some(patterns(&pp.only, "only")?),
                }
            }
        };
        if !valid_package(&req.name) {
            return Err(format!("{:?} is not a Debian package name", req.name));
        }
        if !seen.insert(req.name.clone()) {
            return Err(format!("package {} is listed twice", req.name));
        }
        packages.push(req);
    }
    let mut ignore: Vec<String> = global_ignore.iter().chain(&node.ignore).cloned().collect();
    ignore.sort();
    ignore.dedup();
    if let Some(p) = packages.iter().find(|p| ignore.contains(&p.name)) {
        return Err(format!("package {} is both wanted and ignored", p.name));
    }
    let mut drop = global_drop.to_vec();
    drop.extend(patterns(&node.drop, "drop")?);

    let files = match &node.files {
        Some(dir) => {
            let p = files_root.join(dir);
            if !p.is_dir() {
                return Err(format!("files directory {} does not exist", p.display()));
            }
            Some(p)
        }
        None => Some(files_root.join(name)).filter(|p| p.is_dir()),
    };
    let mut dirs = BTreeMap::new();
    for (p, mode) in &node.dirs {
        dirs.insert(rel_path(p)?, parse_mode(mode)?);
    }
    let mut symlinks = BTreeMap::new();
    for (p, target) in &node.symlinks {
        if target.is_empty() {
            return Err(format!("symlink {p}: empty target"));
        }
        symlinks.insert(rel_path(p)?, target.clone());
    }
    let mut contents = BTreeMap::new();
    for (p, text) in &node.contents {
        contents.insert(rel_path(p)?, text.replace("{version}", version));
    }
    let mut attrs = BTreeMap::new();
    for (p, a) in &node.attrs {
        let mode = a.mode.as_deref().map(parse_mode).transpose()?;
        attrs.insert(
            rel_path(p)?,
            Attr {
                mode,
                uid: a.uid,
                gid: a.gid,
            },
        );
    }
    Ok(Layer {
        name: name.to_string(),
        parent,
        packages,
        ignore,
        drop,
        files,
        dirs,
        symlinks,
        contents,
        attrs,
        busybox_applets: node.busybox_applets,
        ca_bundle: node.ca_bundle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Plan, String> {
        let file: SpecFile = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        validate(file, Path::new("/nonexistent/files"), None)
    }

    const MINIMAL: &str = "
version: workspace
repository: ros
source_date_epoch: 0
layers:
  base: {packages: [busybox-static]}
  mid: {parent: base, packages: [{name: docker.io, only: [/usr/bin/docker]}]}
images:
  one:
    parent: mid
    packages: [udev]
    dirs: {/tmp: \"1777\"}
    contents: {/etc/v: \"v={version}\"}
    entrypoint: [/bin/sh]
";

    #[test]
    fn minimal_spec_orders_layers_and_tags_images() {
        let plan = parse(MINIMAL).unwrap();
        assert_eq!(plan.version, WORKSPACE_VERSION);
        let names: Vec<&str> = plan.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["base", "mid", "one"]);
        assert_eq!(plan.images[0].tag, format!("ros/one:{WORKSPACE_VERSION}"));
        assert_eq!(plan.chain(2), [0, 1, 2]);
        assert_eq!(plan.depth(2), 2);
        let one = &plan.layers[2];
        assert_eq!(one.dirs["tmp"], 0o1777);
        assert_eq!(one.contents["etc/v"], format!("v={WORKSPACE_VERSION}"));
        let mid = &plan.layers[1];
        assert!(mid.packages[0].only.is_some());
    }

    #[test]
    fn refuses_bad_specs_naming_the_problem() {
        let cases = [
            (MINIMAL.replace("parent: base", "parent: nope"), "nope"),
            (
                MINIMAL.replace("mid: {parent: base", "mid: {parent: mid"),
                "cycle",
            ),
            (MINIMAL.replace("\"1777\"", "\"999\""), "octal"),
            (MINIMAL.replace("/tmp:", "tmp:"), "not absolute"),
            (
                MINIMAL.replace("packages: [udev]", "packages: [udev, udev]"),
                "twice",
            ),
            (
                MINIMAL.replace("packages: [udev]", "packges: [udev]"),
                "packges",
            ),
            (
                MINIMAL.replace("packages: [busybox-static]", "entrypoint: [/x]"),
                "image setting",
            ),
            (MINIMAL.replace("parent: mid", "parent: one"), "not a layer"),
        ];
        for (yaml, want) in cases {
            let err = parse(&yaml).expect_err(want);
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
        let ignored = format!("{MINIMAL}ignore: [udev]\n");
        assert!(parse(&ignored)
            .unwrap_err()
            .contains("both wanted and ignored"));
    }

    const BOOT: &str = "
boot:
  kernel: linux-image-amd64
  modules: [virtio-blk, ext4, virtio_blk, af_packet]
  load: [virtio_blk, af-packet]
  system_modules: [bridge, virtio-net]
  system_load: [virtio_net, ext4]
  packages: [e2fsprogs]
  prefetch: [one:/usr/bin/x]
";

    fn with_base(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }

    #[test]
    fn boot_section_normalizes_module_names() {
        let plan = parse(&with_base(BOOT)).unwrap();
        let boot = plan.boot.unwrap();
        assert_eq!(boot.kernel, "linux-image-amd64");
        assert_eq!(boot.modules, ["virtio_blk", "ext4", "af_packet"]);
        assert_eq!(boot.load, ["virtio_blk", "af_packet"]);
        assert_eq!(boot.system_modules, ["bridge", "virtio_net"]);
        assert_eq!(boot.system_load, ["virtio_net", "ext4"]);
        assert_eq!(boot.packages, ["e2fsprogs"]);
        assert_eq!(boot.prefetch, [("one".to_owned(), "/usr/bin/x".to_owned())]);
        assert!(parse(MINIMAL).unwrap().boot.is_none());
    }

    #[test]
    fn boot_section_refuses_what_it_cannot_build() {
        let cases = [
            (BOOT.replace("load: [", "loads: ["), "loads"),
            (
                BOOT.replace("load: [virtio_blk", "load: [nvme"),
                "nvme is not in modules",
            ),
            (
                BOOT.replace("system_load: [virtio_net", "system_load: [tun"),
                "tun is in neither modules nor system_modules",
            ),
            (BOOT.replace("ext4,", "ext/4,"), "not a module name"),
            (
                BOOT.replace("[e2fsprogs]", "[e2fsprogs, e2fsprogs]"),
                "twice",
            ),
            (
                BOOT.replace("linux-image-amd64", "Linux"),
                "not a Debian package",
            ),
            (
                BOOT.replace("one:/usr/bin/x", "two:/usr/bin/x"),
                "does not start with an image of the spec",
            ),
            (
                BOOT.replace("one:/usr/bin/x", "one:usr/bin/x"),
                "expected image:/absolute/path",
            ),
            (
                BOOT.replace("one:/usr/bin/x", "one:/usr/../x"),
                "expected image:/absolute/path",
            ),
        ];
        for (extra, want) in cases {
            let err = parse(&with_base(&extra)).expect_err(want);
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
        let no_base = MINIMAL.replace("base", "bottom") + BOOT;
        assert!(parse(&no_base).unwrap_err().contains("named \"base\""));
    }

    #[test]
    fn rel_paths_and_modes() {
        assert_eq!(rel_path("/usr//bin/").unwrap(), "usr/bin");
        assert!(rel_path("/").is_err());
        assert!(rel_path("/a/../b").is_err());
        assert_eq!(parse_mode("0640").unwrap(), 0o640);
        assert!(parse_mode("rw").is_err());
    }
}
