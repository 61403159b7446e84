//! Disk tests on image files: the formats are made by the real tools (mkfs.*, xorriso,
//! mksquashfs) and the GPT is checked by sfdisk and blkid, so a wrong offset fails here.
//! Missing tools skip with a loud `SKIP:` line; the loop device tests need root.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

const DISK_GUID: [u8; 16] = [
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x47, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF,
];
const PART_GUID: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0x4C, 0xDE, 0x8F, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD,
];
const EXT_UUID: &str = "5f1c0d2e-7a3b-4c9d-8e1f-203040506070";

/// The path of `name` in PATH or the sbin directories, or `None` after printing why the
/// caller skips.
fn tool(name: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("SKIP: {test}: `{name}` is not installed");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sparse(path: &Path, size: u64) {
    File::create(path).unwrap().set_len(size).unwrap();
}

fn probe_file(path: &Path) -> Option<Probe> {
    probe(&mut File::open(path).unwrap())
}

/// What blkid reports for an image file, when blkid is there, as a second opinion.
fn blkid(path: &Path) -> Option<HashMap<String, String>> {
    let bin = tool("blkid", "blkid cross-check")?;
    let out = Command::new(bin)
        .arg("-p")
        .arg("-o")
        .arg("export")
        .arg(path)
        .output()
        .ok()?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn assert_blkid_agrees(path: &Path, p: &Probe) {
    let Some(b) = blkid(path) else { return };
    assert_eq!(
        b.get("LABEL"),
        p.label.as_ref(),
        "label vs blkid for {}",
        p.fs
    );
    assert_eq!(b.get("UUID"), p.uuid.as_ref(), "uuid vs blkid for {}", p.fs);
}

fn mkfs_ext4(path: &Path, label: &str, extra: &[&str], size: &str) -> bool {
    let Some(bin) = tool("mkfs.ext4", "ext4 image") else {
        return false;
    };
    run(Command::new(bin)
        .args(["-q", "-F", "-L", label, "-U", EXT_UUID])
        .args(extra)
        .arg(path)
        .arg(size));
    true
}

// ---- GPT ----

#[test]
fn gpt_on_a_sparse_file_passes_sfdisk() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    sparse(&img, 64 << 20);
    let start = write_single_partition_gpt(&img, "ROS_STATE", DISK_GUID, PART_GUID).unwrap();
    assert_eq!(start, 2048);
    assert_eq!(
        fs::metadata(&img).unwrap().len(),
        64 << 20,
        "the file keeps its size"
    );

    // Our own reader agrees.
    let parts = gpt_partitions(&mut File::open(&img).unwrap());
    assert_eq!(parts.len(), 1);
    assert_eq!((parts[0].index, parts[0].name.as_str()), (1, "ROS_STATE"));
    assert_eq!(parts[0].type_guid, LINUX_FS_TYPE);
    assert_eq!(parts[0].part_guid, PART_GUID);
    assert_eq!(
        (parts[0].first_lba, parts[0].last_lba),
        (2048, 63 * 2048 - 1)
    );

    let Some(sfdisk) = tool("sfdisk", "gpt_on_a_sparse_file_passes_sfdisk") else {
        return;
    };
    let json: serde_json::Value =
        serde_json::from_str(&run(Command::new(&sfdisk).arg("--json").arg(&img))).unwrap();
    let table = &json["partitiontable"];
    assert_eq!(table["label"], "gpt");
    assert_eq!(table["id"], format_guid(&DISK_GUID).to_uppercase());
    assert_eq!(table["sectorsize"], 512);
    // Usable LBAs: after the 33 sectors of MBR + header + entries, before the backup's 33.
    assert_eq!(table["firstlba"], 34);
    assert_eq!(table["lastlba"], (64 << 11) - 34);
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{json}");
    assert_eq!(parts[0]["name"], "ROS_STATE");
    assert_eq!(parts[0]["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    assert_eq!(parts[0]["uuid"], format_guid(&PART_GUID).to_uppercase());
    assert_eq!(parts[0]["start"], 2048);
    assert_eq!(parts[0]["size"], 62 * 2048);

    let out = Command::new(&sfdisk)
        .arg("--verify")
        .arg(&img)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sfdisk --verify: {text}");
    assert!(
        text.contains("No errors detected"),
        "sfdisk --verify: {text}"
    );
    assert!(
        !text.to_lowercase().contains("corrupt"),
        "sfdisk --verify: {text}"
    );

    if let Some(b) = blkid(&img) {
        assert_eq!(b.get("PTTYPE").map(String::as_str), Some("gpt"), "{b:?}");
        assert_eq!(b.get("PTUUID"), Some(&format_guid(&DISK_GUID)), "{b:?}");
    }
}

#[test]
fn gpt_names_are_utf16_and_cut_at_36_units() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    sparse(&img, 8 << 20);
    write_single_partition_gpt(&img, "état-ÄÖ", DISK_GUID, PART_GUID).unwrap();
    assert_eq!(
        gpt_partition_names(&mut File::open(&img).unwrap()),
        [(1, "état-ÄÖ".to_string())]
    );

    let img2 = dir.path().join("disk2.img");
    sparse(&img2, 8 << 20);
    let long = "x".repeat(40);
    write_single_partition_gpt(&img2, &long, DISK_GUID, PART_GUID).unwrap();
    assert_eq!(
        gpt_partition_names(&mut File::open(&img2).unwrap())[0].1,
        "x".repeat(36)
    );
}

#[test]
fn gpt_refuses_data_and_tiny_disks() {
    let dir = tempfile::tempdir().unwrap();
    for offset in [0u64, 4096, (1 << 20) - 1, (64 << 20) - 1] {
        let img = dir.path().join(format!("used-{offset}.img"));
        sparse(&img, 64 << 20);
        let mut f = OpenOptions::new().write(true).open(&img).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&[0x5A]).unwrap();
        drop(f);
        let err = write_single_partition_gpt(&img, "ROS_STATE", DISK_GUID, PART_GUID).unwrap_err();
        assert!(
            matches!(disk_error(&err), Some(DiskError::NotBlank { .. })),
            "{err}"
        );
        assert!(err.to_string().contains(&*img.to_string_lossy()), "{err}");
        // Nothing written: only our byte is there.
        let mut data = Vec::new();
        File::open(&img).unwrap().read_to_end(&mut data).unwrap();
        assert_eq!(
            data.iter().filter(|&&b| b != 0).count(),
            1,
            "offset {offset}"
        );
    }

    let tiny = dir.path().join("tiny.img");
    sparse(&tiny, 1 << 20);
    let err = write_single_partition_gpt(&tiny, "ROS_STATE", DISK_GUID, PART_GUID).unwrap_err();
    assert!(
        matches!(disk_error(&err), Some(DiskError::TooSmall { .. })),
        "{err}"
    );

    let err = write_single_partition_gpt(&dir.path().join("absent"), "x", DISK_GUID, PART_GUID)
        .unwrap_err();
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn blank_means_zeros_at_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("d.img");
    sparse(&img, 16 << 20);
    assert!(is_blank(&img).unwrap());

    let write_at = |offset: u64| {
        let mut f = OpenOptions::new().write(true).open(&img).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&[1]).unwrap();
    };
    write_at(8 << 20); // the middle is not looked at
    assert!(is_blank(&img).unwrap());
    write_at((16 << 20) - 512); // where a backup GPT header would be
    assert!(!is_blank(&img).unwrap());

    let img2 = dir.path().join("e.img");
    sparse(&img2, 16 << 20);
    let mut f = OpenOptions::new().write(true).open(&img2).unwrap();
    f.seek(SeekFrom::Start(1000)).unwrap();
    f.write_all(b"data").unwrap();
    drop(f);
    assert!(!is_blank(&img2).unwrap());

    let small = dir.path().join("small.img");
    fs::write(&small, [0u8; 100]).unwrap();
    assert!(is_blank(&small).unwrap());
    fs::write(&small, [0u8, 0, 7]).unwrap();
    assert!(!is_blank(&small).unwrap());
    fs::write(&small, []).unwrap();
    assert!(is_blank(&small).unwrap());

    let err = is_blank(&dir.path().join("missing")).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn guids_and_partition_paths() {
    let a = random_guid();
    let b = random_guid();
    assert_ne!(a, b);
    assert_eq!(a[6] >> 4, 4, "version 4");
    assert_eq!(a[8] & 0xC0, 0x80, "RFC 4122 variant");
    for (disk, part) in [
        ("/dev/vda", "/dev/vda1"),
        ("/dev/sdb", "/dev/sdb1"),
        ("/dev/nvme0n1", "/dev/nvme0n1p1"),
        ("/dev/mmcblk0", "/dev/mmcblk0p1"),
        ("/dev/loop0", "/dev/loop0p1"),
    ] {
        assert_eq!(partition_path(Path::new(disk), 1), Path::new(part));
    }
    assert_eq!(
        partition_path(Path::new("/dev/vda"), 12),
        Path::new("/dev/vda12")
    );
}

// ---- growing the last partition ----

/// A 64 MiB image partitioned by sfdisk like a small ros disk: an 8 MiB partition, then
/// ROS_STATE of 16 MiB (sectors 18432..=51199), the rest free. `None` after a `SKIP:`.
fn small_disk_image(path: &Path, test: &str) -> Option<PathBuf> {
    let sfdisk = tool("sfdisk", test)?;
    sparse(path, 64 << 20);
    let script = "label: gpt\nsize=8MiB, name=ROS_EFI\nsize=16MiB, name=ROS_STATE\n";
    let mut child = Command::new(&sfdisk)
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(sfdisk)
}

/// `sfdisk --verify` output, asserting it found nothing wrong.
fn assert_sfdisk_verifies(sfdisk: &Path, img: &Path) {
    let out = Command::new(sfdisk)
        .arg("--verify")
        .arg(img)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sfdisk --verify: {text}");
    assert!(
        text.contains("No errors detected"),
        "sfdisk --verify: {text}"
    );
    let lower = text.to_lowercase();
    for bad in ["corrupt", "mismatch", "not on the end", "warning"] {
        assert!(!lower.contains(bad), "sfdisk --verify: {text}");
    }
}

#[test]
fn grow_last_partition_to_an_enlarged_disk() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let Some(sfdisk) = small_disk_image(&img, "grow_last_partition_to_an_enlarged_disk") else {
        return;
    };
    let json = |img: &Path| -> serde_json::Value {
        serde_json::from_str(&run(Command::new(&sfdisk).arg("--json").arg(img))).unwrap()
    };
    let before = json(&img);
    let p1_before = before["partitiontable"]["partitions"][0].clone();
    assert_eq!(before["partitiontable"]["partitions"][1]["start"], 18432);
    assert_eq!(before["partitiontable"]["partitions"][1]["size"], 16 * 2048);

    // The cloud gives a 256 MiB disk: the backup GPT is now 192 MiB before the end.
    OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let sectors: u64 = 256 << 11;
    let last_usable = sectors - 34;
    // The last sector before the backup entries that ends a MiB: 255 MiB.
    let new_last = 255 * 2048 - 1;
    assert_eq!(
        grow_last_partition(&img, 2).unwrap(),
        Some((18432 + 16 * 2048 - 1, new_last))
    );
    assert_eq!(fs::metadata(&img).unwrap().len(), 256 << 20);

    assert_sfdisk_verifies(&sfdisk, &img);
    let after = json(&img);
    let table = &after["partitiontable"];
    assert_eq!(table["lastlba"], last_usable, "{after}");
    assert_eq!(table["firstlba"], before["partitiontable"]["firstlba"]);
    assert_eq!(table["id"], before["partitiontable"]["id"]);
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{after}");
    assert_eq!(parts[0], p1_before, "partition 1 untouched");
    assert_eq!(parts[1]["start"], 18432);
    assert_eq!(parts[1]["size"], new_last + 1 - 18432);
    assert_eq!(parts[1]["name"], "ROS_STATE");
    assert_eq!(
        parts[1]["uuid"],
        before["partitiontable"]["partitions"][1]["uuid"]
    );

    // The backup header sits in the last sector and names itself and the primary.
    let mut f = File::open(&img).unwrap();
    let mut backup = [0u8; 512];
    f.seek(SeekFrom::Start((sectors - 1) * 512)).unwrap();
    f.read_exact(&mut backup).unwrap();
    assert_eq!(&backup[0..8], b"EFI PART");
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    assert_eq!(u64_at(&backup, 24), sectors - 1, "backup's own LBA");
    assert_eq!(u64_at(&backup, 32), 1, "backup's alternate LBA");
    assert_eq!(u64_at(&backup, 48), last_usable);
    assert_eq!(u64_at(&backup, 72), sectors - 33, "backup entries");
    // So does the protective MBR's 0xEE entry cover the whole disk again.
    let mut mbr = [0u8; 512];
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_exact(&mut mbr).unwrap();
    assert_eq!(mbr[446 + 4], 0xEE);
    assert_eq!(
        u32::from_le_bytes(mbr[446 + 12..446 + 16].try_into().unwrap()),
        u32::try_from(sectors - 1).unwrap()
    );
    if let Some(b) = blkid(&img) {
        assert_eq!(b.get("PTTYPE").map(String::as_str), Some("gpt"), "{b:?}");
    }

    // Done once: the second boot finds nothing to do, and writes nothing.
    let bytes = fs::read(&img).unwrap();
    assert_eq!(grow_last_partition(&img, 2).unwrap(), None);
    assert!(fs::read(&img).unwrap() == bytes, "a no-op wrote");
}

