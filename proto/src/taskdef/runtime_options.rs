//! Rules for the container options the agent hands to Docker: volumes (`host.sourcePath`,
//! `dockerVolumeConfiguration`), `links` syntax, networking passthroughs (`hostname`,
//! `dnsServers`, `dnsSearchDomains`, `extraHosts`), `workingDirectory`, `ulimits`,
//! `systemControls`, `linuxParameters` and `json-file` log options (ECS-NOTES §1.2, §1.5).
//!
//! Called from `validate` (task volumes) and `containers` (one container); references between
//! containers (`links` targets, `volumesFrom`, `mountPoints[].sourceVolume`) are checked in
//! `validate`. Pure; every violation names its field path.

use super::validate::{Findings, MAX_NAME_LEN};
use crate::model::{ContainerDefinition, LinuxParameters, TaskDefinition, Volume};
use std::net::IpAddr;

/// Linux capabilities ECS accepts in `linuxParameters.capabilities` (without `CAP_`).
pub(crate) const CAPABILITIES: [&str; 38] = [
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// `ulimits[].name` values ECS accepts.
pub(crate) const ULIMIT_NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `linuxParameters.tmpfs[].mountOptions` ECS accepts (the part before any `=`).
pub(crate) const TMPFS_OPTIONS: [&str; 39] = [
    "defaults",
    "ro",
    "rw",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "bind",
    "rbind",
    "unbindable",
    "runbindable",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "mpol",
];

/// Options Docker's `json-file` log driver accepts; any other makes container creation fail.
pub(crate) const JSON_FILE_OPTIONS: [&str; 8] =
    ["max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"];

/// `devices[].permissions` values.
pub(crate) const DEVICE_PERMISSIONS: [&str; 3] = ["read", "write", "mknod"];

/// One task volume: `host.sourcePath` must be absolute; `dockerVolumeConfiguration.scope` is
/// `task` or `shared`, and `autoprovision` only goes with `shared`.
pub(crate) fn check_volume(i: usize, v: &Volume, f: &mut Findings) {
    let path = format!("volumes[{i}]");
    if let Some(source) = v.host.as_ref().and_then(|h| h.source_path.as_deref())
        && !source.starts_with('/')
    {
        f.fail(format!("{path}.host.sourcePath"), format!("\"{source}\" is not an absolute path"));
    }
    let Some(d) = &v.docker_volume_configuration else { return };
    let p = format!("{path}.dockerVolumeConfiguration");
    if let Some(scope) = d.scope.as_deref()
        && scope != "task"
        && scope != "shared"
    {
        f.fail(format!("{p}.scope"), format!("\"{scope}\" is not one of task, shared"));
    }
    if d.autoprovision == Some(true) && !d.is_shared() {
        f.fail(
            format!("{p}.autoprovision"),
            "autoprovision is only valid with scope shared (task volumes are always created)",
        );
    }
    if d.driver.as_deref().is_some_and(str::is_empty) {
        f.fail(format!("{p}.driver"), "driver must not be empty (omit it for local)");
    }
}

/// The container options of one container (see the module doc).
pub(crate) fn check_container_options(
    def: &TaskDefinition,
    c: &ContainerDefinition,
    path: &str,
    f: &mut Findings,
) {
    check_links(c, path, f);
    check_networking(def, c, path, f);
    if let Some(dir) = c.working_directory.as_deref()
        && !dir.starts_with('/')
    {
        f.fail(format!("{path}.workingDirectory"), format!("\"{dir}\" is not an absolute path"));
    }
    for (i, m) in c.mount_points.iter().flatten().enumerate() {
        if let Some(target) = m.container_path.as_deref()
            && !target.is_empty()
            && !target.starts_with('/')
        {
            f.fail(
                format!("{path}.mountPoints[{i}].containerPath"),
                format!("\"{target}\" is not an absolute path"),
            );
        }
    }
    for (i, u) in c.ulimits.iter().flatten().enumerate() {
        if !ULIMIT_NAMES.contains(&u.name.as_str()) {
            f.fail(
                format!("{path}.ulimits[{i}].name"),
                format!("\"{}\" is not one of {}", u.name, ULIMIT_NAMES.join(", ")),
            );
        }
    }
    for (i, s) in c.system_controls.iter().flatten().enumerate() {
        let p = format!("{path}.systemControls[{i}]");
        let namespace = s.namespace.as_deref().unwrap_or("");
        if namespace.is_empty() {
            f.fail(format!("{p}.namespace"), "namespace (the sysctl name) is required");
        } else if namespace.starts_with("net.") && def.network_mode() == "host" {
            f.fail(
                format!("{p}.namespace"),
                format!("{namespace}: net.* sysctls cannot be set with networkMode host"),
            );
        }
        if s.value.is_none() {
            f.fail(format!("{p}.value"), "value is required");
        }
    }
    if let Some(lp) = &c.linux_parameters {
        check_linux_parameters(lp, &format!("{path}.linuxParameters"), f);
    }
    if let Some(log) = &c.log_configuration
        && log.log_driver == "json-file"
    {
        for key in log.options.iter().flatten().map(|(k, _)| k) {
            if !JSON_FILE_OPTIONS.contains(&key.as_str()) {
                f.fail(
                    format!("{path}.logConfiguration.options"),
                    format!(
                        "\"{key}\" is not a json-file option ({})",
                        JSON_FILE_OPTIONS.join(", ")
                    ),
                );
            }
        }
    }
}

/// `links[]`: `name` or `name:alias`, each `[A-Za-z0-9_-]{1,255}`.
fn check_links(c: &ContainerDefinition, path: &str, f: &mut Findings) {
    for (j, link) in c.links.iter().flatten().enumerate() {
        let p = format!("{path}.links[{j}]");
        let mut parts = link.split(':');
        let (name, alias) = (parts.next().unwrap_or(""), parts.next());
        if parts.next().is_some() {
            f.fail(p, format!("\"{link}\" is not NAME or NAME:ALIAS"));
            continue;
        }
        if let Some(alias) = alias {
            f.check_name(&p, "link alias", alias);
        }
        if name.is_empty() {
            f.fail(p, format!("\"{link}\" names no container"));
        }
    }
}

fn check_networking(def: &TaskDefinition, c: &ContainerDefinition, path: &str, f: &mut Findings) {
    let awsvpc = def.network_mode() == "awsvpc";
    let used = [
        ("hostname", c.hostname.is_some()),
        ("dnsServers", c.dns_servers.as_ref().is_some_and(|d| !d.is_empty())),
        ("dnsSearchDomains", c.dns_search_domains.as_ref().is_some_and(|d| !d.is_empty())),
        ("extraHosts", c.extra_hosts.as_ref().is_some_and(|e| !e.is_empty())),
    ];
    for (field, present) in used {
        if awsvpc && present {
            f.fail(format!("{path}.{field}"), format!("{field} is not supported with awsvpc"));
        }
    }
    if let Some(h) = c.hostname.as_deref()
        && (h.is_empty() || h.len() > MAX_NAME_LEN || h.chars().any(char::is_whitespace))
    {
        f.fail(format!("{path}.hostname"), format!("\"{h}\" is not a valid hostname"));
    }
    for (i, ip) in c.dns_servers.iter().flatten().enumerate() {
        if ip.parse::<IpAddr>().is_err() {
            f.fail(format!("{path}.dnsServers[{i}]"), format!("\"{ip}\" is not an IP address"));
        }
    }
    for (i, d) in c.dns_search_domains.iter().flatten().enumerate() {
        if d.is_empty() || d.chars().any(char::is_whitespace) {
            f.fail(format!("{path}.dnsSearchDomains[{i}]"), format!("\"{d}\" is not a domain"));
        }
    }
    for (i, e) in c.extra_hosts.iter().flatten().enumerate() {
        let p = format!("{path}.extraHosts[{i}]");
        if e.hostname.is_empty() || e.hostname.contains(':') || e.hostname.contains(' ') {
            f.fail(format!("{p}.hostname"), format!("\"{}\" is not a hostname", e.hostname));
        }
        if e.ip_address.parse::<IpAddr>().is_err() {
            f.fail(format!("{p}.ipAddress"), format!("\"{}\" is not an IP address", e.ip_address));
        }
    }
}

fn check_linux_parameters(lp: &LinuxParameters, path: &str, f: &mut Findings) {
    if let Some(caps) = &lp.capabilities {
        for (field, list) in [("add", &caps.add), ("drop", &caps.drop)] {
            for (i, cap) in list.iter().flatten().enumerate() {
                if !CAPABILITIES.contains(&cap.as_str()) {
                    f.fail(
                        format!("{path}.capabilities.{field}[{i}]"),
                        format!("\"{cap}\" is not a Linux capability ECS knows (e.g. NET_ADMIN)"),
                    );
                }
            }
        }
    }
    for (i, d) in lp.devices.iter().flatten().enumerate() {
        let p = format!("{path}.devices[{i}]");
        if !d.host_path.starts_with('/') {
            f.fail(format!("{p}.hostPath"), format!("\"{}\" is not an absolute path", d.host_path));
        }
        if let Some(cp) = d.container_path.as_deref()
            && !cp.starts_with('/')
        {
            f.fail(format!("{p}.containerPath"), format!("\"{cp}\" is not an absolute path"));
        }
        for (j, perm) in d.permissions.iter().flatten().enumerate() {
            if !DEVICE_PERMISSIONS.contains(&perm.as_str()) {
                f.fail(
                    format!("{p}.permissions[{j}]"),
                    format!("\"{perm}\" is not one of {}", DEVICE_PERMISSIONS.join(", ")),
                );
            }
        }
    }
    if let Some(shm) = lp.shared_memory_size.filter(|s| *s <= 0) {
        f.fail(format!("{path}.sharedMemorySize"), format!("{shm} MiB; it must be positive"));
    }
    for (i, t) in lp.tmpfs.iter().flatten().enumerate() {
        let p = format!("{path}.tmpfs[{i}]");
        if !t.container_path.starts_with('/') {
            f.fail(
                format!("{p}.containerPath"),
                format!("\"{}\" is not an absolute path", t.container_path),
            );
        }
        if t.size <= 0 {
            f.fail(format!("{p}.size"), format!("{} MiB; it must be positive", t.size));
        }
        for (j, opt) in t.mount_options.iter().flatten().enumerate() {
            let key = opt.split('=').next().unwrap_or(opt);
            if !TMPFS_OPTIONS.contains(&key) {
                f.fail(
                    format!("{p}.mountOptions[{j}]"),
                    format!("\"{opt}\" is not a tmpfs mount option"),
                );
            }
        }
    }
    if let Some(s) = lp.swappiness.filter(|s| !(0..=100).contains(s)) {
        f.fail(format!("{path}.swappiness"), format!("{s} is outside 0..100"));
    }
    if let Some(s) = lp.max_swap.filter(|s| *s < 0) {
        f.fail(format!("{path}.maxSwap"), format!("{s} MiB; it must not be negative"));
    }
}

#[cfg(test)]
mod tests {
    use crate::taskdef::{Registration, TaskDefError, parse_registration};
    use serde_json::{Value, json};

    fn with(container: Value, task: Value) -> Result<Registration, TaskDefError> {
        let mut c = json!({"name": "app", "image": "busybox", "memory": 32});
        let mut d = json!({"family": "f", "volumes": [{"name": "data"}]});
        if let (Value::Object(c), Value::Object(extra)) = (&mut c, container) {
            c.extend(extra);
        }
        if let (Value::Object(d), Value::Object(extra)) = (&mut d, task) {
            d.extend(extra);
        }
        d["containerDefinitions"] = json!([c, {"name": "db", "image": "busybox", "memory": 32}]);
        parse_registration(&d.to_string(), None)
    }

    fn err_text(container: Value, task: Value) -> String {
        match with(container, task) {
            Ok(r) => panic!("expected an error, got warnings {:?}", r.warnings),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_container_feature_registers_without_not_applied_warnings() {
        let r = with(
            json!({
                "links": ["db:database"],
                "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}],
                "volumesFrom": [{"sourceContainer": "db", "readOnly": false}],
                "hostname": "app", "dnsServers": ["10.0.0.2"], "dnsSearchDomains": ["corp"],
                "extraHosts": [{"hostname": "h", "ipAddress": "10.1.1.1"}],
                "disableNetworking": false, "user": "1000:1000", "workingDirectory": "/w",
                "privileged": true, "readonlyRootFilesystem": true,
                "dockerLabels": {"team": "x"},
                "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
                "systemControls": [{"namespace": "net.core.somaxconn", "value": "512"}],
                "linuxParameters": {
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]},
                    "devices": [{"hostPath": "/dev/null", "containerPath": "/dev/n",
                                 "permissions": ["read"]}],
                    "initProcessEnabled": true, "sharedMemorySize": 64,
                    "tmpfs": [{"containerPath": "/tmp", "size": 16, "mountOptions": ["mode=1777"]}]
                },
                "interactive": true, "pseudoTerminal": true,
                "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m"}}
            }),
            json!({"volumes": [
                {"name": "data", "dockerVolumeConfiguration":
                    {"scope": "shared", "autoprovision": true, "driver": "local",
                     "driverOpts": {"type": "tmpfs", "device": "tmpfs"}, "labels": {"a": "b"}}}
            ]}),
        )
        .expect("registers");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let lp = r.definition.container_definitions[0].linux_parameters.clone().expect("typed");
        assert_eq!(lp.init_process_enabled, Some(true));
    }

    #[test]
    fn volume_rules_name_the_field() {
        let e = err_text(
            json!({}),
            json!({"volumes": [{"name": "data", "dockerVolumeConfiguration":
                {"scope": "task", "autoprovision": true}}]}),
        );
        assert!(e.contains("volumes[0].dockerVolumeConfiguration.autoprovision"), "{e}");
        let e = err_text(
            json!({}),
            json!({"volumes": [{"name": "data", "dockerVolumeConfiguration": {"scope": "node"}}]}),
        );
        assert!(e.contains("dockerVolumeConfiguration.scope: \"node\" is not one of"), "{e}");
        let e =
            err_text(json!({}), json!({"volumes": [{"name": "d", "host": {"sourcePath": "x"}}]}));
        assert!(e.contains("volumes[0].host.sourcePath"), "{e}");
        let e = err_text(
            json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "d"}]}),
            json!({}),
        );
        assert!(e.contains("containerDefinitions[0].mountPoints[0].containerPath"), "{e}");
    }

    #[test]
    fn container_option_rules_name_the_field() {
        for (container, needle) in [
            (json!({"links": ["db:a:b"]}), "links[0]: \"db:a:b\" is not NAME or NAME:ALIAS"),
            (json!({"links": ["db:a b"]}), "links[0]: link alias"),
            (json!({"dnsServers": ["dns.example"]}), "dnsServers[0]: \"dns.example\" is not an IP"),
            (
                json!({"extraHosts": [{"hostname": "h", "ipAddress": "nope"}]}),
                "extraHosts[0].ipAddress",
            ),
            (json!({"workingDirectory": "rel"}), "workingDirectory: \"rel\" is not an absolute"),
            (
                json!({"ulimits": [{"name": "files", "softLimit": 1, "hardLimit": 1}]}),
                "ulimits[0].name: \"files\" is not one of",
            ),
            (json!({"systemControls": [{"value": "1"}]}), "systemControls[0].namespace"),
            (
                json!({"linuxParameters": {"capabilities": {"add": ["CAP_NET_ADMIN"]}}}),
                "linuxParameters.capabilities.add[0]",
            ),
            (
                json!({"linuxParameters": {"devices": [{"hostPath": "/dev/null",
                    "permissions": ["rw"]}]}}),
                "linuxParameters.devices[0].permissions[0]",
            ),
            (json!({"linuxParameters": {"sharedMemorySize": 0}}), "sharedMemorySize"),
            (
                json!({"linuxParameters": {"tmpfs": [{"containerPath": "/t", "size": 0}]}}),
                "linuxParameters.tmpfs[0].size",
            ),
            (
                json!({"linuxParameters": {"tmpfs": [{"containerPath": "/t", "size": 1,
                    "mountOptions": ["fast"]}]}}),
                "tmpfs[0].mountOptions[0]",
            ),
            (
                json!({"logConfiguration": {"logDriver": "json-file", "options": {"x": "1"}}}),
                "logConfiguration.options: \"x\" is not a json-file option",
            ),
        ] {
            let e = err_text(container.clone(), json!({}));
            assert!(e.contains(needle), "{container}: {e} should contain {needle}");
        }
    }

    #[test]
    fn network_mode_restricts_hostname_dns_and_net_sysctls() {
        let e = err_text(json!({"hostname": "h"}), json!({"networkMode": "awsvpc"}));
        assert!(e.contains("containerDefinitions[0].hostname: hostname is not supported"), "{e}");
        let e = err_text(
            json!({"systemControls": [{"namespace": "net.core.somaxconn", "value": "1"}]}),
            json!({"networkMode": "host"}),
        );
        assert!(e.contains("net.* sysctls cannot be set with networkMode host"), "{e}");
    }

    #[test]
    fn berth_labels_swap_and_foreign_drivers_are_warned() {
        let r = with(
            json!({"dockerLabels": {"berth.task-id": "x", "ok": "1"},
                   "linuxParameters": {"swappiness": 10},
                   "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}}}),
            json!({"volumes": [{"name": "data", "dockerVolumeConfiguration":
                {"scope": "shared", "driver": "rexray"}}]}),
        )
        .expect("registers");
        let all = r.warnings.join("\n");
        assert!(all.contains("dockerLabels berth.task-id are ignored"), "{all}");
        assert!(all.contains("linuxParameters.swappiness not applied"), "{all}");
        assert!(all.contains("logDriver awslogs is not available"), "{all}");
        assert!(all.contains("volume driver rexray must be installed"), "{all}");
    }
}
