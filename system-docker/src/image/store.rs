//! The store itself: images by id and by tag, tagging, removal, layer lookup, and the
//! commit step that makes a staged load or pull visible (see the module doc for the layout).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::RegistryAuth;
use super::reference::{is_hex64, is_lower_hex, Reference};
use crate::fsutil::write_json_atomic;

/// What went wrong in an image operation.
#[derive(thiserror::Error, Debug)]
pub enum ImageError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),
    #[error("digest mismatch for {blob}: expected {expected}, got {actual}")]
    DigestMismatch {
        blob: String,
        expected: String,
        actual: String,
    },
    #[error("unsafe path in layer: {entry}: {reason}")]
    UnsafePath { entry: String, reason: String },
    #[error("{0}")]
    Registry(String),
    /// The registry has no such manifest (or repository): Docker answers 404 for it.
    #[error("{0}")]
    ManifestUnknown(String),
    /// The registry refused the credentials (`docker login`).
    #[error("{0}")]
    Unauthorized(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One line of `docker rmi` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A tag or digest reference, in familiar form (`busybox:latest`).
    Untagged(String),
    /// An image id or a layer diff id (`sha256:…`).
    Deleted(String),
}

/// An image as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `sha256:<hex of the config blob>`.
    pub id: String,
    /// Familiar form: `busybox:latest`, `localhost:5000/app:1`.
    pub repo_tags: Vec<String>,
    /// `busybox@sha256:…` when known (pull).
    pub repo_digests: Vec<String>,
    /// RFC 3339, from the config.
    pub created: Option<String>,
    /// Bytes of the unpacked layers.
    pub size: u64,
    /// The whole image config JSON as stored.
    pub config: Value,
    /// `rootfs.diff_ids` of the config, bottom layer first.
    pub diff_ids: Vec<String>,
    /// The image lives in a read-only store and cannot be removed.
    pub readonly: bool,
}

/// Tag and digest references → image id, as Docker keeps them in `repositories.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Repositories {
    #[serde(rename = "Repositories", default)]
    repos: BTreeMap<String, BTreeMap<String, String>>,
}

/// The key a reference has in [`Repositories`]: its familiar form, without the tag when it
/// has a digest.
pub(super) fn ref_key(r: &Reference) -> String {
    match r.digest() {
        Some(d) => r.with_digest(d).familiar(),
        None => r.familiar(),
    }
}

impl Repositories {
    fn read(path: &Path) -> Result<Repositories, ImageError> {
        match fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ImageError::Io {
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Repositories::default()),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    fn get(&self, key: &str) -> Option<&String> {
        let r = Reference::parse(key).ok()?;
        self.repos.get(&r.familiar_name())?.get(key)
    }

    pub(super) fn set(&mut self, r: &Reference, id: &str) -> Option<String> {
        self.repos
            .entry(r.familiar_name())
            .or_default()
            .insert(ref_key(r), id.to_string())
    }

    fn remove(&mut self, key: &str) -> Option<String> {
        let name = Reference::parse(key).ok()?.familiar_name();
        let m = self.repos.get_mut(&name)?;
        let old = m.remove(key);
        if m.is_empty() {
            self.repos.remove(&name);
        }
        old
    }

    fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.repos.values().flat_map(|m| m.iter())
    }
}

struct ReadonlyStore {
    root: PathBuf,
    repos: Repositories,
}

/// A reference as seen through all stores: its image id, and whether it comes from a
/// read-only store (not shadowed by the writable one).
type RefMap = BTreeMap<String, (String, bool)>;

/// How a name given to [`ImageStore::get`] matched.
enum Resolved {
    Id,
    Ref(String),
}

struct Inner {
    root: PathBuf,
    readonly: Vec<ReadonlyStore>,
    /// The writable store's references; held while anything in the store changes.
    repos: Mutex<Repositories>,
    /// Layers that imports in progress rely on without unpacking them: not removed meanwhile.
    pins: Mutex<HashMap<String, usize>>,
    insecure: RwLock<Vec<String>>,
}

/// The content-addressed image store. Cheap to clone; safe to use from several threads.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct LayerRecord {
    pub diff_id: String,
    pub size: u64,
}

