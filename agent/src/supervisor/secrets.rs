//! Secrets of an assignment → the planned containers' `secret_env`. Pure.
//!
//! The controller resolves a task's `secrets[].valueFrom` and sends the values in
//! `Assignment.secrets` (per container) on the first assignment of a task that is about to
//! start. They live only in memory here ([`crate::runtime::SecretEnv`] redacts `Debug`) and
//! reach the engine as environment variables; they are never logged, reported or written to
//! the data dir. A task to start whose values did not come fails with
//! `ResourceInitializationError` (a task being adopted needs none: its containers exist).

use super::spec::TaskPlan;
use crate::runtime::SecretEnv;
use berth_proto::model::TaskDefinition;
use berth_proto::v1;

/// Puts each container's secret values into its spec. With `starting`, a value that did not
/// come is an error (the task must not start without it).
pub fn inject(
    plan: &mut TaskPlan,
    def: &TaskDefinition,
    secrets: &[v1::ContainerSecrets],
    starting: bool,
) -> Result<(), String> {
    for c in &def.container_definitions {
        let Some(wanted) = c.secrets.as_ref().filter(|s| !s.is_empty()) else { continue };
        let given = secrets.iter().find(|s| s.container_name == c.name);
        let Some(planned) = plan.containers.iter_mut().find(|p| p.name == c.name) else {
            continue;
        };
        for w in wanted {
            let value = given.and_then(|g| g.environment.iter().find(|e| e.name == w.name));
            match value {
                Some(v) => planned
                    .spec
                    .secret_env
                    .push(SecretEnv { name: w.name.clone(), value: v.value.clone().into() }),
                None if starting => {
                    return Err(format!(
                        "ResourceInitializationError: unable to pull secrets or registry auth: \
                         the controller sent no value for container {}, variable {}",
                        c.name, w.name
                    ));
                }
                None => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::spec::{Placement, plan_task};
    use berth_proto::model::{ContainerDefinition, Secret};

    fn def() -> TaskDefinition {
        TaskDefinition {
            family: "f".into(),
            revision: Some(1),
            container_definitions: vec![
                ContainerDefinition {
                    name: "app".into(),
                    image: "busybox".into(),
                    secrets: Some(vec![Secret { name: "DB".into(), value_from: "db".into() }]),
                    ..Default::default()
                },
                ContainerDefinition {
                    name: "side".into(),
                    image: "busybox".into(),
                    essential: Some(false),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn plan(d: &TaskDefinition) -> TaskPlan {
        let placement = Placement { instance_id: "i".into(), cluster: "c".into() };
        plan_task("t", 1, d, &placement).expect("plan")
    }

    #[test]
    fn values_land_in_their_container_only_and_never_in_debug() {
        let d = def();
        let mut p = plan(&d);
        let given = vec![v1::ContainerSecrets {
            container_name: "app".into(),
            environment: vec![v1::SecretEnvironmentVariable {
                name: "DB".into(),
                value: "hunter2".into(),
            }],
        }];
        inject(&mut p, &d, &given, true).expect("inject");
        let app = &p.containers[0].spec;
        assert_eq!(app.secret_env.len(), 1);
        assert_eq!(
            (app.secret_env[0].name.as_str(), app.secret_env[0].value.expose()),
            ("DB", "hunter2")
        );
        assert!(p.containers[1].spec.secret_env.is_empty());
        assert!(!app.env.iter().any(|e| e.contains("hunter2")));
        assert!(!format!("{p:?}").contains("hunter2"), "Debug of a plan redacts secrets");
        assert!(p.warnings.iter().all(|w| !w.contains("secrets")), "{:?}", p.warnings);
    }

    #[test]
    fn a_task_to_start_without_its_values_fails_but_an_adopted_one_does_not() {
        let d = def();
        let e = inject(&mut plan(&d), &d, &[], true).expect_err("missing");
        assert!(e.starts_with("ResourceInitializationError: unable to pull secrets"), "{e}");
        assert!(e.contains("container app, variable DB"), "{e}");
        inject(&mut plan(&d), &d, &[], false).expect("adoption needs no values");
    }
}
