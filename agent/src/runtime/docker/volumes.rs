//! Engine volumes for task definitions' `volumes` (ECS-NOTES §1.5).
//!
//! * [`ensure`], before a container is created: each named volume it mounts is created unless
//!   it exists. A `shared` volume without `autoprovision` must already exist (as on ECS). An
//!   existing volume is reused as it is (a restarted agent re-creating a task's container, or a
//!   shared volume made by an earlier task).
//! * [`remove_unused_task_volumes`], after a container is removed: the task-scoped volumes it
//!   mounted (label [`LABEL_VOLUME_SCOPE`]`=task`) are removed unless another container still
//!   uses them (the engine answers 409), so the task's last container takes them along. Shared
//!   volumes are never removed.

use super::map_err;
use crate::runtime::{ContainerSpec, LABEL_VOLUME_SCOPE, MountSource, RuntimeError, VolumeSpec};
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::RemoveVolumeOptionsBuilder;

/// Creates the missing volumes `spec` mounts; returns the task volumes it created (so a failed
/// container create can take them back).
pub(super) async fn ensure(
    docker: &Docker,
    spec: &ContainerSpec,
) -> Result<Vec<String>, RuntimeError> {
    let mut created = Vec::new();
    for m in &spec.options.mounts {
        let MountSource::Volume(v) = &m.source else { continue };
        match docker.inspect_volume(&v.name).await {
            Ok(_) => continue,
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => return Err(map_err(&format!("inspect volume {}", v.name), e)),
        }
        if v.shared && !v.autoprovision {
            return Err(RuntimeError::NotFound(format!(
                "shared volume {} does not exist and autoprovision is false",
                v.name
            )));
        }
        docker
            .create_volume(create_request(v))
            .await
            .map_err(|e| map_err(&format!("create volume {}", v.name), e))?;
        if !v.shared {
            created.push(v.name.clone());
        }
    }
    Ok(created)
}

fn create_request(v: &VolumeSpec) -> VolumeCreateRequest {
    VolumeCreateRequest {
        name: Some(v.name.clone()),
        driver: Some(v.driver.clone()),
        driver_opts: Some(v.driver_opts.iter().map(|(k, x)| (k.clone(), x.clone())).collect()),
        labels: Some(v.labels.iter().map(|(k, x)| (k.clone(), x.clone())).collect()),
        ..Default::default()
    }
}

/// Names of the named volumes container `id` mounts (its own and those from `volumesFrom`).
pub(super) async fn mounted_by(docker: &Docker, id: &str) -> Vec<String> {
    match docker.inspect_container(id, None).await {
        Ok(r) => r
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ.as_deref() == Some("volume"))
            .filter_map(|m| m.name)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Removes those of `names` that are task-scoped and no longer used by any container.
pub(super) async fn remove_unused_task_volumes(
    docker: &Docker,
    names: &[String],
) -> Result<(), RuntimeError> {
    for name in names {
        let scope = match docker.inspect_volume(name).await {
            Ok(v) => v.labels.get(LABEL_VOLUME_SCOPE).cloned(),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => continue,
            Err(e) => return Err(map_err(&format!("inspect volume {name}"), e)),
        };
        if scope.as_deref() != Some("task") {
            continue;
        }
        let opts = RemoveVolumeOptionsBuilder::default().force(false).build();
        match docker.remove_volume(name, Some(opts)).await {
            Ok(()) => tracing::debug!(volume = %name, "task volume removed"),
            // 404: already gone; 409: another container of the task still uses it.
            Err(BollardError::DockerResponseServerError { status_code: 404 | 409, .. }) => {}
            Err(e) => return Err(map_err(&format!("remove volume {name}"), e)),
        }
    }
    Ok(())
}
