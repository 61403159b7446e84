//! The engine through the bollard crate (the Docker API client Rust programs use): one daemon,
//! one long scenario of soft assertions, so a run reports every incompatibility at once.
//!
//! Runs as root (containers need namespaces and mounts); skips loudly otherwise.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, EventMessage, HostConfig, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, ImportImageOptions, InspectContainerOptions,
    KillContainerOptions, ListContainersOptions, ListImagesOptions, LogsOptions,
    RemoveContainerOptions, RemoveImageOptions, RestartContainerOptions, StopContainerOptions,
    WaitContainerOptions,
};
use bollard::{body_full, Docker, API_DEFAULT_VERSION};
use futures_util::{StreamExt, TryStreamExt};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ros_tests::{fixtures, require_root, tempdir, Checks, Daemon};

/// How long one API call may take before the scenario calls it hung.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a state change (a restart, an event) may take to show.
const STATE_TIMEOUT: Duration = Duration::from_secs(15);

const ECHO: &str = "bollard-echo";
const FAIL: &str = "bollard-fail";
const SLEEPER: &str = "bollard-sleeper";

/// Awaits `fut` for at most [`CALL_TIMEOUT`]; a timeout or an API error becomes a text naming
/// `what`.
async fn within<T>(
    what: &str,
    fut: impl Future<Output = Result<T, BollardError>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e} ({e:?})")),
        Err(_) => Err(format!("{what}: no answer within {CALL_TIMEOUT:?}")),
    }
}

/// A deadline to poll against: [`Deadline::pause`] backs off (10 ms to 200 ms) and says
/// whether there is time left.
struct Deadline {
    end: Instant,
    pause: Duration,
}

impl Deadline {
    fn new(timeout: Duration) -> Self {
        Deadline {
            end: Instant::now() + timeout,
            pause: Duration::from_millis(10),
        }
    }

    /// Waits a little; false once the deadline has passed.
    async fn pause(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.end {
            return false;
        }
        tokio::time::sleep(self.pause.min(self.end - now)).await;
        self.pause = (self.pause * 2).min(Duration::from_millis(200));
        true
    }
}

/// The status code and message of a Docker-shaped API error.
fn api_error(e: &BollardError) -> Option<(u16, &str)> {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => Some((*status_code, message.as_str())),
        _ => None,
    }
}

/// Checks that `res` failed with HTTP `status` and a message containing `needle`.
#[track_caller]
fn expect_api_error<T: std::fmt::Debug>(
    c: &mut Checks,
    res: Result<T, BollardError>,
    status: u16,
    needle: &str,
    what: &str,
) {
    let detail = format!("{res:?}");
    let ok = match &res {
        Err(e) => api_error(e)
            .is_some_and(|(s, m)| s == status && m.to_lowercase().contains(&needle.to_lowercase())),
        Ok(_) => false,
    };
    c.check(
        ok,
        &format!("{what}: expected HTTP {status} mentioning {needle:?}"),
        detail,
    );
}

/// A container config running `cmd` in the busybox fixture.
fn busybox(cmd: &[&str]) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some("busybox:latest".into()),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

fn named(name: &str) -> Option<CreateContainerOptions> {
    Some(CreateContainerOptions {
        name: Some(name.into()),
        ..Default::default()
    })
}

fn filters(pairs: &[(&str, &str)]) -> Option<HashMap<String, Vec<String>>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    Some(m)
}

/// Collected output of a log or attach stream: (stdout, stderr).
async fn collect_output(
    mut s: impl futures_util::Stream<Item = Result<bollard::container::LogOutput, BollardError>> + Unpin,
) -> Result<(String, String), String> {
    let mut out = String::new();
    let mut err = String::new();
    let collect = async {
        while let Some(item) = s.next().await {
            match item.map_err(|e| format!("stream error: {e}"))? {
                bollard::container::LogOutput::StdErr { message } => {
                    err.push_str(&String::from_utf8_lossy(&message))
                }
                other => out.push_str(&String::from_utf8_lossy(&other.into_bytes())),
            }
        }
        Ok::<(), String>(())
    };
    match tokio::time::timeout(CALL_TIMEOUT, collect).await {
        Ok(r) => r?,
        Err(_) => return Err(format!("stream did not end within {CALL_TIMEOUT:?}")),
    }
    Ok((out, err))
}