#[test]
fn grow_last_partition_into_free_space_of_the_same_disk() {
    // The table was written for this disk, but the last partition stops short of its end.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let Some(sfdisk) = small_disk_image(&img, "grow_last_partition_into_free_space") else {
        return;
    };
    assert_eq!(
        grow_last_partition(&img, 2).unwrap(),
        Some((51199, 63 * 2048 - 1))
    );
    assert_sfdisk_verifies(&sfdisk, &img);
    assert_eq!(grow_last_partition(&img, 2).unwrap(), None);
}

#[test]
fn grow_leaves_partitions_that_are_not_last_alone() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let Some(sfdisk) = small_disk_image(&img, "grow_leaves_partitions_that_are_not_last_alone")
    else {
        return;
    };
    OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let bytes = fs::read(&img).unwrap();
    // Partition 1 is followed by partition 2: nothing to do, not an error.
    assert_eq!(grow_last_partition(&img, 1).unwrap(), None);
    // No entry 3, nor 0: an error naming the disk.
    for index in [0, 3, 200] {
        let err = grow_last_partition(&img, index).unwrap_err();
        assert!(
            matches!(disk_error(&err), Some(DiskError::NoPartition { .. })),
            "{index}: {err}"
        );
        assert!(err.to_string().contains(&*img.to_string_lossy()), "{err}");
    }
    assert!(fs::read(&img).unwrap() == bytes, "a refusal wrote");
    // Still the old table, and still valid.
    let out = Command::new(&sfdisk)
        .arg("--json")
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn grow_refuses_a_disk_without_a_valid_primary_gpt() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.img");
    sparse(&blank, 64 << 20);
    let err = grow_last_partition(&blank, 1).unwrap_err();
    assert!(
        matches!(disk_error(&err), Some(DiskError::NoGpt { .. })),
        "{err}"
    );
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(fs::read(&blank).unwrap().iter().all(|&b| b == 0), "wrote");

    // A primary header with a bad CRC: refused, even though the backup is fine.
    let img = dir.path().join("disk.img");
    sparse(&img, 8 << 20);
    write_single_partition_gpt(&img, "ROS_STATE", DISK_GUID, PART_GUID).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mut f = OpenOptions::new().write(true).open(&img).unwrap();
    f.seek(SeekFrom::Start(512 + 48)).unwrap();
    f.write_all(&[0x42]).unwrap();
    drop(f);
    let err = grow_last_partition(&img, 1).unwrap_err();
    assert!(
        matches!(disk_error(&err), Some(DiskError::NoGpt { .. })),
        "{err}"
    );

    let err = grow_last_partition(&dir.path().join("absent"), 1).unwrap_err();
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn grow_a_table_written_by_write_single_partition_gpt() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    sparse(&img, 8 << 20);
    write_single_partition_gpt(&img, "ROS_STATE", DISK_GUID, PART_GUID).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    assert_eq!(
        grow_last_partition(&img, 1).unwrap(),
        Some((7 * 2048 - 1, 31 * 2048 - 1))
    );
    let parts = gpt_partitions(&mut File::open(&img).unwrap());
    assert_eq!(
        (parts[0].first_lba, parts[0].last_lba, parts[0].part_guid),
        (2048, 31 * 2048 - 1, PART_GUID)
    );
    if let Some(sfdisk) = tool(
        "sfdisk",
        "grow_a_table_written_by_write_single_partition_gpt",
    ) {
        assert_sfdisk_verifies(&sfdisk, &img);
    }
}

