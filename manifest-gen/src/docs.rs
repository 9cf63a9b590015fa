//! Generated blocks in the documentation: `manifest-gen docs --write|--check`.
//!
//! A block is everything between `<!-- BEGIN generated: NAME (make docs) -->` and
//! `<!-- END generated: NAME -->` in `README.md` and `docs/*.md`. Its text is derived from
//! one declaration: `configuration` from the contract's keys, `overlays` from the overlay
//! declaration. Unknown names and unbalanced markers are errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

use crate::declaration::{Overlays, SecretSource};
use crate::tree::{self, Files};

/// Whether to rewrite the blocks or only report drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Write,
    Check,
}

const BEGIN: &str = "<!-- BEGIN generated: ";
const BEGIN_END: &str = " (make docs) -->";
const END: &str = "<!-- END generated: ";
const END_END: &str = " -->";

/// The names of the blocks this command fills.
pub const BLOCKS: &[&str] = &["checks", "configuration", "overlays"];

/// The text of the block `name`.
pub fn block(name: &str, overlays: &Overlays) -> Option<String> {
    match name {
        "configuration" => Some(contract::docs::configuration_table()),
        "overlays" => Some(overlays_table(overlays)),
        "checks" => Some(checks_list()),
        _ => None,
    }
}

/// The checks manifest-gen runs before any output: each input with the rule of the reader
/// that reads it next (the same constants the errors state), the file bounds, and the checks
/// on the plan's objects ([`crate::checks::OBJECT_CHECKS`]).
pub fn checks_list() -> String {
    use crate::input::{
        EXIT_BAD_INPUT, MAX_DECLARATION_BYTES, MAX_DOCUMENT_BYTES, MAX_SECRET_ENV_BYTES,
        MAX_TREE_FILE_BYTES,
    };
    use crate::overrides::{
        CONFIG_MAP_KEY_RULE, IMAGE_RULE, MAX_DATA_BYTES, NAMESPACE_RULE, VALUE_RULE, YAML_KEY_RULE,
    };
    let inputs = [
        (
            "`--image`",
            "the OCI distribution reference grammar (kubelet, containerd)",
            IMAGE_RULE.trim_start_matches("expected ").to_string(),
        ),
        (
            "`--set` keys, Secret keys (declaration `literals`, secret.env)",
            "the API server (`IsConfigMapKey`)",
            CONFIG_MAP_KEY_RULE.to_string(),
        ),
        (
            "`--set` keys, Secret keys",
            "kustomize (a YAML 1.1 round trip of its own output)",
            YAML_KEY_RULE.to_string(),
        ),
        (
            "`--set` values, declared Secret `literals`",
            "kustomize",
            VALUE_RULE.to_string(),
        ),
        (
            "`--set` keys",
            "the service's contract",
            "not the Secret's key in any spelling (`api-key`), not a downward-API key; a key the service does not read is accepted with a warning".to_string(),
        ),
        (
            "`--set` values, `API_KEY` (declaration `literals`, secret.env)",
            "the service's own configuration check",
            "what the service accepts for that key (e.g. `DEBUG` true or false, `API_KEY` a token without whitespace), with the message the service would print; values of secrets are never shown".to_string(),
        ),
        (
            "ConfigMap and Secret data",
            "the API server",
            format!("at most {MAX_DATA_BYTES} bytes of keys and values (1 MiB)"),
        ),
        (
            "`--namespace`, declared `namespace`",
            "the API server, and Kubernetes' reserved names",
            NAMESPACE_RULE.to_string(),
        ),
        (
            "`--replicas`, declared `replicas`",
            "the HorizontalPodAutoscaler",
            "at least 1; refused for an overlay whose component adds an autoscaler (it owns the count)".to_string(),
        ),
        (
            "`--out-dir`",
            "`make manifests` (which owns the tree)",
            "not the tree's root, `overlays/`, the base, the components or another declared overlay (or anything under them), symlinks resolved; the overlay's own directory or any directory outside the tree".to_string(),
        ),
    ];
    let files = [
        ("`--overlays FILE`", MAX_DECLARATION_BYTES),
        (
            "`--secret-env-file FILE` (and `<root>/overlays/<name>/secret.env`)",
            MAX_SECRET_ENV_BYTES,
        ),
        ("the tree's files (`check`)", MAX_TREE_FILE_BYTES),
        ("README.md and docs/*.md (`docs`)", MAX_DOCUMENT_BYTES),
    ];
    let mut out = String::from("| Input | Whose rule | Accepted |\n|---|---|---|\n");
    for (input, reader, rule) in inputs {
        out.push_str(&format!(
            "| {input} | {reader} | {} |\n",
            rule.replace('|', "\\|")
        ));
    }
    for (input, limit) in files {
        out.push_str(&format!(
            "| {input} | the service's rule for its own files | a regular file (not a FIFO, device or directory) of UTF-8 text of at most {limit} bytes, the bound enforced while reading; otherwise exit {EXIT_BAD_INPUT} |\n"
        ));
    }
    out.push_str("\nOn the objects of the plan:\n");
    let last = crate::checks::OBJECT_CHECKS.len().saturating_sub(1);
    for (i, check) in crate::checks::OBJECT_CHECKS.iter().enumerate() {
        let end = if i == last { '.' } else { ';' };
        out.push_str(&format!("- {check}{end}\n"));
    }
    out
}

