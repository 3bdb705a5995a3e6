//! `deploy/k8s/`: each overlay rendered offline by `kubectl kustomize` and checked for what
//! a cluster would trip on: every workload's containers have probes and start a binary of
//! ours with flags it has (asked of the real binary's `--help`), every Service and
//! PodDisruptionBudget selects pods that exist on ports they name, the autoscaler targets
//! the gateways, every Secret reference names the `mcpr` Secret with keys it holds (dev) or
//! one made beforehand (production); and every object of the base and each overlay matches
//! the Kubernetes API's own schema (`scripts/check-k8s`, against the `kubernetes` Python
//! package's models, unknown fields refused).

use std::collections::HashSet;
use std::process::Command;

use mcpr_e2e::harness::{bin, python, workspace_root};
use serde_json::Value;

/// The overlay rendered and parsed (a JSON list of objects), or `None` (loudly) where
/// `kubectl` or the test virtualenv's Python (with PyYAML) is missing.
fn render(overlay: &str) -> Option<Vec<Value>> {
    let dir = workspace_root().join("deploy/k8s/overlays").join(overlay);
    let rendered = match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
        Ok(output) => output,
        Err(e) if std::env::var("MCPR_REQUIRE_ALL").is_ok_and(|v| v == "1") => {
            panic!("kubectl is required (MCPR_REQUIRE_ALL=1): {e}")
        }
        Err(e) => {
            eprintln!("\n!!! SKIPPING k8s render test: no kubectl ({e}) !!!\n");
            return None;
        }
    };
    assert!(
        rendered.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&rendered.stderr)
    );
    let python = python()?;
    let mut parse = Command::new(python)
        .args([
            "-c",
            "import sys, yaml, json; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    use std::io::Write;
    parse
        .stdin
        .take()
        .unwrap()
        .write_all(&rendered.stdout)
        .unwrap();
    let parsed = parse.wait_with_output().unwrap();
    assert!(parsed.status.success(), "parsing the rendered YAML");
    Some(serde_json::from_slice(&parsed.stdout).expect("JSON"))
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// Whether every label of `selector` is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

/// The checks every overlay passes.
fn check_common(objects: &[Value], namespace: &str) {
    let workloads: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "DaemonSet")
        .collect();
    assert_eq!(workloads.len(), 3, "control planes, gateways, agents");
    let mut helps = std::collections::HashMap::new();
    for object in objects {
        assert_eq!(
            object["metadata"]["namespace"], namespace,
            "{} {} in the overlay's namespace",
            object["kind"], object["metadata"]["name"]
        );
    }
    for workload in &workloads {
        let name = workload["metadata"]["name"].as_str().unwrap();
        let template = &workload["spec"]["template"];
        assert!(
            selects(
                &workload["spec"]["selector"]["matchLabels"],
                &template["metadata"]["labels"]
            ),
            "{name}: its selector matches its pods"
        );
        for container in template["spec"]["containers"].as_array().unwrap() {
            for probe in ["readinessProbe", "livenessProbe"] {
                assert!(container[probe].is_object(), "{name}: {probe}");
            }
            let command: Vec<&str> = container["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let help = helps.entry(command[0]).or_insert_with(|| {
                let out = Command::new(bin(command[0]))
                    .arg("--help")
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            });
            for flag in command.iter().filter(|a| a.starts_with("--")) {
                assert!(help.contains(flag), "{name}: {} has no {flag}", command[0]);
            }
            // Secrets come from `mcpr` only.
            for env in container["env"].as_array().into_iter().flatten() {
                if let Some(secret) = env["valueFrom"]["secretKeyRef"].as_object() {
                    assert_eq!(secret["name"], "mcpr", "{name}: {env}");
                }
            }
            for from in container["envFrom"].as_array().into_iter().flatten() {
                assert_eq!(from["secretRef"]["name"], "mcpr", "{name}: {from}");
            }
        }
    }
    // Services and the disruption budget select pods that exist, on ports they name.
    for object in objects {
        let kind = object["kind"].as_str().unwrap();
        let selector = match kind {
            "Service" => &object["spec"]["selector"],
            "PodDisruptionBudget" => &object["spec"]["selector"]["matchLabels"],
            _ => continue,
        };
        let pods: Vec<&Value> = workloads
            .iter()
            .map(|w| &w["spec"]["template"])
            .filter(|t| selects(selector, &t["metadata"]["labels"]))
            .collect();
        assert_eq!(
            pods.len(),
            1,
            "{kind} {} selects one workload",
            object["metadata"]["name"]
        );
        let port_names: HashSet<String> = pods[0]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        for port in object["spec"]["ports"].as_array().into_iter().flatten() {
            let target = port["targetPort"].as_str().unwrap();
            assert!(port_names.contains(target), "{kind}: no port {target}");
        }
    }
    let hpa = named(objects, "HorizontalPodAutoscaler", "mcpr-edge-gateway");
    let target = &hpa["spec"]["scaleTargetRef"];
    named(
        objects,
        target["kind"].as_str().unwrap(),
        target["name"].as_str().unwrap(),
    );
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap_or(0) >= 2);
    named(objects, "PodDisruptionBudget", "mcpr-edge-gateway");
}

