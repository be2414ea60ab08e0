//! Real task definitions written by outside users (shared/fixtures) through `parse_registration`,
//! each with the outcome `shared/fixtures/README.md` requires. The fixtures are read in place; if
//! the folder is absent the tests print why and pass.

use berth_proto::taskdef::{Registration, TaskDefError, parse_registration};
use std::fs;
use std::path::{Path, PathBuf};

fn fixtures_dir(sub: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures").join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: fixture folder {} is absent", dir.display());
        None
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn registers(name: &str, text: &str, family: Option<&str>) -> Registration {
    match parse_registration(text, family) {
        Ok(r) => {
            println!(
                "{name}: registers as {} with {} warning(s)",
                r.definition.family,
                r.warnings.len()
            );
            for w in &r.warnings {
                println!("    warning: {w}");
            }
            r
        }
        Err(e) => panic!("{name} should register, got {}: {e}", e.ecs_error_type()),
    }
}

fn refused(name: &str, text: &str) -> TaskDefError {
    match parse_registration(text, None) {
        Ok(r) => panic!("{name} should be refused, registered {:?}", r.definition.family),
        Err(e) => {
            println!("{name}: refused ({}): {e}", e.ecs_error_type());
            e
        }
    }
}

fn has_warning(r: &Registration, needle: &str) -> bool {
    r.warnings.iter().any(|w| w.contains(needle))
}

/// Every file in `taskdefs/` gets the outcome of the README table.
#[test]
fn every_taskdef_fixture_gets_its_documented_outcome() {
    let Some(dir) = fixtures_dir("taskdefs") else {
        return;
    };
    let files = json_files(&dir);
    assert!(files.len() >= 15, "expected the 15 fixtures, found {}", files.len());
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let text = read(&path);
        if name.ends_with("-INVALID-link.json") {
            let e = refused(&name, &text);
            let msg = e.to_string();
            assert!(msg.contains("nginx-web-container") && msg.contains("app-container"), "{msg}");
            assert!(msg.contains("links[0]"), "the error names the field: {msg}");
            assert_eq!(e.violations().len(), 1, "only the link is wrong: {msg}");
        } else if name.ends_with("-INVALID.json") {
            let e = refused(&name, &text);
            match e {
                TaskDefError::InvalidJson { line, column, .. } => {
                    assert_eq!((line, column), (16, 13), "{e}");
                    assert!(e.to_string().contains("line 16 column 13"), "{e}");
                }
                other => panic!("{name}: expected an invalid-JSON error, got {other:?}"),
            }
        } else if name.starts_with("hashicorp__") {
            let e = refused(&name, &text);
            assert_eq!(e, TaskDefError::FamilyRequired);
            assert!(e.to_string().contains("--family"), "{e}");
            let r = registers(&name, &text, Some("ghost"));
            assert_eq!(r.definition.family, "ghost");
            assert_eq!(r.definition.container_definitions.len(), 1);
            assert!(has_warning(&r, "bare containerDefinitions array"), "{:?}", r.warnings);
            assert!(has_warning(&r, "containerDefinitions[0].name"), "{:?}", r.warnings);
            assert!(has_warning(&r, "containerDefinitions[0].image"), "{:?}", r.warnings);
        } else if name.contains("tomcat-fargate") {
            let r = registers(&name, &text, None);
            assert!(has_warning(&r, "FARGATE"), "{:?}", r.warnings);
            assert!(has_warning(&r, "awsvpc"), "{:?}", r.warnings);
            assert!(has_warning(&r, "awslogs"), "{:?}", r.warnings);
            assert_eq!(r.definition.cpu.as_deref(), Some("1024"));
            assert_eq!(r.definition.memory.as_deref(), Some("2048"));
        } else if name.starts_with("Abdelali12-codes__") {
            let r = registers(&name, &text, None);
            assert_eq!(r.definition.cpu.as_deref(), Some("256"));
            assert_eq!(r.definition.memory.as_deref(), Some("512"));
            assert!(has_warning(&r, "FARGATE") && has_warning(&r, "awsvpc"), "{:?}", r.warnings);
        } else if name.contains("nginx-ec2") {
            let r = registers(&name, &text, None);
            assert_eq!(r.definition.network_mode(), "bridge");
            let pm =
                &r.definition.container_definitions[0].port_mappings.as_ref().expect("ports")[0];
            assert_eq!((pm.container_port, pm.host_port), (Some(80), None), "dynamic host port");
            assert!(r.definition.static_host_ports().is_empty());
        } else if name.contains("consul-ConsulServer") {
            let r = registers(&name, &text, None);
            assert_eq!(r.definition.network_mode(), "host");
            assert!(r.definition.container_definitions[0].is_essential());
        } else if name.starts_with("aws__amazon-ecs-agent__") {
            let r = registers(&name, &text, None);
            if name.contains("nvidia-gpu") {
                assert!(has_warning(&r, "GPU"), "{:?}", r.warnings);
            }
            if name.contains("secrets-environment-variables") {
                assert!(has_warning(&r, "secrets"), "{:?}", r.warnings);
            }
        } else {
            panic!("{name}: no expected outcome known for this fixture; add it to this test");
        }
    }
}

/// The ECS agent's own conformance inputs must all register.
#[test]
fn every_ecs_agent_simpletest_registers() {
    let Some(dir) = fixtures_dir("ecs-agent-simpletests") else {
        return;
    };
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path().join("task-definition.json")))
        .filter(|p| p.is_file())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 31, "expected the 31 simple tests");
    for path in cases {
        let case = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        registers(&case, &read(&path), None);
    }
}