// ---- probe ----

#[test]
fn probe_ext4() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ext4.img");
    if !mkfs_ext4(&img, "ROS_STATE", &[], "8M") {
        return;
    }
    let p = probe_file(&img).unwrap();
    assert_eq!(p.fs, FsType::Ext4);
    assert_eq!(p.label.as_deref(), Some("ROS_STATE"));
    assert_eq!(p.uuid.as_deref(), Some(EXT_UUID));
    assert_blkid_agrees(&img, &p);

    // A 16-character label fills the field with no NUL.
    let full = dir.path().join("full.img");
    mkfs_ext4(&full, "ABCDEFGHIJKLMNOP", &["-t", "ext2"], "4M");
    assert_eq!(
        probe_file(&full).unwrap().label.as_deref(),
        Some("ABCDEFGHIJKLMNOP")
    );
}

#[test]
fn probe_vfat() {
    let Some(mkfs) = tool("mkfs.vfat", "probe_vfat") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "fat12.img",
            vec!["-n", "CIDATA", "-i", "1234ABCD"],
            "8192",
            Some("CIDATA"),
        ),
        (
            "fat32.img",
            vec!["-F", "32", "-n", "ROS_EFI", "-i", "1234ABCD"],
            "65536",
            Some("ROS_EFI"),
        ),
        ("nolabel.img", vec!["-i", "1234ABCD"], "8192", None),
    ];
    for (file, args, kib, label) in cases {
        let img = dir.path().join(file);
        run(Command::new(&mkfs).arg("-C").args(&args).arg(&img).arg(kib));
        let p = probe_file(&img).unwrap_or_else(|| panic!("{file}: not recognised"));
        assert_eq!(p.fs, FsType::Vfat, "{file}");
        assert_eq!(p.label.as_deref(), label, "{file}");
        assert_eq!(p.uuid.as_deref(), Some("1234-ABCD"), "{file}");
        assert_blkid_agrees(&img, &p);
    }
}

