//! Images built with the real tools (xorriso, dosfstools, mtools), read back; malformed
//! images must give errors, never panics. A missing tool fails the test with its name.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{FsImageError, Image, MAX_FILE_SIZE};

const USER_DATA: &[u8] = b"#cloud-config\nhostname: seeded\n";
/// What provides the tools these tests build images with.
const INSTALL: &str = "apt-get install -y xorriso mtools dosfstools util-linux";
const META_DATA: &[u8] = b"instance-id: iid-local01\nlocal-hostname: seeded\n";

fn run(tool: &str, args: &[&str], dir: &Path) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("{tool} is needed by this test ({e}); {INSTALL}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn blkid_label(img: &Path) -> String {
    let out = Command::new("blkid")
        .args(["-p", "-s", "LABEL", "-o", "value"])
        .arg(img)
        .output()
        .unwrap_or_else(|e| panic!("blkid is needed by this test ({e}); {INSTALL}"));
    String::from_utf8_lossy(&out.stdout)
        .trim_end_matches('\n')
        .to_owned()
}

/// Several KiB, not a repeating pattern, so misplaced sectors or clusters show.
fn big_file(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A seed tree in `dir/tree`: user-data, meta-data, network-config, a nested OpenStack
/// layout, a long name and a big file.
fn seed_tree(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    let latest = tree.join("openstack/latest");
    std::fs::create_dir_all(&latest).unwrap();
    std::fs::write(tree.join("user-data"), USER_DATA).unwrap();
    std::fs::write(tree.join("meta-data"), META_DATA).unwrap();
    std::fs::write(tree.join("network-config"), b"version: 2\n").unwrap();
    std::fs::write(latest.join("meta_data.json"), br#"{"uuid": "x"}"#).unwrap();
    std::fs::write(tree.join("big.bin"), big_file(300_000)).unwrap();
    tree
}

fn iso(dir: &Path, flags: &[&str], label: &str) -> PathBuf {
    let tree = seed_tree(dir);
    let img = dir.join("seed.iso");
    let mut args = vec!["-as", "mkisofs", "-o", img.to_str().unwrap(), "-V", label];
    args.extend_from_slice(flags);
    args.push(tree.to_str().unwrap());
    run("xorriso", &args, dir);
    img
}

fn open(img: &Path) -> Image {
    Image::open(img).unwrap_or_else(|e| panic!("{}: {e}", img.display()))
}

#[test]
fn iso_joliet_and_rock_ridge() {
    // xorriso writes Rock Ridge unless told `--norock`.
    for flags in [&["-J", "-R"][..], &["-R"], &["-J", "--norock"]] {
        let dir = tempfile::tempdir().unwrap();
        let img = iso(dir.path(), flags, "cidata");
        let mut image = open(&img);
        assert_eq!(image.fs_type(), "iso9660");
        assert_eq!(image.label(), "cidata");
        assert_eq!(image.label(), blkid_label(&img), "{flags:?}");
        assert_eq!(
            image.read("user-data").unwrap().as_deref(),
            Some(USER_DATA),
            "{flags:?}"
        );
        assert_eq!(
            image.read("/meta-data").unwrap().as_deref(),
            Some(META_DATA)
        );
        assert_eq!(
            image
                .read("openstack/latest/meta_data.json")
                .unwrap()
                .unwrap(),
            br#"{"uuid": "x"}"#
        );
        assert_eq!(image.read("big.bin").unwrap().unwrap(), big_file(300_000));
        let mut names = image.list("/").unwrap().unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "big.bin",
                "meta-data",
                "network-config",
                "openstack",
                "user-data"
            ],
            "{flags:?}"
        );
        assert_eq!(image.list("openstack").unwrap().unwrap(), ["latest"]);
        assert_eq!(image.read("vendor-data").unwrap(), None);
        assert_eq!(image.read("nope/user-data").unwrap(), None);
        assert_eq!(image.read("user-data/x").unwrap(), None);
        assert_eq!(image.read("openstack").unwrap(), None);
        assert_eq!(image.list("user-data").unwrap(), None);
    }
}

