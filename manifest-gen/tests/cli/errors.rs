//! Bad flags and overrides: a clear `error: ...` naming what is wrong and what was expected,
//! a non-zero exit, and nothing written.

use crate::helpers::*;

#[track_caller]
fn refused(args: &[&str], expected: &[&str]) -> Run {
    let run = manifest_gen(args).failure();
    assert!(run.stdout.is_empty(), "{args:?} printed:\n{}", run.stdout);
    for text in expected {
        assert!(
            run.stderr.contains(text),
            "{args:?}: stderr lacks {text:?}:\n{}",
            run.stderr
        );
    }
    run
}

#[test]
fn unknown_environment_and_missing_env_are_refused() {
    refused(
        &["--env", "nosuch"],
        &["unknown overlay \"nosuch\"", "expected one of: dev, prod"],
    );
    refused(&["render", "--env", "nosuch"], &["nosuch", "dev, prod"]);
    refused(&[], &["--env"]);
}

#[test]
fn bad_override_values_name_the_flag_the_value_and_the_expected_form() {
    refused(
        &["--env", "dev", "--replicas", "0"],
        &["--replicas", "0", "1.."],
    );
    refused(
        &["--env", "dev", "--replicas", "two"],
        &["--replicas", "two"],
    );
    refused(
        &["--env", "dev", "--namespace", "Bad_NS"],
        &["--namespace", "Bad_NS", "DNS-1123 label"],
    );
    refused(
        &["--env", "dev", "--image", "hello-k8s"],
        &["--image", "hello-k8s", "NAME:TAG"],
    );
    refused(
        &["--env", "dev", "--image", "Hello:1"],
        &["--image", "\"Hello\"", "NAME:TAG"],
    );
    refused(
        &["--env", "dev", "--set", "NOVALUE"],
        &["--set", "NOVALUE", "KEY=VALUE"],
    );
    refused(
        &["--env", "dev", "--set", "A B=1"],
        &["--set", "\"A B\"", "not a valid ConfigMap key"],
    );
}

#[test]
fn overrides_are_checked_with_the_service_configuration_rules() {
    refused(
        &["--env", "dev", "--set", "DEBUG=maybe"],
        &[
            "--set DEBUG=maybe",
            "DEBUG is \"maybe\"",
            "expected true or false",
        ],
    );
    refused(
        &["render", "--env", "dev", "--set", "PORT=abc"],
        &["PORT", "expected an integer port number"],
    );
    refused(
        &["--env", "prod", "--set", "API_KEY=leaked"],
        &["API_KEY comes from the Secret", "secret.env"],
    );
    refused(&["--env", "dev", "--set", "POD_NAME=x"], &["downward API"]);
}

#[test]
fn objects_that_would_not_work_are_refused_with_object_and_field() {
    refused(
        &["--env", "dev", "--set", "SHUTDOWN_TIMEOUT_SECONDS=60"],
        &[
            "Deployment hello-k8s: spec.template.spec.terminationGracePeriodSeconds is 30, expected >= 70",
            "DRAIN_DELAY_SECONDS 5 + SHUTDOWN_TIMEOUT_SECONDS 60",
        ],
    );
    refused(
        &["--env", "dev", "--set", "PORT=8080"],
        &["ConfigMap hello-k8s-config: data.PORT is \"8080\""],
    );
    refused(&["--env", "dev", "--set", "HOST=127.0.0.1"], &["data.HOST"]);
    refused(
        &["--env", "prod", "--replicas", "5"],
        &["--replicas 5: the prod overlay's HorizontalPodAutoscaler owns the replica count (3-10)"],
    );
}

#[test]
fn a_refused_override_writes_nothing() {
    let tmp = temp_dir();
    let dir = tmp.path().join("overlay");
    let run = manifest_gen(&[
        "--env",
        "dev",
        "--out-dir",
        dir.to_str().unwrap(),
        "--set",
        "DEBUG=maybe",
    ])
    .failure();
    assert!(run.stderr.contains("DEBUG"));
    assert!(!dir.exists(), "the overlay directory was created");

    let (_tmp, root) = tree_copy();
    let before = read_tree(&root);
    let dir = root.join("overlays/dev");
    write_overlay(
        &root,
        "dev",
        &dir,
        &["--set", "SHUTDOWN_TIMEOUT_SECONDS=100"],
    )
    .failure();
    assert_trees_eq(
        &before,
        &read_tree(&root),
        "before",
        "after the refused run",
    );
}

#[test]
fn commands_and_print_flags_do_not_mix() {
    let run = manifest_gen(&["--env", "dev", "write"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
}

#[test]
fn render_prod_without_the_secret_file_names_it_and_the_command_that_creates_it() {
    let tmp = temp_dir();
    let missing = tmp.path().join("secret.env");
    let run = refused(
        &[
            "render",
            "--env",
            "prod",
            "--secret-env-file",
            missing.to_str().unwrap(),
        ],
        &[missing.to_str().unwrap(), "openssl rand -hex 32"],
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn render_prod_with_a_bad_secret_never_shows_it() {
    let tmp = temp_dir();
    let file = tmp.path().join("secret.env");
    let canary = format!("canary{}", random_token());
    let render_with = |content: String, says: &[&str]| {
        std::fs::write(&file, content).unwrap();
        let run = refused(
            &[
                "render",
                "--env",
                "prod",
                "--secret-env-file",
                file.to_str().unwrap(),
            ],
            says,
        );
        assert!(!run.stderr.contains(&canary), "{}", run.stderr);
    };
    // Read as text before kubectl is asked.
    std::fs::write(&file, b"API_KEY=\xff\n").unwrap();
    refused(
        &[
            "render",
            "--env",
            "prod",
            "--secret-env-file",
            file.to_str().unwrap(),
        ],
        &["does not hold UTF-8 text"],
    );
    if tool("kubectl").is_none() {
        return;
    }
    // What kustomize read, by the service's rules.
    render_with(
        format!("API_KEY=with space {canary}\n"),
        &["API_KEY", "whitespace", "value not shown"],
    );
    render_with(
        format!("API_KEY={canary}\u{7f}\n"),
        &["API_KEY is set to a value that is not valid (value not shown)"],
    );
    render_with(
        format!("# comment\nOTHER={canary}\n"),
        &["API_KEY is missing"],
    );
    // A key kustomize cannot use makes it print the whole Secret: its message is withheld.
    render_with(
        format!("API_KEY={canary}\ntrue=x\n"),
        &["kubectl kustomize refused the Secret file", "not shown"],
    );
}

#[test]
fn validate_reports_each_environment_and_refuses_a_broken_override() {
    let run = manifest_gen(&["validate"]).success();
    assert!(run.stderr.contains("dev: valid") && run.stderr.contains("prod: valid"));
    refused(
        &[
            "validate",
            "--env",
            "prod",
            "--set",
            "DRAIN_DELAY_SECONDS=30",
        ],
        &["terminationGracePeriodSeconds is 30, expected >= 45"],
    );
}
