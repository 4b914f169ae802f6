//! `cargo xtask fuzz`: the fuzz targets in `fuzz/` under libFuzzer.
//!
//! They build on the pinned stable toolchain, without nightly and without
//! the cargo-fuzz binary: libfuzzer-sys compiles libFuzzer itself (with the
//! system C++ compiler), and rustc's stable `-Cpasses=sancov-module` with
//! LLVM's SanitizerCoverage options adds the coverage feedback and
//! comparison tracing libFuzzer needs (what `cargo fuzz build` passes, less
//! the nightly-only AddressSanitizer). The targets are the `[[bin]]`s of
//! `fuzz/Cargo.toml`, so adding one needs no change here.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::prerequisites;
use crate::say;
use crate::workspace::Workspace;

/// The fuzz crate, relative to the workspace root.
pub const FUZZ_DIR: &str = "fuzz";
/// The host: with `--target`, RUSTFLAGS instrument only the target's code,
/// not build scripts and proc macros (which would not link without libFuzzer).
const HOST_TARGET: &str = "x86_64-unknown-linux-gnu";
/// What `cargo xtask test` gives each target.
pub const SMOKE_SECONDS: u64 = 5;

/// Coverage instrumentation for libFuzzer that stable rustc accepts, plus
/// the cfg and checks cargo-fuzz sets.
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

/// libFuzzer's exit status after SIGINT (its `-interrupted_exitcode`).
const INTERRUPTED_EXIT_CODE: i32 = 72;
/// Lines of libFuzzer's output kept for a failure report: enough to reach
/// back past a panic's backtrace to its message.
const TAIL_LINES: usize = 500;

/// A target: its name (the `[[bin]]`) and what its file's first doc line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub summary: String,
}

/// The targets `fuzz/Cargo.toml` declares, in its order.
pub fn targets(workspace: &Workspace) -> Result<Vec<Target>> {
    let dir = workspace.root.join(FUZZ_DIR);
    let manifest = dir.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
    let bins = parse_bins(&text).with_context(|| format!("in {}", manifest.display()))?;
    Ok(bins
        .into_iter()
        .map(|(name, path)| {
            let source = fs::read_to_string(dir.join(path)).unwrap_or_default();
            Target {
                name,
                summary: first_doc_line(&source),
            }
        })
        .collect())
}

/// `(name, path)` of every `[[bin]]`.
fn parse_bins(manifest: &str) -> Result<Vec<(String, String)>> {
    let table: toml::Table = manifest.parse()?;
    let Some(bins) = table.get("bin").and_then(toml::Value::as_array) else {
        return Ok(Vec::new());
    };
    bins.iter()
        .map(|bin| {
            let field = |key: &str| bin.get(key).and_then(toml::Value::as_str).map(str::to_string);
            let name = field("name").context("a [[bin]] without a name")?;
            let path = field("path").unwrap_or_else(|| format!("fuzz_targets/{name}.rs"));
            Ok((name, path))
        })
        .collect()
}

/// The first `//!` line of a target's source, without the marker.
fn first_doc_line(source: &str) -> String {
    source
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("//!"))
        .map(|line| line.trim().to_string())
        .unwrap_or_default()
}

/// Where things go under the target directory.
struct Paths {
    /// cargo's target directory for the instrumented build.
    build: PathBuf,
    /// The corpus each target grows (libFuzzer writes new inputs there).
    corpus: PathBuf,
    /// Crashing, leaking and slow inputs.
    artifacts: PathBuf,
    logs: PathBuf,
}

impl Paths {
    fn new(workspace: &Workspace) -> Self {
        let target = workspace.layout.target_dir();
        Self {
            build: target.join("fuzz"),
            corpus: target.join("fuzz-corpus"),
            artifacts: target.join("fuzz-artifacts"),
            logs: target.join("fuzz-logs"),
        }
    }

    fn binary(&self, target: &str) -> PathBuf {
        self.build.join(HOST_TARGET).join("release").join(target)
    }
}

/// Builds `targets` with coverage instrumentation (cargo decides what is stale).
fn build(workspace: &Workspace, paths: &Paths, targets: &[&str]) -> Result<()> {
    prerequisites::ensure(&[prerequisites::FUZZ])?;
    say!(
        "building fuzz targets {} (instrumented, {})",
        targets.join(" "),
        paths.build.display()
    );
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command
        .current_dir(&workspace.root)
        .args(["build", "--release", "--manifest-path"])
        .arg(Path::new(FUZZ_DIR).join("Cargo.toml"))
        .args(["--target", HOST_TARGET, "--target-dir"])
        .arg(&paths.build)
        .env("RUSTFLAGS", RUSTFLAGS.join(" "))
        // It would take precedence over RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    for target in targets {
        command.args(["--bin", target]);
    }
    let status = command.status().context("cannot run cargo to build the fuzz targets")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    Ok(())
}

