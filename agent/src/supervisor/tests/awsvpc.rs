//! awsvpc tasks on the simulated runtime: the pause container comes first and is never
//! reported as a container, the report carries the ENI-shaped attachment and the containers'
//! interfaces, two tasks get different addresses, a restarted agent adopts the pause container
//! (no second one, same address), and stopping removes it with the task.

use super::*;
use crate::runtime::task_network::LABEL_AWSVPC_IPV4;
use crate::supervisor::awsvpc::PAUSE_CONTAINER_NAME;

fn awsvpc_def() -> TaskDefinition {
    let mut def = taskdef(vec![
        container("a", &["httpd", "-f", "-p", "8080"], true),
        container("b", &["sleep", "3600"], false),
    ]);
    def.network_mode = Some("awsvpc".into());
    def
}

fn detail(r: &TaskStatusReport, name: &str) -> String {
    r.attachments
        .first()
        .and_then(|a| a["details"].as_array())
        .and_then(|d| d.iter().find(|d| d["name"] == name))
        .and_then(|d| d["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn pause_of(rt: &SimulatedRuntime, task: &str) -> Vec<ContainerInfo> {
    rt.containers()
        .into_iter()
        .filter(|c| c.label(LABEL_TASK_ID) == Some(task))
        .filter(|c| c.label(crate::runtime::LABEL_CONTAINER_NAME) == Some(PAUSE_CONTAINER_NAME))
        .collect()
}

async fn running_with_address(sup: &Supervisor, task: &str) -> TaskStatusReport {
    wait_for(WAIT, &format!("task {task} RUNNING with an ATTACHED interface"), || async {
        sup.report(task).filter(|r| {
            r.last_status == "RUNNING"
                && r.attachments.first().is_some_and(|a| a["status"] == "ATTACHED")
        })
    })
    .await
}

#[tokio::test]
async fn awsvpc_task_runs_behind_a_pause_container_with_its_own_address() {
    let rt = sim();
    let def = awsvpc_def();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-vpc", PullBehavior::PreferCached);
    sup.apply(true, &[assignment("t1", 1, "RUNNING", &def), assignment("t2", 1, "RUNNING", &def)])
        .await;
    let r1 = running_with_address(&sup, "t1").await;
    let r2 = running_with_address(&sup, "t2").await;

    let names: Vec<&str> = r1.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "the pause container is not a container of the task");
    let ip = detail(&r1, "privateIPv4Address");
    assert!(ip.starts_with("10.213."), "{ip}");
    assert_ne!(ip, detail(&r2, "privateIPv4Address"), "each task has an address of its own");
    assert_eq!(
        detail(&r1, "privateDnsName"),
        format!("ip-{}.local.compute.internal", ip.replace('.', "-"))
    );
    for c in &r1.containers {
        assert_eq!(c.network_interfaces.len(), 1, "{c:?}");
        assert_eq!(c.network_interfaces[0].private_ipv4_address.as_deref(), Some(ip.as_str()));
        assert!(c.network_bindings.is_empty(), "nothing published on the host");
    }
    // The pause container was created before the task's containers (ids grow).
    let pause = pause_of(&rt, "t1");
    assert_eq!(pause.len(), 1);
    let first_app = rt
        .containers()
        .into_iter()
        .filter(|c| c.label(LABEL_TASK_ID) == Some("t1") && c.id != pause[0].id)
        .map(|c| c.id)
        .min()
        .unwrap_or_default();
    assert!(pause[0].id < first_app, "pause {} created after {first_app}", pause[0].id);

    // A restarted agent adopts everything: no create, same address.
    let creates = rt.create_count();
    sup.shutdown();
    drop(sup);
    let mut sup = supervisor(Arc::new(rt.clone()), "i-vpc", PullBehavior::PreferCached);
    sup.apply(true, &[assignment("t1", 2, "RUNNING", &def), assignment("t2", 2, "RUNNING", &def)])
        .await;
    let again = running_with_address(&sup, "t1").await;
    assert_eq!(detail(&again, "privateIPv4Address"), ip);
    assert_eq!(rt.create_count(), creates, "adoption creates nothing");
    assert_eq!(pause_of(&rt, "t1").len(), 1);

    // Stopping removes the pause container too; the interface is reported DELETED.
    sup.apply(true, &[assignment("t1", 3, "STOPPED", &def), assignment("t2", 2, "RUNNING", &def)])
        .await;
    let stopped = wait_status(&sup, "t1", "STOPPED").await;
    assert_eq!(stopped.attachments[0]["status"], "DELETED");
    wait_for(WAIT, "t1's containers removed", || async {
        rt.containers().iter().all(|c| c.label(LABEL_TASK_ID) != Some("t1")).then_some(())
    })
    .await;
    assert_eq!(pause_of(&rt, "t2").len(), 1, "the other task keeps its pause container");
    assert!(pause_of(&rt, "t2")[0].label(LABEL_AWSVPC_IPV4).is_some());
}
