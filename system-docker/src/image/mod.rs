//! The image store: content-addressed images, `docker load`, `docker pull`, tags.
//!
//! It owns how images are kept on disk and how they get there: importing `docker save`
//! tarballs and OCI archives ([`ImageStore::load`]), pulling over the registry HTTP API v2
//! ([`ImageStore::pull`]), tagging and removing. It does not mount anything: the runtime gets
//! the unpacked layers from [`ImageStore::layer_paths`] and stacks them with overlayfs.
//!
//! # On-disk format
//!
//! The writable store (`<data-root>/image`) and every read-only store (e.g. a squashfs shipped
//! with the OS) share one layout:
//!
//! ```text
//! configs/sha256/<hex>.json       the image config blob, byte for byte; <hex> is its sha256,
//!                                 which is the image id ("sha256:<hex>")
//! layers/sha256/<diffid-hex>/     one unpacked layer, keyed by its diff id (the sha256 of the
//!                                 uncompressed layer tar), in overlayfs form: a whiteout
//!                                 `.wh.NAME` is a char device 0:0 named NAME, an opaque
//!                                 directory (`.wh..wh..opq`) has the xattr
//!                                 `trusted.overlay.opaque=y`; owners, modes, mtimes and
//!                                 xattrs are those of the tar entries
//! layers/sha256/<diffid-hex>.json {"diff_id": "sha256:<hex>", "size": <bytes of the files>}
//! repositories.json               {"Repositories": {"busybox": {"busybox:latest": "sha256:<id>",
//!                                 "busybox@sha256:<manifest digest>": "sha256:<id>"}}}
//!                                 keyed by familiar names, as Docker's own file
//! tmp/                            work in progress (writable store only); emptied at open
//! ```
//!
//! An image exists when its config exists; its layers are the config's `rootfs.diff_ids`, each
//! looked up in the writable store and then in the read-only ones. A layer directory is made in
//! `tmp/`, checked against its diff id and only then renamed into `layers/`; configs, layer
//! records and `repositories.json` are written atomically (temporary file + rename). A load or
//! pull stages everything first and commits under the store lock, undoing its own renames if the
//! commit fails, so a failed import leaves the store as it was. Layers are shared between
//! images; one is deleted when the last image using it is removed (unless an import in progress
//! counts on it). Layer tars may not set `trusted.overlay.*` xattrs themselves: overlayfs would
//! act on them.
//!
//! Tags in the writable store shadow tags of the same name in read-only stores. Images of a
//! read-only store are listed and run like the others, but cannot be removed. One is made by
//! loading images into a store in an empty directory, as root, and packing that directory
//! without `tmp/` into a filesystem that keeps device nodes, owners and `trusted.*` xattrs
//! (squashfs does).

mod auth;
mod commit;
mod extract;
mod load;
pub mod reference;
mod registry;
mod store;

pub use auth::RegistryAuth;
pub use store::{Image, ImageError, ImageStore, Removed};

#[cfg(test)]
mod registry_tests;
#[cfg(test)]
mod safety_tests;
#[cfg(test)]
mod tests;
