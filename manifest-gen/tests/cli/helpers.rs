//! Running the binary, copying the tree, finding external tools.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize as _;
use tempfile::TempDir;

/// The repository root (the workspace).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The committed tree.
pub fn committed_root() -> PathBuf {
    repo().join("k8s")
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "expected success, stderr:\n{}", self.stderr);
        self
    }

    #[track_caller]
    pub fn failure(self) -> Self {
        assert_ne!(self.code, 0, "expected failure, stdout:\n{}", self.stdout);
        assert!(
            self.stderr.starts_with("error: "),
            "stderr should start with `error: `:\n{}",
            self.stderr
        );
        self
    }
}

/// Runs `manifest-gen` with `args` in `dir`.
pub fn manifest_gen_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_manifest-gen"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs `manifest-gen` with `args` at the repository root.
/// `manifest-gen --env ENV --root ROOT --out-dir DIR EXTRA...`: writes one overlay directory.
pub fn write_overlay(root: &Path, env: &str, dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "--env",
        env,
        "--root",
        root.to_str().unwrap(),
        "--out-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    manifest_gen(&args)
}

pub fn manifest_gen(args: &[&str]) -> Run {
    manifest_gen_in(&repo(), args)
}

/// A temporary directory whose name does not start with a dot (checkov skips hidden paths).
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("manifest-gen-test-")
        .tempdir()
        .unwrap()
}

