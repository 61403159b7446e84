//! `ros cloud-init …`: fetch the instance's userdata and metadata from its datasource and keep
//! them (`save`); apply the merged config and that metadata to the host (`apply`). Thin: the sources and what is kept are `ros_cloud_config::datasource`'s;
//! this picks the sources, prints what happened on stderr, and picks the exit code.

use std::path::Path;
use std::time::Duration;

use clap::{Args, Subcommand};
use ros_cloud_config::datasource::{self, parse_specs, Phase, SaveOutcome};
use ros_cloud_config::load::{load, ConfigPaths};

#[derive(Args, Debug)]
pub struct CloudInitArgs {
    #[command(subcommand)]
    command: CloudInitCommand,
}

#[derive(Subcommand, Debug)]
enum CloudInitCommand {
    /// Ask the datasources in order until one answers; keep its userdata (checked) and
    /// metadata under var/lib/ros/conf
    #[command(
        after_help = "SPEC: nocloud[:LABEL|PATH] (label cidata), configdrive[:LABEL|PATH] \
                            (label config-2), ec2[:URL] (IMDSv2), cmdline (ros.cloud_config= / \
                            ros.cloud_config_url=), url:URL, file:PATH. Without --datasource: \
                            ros.cloud_init.datasources, else nocloud, configdrive, ec2 (only \
                            when SMBIOS says EC2), cmdline.\n\n\
                            Kept: cloud-config.d/userdata.yml, scripts/NN, metadata.json, \
                            status.json. Userdata that does not validate is not kept (the \
                            previous stays) and is listed in status.json.\n\n\
                            Exit 0 when a source answered (even if its userdata was refused; \
                            that is said), or when no default source is present; 1 when the \
                            sources were given (--datasource or configured) and none \
                            answered, or one was present but broken."
    )]
    Save(SaveArgs),
    /// Apply the merged config and the saved metadata to this host: hostname, users and
    /// SSH keys, write_files, sysctl, modules, environment, mounts, then bootcmd (with
    /// --boot), runcmd and userdata scripts (once per instance id)
    Apply(ApplyArgs),
}

#[derive(Args, Debug)]
struct ApplyArgs {
    /// As at boot: run bootcmd too
    #[arg(long)]
    boot: bool,
    /// Do not run bootcmd, runcmd or userdata scripts
    #[arg(long)]
    no_commands: bool,
}

#[derive(Args, Debug)]
struct SaveArgs {
    /// A datasource to try, in order (repeatable)
    #[arg(long = "datasource", value_name = "SPEC")]
    datasources: Vec<String>,
    /// Only the sources that work before the network is up (nocloud, configdrive, cmdline,
    /// file)
    #[arg(long, conflicts_with = "network")]
    local: bool,
    /// Only the sources that need the network (ec2, url, cmdline with a URL)
    #[arg(long)]
    network: bool,
    /// Give up on the sources after SECS seconds in all
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// Use EC2's IMDSv1 (no session token) when IMDSv2 is not offered
    /// (also: ros.cloud_init.allow_imdsv1=true on the kernel command line)
    #[arg(long)]
    allow_imdsv1: bool,
}

pub fn run(root: &Path, args: CloudInitArgs) -> i32 {
    crate::log_to_stderr("ros cloud-init: ", log::LevelFilter::Info);
    match args.command {
        CloudInitCommand::Save(a) => save(root, a),
        CloudInitCommand::Apply(a) => apply(root, a),
    }
}

fn save(root: &Path, a: SaveArgs) -> i32 {
    let loaded = load(&ConfigPaths::new(root));
    let (specs, given) = if !a.datasources.is_empty() {
        match parse_specs(&a.datasources) {
            Ok(s) => (s, true),
            Err(e) => {
                eprintln!("ros cloud-init save: {e}");
                return 2;
            }
        }
    } else {
        match datasource::configured_specs(root, &loaded) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ros cloud-init save: ros.cloud_init.datasources: {e}");
                return 1;
            }
        }
    };
    let phase = match (a.local, a.network) {
        (true, _) => Some(Phase::Local),
        (_, true) => Some(Phase::Network),
        _ => None,
    };
    let mut opts = datasource::configured_options(&loaded, Duration::from_secs(a.timeout));
    opts.allow_imdsv1 |= a.allow_imdsv1;
    let outcome = match datasource::save(root, &specs, phase, &opts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ros cloud-init save: {e}");
            return 1;
        }
    };
    report(root, &outcome, phase, given)
}

fn apply(root: &Path, a: ApplyArgs) -> i32 {
    let loaded = load(&ConfigPaths::new(root));
    for e in &loaded.errors {
        eprintln!("ros cloud-init apply: left out: {e}");
    }
    let meta = match ros_cloud_config::instance::read(root) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "ros cloud-init apply: {}: {e}; applying without metadata",
                ros_cloud_config::instance::metadata_path(root).display()
            );
            None
        }
    };
    let report = ros_cloud_config::apply::apply(
        &loaded.value,
        meta.as_ref(),
        &ros_cloud_config::apply::ApplyOptions {
            root: root.to_path_buf(),
            run_commands: !a.no_commands,
            boot: a.boot,
            late_commands: true,
        },
    );
    for d in &report.done {
        eprintln!("  {d}");
    }
    for e in &report.errors {
        eprintln!("ros cloud-init apply: {e}");
    }
    i32::from(!report.errors.is_empty())
}

fn report(root: &Path, o: &SaveOutcome, phase: Option<Phase>, given: bool) -> i32 {
    let rel = |p: &Path| {
        let shown = p.strip_prefix(root).unwrap_or(p);
        format!("/{}", shown.display()).replace("//", "/")
    };
    let Some(ans) = &o.answered else {
        let broken = o.tried.iter().any(|t| t.error.is_some());
        let which = phase.map(|p| format!(" {p}")).unwrap_or_default();
        if o.tried.is_empty() {
            eprintln!("ros cloud-init save: no{which} datasource to try");
            return 0;
        }
        // Each source's reason was logged as it was tried.
        let names: Vec<&str> = o.tried.iter().map(|t| t.spec.as_str()).collect();
        eprintln!(
            "ros cloud-init save: no{which} datasource answered (tried {})",
            names.join(", ")
        );
        return if given || broken { 1 } else { 0 };
    };
    let m = &ans.metadata;
    eprintln!(
        "ros cloud-init save: {} answered (instance {}, hostname {}, {} key(s))",
        ans.spec,
        if m.instance_id.is_empty() {
            "-"
        } else {
            &m.instance_id
        },
        m.hostname.as_deref().unwrap_or("-"),
        m.public_keys.len()
    );
    for w in &ans.warnings {
        eprintln!("  {w}");
    }
    if !ans.rejected.is_empty() {
        eprintln!("  userdata refused, none of it saved (previously saved userdata is kept):");
        for r in &ans.rejected {
            eprintln!("    {}", r.error);
        }
    } else if !ans.had_userdata {
        eprintln!("  no userdata");
    }
    if let Some(p) = &ans.cloud_config {
        eprintln!("  saved {}", rel(p));
    }
    for p in &ans.scripts {
        eprintln!("  saved {}", rel(p));
    }
    for p in &ans.removed {
        eprintln!("  removed {}", rel(p));
    }
    eprintln!(
        "  saved {}",
        rel(&ros_cloud_config::instance::metadata_path(root))
    );
    0
}