#[test]
fn dev_overlay_renders_with_its_own_secret() {
    let Some(objects) = render("dev") else {
        return;
    };
    check_common(&objects, "mcpr-dev");
    let secret = named(&objects, "Secret", "mcpr");
    for key in [
        "DATABASE_URL",
        "ADMIN_PASSCODE",
        "MCPR_SESSION_KEY",
        "MCPR_MASTER_KEY",
        "MCPR_CLUSTER_TOKEN",
    ] {
        assert!(secret["data"][key].is_string(), "the Secret holds {key}");
    }
    let cp = named(&objects, "Deployment", "mcpr-control-plane");
    assert_eq!(cp["spec"]["replicas"], 1);
}

#[test]
fn production_overlay_pins_the_image_and_monitors_the_gateways() {
    let Some(objects) = render("production") else {
        return;
    };
    check_common(&objects, "mcp-router");
    assert!(
        !objects.iter().any(|o| o["kind"] == "Secret"),
        "production's Secret is made beforehand, never rendered from the repository"
    );
    let cp = named(&objects, "Deployment", "mcpr-control-plane");
    assert_eq!(cp["spec"]["replicas"], 3);
    for workload in objects
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "DaemonSet")
    {
        let image = &workload["spec"]["template"]["spec"]["containers"][0]["image"];
        assert_eq!(image, "registry.example.com/mcp-router:0.1.0");
    }
    let agent = named(&objects, "DaemonSet", "mcpr-node-agent");
    let mounts = &agent["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    assert_eq!(mounts[0]["mountPath"], "/var/run/docker.sock");
    let monitor = named(&objects, "ServiceMonitor", "mcpr-edge-gateway");
    let service = named(&objects, "Service", "mcpr-edge-gateway");
    assert!(selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));
}

/// Every object the base and the overlays render is one the API server would accept as
/// written: `scripts/check-k8s` validates it against the Kubernetes API models (unknown or
/// misplaced fields, wrong types, missing required fields), after its self-test shows it
/// catches each of those.
#[test]
fn every_object_matches_the_kubernetes_api_schema() {
    if render("dev").is_none() {
        return;
    }
    let python = python().expect("render found the venv's python");
    let script = workspace_root().join("scripts/check-k8s");
    for args in [&["--self-test"][..], &[][..]] {
        let output = Command::new(&python)
            .arg(&script)
            .args(args)
            .output()
            .expect("scripts/check-k8s");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "scripts/check-k8s {args:?}:\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if args.is_empty() {
            for dir in ["base", "overlays/dev", "overlays/production"] {
                assert!(
                    report
                        .lines()
                        .any(|l| l.starts_with(&format!("check-k8s: deploy/k8s/{dir}:"))
                            && l.ends_with(": ok")),
                    "{dir} not checked:\n{report}"
                );
            }
        }
    }
}
