//! Image commands: `images`, `pull`, `load`, `rmi`, `tag`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use bytes::Bytes;
use chrono::Utc;
use clap::Args;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use serde_json::{json, Value};

use super::super::format::ListFormat;
use super::super::progress::{self, ProgressError};
use super::super::reference::Reference;
use super::super::{stream, units};
use super::container::truncate_id;
use super::{fail, filters_json, go_io_error, stdout_is_tty, str_of};
use crate::client::{self, query, Body, Client, JsonStream};

const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const IMAGES_TABLE_DIGESTS: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long, value_name = "string")]
    format: Option<String>,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    repository: Option<String>,
}

/// `system-docker images`.
pub async fn images(client: &Client, a: ImagesArgs) -> anyhow::Result<i32> {
    let format = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        a.format.clone().unwrap_or_default()
    };
    let table = if a.digests {
        IMAGES_TABLE_DIGESTS
    } else {
        IMAGES_TABLE
    };
    let list = ListFormat::parse(&format, table).map_err(|e| fail(1, e.list_message()))?;
    let mut filters = a.filter.clone();
    if let Some(r) = &a.repository {
        filters.push(format!("reference={r}"));
    }
    let path = format!(
        "/images/json{}",
        query([
            ("all", a.all.then(|| "1".to_string())),
            ("filters", filters_json(&filters)?),
        ])
    );
    let mut list_json: Vec<Value> = client.get(&path).await?;
    list_json
        .sort_by_key(|i| std::cmp::Reverse(i.get("Created").and_then(Value::as_i64).unwrap_or(0)));
    let show_digests = a.digests || format.contains(".Digest");
    let now = Utc::now();
    let rows: Vec<Value> = list_json
        .iter()
        .flat_map(|i| image_rows(i, !a.no_trunc, show_digests, now))
        .collect();
    print!(
        "{}",
        list.render(&rows, &images_header())
            .map_err(|e| fail(1, e.list_message()))?
    );
    Ok(0)
}

fn images_header() -> Value {
    json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE",
        "UniqueSize": "UNIQUE SIZE",
    })
}