#[test]
fn iso_plain_names() {
    for level in ["1", "2"] {
        let dir = tempfile::tempdir().unwrap();
        let img = iso(dir.path(), &["--norock", "-iso-level", level], "config-2");
        let mut image = open(&img);
        assert_eq!(image.label(), "config-2");
        assert_eq!(image.label(), blkid_label(&img));
        let names = image.list("").unwrap().unwrap();
        assert!(names.iter().all(|n| !n.contains(';')), "{names:?}");
        // Found under the name mkisofs made of it, with and without the version and dot.
        let user = names
            .iter()
            .find(|n| n.starts_with("USER"))
            .unwrap()
            .clone();
        for query in [
            user.clone(),
            format!("{user}.;1"),
            format!("{user}."),
            user.to_lowercase(),
        ] {
            assert_eq!(
                image.read(&query).unwrap().as_deref(),
                Some(USER_DATA),
                "{query}"
            );
        }
        // And under its real name: plain names are mangled predictably.
        assert_eq!(
            image.read("user-data").unwrap().as_deref(),
            Some(USER_DATA),
            "level {level}"
        );
        assert_eq!(
            image
                .read("openstack/latest/meta_data.json")
                .unwrap()
                .unwrap(),
            br#"{"uuid": "x"}"#
        );
        assert_eq!(image.read("big.bin").unwrap().unwrap(), big_file(300_000));
    }
}

fn vfat(dir: &Path, mkfs: &[&str], kib: &str) -> PathBuf {
    let img = dir.join("img.vfat");
    let mut args = mkfs.to_vec();
    args.extend_from_slice(&["-C", img.to_str().unwrap(), kib]);
    run("mkfs.vfat", &args, dir);
    let i = img.to_str().unwrap();
    std::fs::write(dir.join("user-data"), USER_DATA).unwrap();
    std::fs::write(dir.join("meta-data"), META_DATA).unwrap();
    std::fs::write(dir.join("meta_data.json"), br#"{"uuid": "x"}"#).unwrap();
    std::fs::write(dir.join("big.bin"), big_file(300_000)).unwrap();
    run(
        "mcopy",
        &["-i", i, "user-data", "meta-data", "big.bin", "::"],
        dir,
    );
    run("mmd", &["-i", i, "::openstack", "::openstack/latest"], dir);
    run(
        "mcopy",
        &[
            "-i",
            i,
            "meta_data.json",
            "::openstack/latest/meta_data.json",
        ],
        dir,
    );
    run(
        "mcopy",
        &["-i", i, "user-data", "::A rather long file name.txt"],
        dir,
    );
    run("mcopy", &["-i", i, "user-data", "::SHORT.TXT"], dir);
    img
}

fn check_vfat(img: &Path, label: &str) {
    let mut image = open(img);
    assert_eq!(image.fs_type(), "vfat");
    assert_eq!(image.label(), label);
    assert_eq!(image.label(), blkid_label(img));
    assert_eq!(image.read("user-data").unwrap().as_deref(), Some(USER_DATA));
    assert_eq!(
        image.read("/meta-data").unwrap().as_deref(),
        Some(META_DATA)
    );
    assert_eq!(
        image
            .read("openstack/latest/meta_data.json")
            .unwrap()
            .unwrap(),
        br#"{"uuid": "x"}"#
    );
    assert_eq!(
        image
            .read("OPENSTACK/Latest/META_DATA.JSON")
            .unwrap()
            .unwrap(),
        br#"{"uuid": "x"}"#
    );
    assert_eq!(
        image
            .read("A rather long file name.txt")
            .unwrap()
            .as_deref(),
        Some(USER_DATA)
    );
    assert_eq!(image.read("short.txt").unwrap().as_deref(), Some(USER_DATA));
    assert_eq!(image.read("big.bin").unwrap().unwrap(), big_file(300_000));
    assert_eq!(image.read("missing").unwrap(), None);
    let mut names = image.list("/").unwrap().unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "A rather long file name.txt",
            "SHORT.TXT",
            "big.bin",
            "meta-data",
            "openstack",
            "user-data"
        ]
    );
    assert_eq!(
        image.list("openstack/latest").unwrap().unwrap(),
        ["meta_data.json"]
    );
}

