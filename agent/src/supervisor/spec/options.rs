//! ECS container options → engine [`ContainerOptions`]. Pure.
//!
//! * `mountPoints` resolve against the task's `volumes`: `host.sourcePath` is a bind mount;
//!   `dockerVolumeConfiguration` with `scope: shared` is the engine volume of that very name
//!   (persisting, reused by later tasks); everything else — `scope: task`, `host` without a path,
//!   a bare named volume — is an engine volume private to the task ([`task_volume_name`]),
//!   labelled so that the runtime removes it with the task's last container.
//! * `volumesFrom` and `links` name containers of the same task; the engine wants their real
//!   names, which are planned ([`super::container_name`]), so no lookup is needed. The engine
//!   needs a `volumesFrom` source to exist when the dependant is created, and a `links` target
//!   to be running when the dependant starts (see `decide_order.rs` for start gates).
//! * `linuxParameters`, `ulimits`, `systemControls`, networking and security passthroughs map
//!   one to one; `logConfiguration.options` only apply to `json-file` (other drivers fall back
//!   to json-file with its defaults).

use super::{MIB, container_name};
use crate::runtime::{
    ContainerOptions, DeviceSpec, LABEL_TASK_ID, LABEL_VOLUME_SCOPE, MountSource, MountSpec,
    UlimitSpec, VolumeSpec,
};
use berth_proto::model::{ContainerDefinition, LinuxParameters, TaskDefinition, Volume};
use std::collections::BTreeMap;

/// The engine's default volume driver.
pub const LOCAL_DRIVER: &str = "local";

/// `berth-<family>-<rev>-vol-<volume>-<first 12 of task id>`: an engine volume private to one
/// task (engine volume names allow `[a-zA-Z0-9_.-]`, like container names).
pub fn task_volume_name(def: &TaskDefinition, volume: &str, task_id: &str) -> String {
    container_name(def, &format!("vol-{volume}"), task_id)
}

pub(super) fn container_options(
    task_id: &str,
    def: &TaskDefinition,
    c: &ContainerDefinition,
    warnings: &mut Vec<String>,
) -> ContainerOptions {
    let mut o = ContainerOptions {
        mounts: mounts(task_id, def, c, warnings),
        volumes_from: c
            .volumes_from
            .iter()
            .flatten()
            .filter_map(|v| {
                let source = container_name(def, v.source_container.as_deref()?, task_id);
                Some(if v.read_only == Some(true) { format!("{source}:ro") } else { source })
            })
            .collect(),
        links: c
            .links
            .iter()
            .flatten()
            .map(|l| {
                let (target, alias) = l.split_once(':').unwrap_or((l, l));
                format!("{}:{alias}", container_name(def, target, task_id))
            })
            .collect(),
        dns_servers: c.dns_servers.clone().unwrap_or_default(),
        dns_search_domains: c.dns_search_domains.clone().unwrap_or_default(),
        extra_hosts: c
            .extra_hosts
            .iter()
            .flatten()
            .map(|h| format!("{}:{}", h.hostname, h.ip_address))
            .collect(),
        network_disabled: c.disable_networking == Some(true),
        privileged: c.privileged == Some(true),
        readonly_rootfs: c.readonly_root_filesystem == Some(true),
        ulimits: c
            .ulimits
            .iter()
            .flatten()
            .map(|u| UlimitSpec { name: u.name.clone(), soft: u.soft_limit, hard: u.hard_limit })
            .collect(),
        sysctls: c
            .system_controls
            .iter()
            .flatten()
            .filter_map(|s| Some((s.namespace.clone()?, s.value.clone().unwrap_or_default())))
            .collect(),
        open_stdin: c.interactive == Some(true),
        tty: c.pseudo_terminal == Some(true),
        log_options: match &c.log_configuration {
            Some(l) if l.log_driver == "json-file" => l.options.clone().unwrap_or_default(),
            _ => BTreeMap::new(),
        },
        ..Default::default()
    };
    if let Some(lp) = &c.linux_parameters {
        apply_linux_parameters(lp, &mut o);
    }
    o
}

