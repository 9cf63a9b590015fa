//! The documentation's configuration table, rendered from [`crate::KEYS`] (the generator's
//! `docs` command writes it into the docs, and checks it for drift).

use crate::{Environment, KEYS, Source};

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn code(text: &str) -> String {
    format!("`{text}`")
}

/// The Markdown table of every environment key: name, where the cluster sets it and to what,
/// default, accepted values and what it does.
pub fn configuration_table() -> String {
    let mut table = String::from(
        "| Variable | In the cluster | Default | Accepted values | What it does |\n\
         |---|---|---|---|---|\n",
    );
    for key in KEYS {
        let cluster = match key.source {
            Source::ConfigMap(_) => {
                let dev = key
                    .cluster_value(Environment::Development)
                    .unwrap_or_default();
                let prod = key
                    .cluster_value(Environment::Production)
                    .unwrap_or_default();
                if dev == prod {
                    format!("ConfigMap: {}", code(&dev))
                } else {
                    format!(
                        "ConfigMap: {} (development), {} (production)",
                        code(&dev),
                        code(&prod)
                    )
                }
            }
            Source::Secret => format!(
                "Secret, mounted as the file `{}/{}`",
                crate::SECRET_MOUNT_DIR,
                key.name
            ),
            Source::FieldRef(path) => format!("downward API `fieldRef: {path}`"),
            Source::ResourceFieldRef(resource) => {
                format!("downward API `resourceFieldRef: {resource}`")
            }
        };
        // A literal value in code style; a rule ("json in production, ...") as prose.
        let default = match key.default() {
            None => "(unset)".to_owned(),
            Some(rule) if key.default_is_a_rule() => cell(&rule),
            Some(value) => code(&value),
        };
        table.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            key.name,
            cell(&cluster),
            default,
            cell(&key.accepted()),
            cell(key.description())
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_key_with_its_cluster_value() {
        let table = configuration_table();
        assert_eq!(table.lines().count(), KEYS.len() + 2);
        assert!(table.contains(
            "| `DEBUG` | ConfigMap: `true` (development), `false` (production) | `false` | true or false |"
        ));
        assert!(table.contains("| `PORT` | ConfigMap: `5600` | `5600` |"));
    }
}