#[test]
fn fat12() {
    let dir = tempfile::tempdir().unwrap();
    let img = vfat(dir.path(), &["-n", "CIDATA"], "2048");
    check_vfat(&img, "CIDATA");
}

#[test]
fn fat16() {
    let dir = tempfile::tempdir().unwrap();
    let img = vfat(dir.path(), &["-F", "16", "-n", "CONFIG-2"], "32768");
    check_vfat(&img, "CONFIG-2");
}

#[test]
fn fat32() {
    let dir = tempfile::tempdir().unwrap();
    let img = vfat(
        dir.path(),
        &["-F", "32", "-s", "1", "-n", "CIDATA"],
        "65536",
    );
    check_vfat(&img, "CIDATA");
}

#[test]
fn fat_label_root_entry_wins_over_boot_sector() {
    let dir = tempfile::tempdir().unwrap();
    let img = vfat(dir.path(), &["-n", "CIDATA"], "2048");
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[43..54].copy_from_slice(b"BOOTLABEL  ");
    std::fs::write(&img, &bytes).unwrap();
    assert_eq!(open(&img).label(), "CIDATA");
    assert_eq!(blkid_label(&img), "CIDATA");

    // Without a root entry the boot sector's label is used; blkid shows it only as
    // LABEL_FATBOOT, but a seed labelled there is still a seed.
    let (_, root, _, _) = fat_layout(&bytes);
    assert_eq!(&bytes[root..root + 12], b"CIDATA     \x08");
    bytes[root] = 0xE5;
    std::fs::write(&img, &bytes).unwrap();
    assert_eq!(open(&img).label(), "BOOTLABEL");
    assert_eq!(blkid_label(&img), "");
}

fn err(bytes: Vec<u8>) -> FsImageError {
    match Image::from_reader(Box::new(Cursor::new(bytes))) {
        Ok(i) => panic!("{i:?} opened"),
        Err(e) => e,
    }
}

#[test]
fn unrecognized_and_truncated() {
    assert!(matches!(
        err(big_file(100_000)),
        FsImageError::NotRecognized { .. }
    ));
    assert!(matches!(
        err(Vec::new()),
        FsImageError::NotRecognized { .. }
    ));
    let dir = tempfile::tempdir().unwrap();
    let iso = std::fs::read(iso(dir.path(), &["-J", "-R"], "cidata")).unwrap();
    for cut in [40_000, iso.len() / 2, iso.len() - 1] {
        let e = err(iso[..cut].to_vec());
        assert!(matches!(e, FsImageError::Corrupt { .. }), "{cut}: {e}");
    }
    let fat = std::fs::read(vfat(dir.path(), &["-n", "CIDATA"], "2048")).unwrap();
    for cut in [600, 8192, fat.len() - 1] {
        let e = err(fat[..cut].to_vec());
        assert!(matches!(e, FsImageError::Corrupt { .. }), "{cut}: {e}");
    }
}

/// Boot sector fields the tests poke at.
fn fat_layout(b: &[u8]) -> (usize, usize, usize, usize) {
    let bps = usize::from(u16::from_le_bytes([b[11], b[12]]));
    let spc = usize::from(b[13]);
    let reserved = usize::from(u16::from_le_bytes([b[14], b[15]]));
    let fat_sectors = usize::from(u16::from_le_bytes([b[22], b[23]]));
    let root_entries = usize::from(u16::from_le_bytes([b[17], b[18]]));
    let fat = reserved * bps;
    let root = fat + usize::from(b[16]) * fat_sectors * bps;
    (fat, root, root + root_entries * 32, spc * bps)
}

