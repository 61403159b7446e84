//! The engine's own client (`system-docker -H … ps|images|run|…`) end to end, against one
//! daemon, compared where useful with the stock docker CLI (v28) on the SAME daemon: both are
//! clients of the same API, so what they print must be the same (tables up to their volatile
//! time columns, `--format` output, `inspect` JSON, exit codes, error messages).
//!
//! Needs root, the docker CLI and the image fixtures; skips loudly without them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ros_tests::{
    bin_path, fixtures, poll_for, require_root, require_tool, run, run_input, skip, Checks, Daemon,
    Fixtures, Output, CMD_TIMEOUT, ENGINE_BIN,
};

/// Where the client goes without `-H` (the engine's `DEFAULT_SOCKET`).
const DEFAULT_SOCKET: &str = "/run/system-docker.sock";

/// Every top-level command `system-docker --help` must list.
const COMMANDS: &[&str] = &[
    "ps", "images", "load", "pull", "run", "create", "start", "stop", "restart", "kill", "rm",
    "rmi", "logs", "inspect", "exec", "events", "info", "version", "tag", "wait",
];

fn prerequisites(test: &str) -> Option<&'static Fixtures> {
    if !require_root(test) || !require_tool(test, "docker") {
        return None;
    }
    fixtures(test)
}

/// `system-docker -H <d> args…` as a command (for stdin or extra environment).
fn sd_cmd(d: &Daemon, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin_path(ENGINE_BIN));
    cmd.env_remove("DOCKER_HOST")
        .arg("-H")
        .arg(d.host())
        .args(args);
    cmd
}

/// `system-docker -H <d> args…` with `input` on its stdin.
fn sd_input(d: &Daemon, args: &[&str], input: &[u8]) -> Output {
    run_input(&mut sd_cmd(d, args), Some(input), CMD_TIMEOUT)
}