fn apply_linux_parameters(lp: &LinuxParameters, o: &mut ContainerOptions) {
    if let Some(caps) = &lp.capabilities {
        o.cap_add = caps.add.clone().unwrap_or_default();
        o.cap_drop = caps.drop.clone().unwrap_or_default();
    }
    o.devices = lp
        .devices
        .iter()
        .flatten()
        .map(|d| DeviceSpec {
            host_path: d.host_path.clone(),
            container_path: d.container_path.clone().unwrap_or_else(|| d.host_path.clone()),
            permissions: match &d.permissions {
                None => "rwm".to_string(),
                Some(p) => ["read", "write", "mknod"]
                    .iter()
                    .zip(['r', 'w', 'm'])
                    .filter(|(name, _)| p.iter().any(|x| x == *name))
                    .map(|(_, letter)| letter)
                    .collect(),
            },
        })
        .collect();
    o.init = lp.init_process_enabled;
    o.shm_size_bytes = lp.shared_memory_size.filter(|s| *s > 0).map(|s| s.saturating_mul(MIB));
    o.tmpfs = lp
        .tmpfs
        .iter()
        .flatten()
        .map(|t| {
            let mut opts = t.mount_options.clone().unwrap_or_default();
            opts.push(format!("size={}m", t.size));
            (t.container_path.clone(), opts.join(","))
        })
        .collect();
}

fn mounts(
    task_id: &str,
    def: &TaskDefinition,
    c: &ContainerDefinition,
    warnings: &mut Vec<String>,
) -> Vec<MountSpec> {
    let mut out = Vec::new();
    for m in c.mount_points.iter().flatten() {
        let (Some(name), Some(path)) = (m.source_volume.as_deref(), m.container_path.as_deref())
        else {
            continue;
        };
        let Some(v) = def.volumes.iter().flatten().find(|v| v.name.as_deref() == Some(name)) else {
            warnings.push(format!("container {}: volume {name} is not in the task", c.name));
            continue;
        };
        let Some(source) = mount_source(task_id, def, name, v) else {
            warnings.push(format!(
                "container {}: volume {name} (EFS/FSx) cannot be mounted on this host; skipped",
                c.name
            ));
            continue;
        };
        out.push(MountSpec {
            source,
            container_path: path.to_string(),
            read_only: m.read_only == Some(true),
        });
    }
    out
}