#[test]
fn probe_iso9660() {
    let Some(xorriso) = tool("xorriso", "probe_iso9660") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    fs::create_dir(&content).unwrap();
    fs::write(content.join("meta-data"), "instance-id: a\n").unwrap();
    let img = dir.path().join("cidata.iso");
    run(Command::new(xorriso)
        .args(["-as", "mkisofs", "-quiet", "-V", "cidata", "-o"])
        .arg(&img)
        .arg(&content));
    let p = probe_file(&img).unwrap();
    assert_eq!(p.fs, FsType::Iso9660);
    assert_eq!(p.label.as_deref(), Some("cidata"));
    assert!(p.uuid.as_deref().is_some_and(|u| u.len() == 22), "{p:?}");
    assert_blkid_agrees(&img, &p);
}

#[test]
fn probe_squashfs_erofs_swap() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    fs::create_dir(&content).unwrap();
    fs::write(content.join("f"), "x").unwrap();

    if let Some(mksquashfs) = tool("mksquashfs", "probe squashfs") {
        let img = dir.path().join("s.sqfs");
        run(Command::new(mksquashfs)
            .arg(&content)
            .arg(&img)
            .args(["-quiet", "-noappend"]));
        let p = probe_file(&img).unwrap();
        assert_eq!(
            p,
            Probe {
                fs: FsType::Squashfs,
                label: None,
                uuid: None
            }
        );
    }
    if let Some(mkfs) = tool("mkfs.erofs", "probe erofs") {
        // erofs-utils 1.5 (Debian 12) has no -L; the label field stays empty.
        let img = dir.path().join("e.erofs");
        run(Command::new(mkfs)
            .args(["--quiet", "-U", EXT_UUID])
            .arg(&img)
            .arg(&content));
        let p = probe_file(&img).unwrap();
        assert_eq!(p.fs, FsType::Erofs);
        assert_eq!(p.label, None);
        assert_eq!(p.uuid.as_deref(), Some(EXT_UUID));
        assert_blkid_agrees(&img, &p);
    }
    if let Some(mkswap) = tool("mkswap", "probe swap") {
        let img = dir.path().join("swap.img");
        sparse(&img, 4 << 20);
        run(Command::new(mkswap)
            .args(["-q", "-L", "SWAP1", "-U", EXT_UUID])
            .arg(&img));
        let p = probe_file(&img).unwrap();
        assert_eq!(p.fs, FsType::Swap);
        assert_eq!(p.label.as_deref(), Some("SWAP1"));
        assert_eq!(p.uuid.as_deref(), Some(EXT_UUID));
        assert_blkid_agrees(&img, &p);
    }
}

