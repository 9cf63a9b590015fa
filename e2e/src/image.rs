//! What the image runs: the Dockerfile's exec-form ENTRYPOINT and CMD of its final stage (the
//! harness has no image, so it reads the recipe).

use std::path::Path;

/// The Dockerfile's last exec-form ENTRYPOINT followed by its CMD; the binary's name when
/// there is no Dockerfile (yet).
pub fn entrypoint(repo: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(repo.join("Dockerfile")) else {
        return vec![contract::APP_NAME.to_string()];
    };
    // Logical instructions (continuation lines joined) of the final stage only.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') && current.is_empty() {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let last_stage = instructions
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .map_or(&instructions[..], |at| &instructions[at..]);
    let exec_form = |keyword: &str| -> Option<Vec<String>> {
        last_stage
            .iter()
            .rev()
            .find_map(|i| i.strip_prefix(keyword))
            .and_then(|rest| serde_json::from_str::<Vec<String>>(rest.trim()).ok())
    };
    let mut argv = exec_form("ENTRYPOINT ").unwrap_or_else(|| vec![contract::APP_NAME.into()]);
    argv.extend(exec_form("CMD ").unwrap_or_default());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entrypoint_comes_from_the_last_stage_not_from_healthcheck_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM a AS build\nENTRYPOINT [\"/wrong\"]\nFROM b\nHEALTHCHECK --interval=5s \\\n    CMD [\"/hello-k8s\", \"healthcheck\"]\nENTRYPOINT [\"/hello-k8s\"]\n",
        )
        .expect("write");
        assert_eq!(entrypoint(dir.path()), ["/hello-k8s"]);
    }
}
