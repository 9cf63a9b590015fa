//! `manifest-gen docs --write|--check`: the generated blocks of README.md and docs/*.md.

use crate::helpers::*;

#[test]
fn docs_check_passes_on_the_repository() {
    let run = manifest_gen(&["docs", "--check", "--root", repo().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

const STALE: &str = "# Title\n\nBefore.\n\n<!-- BEGIN generated: overlays (make docs) -->\n| stale |\n<!-- END generated: overlays -->\n\nBetween.\n\n<!-- BEGIN generated: configuration (make docs) -->\n<!-- END generated: configuration -->\nAfter.\n";

#[test]
fn a_stale_block_fails_the_check_naming_file_and_block_and_write_fixes_it() {
    let tmp = temp_dir();
    let root = tmp.path();
    std::fs::create_dir(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/generator.md"), STALE).unwrap();
    std::fs::write(root.join("README.md"), "No blocks here.\n").unwrap();
    let root_arg = root.to_str().unwrap();

    let run = manifest_gen(&["docs", "--check", "--root", root_arg]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let file = root.join("docs/generator.md");
    for block in ["5: block overlays", "11: block configuration"] {
        assert!(
            run.stderr
                .contains(&format!("{}:{block} is not current", file.display())),
            "{block}: {}",
            run.stderr
        );
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        STALE,
        "check wrote"
    );

    manifest_gen(&["docs", "--write", "--root", root_arg]).success();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(
            "# Title\n\nBefore.\n\n<!-- BEGIN generated: overlays (make docs) -->\n| Overlay |"
        ),
        "{text}"
    );
    assert!(
        text.contains("| `dev` | `hello-k8s-dev` | 1 | 31180 |"),
        "{text}"
    );
    assert!(text.contains("| `DRAIN_DELAY_SECONDS` |"), "{text}");
    assert!(
        text.ends_with("<!-- END generated: configuration -->\nAfter.\n"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("README.md")).unwrap(),
        "No blocks here.\n"
    );
    manifest_gen(&["docs", "--check", "--root", root_arg]).success();
    assert!(
        read_tree(root)
            .keys()
            .all(|p| !p.to_string_lossy().contains(".tmp"))
    );
}

#[test]
fn an_unknown_block_name_is_an_error() {
    let tmp = temp_dir();
    std::fs::write(
        tmp.path().join("README.md"),
        "<!-- BEGIN generated: colours (make docs) -->\n<!-- END generated: colours -->\n",
    )
    .unwrap();
    for mode in ["--check", "--write"] {
        let run = manifest_gen(&["docs", mode, "--root", tmp.path().to_str().unwrap()]).failure();
        assert!(
            run.stderr.contains("unknown generated block \"colours\""),
            "{}",
            run.stderr
        );
    }
    manifest_gen(&["docs"]);
    let run = manifest_gen(&["docs", "--check", "--write"]);
    assert_ne!(run.code, 0);
}
