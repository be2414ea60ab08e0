//! The Helm chart `charts/berth` and its Grafana dashboard, checked without Kubernetes or Helm
//! (issue 8):
//! * the chart renders (`helm_chart/render.rs`: Go templates + the chart's Sprig subset) with the
//!   default values and with 5 controllers in another namespace; every document parses as YAML
//!   and has apiVersion, kind and metadata.name;
//! * the StatefulSet: replicas, serviceName = the headless Service (clusterIP None, not-ready
//!   addresses published), the data volume claim mounted as the data dir, `--initial-cluster`
//!   with exactly N members `ID=<sts>-<ID-1>.<headless>.<ns>.svc.cluster.local:<peer port>`
//!   (accepted by the controller's own parser), the entrypoint deriving `--node-id` = ordinal + 1
//!   (run with `/bin/sh` and a stand-in binary), probes on /healthz and /readyz of the HTTP port,
//!   scrape annotations; the PodDisruptionBudget (maxUnavailable 1, selecting the controllers);
//!   the DaemonSet (docker socket mounted, `--endpoint` listing every controller, attributes);
//! * the rendered flags are accepted by the real `berth-controller` and `berth-agent` (`--help`
//!   after them: clap parses and checks every flag before it, then exits 0);
//! * every PromQL expression of `dashboards/berth.json` names only metrics of `METRICS.md`, and
//!   every metric there is on the dashboard.

#[path = "helm_chart/render.rs"]
mod render;

use berth_tests::{build_bin, workspace_root};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

fn chart_dir() -> PathBuf {
    workspace_root().join("charts/berth")
}

/// A rendered release: its documents, parsed.
struct Release {
    namespace: String,
    docs: Vec<Yaml>,
    notes: String,
}

fn yaml(text: &str) -> Yaml {
    serde_yaml::from_str(text).expect("override YAML")
}

fn render(name: &str, namespace: &str, overrides: &str) -> Release {
    let files = render::render(&chart_dir(), name, namespace, &yaml(overrides))
        .unwrap_or_else(|e| panic!("rendering the chart: {e:#}"));
    let mut docs = Vec::new();
    let mut notes = String::new();
    // BERTH_CHART_DUMP=DIR: also write the rendered files there (like `helm template`).
    if let Some(dir) = std::env::var_os("BERTH_CHART_DUMP") {
        // One subdirectory per test (tests run in parallel and share releases' names).
        let test = std::thread::current().name().unwrap_or("main").replace("::", "-");
        let dir = PathBuf::from(dir).join(test).join(format!("{name}-{namespace}"));
        for f in &files {
            let path = dir.join(&f.file);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("dump dir");
            std::fs::write(&path, &f.text).expect("dump");
        }
    }
    for f in files {
        if f.file.ends_with("NOTES.txt") {
            notes = f.text;
            continue;
        }
        for doc in render::documents(&f.text) {
            let parsed: Yaml = serde_yaml::from_str(&doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}\n{doc}", f.file));
            docs.push(parsed);
        }
    }
    Release { namespace: namespace.to_string(), docs, notes }
}

fn str_at<'a>(v: &'a Yaml, path: &str) -> &'a str {
    at(v, path).as_str().unwrap_or_else(|| panic!("{path} is not a string: {:?}", at(v, path)))
}

/// The string under one key that may contain dots (a label or an annotation).
fn key<'a>(map: &'a Yaml, key: &str) -> &'a str {
    map.get(key).and_then(Yaml::as_str).unwrap_or_else(|| panic!("no string {key:?} in {map:?}"))
}

/// `a.b.0.c` into a document; panics naming the path when absent.
fn at<'a>(v: &'a Yaml, path: &str) -> &'a Yaml {
    let mut cur = v;
    for key in path.split('.') {
        cur = match key.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(key),
        }
        .unwrap_or_else(|| panic!("{path}: no {key:?} in {cur:?}"));
    }
    cur
}

impl Release {
    fn of_kind(&self, kind: &str) -> Vec<&Yaml> {
        self.docs.iter().filter(|d| d.get("kind").and_then(Yaml::as_str) == Some(kind)).collect()
    }

    fn one(&self, kind: &str) -> &Yaml {
        let found = self.of_kind(kind);
        assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
        found[0]
    }

    fn service(&self, name: &str) -> &Yaml {
        self.of_kind("Service")
            .into_iter()
            .find(|s| str_at(s, "metadata.name") == name)
            .unwrap_or_else(|| panic!("no Service {name}"))
    }
}

