//! What a Berth host accepts in a task definition but cannot honour as ECS would: one warning
//! line per feature (never a silent drop). The definition is registered unchanged; the agent and
//! scheduler decide what to do at run time (e.g. non-`json-file` log drivers fall back to
//! `json-file`, GPU requirements make placement report `RESOURCE:GPU`).

use crate::model::TaskDefinition;

/// Label keys the agent sets on every container; `dockerLabels` cannot override them.
pub const RESERVED_LABEL_PREFIX: &str = "berth.";

/// Warnings for a (valid) definition, in document order: task-level first, then per container.
pub(crate) fn unsupported(def: &TaskDefinition) -> Vec<String> {
    let mut w = Vec::new();
    if def.requires_compatibilities.iter().flatten().any(|c| c == "FARGATE") {
        w.push(
            "requiresCompatibilities FARGATE: Berth has no Fargate; the task runs on a Berth \
             host (EC2-like), and Fargate's task-size combinations are not enforced"
                .to_string(),
        );
    }
    if def.network_mode() == "awsvpc" {
        w.push(
            "networkMode awsvpc: there are no ENIs on a Berth host; each task gets a network \
             namespace and address of its own on the agent's awsvpc bridge network \
             (berth-awsvpc by default, --awsvpc-network on the agent), \
             reachable from that host only, and publishes no host ports"
                .to_string(),
        );
    }
    if def.task_role_arn.is_some() || def.execution_role_arn.is_some() {
        let which: Vec<&str> = [
            def.task_role_arn.as_ref().map(|_| "taskRoleArn"),
            def.execution_role_arn.as_ref().map(|_| "executionRoleArn"),
        ]
        .into_iter()
        .flatten()
        .collect();
        w.push(format!(
            "{}: there is no IAM on a Berth host; kept for reference, no credentials are delivered",
            which.join(", ")
        ));
    }
    let task_level: [(&str, bool, &str); 5] = [
        ("ephemeralStorage", def.ephemeral_storage.is_some(), "task storage is the host's disk"),
        (
            "runtimePlatform",
            def.runtime_platform.is_some(),
            "tasks run on the host's own OS and CPU architecture",
        ),
        (
            "proxyConfiguration",
            def.proxy_configuration.is_some(),
            "App Mesh proxies are not configured",
        ),
        (
            "inferenceAccelerators",
            def.inference_accelerators.is_some(),
            "Elastic Inference is not available",
        ),
        (
            "enableFaultInjection",
            def.enable_fault_injection == Some(true),
            "fault injection is not available",
        ),
    ];
    for (field, present, why) in task_level {
        if present {
            w.push(format!("{field}: ignored by Berth ({why})"));
        }
    }
    for (i, v) in def.volumes.iter().flatten().enumerate() {
        let name = v.name.as_deref().unwrap_or("");
        if v.efs_volume_configuration.is_some() {
            w.push(format!(
                "volumes[{i}] \"{name}\": EFS volumes cannot be mounted by a Berth host"
            ));
        }
        if v.fsx_windows_file_server_volume_configuration.is_some() {
            w.push(format!(
                "volumes[{i}] \"{name}\": FSx volumes cannot be mounted by a Berth host"
            ));
        }
    }
    for (i, v) in def.volumes.iter().flatten().enumerate() {
        let name = v.name.as_deref().unwrap_or("");
        if let Some(driver) = v
            .docker_volume_configuration
            .as_ref()
            .and_then(|d| d.driver.as_deref())
            .filter(|d| *d != "local")
        {
            w.push(format!(
                "volumes[{i}] \"{name}\": volume driver {driver} must be installed on the Berth \
                 host (only local is built in); otherwise the container cannot be created"
            ));
        }
    }
    for (i, c) in def.container_definitions.iter().enumerate() {
        container_warnings(i, c, &mut w);
        not_applied_yet(i, c, &mut w);
    }
    w
}

/// Container fields the agent does not apply yet (they come with the complete agent): named in
/// one warning per container, so a definition that relies on them is never silently weakened.
fn not_applied_yet(i: usize, c: &crate::model::ContainerDefinition, w: &mut Vec<String>) {
    let present = |v: bool, name: &'static str| v.then_some(name);
    let fields: Vec<&str> = [
        present(
            c.linux_parameters.as_ref().is_some_and(|l| l.max_swap.is_some()),
            "linuxParameters.maxSwap",
        ),
        present(
            c.linux_parameters.as_ref().is_some_and(|l| l.swappiness.is_some()),
            "linuxParameters.swappiness",
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !fields.is_empty() {
        w.push(format!(
            "containerDefinitions[{i}] \"{}\": {} not applied by the Berth agent yet; the \
             container runs without them",
            c.name,
            fields.join(", ")
        ));
    }
}

fn container_warnings(i: usize, c: &crate::model::ContainerDefinition, w: &mut Vec<String>) {
    let at = format!("containerDefinitions[{i}] \"{}\"", c.name);
    let reserved: Vec<&str> = c
        .docker_labels
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with(RESERVED_LABEL_PREFIX))
        .collect();
    if !reserved.is_empty() {
        w.push(format!(
            "{at}: dockerLabels {} are ignored ({RESERVED_LABEL_PREFIX}* labels are Berth's own)",
            reserved.join(", ")
        ));
    }
    if let Some(log) = &c.log_configuration {
        if log.log_driver != "json-file" {
            w.push(format!(
                "{at}: logDriver {} is not available on a Berth host; logs fall back to json-file",
                log.log_driver
            ));
        }
        if log.secret_options.as_ref().is_some_and(|s| !s.is_empty()) {
            w.push(format!(
                "{at}: logConfiguration.secretOptions are not resolved (logs always use json-file)"
            ));
        }
    }
    // Secrets resolve when a task starts (as in ECS): a valueFrom naming no Berth secret form
    // is only a warning here; such a task stops with ResourceInitializationError.
    for (j, secret) in c.secrets.iter().flatten().enumerate() {
        if let Err(e) = crate::secrets::SecretRef::parse(&secret.value_from) {
            w.push(format!(
                "{at}.secrets[{j}] {}: {e}; tasks will stop with ResourceInitializationError",
                secret.name
            ));
        }
    }
    if c.repository_credentials.is_some() {
        w.push(format!(
            "{at}: repositoryCredentials (a Secrets Manager ARN) cannot be read; the image is \
             pulled with the host's Docker credentials"
        ));
    }
    if c.environment_files.as_ref().is_some_and(|e| !e.is_null()) {
        w.push(format!("{at}: environmentFiles (S3 objects) cannot be fetched; they are ignored"));
    }
    if c.firelens_configuration.is_some() {
        w.push(format!("{at}: firelensConfiguration is ignored (no FireLens log router)"));
    }
    if c.credential_specs.as_ref().is_some_and(|s| !s.is_empty()) {
        w.push(format!("{at}: credentialSpecs (gMSA) are not supported"));
    }
    for r in c.resource_requirements.iter().flatten() {
        match r.kind.as_str() {
            "GPU" => w.push(format!(
                "{at}: needs {} GPU(s); it only places on instances that have them free \
                 (otherwise the task stays PENDING with RESOURCE:GPU)",
                r.value
            )),
            other => w.push(format!(
                "{at}: resourceRequirements {other} is not available on a Berth host"
            )),
        }
    }
}