/// The Markdown table of the declared overlays.
pub fn overlays_table(overlays: &Overlays) -> String {
    let mut table = String::from(
        "| Overlay | Namespace | Replicas | NodePort | Service environment | What it adds |\n\
         |---|---|---|---|---|---|\n",
    );
    for overlay in &overlays.list {
        let mut adds = vec![match &overlay.secret {
            SecretSource::Literals(pairs) => format!(
                "a fake, committed Secret ({})",
                pairs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            SecretSource::EnvFile(file) => format!(
                "the Secret from the operator's git-ignored `{file}` (see `{file}.example`)"
            ),
        }];
        for component in &overlay.components {
            adds.push(format!(
                "component `{}`: {}",
                component.name(),
                component.adds()
            ));
        }
        table.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} | {} |\n",
            overlay.name,
            overlay.namespace,
            match (overlay.replicas, overlay.autoscaling()) {
                (Some(n), _) => n.to_string(),
                (None, Some(s)) => format!("{}-{} (HPA)", s.min_replicas, s.max_replicas),
                (None, None) => "-".to_string(),
            },
            overlay.node_port,
            overlay.environment,
            adds.join("; ")
        ));
    }
    table
}

/// The files that may hold blocks: `README.md` and `docs/*.md` under `root`, those present.
fn documents(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if root.join("README.md").is_file() {
        files.push(PathBuf::from("README.md"));
    }
    let docs = root.join("docs");
    if docs.is_dir() {
        let mut md = Vec::new();
        for entry in
            std::fs::read_dir(&docs).with_context(|| format!("cannot list {}", docs.display()))?
        {
            let entry = entry.with_context(|| format!("cannot list {}", docs.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".md") && entry.path().is_file() {
                md.push(Path::new("docs").join(name));
            }
        }
        md.sort();
        files.extend(md);
    }
    Ok(files)
}

/// A block found in a text: its name and the byte range of its content.
struct Found {
    name: String,
    line: usize,
    content: std::ops::Range<usize>,
}

/// The blocks of `text`, in order; `file` names it in errors.
fn find_blocks(text: &str, file: &Path) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut open: Option<(String, usize, usize)> = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        let trimmed = line.trim_end();
        if let Some(rest) = trimmed.strip_prefix(BEGIN) {
            let Some(name) = rest.strip_suffix(BEGIN_END) else {
                bail!(
                    "{}:{number}: a BEGIN marker must read `{BEGIN}NAME{BEGIN_END}`",
                    file.display()
                );
            };
            if let Some((other, at, _)) = &open {
                bail!(
                    "{}:{number}: block {name} begins inside block {other} (line {at}), which has no END",
                    file.display()
                );
            }
            if !BLOCKS.contains(&name) {
                bail!(
                    "{}:{number}: unknown generated block {name:?}; known: {}",
                    file.display(),
                    BLOCKS.join(", ")
                );
            }
            open = Some((name.to_string(), number, offset + line.len()));
        } else if let Some(rest) = trimmed.strip_prefix(END) {
            let name = rest.strip_suffix(END_END).unwrap_or(rest);
            match open.take() {
                Some((open_name, at, start)) if open_name == name => found.push(Found {
                    name: open_name,
                    line: at,
                    content: start..offset,
                }),
                Some((open_name, at, _)) => bail!(
                    "{}:{number}: END of block {name} while block {open_name} (line {at}) is open",
                    file.display()
                ),
                None => bail!(
                    "{}:{number}: END of block {name} without a BEGIN",
                    file.display()
                ),
            }
        }
        offset += line.len();
    }
    if let Some((name, at, _)) = open {
        bail!(
            "{}:{at}: block {name} has no END marker `{END}{name}{END_END}`",
            file.display()
        );
    }
    Ok(found)
}