/// `--flag=value` of a container's args.
fn flag<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    let prefix = format!("--{name}=");
    args.iter().filter_map(|a| a.strip_prefix(prefix.as_str())).collect()
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s:?}")).to_string())
        .collect()
}

fn labels_match(selector: &Yaml, labels: &Yaml) {
    let sel = selector.as_mapping().expect("selector map");
    assert!(!sel.is_empty(), "empty selector");
    for (k, v) in sel {
        assert_eq!(labels.get(k), Some(v), "label {k:?} of the selector is not on the pods");
    }
}

fn probe(container: &Yaml, which: &str, path: &str) {
    assert_eq!(str_at(container, &format!("{which}.httpGet.path")), path, "{which}");
    assert_eq!(str_at(container, &format!("{which}.httpGet.port")), "http", "{which}");
}

fn container_port(container: &Yaml, name: &str) -> u64 {
    at(container, "ports")
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(Yaml::as_str) == Some(name))
        .and_then(|p| p.get("containerPort").and_then(Yaml::as_u64))
        .unwrap_or_else(|| panic!("no container port {name}"))
}

/// The checks every rendering must pass; returns the controller and agent args.
fn check_release(r: &Release, release: &str, replicas: usize) -> (Vec<String>, Vec<String>) {
    let ns = r.namespace.as_str();
    for d in &r.docs {
        for field in ["apiVersion", "kind", "metadata.name"] {
            assert!(!str_at(d, field).is_empty(), "{field} empty in {d:?}");
        }
        assert_eq!(str_at(d, "metadata.namespace"), ns);
        let name = str_at(d, "metadata.name");
        assert!(name.len() <= 63 && name.starts_with(release), "name {name:?}");
    }
    let kinds: BTreeSet<&str> = r.docs.iter().map(|d| str_at(d, "kind")).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["DaemonSet", "PodDisruptionBudget", "Service", "StatefulSet"]),
        "kinds"
    );

    // The controllers.
    let sts = r.one("StatefulSet");
    assert_eq!(str_at(sts, "apiVersion"), "apps/v1");
    let sts_name = str_at(sts, "metadata.name");
    assert_eq!(at(sts, "spec.replicas").as_u64(), Some(replicas as u64));
    assert_eq!(str_at(sts, "spec.podManagementPolicy"), "Parallel");
    let headless_name = str_at(sts, "spec.serviceName");
    let headless = r.service(headless_name);
    assert_eq!(str_at(headless, "spec.clusterIP"), "None");
    assert_eq!(at(headless, "spec.publishNotReadyAddresses").as_bool(), Some(true));
    let pod_labels = at(sts, "spec.template.metadata.labels");
    labels_match(at(sts, "spec.selector.matchLabels"), pod_labels);
    labels_match(at(headless, "spec.selector"), pod_labels);
    assert_eq!(key(pod_labels, "app.kubernetes.io/component"), "controller");

    let claim = at(sts, "spec.volumeClaimTemplates.0");
    assert_eq!(str_at(claim, "metadata.name"), "data");
    assert_eq!(strings(at(claim, "spec.accessModes")), ["ReadWriteOnce"]);
    assert!(!str_at(claim, "spec.resources.requests.storage").is_empty());

    let pod = at(sts, "spec.template.spec");
    let containers = at(pod, "containers").as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let mount = at(c, "volumeMounts.0");
    assert_eq!((str_at(mount, "name"), str_at(mount, "mountPath")), ("data", "/var/lib/berth"));
    let args = strings(at(c, "args"));
    assert_eq!(flag(&args, "data-dir"), ["/var/lib/berth/data"]);
    assert_eq!(flag(&args, "listen"), ["0.0.0.0:7600"]);
    assert_eq!(flag(&args, "peer-listen"), ["0.0.0.0:7601"]);
    assert_eq!(flag(&args, "http-listen"), ["0.0.0.0:7602"]);
    // Plaintext inside the Kubernetes network must be asked for (values security.insecure).
    assert!(args.iter().any(|a| a == "--insecure"), "{args:?}");
    let (api, peer, http) =
        (container_port(c, "api"), container_port(c, "peer"), container_port(c, "http"));
    assert_eq!((api, peer, http), (7600, 7601, 7602));

    // --initial-cluster: exactly N members, ids 1..N, stable DNS names of the pods.
    let domain = format!("{headless_name}.{ns}.svc.cluster.local");
    let ic = flag(&args, "initial-cluster");
    assert_eq!(ic.len(), 1, "one --initial-cluster");
    let members = berth_controller::server::parse_initial_cluster(ic[0])
        .unwrap_or_else(|e| panic!("the controller rejects --initial-cluster {:?}: {e}", ic[0]));
    let expected: BTreeMap<u64, String> = (1..=replicas as u64)
        .map(|id| (id, format!("{sts_name}-{}.{domain}:{peer}", id - 1)))
        .collect();
    assert_eq!(members, expected, "--initial-cluster");
    assert_eq!(
        flag(&args, "advertise-client"),
        [format!("http://$(POD_NAME).{domain}:{api}").as_str()]
    );
    let pod_name_env = at(c, "env")
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e.get("name").and_then(Yaml::as_str) == Some("POD_NAME"))
        .expect("env POD_NAME");
    assert_eq!(str_at(pod_name_env, "valueFrom.fieldRef.fieldPath"), "metadata.name");
    check_node_id_entrypoint(&strings(at(c, "command")), sts_name, replicas);

    probe(c, "livenessProbe", "/healthz");
    probe(c, "readinessProbe", "/readyz");
    let annotations = at(sts, "spec.template.metadata.annotations");
    assert_eq!(key(annotations, "prometheus.io/scrape"), "true");
    assert_eq!(key(annotations, "prometheus.io/port"), http.to_string());
    assert_eq!(key(annotations, "prometheus.io/path"), "/metrics");

    // The client Service: API and HTTP port of the controllers.
    let client = r.service(sts_name);
    labels_match(at(client, "spec.selector"), pod_labels);
    let ports: BTreeMap<String, u64> = at(client, "spec.ports")
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|p| (str_at(p, "name").to_string(), at(p, "port").as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(ports, BTreeMap::from([("api".into(), api), ("http".into(), http)]));

    let pdb = r.one("PodDisruptionBudget");
    assert_eq!(str_at(pdb, "apiVersion"), "policy/v1");
    assert_eq!(at(pdb, "spec.maxUnavailable").as_u64(), Some(1));
    labels_match(at(pdb, "spec.selector.matchLabels"), pod_labels);

    // The agents.
    let ds = r.one("DaemonSet");
    let ds_labels = at(ds, "spec.template.metadata.labels");
    labels_match(at(ds, "spec.selector.matchLabels"), ds_labels);
    assert_eq!(key(ds_labels, "app.kubernetes.io/component"), "agent");
    let pod = at(ds, "spec.template.spec");
    let a = at(pod, "containers.0");
    let mount = at(a, "volumeMounts")
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| m.get("name").and_then(Yaml::as_str) == Some("docker-socket"))
        .expect("docker-socket mount");
    assert_eq!(str_at(mount, "mountPath"), "/var/run/docker.sock");
    let volume = at(pod, "volumes")
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|v| v.get("name").and_then(Yaml::as_str) == Some("docker-socket"))
        .expect("docker-socket volume");
    assert_eq!(str_at(volume, "hostPath.path"), "/var/run/docker.sock");
    assert_eq!(str_at(volume, "hostPath.type"), "Socket");
    let agent_args = strings(at(a, "args"));
    let endpoints: Vec<String> =
        (0..replicas).map(|i| format!("http://{sts_name}-{i}.{domain}:{api}")).collect();
    assert_eq!(flag(&agent_args, "endpoint"), [endpoints.join(",").as_str()]);
    probe(a, "livenessProbe", "/healthz");
    probe(a, "readinessProbe", "/readyz");
    let agent_http = container_port(a, "http");
    assert_eq!(flag(&agent_args, "http-listen"), [format!("0.0.0.0:{agent_http}").as_str()]);
    assert!(agent_args.iter().any(|a| a == "--insecure"), "{agent_args:?}");
    assert_eq!(
        flag(&agent_args, "advertise-http"),
        [format!("http://$(ADVERTISE_IP):{agent_http}").as_str()]
    );
    let host_network = pod.get("hostNetwork").and_then(Yaml::as_bool) == Some(true);
    let advertise_ip = at(a, "env")
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e.get("name").and_then(Yaml::as_str) == Some("ADVERTISE_IP"))
        .expect("env ADVERTISE_IP");
    assert_eq!(
        str_at(advertise_ip, "valueFrom.fieldRef.fieldPath"),
        if host_network { "status.hostIP" } else { "status.podIP" }
    );
    let annotations = at(ds, "spec.template.metadata.annotations");
    assert_eq!(key(annotations, "prometheus.io/scrape"), "true");
    assert_eq!(key(annotations, "prometheus.io/port"), agent_http.to_string());
    assert_eq!(key(annotations, "prometheus.io/path"), "/metrics");

    assert!(r.notes.contains(&format!("release {release} in namespace {ns}")), "{}", r.notes);
    assert!(r.notes.contains(&format!("node ids 1..{replicas}")), "{}", r.notes);
    (args, agent_args)
}