/// The wait result of a container: its exit code (bollard turns a nonzero one into
/// `DockerContainerWaitError`).
async fn wait_exit(docker: &Docker, name: &str) -> Result<i64, String> {
    let mut s = docker.wait_container(name, None::<WaitContainerOptions>);
    match tokio::time::timeout(CALL_TIMEOUT, s.next()).await {
        Err(_) => Err(format!("wait {name}: no answer within {CALL_TIMEOUT:?}")),
        Ok(None) => Err(format!("wait {name}: empty stream")),
        Ok(Some(Ok(r))) => Ok(r.status_code),
        Ok(Some(Err(BollardError::DockerContainerWaitError { code, .. }))) => Ok(code),
        Ok(Some(Err(e))) => Err(format!("wait {name}: {e} ({e:?})")),
    }
}

/// `(State.Running, State.Pid, RestartCount)` of a container.
async fn run_state(docker: &Docker, name: &str) -> Result<(bool, i64, i64), String> {
    let i = within(
        &format!("inspect {name}"),
        docker.inspect_container(name, None::<InspectContainerOptions>),
    )
    .await?;
    let st = i.state.unwrap_or_default();
    Ok((
        st.running.unwrap_or(false),
        st.pid.unwrap_or(0),
        i.restart_count.unwrap_or(0),
    ))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn event_summary(evs: &[EventMessage]) -> String {
    evs.iter()
        .map(|e| {
            format!(
                "{:?} {} {}",
                e.typ,
                e.action.as_deref().unwrap_or("?"),
                e.actor
                    .as_ref()
                    .and_then(|a| a.id.as_deref())
                    .unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The actions of the events about container `id`, in order.
fn actions_of(evs: &[EventMessage], id: &str) -> Vec<String> {
    evs.iter()
        .filter(|e| e.actor.as_ref().and_then(|a| a.id.as_deref()) == Some(id))
        .filter_map(|e| e.action.clone())
        .collect()
}

/// Whether `want` occur in `got` in this order (other actions may be between them).
fn in_order(got: &[String], want: &[&str]) -> bool {
    let mut it = got.iter();
    want.iter().all(|w| it.any(|g| g == w))
}

#[test]
fn bollard_drives_the_engine() {
    const TEST: &str = "engine_bollard::bollard_drives_the_engine";
    if !require_root(TEST) {
        return;
    }
    let Some(fx) = fixtures(TEST) else { return };
    let tmp = tempdir();
    let daemon = Daemon::start(tmp.path());
    let mut c = Checks::new(TEST);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(scenario(&daemon, fx, &mut c));
    // Stop the events reader and anything else still polling before the daemon goes.
    rt.shutdown_timeout(Duration::from_secs(5));
    c.finish_with(|| daemon.log_tail(80));
}

async fn scenario(daemon: &Daemon, fx: &ros_tests::Fixtures, c: &mut Checks) {
    let socket = daemon.socket().to_string_lossy().into_owned();
    let docker = Docker::connect_with_unix(&socket, 60, API_DEFAULT_VERSION)
        .unwrap_or_else(|e| panic!("bollard cannot use {socket}: {e}"));

    // --- version negotiation, ping, version, info
    let docker = within("negotiate_version", docker.negotiate_version())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log_tail(30)));
    let negotiated = docker.client_version();
    c.check(
        negotiated.major_version == 1 && (41..=43).contains(&negotiated.minor_version),
        "negotiated API version is the engine's (1.41..=1.43)",
        format!("negotiated {negotiated}"),
    );
    match within("ping", docker.ping()).await {
        Ok(p) => c.check(p == "OK", "ping answers OK", format!("{p:?}")),
        Err(e) => c.check(false, "ping", e),
    };
    match within("version", docker.version()).await {
        Ok(v) => {
            c.check(
                v.api_version.as_deref() == Some("1.43"),
                "version: ApiVersion 1.43",
                format!("{v:?}"),
            );
            c.check(
                v.min_api_version
                    .as_deref()
                    .and_then(|m| m.strip_prefix("1."))
                    .and_then(|m| m.parse::<u32>().ok())
                    .is_some_and(|m| m <= 41),
                "version: MinAPIVersion <= 1.41",
                format!("{v:?}"),
            );
            c.check(
                v.os.as_deref() == Some("linux") && v.version.is_some(),
                "version: Os linux and a Version",
                format!("{v:?}"),
            );
        }
        Err(e) => {
            c.check(false, "version", e);
        }
    }
    match within("info", docker.info()).await {
        Ok(i) => {
            c.check(
                i.containers == Some(0) && i.images == Some(0),
                "info: a fresh daemon has 0 containers and 0 images",
                format!("containers {:?} images {:?}", i.containers, i.images),
            );
            c.check(
                i.os_type.as_deref() == Some("linux")
                    && i.docker_root_dir.as_deref()
                        == Some(daemon.data_root().to_string_lossy().as_ref()),
                "info: OSType linux, DockerRootDir is --data-root",
                format!("os_type {:?} root {:?}", i.os_type, i.docker_root_dir),
            );
        }
        Err(e) => {
            c.check(false, "info", e);
        }
    }

    // --- the events stream, from now on (since: no race with the subscription)
    let events: Arc<Mutex<Vec<EventMessage>>> = Arc::default();
    let events_err: Arc<Mutex<Option<String>>> = Arc::default();
    let since = unix_now().saturating_sub(1).to_string();
    let reader = {
        let docker = docker.clone();
        let events = events.clone();
        let events_err = events_err.clone();
        let opts = EventsOptions {
            since: Some(since.clone()),
            until: None,
            filters: filters(&[("type", "container")]),
        };
        tokio::spawn(async move {
            let mut s = docker.events(Some(opts));
            while let Some(ev) = s.next().await {
                match ev {
                    Ok(ev) => events.lock().expect("events lock").push(ev),
                    Err(e) => {
                        *events_err.lock().expect("events lock") = Some(format!("{e} ({e:?})"));
                        break;
                    }
                }
            }
        })
    };

    // --- load the docker-save fixture (POST /images/load, whole body)
    let tar = std::fs::read(&fx.busybox_tar).expect("read busybox.tar");
    let loaded: Result<Vec<_>, String> = within(
        "import_image busybox.tar",
        docker
            .import_image(ImportImageOptions::default(), body_full(tar.into()), None)
            .try_collect::<Vec<_>>(),
    )
    .await;
    let loaded = loaded.unwrap_or_else(|e| panic!("{e}\n{}", daemon.log_tail(40)));
    let text: String = loaded
        .iter()
        .filter_map(|b| b.stream.clone().or(b.status.clone()))
        .collect();
    c.check(
        text.contains("Loaded image: busybox:latest"),
        "import_image reports `Loaded image: busybox:latest`",
        format!("{loaded:?}"),
    );

    // --- the OCI archive as a chunked stream (import_image_stream)
    let oci = tokio::fs::File::open(&fx.busybox_oci_tar)
        .await
        .expect("open busybox-oci.tar");
    let chunks = file_chunks(oci);
    match within(
        "import_image_stream busybox-oci.tar",
        docker
            .import_image_stream(ImportImageOptions::default(), chunks, None)
            .try_collect::<Vec<_>>(),
    )
    .await
    {
        Ok(out) => {
            let text: String = out
                .iter()
                .filter_map(|b| b.stream.clone().or(b.status.clone()))
                .collect();
            c.check(
                text.contains("busybox-oci:latest"),
                "import_image_stream (chunked upload) loads busybox-oci:latest",
                format!("{out:?}"),
            );
        }
        Err(e) => {
            c.check(false, "import_image_stream (chunked upload)", e);
        }
    }

    // --- list images
    match within("list_images", docker.list_images(None::<ListImagesOptions>)).await {
        Ok(list) => {
            let tags: Vec<&String> = list.iter().flat_map(|i| &i.repo_tags).collect();
            c.check(
                tags.iter().any(|t| *t == "busybox:latest")
                    && tags.iter().any(|t| *t == "busybox-oci:latest"),
                "list_images shows busybox:latest and busybox-oci:latest",
                format!("{list:?}"),
            );
            c.check(
                list.iter()
                    .all(|i| i.id.starts_with("sha256:") && i.size > 0 && i.created > 0),
                "list_images: ids are sha256:…, sizes and creation times set",
                format!("{list:?}"),
            );
        }
        Err(e) => {
            c.check(false, "list_images", e);
        }
    }
    match within(
        "list_images reference=busybox",
        docker.list_images(Some(ListImagesOptions {
            filters: filters(&[("reference", "busybox")]),
            ..Default::default()
        })),
    )
    .await
    {
        Ok(list) => {
            let tags: Vec<&String> = list.iter().flat_map(|i| &i.repo_tags).collect();
            c.check(
                !list.is_empty() && tags.iter().all(|t| t.starts_with("busybox:")),
                "list_images filter reference=busybox shows only busybox:*",
                format!("{list:?}"),
            );
        }
        Err(e) => {
            c.check(false, "list_images reference filter", e);
        }
    }
    match within(
        "list_images reference=no-such",
        docker.list_images(Some(ListImagesOptions {
            filters: filters(&[("reference", "no-such-image")]),
            ..Default::default()
        })),
    )
    .await
    {
        Ok(list) => c.check(
            list.is_empty(),
            "list_images filter reference=no-such-image (array-form filters, as bollard sends \
             them) shows nothing",
            format!("{list:?}"),
        ),
        Err(e) => c.check(false, "list_images reference=no-such", e),
    };
    match within("inspect_image busybox", docker.inspect_image("busybox")).await {
        Ok(i) => {
            c.check(
                i.id.as_deref().is_some_and(|id| id.starts_with("sha256:"))
                    && i.repo_tags
                        .as_ref()
                        .is_some_and(|t| t.iter().any(|t| t == "busybox:latest")),
                "inspect_image busybox: Id and RepoTags",
                format!("{i:?}"),
            );
        }
        Err(e) => {
            c.check(false, "inspect_image", e);
        }
    }

    // --- a container that prints and exits: create, start, wait, logs
    let echo_id = match within(
        "create echo",
        docker.create_container(named(ECHO), busybox(&["echo", "hi"])),
    )
    .await
    {
        Ok(r) => r.id,
        Err(e) => panic!("{e}\n{}", daemon.log_tail(40)),
    };
    c.check(
        echo_id.len() == 64 && echo_id.chars().all(|ch| ch.is_ascii_hexdigit()),
        "create returns a 64-hex id",
        &echo_id,
    );
    if let Err(e) = within("start echo", docker.start_container(ECHO, None)).await {
        c.check(false, "start echo", e);
    }
    match wait_exit(&docker, ECHO).await {
        Ok(code) => c.check(code == 0, "wait echo: exit code 0", code),
        Err(e) => c.check(false, "wait echo", e),
    };
    let logs = docker.logs(
        ECHO,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    match collect_output(logs).await {
        Ok((out, err)) => c.check(
            out == "hi\n" && err.is_empty(),
            "logs of `echo hi`: stdout `hi\\n`, no stderr",
            format!("stdout {out:?} stderr {err:?}"),
        ),
        Err(e) => c.check(false, "logs echo", e),
    };

    // --- a nonzero exit code through wait
    match within(
        "create fail",
        docker.create_container(named(FAIL), busybox(&["sh", "-c", "exit 3"])),
    )
    .await
    {
        Ok(_) => {
            if let Err(e) = within("start fail", docker.start_container(FAIL, None)).await {
                c.check(false, "start fail", e);
            }
            match wait_exit(&docker, FAIL).await {
                Ok(code) => c.check(code == 3, "wait: exit code 3 of `exit 3`", code),
                Err(e) => c.check(false, "wait fail", e),
            };
            match within(
                "inspect fail",
                docker.inspect_container(FAIL, None::<InspectContainerOptions>),
            )
            .await
            {
                Ok(i) => {
                    let st = i.state.unwrap_or_default();
                    c.check(
                        st.exit_code == Some(3)
                            && st.running == Some(false)
                            && st.status == Some(ContainerStateStatusEnum::EXITED),
                        "inspect of an exited container: exited, ExitCode 3",
                        format!("{st:?}"),
                    );
                }
                Err(e) => {
                    c.check(false, "inspect fail", e);
                }
            }
        }
        Err(e) => {
            c.check(false, "create fail", e);
        }
    }

    // --- a long-running named container with restart policy always
    let mut sleeper = busybox(&["sleep", "1000"]);
    sleeper.host_config = Some(HostConfig {
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ALWAYS),
            maximum_retry_count: None,
        }),
        ..Default::default()
    });
    sleeper.labels = Some(HashMap::from([("ros.test".into(), "bollard".into())]));
    let sleeper_id = match within(
        "create sleeper",
        docker.create_container(named(SLEEPER), sleeper.clone()),
    )
    .await
    {
        Ok(r) => r.id,
        Err(e) => panic!("{e}\n{}", daemon.log_tail(40)),
    };
    if let Err(e) = within("start sleeper", docker.start_container(SLEEPER, None)).await {
        panic!("{e}\n{}", daemon.log_tail(40));
    }

    // --- list with filters
    let list = |f: Option<HashMap<String, Vec<String>>>, all: bool| {
        docker.list_containers(Some(ListContainersOptions {
            all,
            filters: f,
            ..Default::default()
        }))
    };
    match within("list running", list(None, false)).await {
        Ok(l) => {
            let ids: Vec<&str> = l.iter().filter_map(|s| s.id.as_deref()).collect();
            c.check(
                ids == [sleeper_id.as_str()],
                "list_containers (running only) shows just the sleeper",
                format!("{l:?}"),
            );
            if let Some(s) = l.first() {
                c.check(
                    s.names.as_deref() == Some(&[format!("/{SLEEPER}")][..])
                        && s.image.as_deref() == Some("busybox:latest")
                        && s.command.as_deref() == Some("sleep 1000")
                        && s.labels
                            .as_ref()
                            .and_then(|l| l.get("ros.test"))
                            .map(String::as_str)
                            == Some("bollard")
                        && s.status.as_deref().is_some_and(|st| st.starts_with("Up")),
                    "list_containers: Names, Image, Command, Labels, Status `Up …`",
                    format!("{s:?}"),
                );
            }
        }
        Err(e) => {
            c.check(false, "list running", e);
        }
    }
    match within("list all", list(None, true)).await {
        Ok(l) => c.check(
            l.len() == 3,
            "list_containers all=true shows all three containers",
            format!("{l:?}"),
        ),
        Err(e) => c.check(false, "list all", e),
    };
    match within(
        "list name filter",
        list(filters(&[("name", SLEEPER)]), true),
    )
    .await
    {
        Ok(l) => c.check(
            l.len() == 1 && l[0].id.as_deref() == Some(sleeper_id.as_str()),
            "list_containers filter name=bollard-sleeper",
            format!("{l:?}"),
        ),
        Err(e) => c.check(false, "list name filter", e),
    };
    match within(
        "list status filter",
        list(filters(&[("status", "exited")]), true),
    )
    .await
    {
        Ok(l) => {
            let mut names: Vec<String> = l
                .iter()
                .flat_map(|s| s.names.clone().unwrap_or_default())
                .collect();
            names.sort();
            c.check(
                names == [format!("/{ECHO}"), format!("/{FAIL}")],
                "list_containers filter status=exited shows the two exited ones",
                format!("{l:?}"),
            )
        }
        Err(e) => c.check(false, "list status filter", e),
    };
    match within(
        "list name+status filter",
        list(filters(&[("name", SLEEPER), ("status", "exited")]), true),
    )
    .await
    {
        Ok(l) => c.check(
            l.is_empty(),
            "list_containers filters name=sleeper AND status=exited: none",
            format!("{l:?}"),
        ),
        Err(e) => c.check(false, "list name+status filter", e),
    };
    match within(
        "list label filter",
        list(filters(&[("label", "ros.test=bollard")]), true),
    )
    .await
    {
        Ok(l) => c.check(
            l.len() == 1 && l[0].id.as_deref() == Some(sleeper_id.as_str()),
            "list_containers filter label=ros.test=bollard",
            format!("{l:?}"),
        ),
        Err(e) => c.check(false, "list label filter", e),
    };

    // --- inspect fields
    match within(
        "inspect sleeper",
        docker.inspect_container(SLEEPER, None::<InspectContainerOptions>),
    )
    .await
    {
        Ok(i) => {
            let st = i.state.clone().unwrap_or_default();
            c.check(
                st.running == Some(true)
                    && st.status == Some(ContainerStateStatusEnum::RUNNING)
                    && st.pid.is_some_and(|p| p > 0),
                "inspect: State.Running, Status running, Pid > 0",
                format!("{st:?}"),
            );
            c.check(
                i.id.as_deref() == Some(sleeper_id.as_str())
                    && i.name.as_deref() == Some(&format!("/{SLEEPER}")),
                "inspect: Id and Name `/bollard-sleeper`",
                format!("{:?} {:?}", i.id, i.name),
            );
            let cfg = i.config.clone().unwrap_or_default();
            c.check(
                cfg.image.as_deref() == Some("busybox:latest")
                    && cfg.cmd.as_deref() == Some(&["sleep".to_string(), "1000".to_string()][..]),
                "inspect: Config.Image busybox:latest, Config.Cmd",
                format!("{cfg:?}"),
            );
            c.check(
                i.image
                    .as_deref()
                    .is_some_and(|im| im.starts_with("sha256:")),
                "inspect: Image is the image id",
                format!("{:?}", i.image),
            );
            let rp = i.host_config.and_then(|h| h.restart_policy);
            c.check(
                rp.as_ref().and_then(|r| r.name) == Some(RestartPolicyNameEnum::ALWAYS),
                "inspect: HostConfig.RestartPolicy.Name always",
                format!("{rp:?}"),
            );
        }
        Err(e) => {
            c.check(false, "inspect sleeper", e);
        }
    }

    // --- exec: attached output of both streams, exit code through inspect
    match within(
        "create_exec",
        docker.create_exec(
            SLEEPER,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(vec!["sh", "-c", "echo out; echo err >&2; exit 7"]),
                ..Default::default()
            },
        ),
    )
    .await
    {
        Ok(exec) => {
            match within(
                "start_exec",
                docker.start_exec(&exec.id, None::<StartExecOptions>),
            )
            .await
            {
                Ok(StartExecResults::Attached { output, .. }) => {
                    match collect_output(output).await {
                        Ok((out, err)) => c.check(
                            out == "out\n" && err == "err\n",
                            "exec attached: stdout `out`, stderr `err` (demultiplexed)",
                            format!("stdout {out:?} stderr {err:?}"),
                        ),
                        Err(e) => c.check(false, "exec output", e),
                    };
                }
                Ok(StartExecResults::Detached) => {
                    c.check(false, "start_exec should attach", "Detached");
                }
                Err(e) => {
                    c.check(false, "start_exec", e);
                }
            }
            let mut last;
            let mut dl = Deadline::new(STATE_TIMEOUT);
            let done = loop {
                let r = docker.inspect_exec(&exec.id).await;
                last = format!("{r:?}");
                match r {
                    Ok(i) if i.running == Some(false) => break Some(i),
                    _ if !dl.pause().await => break None,
                    _ => {}
                }
            };
            c.check(
                done.as_ref().is_some_and(|i| {
                    i.exit_code == Some(7) && i.container_id.as_deref() == Some(sleeper_id.as_str())
                }),
                "inspect_exec: Running false, ExitCode 7, ContainerID",
                format!("{last:?}"),
            );
        }
        Err(e) => {
            c.check(false, "create_exec", e);
        }
    }

    // --- restart policy always: the engine restarts a container whose process dies
    match run_state(&docker, SLEEPER).await {
        Ok((true, pid, count)) if pid > 0 => {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            let mut last;
            let mut dl = Deadline::new(STATE_TIMEOUT);
            let restarted = loop {
                let s = run_state(&docker, SLEEPER).await;
                last = format!("{s:?}");
                match s {
                    Ok((true, p, n)) if p > 0 && p != pid && n > count => break Some(()),
                    _ if !dl.pause().await => break None,
                    _ => {}
                }
            };
            c.check(
                restarted.is_some(),
                "restart policy always: after its process is SIGKILLed from outside, the \
                 container runs again (new Pid, RestartCount up)",
                format!("before: pid {pid} count {count}; last: {last}"),
            );
        }
        other => {
            c.check(
                false,
                "sleeper should be running before the restart test",
                format!("{other:?}"),
            );
        }
    }

    // --- restart
    let pid_before = run_state(&docker, SLEEPER).await.map(|s| s.1).unwrap_or(0);
    match within(
        "restart sleeper",
        docker.restart_container(
            SLEEPER,
            Some(RestartContainerOptions {
                t: Some(1),
                ..Default::default()
            }),
        ),
    )
    .await
    {
        Ok(()) => {
            let s = run_state(&docker, SLEEPER).await;
            c.check(
                matches!(s, Ok((true, p, _)) if p > 0 && p != pid_before),
                "restart_container: running again with a new Pid",
                format!("before {pid_before}, now {s:?}"),
            );
        }
        Err(e) => {
            c.check(false, "restart sleeper", e);
        }
    }

    // --- stop: sleep as PID 1 ignores SIGTERM, so the engine SIGKILLs it after t=1 s
    let started = Instant::now();
    match within(
        "stop sleeper",
        docker.stop_container(
            SLEEPER,
            Some(StopContainerOptions {
                t: Some(1),
                signal: None,
            }),
        ),
    )
    .await
    {
        Ok(()) => {
            let took = started.elapsed();
            match within(
                "inspect stopped",
                docker.inspect_container(SLEEPER, None::<InspectContainerOptions>),
            )
            .await
            {
                Ok(i) => {
                    let st = i.state.unwrap_or_default();
                    c.check(
                        st.running == Some(false)
                            && st.status == Some(ContainerStateStatusEnum::EXITED)
                            && st.exit_code == Some(137),
                        "stop (t=1) of a SIGTERM-ignoring PID 1: exited, ExitCode 137",
                        format!("{st:?} after {took:?}"),
                    );
                }
                Err(e) => {
                    c.check(false, "inspect stopped", e);
                }
            }
        }
        Err(e) => {
            c.check(false, "stop sleeper", e);
        }
    }

    // --- exec in a stopped container: 409
    expect_api_error(
        c,
        docker
            .create_exec(
                SLEEPER,
                CreateExecOptions {
                    cmd: Some(vec!["true"]),
                    ..Default::default()
                },
            )
            .await,
        409,
        "is not running",
        "create_exec in a stopped container",
    );

    // --- kill
    if let Err(e) = within("start sleeper again", docker.start_container(SLEEPER, None)).await {
        c.check(false, "start sleeper again", e);
    }
    match within(
        "kill sleeper",
        docker.kill_container(SLEEPER, None::<KillContainerOptions>),
    )
    .await
    {
        Ok(()) => {
            match wait_exit(&docker, SLEEPER).await {
                Ok(code) => c.check(code == 137, "wait after kill: exit code 137", code),
                Err(e) => c.check(false, "wait after kill", e),
            };
            let s = run_state(&docker, SLEEPER).await;
            c.check(
                matches!(s, Ok((false, _, _))),
                "after kill, a restart-always container stays stopped (docker kill counts as \
                 a manual stop)",
                format!("{s:?}"),
            );
        }
        Err(e) => {
            c.check(false, "kill sleeper", e);
        }
    }

    // --- errors
    expect_api_error(
        c,
        docker
            .inspect_container("no-such-container", None::<InspectContainerOptions>)
            .await,
        404,
        "No such container",
        "inspect of an unknown container",
    );
    expect_api_error(
        c,
        docker
            .create_container(named(SLEEPER), busybox(&["true"]))
            .await,
        409,
        "already in use",
        "create with a taken name",
    );
    expect_api_error(
        c,
        docker
            .create_container(
                named("bollard-noimage"),
                ContainerCreateBody {
                    image: Some("no-such-image:latest".into()),
                    ..Default::default()
                },
            )
            .await,
        404,
        "No such image",
        "create with an unknown image",
    );
    expect_api_error(
        c,
        docker.start_container("no-such-container", None).await,
        404,
        "No such container",
        "start of an unknown container",
    );
    // Removing one of two tags only untags, even when containers use the image; removing the
    // last tag of an image containers use is a conflict (Docker: "must force").
    match within(
        "remove busybox-oci",
        docker.remove_image("busybox-oci:latest", None::<RemoveImageOptions>, None),
    )
    .await
    {
        Ok(items) => c.check(
            items
                .iter()
                .any(|i| i.untagged.as_deref() == Some("busybox-oci:latest"))
                && items.iter().all(|i| i.deleted.is_none()),
            "remove_image busybox-oci (a second tag of an image in use): Untagged only",
            format!("{items:?}"),
        ),
        Err(e) => c.check(false, "remove busybox-oci", e),
    };
    expect_api_error(
        c,
        docker
            .remove_image("busybox:latest", None::<RemoveImageOptions>, None)
            .await,
        409,
        "container",
        "remove_image of the last tag of an image a container uses (without force)",
    );

    // --- remove: a running container needs force
    if let Err(e) = within(
        "start sleeper for rm",
        docker.start_container(SLEEPER, None),
    )
    .await
    {
        c.check(false, "start sleeper for rm", e);
    }
    expect_api_error(
        c,
        docker
            .remove_container(SLEEPER, None::<RemoveContainerOptions>)
            .await,
        409,
        "running",
        "remove of a running container without force",
    );
    for name in [SLEEPER, FAIL, ECHO] {
        if let Err(e) = within(
            &format!("remove {name}"),
            docker.remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            ),
        )
        .await
        {
            c.check(false, &format!("remove {name} (force)"), e);
        }
    }
    expect_api_error(
        c,
        docker
            .inspect_container(ECHO, None::<InspectContainerOptions>)
            .await,
        404,
        "No such container",
        "inspect after remove",
    );
    match within("list all after rm", list(None, true)).await {
        Ok(l) => c.check(l.is_empty(), "no containers left", format!("{l:?}")),
        Err(e) => c.check(false, "list all after rm", e),
    };

    // --- events: create, start, die, destroy of the echo container, live and bounded
    let mut seen;
    let mut dl = Deadline::new(STATE_TIMEOUT);
    let live = loop {
        seen = actions_of(&events.lock().expect("events lock"), &echo_id);
        if in_order(&seen, &["create", "start", "die", "destroy"]) {
            break Some(());
        }
        if !dl.pause().await {
            break None;
        }
    };
    c.check(
        live.is_some(),
        "events stream (live): create, start, die, destroy of the echo container, in order",
        format!(
            "actions of {echo_id}: {seen:?}\nstream error: {:?}\nall events:\n{}",
            events_err.lock().expect("events lock"),
            event_summary(&events.lock().expect("events lock"))
        ),
    );
    if let Some(die) = events.lock().expect("events lock").iter().find(|e| {
        e.action.as_deref() == Some("die")
            && e.actor.as_ref().and_then(|a| a.id.as_deref()) == Some(echo_id.as_str())
    }) {
        let attrs = die
            .actor
            .as_ref()
            .and_then(|a| a.attributes.clone())
            .unwrap_or_default();
        c.check(
            attrs.get("exitCode").map(String::as_str) == Some("0")
                && attrs.get("name").map(String::as_str) == Some(ECHO),
            "die event attributes: exitCode 0, name",
            format!("{die:?}"),
        );
    }
    reader.abort();
    let until = (unix_now() + 1).to_string();
    let bounded = within(
        "events since..until",
        docker
            .events(Some(EventsOptions {
                since: Some(since),
                until: Some(until),
                filters: filters(&[("container", ECHO)]),
            }))
            .try_collect::<Vec<_>>(),
    )
    .await;
    match bounded {
        Ok(evs) => {
            let actions = actions_of(&evs, &echo_id);
            c.check(
                in_order(&actions, &["create", "start", "die", "destroy"])
                    && evs.len() == actions.len(),
                "events with since/until and filter container=bollard-echo: the echo \
                 container's lifecycle only, and the stream ends",
                event_summary(&evs),
            );
        }
        Err(e) => {
            c.check(false, "bounded events", e);
        }
    }

    // --- remove the image
    match within(
        "remove busybox",
        docker.remove_image("busybox:latest", None::<RemoveImageOptions>, None),
    )
    .await
    {
        Ok(items) => c.check(
            items.iter().any(|i| i.deleted.is_some()),
            "remove_image busybox (last tag): Deleted entries",
            format!("{items:?}"),
        ),
        Err(e) => c.check(false, "remove busybox", e),
    };
    expect_api_error(
        c,
        docker.inspect_image("busybox:latest").await,
        404,
        "No such image",
        "inspect_image after remove",
    );
    match within(
        "list_images at the end",
        docker.list_images(None::<ListImagesOptions>),
    )
    .await
    {
        Ok(l) => c.check(l.is_empty(), "no images left", format!("{l:?}")),
        Err(e) => c.check(false, "list_images at the end", e),
    };
}

/// The file as a stream of 64 KiB chunks (a chunked request body).
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