/// `sha256:<hex>` → `<hex>`, checked.
pub(super) fn sha256_hex(digest: &str) -> Option<&str> {
    digest.strip_prefix("sha256:").filter(|h| is_hex64(h))
}

/// The `rootfs.diff_ids` of an image config, each checked to be `sha256:<64 hex>`.
pub(super) fn config_diff_ids(config: &Value, what: &str) -> Result<Vec<String>, ImageError> {
    let bad = |m: &str| ImageError::InvalidArchive(format!("{what}: {m}"));
    let rootfs = config
        .get("rootfs")
        .ok_or_else(|| bad("image config has no rootfs"))?;
    if let Some(t) = rootfs.get("type").and_then(Value::as_str) {
        if t != "layers" {
            return Err(bad(&format!("unsupported rootfs type {t:?}")));
        }
    }
    let ids = match rootfs.get("diff_ids") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("rootfs.diff_ids is not a list")),
    };
    ids.iter()
        .map(|d| match d.as_str() {
            Some(s) if sha256_hex(s).is_some() => Ok(s.to_string()),
            _ => Err(bad(&format!("invalid diff id {d}"))),
        })
        .collect()
}

pub(super) fn random_hex() -> String {
    crate::ids::new_id()[..16].to_string()
}

/// Whether `refs` (reference keys of one image) may all be removed by `docker rmi <id>`
/// without force: at most one tag, and digests only of that tag's repository (Docker's
/// `isSingleReference`).
fn is_single_reference(refs: &[String]) -> bool {
    if refs.len() <= 1 {
        return true;
    }
    let repo = |k: &str| Reference::parse(k).map(|r| r.familiar_name()).ok();
    let mut tag = None;
    let mut digest_repos = BTreeSet::new();
    for k in refs {
        if k.contains('@') {
            digest_repos.insert(repo(k));
        } else if tag.is_none() {
            tag = Some(k.as_str());
        } else {
            return false;
        }
    }
    let single = tag.unwrap_or(&refs[0]);
    digest_repos.len() == 1 && digest_repos.contains(&repo(single))
}