#[test]
fn probe_rejects_what_is_not_a_filesystem() {
    assert_eq!(probe(&mut Cursor::new(vec![0u8; 1 << 20])), None);
    assert_eq!(probe(&mut Cursor::new(vec![0u8; 10])), None);
    assert_eq!(probe(&mut Cursor::new(Vec::new())), None);
    // A protective MBR has the boot signature but is no FAT.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("gpt.img");
    sparse(&img, 8 << 20);
    write_single_partition_gpt(&img, "x", DISK_GUID, PART_GUID).unwrap();
    assert_eq!(probe_file(&img), None);
    // Bytes that vary: no magic anywhere it is looked for.
    let noise: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_eq!(probe(&mut Cursor::new(noise)), None);
}

/// A GPT disk image with an ext4 filesystem in its partition, as `mkfs.ext4 -E offset`
/// makes one without loop devices.
fn gpt_with_ext4(path: &Path) -> bool {
    sparse(path, 64 << 20);
    write_single_partition_gpt(path, "ROS_STATE", DISK_GUID, PART_GUID).unwrap();
    // 62 MiB: the partition exactly, so the backup GPT at the end survives.
    mkfs_ext4(path, "STATEFS", &["-E", "offset=1048576"], "63488k")
}

#[test]
fn partlabel_of_a_gpt_with_ext4_inside() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    if !gpt_with_ext4(&img) {
        return;
    }
    let mut f = File::open(&img).unwrap();
    assert_eq!(gpt_partition_names(&mut f), [(1, "ROS_STATE".to_string())]);
    // The whole disk is a GPT, not a filesystem; its partition holds the ext4.
    assert_eq!(probe(&mut f), None);
    let mut part = vec![0u8; 64 * 1024];
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.read_exact(&mut part).unwrap();
    let p = probe(&mut Cursor::new(part)).unwrap();
    assert_eq!((p.fs, p.label.as_deref()), (FsType::Ext4, Some("STATEFS")));
    if let Some(sfdisk) = tool("sfdisk", "sfdisk after mkfs") {
        run(Command::new(sfdisk).arg("--verify").arg(&img));
    }
}