/// How a fuzzing run ended.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    /// Inputs executed (libFuzzer's `stat::number_of_executed_units`).
    runs: Option<u64>,
    /// Edges covered, features, corpus entries (the last `cov:` line).
    coverage: Option<u64>,
    features: Option<u64>,
    corpus: Option<u64>,
    /// The input libFuzzer saved for a crash, leak, time-out or OOM.
    artifact: Option<String>,
    /// Why libFuzzer stopped early (its `SUMMARY:` line).
    failure: Option<String>,
}

impl Outcome {
    /// Folds one line of libFuzzer's output in.
    fn observe(&mut self, line: &str) {
        if let Some(value) = line.strip_prefix("stat::number_of_executed_units:") {
            self.runs = value.trim().parse().ok();
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifact = Some(path.trim().to_string());
        } else if let Some(summary) = line.strip_prefix("SUMMARY: ") {
            self.failure = Some(summary.trim().to_string());
        } else if line.contains(" cov: ") {
            let field = |name: &str| {
                let (_, rest) = line.split_once(name)?;
                let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            };
            self.coverage = field(" cov: ").or(self.coverage);
            self.features = field(" ft: ").or(self.features);
            self.corpus = field(" corp: ").or(self.corpus);
        }
    }

    fn describe(&self) -> String {
        let fields = [
            ("runs", self.runs),
            ("cov", self.coverage),
            ("ft", self.features),
            ("corpus", self.corpus),
        ];
        let known: Vec<String> = fields
            .iter()
            .filter_map(|(name, value)| {
                value.map(|value| match *name {
                    "runs" if value == 1 => "1 run".to_string(),
                    "runs" => format!("{value} runs"),
                    _ => format!("{name} {value}"),
                })
            })
            .collect();
        known.join(", ")
    }
}

struct Report {
    outcome: Outcome,
    passed: bool,
    interrupted: bool,
    seconds: f64,
    log: PathBuf,
    /// The end of libFuzzer's output, for a failure.
    tail: Vec<String>,
}

/// What one run does: fuzz for a while, or execute one input.
enum Mode<'a> {
    Fuzz { seconds: u64 },
    Reproduce(&'a Path),
}

/// Runs one built target; libFuzzer's output goes to a log (and to stderr
/// when `echo`).
fn run_target(workspace: &Workspace, paths: &Paths, target: &str, mode: Mode<'_>, echo: bool) -> Result<Report> {
    let corpus = paths.corpus.join(target);
    let artifacts = paths.artifacts.join(target);
    for dir in [&corpus, &artifacts, &paths.logs] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut command = Command::new(paths.binary(target));
    command
        .current_dir(&workspace.root)
        // A slow input is a finding too; 2 GiB is what cargo fuzz allows.
        .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match mode {
        Mode::Fuzz { seconds } => {
            command.arg(format!("-max_total_time={seconds}")).arg(&corpus);
            // Committed seeds: read, never written (new inputs go to the first directory).
            let seeds = workspace.root.join(FUZZ_DIR).join("seeds").join(target);
            if seeds.is_dir() {
                command.arg(seeds);
            }
        }
        Mode::Reproduce(input) => {
            command.arg(input);
        }
    }
    let log_path = paths.logs.join(format!("{target}.log"));
    let mut log = File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", paths.binary(target).display()))?;

    // libFuzzer reports on stderr; a panic's message and stdout go to the log too.
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let stdout_lines = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect());
    let mut outcome = Outcome::default();
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let stderr = child.stderr.take().context("no stderr pipe")?;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if echo {
            eprintln!("{line}");
        }
        let _ = writeln!(log, "{line}");
        outcome.observe(&line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child.wait().context("waiting for the fuzzer")?;
    let stdout_lines: Vec<String> = stdout_lines.join().unwrap_or_default();
    for line in &stdout_lines {
        if echo {
            println!("{line}");
        }
        let _ = writeln!(log, "{line}");
    }
    let interrupted = keel_boot_tests::interrupt::stop_requested() || status.code() == Some(INTERRUPTED_EXIT_CODE);
    Ok(Report {
        passed: status.success(),
        interrupted,
        outcome,
        seconds: started.elapsed().as_secs_f64(),
        log: log_path,
        tail: tail.into(),
    })
}

