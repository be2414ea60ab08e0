//! [`ContainerSpec`] → bollard's `ContainerCreateBody`. Pure.
//!
//! * Ports: exposed ports, and bindings unless `host`/`none` (an empty host port is dynamic).
//! * Mounts are `Binds` entries (`SOURCE:TARGET[:ro]`): for a host path the engine creates a
//!   missing directory, as ECS promises for `host.sourcePath` (the `Mounts` API would refuse);
//!   for a named volume the runtime has created the volume before (`volumes.rs`).
//! * Logs always go to `json-file`, with the spec's json-file options.
//! * Everything an older daemon (Debian's 20.10, API 1.41) rejects stays unset.

use crate::runtime::{ContainerSpec, HealthCheckSpec, MountSource};
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HealthConfig, HostConfig, HostConfigLogConfig, PortBinding,
    ResourcesUlimits,
};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Nanoseconds for Docker, saturating (Docker rejects nothing above a few centuries anyway).
fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// `None` → `["NONE"]`: without a declared check the image's HEALTHCHECK must not run either.
pub(super) fn health_config(hc: Option<&HealthCheckSpec>) -> HealthConfig {
    match hc {
        Some(hc) => HealthConfig {
            test: Some(hc.test.clone()),
            interval: Some(nanos(hc.interval)),
            timeout: Some(nanos(hc.timeout)),
            retries: Some(i64::from(hc.retries)),
            // 0 means "inherit from the image" to Docker, which is "none" unless the image
            // declares a start period of its own.
            start_period: Some(nanos(hc.start_period)),
            // StartInterval needs API 1.44; Debian's 20.10 daemon (1.41) would reject it.
            start_interval: None,
        },
        None => HealthConfig { test: Some(vec!["NONE".to_string()]), ..Default::default() },
    }
}