// ---- list and find ----

/// A stand-in for /sys and /dev: `sys/class/block/<name>/{size,ro,removable[,partition]}`
/// and `dev/<name>` files.
struct FakeMachine {
    _dir: tempfile::TempDir,
    sys: PathBuf,
    dev: PathBuf,
}

impl FakeMachine {
    fn new() -> FakeMachine {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let dev = dir.path().join("dev");
        fs::create_dir_all(sys.join("class/block")).unwrap();
        fs::create_dir_all(&dev).unwrap();
        FakeMachine {
            _dir: dir,
            sys,
            dev,
        }
    }

    fn sys_entry(&self, name: &str, sectors: u64, partition: bool, ro: bool, removable: bool) {
        let d = self.sys.join("class/block").join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("size"), format!("{sectors}\n")).unwrap();
        fs::write(d.join("ro"), if ro { "1\n" } else { "0\n" }).unwrap();
        if partition {
            fs::write(d.join("partition"), "1\n").unwrap();
        } else {
            fs::write(d.join("removable"), if removable { "1\n" } else { "0\n" }).unwrap();
        }
    }

    /// A device whose node is `image` (moved in).
    fn add(&self, name: &str, image: &Path, partition: bool) {
        let size = fs::metadata(image).unwrap().len();
        fs::rename(image, self.dev.join(name)).unwrap();
        self.sys_entry(name, size / 512, partition, false, false);
    }
}

#[test]
fn list_skips_ram_zram_and_unbound_loops() {
    let m = FakeMachine::new();
    m.sys_entry("vda", 2048, false, false, false);
    m.sys_entry("vda1", 1024, true, true, false);
    m.sys_entry("sr0", 0, false, true, true);
    m.sys_entry("ram0", 8192, false, false, false);
    m.sys_entry("zram0", 8192, false, false, false);
    m.sys_entry("loop0", 0, false, false, false);
    m.sys_entry("loop1", 100, false, false, false);
    let devs = list_block_devices(&m.sys, &m.dev);
    let names: Vec<&str> = devs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["loop1", "sr0", "vda", "vda1"]);
    assert_eq!(
        devs[3],
        BlockDev {
            name: "vda1".into(),
            path: m.dev.join("vda1"),
            size_bytes: 1024 * 512,
            partition: true,
            removable: false,
            read_only: true,
        }
    );
    assert!(devs[1].removable && devs[1].read_only && !devs[1].partition);
    assert_eq!(devs[2].size_bytes, 1 << 20);
    assert!(list_block_devices(&m.sys.join("nothing"), &m.dev).is_empty());
}

#[test]
fn find_by_label_uuid_and_path() {
    let m = FakeMachine::new();
    let scratch = m.dev.parent().unwrap().join("ext4.img");
    if !mkfs_ext4(&scratch, "ROS_STATE", &[], "8M") {
        return;
    }
    m.add("vdb", &scratch, false);
    let zeros = m.dev.parent().unwrap().join("zeros.img");
    sparse(&zeros, 1 << 20);
    m.add("vdc", &zeros, false);
    let soon = || Instant::now() + Duration::from_secs(2);

    assert_eq!(
        find("LABEL=ROS_STATE", &m.sys, &m.dev, soon()).unwrap(),
        m.dev.join("vdb")
    );
    assert_eq!(
        find_by_label("ROS_STATE", &m.sys, &m.dev, soon()).unwrap(),
        m.dev.join("vdb")
    );
    let uuid = format!("UUID={}", EXT_UUID.to_uppercase());
    assert_eq!(
        find(&uuid, &m.sys, &m.dev, soon()).unwrap(),
        m.dev.join("vdb")
    );
    assert_eq!(
        find("/dev/vdc", &m.sys, &m.dev, soon()).unwrap(),
        m.dev.join("vdc")
    );

    for bad in ["ROS_STATE", "LABEL=", "vdb", "FOO=bar"] {
        let err = find(bad, &m.sys, &m.dev, soon()).unwrap_err();
        assert!(matches!(err, FindError::BadSpec { .. }), "{bad}: {err}");
    }
}

