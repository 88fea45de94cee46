//! Every `cargo demo` line of the README works as written: the alias in
//! `.cargo/config.toml` and the line together give the demo binary the
//! arguments the README means (no stray `--`), and the binary run with those
//! arguments and environment succeeds. Each run is bounded; `--short` is
//! added (the only difference from the README's line) so the whole test
//! takes about a minute: `scripts/demo-readme` runs the lines exactly as
//! written through cargo.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the demo is in the workspace")
}

/// The lines of the README's `sh` blocks that run `cargo demo`.
fn readme_lines() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut lines = Vec::new();
    let mut in_sh = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_sh = trimmed == "```sh";
            continue;
        }
        if in_sh && !trimmed.starts_with('#') && trimmed.contains("cargo demo") {
            lines.push(trimmed.to_owned());
        }
    }
    lines
}

/// The words of the `demo` alias.
fn alias() -> Vec<String> {
    let config = std::fs::read_to_string(root().join(".cargo/config.toml")).expect("config");
    let line = config
        .lines()
        .find(|l| l.trim_start().starts_with("demo ="))
        .expect("a demo alias");
    let value = line.split_once('=').expect("=").1.trim().trim_matches('"');
    value.split_whitespace().map(str::to_owned).collect()
}

/// What a shell and cargo make of `line`: its environment and the demo
/// binary's arguments.
fn expand(line: &str, alias: &[String]) -> (Vec<(String, String)>, Vec<String>) {
    let words = shlex::split(line).unwrap_or_else(|| panic!("not a shell line: {line}"));
    // A comment ends the command.
    let words: Vec<String> = words
        .into_iter()
        .take_while(|w| !w.starts_with('#'))
        .collect();
    let mut env = Vec::new();
    let mut rest = words.iter();
    for w in rest.by_ref() {
        match w.split_once('=') {
            Some((k, v)) if k.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                env.push((k.to_owned(), v.to_owned()));
            }
            _ => {
                assert_eq!(w, "cargo", "{line}");
                break;
            }
        }
    }
    assert_eq!(rest.next().map(String::as_str), Some("demo"), "{line}");
    // `cargo demo ARGS` is `cargo <alias words> ARGS`; `cargo run` passes
    // what follows its first `--` to the binary.
    let command: Vec<String> = alias.iter().cloned().chain(rest.cloned()).collect();
    assert_eq!(command[0], "run", "the alias runs the demo");
    let args = match command.iter().position(|w| w == "--") {
        Some(i) => command[i + 1..].to_vec(),
        None => Vec::new(),
    };
    (env, args)
}

#[test]
fn the_alias_gives_the_demo_the_readme_arguments() {
    let alias = alias();
    let lines = readme_lines();
    assert!(lines.len() >= 6, "{lines:?}");
    for line in &lines {
        let (_, args) = expand(line, &alias);
        assert!(
            !args.contains(&"--".to_owned()),
            "{line}: the demo would get {args:?}"
        );
    }
    let (_, args) = expand("cargo demo -- --short", &alias);
    assert_eq!(args, ["--short"]);
    let (env, args) = expand(
        "TELLTALE_CHAOS='in: 50% status(500)' cargo demo   # a comment",
        &alias,
    );
    assert_eq!(
        env,
        [("TELLTALE_CHAOS".into(), "in: 50% status(500)".into())]
    );
    assert!(args.is_empty());
}

#[test]
fn every_readme_demo_line_runs() {
    let alias = alias();
    let dir = std::env::temp_dir().join(format!("telltale-demo-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for line in readme_lines() {
        let (env, mut args) = expand(&line, &alias);
        if !args.contains(&"--short".to_owned()) {
            args.push("--short".to_owned());
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
        cmd.args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in [
            "TELLTALE_CHAOS",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "TELLTALE_LOG_FORMAT",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the demo starts");
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let out_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.read_to_end(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            s
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{line}: not finished within 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
        assert!(
            status.success(),
            "{line} (run as demo {args:?}) failed: {status}\nstderr:\n{stderr}\nstdout tail:\n{}",
            stdout
                .chars()
                .rev()
                .take(3000)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        );
        assert!(stdout.contains("telltale demo report"), "{line}:\n{stdout}");
        if let Some(i) = args.iter().position(|a| a == "--report-json") {
            let path = dir.join(&args[i + 1]);
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("report written"))
                    .expect("JSON");
            assert!(report["load"]["sent"].as_u64().is_some_and(|n| n > 0));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
