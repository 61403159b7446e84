//! A service as a Docker Engine API `POST /containers/create` body: the compose field →
//! API field mapping (`net: host` → `HostConfig.NetworkMode`, `volumes` → `Binds`,
//! `restart` → `RestartPolicy`, …), plus the labels that tie the container to its service.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::model::{labels, Service};

fn put(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    map.insert(key.to_string(), value.into());
}

fn put_opt<T: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        put(map, key, v);
    }
}

fn put_list(map: &mut Map<String, Value>, key: &str, list: &[String]) {
    if !list.is_empty() {
        put(map, key, list.to_vec());
    }
}

/// `/dev/a[:/dev/b[:rwm]]` → a `DeviceMapping`.
fn device(spec: &str) -> Value {
    let mut parts = spec.splitn(3, ':');
    let host = parts.next().unwrap_or_default();
    let inside = parts.next().filter(|s| !s.is_empty()).unwrap_or(host);
    let perms = parts.next().filter(|s| !s.is_empty()).unwrap_or("rwm");
    json!({"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms})
}

/// The create body of `svc`, labelled with its name and `hash`.
pub fn create_body(svc: &Service, hash: &str) -> Value {
    let mut labels_out: BTreeMap<String, String> = svc.labels.clone();
    labels_out.insert(labels::SERVICE.into(), svc.name.clone());
    labels_out.insert(labels::CONFIG_HASH.into(), hash.into());

    let mut c = Map::new();
    put(&mut c, "Image", svc.image.clone());
    put_opt(&mut c, "Cmd", svc.command.clone());
    put_opt(&mut c, "Entrypoint", svc.entrypoint.clone());
    put_list(&mut c, "Env", &svc.environment);
    put(&mut c, "Labels", json!(labels_out));
    put_opt(&mut c, "User", svc.user.clone());
    put_opt(&mut c, "WorkingDir", svc.working_dir.clone());
    put_opt(&mut c, "Hostname", svc.hostname.clone());
    put_opt(&mut c, "Domainname", svc.domainname.clone());
    put_opt(&mut c, "StopSignal", svc.stop_signal.clone());
    put_opt(
        &mut c,
        "StopTimeout",
        svc.stop_grace_period.map(|ns| ns / 1_000_000_000),
    );
    put(&mut c, "Tty", svc.tty);
    put(&mut c, "OpenStdin", svc.stdin_open);
    put(&mut c, "AttachStdin", false);
    put(&mut c, "AttachStdout", false);
    put(&mut c, "AttachStderr", false);
    if let Some(h) = &svc.healthcheck {
        let mut hc = Map::new();
        put_list(&mut hc, "Test", &h.test);
        put_opt(&mut hc, "Interval", h.interval);
        put_opt(&mut hc, "Timeout", h.timeout);
        put_opt(&mut hc, "StartPeriod", h.start_period);
        put_opt(&mut hc, "StartInterval", h.start_interval);
        put_opt(&mut hc, "Retries", h.retries);
        put(&mut c, "Healthcheck", hc);
    }

    // `SRC:DST[:MODE]` binds a host path (or a named volume); a lone `DST` is an anonymous
    // volume.
    let (binds, anon): (Vec<&String>, Vec<&String>) =
        svc.volumes.iter().partition(|v| v.contains(':'));
    if !anon.is_empty() {
        let vols: Map<String, Value> = anon.iter().map(|v| (v.to_string(), json!({}))).collect();
        put(&mut c, "Volumes", vols);
    }

    let mut h = Map::new();
    if !binds.is_empty() {
        put(
            &mut h,
            "Binds",
            binds.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
    }
    put_list(&mut h, "VolumesFrom", &svc.volumes_from);
    put_opt(&mut h, "NetworkMode", svc.network_mode.clone());
    put_opt(&mut h, "PidMode", svc.pid.clone());
    put_opt(&mut h, "IpcMode", svc.ipc.clone());
    put_opt(&mut h, "UTSMode", svc.uts.clone());
    put(&mut h, "Privileged", svc.privileged);
    put(&mut h, "ReadonlyRootfs", svc.read_only);
    put_list(&mut h, "CapAdd", &svc.cap_add);
    put_list(&mut h, "CapDrop", &svc.cap_drop);
    if let Some(r) = &svc.restart {
        let (name, count) = crate::fields::Restart(r.clone()).policy();
        put(
            &mut h,
            "RestartPolicy",
            json!({"Name": name, "MaximumRetryCount": count}),
        );
    }
    if !svc.tmpfs.is_empty() {
        let t: Map<String, Value> = svc
            .tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((path, opts)) => (path.to_string(), json!(opts)),
                None => (t.clone(), json!("")),
            })
            .collect();
        put(&mut h, "Tmpfs", t);
    }
    if !svc.devices.is_empty() {
        put(
            &mut h,
            "Devices",
            svc.devices.iter().map(|d| device(d)).collect::<Vec<_>>(),
        );
    }
    put_opt(&mut h, "Memory", svc.mem_limit);
    put_opt(
        &mut h,
        "NanoCpus",
        svc.cpus.map(|c| (c * 1e9).round() as i64),
    );
    put_opt(&mut h, "CpuShares", svc.cpu_shares);
    put_opt(&mut h, "PidsLimit", svc.pids_limit);
    put_opt(&mut h, "ShmSize", svc.shm_size);
    put_opt(&mut h, "OomScoreAdj", svc.oom_score_adj);
    put_opt(&mut h, "Init", svc.init);
    put_opt(&mut h, "CgroupParent", svc.cgroup_parent.clone());
    put_list(&mut h, "Dns", &svc.dns);
    put_list(&mut h, "ExtraHosts", &svc.extra_hosts);
    put_list(&mut h, "SecurityOpt", &svc.security_opt);
    if let Some(l) = &svc.logging {
        put(
            &mut h,
            "LogConfig",
            json!({"Type": l.driver.clone().unwrap_or_default(), "Config": l.options}),
        );
    }
    put(&mut c, "HostConfig", h);
    Value::Object(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceDef;

    fn service(v: Value) -> Service {
        Service::from_def("svc", ServiceDef::parse(&v).unwrap()).unwrap()
    }

    #[test]
    fn maps_compose_fields_to_the_api() {
        let s = service(json!({
            "image": "busybox",
            "command": "sleep 100",
            "net": "host",
            "pid": "host",
            "privileged": true,
            "restart": "on-failure:5",
            "volumes": ["/var/log:/var/log:ro", "/data"],
            "volumes_from": ["other"],
            "devices": ["/dev/kvm", "/dev/net/tun:/dev/tun:rw"],
            "tmpfs": ["/run:size=1m", "/tmp"],
            "environment": ["A=1"],
            "labels": {"io.rancher.os.scope": "system"},
            "mem_limit": "64m",
            "cpus": 0.5,
            "cap_add": ["NET_ADMIN"],
            "log_opt": {"max-size": "10m"},
            "log_driver": "json-file",
            "stop_grace_period": "20s",
        }));
        let b = create_body(&s, "h1");
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["sleep", "100"]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Labels"]["io.ros.service"], "svc");
        assert_eq!(b["Labels"]["io.ros.config-hash"], "h1");
        assert_eq!(b["Labels"]["io.ros.scope"], "system");
        assert_eq!(b["Volumes"], json!({"/data": {}}));
        assert_eq!(b["StopTimeout"], 20);
        let h = &b["HostConfig"];
        assert_eq!(h["NetworkMode"], "host");
        assert_eq!(h["PidMode"], "host");
        assert_eq!(h["Privileged"], true);
        assert_eq!(h["Binds"], json!(["/var/log:/var/log:ro"]));
        assert_eq!(h["VolumesFrom"], json!(["other"]));
        assert_eq!(
            h["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 5})
        );
        assert_eq!(h["Tmpfs"], json!({"/run": "size=1m", "/tmp": ""}));
        assert_eq!(h["Devices"][0]["PathInContainer"], "/dev/kvm");
        assert_eq!(h["Devices"][1]["PathInContainer"], "/dev/tun");
        assert_eq!(h["Devices"][1]["CgroupPermissions"], "rw");
        assert_eq!(h["Memory"], 64 << 20);
        assert_eq!(h["NanoCpus"], 500_000_000);
        assert_eq!(h["CapAdd"], json!(["NET_ADMIN"]));
        assert_eq!(
            h["LogConfig"],
            json!({"Type": "json-file", "Config": {"max-size": "10m"}})
        );
    }

    #[test]
    fn minimal_service_sets_only_what_it_says() {
        let b = create_body(&service(json!({"image": "busybox"})), "h");
        assert!(b.get("Cmd").is_none());
        assert!(b.get("Env").is_none());
        assert!(b["HostConfig"].get("NetworkMode").is_none());
        assert!(b["HostConfig"].get("RestartPolicy").is_none());
    }
}
