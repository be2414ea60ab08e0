//! `berth taskdef register FILE.json [--family F]`, `taskdef describe FAMILY[:REV]`,
//! `taskdef list [--family F]`, `taskdef deregister FAMILY:REV`.
//!
//! `register` sends the file's text verbatim; the server parses and validates it (one validator,
//! in `berth_proto::taskdef`) and answers with the registered TaskDefinition plus warnings.

use crate::client::{self, Api};
use crate::error::CliError;
use crate::output::{self, Format};
use berth_proto::model::TaskDefinition;
use berth_proto::v1::{
    ListTaskDefinitionsRequest, RegisterTaskDefinitionRequest, TaskDefinitionRef,
};
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum TaskdefCmd {
    /// Register a task definition from an ECS JSON file (a new revision of its family).
    Register {
        /// ECS RegisterTaskDefinition JSON (or a bare containerDefinitions array with --family).
        file: PathBuf,
        /// Family to register under (overrides the file's, or supplies it).
        #[arg(long)]
        family: Option<String>,
    },
    /// Show a task definition (latest ACTIVE revision when no revision is given).
    Describe {
        /// FAMILY, FAMILY:REV or an ARN.
        taskdef: String,
    },
    /// List task definitions.
    List {
        #[arg(long)]
        family: Option<String>,
        #[arg(long, value_enum, ignore_case = true, default_value_t = TaskdefStatus::Active)]
        status: TaskdefStatus,
    },
    /// Mark a revision INACTIVE (running tasks keep running).
    Deregister {
        /// FAMILY:REV or an ARN.
        taskdef: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TaskdefStatus {
    #[value(name = "ACTIVE")]
    Active,
    #[value(name = "INACTIVE")]
    Inactive,
    #[value(name = "ALL")]
    All,
}

impl TaskdefStatus {
    fn as_str(self) -> &'static str {
        match self {
            TaskdefStatus::Active => "ACTIVE",
            TaskdefStatus::Inactive => "INACTIVE",
            TaskdefStatus::All => "ALL",
        }
    }
}

pub async fn run(cmd: TaskdefCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let json = match cmd {
        TaskdefCmd::Register { file, family } => {
            let document = std::fs::read_to_string(&file)
                .map_err(|source| CliError::ReadFile { path: file, source })?;
            let req = RegisterTaskDefinitionRequest {
                cluster: api.cluster.clone(),
                document,
                family: family.unwrap_or_default(),
            };
            client::object(api.grpc().register_task_definition(req).await)?
        }
        TaskdefCmd::Describe { taskdef } => client::object(
            api.grpc()
                .describe_task_definition(TaskDefinitionRef { task_definition: taskdef })
                .await,
        )?,
        TaskdefCmd::Deregister { taskdef } => client::object(
            api.grpc()
                .deregister_task_definition(TaskDefinitionRef { task_definition: taskdef })
                .await,
        )?,
        TaskdefCmd::List { family, status } => {
            let req = ListTaskDefinitionsRequest {
                family: family.unwrap_or_default(),
                status: status.as_str().into(),
                ..Default::default()
            };
            let c = api.grpc_clone();
            let items = client::list_all(req, |r| {
                let mut c = c.clone();
                async move { c.list_task_definitions(r).await }
            })
            .await?;
            print!(
                "{}",
                output::show_list::<TaskDefinition>(
                    out,
                    &items,
                    "task definition",
                    output::taskdefs_table
                )?
            );
            return Ok(());
        }
    };
    print!(
        "{}",
        output::show::<TaskDefinition>(out, &json, "task definition", output::taskdef_detail)?
    );
    Ok(())
}