/// The lines of a failed run worth showing: the panic message (without the
/// backtrace) or libFuzzer's error line.
fn failure_excerpt(tail: &[String]) -> Vec<&str> {
    if let Some(start) = tail.iter().rposition(|line| line.contains("panicked at")) {
        return tail[start..]
            .iter()
            .take_while(|line| !line.starts_with("stack backtrace:") && !line.starts_with("note: "))
            .map(String::as_str)
            .filter(|line| !line.is_empty())
            .collect();
    }
    tail.iter()
        .filter(|line| line.contains("ERROR: libFuzzer") || line.starts_with("ALARM:"))
        .map(String::as_str)
        .collect()
}

/// Prints a run's result line (and on failure what went wrong, unless
/// libFuzzer's output was shown already, and the input to reproduce it
/// with); returns whether it passed.
fn print_report(target: &str, report: &Report, echoed: bool, reproduced: Option<&Path>) -> bool {
    let time = format!("{:.1} s", report.seconds);
    if report.passed {
        println!("PASS  fuzz {target} ({time}, {})", report.outcome.describe());
        return true;
    }
    if report.interrupted {
        println!(
            "SKIP  fuzz {target} (interrupted after {time}, {})",
            report.outcome.describe()
        );
        return false;
    }
    let reason = report.outcome.failure.as_deref().unwrap_or("the fuzzer failed");
    println!("FAIL  fuzz {target} ({time}): {reason}");
    if !echoed {
        for line in failure_excerpt(&report.tail) {
            println!("      {line}");
        }
    }
    let input = reproduced
        .map(|input| input.display().to_string())
        .or_else(|| report.outcome.artifact.clone());
    match input {
        Some(input) => {
            println!("      input: {input}");
            println!("      reproduce: cargo xtask fuzz {target} --reproduce {input}");
        }
        None => println!("      no input was saved"),
    }
    println!("      libFuzzer's output: {}", report.log.display());
    false
}

/// `cargo xtask fuzz [TARGET | --all] [--seconds N] [--reproduce FILE]`.
pub fn run(
    workspace: &Workspace,
    target: Option<&str>,
    all: bool,
    seconds: u64,
    reproduce: Option<&Path>,
) -> Result<()> {
    let available = targets(workspace)?;
    let selected: Vec<&str> = match target {
        _ if all => available.iter().map(|target| target.name.as_str()).collect(),
        Some(name) => {
            if !available.iter().any(|target| target.name == name) {
                let names: Vec<&str> = available.iter().map(|target| target.name.as_str()).collect();
                bail!("no fuzz target {name:?}; the targets are: {}", names.join(" "));
            }
            vec![name]
        }
        None => {
            println!("fuzz targets (cargo xtask fuzz <target> [--seconds N], or --all):");
            for target in &available {
                println!("  {:<16} {}", target.name, target.summary);
            }
            return Ok(());
        }
    };
    // The fuzzer runs in the workspace root; the input may be relative to here.
    let reproduce = reproduce
        .map(std::path::absolute)
        .transpose()
        .context("cannot resolve the input's path")?;
    let reproduce = reproduce.as_deref();
    let paths = Paths::new(workspace);
    build(workspace, &paths, &selected)?;
    let mut failed = Vec::new();
    for name in selected {
        let mode = match reproduce {
            Some(input) => Mode::Reproduce(input),
            None => {
                say!(
                    "fuzzing {name} for {seconds} s (corpus {})",
                    paths.corpus.join(name).display()
                );
                Mode::Fuzz { seconds }
            }
        };
        let report = run_target(workspace, &paths, name, mode, true)?;
        if !print_report(name, &report, true, reproduce) {
            failed.push(name);
        }
        if report.interrupted {
            bail!("interrupted");
        }
    }
    if !failed.is_empty() {
        bail!("fuzz target(s) failed: {}", failed.join(" "));
    }
    Ok(())
}