/// The rows docker shows for one image: one per repository tag (per digest with
/// `--digests`), one per digest-only repository, or a single `<none>` row when dangling.
fn image_rows(img: &Value, trunc: bool, digests: bool, now: chrono::DateTime<Utc>) -> Vec<Value> {
    let strings = |key: &str| -> Vec<String> {
        img.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let tags: Vec<String> = strings("RepoTags")
        .into_iter()
        .filter(|t| t != "<none>:<none>")
        .collect();
    let repo_digests: Vec<String> = strings("RepoDigests")
        .into_iter()
        .filter(|d| d != "<none>@<none>")
        .collect();

    // repository → tags, repository → digests, in first-seen order.
    let mut by_repo: Vec<(String, Vec<String>)> = Vec::new();
    for t in &tags {
        let Ok(r) = Reference::parse(t) else { continue };
        let Some(tag) = r.tag.clone() else { continue };
        let name = r.familiar_name();
        match by_repo.iter_mut().find(|(n, _)| *n == name) {
            Some((_, ts)) => ts.push(tag),
            None => by_repo.push((name, vec![tag])),
        }
    }
    let mut digests_by_repo: Vec<(String, Vec<String>)> = Vec::new();
    for d in &repo_digests {
        let Ok(r) = Reference::parse(d) else { continue };
        let Some(digest) = r.digest.clone() else {
            continue;
        };
        let name = r.familiar_name();
        match digests_by_repo.iter_mut().find(|(n, _)| *n == name) {
            Some((_, ds)) => ds.push(digest),
            None => digests_by_repo.push((name, vec![digest])),
        }
    }

    let mut rows = Vec::new();
    let mut row = |repo: &str, tag: &str, digest: &str| {
        rows.push(image_row(img, repo, tag, digest, trunc, now))
    };
    if tags.is_empty() && repo_digests.is_empty() {
        row("<none>", "<none>", "<none>");
    }
    for (repo, repo_tags) in &by_repo {
        let pos = digests_by_repo.iter().position(|(n, _)| n == repo);
        let ds = pos.map(|p| digests_by_repo.remove(p).1).unwrap_or_default();
        for tag in repo_tags {
            if ds.is_empty() || !digests {
                row(repo, tag, "<none>");
            } else {
                for d in &ds {
                    row(repo, tag, d);
                }
            }
        }
    }
    for (repo, ds) in &digests_by_repo {
        if digests {
            for d in ds {
                row(repo, "<none>", d);
            }
        } else {
            row(repo, "<none>", "<none>");
        }
    }
    rows
}

fn image_row(
    img: &Value,
    repo: &str,
    tag: &str,
    digest: &str,
    trunc: bool,
    now: chrono::DateTime<Utc>,
) -> Value {
    let id = str_of(img, "Id");
    let created = img
        .get("Created")
        .and_then(units::unix_from_api)
        .unwrap_or(0);
    let size = |key: &str| -> String {
        match img.get(key).and_then(Value::as_i64) {
            Some(-1) => "N/A".into(),
            Some(n) => units::human_size(n as f64),
            None => units::human_size(0.0),
        }
    };
    let containers = match img.get("Containers").and_then(Value::as_i64) {
        None | Some(-1) => "N/A".to_string(),
        Some(n) => n.to_string(),
    };
    json!({
        "ID": if trunc { truncate_id(id) } else { id.to_string() },
        "Repository": repo,
        "Tag": tag,
        "Digest": digest,
        "CreatedSince": if created == 0 { "N/A".to_string() } else { units::time_ago(created, now) },
        "CreatedAt": units::go_time_string(created),
        "Size": size("Size"),
        "VirtualSize": size("VirtualSize"),
        "SharedSize": size("SharedSize"),
        "UniqueSize": match (img.get("Size").and_then(Value::as_i64), img.get("SharedSize").and_then(Value::as_i64)) {
            (Some(s), Some(sh)) if sh >= 0 => units::human_size((s - sh) as f64),
            _ => "N/A".to_string(),
        },
        "Containers": containers,
    })
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    name: String,
}

/// `system-docker pull`.
pub async fn pull(client: &Client, a: PullArgs) -> anyhow::Result<i32> {
    let r = Reference::parse(&a.name).map_err(|e| fail(1, e))?;
    let name_only = r.tag.is_none() && r.digest.is_none();
    if a.all_tags && !name_only {
        return Err(fail(1, "tag can't be used with --all-tags/-a"));
    }
    let r = if a.all_tags { r } else { r.with_default_tag() };
    let mut stdout = std::io::stdout();
    if name_only && !a.all_tags && !a.quiet {
        println!("Using default tag: latest");
    }
    let mut sink = std::io::sink();
    let out: &mut dyn Write = if a.quiet { &mut sink } else { &mut stdout };
    let terminal = !a.quiet && stdout_is_tty();
    match pull_stream(client, &r, a.platform.as_deref(), out, terminal).await {
        Ok(()) => {
            println!("{}", r.full_string());
            Ok(0)
        }
        Err(e) => Err(fail(1, e.to_string())),
    }
}

/// Pulls `r` (tag or digest set), showing progress on `out`.
pub async fn pull_image(
    client: &Client,
    r: &Reference,
    out: &mut dyn Write,
    terminal: bool,
) -> Result<(), ProgressError> {
    pull_stream(client, r, None, out, terminal).await
}

async fn pull_stream(
    client: &Client,
    r: &Reference,
    platform: Option<&str>,
    out: &mut dyn Write,
    terminal: bool,
) -> Result<(), ProgressError> {
    let tag = r.digest.clone().or_else(|| r.tag.clone());
    let path = format!(
        "/images/create{}",
        query([
            ("fromImage", Some(r.familiar_name())),
            ("tag", tag),
            ("platform", platform.map(str::to_string)),
        ])
    );
    let resp = client.request(Method::POST, &path, Body::Empty).await?;
    progress::display(JsonStream::new(resp.into_body()), out, terminal).await
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long, value_name = "string")]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// `system-docker load`.
pub async fn load(client: &Client, a: LoadArgs) -> anyhow::Result<i32> {
    let body: client::ReqBody = match &a.input {
        Some(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| fail(1, go_io_error("open", path, &e)))?;
            let frames = tokio_util::io::ReaderStream::new(file).map_ok(Frame::data);
            StreamBody::new(frames).boxed_unsync()
        }
        None => {
            if std::io::stdin().is_terminal() {
                return Err(fail(1, "requested load from stdin, but stdin is empty"));
            }
            let chunks = futures_util::stream::unfold(stream::stdin_chunks(), |mut rx| async {
                rx.recv().await.map(|chunk| (chunk.map(Frame::data), rx))
            });
            StreamBody::new(chunks).boxed_unsync()
        }
    };
    // Progress bars would garble a file or pipe, so docker asks for quiet output there.
    let quiet = a.quiet || !stdout_is_tty();
    let path = format!(
        "/images/load{}",
        query([("quiet", quiet.then(|| "1".to_string()))])
    );
    let resp = client
        .request(Method::POST, &path, Body::Stream(body, "application/x-tar"))
        .await?;
    let json = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let mut stdout = std::io::stdout();
    if json {
        progress::display(
            JsonStream::new(resp.into_body()),
            &mut stdout,
            stdout_is_tty(),
        )
        .await
        .map_err(|e| fail(1, e.to_string()))?;
    } else {
        let bytes: Bytes = resp.into_body().collect().await?.to_bytes();
        stdout.write_all(&bytes)?;
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    no_prune: bool,
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,
}