/// `system-docker -H <d> load < file`: the archive on stdin (through the shell, so the
/// command shown in a failure is readable).
fn sd_load_stdin(d: &Daemon, file: &Path) -> Output {
    let bin = bin_path(ENGINE_BIN);
    run(
        Command::new("sh")
            .env_remove("DOCKER_HOST")
            .arg("-c")
            .arg(r#"exec "$0" -H "$1" load < "$2""#)
            .arg(&bin)
            .arg(d.host())
            .arg(file),
        CMD_TIMEOUT,
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A docker-style table: the header's column names and each row's cells, cut at the columns'
/// start offsets (in characters, as the tabwriter counts them).
#[derive(Debug, PartialEq)]
struct Table {
    names: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn parse(text: &str) -> Option<Table> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<char> = lines.next()?.chars().collect();
        // Columns are separated by runs of 2+ spaces; names have at most single spaces.
        let mut starts = Vec::new();
        let mut i = 0;
        while i < header.len() {
            if header[i] != ' '
                && (i == 0 || (i >= 2 && header[i - 1] == ' ' && header[i - 2] == ' '))
            {
                starts.push(i);
            }
            i += 1;
        }
        let cut = |line: &[char]| -> Vec<String> {
            starts
                .iter()
                .enumerate()
                .map(|(k, &s)| {
                    let e = starts
                        .get(k + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    line.get(s.min(line.len())..e)
                        .map(|c| c.iter().collect::<String>().trim().to_string())
                        .unwrap_or_default()
                })
                .collect()
        };
        let names = cut(&header);
        let rows = lines
            .map(|l| cut(&l.chars().collect::<Vec<char>>()))
            .collect();
        Some(Table { names, rows })
    }

    fn column(&self, name: &str) -> Vec<String> {
        let Some(k) = self.names.iter().position(|n| n == name) else {
            return Vec::new();
        };
        self.rows.iter().map(|r| r[k].clone()).collect()
    }

    /// The table without the named columns (the volatile time columns).
    fn without(&self, drop: &[&str]) -> Table {
        let keep: Vec<usize> = (0..self.names.len())
            .filter(|&k| !drop.contains(&self.names[k].as_str()))
            .collect();
        let pick = |r: &Vec<String>| keep.iter().map(|&k| r[k].clone()).collect::<Vec<_>>();
        Table {
            names: pick(&self.names),
            rows: self.rows.iter().map(pick).collect(),
        }
    }
}

/// Both clients, same arguments, must print the same table apart from the `volatile` columns.
#[track_caller]
fn same_table(c: &mut Checks, d: &Daemon, args: &[&str], volatile: &[&str]) -> Option<Table> {
    let ours = d.sd(args);
    let theirs = d.docker(args);
    let (a, b) = (Table::parse(&ours.stdout), Table::parse(&theirs.stdout));
    let same = ours.success()
        && theirs.success()
        && a.as_ref().map(|t| t.without(volatile)) == b.as_ref().map(|t| t.without(volatile))
        && a.is_some();
    c.check(
        same,
        &format!(
            "`{}` prints docker's table (apart from {volatile:?})",
            args.join(" ")
        ),
        format!("{ours}\n{theirs}"),
    );
    a
}

/// Both clients, same arguments, must print exactly the same (stdout, stderr with the program
/// name swapped, exit code). Tries up to three times, since relative times ("5 minutes ago")
/// may tick between the two commands.
#[track_caller]
fn same_output(c: &mut Checks, d: &Daemon, args: &[&str]) -> Output {
    same_output_as(c, d, args, str::to_string)
}

/// `same_output` for image listings. docker's client walks an image's repositories through a
/// Go map, so the rows of one image that has several repositories (busybox and busybox-oci
/// here) come in a random order: the lines are compared as a set.
#[track_caller]
fn same_rows(c: &mut Checks, d: &Daemon, args: &[&str]) -> Output {
    same_output_as(c, d, args, |out| {
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort_unstable();
        lines.join("\n")
    })
}

#[track_caller]
fn same_output_as(
    c: &mut Checks,
    d: &Daemon,
    args: &[&str],
    normalize: impl Fn(&str) -> String,
) -> Output {
    let mut last = None;
    for _ in 0..3 {
        let ours = d.sd(args);
        let theirs = d.docker(args);
        let ours_err = ours.stderr.replace("system-docker", "docker");
        if normalize(&ours.stdout) == normalize(&theirs.stdout)
            && ours_err == theirs.stderr
            && ours.code() == theirs.code()
            && !ours.timed_out
        {
            c.check(true, "", "");
            return ours;
        }
        last = Some((ours, theirs));
    }
    let (ours, theirs) = last.expect("ran at least once");
    c.check(
        false,
        &format!(
            "`{}` prints what docker prints (stdout, stderr, exit code)",
            args.join(" ")
        ),
        format!("{ours}\n{theirs}"),
    );
    ours
}

/// Our client end to end: load, images, run (output, exit codes, stdin, errors), ps in its
/// forms, logs, inspect, exec, stop/start/restart/kill/wait, rm, tag/rmi, version, info,
/// events, DOCKER_HOST, --help.
#[test]
fn client_end_to_end() {
    const T: &str = "client_end_to_end";
    let Some(fx) = prerequisites(T) else { return };
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    let mut c = Checks::new(T);

    // --- --help, version, info
    let help = d.sd(&["--help"]);
    c.code(&help, 0, "--help exits 0");
    // The names in the `Commands:` section, one per line up to the blank line.
    let listed: Vec<&str> = help
        .stdout
        .split_once("Commands:")
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let missing: Vec<&&str> = COMMANDS.iter().filter(|c| !listed.contains(c)).collect();
    c.check(
        missing.is_empty(),
        &format!("--help lists every command under Commands: (missing: {missing:?})"),
        &help,
    );
    let out = d.sd(&["run", "--help"]);
    c.check(
        out.success() && out.stdout.contains("Usage:"),
        "run --help exits 0 with a usage",
        &out,
    );

    let v = d.sd(&["version"]);
    c.check(
        v.success()
            && v.stdout.lines().any(|l| l.starts_with("Client:"))
            && v.stdout.lines().any(|l| l.starts_with("Server:"))
            && v.stdout.matches("Version:").count() >= 2
            && v.stdout.contains("API version:"),
        "version prints a Client: and a Server: section with versions",
        &v,
    );
    same_output(
        &mut c,
        &d,
        &[
            "version",
            "--format",
            "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.Os}}/{{.Server.Arch}}",
        ],
    );
    let out = d.sd(&["version", "--format", "{{.Client.APIVersion}}"]);
    let server_api = d.sd(&["version", "--format", "{{.Server.APIVersion}}"]);
    c.check(
        out.success() && !out.out().is_empty() && out.out() == server_api.out(),
        "the client speaks the server's API version",
        format!("{out}\n{server_api}"),
    );
    let info = d.sd(&["info"]);
    c.check(
        info.success()
            && info.stdout.contains("Server Version:")
            && info.stdout.contains("Containers:")
            && info.stdout.contains("Images:"),
        "info prints Server Version:, Containers:, Images:",
        &info,
    );
    same_output(
        &mut c,
        &d,
        &[
            "info",
            "--format",
            "{{.Containers}} {{.Images}} {{.ServerVersion}} {{.Driver}}",
        ],
    );

    // --- load: -i, from stdin, -q
    let out = d.sd(&["load", "-i", &fx.busybox_tar.to_string_lossy()]);
    c.out_eq(&out, "Loaded image: busybox:latest", "load -i busybox.tar");
    let out = sd_load_stdin(&d, &fx.layered_tar);
    c.out_eq(
        &out,
        "Loaded image: layered:latest",
        "load < layered.tar (stdin)",
    );
    let out = d.sd(&["load", "-q", "-i", &fx.busybox_oci_tar.to_string_lossy()]);
    c.ok(&out, "load -q -i busybox-oci.tar");
    let out = d.sd(&["load", "-i", "/nonexistent/x.tar"]);
    c.fails_with(&out, &["/nonexistent/x.tar"], "load -i of a missing file");

    // Gate: the rest runs containers of busybox.
    let images = d.sd(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.lines().iter().any(|l| l == "busybox:latest"),
        "busybox must be loaded for the rest of the scenario\n{images}\nfailed so far: {:#?}\n{}",
        c.failures(),
        d.log_tail(30)
    );

    // --- images
    let mut names = images.lines();
    names.sort();
    c.check(
        names == ["busybox-oci:latest", "busybox:latest", "layered:latest"],
        "images --format lists the three loaded images",
        &images,
    );
    let table = same_rows(&mut c, &d, &["images"]);
    let header = table.stdout.lines().next().unwrap_or("");
    let columns: Vec<&str> = header
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    c.check(
        columns == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        "images header has docker's columns, 3+ spaces apart",
        &table,
    );
    // With short names the first columns have docker's minimum widths.
    let out = same_output(&mut c, &d, &["images", "busybox"]);
    c.check(
        out.stdout
            .starts_with("REPOSITORY   TAG       IMAGE ID       CREATED ")
            && out
                .stdout
                .lines()
                .next()
                .is_some_and(|h| h.ends_with("   SIZE"))
            && out.lines().len() == 2,
        "images busybox: header `REPOSITORY   TAG       IMAGE ID       CREATED   …   SIZE`",
        &out,
    );
    same_output(&mut c, &d, &["images", "-q"]);
    same_output(&mut c, &d, &["images", "--no-trunc", "busybox"]);
    same_rows(
        &mut c,
        &d,
        &[
            "images",
            "--format",
            "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}",
        ],
    );

    // --- run: output, exit codes, missing command, stdin
    let out = d.sd(&["run", "--rm", "busybox", "echo", "hi"]);
    c.out_eq(&out, "hi", "run --rm busybox echo hi");
    let out = d.sd(&["run", "--name", "once", "busybox", "echo", "hi"]);
    c.out_eq(&out, "hi", "run busybox echo hi");
    let out = d.sd(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    c.code(&out, 3, "run --rm busybox sh -c 'exit 3' exits 3");
    let out = d.sd(&["run", "--rm", "busybox", "nosuchcmd"]);
    c.check(
        out.code() == Some(127) && out.stderr.contains("executable file not found"),
        "run of a missing command exits 127 saying `executable file not found`",
        &out,
    );
    same_output(&mut c, &d, &["run", "--rm", "busybox", "nosuchcmd"]);
    let out = d.sd(&[
        "run",
        "--name",
        "split",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 4",
    ]);
    c.check(
        out.code() == Some(4) && out.stdout == "out\n" && out.stderr == "err\n",
        "run keeps the container's stdout and stderr apart and exits with its code",
        &out,
    );
    let out = sd_input(
        &d,
        &["run", "-i", "--name", "wc", "busybox", "wc", "-l"],
        b"a\nb\n",
    );
    c.out_eq(&out, "2", "printf 'a\\nb\\n' | run -i busybox wc -l");
    let out = sd_input(&d, &["run", "--rm", "-i", "busybox", "wc", "-l"], b"a\nb\n");
    c.out_eq(&out, "2", "printf 'a\\nb\\n' | run --rm -i busybox wc -l");
    let out = sd_input(
        &d,
        &["run", "--name", "nostdin", "busybox", "wc", "-l"],
        b"a\nb\n",
    );
    c.out_eq(&out, "0", "without -i the container's stdin is empty");
    let out = d.sd(&[
        "run",
        "--name",
        "opts",
        "-e",
        "A=b",
        "--workdir",
        "/etc",
        "--user",
        "65534",
        "--hostname",
        "hh",
        "--entrypoint",
        "sh",
        "busybox",
        "-c",
        r#"echo "$A $(pwd) $(id -u) $(hostname)""#,
    ]);
    c.out_eq(
        &out,
        "b /etc 65534 hh",
        "run -e --workdir --user --hostname --entrypoint",
    );
    c.ok(&d.sd(&["rm", "opts"]), "rm opts");
    // A registry that refuses the connection at once: no network needed.
    let out = same_output(&mut c, &d, &["run", "--rm", "127.0.0.1:1/nosuch:1", "true"]);
    c.check(
        !out.timed_out && out.code() == Some(125),
        "run of an image that is not there and cannot be pulled exits 125",
        &out,
    );

    // --- run -d, create
    let out = d.sd(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    let web_id = out.out().to_string();
    c.check(
        out.success() && is_hex(&web_id, 64),
        "run -d prints the container's 64-hex id",
        &out,
    );
    let out = d.sd(&["create", "--name", "fresh", "busybox", "echo", "created"]);
    c.check(
        out.success() && is_hex(out.out(), 64),
        "create prints a 64-hex id",
        &out,
    );
    let out = d.sd(&["run", "--name", "web", "busybox", "true"]);
    c.fails_with(&out, &["is already in use"], "a second container named web");

    // --- ps, in its forms
    if let Some(t) = same_table(&mut c, &d, &["ps"], &["CREATED", "STATUS"]) {
        c.check(
            t.names
                == [
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES",
                ]
                && t.column("NAMES") == ["web"]
                && t.column("COMMAND") == ["\"sleep 1000\""]
                && t.column("CONTAINER ID") == [web_id.get(..12).unwrap_or("")]
                && t.column("STATUS").iter().all(|s| s.starts_with("Up ")),
            "ps shows only the running web, `Up …`",
            format!("{t:?}"),
        );
    }
    if let Some(t) = same_table(&mut c, &d, &["ps", "-a"], &["CREATED", "STATUS"]) {
        let mut names = t.column("NAMES");
        names.sort();
        c.check(
            names == ["fresh", "nostdin", "once", "split", "wc", "web"],
            "ps -a shows every container (and run --rm left none)",
            format!("{t:?}"),
        );
        let status = |n: &str| {
            let k = t.column("NAMES").iter().position(|x| x == n);
            k.map(|k| t.column("STATUS")[k].clone()).unwrap_or_default()
        };
        c.check(
            status("split").starts_with("Exited (4) ")
                && status("once").starts_with("Exited (0) ")
                && status("fresh") == "Created"
                && status("web").starts_with("Up "),
            "ps -a STATUS: Exited (N) …, Created, Up …",
            format!("{t:?}"),
        );
    }
    let out = same_output(&mut c, &d, &["ps", "-q"]);
    c.check(
        out.lines() == [web_id.get(..12).unwrap_or("")],
        "ps -q prints web's short id",
        &out,
    );
    let out = same_output(&mut c, &d, &["ps", "-aq"]);
    c.check(out.lines().len() == 6, "ps -aq prints six ids", &out);
    let out = same_output(&mut c, &d, &["ps", "-q", "--no-trunc"]);
    c.check(
        out.out() == web_id,
        "ps -q --no-trunc prints the full id",
        &out,
    );
    let out = d.sd(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    c.check(
        out.success() && out.lines().len() == 1 && out.out().starts_with("web Up "),
        "ps --format '{{.Names}} {{.Status}}' prints `web Up …`",
        &out,
    );
    same_output(
        &mut c,
        &d,
        &[
            "ps",
            "-a",
            "--format",
            "{{.ID}}|{{.Image}}|{{.Command}}|{{.Names}}|{{.Ports}}|{{.State}}",
        ],
    );
    same_output(&mut c, &d, &["ps", "-a", "--format", "{{json .Names}}"]);
    if let Some(t) = same_table(
        &mut c,
        &d,
        &["ps", "--filter", "name=web"],
        &["CREATED", "STATUS"],
    ) {
        c.check(
            t.column("NAMES") == ["web"],
            "ps --filter name=web shows web only",
            format!("{t:?}"),
        );
    }
    let out = same_output(&mut c, &d, &["ps", "-a", "--filter", "name=nothing-such"]);
    c.check(
        out.success() && out.lines().len() == 1 && out.out().starts_with("CONTAINER ID"),
        "ps with a filter matching nothing prints the header only",
        &out,
    );
    let out = same_output(
        &mut c,
        &d,
        &[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--format",
            "{{.Names}}",
        ],
    );
    let mut exited = out.lines();
    exited.sort();
    c.check(
        exited == ["nostdin", "once", "split", "wc"],
        "ps --filter status=exited",
        &out,
    );
    same_output(&mut c, &d, &["ps", "-a", "--filter", "exited=4", "-q"]);
    same_output(&mut c, &d, &["ps", "--filter", "ancestor=busybox", "-q"]);

    // --- logs
    let out = d.sd(&[
        "run",
        "-d",
        "--name",
        "talk",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two; exec sleep 1000",
    ]);
    c.ok(&out, "run -d talk");
    let logs = poll_for(Duration::from_secs(10), || {
        let out = d.sd(&["logs", "talk"]);
        (out.stdout == "one\ntwo\n").then_some(out)
    });
    c.check(
        logs.is_some(),
        "logs talk prints one, two (within 10 s)",
        d.sd(&["logs", "talk"]),
    );
    same_output(&mut c, &d, &["logs", "talk"]);
    let out = same_output(&mut c, &d, &["logs", "--tail", "1", "talk"]);
    c.out_eq(&out, "two", "logs --tail 1");
    let out = same_output(&mut c, &d, &["logs", "-t", "talk"]);
    let stamped = out.lines().len() == 2
        && out.lines().iter().zip(["one", "two"]).all(|(l, want)| {
            l.split_once(' ').is_some_and(|(ts, rest)| {
                rest == want
                    && ts.len() >= 20
                    && ts.ends_with('Z')
                    && ts.as_bytes()[4] == b'-'
                    && ts.as_bytes()[10] == b'T'
            })
        });
    c.check(stamped, "logs -t prefixes RFC 3339 timestamps", &out);
    let out = d.sd(&["logs", "split"]);
    c.check(
        out.success() && out.stdout == "out\n" && out.stderr == "err\n",
        "logs keeps stdout and stderr apart",
        &out,
    );
    same_output(&mut c, &d, &["logs", "nosuch"]);

    // --- inspect
    let out = d.sd(&["inspect", "-f", "{{.State.Running}}", "web"]);
    c.out_eq(&out, "true", "inspect -f '{{.State.Running}}' web");
    let out = d.sd(&["inspect", "web"]);
    let json: Option<serde_json::Value> = serde_json::from_str(&out.stdout).ok();
    c.check(
        out.success()
            && json.as_ref().and_then(|j| j.as_array()).map(Vec::len) == Some(1)
            && json.as_ref().and_then(|j| j[0]["Id"].as_str()) == Some(web_id.as_str())
            && json.as_ref().and_then(|j| j[0]["Name"].as_str()) == Some("/web"),
        "inspect web prints a JSON array of one object with Id and Name",
        &out,
    );
    same_output(&mut c, &d, &["inspect", "web"]);
    same_output(&mut c, &d, &["inspect", "busybox"]);
    same_output(
        &mut c,
        &d,
        &["inspect", "-f", "{{json .Config.Cmd}}", "web"],
    );
    same_output(
        &mut c,
        &d,
        &["inspect", "--type", "image", "-f", "{{.Id}}", "busybox"],
    );
    let out = same_output(&mut c, &d, &["inspect", "nosuch"]);
    c.fails_with(&out, &["No such object: nosuch"], "inspect nosuch");

    // --- exec
    let out = d.sd(&["exec", "web", "echo", "hi"]);
    c.out_eq(&out, "hi", "exec web echo hi");
    let out = d.sd(&["exec", "web", "sh", "-c", "exit 5"]);
    c.code(&out, 5, "exec exit code");
    let out = same_output(&mut c, &d, &["exec", "web", "nosuchcmd"]);
    c.check(
        out.code() == Some(127) && out.stderr.contains("executable file not found"),
        "exec of a missing command exits 127",
        &out,
    );
    same_output(
        &mut c,
        &d,
        &[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "-u",
            "1:2",
            "web",
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u):$(id -g)",
        ],
    );
    let out = sd_input(&d, &["exec", "-i", "web", "wc", "-l"], b"x\ny\nz\n");
    c.out_eq(&out, "3", "printf … | exec -i web wc -l");
    same_output(&mut c, &d, &["exec", "fresh", "true"]);

    // --- stop, start, restart, kill, wait
    let pid1 = d.container_pid("web");
    let t0 = Instant::now();
    let out = d.sd(&["stop", "-t", "1", "web"]);
    let took = t0.elapsed();
    c.out_eq(&out, "web", "stop -t 1 web");
    c.check(
        took < Duration::from_secs(10),
        "stop -t 1 of a container ignoring SIGTERM takes about a second",
        format!("{took:?}"),
    );
    let out = d.sd(&[
        "inspect",
        "-f",
        "{{.State.Running}} {{.State.ExitCode}}",
        "web",
    ]);
    c.out_eq(
        &out,
        "false 137",
        "stopped by SIGKILL after the timeout: exit code 137",
    );
    let out = d.sd(&["start", "web"]);
    c.out_eq(&out, "web", "start web");
    let pid2 = d.container_pid("web");
    c.check(
        pid2.is_some() && pid2 != pid1,
        "started again: running with a new pid",
        format!("{pid1:?} -> {pid2:?}"),
    );
    let out = d.sd(&["restart", "-t", "1", "web"]);
    c.out_eq(&out, "web", "restart -t 1 web");
    let pid3 = d.container_pid("web");
    c.check(
        pid3.is_some() && pid3 != pid2,
        "restarted: running with a new pid",
        format!("{pid2:?} -> {pid3:?}"),
    );
    let out = d.sd(&["kill", "web"]);
    c.out_eq(&out, "web", "kill web");
    let out = d.sd(&["wait", "web"]);
    c.out_eq(
        &out,
        "137",
        "wait web prints the exit code of the killed container",
    );
    let out = d.sd(&[
        "run",
        "-d",
        "--name",
        "w7",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 7",
    ]);
    c.ok(&out, "run -d w7");
    let out = d.sd(&["wait", "w7"]);
    c.out_eq(
        &out,
        "7",
        "wait blocks until the container exits and prints its code",
    );
    same_output(&mut c, &d, &["wait", "w7"]);
    same_output(&mut c, &d, &["wait", "nosuch"]);
    same_output(&mut c, &d, &["kill", "web"]);

    // --- rm
    let out = same_output(&mut c, &d, &["rm", "talk"]);
    c.fails_with(
        &out,
        &["running container", "container is running"],
        "rm of a running container",
    );
    let out = d.sd(&["rm", "-f", "talk"]);
    c.out_eq(&out, "talk", "rm -f of a running container");
    let out = d.sd(&["rm", "web", "w7", "once"]);
    c.check(
        out.success() && out.lines() == ["web", "w7", "once"],
        "rm prints each name",
        &out,
    );
    let out = d.sd(&["ps", "-a", "--format", "{{.Names}}"]);
    c.check(
        out.success()
            && !out
                .lines()
                .iter()
                .any(|n| ["web", "w7", "once", "talk"].contains(&n.as_str())),
        "removed containers are gone from ps -a",
        &out,
    );
    same_output(&mut c, &d, &["rm", "nosuch"]);

    // --- tag, rmi
    let out = d.sd(&["tag", "busybox", "mine:1"]);
    c.ok(&out, "tag busybox mine:1");
    let ids = d.sd(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let id_of = |name: &str| {
        ids.lines()
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
    };
    c.check(
        id_of("mine:1").is_some() && id_of("mine:1") == id_of("busybox:latest"),
        "mine:1 is busybox's image",
        &ids,
    );
    let out = d.sd(&["rmi", "mine:1"]);
    c.out_eq(&out, "Untagged: mine:1", "rmi mine:1 untags");
    let out = d.sd(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    c.check(
        out.success()
            && !out.lines().iter().any(|l| l == "mine:1")
            && out.lines().iter().any(|l| l == "busybox:latest"),
        "after rmi mine:1, busybox is still there",
        &out,
    );
    // busybox-oci:latest is the same image as busybox:latest (same config): removing one of
    // two references only untags, even though stopped containers use the image.
    let out = d.sd(&["rmi", "busybox-oci"]);
    c.out_eq(
        &out,
        "Untagged: busybox-oci:latest",
        "rmi of one of two references untags",
    );
    // Now busybox:latest is the image's last reference, and stopped containers use it.
    let out = same_output(&mut c, &d, &["rmi", "busybox"]);
    c.fails_with(
        &out,
        &["container is using"],
        "rmi of an image's last reference, used by a container",
    );
    same_output(&mut c, &d, &["rmi", "nosuch:9"]);
    same_output(&mut c, &d, &["tag", "nosuch", "x:1"]);
    let out = d.sd(&["rmi", "layered"]);
    c.check(
        out.success()
            && out.stdout.contains("Untagged: layered:latest")
            && out.stdout.contains("Deleted: sha256:"),
        "rmi of an unused image untags and deletes it",
        &out,
    );

    // --- events of a run --rm
    let since = now_secs();
    let out = d.sd(&["run", "--rm", "--name", "ev", "busybox", "true"]);
    c.ok(&out, "run --rm --name ev busybox true");
    let until = (now_secs() + 1).to_string();
    let since = since.to_string();
    let format = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
    let out = d.sd(&[
        "events", "--since", &since, "--until", &until, "--format", format,
    ]);
    let actions: Vec<String> = out
        .lines()
        .iter()
        .filter_map(|l| {
            l.strip_prefix("container ")?
                .strip_suffix(" ev")
                .map(str::to_string)
        })
        .filter(|a| ["create", "start", "die", "destroy"].contains(&a.as_str()))
        .collect();
    c.check(
        out.success() && actions == ["create", "start", "die", "destroy"],
        "events --since --until shows create, start, die, destroy of the run",
        &out,
    );
    let out = same_output(
        &mut c,
        &d,
        &["events", "--since", &since, "--until", &until],
    );
    c.check(
        out.stdout.lines().any(|l| {
            l.contains(" container destroy ")
                && l.contains("name=ev")
                && l.contains("image=busybox")
        }),
        "events prints docker's default lines (`<time> container destroy <id> (image=…, name=…)`)",
        &out,
    );

    // --- DOCKER_HOST is ignored; without -H the default socket is used
    let mut cmd = sd_cmd(&d, &["ps", "-aq"]);
    cmd.env("DOCKER_HOST", "unix:///nonexistent");
    let out = run(&mut cmd, CMD_TIMEOUT);
    let want = d.sd(&["ps", "-aq"]);
    c.check(
        out.success() && out.stdout == want.stdout,
        "with DOCKER_HOST=unix:///nonexistent the client still talks to -H",
        format!("{out}\n{want}"),
    );
    if std::os::unix::net::UnixStream::connect(DEFAULT_SOCKET).is_ok() {
        skip(
            &format!("{T} (no -H)"),
            &format!("a daemon listens on {DEFAULT_SOCKET}: cannot check the error without one"),
        );
    } else {
        let mut cmd = Command::new(bin_path(ENGINE_BIN));
        cmd.env("DOCKER_HOST", "unix:///nonexistent").arg("ps");
        let out = run(&mut cmd, CMD_TIMEOUT);
        c.check(
            !out.timed_out
                && out.code() == Some(1)
                && out.stderr.contains(DEFAULT_SOCKET)
                && !out.all().contains("/nonexistent"),
            "without -H the client tries /run/system-docker.sock (not DOCKER_HOST) and says so",
            &out,
        );
    }
    let out = run(
        Command::new(bin_path(ENGINE_BIN)).args(["-H", "unix:///nonexistent/sd.sock", "ps"]),
        CMD_TIMEOUT,
    );
    c.check(
        !out.timed_out && out.code() == Some(1) && out.stderr.contains("/nonexistent/sd.sock"),
        "-H to a missing socket: exit 1 naming it",
        &out,
    );

    c.finish_with(|| d.log_tail(60));
}

/// An attached `run --rm` must print everything the container wrote, every time: the daemon
/// may not remove the container (and its log) before the attach stream has sent it all.
/// Repeated, since losing it is a race.
#[test]
fn run_rm_prints_all_output() {
    const T: &str = "run_rm_prints_all_output";
    let Some(fx) = prerequisites(T) else { return };
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    d.load(&fx.busybox_tar);
    let mut c = Checks::new(T);
    for i in 0..15 {
        let out = d.sd(&["run", "--rm", "busybox", "echo", "hi"]);
        c.out_eq(
            &out,
            "hi",
            &format!("system-docker run --rm busybox echo hi (try {i})"),
        );
        let out = d.docker(&["run", "--rm", "busybox", "echo", "hi"]);
        c.out_eq(
            &out,
            "hi",
            &format!("docker run --rm busybox echo hi (try {i})"),
        );
    }
    for i in 0..5 {
        let out = sd_input(&d, &["run", "--rm", "-i", "busybox", "wc", "-l"], b"a\nb\n");
        c.out_eq(
            &out,
            "2",
            &format!("printf 'a\\nb\\n' | run --rm -i busybox wc -l (try {i})"),
        );
    }
    c.finish_with(|| d.log_tail(40));
}

/// `ps -n N` / `ps -l` show the last created containers in every state: the API's `limit`
/// includes stopped containers without `all` (Docker API docs: "Return this number of most
/// recently created containers, including non-running ones"), which the stock CLI relies on.
#[test]
fn ps_last_includes_stopped_containers() {
    const T: &str = "ps_last_includes_stopped_containers";
    let Some(fx) = prerequisites(T) else { return };
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    d.load(&fx.busybox_tar);
    let mut c = Checks::new(T);
    let out = d.sd(&["run", "-d", "--name", "up", "busybox", "sleep", "1000"]);
    c.ok(&out, "run -d up");
    let out = d.sd(&["create", "--name", "newest", "busybox", "true"]);
    c.ok(&out, "create newest");
    for args in [
        &["ps", "-l", "--format", "{{.Names}}"][..],
        &["ps", "-n", "1", "--format", "{{.Names}}"][..],
    ] {
        let out = d.sd(args);
        c.out_eq(&out, "newest", &format!("system-docker {}", args.join(" ")));
        let out = d.docker(args);
        c.out_eq(&out, "newest", &format!("docker {}", args.join(" ")));
    }
    let out = d.docker(&["ps", "-n", "2", "--format", "{{.Names}}"]);
    c.check(
        out.success() && out.lines() == ["newest", "up"],
        "docker ps -n 2: newest, up",
        &out,
    );
    c.finish_with(|| d.log_tail(30));
}
