//! What a CreateService document asks for that Berth accepts but does not act on: one line per
//! field, naming it and saying what Berth does instead. A field set to its "off" value (`false`,
//! an empty list, `launchType` EC2) needs no warning.

use super::document::Document;

pub(super) fn unsupported(doc: &Document) -> Vec<String> {
    let mut w = Vec::new();
    match doc.launch_type.as_deref() {
        Some("FARGATE") => w.push(
            "launchType FARGATE: Berth has no Fargate; tasks run on the cluster's container \
             instances, as with EC2"
                .to_string(),
        ),
        Some("EXTERNAL") => w.push(
            "launchType EXTERNAL: Berth's container instances are all its own; treated as EC2"
                .to_string(),
        ),
        _ => {}
    }
    if let Some(cps) = doc.capacity_provider_strategy.as_ref().filter(|c| !c.is_empty()) {
        let names: Vec<&str> = cps.iter().map(|c| c.capacity_provider.as_str()).collect();
        w.push(format!(
            "capacityProviderStrategy ({}) ignored: Berth has no capacity providers; tasks are \
             placed on the cluster's container instances",
            names.join(", ")
        ));
    }
    if let Some(vpc) =
        doc.network_configuration.as_ref().and_then(|n| n.awsvpc_configuration.as_ref())
    {
        w.push(format!(
            "networkConfiguration.awsvpcConfiguration ignored ({} subnet(s)): Berth has no awsvpc \
             network mode; tasks use the task definition's bridge or host networking",
            vpc.subnets.len()
        ));
    }
    if let Some(lbs) = doc.load_balancers.as_ref().filter(|l| !l.is_empty()) {
        w.push(format!(
            "loadBalancers ignored ({} given): Berth registers no load balancer targets",
            lbs.len()
        ));
    }
    if doc.service_registries.as_ref().is_some_and(|r| !r.is_empty()) {
        w.push("serviceRegistries ignored: Berth has no service discovery (Cloud Map)".into());
    }
    if doc.service_connect_configuration.is_some() {
        w.push("serviceConnectConfiguration ignored: Berth has no Service Connect".into());
    }
    if doc.vpc_lattice_configurations.as_ref().is_some_and(|v| !v.is_empty()) {
        w.push("vpcLatticeConfigurations ignored: Berth has no VPC Lattice".into());
    }
    if doc.volume_configurations.as_ref().is_some_and(|v| !v.is_empty()) {
        w.push("volumeConfigurations ignored: Berth attaches no EBS volumes".into());
    }
    if let Some(p) = &doc.platform_version {
        w.push(format!("platformVersion {p} ignored: a Fargate setting"));
    }
    if let Some(c) = doc.deployment_controller.as_ref().filter(|c| c.kind != "ECS") {
        w.push(format!(
            "deploymentController {} ignored: Berth's own rolling deployments (ECS) are used",
            c.kind
        ));
    }
    if let Some(dc) = &doc.deployment_configuration {
        if dc.alarms.as_ref().is_some_and(|a| a.enable) {
            w.push(
                "deploymentConfiguration.alarms ignored: Berth has no CloudWatch alarms; use \
                 deploymentCircuitBreaker"
                    .into(),
            );
        }
        if let Some(s) = dc.strategy.as_deref().filter(|s| *s != "ROLLING") {
            w.push(format!("deploymentConfiguration.strategy {s} ignored: Berth deploys ROLLING"));
        }
        if dc.bake_time_in_minutes.is_some() {
            w.push("deploymentConfiguration.bakeTimeInMinutes ignored".into());
        }
        if dc.lifecycle_hooks.as_ref().is_some_and(|h| !h.is_empty()) {
            w.push("deploymentConfiguration.lifecycleHooks ignored: Berth calls no hooks".into());
        }
    }
    if doc.tags.as_ref().is_some_and(|t| !t.is_empty()) {
        w.push("tags ignored: Berth does not store service tags yet".into());
    }
    if doc.enable_ecs_managed_tags == Some(true) {
        w.push("enableECSManagedTags ignored: Berth does not tag tasks".into());
    }
    if let Some(p) = doc.propagate_tags.as_deref().filter(|p| *p != "NONE") {
        w.push(format!("propagateTags {p} ignored: Berth does not tag tasks"));
    }
    if doc.role.is_some() {
        w.push("role ignored: Berth uses no IAM roles".into());
    }
    if doc.enable_execute_command == Some(true) {
        w.push("enableExecuteCommand ignored: Berth has no ECS Exec".into());
    }
    if doc.client_token.is_some() {
        w.push("clientToken ignored: CreateService is not idempotent by token in Berth".into());
    }
    if let Some(a) = doc.availability_zone_rebalancing.as_deref().filter(|a| *a != "DISABLED") {
        w.push(format!(
            "availabilityZoneRebalancing {a} ignored: Berth spreads at placement, it does not \
             rebalance running tasks"
        ));
    }
    w
}