/// `text` with every block filled; the second value lists the blocks that changed.
fn fill(text: &str, file: &Path, overlays: &Overlays) -> Result<(String, Vec<(String, usize)>)> {
    let mut out = String::with_capacity(text.len());
    let mut changed = Vec::new();
    let mut last = 0;
    for found in find_blocks(text, file)? {
        let wanted = block(&found.name, overlays).unwrap_or_default();
        out.push_str(&text[last..found.content.start]);
        out.push_str(&wanted);
        if text[found.content.clone()] != wanted {
            changed.push((found.name.clone(), found.line));
        }
        last = found.content.end;
    }
    out.push_str(&text[last..]);
    Ok((out, changed))
}

/// Fills or checks every block under `root`.
pub fn run(root: &Path, overlays: &Overlays, mode: Mode) -> Result<ExitCode> {
    let mut rewritten = Files::new();
    let mut drift = Vec::new();
    let mut blocks = 0;
    for file in documents(root)? {
        let path = root.join(&file);
        let text = crate::input::read("the document", &path, crate::input::MAX_DOCUMENT_BYTES)?;
        blocks += find_blocks(&text, &path)?.len();
        let (filled, changed) = fill(&text, &path, overlays)?;
        for (name, line) in changed {
            drift.push(format!(
                "{}:{line}: block {name} is not current",
                path.display()
            ));
        }
        if filled != text {
            rewritten.insert(file, filled);
        }
    }
    match mode {
        Mode::Write => {
            tree::write(root, &rewritten, false)?;
            eprintln!(
                "{blocks} generated blocks, {} files rewritten",
                rewritten.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Mode::Check if drift.is_empty() => {
            eprintln!("{blocks} generated blocks are current");
            Ok(ExitCode::SUCCESS)
        }
        Mode::Check => {
            for line in &drift {
                eprintln!("error: {line}; run `make docs` (manifest-gen docs --write)");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn overlays() -> Overlays {
        Overlays::builtin().unwrap()
    }

    #[test]
    fn blocks_are_filled_and_text_around_them_kept() {
        let text = "# T\n<!-- BEGIN generated: overlays (make docs) -->\nold\n<!-- END generated: overlays -->\nafter\n";
        let (filled, changed) = fill(text, Path::new("x.md"), &overlays()).unwrap();
        assert_eq!(changed, [("overlays".to_string(), 2)]);
        assert!(
            filled.starts_with("# T\n<!-- BEGIN generated: overlays (make docs) -->\n| Overlay |")
        );
        assert!(
            filled.ends_with("|\n<!-- END generated: overlays -->\nafter\n"),
            "{filled}"
        );
        assert!(
            filled.contains("| `prod` | `hello-k8s-prod` | 3-10 (HPA) | 31181 |"),
            "{filled}"
        );
        let (again, changed) = fill(&filled, Path::new("x.md"), &overlays()).unwrap();
        assert_eq!(again, filled);
        assert!(changed.is_empty());
    }

    #[test]
    fn unknown_and_unbalanced_blocks_are_errors_naming_file_and_line() {
        for (text, says) in [
            (
                "<!-- BEGIN generated: colours (make docs) -->\n<!-- END generated: colours -->\n",
                "x.md:1: unknown generated block \"colours\"",
            ),
            (
                "<!-- BEGIN generated: overlays (make docs) -->\n",
                "x.md:1: block overlays has no END",
            ),
            (
                "<!-- END generated: overlays -->\n",
                "x.md:1: END of block overlays without a BEGIN",
            ),
            (
                "<!-- BEGIN generated: overlays -->\n",
                "x.md:1: a BEGIN marker must read",
            ),
        ] {
            let err = find_blocks(text, Path::new("x.md"))
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
