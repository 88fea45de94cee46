//! What ships under `deploy/`, checked with the tools that exist here
//! (Debian's `promtool`, `scripts/install-test-deps`):
//!
//! - every rule file passes `promtool check rules`;
//! - `promtool test rules` passes, and every alert has a unit test where it
//!   fires and one where it stays silent;
//! - `deploy/prometheus/prometheus.yml` passes `promtool check config`
//!   (Debian's Prometheus is built without Kubernetes discovery: its
//!   `kubernetes_sd_configs` block is swapped for `file_sd_configs` first;
//!   `tests/deploy_dashboard.rs` runs the pod job's relabeling for real);
//! - the OpenTelemetry Collector example passes the reference checks the
//!   collector makes at start-up (no collector binary here): every pipeline
//!   names receivers, processors and exporters that are defined, and every
//!   enabled extension is defined;
//! - the Kubernetes Deployment's env block is accepted by telltale (the
//!   presets, telemetry, RED metrics and chaos build from it) and every
//!   variable it sets is documented in the README;
//! - every command of the README's "Run it in production" section runs and
//!   succeeds (the `cargo test` ones are these tests, run by `scripts/test`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use telltale::core::config::Env;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files in `dir` whose names end with `suffix`, sorted.
fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {suffix} in {dir}");
    out
}

/// Every command these tests run ends within this bound (promtool takes
/// seconds).
const COMMAND_BOUND: Duration = Duration::from_secs(120);

