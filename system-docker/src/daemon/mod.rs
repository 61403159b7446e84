//! The daemon: container records and their lifecycle, restart policies, logs, exec
//! sessions and events, served over the Docker Engine API ([`crate::api`]).
//!
//! Containers run under shims ([`crate::runtime::shim`]), not as children of the daemon,
//! so the daemon can be killed and restarted at any time: on start it reads every
//! `container.json`, re-adopts the shims that still run and collects the exit status of
//! those that finished meanwhile.

pub mod container;
pub mod error;
pub mod events;
pub mod exec;
pub mod lifecycle;
pub mod logs;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use clap::Parser;

pub use container::{Container, Record};
pub use error::DaemonError;
use events::Events;

use crate::image::ImageStore;

/// `system-docker daemon` flags, named as dockerd names them.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "system-docker daemon",
    about = "Run the system container engine in the foreground"
)]
pub struct Config {
    /// Socket to listen on (unix://PATH).
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/system-docker.sock"
    )]
    pub host: String,
    /// Root of persistent state: images, containers, logs.
    #[arg(long, default_value = crate::DEFAULT_DATA_ROOT)]
    pub data_root: PathBuf,
    /// Root of runtime state that does not outlive a reboot.
    #[arg(long, default_value = crate::DEFAULT_EXEC_ROOT)]
    pub exec_root: PathBuf,
    /// Write the daemon's pid to this file.
    #[arg(short = 'p', long, default_value = "/run/system-docker.pid")]
    pub pidfile: PathBuf,
    /// debug, info, warn, error.
    #[arg(short = 'l', long, default_value = "info")]
    pub log_level: String,
    /// Extra read-only image stores (pre-unpacked, e.g. a squashfs shipped with the OS).
    #[arg(long = "image-store")]
    pub readonly_image_stores: Vec<PathBuf>,
    /// Registries reached over plain HTTP (loopback ones always are).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Default json-file log options, e.g. max-size=10m, max-file=3.
    #[arg(long = "log-opt")]
    pub log_opts: Vec<String>,
    /// Parent cgroup of every container.
    #[arg(long, default_value = "system-docker")]
    pub cgroup_parent: String,
    /// Start no container at daemon start (restart policies apply only to exits from then
    /// on): for a client that recreates its containers itself, as ros does at boot.
    #[arg(long)]
    pub no_autostart: bool,
}

impl Config {
    pub fn socket_path(&self) -> PathBuf {
        PathBuf::from(self.host.strip_prefix("unix://").unwrap_or(&self.host))
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.data_root.join("containers")
    }

    pub fn log_opt(&self, key: &str) -> Option<String> {
        self.log_opts
            .iter()
            .find_map(|o| o.strip_prefix(&format!("{key}=")).map(str::to_string))
    }
}

