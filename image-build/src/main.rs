//! `ros-image-build`: builds the system images and the boot artifacts of
//! `image-build/spec.yml` into `dist/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// Builds the ros system images (docker-save archives and the read-only image store) and the
/// boot artifacts (vmlinuz, initrd, images.sqfs).
#[derive(Parser, Debug)]
#[command(name = "ros-image-build", version)]
struct Args {
    /// The spec (default: image-build/spec.yml of this source tree).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Output directory (default: dist/ beside image-build/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cache of downloads and built layers (default: .cache/image-build beside image-build/).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Image version (default: the spec's, normally the workspace version).
    #[arg(long = "image-version")]
    image_version: Option<String>,
    /// Do not build the read-only store (which needs root), nor images.sqfs.
    #[arg(long)]
    no_store: bool,
    /// Do not build the boot artifacts (vmlinuz, initrd, images.sqfs).
    #[arg(long)]
    no_boot: bool,
    /// Do not build the disk images (ros-<ver>.raw, .qcow2) and the live ISO.
    #[arg(long)]
    no_disks: bool,
    /// Where the initrd's binaries (ros, system-docker-shim) are (default: target/image of
    /// this source tree, where `make image` builds them).
    #[arg(long = "bin-dir", value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// More output (-v: debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Progress on stderr: `info` says what the build does, `warn` what it skips or works
/// around, `debug` the details.
struct Logger(log::LevelFilter);

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.0
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let level = match r.level() {
                log::Level::Info => String::new(),
                l => format!("{}: ", l.as_str().to_lowercase()),
            };
            let _ = writeln!(std::io::stderr(), "ros-image-build: {level}{}", r.args());
        }
    }

    fn flush(&self) {}
}

fn main() -> ExitCode {
    let args = Args::parse();
    let level = if args.verbose > 0 {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    let _ = log::set_boxed_logger(Box::new(Logger(level)));
    log::set_max_level(level);

    // The defaults are relative to the source tree: the current directory when it is one,
    // else the tree this binary was built from (so the tool works from any directory).
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cwd = std::env::current_dir().unwrap_or_default();
    let tree = if cwd.join("image-build/spec.yml").is_file() {
        cwd.join("image-build")
    } else {
        built_in.to_path_buf()
    };
    let root = tree.parent().unwrap_or(&tree).to_path_buf();
    let opts = image_build::Options {
        spec: args.spec.unwrap_or_else(|| tree.join("spec.yml")),
        out: args.out.unwrap_or_else(|| root.join("dist")),
        cache: args
            .cache
            .unwrap_or_else(|| root.join(".cache/image-build")),
        version: args.image_version.filter(|v| !v.is_empty()),
        store: !args.no_store,
        boot: !args.no_boot,
        disks: !args.no_disks,
        bin_dir: args.bin_dir.unwrap_or_else(|| root.join("target/image")),
        catalog: root.join("services/catalog"),
    };
    match image_build::build(&opts) {
        Ok(report) => {
            print_report(&report);
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ros-image-build: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_report(r: &image_build::Report) {
    use image_build::human;
    println!("ros {} system images:", r.version);
    let w = r
        .images
        .iter()
        .map(|i| i.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "  {:<w$} {:>10} {:>10}  layers (bytes each adds)",
        "image", "archive", "unpacked"
    );
    for i in &r.images {
        let layers: Vec<String> = i
            .layers
            .iter()
            .map(|(n, b)| format!("{n} {}", human(*b)))
            .collect();
        println!(
            "  {:<w$} {:>10} {:>10}  {}",
            i.name,
            human(i.archive.size),
            human(i.unpacked),
            layers.join(" + ")
        );
    }
    let unique: u64 = r.layers.iter().map(|l| l.1).sum();
    let gz: u64 = r.layers.iter().map(|l| l.2).sum();
    println!(
        "  {} layers: {} unpacked, {} gzip'd (each shared layer counted once)",
        r.layers.len(),
        human(unique),
        human(gz)
    );
    match (&r.store, &r.store_skipped) {
        (Some((dir, size, outcome)), _) => println!(
            "  store {}: {} ({})",
            dir.display(),
            human(*size),
            match outcome {
                image_build::store::Outcome::Built => "built",
                image_build::store::Outcome::UpToDate => "up to date",
            }
        ),
        (None, Some(why)) => println!("  store: not built ({why})"),
        (None, None) => {}
    }
    match (&r.boot, &r.boot_skipped) {
        (Some(b), _) => {
            println!(
                "boot artifacts (kernel {} from {} {}, modules {}):",
                b.kernel_release, b.kernel_package.name, b.kernel_package.version, b.module_suffix
            );
            println!("  vmlinuz      {:>10}", human(b.kernel.size));
            println!(
                "  initrd       {:>10}  {} cpio of {} entries, {} module(s), {}",
                human(b.initrd.size),
                b.compression.name(),
                b.initrd_entries,
                b.modules,
                human(b.initrd_cpio),
            );
            match (&b.images_fs, &b.images_fs_skipped) {
                (Some((a, outcome)), _) => println!(
                    "  images.sqfs  {:>10}  {} squashfs of the store ({})",
                    human(a.size),
                    image_build::imagesfs::COMPRESSION,
                    match outcome {
                        image_build::store::Outcome::Built => "built",
                        image_build::store::Outcome::UpToDate => "up to date",
                    }
                ),
                (None, Some(why)) => println!("  images.sqfs: not built ({why})"),
                (None, None) => {}
            }
        }
        (None, Some(why)) => println!("boot artifacts: not built ({why})"),
        (None, None) => {}
    }
    if let Some(why) = &r.disks_skipped {
        println!("disk images: not built ({why})");
    } else {
        println!("disk images:");
        for (kind, a) in &r.disks {
            println!("  {kind:<12} {:>10}  {}", human(a.size), a.file);
        }
    }
    println!("  done in {:.1}s", r.elapsed.as_secs_f64());
}