/// The first cluster of the root entry whose 8.3 name starts with `prefix`.
fn first_cluster(b: &[u8], root: usize, prefix: &[u8]) -> usize {
    let e = b[root..]
        .chunks(32)
        .find(|e| e.starts_with(prefix) && e[11] != 0x0F)
        .unwrap();
    usize::from(u16::from_le_bytes([e[26], e[27]]))
}

#[test]
fn fat_chain_loops() {
    let dir = tempfile::tempdir().unwrap();
    let img = vfat(dir.path(), &["-F", "16", "-n", "CIDATA"], "32768");
    let pristine = std::fs::read(img).unwrap();
    let (fat, root, _, _) = fat_layout(&pristine);

    // The big file's second cluster points back at its first.
    let mut bytes = pristine.clone();
    let c = first_cluster(&bytes, root, b"BIG");
    let next = usize::from(u16::from_le_bytes([
        bytes[fat + 2 * c],
        bytes[fat + 2 * c + 1],
    ]));
    bytes[fat + 2 * next..fat + 2 * next + 2].copy_from_slice(&(c as u16).to_le_bytes());
    let mut image = Image::from_reader(Box::new(Cursor::new(bytes))).unwrap();
    let e = image.read("big.bin").unwrap_err();
    assert!(e.to_string().contains("loops"), "{e}");

    // A directory whose only cluster points at itself.
    let mut bytes = pristine.clone();
    let c = first_cluster(&bytes, root, b"OPENST~1");
    bytes[fat + 2 * c..fat + 2 * c + 2].copy_from_slice(&(c as u16).to_le_bytes());
    let mut image = Image::from_reader(Box::new(Cursor::new(bytes))).unwrap();
    let e = image.list("openstack").unwrap_err();
    assert!(e.to_string().contains("loops"), "{e}");

    // A chain that ends before the file does.
    let mut bytes = pristine;
    let c = first_cluster(&bytes, root, b"BIG");
    bytes[fat + 2 * c..fat + 2 * c + 2].copy_from_slice(&0xFFFF_u16.to_le_bytes());
    let mut image = Image::from_reader(Box::new(Cursor::new(bytes))).unwrap();
    assert!(matches!(
        image.read("big.bin"),
        Err(FsImageError::Corrupt { .. })
    ));
}

#[test]
fn iso_record_past_sector() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..100 {
        std::fs::write(tree.join(format!("file{i:03}")), b"x").unwrap();
    }
    let img = dir.path().join("many.iso");
    let args = [
        "-as",
        "mkisofs",
        "--norock",
        "-o",
        img.to_str().unwrap(),
        tree.to_str().unwrap(),
    ];
    run("xorriso", &args, dir.path());
    let mut bytes = std::fs::read(&img).unwrap();
    let pvd = 16 * 2048;
    let root = u32::from_le_bytes(bytes[pvd + 158..pvd + 162].try_into().unwrap()) as usize * 2048;
    // The last record in the root's first sector is made to run past it.
    let mut pos = 0;
    let mut last = 0;
    while pos < 2048 && bytes[root + pos] != 0 {
        last = pos;
        pos += usize::from(bytes[root + pos]);
    }
    bytes[root + last] = u8::try_from(2048 - last + 1).unwrap();
    let mut image = Image::from_reader(Box::new(Cursor::new(bytes))).unwrap();
    let e = image.list("/").unwrap_err();
    assert!(e.to_string().contains("past its sector"), "{e}");
}

#[test]
fn too_large() {
    let dir = tempfile::tempdir().unwrap();
    let img = vfat(dir.path(), &["-n", "CIDATA"], "2048");
    let mut bytes = std::fs::read(img).unwrap();
    let (_, root, _, _) = fat_layout(&bytes);
    let e = root
        + bytes[root..]
            .chunks(32)
            .position(|e| e.starts_with(b"BIG"))
            .unwrap()
            * 32;
    bytes[e + 28..e + 32].copy_from_slice(&(MAX_FILE_SIZE as u32 + 1).to_le_bytes());
    let mut image = Image::from_reader(Box::new(Cursor::new(bytes))).unwrap();
    assert!(matches!(
        image.read("big.bin"),
        Err(FsImageError::TooLarge { .. })
    ));
}