/// `cargo xtask test`'s fuzz step: every target for [`SMOKE_SECONDS`],
/// one line each.
pub fn smoke(workspace: &Workspace) -> Result<()> {
    let started = Instant::now();
    let available = targets(workspace)?;
    let names: Vec<&str> = available.iter().map(|target| target.name.as_str()).collect();
    if names.is_empty() {
        return Ok(());
    }
    let paths = Paths::new(workspace);
    build(workspace, &paths, &names)?;
    say!(
        "fuzzing each of {} targets for {SMOKE_SECONDS} s (longer: cargo xtask fuzz <target> --seconds N)",
        names.len()
    );
    let mut failed = Vec::new();
    for name in &names {
        let report = run_target(workspace, &paths, name, Mode::Fuzz { seconds: SMOKE_SECONDS }, false)?;
        if !print_report(name, &report, false, None) {
            failed.push(*name);
        }
        if report.interrupted {
            bail!("interrupted");
        }
    }
    println!(
        "fuzz: {} passed, {} failed ({:.0} s with the build)",
        names.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("fuzz target(s) failed: {}", failed.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_read_from_the_manifest() {
        let manifest = r#"
            [package]
            name = "x"
            [[bin]]
            name = "first"
            path = "fuzz_targets/first.rs"
            [[bin]]
            name = "second"
        "#;
        assert_eq!(
            parse_bins(manifest).unwrap(),
            [
                ("first".to_string(), "fuzz_targets/first.rs".to_string()),
                ("second".to_string(), "fuzz_targets/second.rs".to_string())
            ]
        );
        assert!(parse_bins("[package]\nname = \"x\"\n").unwrap().is_empty());
        assert!(parse_bins("[[bin]]\npath = \"a.rs\"\n").is_err());
    }

    #[test]
    fn the_workspace_declares_the_fuzz_targets() {
        let workspace = Workspace::locate();
        let names: Vec<String> = targets(&workspace)
            .unwrap()
            .into_iter()
            .map(|target| target.name)
            .collect();
        for expected in ["bzimage", "mmio_decode", "mgmt_abi", "domain_config", "cmdline"] {
            assert!(
                names.iter().any(|name| name == expected),
                "{expected} missing from {names:?}"
            );
        }
        for target in targets(&workspace).unwrap() {
            assert!(!target.summary.is_empty(), "{} has no //! line", target.name);
        }
    }

    #[test]
    fn the_first_doc_line_is_the_summary() {
        assert_eq!(first_doc_line("//! The thing.\n//! More.\n#![no_main]"), "The thing.");
        assert_eq!(first_doc_line("#![no_main]"), "");
    }

    #[test]
    fn libfuzzer_output_is_summarised() {
        let mut outcome = Outcome::default();
        for line in [
            "INFO: Seed: 1234",
            "#5\tINITED cov: 378 ft: 473 corp: 4/14712b exec/s: 0 rss: 27Mb",
            "#971803\tDONE   cov: 451 ft: 1368 corp: 414/319Kb lim: 4096 exec/s: 161967 rss: 28Mb",
            "stat::number_of_executed_units: 971803",
        ] {
            outcome.observe(line);
        }
        assert_eq!(
            outcome,
            Outcome {
                runs: Some(971803),
                coverage: Some(451),
                features: Some(1368),
                corpus: Some(414),
                artifact: None,
                failure: None,
            }
        );
        assert_eq!(outcome.describe(), "971803 runs, cov 451, ft 1368, corpus 414");
        let reproduced = Outcome {
            runs: Some(1),
            ..Outcome::default()
        };
        assert_eq!(reproduced.describe(), "1 run");
    }

    #[test]
    fn a_panic_is_shown_without_its_backtrace() {
        let tail: Vec<String> = [
            "#3807\tREDUCE cov: 428 ft: 624 corp: 32/65Kb",
            "",
            "thread '<unnamed>' (21148) panicked at fuzz_targets/bzimage.rs:39:13:",
            "assertion `left == right` failed: a refused load wrote to guest memory",
            "  left: 5",
            " right: 0",
            "stack backtrace:",
            "   0: __rustc::rust_begin_unwind",
            "==21148== ERROR: libFuzzer: deadly signal",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            failure_excerpt(&tail),
            [
                "thread '<unnamed>' (21148) panicked at fuzz_targets/bzimage.rs:39:13:",
                "assertion `left == right` failed: a refused load wrote to guest memory",
                "  left: 5",
                " right: 0"
            ]
        );
        let timeout = [
            "ALARM: working on the last Unit for 10 seconds",
            "==7== ERROR: libFuzzer: timeout after 10 seconds",
        ]
        .map(String::from);
        assert_eq!(failure_excerpt(&timeout).len(), 2);
    }

    #[test]
    fn a_crash_names_its_input() {
        let mut outcome = Outcome::default();
        outcome.observe("SUMMARY: libFuzzer: deadly signal");
        outcome.observe(
            "artifact_prefix='target/fuzz-artifacts/bzimage/'; Test unit written to \
             target/fuzz-artifacts/bzimage/crash-04adc0a4",
        );
        assert_eq!(outcome.failure.as_deref(), Some("libFuzzer: deadly signal"));
        assert_eq!(
            outcome.artifact.as_deref(),
            Some("target/fuzz-artifacts/bzimage/crash-04adc0a4")
        );
    }
}