/// An empty list is "not set" to Docker; keep the body minimal.
fn some_vec(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn some_map(m: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// `true` or unset (Docker's own default is `false` for each of these flags).
fn flag(b: bool) -> Option<bool> {
    b.then_some(true)
}

/// `Binds` entries for the spec's mounts, in order.
pub(super) fn binds(spec: &ContainerSpec) -> Vec<String> {
    spec.options
        .mounts
        .iter()
        .map(|m| {
            let source = match &m.source {
                MountSource::HostPath(p) => p.as_str(),
                MountSource::Volume(v) => v.name.as_str(),
            };
            let mode = if m.read_only { ":ro" } else { "" };
            format!("{source}:{}{mode}", m.container_path)
        })
        .collect()
}

pub(super) fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    if spec.network_mode != "none" {
        for pm in &spec.port_mappings {
            let key = format!("{}/{}", pm.container_port, pm.protocol);
            exposed.push(key.clone());
            if spec.network_mode != "host" {
                let host_port = pm.host_port.filter(|p| *p != 0).map(|p| p.to_string());
                bindings
                    .entry(key)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(PortBinding {
                        host_ip: None,
                        host_port: Some(host_port.unwrap_or_default()),
                    });
            }
        }
    }
    let labels: HashMap<String, String> =
        spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let o = &spec.options;
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: spec.entrypoint.clone(),
        cmd: spec.cmd.clone(),
        env: engine_env(spec),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        hostname: spec.hostname.clone(),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        stop_timeout: spec.stop_timeout.map(|t| t.as_secs() as i64),
        healthcheck: Some(health_config(spec.health_check.as_ref())),
        network_disabled: flag(o.network_disabled),
        open_stdin: flag(o.open_stdin),
        tty: flag(o.tty),
        host_config: Some(HostConfig {
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            memory: spec.memory_bytes,
            memory_reservation: spec.memory_reservation_bytes,
            cpu_shares: spec.cpu_shares,
            network_mode: Some(spec.network_mode.clone()),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_string()),
                config: some_map(&o.log_options),
            }),
            binds: some_vec(&binds(spec)),
            volumes_from: some_vec(&o.volumes_from),
            links: some_vec(&o.links),
            dns: some_vec(&o.dns_servers),
            dns_search: some_vec(&o.dns_search_domains),
            extra_hosts: some_vec(&o.extra_hosts),
            privileged: flag(o.privileged),
            readonly_rootfs: flag(o.readonly_rootfs),
            ulimits: (!o.ulimits.is_empty()).then(|| {
                o.ulimits
                    .iter()
                    .map(|u| ResourcesUlimits {
                        name: Some(u.name.clone()),
                        soft: Some(u.soft),
                        hard: Some(u.hard),
                    })
                    .collect()
            }),
            sysctls: some_map(&o.sysctls),
            cap_add: some_vec(&o.cap_add),
            cap_drop: some_vec(&o.cap_drop),
            devices: (!o.devices.is_empty()).then(|| {
                o.devices
                    .iter()
                    .map(|d| DeviceMapping {
                        path_on_host: Some(d.host_path.clone()),
                        path_in_container: Some(d.container_path.clone()),
                        cgroup_permissions: Some(d.permissions.clone()),
                    })
                    .collect()
            }),
            init: o.init,
            shm_size: o.shm_size_bytes,
            tmpfs: some_map(&o.tmpfs),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `env`, then the secret variables (a secret wins over a plain variable of the same name).
fn engine_env(spec: &ContainerSpec) -> Option<Vec<String>> {
    let secret_name = |kv: &String| {
        let name = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        spec.secret_env.iter().any(|s| s.name == name)
    };
    let mut env: Vec<String> = spec.env.iter().filter(|kv| !secret_name(kv)).cloned().collect();
    env.extend(spec.secret_env.iter().map(|s| format!("{}={}", s.name, s.value.expose())));
    (!env.is_empty()).then_some(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{
        ContainerOptions, DeviceSpec, MountSpec, PortMappingSpec, UlimitSpec, VolumeSpec,
    };

    #[test]
    fn health_config_is_in_nanoseconds_and_no_check_disables_the_image_one() {
        let hc = HealthCheckSpec {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            retries: 3,
            start_period: Duration::from_secs(10),
        };
        let c = health_config(Some(&hc));
        assert_eq!(c.test, Some(hc.test.clone()));
        assert_eq!(c.interval, Some(30_000_000_000));
        assert_eq!(c.timeout, Some(5_000_000_000));
        assert_eq!(c.retries, Some(3));
        assert_eq!(c.start_period, Some(10_000_000_000));
        assert_eq!(health_config(None).test, Some(vec!["NONE".to_string()]));
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    fn map(v: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn full_spec() -> ContainerSpec {
        let volume = VolumeSpec { name: "berth-f-1-vol-data-abc".into(), ..Default::default() };
        ContainerSpec {
            name: "berth-f-1-app-abc".into(),
            image: "busybox".into(),
            network_mode: "bridge".into(),
            hostname: Some("app-host".into()),
            user: Some("1000:1000".into()),
            working_dir: Some("/w".into()),
            options: ContainerOptions {
                mounts: vec![
                    MountSpec {
                        source: MountSource::HostPath("/srv/data".into()),
                        container_path: "/h".into(),
                        read_only: true,
                    },
                    MountSpec {
                        source: MountSource::Volume(volume),
                        container_path: "/data".into(),
                        read_only: false,
                    },
                ],
                volumes_from: vec!["berth-f-1-db-abc:ro".into()],
                links: vec!["berth-f-1-db-abc:database".into()],
                dns_servers: vec!["10.0.0.2".into()],
                dns_search_domains: vec!["corp".into()],
                extra_hosts: vec!["db.internal:10.9.8.7".into()],
                network_disabled: true,
                privileged: true,
                readonly_rootfs: true,
                ulimits: vec![UlimitSpec { name: "nofile".into(), soft: 1024, hard: 2048 }],
                sysctls: [("net.core.somaxconn".to_string(), "512".to_string())].into(),
                cap_add: vec!["NET_ADMIN".into()],
                cap_drop: vec!["MKNOD".into()],
                devices: vec![DeviceSpec {
                    host_path: "/dev/null".into(),
                    container_path: "/dev/n".into(),
                    permissions: "rm".into(),
                }],
                init: Some(true),
                shm_size_bytes: Some(64 << 20),
                tmpfs: [("/tmp".to_string(), "rw,size=16m".to_string())].into(),
                open_stdin: true,
                tty: true,
                log_options: [("max-size".to_string(), "1m".to_string())].into(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn every_option_lands_in_the_docker_config_and_host_config() {
        let body = create_body(&full_spec());
        assert_eq!(body.hostname.as_deref(), Some("app-host"));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.working_dir.as_deref(), Some("/w"));
        assert_eq!(
            (body.network_disabled, body.open_stdin, body.tty),
            (Some(true), Some(true), Some(true))
        );
        let h = body.host_config.expect("host config");
        assert_eq!(h.binds, strings(&["/srv/data:/h:ro", "berth-f-1-vol-data-abc:/data"]));
        assert_eq!(h.volumes_from, strings(&["berth-f-1-db-abc:ro"]));
        assert_eq!(h.links, strings(&["berth-f-1-db-abc:database"]));
        assert_eq!(h.dns, strings(&["10.0.0.2"]));
        assert_eq!(h.dns_search, strings(&["corp"]));
        assert_eq!(h.extra_hosts, strings(&["db.internal:10.9.8.7"]));
        assert_eq!((h.privileged, h.readonly_rootfs), (Some(true), Some(true)));
        assert_eq!(
            h.ulimits,
            Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(1024),
                hard: Some(2048)
            }])
        );
        assert_eq!(h.sysctls, map(&[("net.core.somaxconn", "512")]));
        assert_eq!(h.cap_add, strings(&["NET_ADMIN"]));
        assert_eq!(h.cap_drop, strings(&["MKNOD"]));
        assert_eq!(
            h.devices,
            Some(vec![DeviceMapping {
                path_on_host: Some("/dev/null".into()),
                path_in_container: Some("/dev/n".into()),
                cgroup_permissions: Some("rm".into()),
            }])
        );
        assert_eq!((h.init, h.shm_size), (Some(true), Some(64 << 20)));
        assert_eq!(h.tmpfs, map(&[("/tmp", "rw,size=16m")]));
        let log = h.log_config.expect("log config");
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config, map(&[("max-size", "1m")]));
    }

    #[test]
    fn a_plain_spec_leaves_every_option_unset() {
        let spec = ContainerSpec {
            name: "c".into(),
            image: "busybox".into(),
            network_mode: "bridge".into(),
            port_mappings: vec![PortMappingSpec {
                container_port: 80,
                host_port: None,
                protocol: "tcp".into(),
            }],
            ..Default::default()
        };
        let body = create_body(&spec);
        assert_eq!((body.network_disabled, body.open_stdin, body.tty), (None, None, None));
        let h = body.host_config.expect("host config");
        assert!(h.binds.is_none() && h.volumes_from.is_none() && h.links.is_none());
        assert!(h.dns.is_none() && h.extra_hosts.is_none() && h.ulimits.is_none());
        assert!(h.cap_add.is_none() && h.devices.is_none() && h.tmpfs.is_none());
        assert!(h.privileged.is_none() && h.readonly_rootfs.is_none() && h.init.is_none());
        assert!(h.log_config.is_some_and(|l| l.config.is_none()));
        assert_eq!(
            h.port_bindings.and_then(|b| b.get("80/tcp").cloned()).flatten(),
            Some(vec![PortBinding { host_ip: None, host_port: Some(String::new()) }])
        );
    }

    #[test]
    fn secret_variables_follow_env_and_win_over_a_plain_one_of_the_same_name() {
        use crate::runtime::SecretEnv;
        let spec = ContainerSpec {
            env: vec!["A=1".into(), "DB=plain".into()],
            secret_env: vec![SecretEnv { name: "DB".into(), value: "s3cr3t".to_string().into() }],
            ..Default::default()
        };
        assert_eq!(create_body(&spec).env, strings(&["A=1", "DB=s3cr3t"]));
        assert!(!format!("{spec:?}").contains("s3cr3t"), "Debug of a spec redacts secrets");
        assert_eq!(create_body(&ContainerSpec::default()).env, None);
    }
}