fn mount_source(
    task_id: &str,
    def: &TaskDefinition,
    name: &str,
    v: &Volume,
) -> Option<MountSource> {
    if v.efs_volume_configuration.is_some()
        || v.fsx_windows_file_server_volume_configuration.is_some()
    {
        return None;
    }
    if let Some(path) = v.host.as_ref().and_then(|h| h.source_path.as_deref()) {
        return Some(MountSource::HostPath(path.to_string()));
    }
    let d = v.docker_volume_configuration.clone().unwrap_or_default();
    let shared = d.is_shared();
    let mut labels = d.labels.clone().unwrap_or_default();
    if shared {
        labels.insert(LABEL_VOLUME_SCOPE.into(), "shared".into());
    } else {
        labels.insert(LABEL_VOLUME_SCOPE.into(), "task".into());
        labels.insert(LABEL_TASK_ID.into(), task_id.into());
    }
    Some(MountSource::Volume(VolumeSpec {
        name: if shared { name.to_string() } else { task_volume_name(def, name, task_id) },
        shared,
        autoprovision: d.autoprovision == Some(true),
        driver: d.driver.clone().unwrap_or_else(|| LOCAL_DRIVER.to_string()),
        driver_opts: d.driver_opts.clone().unwrap_or_default(),
        labels,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::spec::{Placement, plan_task};
    use berth_proto::model::TaskDefinition;
    use serde_json::json;

    fn def() -> TaskDefinition {
        serde_json::from_value(json!({
            "family": "f", "revision": 2,
            "volumes": [
                {"name": "host", "host": {"sourcePath": "/srv/data"}},
                {"name": "scratch", "host": {}},
                {"name": "plain"},
                {"name": "cache", "dockerVolumeConfiguration": {"scope": "task",
                    "driver": "local", "driverOpts": {"type": "tmpfs", "device": "tmpfs"},
                    "labels": {"team": "a"}}},
                {"name": "shared", "dockerVolumeConfiguration": {"scope": "shared",
                    "autoprovision": true}}
            ],
            "containerDefinitions": [
                {"name": "db", "image": "busybox",
                 "mountPoints": [
                    {"sourceVolume": "host", "containerPath": "/h", "readOnly": true},
                    {"sourceVolume": "scratch", "containerPath": "/s"},
                    {"sourceVolume": "plain", "containerPath": "/p"},
                    {"sourceVolume": "cache", "containerPath": "/c"},
                    {"sourceVolume": "shared", "containerPath": "/sh"}
                 ]},
                {"name": "app", "image": "busybox",
                 "links": ["db:database", "db"],
                 "volumesFrom": [{"sourceContainer": "db", "readOnly": true}],
                 "hostname": "app-host", "user": "1000:1000", "workingDirectory": "/w",
                 "dnsServers": ["10.0.0.2"], "dnsSearchDomains": ["corp"],
                 "extraHosts": [{"hostname": "db.internal", "ipAddress": "10.9.8.7"}],
                 "disableNetworking": true, "privileged": true, "readonlyRootFilesystem": true,
                 "dockerLabels": {"team": "x", "berth.task-id": "forged"},
                 "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
                 "systemControls": [{"namespace": "net.core.somaxconn", "value": "512"}],
                 "linuxParameters": {
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]},
                    "devices": [{"hostPath": "/dev/fuse"},
                                {"hostPath": "/dev/null", "containerPath": "/dev/n",
                                 "permissions": ["read", "mknod"]}],
                    "initProcessEnabled": true, "sharedMemorySize": 64,
                    "tmpfs": [{"containerPath": "/tmp", "size": 16,
                               "mountOptions": ["rw", "mode=1777"]}]
                 },
                 "interactive": true, "pseudoTerminal": true,
                 "logConfiguration": {"logDriver": "json-file",
                                      "options": {"max-size": "1m", "max-file": "2"}}}
            ]
        }))
        .expect("definition")
    }

    const TASK: &str = "0123456789abcdef";

    fn plan() -> crate::supervisor::spec::TaskPlan {
        let p = Placement { instance_id: "i-1".into(), cluster: "c".into() };
        plan_task(TASK, 1, &def(), &p).expect("plan")
    }

    #[test]
    fn mount_points_resolve_to_binds_task_volumes_and_shared_volumes() {
        let plan = plan();
        let m = &plan.containers[0].spec.options.mounts;
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].source, MountSource::HostPath("/srv/data".into()));
        assert!(m[0].read_only);
        let task_labels = |extra: &[(&str, &str)]| {
            let mut l: BTreeMap<String, String> =
                extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            l.insert(LABEL_VOLUME_SCOPE.into(), "task".into());
            l.insert(LABEL_TASK_ID.into(), TASK.into());
            l
        };
        for (i, vol, path) in [(1, "scratch", "/s"), (2, "plain", "/p")] {
            assert_eq!(
                m[i],
                MountSpec {
                    source: MountSource::Volume(VolumeSpec {
                        name: format!("berth-f-2-vol-{vol}-0123456789ab"),
                        shared: false,
                        autoprovision: false,
                        driver: "local".into(),
                        driver_opts: BTreeMap::new(),
                        labels: task_labels(&[]),
                    }),
                    container_path: path.into(),
                    read_only: false,
                }
            );
        }
        let MountSource::Volume(cache) = &m[3].source else { panic!("cache is a volume") };
        assert_eq!(cache.name, "berth-f-2-vol-cache-0123456789ab");
        assert_eq!(cache.driver_opts.get("type").map(String::as_str), Some("tmpfs"));
        assert_eq!(cache.labels, task_labels(&[("team", "a")]));
        let MountSource::Volume(shared) = &m[4].source else { panic!("shared is a volume") };
        assert_eq!(
            (shared.name.as_str(), shared.shared, shared.autoprovision),
            ("shared", true, true)
        );
        assert_eq!(shared.labels.get(LABEL_VOLUME_SCOPE).map(String::as_str), Some("shared"));
        assert!(!shared.labels.contains_key(LABEL_TASK_ID), "shared volumes outlive tasks");
    }

    #[test]
    fn links_and_volumes_from_use_the_planned_engine_names() {
        let plan = plan();
        let o = &plan.containers[1].spec.options;
        assert_eq!(
            o.links,
            vec![
                "berth-f-2-db-0123456789ab:database".to_string(),
                "berth-f-2-db-0123456789ab:db".to_string()
            ]
        );
        assert_eq!(o.volumes_from, vec!["berth-f-2-db-0123456789ab:ro".to_string()]);
        assert_eq!(plan.containers[0].spec.name, "berth-f-2-db-0123456789ab");
    }

    #[test]
    fn passthroughs_and_linux_parameters_map_one_to_one() {
        let plan = plan();
        let s = &plan.containers[1].spec;
        let o = &s.options;
        assert_eq!(s.hostname.as_deref(), Some("app-host"));
        assert_eq!(s.user.as_deref(), Some("1000:1000"));
        assert_eq!(s.working_dir.as_deref(), Some("/w"));
        assert_eq!(o.dns_servers, vec!["10.0.0.2".to_string()]);
        assert_eq!(o.dns_search_domains, vec!["corp".to_string()]);
        assert_eq!(o.extra_hosts, vec!["db.internal:10.9.8.7".to_string()]);
        assert!(o.network_disabled && o.privileged && o.readonly_rootfs && o.open_stdin && o.tty);
        assert_eq!(o.ulimits, vec![UlimitSpec { name: "nofile".into(), soft: 1024, hard: 2048 }]);
        assert_eq!(o.sysctls.get("net.core.somaxconn").map(String::as_str), Some("512"));
        assert_eq!(
            (o.cap_add.clone(), o.cap_drop.clone()),
            (vec!["NET_ADMIN".into()], vec!["MKNOD".into()])
        );
        assert_eq!(
            o.devices,
            vec![
                DeviceSpec {
                    host_path: "/dev/fuse".into(),
                    container_path: "/dev/fuse".into(),
                    permissions: "rwm".into()
                },
                DeviceSpec {
                    host_path: "/dev/null".into(),
                    container_path: "/dev/n".into(),
                    permissions: "rm".into()
                },
            ]
        );
        assert_eq!(o.init, Some(true));
        assert_eq!(o.shm_size_bytes, Some(64 * MIB));
        assert_eq!(o.tmpfs.get("/tmp").map(String::as_str), Some("rw,mode=1777,size=16m"));
        assert_eq!(o.log_options.get("max-size").map(String::as_str), Some("1m"));
        assert_eq!(o.log_options.len(), 2);
    }

    #[test]
    fn docker_labels_never_override_berth_labels() {
        let plan = plan();
        let l = &plan.containers[1].spec.labels;
        assert_eq!(l.get("team").map(String::as_str), Some("x"));
        assert_eq!(l.get(LABEL_TASK_ID).map(String::as_str), Some(TASK));
    }

    #[test]
    fn other_log_drivers_drop_their_options() {
        let mut d = def();
        d.container_definitions[1].log_configuration = serde_json::from_value(
            json!({"logDriver": "awslogs", "options": {"awslogs-group": "g"}}),
        )
        .expect("log configuration");
        let p = Placement { instance_id: "i".into(), cluster: "c".into() };
        let plan = plan_task(TASK, 1, &d, &p).expect("plan");
        assert!(plan.containers[1].spec.options.log_options.is_empty());
        assert!(
            plan.warnings.iter().any(|w| w.contains("log driver awslogs")),
            "{:?}",
            plan.warnings
        );
    }
}