impl ImageStore {
    /// Opens (creating if needed) the writable store at `root`, plus read-only stores in the
    /// same format whose layers are used in place. Leftovers of interrupted work are cleaned.
    pub fn open(root: &Path, readonly: &[PathBuf]) -> Result<ImageStore, ImageError> {
        for d in ["configs/sha256", "layers/sha256", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let tmp = root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let p = e.map_err(io_err(&tmp))?.path();
            let r = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(io_err(&p))?;
        }
        let repos = Repositories::read(&root.join("repositories.json"))?;
        let mut ro = Vec::new();
        for r in readonly {
            if !r.join("configs/sha256").is_dir() {
                log::warn!(
                    "read-only image store {} is missing; ignoring it",
                    r.display()
                );
                continue;
            }
            ro.push(ReadonlyStore {
                root: r.clone(),
                repos: Repositories::read(&r.join("repositories.json"))?,
            });
        }
        let store = ImageStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                readonly: ro,
                repos: Mutex::new(repos),
                pins: Mutex::new(HashMap::new()),
                insecure: RwLock::new(Vec::new()),
            }),
        };
        store.collect_orphan_layers()?;
        Ok(store)
    }

    /// The writable store's directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Registries (`host[:port]`) reached over plain HTTP besides loopback ones.
    pub fn set_insecure_registries(&self, registries: Vec<String>) {
        *self
            .inner
            .insecure
            .write()
            .unwrap_or_else(|e| e.into_inner()) = registries;
    }

    pub(super) fn insecure_registries(&self) -> Vec<String> {
        self.inner
            .insecure
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn pins(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.inner.pins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps layer `hex` from being removed until [`ImageStore::unpin_layer`]; returns whether
    /// it is present. Checked under the same lock as removal, so a present layer stays.
    pub(super) fn pin_layer(&self, hex: &str) -> bool {
        let mut pins = self.pins();
        *pins.entry(hex.to_string()).or_default() += 1;
        self.layer_dir(hex).is_some()
    }

    pub(super) fn unpin_layer(&self, hex: &str) {
        let mut pins = self.pins();
        if let Some(n) = pins.get_mut(hex) {
            *n -= 1;
            if *n == 0 {
                pins.remove(hex);
            }
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Repositories> {
        self.inner.repos.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn configs_dir(root: &Path) -> PathBuf {
        root.join("configs/sha256")
    }

    pub(super) fn layers_dir(root: &Path) -> PathBuf {
        root.join("layers/sha256")
    }

    /// Where the config of image `hex` is, and whether that is a read-only store.
    pub(super) fn config_path(&self, hex: &str) -> Option<(PathBuf, bool)> {
        let p = Self::configs_dir(&self.inner.root).join(format!("{hex}.json"));
        if p.is_file() {
            return Some((p, false));
        }
        self.inner.readonly.iter().find_map(|s| {
            let p = Self::configs_dir(&s.root).join(format!("{hex}.json"));
            p.is_file().then_some((p, true))
        })
    }

    /// The directory of layer `hex`, from the writable store or a read-only one.
    pub(super) fn layer_dir(&self, hex: &str) -> Option<PathBuf> {
        std::iter::once(&self.inner.root)
            .chain(self.inner.readonly.iter().map(|s| &s.root))
            .map(|r| Self::layers_dir(r).join(hex))
            .find(|p| p.is_dir())
    }

    fn layer_size(&self, hex: &str) -> u64 {
        let Some(dir) = self.layer_dir(hex) else {
            return 0;
        };
        fs::read(dir.with_extension("json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<LayerRecord>(&b).ok())
            .map_or(0, |r| r.size)
    }

    /// Every image id (hex) of every store.
    fn all_ids(&self) -> Result<BTreeSet<String>, ImageError> {
        let mut ids = BTreeSet::new();
        let roots =
            std::iter::once(&self.inner.root).chain(self.inner.readonly.iter().map(|s| &s.root));
        for root in roots {
            let dir = Self::configs_dir(root);
            for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let name = e.map_err(io_err(&dir))?.file_name();
                if let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                    if is_hex64(hex) {
                        ids.insert(hex.to_string());
                    }
                }
            }
        }
        Ok(ids)
    }

    pub(super) fn refs(&self, repos: &Repositories) -> RefMap {
        let mut m = RefMap::new();
        for s in self.inner.readonly.iter().rev() {
            for (k, id) in s.repos.iter() {
                m.insert(k.clone(), (id.clone(), true));
            }
        }
        for (k, id) in repos.iter() {
            m.insert(k.clone(), (id.clone(), false));
        }
        m
    }

    fn read_config(&self, hex: &str) -> Result<(Vec<u8>, Value, bool), ImageError> {
        let (path, readonly) = self
            .config_path(hex)
            .ok_or_else(|| ImageError::NotFound(format!("sha256:{hex}")))?;
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let config = serde_json::from_slice(&bytes).map_err(|e| ImageError::Io {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        Ok((bytes, config, readonly))
    }

    fn read_image(&self, hex: &str, refs: &RefMap) -> Result<Image, ImageError> {
        let (_, config, readonly) = self.read_config(hex)?;
        let diff_ids = config_diff_ids(&config, &format!("image sha256:{hex}"))?;
        let id = format!("sha256:{hex}");
        let mut repo_tags = Vec::new();
        let mut repo_digests = Vec::new();
        for (k, (i, _)) in refs {
            if *i == id {
                if k.contains('@') {
                    repo_digests.push(k.clone());
                } else {
                    repo_tags.push(k.clone());
                }
            }
        }
        let size = diff_ids
            .iter()
            .filter_map(|d| sha256_hex(d))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|h| self.layer_size(h))
            .sum();
        Ok(Image {
            id,
            repo_tags,
            repo_digests,
            created: config
                .get("created")
                .and_then(Value::as_str)
                .map(str::to_string),
            size,
            config,
            diff_ids,
            readonly,
        })
    }

    /// The unique image id starting with `prefix`.
    fn search_id(&self, prefix: &str) -> Result<Option<String>, ImageError> {
        let mut found = self
            .all_ids()?
            .into_iter()
            .filter(|h| h.starts_with(prefix));
        match (found.next(), found.next()) {
            (Some(h), None) => Ok(Some(h)),
            _ => Ok(None),
        }
    }

    /// Docker's lookup order: a full id; a short id of 6+ hex digits; a tag or digest
    /// reference; any unambiguous id prefix.
    fn resolve(&self, s: &str, refs: &RefMap) -> Result<(String, Resolved), ImageError> {
        let not_found = || ImageError::NotFound(s.to_string());
        if let Some(hex) = s.strip_prefix("sha256:") {
            if !is_lower_hex(hex) {
                return Err(not_found());
            }
            return match self.search_id(hex)? {
                Some(h) => Ok((h, Resolved::Id)),
                None => Err(not_found()),
            };
        }
        if is_hex64(s) && self.config_path(s).is_some() {
            return Ok((s.to_string(), Resolved::Id));
        }
        if is_lower_hex(s) && s.len() >= 6 {
            if let Some(h) = self.search_id(s)? {
                return Ok((h, Resolved::Id));
            }
        }
        if let Ok(r) = Reference::parse(s) {
            let key = ref_key(&r.with_default_tag());
            if let Some((id, _)) = refs.get(&key) {
                if let Some(hex) = sha256_hex(id) {
                    if self.config_path(hex).is_some() {
                        return Ok((hex.to_string(), Resolved::Ref(key)));
                    }
                }
            }
        }
        if is_lower_hex(s) {
            if let Some(h) = self.search_id(s)? {
                return Ok((h, Resolved::Id));
            }
        }
        Err(not_found())
    }

    /// By tag (`busybox`, `busybox:1.36`, `docker.io/library/busybox:latest`,
    /// `localhost:5000/x:y`), by digest reference, by id `sha256:<hex>`, `<hex>` or an
    /// unambiguous id prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Image, ImageError> {
        let refs = self.refs(&self.lock());
        let (hex, _) = self.resolve(name_or_id, &refs)?;
        self.read_image(&hex, &refs)
    }

    /// Every image of every store, newest first.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let refs = self.refs(&self.lock());
        let mut out = Vec::new();
        for hex in self.all_ids()? {
            match self.read_image(&hex, &refs) {
                Ok(i) => out.push(i),
                // Removed while listing.
                Err(ImageError::NotFound(_)) => {}
                Err(e) => log::warn!("skipping image sha256:{hex}: {e}"),
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    pub(super) fn save(&self, repos: &Repositories) -> Result<(), ImageError> {
        let p = self.inner.root.join("repositories.json");
        write_json_atomic(&p, repos).map_err(io_err(&p))
    }

    /// `docker tag SOURCE TARGET[:TAG]`; the tag defaults to `latest` and may move.
    pub fn tag(&self, source: &str, target: &str) -> Result<(), ImageError> {
        let r = Reference::parse(target)?;
        if r.digest().is_some() {
            return Err(ImageError::InvalidReference(format!(
                "refusing to create a tag with a digest reference: {target}"
            )));
        }
        let r = r.with_default_tag();
        let mut repos = self.lock();
        let (hex, _) = self.resolve(source, &self.refs(&repos))?;
        let mut new = repos.clone();
        new.set(&r, &format!("sha256:{hex}"));
        self.save(&new)?;
        *repos = new;
        Ok(())
    }

    /// `docker rmi`, following Docker's rules: a tag or digest reference is untagged, and the
    /// image deleted once nothing refers to it; an id deletes the image with all its
    /// references (several repositories need `force`). An image used by a container
    /// (`in_use(id)`) is never deleted: untagging its last reference needs `force` and leaves
    /// it dangling. Read-only images and their tags cannot be removed.
    pub fn remove(
        &self,
        name_or_id: &str,
        force: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Removed>, ImageError> {
        let mut repos = self.lock();
        let refs = self.refs(&repos);
        let (hex, how) = self.resolve(name_or_id, &refs)?;
        let id = format!("sha256:{hex}");
        let short = &hex[..12];
        let readonly = self.config_path(&hex).is_some_and(|(_, ro)| ro);
        let image_refs: Vec<String> = refs
            .iter()
            .filter(|(_, (i, _))| *i == id)
            .map(|(k, _)| k.clone())
            .collect();
        let mut new = repos.clone();
        let mut out = Vec::new();
        match how {
            Resolved::Ref(key) => {
                if refs.get(&key).is_some_and(|(_, ro)| *ro) {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name_or_id}\" \
                         - it belongs to a read-only image store"
                    )));
                }
                if !force && image_refs.len() == 1 && in_use(&id) {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name_or_id}\" \
                         (must force) - a container is using its referenced image {short}"
                    )));
                }
                new.remove(&key);
                out.push(Removed::Untagged(key.clone()));
                let mut remaining: Vec<&String> =
                    image_refs.iter().filter(|k| **k != key).collect();
                if !key.contains('@') {
                    // Digest references of a repository go with its last tag.
                    let repo = Reference::parse(&key).map(|r| r.familiar_name()).ok();
                    let same_repo =
                        |k: &str| Reference::parse(k).map(|r| r.familiar_name()).ok() == repo;
                    let tag_left = remaining.iter().any(|k| !k.contains('@') && same_repo(k));
                    if !tag_left {
                        remaining.retain(|k| {
                            let drop = k.contains('@')
                                && same_repo(k)
                                && !refs.get(*k).is_some_and(|(_, ro)| *ro);
                            if drop {
                                new.remove(k);
                                out.push(Removed::Untagged((*k).clone()));
                            }
                            !drop
                        });
                    }
                }
                if !remaining.is_empty() || readonly || in_use(&id) {
                    self.save(&new)?;
                    *repos = new;
                    return Ok(out);
                }
            }
            Resolved::Id => {
                if readonly {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to delete {short} - image is in a read-only image store"
                    )));
                }
                if in_use(&id) {
                    let how = if force {
                        "cannot be forced"
                    } else {
                        "must be forced"
                    };
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to delete {short} ({how}) - image is being used by a container"
                    )));
                }
                if !force && !is_single_reference(&image_refs) {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to delete {short} (must be forced) - image is \
                         referenced in multiple repositories"
                    )));
                }
                for k in &image_refs {
                    if refs.get(k).is_some_and(|(_, ro)| *ro) {
                        return Err(ImageError::Conflict(format!(
                            "conflict: unable to delete {short} - its reference {k} belongs \
                             to a read-only image store"
                        )));
                    }
                    new.remove(k);
                    out.push(Removed::Untagged(k.clone()));
                }
            }
        }
        self.save(&new)?;
        *repos = new;
        out.extend(self.delete_image(&hex)?);
        Ok(out)
    }

    /// Deletes the config of writable image `hex` and its layers no other image uses.
    /// Called with the store lock held.
    fn delete_image(&self, hex: &str) -> Result<Vec<Removed>, ImageError> {
        let (_, config, _) = self.read_config(hex)?;
        let diff_ids = config_diff_ids(&config, &format!("image sha256:{hex}"))?;
        let cfg = Self::configs_dir(&self.inner.root).join(format!("{hex}.json"));
        fs::remove_file(&cfg).map_err(io_err(&cfg))?;
        let mut out = vec![Removed::Deleted(format!("sha256:{hex}"))];
        let used = self.used_layers()?;
        let mut seen = BTreeSet::new();
        for d in diff_ids.iter().rev() {
            let Some(h) = sha256_hex(d) else { continue };
            if used.contains(h) || !seen.insert(h) {
                continue;
            }
            let pins = self.pins();
            if pins.contains_key(h) {
                continue;
            }
            if self.remove_layer(h)? {
                out.push(Removed::Deleted(d.clone()));
            }
        }
        Ok(out)
    }

    /// Diff ids (hex) used by any image of any store.
    fn used_layers(&self) -> Result<BTreeSet<String>, ImageError> {
        let mut used = BTreeSet::new();
        for hex in self.all_ids()? {
            let (_, config, _) = self.read_config(&hex)?;
            for d in config_diff_ids(&config, &format!("image sha256:{hex}"))? {
                if let Some(h) = sha256_hex(&d) {
                    used.insert(h.to_string());
                }
            }
        }
        Ok(used)
    }

    /// Removes writable layer `hex`: renamed into `tmp/` first, so that it disappears at once
    /// and a crash leaves at most garbage in `tmp/`.
    fn remove_layer(&self, hex: &str) -> Result<bool, ImageError> {
        let dir = Self::layers_dir(&self.inner.root).join(hex);
        let record = dir.with_extension("json");
        let trash = self
            .inner
            .root
            .join("tmp")
            .join(format!("rm-{}", random_hex()));
        let existed = match fs::rename(&dir, &trash) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err(&dir)(e)),
        };
        match fs::remove_file(&record) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&record)(e)),
        }
        if existed {
            if let Err(e) = fs::remove_dir_all(&trash) {
                log::warn!("cannot delete {}: {e}", trash.display());
            }
        }
        Ok(existed)
    }

    /// Deletes writable layers no image uses: left behind by a crash between the steps of a
    /// commit or a removal.
    fn collect_orphan_layers(&self) -> Result<(), ImageError> {
        let _guard = self.lock();
        let used = self.used_layers()?;
        let dir = Self::layers_dir(&self.inner.root);
        let mut orphans = BTreeSet::new();
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let name = e.map_err(io_err(&dir))?.file_name();
            let Some(name) = name.to_str() else { continue };
            let hex = name.strip_suffix(".json").unwrap_or(name);
            if is_hex64(hex) && !used.contains(hex) {
                orphans.insert(hex.to_string());
            }
        }
        for h in orphans {
            log::info!("removing unused layer sha256:{h}");
            self.remove_layer(&h)?;
        }
        Ok(())
    }

    /// Overlay lower dirs of `image`, top-most layer first (overlayfs `lowerdir=` order).
    /// A layer that appears twice is given once, at its top-most place: the lower copy can
    /// never show through the upper one.
    pub fn layer_paths(&self, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for d in image.diff_ids.iter().rev() {
            let hex = sha256_hex(d).ok_or_else(|| {
                ImageError::InvalidArchive(format!("image {}: invalid diff id {d}", image.id))
            })?;
            if !seen.insert(hex) {
                continue;
            }
            let dir = self
                .layer_dir(hex)
                .ok_or_else(|| ImageError::NotFound(format!("layer {d} of image {}", image.id)))?;
            out.push(dir);
        }
        Ok(out)
    }

    pub(super) fn exists(&self, id: &str) -> bool {
        sha256_hex(id).is_some_and(|h| self.config_path(h).is_some())
    }

    /// Whether image `hex` is already in some store.
    pub(super) fn has_image(&self, hex: &str) -> bool {
        self.config_path(hex).is_some()
    }

    /// The image `hex` with its current references.
    pub(super) fn image_by_hex(&self, hex: &str) -> Result<Image, ImageError> {
        let refs = self.refs(&self.lock());
        self.read_image(hex, &refs)
    }

    /// The id a reference key points to, if any.
    pub(super) fn lookup_ref(&self, r: &Reference) -> Option<String> {
        let repos = self.lock();
        let key = ref_key(r);
        repos.get(&key).cloned().or_else(|| {
            self.inner
                .readonly
                .iter()
                .find_map(|s| s.repos.get(&key).cloned())
        })
    }

    /// Pulls `reference` over the registry HTTP API v2; see [`super::registry`].
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<RegistryAuth>,
        progress: &mut (dyn FnMut(Value) + Send),
    ) -> Result<Image, ImageError> {
        super::registry::pull(self, reference, auth, progress).await
    }

    /// `docker login`: checks `auth` against the registry `server` (`host[:port]` or a URL).
    pub async fn login(&self, server: &str, auth: RegistryAuth) -> Result<(), ImageError> {
        super::registry::login(self, server, auth).await
    }

    /// Imports a `docker save` tarball or an OCI image archive (or layout directory); returns
    /// the lines `docker load` prints. See [`super::load`].
    pub fn load(&self, archive: &Path) -> Result<Vec<String>, ImageError> {
        super::load::load(self, archive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_reference_rule() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(is_single_reference(&s(&[])));
        assert!(is_single_reference(&s(&["a:1"])));
        assert!(!is_single_reference(&s(&["a:1", "a:2"])));
        assert!(is_single_reference(&s(&["a:1", &format!("a@{d}")])));
        assert!(!is_single_reference(&s(&["a:1", &format!("b@{d}")])));
    }
}