/// `system-docker rmi`: prints what was untagged and deleted.
pub async fn rmi(client: &Client, a: RmiArgs) -> anyhow::Result<i32> {
    let q = query([
        ("force", a.force.then(|| "1".to_string())),
        ("noprune", a.no_prune.then(|| "1".to_string())),
    ]);
    let mut errors = Vec::new();
    for name in &a.images {
        let path = format!("/images/{}{q}", client::path_escape(name));
        let result = client.call(Method::DELETE, &path, Body::Empty).await;
        match result.map(|b| serde_json::from_slice::<Vec<Value>>(&b)) {
            Ok(Ok(items)) => {
                for item in items {
                    match (str_of(&item, "Untagged"), str_of(&item, "Deleted")) {
                        (_, d) if !d.is_empty() => println!("Deleted: {d}"),
                        (u, _) => println!("Untagged: {u}"),
                    }
                }
            }
            Ok(Err(e)) => errors.push(format!("invalid response from the daemon: {e}")),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(fail(1, errors.join("\n")))
    }
}

#[derive(Args, Debug)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    target: String,
}

/// `system-docker tag`.
pub async fn tag(client: &Client, a: TagArgs) -> anyhow::Result<i32> {
    let target = Reference::parse(&a.target).map_err(|e| fail(1, e))?;
    if target.digest.is_some() {
        return Err(fail(1, "refusing to create a tag with a digest reference"));
    }
    let target = target.with_default_tag();
    let path = format!(
        "/images/{}/tag{}",
        client::path_escape(&a.source),
        query([
            ("repo", Some(target.familiar_name())),
            ("tag", target.tag.clone())
        ])
    );
    client.post(&path, None).await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> chrono::DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap()
    }

    fn image(tags: Value, digests: Value) -> Value {
        json!({
            "Id": "sha256:4ba1f1b06f8da7e0d0b8b11a0af5d0b0d9c49bb1e84ba1f1b06f8da7e0d0b8b1",
            "RepoTags": tags,
            "RepoDigests": digests,
            "Created": 1_700_000_000 - 3 * 7 * 24 * 3600,
            "Size": 4_261_000,
            "SharedSize": -1,
            "Containers": -1
        })
    }

    #[test]
    fn rows_per_tag() {
        let img = image(
            json!(["busybox:latest", "busybox:1.36", "localhost:5000/bb:x"]),
            json!(["busybox@sha256:aaa"]),
        );
        let rows = image_rows(&img, true, false, now());
        let cols: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["Repository"].as_str().unwrap().into(),
                    r["Tag"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            cols,
            [
                ("busybox".into(), "latest".into()),
                ("busybox".into(), "1.36".into()),
                ("localhost:5000/bb".into(), "x".into())
            ]
        );
        assert_eq!(rows[0]["ID"], "4ba1f1b06f8d");
        assert_eq!(rows[0]["Size"], "4.26MB");
        assert_eq!(rows[0]["CreatedSince"], "3 weeks ago");
        assert_eq!(rows[0]["Containers"], "N/A");
        let rows = image_rows(&img, false, true, now());
        assert_eq!(rows[0]["Digest"], "sha256:aaa");
        assert!(rows[0]["ID"].as_str().unwrap().starts_with("sha256:"));
    }

    #[test]
    fn dangling_and_digest_only() {
        let rows = image_rows(&image(json!([]), json!([])), true, false, now());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["Repository"], "<none>");
        assert_eq!(rows[0]["Tag"], "<none>");
        let rows = image_rows(
            &image(json!(null), json!(["alpine@sha256:bbb"])),
            true,
            true,
            now(),
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["Repository"], "alpine");
        assert_eq!(rows[0]["Tag"], "<none>");
        assert_eq!(rows[0]["Digest"], "sha256:bbb");
    }

    #[test]
    fn images_table() {
        let img = image(json!(["busybox:latest"]), json!([]));
        let rows = image_rows(&img, true, false, now());
        let out = ListFormat::parse("", IMAGES_TABLE)
            .unwrap()
            .render(&rows, &images_header())
            .unwrap();
        assert_eq!(
            out,
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n\
             busybox      latest    4ba1f1b06f8d   3 weeks ago   4.26MB\n"
        );
    }
}
