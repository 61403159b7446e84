//! `bootcmd` (every boot), `runcmd` and userdata scripts (once per instance id, DESIGN.md
//! §7). A failing command is reported and the next one still runs; one that runs longer
//! than [`COMMAND_TIMEOUT`] is killed and reported, so no command holds a boot forever.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use super::{io_err, ApplyError, ApplyReport};
use crate::edit::write_atomic;
use crate::instance::Metadata;
use crate::schema::{CloudConfig, Command};

/// Userdata `#!` scripts, kept executable by `ros cloud-init save`.
const SCRIPTS: &str = "var/lib/ros/conf/scripts";
const INSTANCES: &str = "var/lib/ros/conf/instance";
/// How long one command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// `bootcmd`, every boot.
pub(super) fn boot(root: &Path, cfg: &CloudConfig, report: &mut ApplyReport) {
    for (i, c) in cfg.bootcmd.iter().flatten().enumerate() {
        run_reported(root, &format!("bootcmd[{i}]"), c, report);
    }
}

/// `runcmd` and the userdata scripts, once per instance id.
pub(super) fn late(
    root: &Path,
    cfg: &CloudConfig,
    meta: Option<&Metadata>,
    report: &mut ApplyReport,
) {
    let instance = root
        .join(INSTANCES)
        .join(sanitize(meta.map_or("", |m| m.instance_id.as_str())));
    if let Some(cmds) = cfg.runcmd.as_deref().filter(|c| !c.is_empty()) {
        once(&instance.join("runcmd.done"), "runcmd", report, |r| {
            for (i, c) in cmds.iter().enumerate() {
                run_reported(root, &format!("runcmd[{i}]"), c, r);
            }
        });
    }
    let scripts = match scripts(&root.join(SCRIPTS)) {
        Ok(s) => s,
        Err(e) => return report.fail("scripts", &e),
    };
    if !scripts.is_empty() {
        once(&instance.join("scripts.done"), "scripts", report, |r| {
            for s in &scripts {
                let name = s.file_name().map(|n| n.to_string_lossy().into_owned());
                let step = format!("scripts: {}", name.unwrap_or_default());
                let argv = Command::Argv(vec![s.to_string_lossy().into_owned()]);
                run_reported(root, &step, &argv, r);
            }
        });
    }
}

/// Runs `body` unless `marker` says it ran for this instance, then leaves the marker — even
/// when a command failed, as cloud-init does: a broken runcmd must not run at every boot.
fn once(marker: &Path, what: &str, report: &mut ApplyReport, body: impl FnOnce(&mut ApplyReport)) {
    if marker.exists() {
        report.ok(what, "already ran for this instance");
        return;
    }
    body(report);
    let result = marker
        .parent()
        .map_or(Ok(()), super::create_dirs)
        .and_then(|()| write_atomic(marker, b"", 0o644).map_err(io_err("write", marker)));
    if let Err(e) = result {
        report.fail(what, &e);
    }
}

fn run_reported(root: &Path, step: &str, c: &Command, report: &mut ApplyReport) {
    match run(root, c) {
        Ok(()) => report.ok(step, "ran"),
        Err(e) => report.fail(step, &e),
    }
}

/// A string through `/bin/sh -c`, a list exec'd as is; cwd the root, stdin empty, output
/// inherited (it ends up in the boot log).
fn run(root: &Path, c: &Command) -> Result<(), ApplyError> {
    let (prog, args, shown) = match c {
        Command::Shell(s) => ("/bin/sh", vec!["-c", s.as_str()], s.clone()),
        Command::Argv(v) => match v.split_first() {
            Some((p, rest)) => (
                p.as_str(),
                rest.iter().map(String::as_str).collect(),
                v.join(" "),
            ),
            None => return Err(ApplyError::Invalid("empty command".into())),
        },
    };
    let mut child = Process::new(prog)
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|source| ApplyError::Spawn {
            command: shown.clone(),
            source,
        })?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ApplyError::TimedOut {
                    command: shown,
                    after: COMMAND_TIMEOUT,
                });
            }
            Err(source) => {
                return Err(ApplyError::Spawn {
                    command: shown,
                    source,
                })
            }
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(ApplyError::Failed {
            command: shown,
            status,
        })
    }
}

