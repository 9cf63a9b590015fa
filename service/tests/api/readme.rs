//! README's configuration table is generated from the contract: this test renders it from
//! `contract::ENV_KEYS` and fails, printing the expected table, when README has drifted.

use contract::{ENV_KEYS, Source};

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

pub fn configuration_table() -> String {
    let mut table = String::from(
        "| Variable | From | Default | Accepted values | What it does |\n\
         |---|---|---|---|---|\n",
    );
    for key in ENV_KEYS {
        let source = match key.source {
            Source::ConfigMap => "ConfigMap".to_owned(),
            Source::Secret => format!(
                "Secret, mounted as the file `{}/{}`",
                contract::SECRET_MOUNT_DIR,
                key.name
            ),
            Source::FieldRef(path) => format!("downward API `{path}`"),
        };
        // A literal value in code style; a rule ("json in production, ...") as prose.
        let default = match key.default {
            None => "(unset)".to_owned(),
            Some(d) if d.contains(' ') => cell(d),
            Some(d) => format!("`{d}`"),
        };
        table.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            key.name,
            source,
            default,
            cell(key.expected),
            cell(key.description)
        ));
    }
    table
}

#[test]
fn readme_contains_the_configuration_table_generated_from_the_contract() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let table = configuration_table();
    assert!(
        readme.contains(&table),
        "README.md's configuration table has drifted from contract::ENV_KEYS; \
         replace it with:\n\n{table}"
    );
}
