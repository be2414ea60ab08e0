//! `berth service create`: the CreateService request from the command line and, with
//! `--from-json FILE`, an ECS CreateService document (`aws ecs create-service --cli-input-json`
//! shape, read by `berth_proto::service_input` — the one parser). Flags override the document
//! and complete fragments (which often lack the name, cluster and task definition); each
//! override of a value the document gives is a warning. Fields Berth cannot honour are warned
//! about by the parser; the controller checks every value rule (DAEMON rules included).

use super::deploy::DeploymentArgs;
use crate::error::CliError;
use berth_proto::model::{DEFAULT_CLUSTER, SCHEDULING_DAEMON};
use berth_proto::service_input::{ServiceDocument, parse_create_service};
use berth_proto::v1::{
    CreateServiceRequest, DeploymentSettings, PlacementConstraint, PlacementStrategy,
};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Args)]
pub struct CreateArgs {
    /// Service name (may come from serviceName in the --from-json document instead).
    pub name: Option<String>,
    /// An ECS CreateService document (`aws ecs create-service --cli-input-json` shape); the
    /// flags below override or complete it.
    #[arg(long, value_name = "FILE")]
    pub from_json: Option<PathBuf>,
    /// FAMILY, FAMILY:REV or an ARN.
    #[arg(long)]
    pub taskdef: Option<String>,
    /// Tasks to keep running (REPLICA; a DAEMON service takes none).
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    pub desired_count: Option<i64>,
    /// REPLICA (default): keep --desired-count tasks; DAEMON: one task on every ACTIVE instance
    /// that satisfies the constraints.
    #[arg(long, value_name = "STRATEGY", value_parser = ["REPLICA", "DAEMON"])]
    pub scheduling_strategy: Option<String>,
    /// Placement strategies in order, ECS style: 'spread(attribute:ecs.availability-zone),binpack(memory)'.
    #[arg(long = "strategy", value_name = "STRATEGIES")]
    pub strategy: Vec<String>,
    /// A placement constraint: 'distinctInstance' or 'memberOf(EXPR)' (repeatable).
    #[arg(long = "constraint", value_name = "CONSTRAINT")]
    pub constraint: Vec<String>,
    /// Print where each task would be placed and why; create nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub deployment: DeploymentArgs,
}

/// Reads and parses the `--from-json` document, if one was given.
pub fn read_document(path: Option<&Path>) -> Result<Option<ServiceDocument>, CliError> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|source| CliError::ReadFile { path: path.to_path_buf(), source })?;
    parse_create_service(&text)
        .map(Some)
        .map_err(|source| CliError::ServiceDocument { path: path.to_path_buf(), source })
}