/// The executable regular files of `dir`, by name; none when it does not exist.
fn scripts(dir: &Path) -> Result<Vec<PathBuf>, ApplyError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read", dir)(e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(io_err("read", dir))?;
        let path = e.path();
        let meta = fs::metadata(&path).map_err(io_err("stat", &path))?;
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The instance id as one safe directory name: other bytes become `_`, and a leading `.`
/// (`..`) is prefixed. An empty id (a source without one) is one fixed instance.
fn sanitize(id: &str) -> String {
    let mut s: String = id
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        s = "_none".into();
    }
    if s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply as apply_all, tests::opts, ApplyOptions};
    use serde_json::json;

    fn meta(id: &str) -> Metadata {
        Metadata {
            instance_id: id.into(),
            ..Default::default()
        }
    }

    fn out(dir: &tempfile::TempDir) -> String {
        fs::read_to_string(dir.path().join("out")).unwrap_or_default()
    }

    #[test]
    fn runcmd_once_per_instance_bootcmd_every_boot() {
        let dir = tempfile::tempdir().unwrap();
        let scripts = dir.path().join(SCRIPTS);
        fs::create_dir_all(&scripts).unwrap();
        for (name, mode) in [("10-b", 0o755), ("05-a", 0o755), ("20-off", 0o644)] {
            let p = scripts.join(name);
            fs::write(&p, format!("#!/bin/sh\necho script-{name} >> out\n")).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        let cfg = json!({
            "bootcmd": ["echo boot >> out"],
            "runcmd": [
                "echo run1 >> out",
                "exit 3",
                ["sh", "-c", "echo run2 >> \"$0\"", "out"],
                ["/no/such/program"],
            ],
        });
        let r = apply_all(&cfg, Some(&meta("i-1")), &opts(dir.path()));
        assert_eq!(r.errors.len(), 2, "{r:?}");
        assert!(r.errors[0].starts_with("runcmd[1]: exit 3 failed"), "{r:?}");
        assert!(r.errors[1].starts_with("runcmd[3]: cannot run"), "{r:?}");
        assert_eq!(out(&dir), "boot\nrun1\nrun2\nscript-05-a\nscript-10-b\n");
        assert!(dir.path().join(INSTANCES).join("i-1/runcmd.done").exists());
        assert!(dir.path().join(INSTANCES).join("i-1/scripts.done").exists());

        let r = apply_all(&cfg, Some(&meta("i-1")), &opts(dir.path()));
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(
            out(&dir),
            "boot\nrun1\nrun2\nscript-05-a\nscript-10-b\nboot\n"
        );

        fs::remove_file(dir.path().join("out")).unwrap();
        apply_all(&cfg, Some(&meta("i-2")), &opts(dir.path()));
        assert_eq!(out(&dir), "boot\nrun1\nrun2\nscript-05-a\nscript-10-b\n");
    }

    #[test]
    fn not_at_boot_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = json!({"bootcmd": ["echo boot >> out"], "runcmd": ["echo run >> out"]});
        let mut o = ApplyOptions {
            run_commands: false,
            ..opts(dir.path())
        };
        apply_all(&cfg, None, &o);
        assert_eq!(out(&dir), "");
        o.run_commands = true;
        o.boot = false;
        apply_all(&cfg, None, &o);
        assert_eq!(out(&dir), "run\n");
        assert!(dir
            .path()
            .join(INSTANCES)
            .join("_none/runcmd.done")
            .exists());
    }

    #[test]
    fn instance_ids_are_safe_names() {
        assert_eq!(sanitize("i-0abc"), "i-0abc");
        assert_eq!(sanitize("../../etc"), "_.._.._etc");
        assert_eq!(sanitize(".."), "_..");
        assert_eq!(sanitize("a/b c"), "a_b_c");
        assert_eq!(sanitize(""), "_none");
    }
}