#[test]
fn find_times_out_naming_what_it_saw() {
    let m = FakeMachine::new();
    let scratch = m.dev.parent().unwrap().join("ext4.img");
    if !mkfs_ext4(&scratch, "ROS_A", &[], "8M") {
        return;
    }
    m.add("vda", &scratch, false);
    let zeros = m.dev.parent().unwrap().join("zeros.img");
    sparse(&zeros, 1 << 20);
    m.add("vdb", &zeros, false);

    let start = Instant::now();
    let err = find(
        "LABEL=ROS_STATE",
        &m.sys,
        &m.dev,
        start + Duration::from_millis(300),
    )
    .unwrap_err();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "gave up early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "overslept: {waited:?}");
    let msg = err.to_string();
    assert!(msg.contains("LABEL=ROS_STATE"), "{msg}");
    assert!(
        msg.contains(&format!("vda (ext4 LABEL=ROS_A UUID={EXT_UUID})")),
        "{msg}"
    );
    assert!(msg.contains("vdb (no filesystem)"), "{msg}");
    let FindError::Timeout { seen, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(seen.len(), 2);

    // A path that never appears times out too, also naming the devices.
    let err = find("/dev/vdz", &m.sys, &m.dev, Instant::now()).unwrap_err();
    assert!(
        err.to_string().contains("/dev/vdz") && err.to_string().contains("vda"),
        "{err}"
    );

    // An empty machine says so.
    let empty = FakeMachine::new();
    let err = find("LABEL=X", &empty.sys, &empty.dev, Instant::now()).unwrap_err();
    assert!(err.to_string().contains("no block devices"), "{err}");
}

#[test]
fn find_waits_for_a_device_that_appears_later() {
    let m = FakeMachine::new();
    let scratch = m.dev.parent().unwrap().join("ext4.img");
    if !mkfs_ext4(&scratch, "ROS_STATE", &[], "8M") {
        return;
    }
    let (sys, dev) = (m.sys.clone(), m.dev.clone());
    let start = Instant::now();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        // Node first, then sysfs, as the kernel does it.
        let size = fs::metadata(&scratch).unwrap().len();
        fs::rename(&scratch, dev.join("vdd")).unwrap();
        let d = sys.join("class/block/vdd");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("size"), format!("{}\n", size / 512)).unwrap();
    });
    let found = find(
        "LABEL=ROS_STATE",
        &m.sys,
        &m.dev,
        start + Duration::from_secs(10),
    );
    late.join().unwrap();
    assert_eq!(found.unwrap(), m.dev.join("vdd"));
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn find_by_partlabel_and_partuuid() {
    let m = FakeMachine::new();
    let img = m.dev.parent().unwrap().join("disk.img");
    if !gpt_with_ext4(&img) {
        return;
    }
    m.add("vde", &img, false);
    // The table names partition 1, but the kernel has not made vde1 yet.
    let err = find("PARTLABEL=ROS_STATE", &m.sys, &m.dev, Instant::now()).unwrap_err();
    assert!(
        err.to_string().contains("vde (GPT 1:PARTLABEL=ROS_STATE)"),
        "{err}"
    );

    let part = m.dev.parent().unwrap().join("part.img");
    sparse(&part, 62 << 20);
    m.add("vde1", &part, true);
    let soon = Instant::now() + Duration::from_secs(2);
    assert_eq!(
        find("PARTLABEL=ROS_STATE", &m.sys, &m.dev, soon).unwrap(),
        m.dev.join("vde1")
    );
    let partuuid = format!("PARTUUID={}", format_guid(&PART_GUID));
    assert_eq!(
        find(&partuuid, &m.sys, &m.dev, soon).unwrap(),
        m.dev.join("vde1")
    );
    assert!(find("PARTLABEL=ROS_A", &m.sys, &m.dev, Instant::now()).is_err());
}

// ---- loop devices (root) ----

fn loop_capable(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: {test}: needs root for loop devices");
        return false;
    }
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("SKIP: {test}: no /dev/loop-control");
        return false;
    }
    true
}

fn sysfs_loop(dev: &Path, file: &str) -> Option<String> {
    let name = dev.file_name()?.to_string_lossy().into_owned();
    fs::read_to_string(format!("/sys/block/{name}/loop/{file}"))
        .ok()
        .map(|s| s.trim().to_string())
}