pub struct Daemon {
    pub cfg: Config,
    pub images: Arc<ImageStore>,
    pub events: Events,
    containers: RwLock<HashMap<String, Arc<Container>>>,
    pub(crate) execs: Mutex<HashMap<String, Arc<exec::Exec>>>,
    /// Serializes name reservation in `create`.
    pub(crate) create_lock: tokio::sync::Mutex<()>,
    /// The binary the shims are started from, and the arguments that select the shim.
    pub(crate) shim: (PathBuf, Vec<&'static str>),
    /// The daemon's own binary.
    pub(crate) exe: PathBuf,
    pub started: chrono::DateTime<chrono::Utc>,
}

impl Daemon {
    pub fn open(cfg: Config) -> Result<Arc<Daemon>, DaemonError> {
        for d in [
            &cfg.data_root,
            &cfg.containers_dir(),
            &cfg.exec_root,
            &cfg.data_root.join("tmp"),
        ] {
            std::fs::create_dir_all(d).map_err(DaemonError::io(d))?;
        }
        let images = ImageStore::open(&cfg.data_root.join("image"), &cfg.readonly_image_stores)?;
        images.set_insecure_registries(cfg.insecure_registries.clone());
        let exe =
            std::fs::read_link("/proc/self/exe").map_err(DaemonError::io("/proc/self/exe"))?;
        // A shim binary beside the daemon's is preferred: it maps a fraction of the
        // multi-call binary, which is most of what a running container costs.
        let small = exe.with_file_name("system-docker-shim");
        let shim = if small.is_file() {
            (small, vec![])
        } else {
            (exe.clone(), vec!["shim"])
        };
        log::debug!("shim: {} {:?}", shim.0.display(), shim.1);
        let daemon = Arc::new(Daemon {
            shim,
            cfg,
            images: Arc::new(images),
            events: Events::default(),
            containers: RwLock::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
            exe,
            started: chrono::Utc::now(),
        });
        Ok(daemon)
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.containers
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn insert(&self, c: Arc<Container>) {
        if let Ok(mut m) = self.containers.write() {
            m.insert(c.id.clone(), c);
        }
    }

    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut m) = self.containers.write() {
            m.remove(id);
        }
    }

    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub fn find(&self, key: &str) -> Result<Arc<Container>, DaemonError> {
        let all = self
            .containers
            .read()
            .map_err(|_| DaemonError::Internal("state lock poisoned".into()))?;
        if let Some(c) = all.get(key) {
            return Ok(c.clone());
        }
        let name = if key.starts_with('/') {
            key.to_string()
        } else {
            format!("/{key}")
        };
        if let Some(c) = all.values().find(|c| c.lock().name == name) {
            return Ok(c.clone());
        }
        if !key.is_empty() && key.chars().all(|c| c.is_ascii_hexdigit()) {
            let matches: Vec<_> = all.values().filter(|c| c.id.starts_with(key)).collect();
            match matches.len() {
                1 => return Ok(matches[0].clone()),
                0 => {}
                _ => {
                    return Err(DaemonError::InvalidParameter(format!(
                        "multiple IDs found with provided prefix: {key}"
                    )))
                }
            }
        }
        Err(DaemonError::NoSuchContainer(key.to_string()))
    }

    /// Whether any container uses the image (for `rmi`).
    pub fn image_in_use(&self, image_id: &str) -> bool {
        self.all().iter().any(|c| c.lock().image_id == image_id)
    }
}

/// `system-docker daemon …`: parses the flags and runs until SIGTERM/SIGINT.
pub fn run_from_args(args: Vec<OsString>) -> i32 {
    let mut argv = vec![OsString::from("system-docker daemon")];
    argv.extend(args);
    let cfg = match Config::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    init_logging(&cfg.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("system-docker: starting the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(serve(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e:#}");
            1
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    use anyhow::Context;
    let socket = cfg.socket_path();
    let pidfile = cfg.pidfile.clone();
    let daemon = Daemon::open(cfg).context("opening the engine's state")?;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A socket file left by a daemon that was killed would make bind fail; a live daemon on
    // it is detected first so two daemons never share a socket.
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            anyhow::bail!("another daemon is listening on {}", socket.display());
        }
        let _ = std::fs::remove_file(&socket);
    }
    let listener = tokio::net::UnixListener::bind(&socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", socket.display()))?;
    }
    if let Some(dir) = pidfile.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    crate::fsutil::write_atomic_unsynced(&pidfile, format!("{}\n", std::process::id()).as_bytes())
        .with_context(|| format!("writing {}", pidfile.display()))?;
    lifecycle::restore(&daemon).await;
    log::info!(
        "system-docker {} listening on {}",
        crate::VERSION,
        socket.display()
    );
    let app = crate::api::router(daemon.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = stop_rx.await;
    });
    // Followers (`logs -f`, `events`) would hold a graceful shutdown open forever: they get
    // two seconds after the signal, then the daemon exits anyway.
    let signalled = async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        log::info!("shutting down; containers keep running under their shims");
        let _ = stop_tx.send(());
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    tokio::select! {
        r = server => r.context("serving the API")?,
        _ = signalled => log::info!("closing the connections still open"),
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pidfile);
    Ok(())
}

fn init_logging(level: &str) {
    let level = match level {
        "debug" | "trace" => log::LevelFilter::Debug,
        "warn" | "warning" => log::LevelFilter::Warn,
        "error" | "fatal" => log::LevelFilter::Error,
        _ => log::LevelFilter::Info,
    };
    let _ = log::set_boxed_logger(Box::new(StderrLogger));
    log::set_max_level(level);
}

/// Log lines on stderr as `time level message`; PID 1 or the supervisor captures them.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!(
                "{} {:5} {}",
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                r.level(),
                r.args()
            );
        }
    }
    fn flush(&self) {}
}
