//! The CreateService request shape as typed structs (ECS field names, every member the API
//! takes), read with `deny_unknown_fields` so a typo is an error naming it. Fields Berth does not
//! act on are still typed, so a wrong type is caught, and `warnings` names them.

use super::ServiceInput;
use crate::model::{DeploymentCircuitBreaker, PlacementConstraint, PlacementStrategy};
use crate::taskdef::Violation;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Document {
    pub service_name: Option<String>,
    pub cluster: Option<String>,
    pub task_definition: Option<String>,
    pub desired_count: Option<i64>,
    pub launch_type: Option<String>,
    pub scheduling_strategy: Option<String>,
    pub deployment_configuration: Option<DeploymentConfigurationDoc>,
    pub placement_strategy: Option<Vec<PlacementStrategyDoc>>,
    pub placement_constraints: Option<Vec<PlacementConstraintDoc>>,
    pub health_check_grace_period_seconds: Option<i64>,
    pub network_configuration: Option<NetworkConfigurationDoc>,
    pub load_balancers: Option<Vec<LoadBalancerDoc>>,
    pub service_registries: Option<Vec<ServiceRegistryDoc>>,
    pub capacity_provider_strategy: Option<Vec<CapacityProviderDoc>>,
    pub tags: Option<Vec<TagDoc>>,
    #[serde(rename = "enableECSManagedTags")]
    pub enable_ecs_managed_tags: Option<bool>,
    pub propagate_tags: Option<String>,
    pub platform_version: Option<String>,
    pub client_token: Option<String>,
    pub deployment_controller: Option<DeploymentControllerDoc>,
    pub role: Option<String>,
    pub enable_execute_command: Option<bool>,
    pub service_connect_configuration: Option<Value>,
    pub volume_configurations: Option<Vec<Value>>,
    pub vpc_lattice_configurations: Option<Vec<Value>>,
    pub availability_zone_rebalancing: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DeploymentConfigurationDoc {
    pub maximum_percent: Option<i64>,
    pub minimum_healthy_percent: Option<i64>,
    pub deployment_circuit_breaker: Option<CircuitBreakerDoc>,
    pub alarms: Option<AlarmsDoc>,
    pub strategy: Option<String>,
    pub bake_time_in_minutes: Option<i64>,
    pub lifecycle_hooks: Option<Vec<Value>>,
}

/// ECS requires both members.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CircuitBreakerDoc {
    pub enable: bool,
    pub rollback: bool,
}

// Read only so that a wrong type is an error naming the field; Berth does not act on it.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AlarmsDoc {
    pub alarm_names: Vec<String>,
    pub enable: bool,
    pub rollback: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PlacementStrategyDoc {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub field: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PlacementConstraintDoc {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub expression: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NetworkConfigurationDoc {
    pub awsvpc_configuration: Option<AwsVpcDoc>,
}

// Read only so that a wrong type is an error naming the field; Berth does not act on it.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AwsVpcDoc {
    pub subnets: Vec<String>,
    pub security_groups: Option<Vec<String>>,
    pub assign_public_ip: Option<String>,
}

// Read only so that a wrong type is an error naming the field; Berth does not act on it.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct LoadBalancerDoc {
    pub target_group_arn: Option<String>,
    pub load_balancer_name: Option<String>,
    pub container_name: Option<String>,
    pub container_port: Option<i64>,
}

// Read only so that a wrong type is an error naming the field; Berth does not act on it.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ServiceRegistryDoc {
    pub registry_arn: Option<String>,
    pub port: Option<i64>,
    pub container_name: Option<String>,
    pub container_port: Option<i64>,
}

// Read only so that a wrong type is an error naming the field; Berth does not act on it.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CapacityProviderDoc {
    pub capacity_provider: String,
    pub weight: Option<i64>,
    pub base: Option<i64>,
}

// Read only so that a wrong type is an error naming the field; Berth does not act on it.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct TagDoc {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DeploymentControllerDoc {
    #[serde(rename = "type")]
    pub kind: String,
}

const LAUNCH_TYPES: [&str; 3] = ["EC2", "FARGATE", "EXTERNAL"];
const DEPLOYMENT_CONTROLLERS: [&str; 3] = ["ECS", "CODE_DEPLOY", "EXTERNAL"];

/// Enum members this module maps or warns about must hold a value ECS allows.
pub(super) fn check_enums(doc: &Document) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut check = |path: &str, value: Option<&str>, allowed: &[&str]| {
        if let Some(v) = value.filter(|v| !allowed.contains(v)) {
            out.push(Violation::new(path, format!("\"{v}\" is not one of {}", allowed.join(", "))));
        }
    };
    check("launchType", doc.launch_type.as_deref(), &LAUNCH_TYPES);
    check(
        "deploymentController.type",
        doc.deployment_controller.as_ref().map(|c| c.kind.as_str()),
        &DEPLOYMENT_CONTROLLERS,
    );
    out
}

impl Document {
    pub(super) fn into_input(self) -> ServiceInput {
        let dc = self.deployment_configuration.unwrap_or_default();
        ServiceInput {
            service_name: self.service_name,
            cluster: self.cluster,
            task_definition: self.task_definition,
            desired_count: self.desired_count,
            scheduling_strategy: self.scheduling_strategy,
            minimum_healthy_percent: dc.minimum_healthy_percent,
            maximum_percent: dc.maximum_percent,
            deployment_circuit_breaker: dc
                .deployment_circuit_breaker
                .map(|b| DeploymentCircuitBreaker { enable: b.enable, rollback: b.rollback }),
            health_check_grace_period_seconds: self.health_check_grace_period_seconds,
            placement_strategy: self
                .placement_strategy
                .unwrap_or_default()
                .into_iter()
                .map(|s| PlacementStrategy { kind: s.kind.unwrap_or_default(), field: s.field })
                .collect(),
            placement_constraints: self
                .placement_constraints
                .unwrap_or_default()
                .into_iter()
                .map(|c| PlacementConstraint {
                    kind: c.kind.unwrap_or_default(),
                    expression: c.expression,
                })
                .collect(),
        }
    }
}