#[test]
fn loop_attach_read_only_and_detach() {
    if !loop_capable("loop_attach_read_only_and_detach") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ext4.img");
    if !mkfs_ext4(&img, "LOOPED", &[], "8M") {
        return;
    }
    let lo = loop_attach(&img, true).unwrap();
    let path = lo.path().to_path_buf();
    assert!(path.to_string_lossy().starts_with("/dev/loop"), "{path:?}");
    let p = probe(&mut File::open(&path).unwrap()).unwrap();
    assert_eq!(p.label.as_deref(), Some("LOOPED"));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let ro = fs::read_to_string(format!("/sys/block/{name}/ro")).unwrap();
    assert_eq!(ro.trim(), "1", "{name} is not read-only");
    let write = OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&[1; 512]));
    assert!(write.is_err(), "wrote to a read-only loop device");
    assert_eq!(sysfs_loop(&path, "autoclear").as_deref(), Some("1"));
    assert_eq!(
        sysfs_loop(&path, "backing_file"),
        Some(img.canonicalize().unwrap().to_string_lossy().into_owned())
    );
    lo.detach().unwrap();
    assert_eq!(
        sysfs_loop(&path, "backing_file"),
        None,
        "still bound after LOOP_CLR_FD"
    );
}

#[test]
fn loop_autoclear_when_last_opener_goes() {
    if !loop_capable("loop_autoclear_when_last_opener_goes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("rw.img");
    sparse(&img, 4 << 20);
    let lo = loop_attach(&img, false).unwrap();
    let path = lo.path().to_path_buf();
    // Writable: write through the device, read it back from the file.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all(b"through the loop")
        .unwrap();
    let other = File::open(&path).unwrap();
    drop(lo);
    // Still open elsewhere (as a mount would hold it): still bound.
    assert!(sysfs_loop(&path, "backing_file").is_some());
    drop(other);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sysfs_loop(&path, "backing_file").is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        sysfs_loop(&path, "backing_file"),
        None,
        "AUTOCLEAR did not detach {path:?}"
    );
    let mut head = [0u8; 16];
    File::open(&img).unwrap().read_exact(&mut head).unwrap();
    assert_eq!(&head, b"through the loop");
}

#[test]
fn loop_attach_missing_file_names_it() {
    let err = loop_attach(Path::new("/nonexistent/ros.img"), true).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ros.img"), "{err}");
}

/// Detaches a loop device bound by `losetup` when the test ends, passed or not.
struct Losetup(PathBuf);

impl Drop for Losetup {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

#[test]
fn grow_through_a_loop_device_and_tell_the_kernel() {
    let test = "grow_through_a_loop_device_and_tell_the_kernel";
    if !loop_capable(test) {
        return;
    }
    let Some(losetup) = tool("losetup", test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    if small_disk_image(&img, test).is_none() {
        return;
    }
    OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let out = run(Command::new(losetup).args(["-f", "--show", "-P"]).arg(&img));
    let dev = Losetup(PathBuf::from(out.trim()));
    let name = dev.0.file_name().unwrap().to_string_lossy().into_owned();

    // On a block device: the size comes from seeking, the sector size from BLKSSZGET.
    assert_eq!(
        grow_last_partition(&dev.0, 2).unwrap(),
        Some((51199, 255 * 2048 - 1))
    );
    let sectors = 255 * 2048 - 18432;

    let p2 = PathBuf::from(format!("/sys/class/block/{name}p2"));
    let deadline = Instant::now() + Duration::from_secs(2);
    while !p2.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !p2.exists() {
        // This kernel reads no partition table (no CONFIG_EFI_PARTITION); BLKPG still
        // reaches it, and its answer proves the argument was read: ENXIO, no partition 2.
        eprintln!("SKIP: {test}: the kernel made no partitions of {name}; checking ENXIO only");
        let err = resize_partition_in_kernel(&dev.0, 2, 18432, sectors, 512).unwrap_err();
        let errno = match disk_error(&err) {
            Some(DiskError::Io { source, .. }) => source.raw_os_error(),
            _ => None,
        };
        assert_eq!(errno, Some(libc::ENXIO), "{err}");
        assert!(err.to_string().contains(&name), "{err}");
        return;
    }
    // Partition 1 held open makes BLKRRPART fail with EBUSY; BLKPG does not mind.
    let _busy = File::open(format!("/dev/{name}p1"));
    resize_partition_in_kernel(&dev.0, 2, 18432, sectors, 512).unwrap();
    let size = fs::read_to_string(p2.join("size")).unwrap();
    assert_eq!(size.trim().parse::<u64>().unwrap(), sectors);
}