/// Runs the StatefulSet's `command` under `/bin/sh` for every pod name, with a stand-in
/// `berth-controller` on PATH that prints the node id it was given.
fn check_node_id_entrypoint(command: &[String], sts_name: &str, replicas: usize) {
    assert_eq!(command.len(), 4, "sh -c SCRIPT NAME: {command:?}");
    assert_eq!((command[0].as_str(), command[1].as_str()), ("/bin/sh", "-c"));
    let dir = tempfile::tempdir().expect("tempdir");
    let stand_in = dir.path().join("berth-controller");
    std::fs::write(&stand_in, "#!/bin/sh\necho \"node-id=$BERTH_NODE_ID args=$*\"\n")
        .expect("write stand-in");
    let status = Command::new("chmod").arg("+x").arg(&stand_in).status().expect("chmod");
    assert!(status.success());
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    for ordinal in 0..replicas {
        let out = Command::new(&command[0])
            .args(&command[1..])
            .arg("--listen=0.0.0.0:7600")
            .env("PATH", &path)
            .env("HOSTNAME", format!("{sts_name}-{ordinal}"))
            .output()
            .expect("run the entrypoint");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("node-id={} args=--listen=0.0.0.0:7600", ordinal + 1)
        );
    }
}

/// The rendered flags, with Kubernetes' `$(VAR)` references as they would expand, are accepted
/// by the real binaries: clap parses and validates each flag in order and exits 0 at `--help`.
fn check_flags_accepted(controller_args: &[String], agent_args: &[String]) {
    let expand = |a: &String| {
        a.replace("$(POD_NAME)", "berth-controller-0").replace("$(ADVERTISE_IP)", "10.0.0.1")
    };
    for (package, bin, args) in [
        ("berth-controller", "berth-controller", controller_args),
        ("berth-agent", "berth-agent", agent_args),
    ] {
        let exe = build_bin(package, bin, false);
        let out = Command::new(&exe)
            .args(args.iter().map(expand))
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{bin} rejects the chart's flags {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn chart_renders_with_default_values() {
    let r = render("berth", "default", "{}");
    let (controller, agent) = check_release(&r, "berth", 3);
    assert_eq!(r.docs.len(), 5);
    let sts = r.one("StatefulSet");
    assert_eq!(str_at(sts, "metadata.name"), "berth-controller");
    assert_eq!(str_at(sts, "spec.template.spec.containers.0.image"), "berth/controller:0.1.0");
    assert_eq!(
        str_at(r.one("DaemonSet"), "spec.template.spec.containers.0.image"),
        "berth/agent:0.1.0"
    );
    assert_eq!(str_at(sts, "spec.volumeClaimTemplates.0.spec.resources.requests.storage"), "1Gi");
    assert!(at(sts, "spec.volumeClaimTemplates.0.spec").get("storageClassName").is_none());
    assert_eq!(flag(&agent, "attribute"), Vec::<&str>::new());
    assert_eq!(flag(&agent, "cluster"), ["default"]);
    assert_eq!(flag(&agent, "log-format"), ["text"]);
    assert_eq!(flag(&controller, "log-format"), ["text"]);
    assert!(r.notes.contains("need Docker Engine"), "{}", r.notes);
    assert!(r.notes.contains("unauthenticated"), "{}", r.notes);
    let ds_pod = at(r.one("DaemonSet"), "spec.template.spec");
    assert_eq!(at(ds_pod, "hostNetwork").as_bool(), Some(true));
    assert_eq!(str_at(ds_pod, "dnsPolicy"), "ClusterFirstWithHostNet");
    check_flags_accepted(&controller, &agent);
}

#[test]
fn chart_renders_with_five_controllers() {
    let r = render(
        "edge",
        "prod",
        r#"
controller:
  replicas: 5
  persistence: {size: 20Gi, storageClass: fast-ssd}
  resources: {requests: {cpu: "1", memory: 1Gi}}
agent:
  cluster: web
  hostNetwork: false
  attributes: ["ecs.availability-zone=a", "disk=ssd", "note=a: b", "q=say \"hi\""]
logFormat: json
image:
  controller: {repository: registry.local/berth-controller, tag: "1.2.3", pullPolicy: Always}
"#,
    );
    let (controller, agent) = check_release(&r, "edge", 5);
    let sts = r.one("StatefulSet");
    assert_eq!(str_at(sts, "metadata.name"), "edge-berth-controller");
    let claim = at(sts, "spec.volumeClaimTemplates.0.spec");
    assert_eq!(str_at(claim, "resources.requests.storage"), "20Gi");
    assert_eq!(str_at(claim, "storageClassName"), "fast-ssd");
    let c = at(sts, "spec.template.spec.containers.0");
    assert_eq!(str_at(c, "image"), "registry.local/berth-controller:1.2.3");
    assert_eq!(str_at(c, "imagePullPolicy"), "Always");
    assert_eq!(str_at(c, "resources.requests.cpu"), "1");
    assert_eq!(str_at(c, "resources.requests.memory"), "1Gi");
    // values.yaml's default limit stays (maps merge).
    assert_eq!(str_at(c, "resources.limits.memory"), "1Gi");
    // Quoted in the template: a value with ": " or quotes stays one YAML string.
    assert_eq!(
        flag(&agent, "attribute"),
        ["ecs.availability-zone=a", "disk=ssd", "note=a: b", "q=say \"hi\""]
    );
    assert_eq!(flag(&agent, "cluster"), ["web"]);
    assert_eq!(flag(&agent, "log-format"), ["json"]);
    assert_eq!(flag(&controller, "log-format"), ["json"]);
    let ds_pod = at(r.one("DaemonSet"), "spec.template.spec");
    assert!(ds_pod.get("hostNetwork").is_none() && ds_pod.get("dnsPolicy").is_none());
    check_flags_accepted(&controller, &agent);
}

#[test]
fn chart_options_disable_parts_and_bad_values_fail() {
    let r = render(
        "berth",
        "default",
        "{agent: {enabled: false}, controller: {podDisruptionBudget: {enabled: false}}, metrics: {scrape: false}}",
    );
    let kinds: BTreeSet<&str> = r.docs.iter().map(|d| str_at(d, "kind")).collect();
    assert_eq!(kinds, BTreeSet::from(["Service", "StatefulSet"]));
    let sts = r.one("StatefulSet");
    let annotations = at(sts, "spec.template.metadata").get("annotations");
    assert!(annotations.is_none_or(|a| a.is_null()), "no scrape annotations: {annotations:?}");

    let chart = chart_dir();
    render::expect_failure(
        &chart,
        &yaml("{controller: {replicas: 0}}"),
        "controller.replicas must be at least 1",
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    render::expect_failure(
        &chart,
        &yaml("{controller: {replicas: null}}"),
        "controller.replicas is required",
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    render::expect_failure(&chart, &yaml("{logFormat: xml}"), "logFormat must be text or json")
        .unwrap_or_else(|e| panic!("{e:#}"));
}

#[test]
fn helpers_list_the_renderers_sprig_subset() {
    let helpers =
        std::fs::read_to_string(chart_dir().join("templates/_helpers.tpl")).expect("helpers");
    let listed = helpers
        .split_once("Sprig functions used by this chart")
        .and_then(|(_, rest)| rest.split_once(':'))
        .and_then(|(_, rest)| rest.split_once('.'))
        .map(|(list, _)| list.split(',').map(|f| f.trim().to_string()).collect::<BTreeSet<_>>())
        .expect("the list in _helpers.tpl");
    let implemented: BTreeSet<String> =
        render::SPRIG_SUBSET.iter().map(|s| s.to_string()).collect();
    assert_eq!(listed, implemented);
}

/// Metric names of METRICS.md's tables, with their types.
fn documented_metrics() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(chart_dir().join("METRICS.md")).expect("METRICS.md");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, name, kind, ..] = cells.as_slice()
            && let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`'))
        {
            assert!(matches!(*kind, "counter" | "gauge" | "histogram"), "{name}: type {kind:?}");
            assert_eq!(name.ends_with("_total"), *kind == "counter", "{name}: _total iff counter");
            assert!(out.insert(name.to_string(), kind.to_string()).is_none(), "{name} twice");
        }
    }
    out
}

/// The metric names a PromQL expression reads: identifiers that are not functions (followed by
/// `(`), keywords and aggregation operators, label names (inside `{…}` or a `by (…)` list) or Grafana variables.
fn promql_metrics(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
        // Aggregation operators, reserved words whether or not `(` follows (`sum by (le) (…)`).
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut out = BTreeSet::new();
    let (mut i, mut braces, mut in_string, mut label_list) = (0, 0, None::<char>, false);
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = in_string {
            if c == '\\' {
                i += 1;
            } else if c == q {
                in_string = None;
            }
            i += 1;
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_string = Some(c),
            '{' => braces += 1,
            '}' => braces -= 1,
            ')' => label_list = false,
            '$' => {
                // A Grafana variable: skip its name.
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if KEYWORDS.contains(&word.as_str()) {
                    label_list = matches!(
                        word.as_str(),
                        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    );
                } else if braces == 0 && !label_list && next != Some(&'(') {
                    out.insert(word);
                }
                continue;
            }
            c if c.is_ascii_digit() => {
                // A number or a duration (5m, 1h): not a name.
                while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Every `expr` of the dashboard's panels and every query of its variables.
fn dashboard_queries(dash: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dash, &mut out);
    out
}

#[test]
fn dashboard_uses_only_documented_metrics() {
    let documented = documented_metrics();
    assert_eq!(documented.len(), 26, "{documented:?}");
    let text =
        std::fs::read_to_string(chart_dir().join("dashboards/berth.json")).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    assert_eq!(dash["title"], "Berth");
    assert!(dash["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let vars = dash["templating"]["list"].as_array().expect("templating.list");
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "a Prometheus datasource variable"
    );
    let panels = dash["panels"].as_array().expect("panels");
    // Grid positions: inside the 24 columns, no two panels overlapping.
    let mut cells = BTreeMap::new();
    for p in panels {
        let g = |k: &str| {
            p["gridPos"][k].as_u64().unwrap_or_else(|| panic!("{}: gridPos.{k}", p["title"]))
        };
        assert!(g("w") >= 1 && g("h") >= 1 && g("x") + g("w") <= 24, "{}: gridPos", p["title"]);
        for x in g("x")..g("x") + g("w") {
            for y in g("y")..g("y") + g("h") {
                if let Some(other) = cells.insert((x, y), p["title"].clone()) {
                    panic!("panels {other} and {} overlap", p["title"]);
                }
            }
        }
    }
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {} uses the variable",
            p["title"]
        );
        assert!(
            p["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "panel {} has queries",
            p["title"]
        );
    }

    let known = |name: &str| {
        documented.contains_key(name)
            || ["_bucket", "_sum", "_count"].iter().any(|s| {
                name.strip_suffix(s)
                    .is_some_and(|base| documented.get(base).is_some_and(|k| k == "histogram"))
            })
    };
    let mut used = BTreeSet::new();
    let queries = dashboard_queries(&dash);
    assert!(queries.len() > 20, "{} queries", queries.len());
    for q in &queries {
        // `label_values(METRIC, LABEL)` of a variable: its first argument is the metric.
        let q = match q.strip_prefix("label_values(") {
            Some(rest) => rest.split(',').next().unwrap_or_default().to_string(),
            None => q.clone(),
        };
        let names = promql_metrics(&q);
        assert!(!names.is_empty(), "no metric in {q:?}");
        for name in names {
            assert!(known(&name), "{q:?} names {name}, which METRICS.md does not list");
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| documented.contains_key(*b)))
                .unwrap_or(&name)
                .to_string();
            used.insert(base);
        }
    }
    let unused: Vec<_> = documented.keys().filter(|m| !used.contains(*m)).collect();
    assert!(unused.is_empty(), "metrics of METRICS.md not on the dashboard: {unused:?}");
    // Every member counts each leader change: the group's count is the max, not the sum.
    for q in queries.iter().filter(|q| q.contains("berth_raft_leader_changes_total")) {
        assert!(q.starts_with("max("), "leader changes summed over members: {q}");
    }
    // A panel mixing a count and seconds gives the seconds series its own unit.
    let snapshots = panels.iter().find(|p| p["title"] == "Snapshots").expect("Snapshots panel");
    let overrides = snapshots["fieldConfig"]["overrides"].to_string();
    assert!(overrides.contains("\"value\":\"s\""), "Snapshots p99 in seconds: {overrides}");
}

#[test]
fn promql_metric_extraction() {
    let names = promql_metrics(
        r#"histogram_quantile(0.99, sum by (le, method) (rate(berth_api_request_duration_seconds_bucket{instance=~"$controller",code!="OK"}[$__rate_interval]))) - berth_raft_term offset 5m"#,
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "berth_api_request_duration_seconds_bucket".to_string(),
            "berth_raft_term".to_string()
        ])
    );
}