/// The request, and a warning for each flag that overrides a different value of the document
/// (the caller prints the document's own warnings first, even when the request is incomplete).
/// `cluster` is the global `--cluster` (`default` when not given: then the document's wins).
pub fn request(
    args: &CreateArgs,
    cluster: &str,
    doc: Option<ServiceDocument>,
) -> Result<(CreateServiceRequest, Vec<String>), CliError> {
    let input = doc.map(|d| d.input).unwrap_or_default();
    let mut warnings = Vec::new();
    let w = &mut warnings;
    let name = pick(w, "serviceName", args.name.as_ref(), input.service_name).ok_or_else(|| {
        CliError::Usage(
            "a service name is required: give NAME, or serviceName in the --from-json document"
                .into(),
        )
    })?;
    let cluster = match input.cluster {
        Some(c) if cluster == DEFAULT_CLUSTER => c,
        given => pick(w, "cluster", Some(&cluster.to_string()), given).unwrap_or_default(),
    };
    let taskdef = pick(w, "taskDefinition", args.taskdef.as_ref(), input.task_definition)
        .ok_or_else(|| {
            CliError::Usage(
                "a task definition is required: give --taskdef FAMILY[:REVISION], or \
                 taskDefinition in the --from-json document"
                    .into(),
            )
        })?;
    let scheduling =
        pick(w, "schedulingStrategy", args.scheduling_strategy.as_ref(), input.scheduling_strategy)
            .unwrap_or_default();
    let count = pick(w, "desiredCount", args.desired_count.as_ref(), input.desired_count);
    let desired_count = match count {
        Some(n) => n,
        None if scheduling == SCHEDULING_DAEMON => 0,
        None => {
            return Err(CliError::Usage(
                "desiredCount is required for a REPLICA service: give --desired-count N, or \
                 desiredCount in the --from-json document"
                    .into(),
            ));
        }
    };
    let placement_strategy = if args.strategy.is_empty() {
        input
            .placement_strategy
            .into_iter()
            .map(|s| PlacementStrategy { r#type: s.kind, field: s.field.unwrap_or_default() })
            .collect()
    } else {
        super::placement::strategies(&args.strategy)
    };
    let placement_constraints = if args.constraint.is_empty() {
        input
            .placement_constraints
            .into_iter()
            .map(|c| PlacementConstraint {
                r#type: c.kind,
                expression: c.expression.unwrap_or_default(),
            })
            .collect()
    } else {
        super::placement::constraints(&args.constraint)
    };
    let flags = args.deployment.settings().unwrap_or_default();
    let breaker = input.deployment_circuit_breaker;
    let settings = DeploymentSettings {
        minimum_healthy_percent: flags.minimum_healthy_percent.or(input.minimum_healthy_percent),
        maximum_percent: flags.maximum_percent.or(input.maximum_percent),
        circuit_breaker_enable: flags.circuit_breaker_enable.or(breaker.as_ref().map(|b| b.enable)),
        circuit_breaker_rollback: flags
            .circuit_breaker_rollback
            .or(breaker.as_ref().map(|b| b.rollback)),
        health_check_grace_period_seconds: flags
            .health_check_grace_period_seconds
            .or(input.health_check_grace_period_seconds),
    };
    let deployment = (settings != DeploymentSettings::default()).then_some(settings);
    let req = CreateServiceRequest {
        cluster,
        service_name: name,
        task_definition: taskdef,
        desired_count,
        placement_strategy,
        placement_constraints,
        dry_run: args.dry_run,
        options_json: String::new(),
        deployment,
        scheduling_strategy: scheduling,
    };
    Ok((req, warnings))
}

/// The flag when given (a warning when it replaces a different value of the document), else
/// the document's value.
fn pick<T: PartialEq + std::fmt::Display + Clone>(
    warnings: &mut Vec<String>,
    what: &str,
    flag: Option<&T>,
    given: Option<T>,
) -> Option<T> {
    match (flag, given) {
        (Some(f), Some(g)) if *f != g => {
            warnings.push(format!("{what} \"{g}\" in the document replaced by \"{f}\""));
            Some(f.clone())
        }
        (Some(f), _) => Some(f.clone()),
        (None, g) => g,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> Option<ServiceDocument> {
        Some(parse_create_service(json).unwrap())
    }

    #[test]
    fn flags_complete_a_fragment() {
        let args = CreateArgs {
            name: Some("web".into()),
            taskdef: Some("web:2".into()),
            desired_count: Some(3),
            ..Default::default()
        };
        let fragment = doc(r#"{"deploymentConfiguration": {"minimumHealthyPercent": 100,
            "maximumPercent": 200, "deploymentCircuitBreaker": {"enable": true, "rollback": true}},
            "schedulingStrategy": "REPLICA"}"#);
        let (req, warnings) = request(&args, "default", fragment).unwrap();
        assert_eq!(
            (req.service_name.as_str(), req.task_definition.as_str(), req.desired_count),
            ("web", "web:2", 3)
        );
        assert_eq!(req.cluster, "default");
        assert_eq!(req.scheduling_strategy, "REPLICA");
        let d = req.deployment.unwrap();
        assert_eq!((d.minimum_healthy_percent, d.maximum_percent), (Some(100), Some(200)));
        assert_eq!(
            (d.circuit_breaker_enable, d.circuit_breaker_rollback),
            (Some(true), Some(true))
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn flags_override_the_document_with_a_warning() {
        let args = CreateArgs {
            name: Some("api".into()),
            desired_count: Some(2),
            deployment: DeploymentArgs { max_percent: Some(150), ..Default::default() },
            strategy: vec!["binpack(memory)".into()],
            ..Default::default()
        };
        let full = doc(r#"{"serviceName": "web", "cluster": "prod", "taskDefinition": "web",
            "desiredCount": 1, "deploymentConfiguration": {"maximumPercent": 200,
            "minimumHealthyPercent": 0}, "placementStrategy": [{"type": "random"}]}"#);
        let (req, warnings) = request(&args, "default", full).unwrap();
        assert_eq!(req.service_name, "api");
        assert_eq!(req.cluster, "prod", "no --cluster given: the document's cluster");
        assert_eq!(req.desired_count, 2);
        let d = req.deployment.unwrap();
        assert_eq!((d.minimum_healthy_percent, d.maximum_percent), (Some(0), Some(150)));
        assert_eq!(req.placement_strategy.len(), 1);
        assert_eq!(req.placement_strategy[0].r#type, "binpack");
        assert_eq!(
            warnings,
            vec![
                "serviceName \"web\" in the document replaced by \"api\"".to_string(),
                "desiredCount \"1\" in the document replaced by \"2\"".to_string(),
            ]
        );
        // An explicit --cluster wins over the document's.
        let full = doc(
            r#"{"serviceName": "web", "cluster": "prod", "taskDefinition": "web", "desiredCount": 1}"#,
        );
        let (req, warnings) = request(&CreateArgs::default(), "staging", full).unwrap();
        assert_eq!(req.cluster, "staging");
        assert_eq!(
            warnings,
            vec!["cluster \"prod\" in the document replaced by \"staging\"".to_string()]
        );
    }

    #[test]
    fn what_neither_gives_is_a_usage_error() {
        let daemon = || doc(r#"{"schedulingStrategy": "DAEMON"}"#);
        let err = request(&CreateArgs::default(), "default", daemon()).unwrap_err().to_string();
        assert_eq!(
            err,
            "a service name is required: give NAME, or serviceName in the --from-json document"
        );
        let named = CreateArgs { name: Some("logs".into()), ..Default::default() };
        let err = request(&named, "default", daemon()).unwrap_err().to_string();
        assert!(err.starts_with("a task definition is required"), "{err}");
        // A DAEMON service needs no count; a REPLICA one does.
        let ready = CreateArgs { taskdef: Some("logs".into()), ..named };
        let (req, _) = request(&ready, "default", daemon()).unwrap();
        assert_eq!((req.scheduling_strategy.as_str(), req.desired_count), ("DAEMON", 0));
        assert_eq!(req.deployment, None, "the controller applies the DAEMON defaults");
        let err = request(&ready, "default", None).unwrap_err().to_string();
        assert!(err.starts_with("desiredCount is required for a REPLICA service"), "{err}");
    }
}