/// A random token (hex), for test secrets.
pub fn random_token() -> String {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A temporary copy of the committed tree at `<tmp>/k8s`, with a generated production
/// secret.env (the real tree is never written by tests).
pub fn tree_copy() -> (TempDir, PathBuf) {
    let tmp = temp_dir();
    let root = tmp.path().join("k8s");
    copy_dir(&committed_root(), &root);
    let secret = root.join("overlays/prod/secret.env");
    if !secret.exists() {
        std::fs::write(&secret, format!("API_KEY={}\n", random_token())).unwrap();
    }
    (tmp, root)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `root`, by relative path.
pub fn read_tree(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// An external tool: `.venv/bin/<name>` first, then PATH. Absent: `None` with a loud message,
/// or a failure when CI=true.
pub fn tool(name: &str) -> Option<PathBuf> {
    let venv = repo().join(".venv/bin").join(name);
    if venv.is_file() {
        return Some(venv);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is required when CI=true (run `make venv`, or install kubectl)"
        );
        let test = std::thread::current()
            .name()
            .unwrap_or("manifest-gen cli")
            .to_string();
        let reason = format!("{name} not found in .venv/bin or PATH (run `make venv`)");
        eprintln!(
            "\n!!!!!!!! SKIPPED {test}: {reason}; this test proves nothing without it !!!!!!!!\n"
        );
        // make test collects these lines and prints them after the run (cargo captures ours).
        if let Some(log) = std::env::var_os("SKIP_LOG") {
            use std::io::Write as _;
            let line = format!("manifest-gen {test}: {reason}\n");
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = appended {
                eprintln!(
                    "cannot append to SKIP_LOG {}: {e}",
                    Path::new(&log).display()
                );
            }
        }
    }
    found
}

/// Runs a tool, returning (exit code, stdout, stderr).
pub fn run_tool(tool: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    use std::io::Write as _;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubectl kustomize <dir>`.
pub fn kubectl_kustomize(kubectl: &Path, dir: &Path) -> String {
    run_tool(kubectl, &["kustomize", dir.to_str().unwrap()], None)
        .success()
        .stdout
}

/// A YAML stream as JSON values keyed by `Kind/name`, so the order of documents does not
/// matter but everything else does.
pub fn objects(stream: &str) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for doc in yaml_serde::Deserializer::from_str(stream) {
        let value = serde_json::Value::deserialize(doc).unwrap();
        if value.is_null() {
            continue;
        }
        let key = format!(
            "{}/{}",
            value["kind"].as_str().unwrap(),
            value["metadata"]["name"].as_str().unwrap()
        );
        assert!(out.insert(key.clone(), value).is_none(), "{key} twice");
    }
    out
}

/// The data of the one ConfigMap in `objects`.
pub fn config_map_data(
    objects: &BTreeMap<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let (_, cm) = objects
        .iter()
        .find(|(k, _)| k.starts_with("ConfigMap/"))
        .unwrap();
    cm["data"].as_object().unwrap().clone()
}

/// A unified diff of two texts (empty when equal).
pub fn diff(left: &str, right: &str, left_name: &str, right_name: &str) -> String {
    similar::TextDiff::from_lines(left, right)
        .unified_diff()
        .context_radius(3)
        .header(left_name, right_name)
        .to_string()
}

/// Asserts two object sets are equal; on failure the message lists the objects only one side
/// has and a diff of each object that differs.
#[track_caller]
pub fn assert_objects_eq(
    left: &BTreeMap<String, serde_json::Value>,
    right: &BTreeMap<String, serde_json::Value>,
    left_name: &str,
    right_name: &str,
) {
    if left == right {
        return;
    }
    let mut report = String::new();
    for key in left.keys().filter(|k| !right.contains_key(*k)) {
        report.push_str(&format!("only in {left_name}: {key}\n"));
    }
    for key in right.keys().filter(|k| !left.contains_key(*k)) {
        report.push_str(&format!("only in {right_name}: {key}\n"));
    }
    for (key, value) in left {
        if let Some(other) = right.get(key)
            && other != value
        {
            report.push_str(&diff(
                &serde_json::to_string_pretty(value).unwrap(),
                &serde_json::to_string_pretty(other).unwrap(),
                &format!("{key} ({left_name})"),
                &format!("{key} ({right_name})"),
            ));
        }
    }
    panic!("{left_name} and {right_name} differ:\n{report}");
}

/// Asserts two trees (relative path -> text) are equal; on failure the message lists missing
/// and extra files and a diff of each file that differs.
#[track_caller]
pub fn assert_trees_eq(
    left: &BTreeMap<PathBuf, String>,
    right: &BTreeMap<PathBuf, String>,
    left_name: &str,
    right_name: &str,
) {
    if left == right {
        return;
    }
    let mut report = String::new();
    for path in left.keys().filter(|k| !right.contains_key(*k)) {
        report.push_str(&format!("only in {left_name}: {}\n", path.display()));
    }
    for path in right.keys().filter(|k| !left.contains_key(*k)) {
        report.push_str(&format!("only in {right_name}: {}\n", path.display()));
    }
    for (path, text) in left {
        if let Some(other) = right.get(path)
            && other != text
        {
            let name = path.display();
            report.push_str(&diff(
                text,
                other,
                &format!("{name} ({left_name})"),
                &format!("{name} ({right_name})"),
            ));
        }
    }
    panic!("{left_name} and {right_name} differ:\n{report}");
}

/// The files of `tree` in the directories manifest-gen writes (those of `written`), without
/// the operator's secret.env: what `write` owns, whatever overlays a user added beside it.
pub fn generated_part(
    tree: &BTreeMap<PathBuf, String>,
    written: &BTreeMap<PathBuf, String>,
) -> BTreeMap<PathBuf, String> {
    let dirs: std::collections::BTreeSet<&Path> =
        written.keys().filter_map(|p| p.parent()).collect();
    tree.iter()
        .filter(|(p, _)| p.parent().is_some_and(|d| dirs.contains(d)))
        .filter(|(p, _)| !p.ends_with("secret.env"))
        .map(|(p, t)| (p.clone(), t.clone()))
        .collect()
}

/// `manifest-gen render --env ENV --root ROOT EXTRA...` (it runs `kubectl kustomize`).
pub fn render(root: &Path, env: &str, extra: &[&str]) -> Run {
    let mut args = vec!["render", "--env", env, "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    manifest_gen(&args)
}

/// Writes `render --env <env> --root ROOT EXTRA...` of dev and prod into `dir/<env>.yaml`, as
/// the validators read them.
pub fn rendered_files(dir: &Path, root: &Path, extra: &[&str]) {
    for env in ["dev", "prod"] {
        let out = render(root, env, extra).success().stdout;
        std::fs::write(dir.join(format!("{env}.yaml")), out).unwrap();
    }
}

/// A YAML double-quoted scalar holding `text` exactly, every non-ASCII or control character
/// escaped (so the file itself is plain ASCII).
pub fn yaml_double_quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xffff => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08X}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Runs checkov on the manifests in `dir` with `selection` (`--check ID` or `--skip-check
/// IDS`) offline, and returns its JSON report and exit code.
pub fn checkov_report(checkov: &Path, selection: &[&str], dir: &Path) -> (serde_json::Value, i32) {
    let mut args = vec![
        "--framework",
        "kubernetes",
        "--skip-download",
        "--compact",
        "--quiet",
        "--output",
        "json",
    ];
    args.extend_from_slice(selection);
    args.extend_from_slice(&["-d", dir.to_str().unwrap()]);
    let run = run_tool(checkov, &args, None);
    let report = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov output is not JSON ({e}):\n{}\n{}",
            run.stdout, run.stderr
        )
    });
    (report, run.code)
}