/// Runs `program` with `args` in the workspace root, killed past
/// [`COMMAND_BOUND`]; returns whether it succeeded and its output.
fn run_bounded(program: &Path, args: &[&str]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!(
        "telltale-deploy-cmd-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::fs::File::create(dir.join("out")).unwrap();
    let err = out.try_clone().unwrap();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let deadline = Instant::now() + COMMAND_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(dir.join("out")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    match status {
        Some(status) => (status.success(), text),
        None => (false, format!("killed after {COMMAND_BOUND:?}\n{text}")),
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Runs `promtool` with `args` in the workspace root; returns its output,
/// panicking with it when promtool fails.
fn promtool(args: &[&str]) -> String {
    let bin = telltale_testkit::prometheus::find_binary_in(
        "promtool",
        &std::env::var_os("PATH").unwrap_or_default(),
    )
    .unwrap_or_else(|message| panic!("{message}"));
    let (ok, text) = run_bounded(&bin, args);
    assert!(ok, "promtool {args:?} failed:\n{text}");
    text
}

fn rule_files() -> Vec<PathBuf> {
    files("deploy/prometheus/rules", ".rules.yml")
}

fn relative(p: &Path) -> String {
    p.strip_prefix(root())
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn rules_pass_promtool_check_rules() {
    let paths: Vec<String> = rule_files().iter().map(|p| relative(p)).collect();
    let mut args = vec!["check", "rules"];
    args.extend(paths.iter().map(String::as_str));
    let out = promtool(&args);
    assert_eq!(out.matches("SUCCESS").count(), paths.len(), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
}

/// Every alert of the rule files, by name.
fn alerts() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in rule_files() {
        for group in yaml(&file)["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                if let Some(name) = rule["alert"].as_str() {
                    assert!(out.insert(name.to_owned()), "{name} defined twice");
                }
            }
        }
    }
    out
}

#[test]
fn every_alert_has_unit_tests_that_fire_and_stay_silent_and_they_pass() {
    let tests = files("deploy/prometheus/tests", ".test.yml");
    let paths: Vec<String> = tests.iter().map(|p| relative(p)).collect();
    let mut args = vec!["test", "rules"];
    args.extend(paths.iter().map(String::as_str));
    let out = promtool(&args);
    assert_eq!(out.matches("SUCCESS").count(), paths.len(), "{out}");

    // alert -> (cases where it fires, cases where it must stay silent)
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for file in &tests {
        for test in yaml(file)["tests"].as_array().unwrap() {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap().to_owned();
                let expected = case["exp_alerts"].as_array().map_or(0, Vec::len);
                let entry = cases.entry(name).or_default();
                if expected > 0 {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
            }
        }
    }
    let alerts = alerts();
    assert!(alerts.len() >= 11, "{alerts:?}");
    for alert in &alerts {
        let (fires, silent) = cases.get(alert).copied().unwrap_or_default();
        assert!(fires > 0, "{alert}: no unit test where it fires");
        assert!(silent > 0, "{alert}: no unit test where it stays silent");
    }
    for tested in cases.keys() {
        assert!(
            alerts.contains(tested),
            "tests name an unknown alert {tested}"
        );
    }
}

#[test]
fn both_naming_schemes_record_the_same_series() {
    let recorded = |file: &str| -> BTreeSet<String> {
        yaml(&root().join("deploy/prometheus/rules").join(file))["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().iter())
            .map(|r| r["record"].as_str().unwrap().to_owned())
            .collect()
    };
    let otel = recorded("telltale-red-opentelemetry.rules.yml");
    assert_eq!(otel, recorded("telltale-red-classic.rules.yml"));
    assert!(otel.contains("telltale:server_requests:rate5m"), "{otel:?}");
}

/// `prometheus.yml` with the Kubernetes discovery block swapped for file
/// discovery of `targets_file`, and its rule files made absolute.
fn portable_config(targets_file: &Path) -> String {
    let text = std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml")).unwrap();
    let k8s = "    kubernetes_sd_configs:\n      - role: pod\n";
    assert_eq!(text.matches(k8s).count(), 1, "{text}");
    let rules = root().join("deploy/prometheus/rules");
    text.replace(
        k8s,
        &format!(
            "    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
            targets_file.display()
        ),
    )
    .replace("  - rules/", &format!("  - {}/", rules.display()))
}

#[test]
fn prometheus_config_passes_promtool_check_config() {
    let dir = std::env::temp_dir().join(format!("telltale-deploy-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let targets = dir.join("pods.json");
    std::fs::write(&targets, "[]").unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, portable_config(&targets)).unwrap();
    let out = promtool(&["check", "config", config.to_str().unwrap()]);
    assert!(
        out.contains("is valid prometheus config file syntax"),
        "{out}"
    );
    assert!(out.contains("SUCCESS: 4 rule files found"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn collector_config_pipelines_name_defined_components() {
    let config = yaml(&root().join("deploy/otel-collector/config.yaml"));
    let defined = |kind: &str| -> BTreeSet<String> {
        config[kind]
            .as_object()
            .unwrap_or_else(|| panic!("no {kind}"))
            .keys()
            .cloned()
            .collect()
    };
    let (receivers, processors, exporters) = (
        defined("receivers"),
        defined("processors"),
        defined("exporters"),
    );
    for ext in config["service"]["extensions"].as_array().unwrap() {
        assert!(
            defined("extensions").contains(ext.as_str().unwrap()),
            "{ext}"
        );
    }
    let pipelines = config["service"]["pipelines"].as_object().unwrap();
    let signals: BTreeSet<&str> = pipelines
        .keys()
        .map(|k| k.split('/').next().unwrap())
        .collect();
    assert_eq!(signals, BTreeSet::from(["logs", "metrics", "traces"]));
    for (name, pipeline) in pipelines {
        for (kind, known) in [
            ("receivers", &receivers),
            ("processors", &processors),
            ("exporters", &exporters),
        ] {
            let used = pipeline[kind]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: no {kind}"));
            assert!(
                !used.is_empty() || kind == "processors",
                "{name}: no {kind}"
            );
            for component in used {
                assert!(
                    known.contains(component.as_str().unwrap()),
                    "{name} uses undefined {kind} {component}"
                );
            }
        }
        // memory_limiter first, batch last: the collector's recommended order.
        let processors = pipeline["processors"].as_array().unwrap();
        assert_eq!(processors.first().unwrap(), "memory_limiter", "{name}");
        assert_eq!(processors.last().unwrap(), "batch", "{name}");
    }
    // OTLP in over both protocols, on the ports telltale's defaults use.
    let otlp = &config["receivers"]["otlp"]["protocols"];
    assert_eq!(otlp["grpc"]["endpoint"], "0.0.0.0:4317");
    assert_eq!(otlp["http"]["endpoint"], "0.0.0.0:4318");
}

/// The Deployment's container env as Kubernetes would set it: `value`
/// entries, with `$(NAME)` references to earlier variables expanded (the
/// `valueFrom` ones get example values).
fn deployment_env(path: &Path) -> Vec<(String, String)> {
    let deployment = yaml(path);
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env block")
        .clone();
    let mut out: Vec<(String, String)> = Vec::new();
    for var in env {
        let name = var["name"].as_str().unwrap().to_owned();
        let value = match (&var["value"], &var["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(v), _) => {
                let mut v = v.clone();
                for (k, val) in &out {
                    v = v.replace(&format!("$({k})"), val);
                }
                assert!(!v.contains("$("), "{name}: unresolved reference in {v}");
                v
            }
            (_, Value::String(field)) => match field.as_str() {
                "metadata.name" => "checkout-7c9d8f6b5-x2k4q".to_owned(),
                "metadata.namespace" => "shop".to_owned(),
                "status.hostIP" => "10.1.2.3".to_owned(),
                other => panic!("{name}: unexpected fieldRef {other}"),
            },
            other => panic!("{name}: unexpected env entry {other:?}"),
        };
        out.push((name, value));
    }
    out
}

#[test]
fn kubernetes_env_block_is_accepted_and_documented() {
    let env = deployment_env(&root().join("deploy/kubernetes/deployment.yaml"));
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for (name, _) in &env {
        if name.starts_with("OTEL_") || name.starts_with("TELLTALE_") || name == "RUST_LOG" {
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not in the README"
            );
        }
    }
    let source = Env::from_pairs(env.clone());
    telltale::ServerStack::from_env_source(&source).unwrap();
    let client = telltale::ClientStack::from_env_source(&source, "payments").unwrap();
    assert_eq!(client.timeout_value(), std::time::Duration::from_secs(2));
    telltale::telemetry::metrics::RedConfig::from_env_source(&source).unwrap();
    let chaos = telltale::chaos::Injector::from_env_source(&source).unwrap();
    assert_eq!(
        chaos.status(),
        telltale::chaos::Status::Off,
        "no TELLTALE_CHAOS in production"
    );
    let telemetry = telltale::telemetry::Telemetry::from_env_source(&source).unwrap();
    drop(telemetry);

    // The README shows the same env block.
    let section = production_section(&readme);
    let start = section
        .find("```yaml\nenv:\n")
        .expect("the README's env block")
        + 8;
    let end = start + section[start..].find("```").unwrap();
    let shown: Value = serde_yaml_ng::from_str(&section[start..end]).unwrap();
    let deployment = yaml(&root().join("deploy/kubernetes/deployment.yaml"));
    assert_eq!(
        shown["env"], deployment["spec"]["template"]["spec"]["containers"][0]["env"],
        "the README's env block differs from deploy/kubernetes/deployment.yaml"
    );
}

/// The README's "Run it in production" section.
fn production_section(readme: &str) -> &str {
    let start = readme
        .find("\n## Run it in production\n")
        .expect("README has a \"Run it in production\" section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 4);
    &rest[..end]
}

#[test]
fn readme_production_commands_run() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = production_section(&readme);
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in section.lines() {
        match (in_sh, line.trim_end()) {
            (false, "```sh") => in_sh = true,
            (true, "```") => in_sh = false,
            (true, l) if !l.trim().is_empty() && !l.trim_start().starts_with('#') => {
                commands.push(l.split(" # ").next().unwrap().trim().to_owned())
            }
            _ => {}
        }
    }
    assert!(commands.len() >= 3, "{commands:?}");
    for command in commands {
        // These tests themselves: scripts/test runs them.
        if command.starts_with("cargo test --test deploy_") {
            continue;
        }
        let (ok, text) = run_bounded(Path::new("sh"), &["-c", &command]);
        assert!(ok, "README command `{command}` failed:\n{text}");
    }
}