/// Opens, lists and reads everything it can; errors are fine, panics and hangs are not.
/// Whether the image opened.
fn exercise(bytes: Vec<u8>) -> bool {
    let Ok(mut image) = Image::from_reader(Box::new(Cursor::new(bytes))) else {
        return false;
    };
    let mut dirs = vec![String::new()];
    let mut visited = 0;
    while let Some(dir) = dirs.pop() {
        visited += 1;
        if visited > 50 {
            break;
        }
        let Ok(Some(names)) = image.list(&dir) else {
            continue;
        };
        for name in names.into_iter().take(50) {
            let path = format!("{dir}/{name}");
            if let Ok(None) = image.read(&path) {
                if path.matches('/').count() < 6 {
                    dirs.push(path);
                }
            }
        }
    }
    true
}

#[test]
fn mutated_images_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let iso_rr = std::fs::read(iso(dir.path(), &["-J", "-R"], "cidata")).unwrap();
    let joliet = std::fs::read(iso(dir.path(), &["-J", "--norock"], "cidata")).unwrap();
    let fat12 = std::fs::read(vfat(dir.path(), &["-n", "CIDATA"], "2048")).unwrap();
    let (_, _, fat_data, _) = fat_layout(&fat12);
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Flips land in the metadata: descriptors and directories, boot sector, FATs and root.
    for (image, meta) in [
        (&iso_rr, 40 * 2048),
        (&joliet, 40 * 2048),
        (&fat12, fat_data + 4096),
    ] {
        let mut opened = 0;
        for round in 0..400 {
            let mut bytes = image.clone();
            for _ in 0..1 + rand() % 16 {
                let at = (rand() % meta as u64) as usize;
                bytes[at] ^= 1 << (rand() % 8);
            }
            if round % 10 == 0 {
                bytes.truncate((rand() % bytes.len() as u64) as usize);
            }
            opened += usize::from(exercise(bytes));
        }
        // Most mutations must get past recognition, or the parsers are not being exercised.
        assert!(opened > 100, "only {opened} of 400 mutated images opened");
    }
}

/// A 240-character name does not fit a directory record: xorriso splits it over several
/// `NM` entries (CONTINUE flag), part of them in a SUSP `CE` continuation area.
#[test]
fn iso_rock_ridge_long_name() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let long = format!("user-data-{}", "n".repeat(230));
    std::fs::write(tree.join(&long), USER_DATA).unwrap();
    std::fs::write(tree.join("meta-data"), META_DATA).unwrap();
    let img = dir.path().join("long.iso");
    run(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-R",
            "-o",
            img.to_str().unwrap(),
            tree.to_str().unwrap(),
        ],
        dir.path(),
    );
    let bytes = std::fs::read(&img).unwrap();
    assert!(
        bytes.windows(4).any(|w| w == b"CE\x1c\x01"),
        "no CE entry to test"
    );
    let mut image = open(&img);
    let mut names = image.list("").unwrap().unwrap();
    names.sort();
    assert_eq!(names, ["meta-data".to_owned(), long.clone()]);
    assert_eq!(image.read(&long).unwrap().as_deref(), Some(USER_DATA));
    assert_eq!(image.read("meta-data").unwrap().as_deref(), Some(META_DATA));
}

#[test]
fn iso_versions_stripped() {
    use super::strip_version;
    assert_eq!(strip_version("USER_DAT.;1"), "USER_DAT");
    assert_eq!(strip_version("USER_DAT."), "USER_DAT");
    assert_eq!(strip_version("META.JSO;12"), "META.JSO");
    assert_eq!(strip_version("a;b"), "a;b");
    assert_eq!(strip_version("."), ".");
    assert_eq!(strip_version(";1"), "");
}
