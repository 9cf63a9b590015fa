//! The classes of names, keys and values manifest-gen decides on, one row each: the table the
//! tests run (in process here, through the binary and the real kubectl in `tests/cli`), and
//! that `manifest-gen value-classes` prints for the real-cluster round trip. The next class
//! found is one new row.
//!
//! Each row says what manifest-gen must decide (`accepted`); [`decide`] runs the generator's
//! own checks on it, and a test holds the two equal. A `--set` row that is accepted must reach
//! the API server byte for byte through `kubectl apply -k` and `kubectl kustomize | kubectl
//! apply -f -`; a refused one must be refused before any output.

use std::str::FromStr as _;

use crate::overlay::Overlays;
use crate::overrides::{ImageRef, Literal, Overrides};
use crate::plan::Plan;

/// What a row feeds the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `--set KEY=VALUE` on the dev overlay; `key: None` takes a key of its own, `V<row>`.
    Set {
        key: Option<&'static str>,
        value: &'static str,
    },
    /// `--image REF`.
    Image(&'static str),
    /// `--namespace NS` (and a declared `namespace`).
    Namespace(&'static str),
    /// One pair of a Secret (the declaration's `secret.literals`, or a secret.env line), with
    /// a valid `API_KEY` beside it unless the pair is `API_KEY` itself.
    Secret {
        key: &'static str,
        value: &'static str,
    },
}

/// One class: a name, a sample, and the decision manifest-gen must make on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub class: &'static str,
    pub input: Input,
    pub accepted: bool,
}

const fn set(class: &'static str, key: &'static str, value: &'static str, accepted: bool) -> Row {
    Row {
        class,
        input: Input::Set {
            key: Some(key),
            value,
        },
        accepted,
    }
}

const fn value(class: &'static str, value: &'static str, accepted: bool) -> Row {
    Row {
        class,
        input: Input::Set { key: None, value },
        accepted,
    }
}

const fn image(class: &'static str, reference: &'static str, accepted: bool) -> Row {
    Row {
        class,
        input: Input::Image(reference),
        accepted,
    }
}

const fn namespace(class: &'static str, name: &'static str, accepted: bool) -> Row {
    Row {
        class,
        input: Input::Namespace(name),
        accepted,
    }
}

const fn secret(
    class: &'static str,
    key: &'static str,
    value: &'static str,
    accepted: bool,
) -> Row {
    Row {
        class,
        input: Input::Secret { key, value },
        accepted,
    }
}

/// A key of 253 characters (the API server's maximum) and one of 254.
const KEY_253: &str = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
const KEY_254: &str = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";

/// Every class, grouped by the input and the reader whose rule decides it.
pub const ROWS: &[Row] = &[
    // ConfigMap keys: the API server's IsConfigMapKey.
    set(
        "configmap key: letters, digits, - _ .",
        "A-b_c.d",
        "v",
        true,
    ),
    set("configmap key: leading dot", ".a", "v", true),
    set("configmap key: inner dots", "a..b", "v", true),
    set("configmap key: 253 characters", KEY_253, "v", true),
    set("configmap key: 254 characters", KEY_254, "v", false),
    set("configmap key: space", "a b", "v", false),
    set(
        "configmap key: slash (path traversal)",
        "../../etc/x",
        "v",
        false,
    ),
    set("configmap key: colon", "a:b", "v", false),
    set("configmap key: non-ASCII letter", "ü", "v", false),
    set("configmap key: a lone dot", ".", "v", false),
    set("configmap key: leading ..", "..foo", "v", false),
    // ConfigMap keys: kustomize's YAML 1.1 round trip of its own output.
    set("configmap key: YAML 1.1 boolean", "true", "v", false),
    set("configmap key: YAML 1.1 null", "NULL", "v", false),
    set("configmap key: Go octal integer", "0123", "v", false),
    set("configmap key: hex integer", "0x1F", "v", false),
    set("configmap key: float", "1e3", "v", false),
    set("configmap key: infinity", ".inf", "v", false),
    set("configmap key: integer with _", "1_000", "v", false),
    set("configmap key: calendar date", "2001-12-14", "v", false),
    set(
        "configmap key: YAML 1.1 yes/no word (kustomize quotes it)",
        "yes",
        "v",
        true,
    ),
    set("configmap key: version-like", "1.2.3", "v", true),
    set("configmap key: impossible date", "2001-02-30", "v", true),
    // ConfigMap keys: the service's contract.
    set("configmap key: the Secret's key", "API_KEY", "v", false),
    set(
        "configmap key: the Secret's key in another spelling",
        "api-key",
        "v",
        false,
    ),
    set("configmap key: a downward-API key", "POD_NAME", "v", false),
    set(
        "configmap key: a key the service does not read",
        "SIDECAR_MODE",
        "fast",
        true,
    ),
    // ConfigMap values: the service's contract for the keys it reads.
    set("contract value: a log level", "LOG_LEVEL", "warn", true),
    set(
        "contract value: not a log level",
        "LOG_LEVEL",
        "loud",
        false,
    ),
    set("contract value: not a boolean", "DEBUG", "maybe", false),
    set("contract value: not a port", "PORT", "abc", false),
    set(
        "contract value: probe port equal to PORT",
        "PROBE_PORT",
        "5600",
        false,
    ),
    // ConfigMap values: characters kustomize refuses or rewrites.
    value("value: DEL", "a\u{7f}b", false),
    value("value: C1 control", "a\u{80}b", false),
    value("value: NEL (kustomize writes a space)", "a\u{85}b", false),
    value("value: U+FFFE", "a\u{fffe}b", false),
    value("value: U+FFFF", "a\u{ffff}b", false),
    value("value: C0 control", "a\u{1}b", true),
    value("value: tab", "a\tb", true),
    value("value: carriage return", "a\rb", true),
    value("value: NBSP", "a\u{a0}b", true),
    value("value: line separator U+2028", "a\u{2028}b", true),
    value("value: BOM inside", "a\u{feff}b", true),
    value("value: emoji", "\u{1f600}", true),
    value("value: last code point", "a\u{10ffff}b", true),
    // ConfigMap values: YAML 1.1 scalars a reader could type.
    value("value: empty", "", true),
    value("value: YAML 1.1 boolean word", "on", true),
    value("value: YAML 1.1 no", "no", true),
    value("value: YAML 1.1 y", "y", true),
    value("value: YAML 1.2 boolean", "True", true),
    value("value: null word", "null", true),
    value("value: null tilde", "~", true),
    value("value: octal integer", "0123", true),
    value("value: float", "1e3", true),
    value("value: integer with _", "1_000", true),
    value("value: hex integer", "0x1F", true),
    value("value: sexagesimal", "1:20", true),
    value("value: infinity", ".inf", true),
    value("value: merge key", "<<", true),
    value("value: YAML 1.1 value key", "=", true),
    value("value: date", "2001-12-14", true),
    value("value: timestamp", "2001-12-14T21:59:43Z", true),
    value(
        "value: timestamp, lower-case t",
        "2001-12-14t21:59:43.10-05:00",
        true,
    ),
    value(
        "value: timestamp, space, no zone",
        "2001-12-14 21:59:43.10",
        true,
    ),
    value(
        "value: timestamp, space, zone -5",
        "2001-12-14 21:59:43.10 -5",
        true,
    ),
    value(
        "value: timestamp, space, zone +1",
        "2001-12-14 21:59:43 +1",
        true,
    ),
    value(
        "value: timestamp, space, zone -05:00",
        "2001-12-14 21:59:43.10 -05:00",
        true,
    ),
    value(
        "value: timestamp, space, zone Z",
        "2001-12-14 21:59:43.10 Z",
        true,
    ),
    value(
        "value: timestamp, space, zone +01:30",
        "2001-12-14 2:59:43 +01:30",
        true,
    ),
    value(
        "value: timestamp, no fraction, zone -5",
        "2001-12-14 21:59:43 -5",
        true,
    ),
    // ConfigMap values: quoting and YAML indicators.
    value("value: double-quoted", "\"quoted\"", true),
    value("value: single-quoted", "'single'", true),
    value("value: a lone double quote", "\"", true),
    value("value: a lone single quote", "'", true),
    value("value: apostrophe", "it's", true),
    value("value: mapping look-alike", "a: b", true),
    value("value: key=value", "key=value", true),
    value("value: comment look-alike", "# not a comment", true),
    value("value: inner comment", "a #b", true),
    value("value: flow sequence", "[a, b]", true),
    value("value: flow mapping", "{a: 1}", true),
    value("value: alias", "*star", true),
    value("value: anchor", "&anchor", true),
    value("value: tag", "!tag", true),
    value("value: directive", "%x", true),
    value("value: reserved @", "@at", true),
    value("value: block scalar indicator", "|", true),
    value("value: folded scalar indicator", ">", true),
    value("value: sequence entry", "-", true),
    value("value: complex key", "? q", true),
    value("value: document marker", "---", true),
    value("value: leading spaces", "  leading", true),
    value("value: trailing space", "trailing ", true),
    value("value: two lines", "line1\nline2", true),
    value("value: markup", "<a>&b", true),
    // Image references: the OCI distribution grammar.
    image("image: name and tag", "hello-k8s:0.1.0", true),
    image(
        "image: registry with port and path",
        "registry.example:5000/team/hello-k8s:1",
        true,
    ),
    image("image: separators ., _, __, -+", "x/a.b_c__d---e:1", true),
    image(
        "image: tag and digest",
        "hello-k8s:1@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        true,
    ),
    image("image: no tag", "hello-k8s", false),
    image("image: upper case", "Hello:1", false),
    image("image: ___", "hello___k8s:1", false),
    image("image: ._", "hello._k8s:1", false),
    image("image: -_", "hello-_k8s:1", false),
    image("image: _.", "hello_.k8s:1", false),
    image("image: .-", "hello.-k8s:1", false),
    image(
        "image: registry label ending in -",
        "reg-.example/hello:1",
        false,
    ),
    image("image: tag starting with .", "hello:.x", false),
    // Namespaces: DNS-1123 labels Kubernetes does not reserve.
    namespace("namespace: DNS-1123 label", "hello-k8s-demo", true),
    namespace("namespace: kube in the middle", "my-kube-x", true),
    namespace("namespace: default", "default", false),
    namespace("namespace: kube-system", "kube-system", false),
    namespace("namespace: any kube- name", "kube-foo", false),
    namespace("namespace: upper case", "Demo", false),
    // Secret pairs (declaration literals, secret.env): the API server's, kustomize's and the
    // service's rules.
    secret("secret: a token", "API_KEY", "0123456789abcdef", true),
    secret("secret: an extra key", "EXTRA", "v", true),
    secret("secret key: space", "a b", "v", false),
    secret("secret key: path traversal", "../../etc/x", "v", false),
    secret("secret key: YAML 1.1 boolean", "true", "v", false),
    secret("secret value: DEL", "EXTRA", "a\u{7f}b", false),
    secret(
        "secret API_KEY: two words (the service refuses it)",
        "API_KEY",
        "two words",
        false,
    ),
    secret("secret API_KEY: empty", "API_KEY", "", false),
];

/// The `--set` key of a row: its own, or `V<index>` for a value class.
pub fn set_key(index: usize, row: &Row) -> Option<String> {
    match row.input {
        Input::Set { key: Some(key), .. } => Some(key.to_string()),
        Input::Set { key: None, .. } => Some(format!("V{index:03}")),
        _ => None,
    }
}

/// What manifest-gen decides on a row, by its own checks: `Ok` when it writes the input with
/// exit 0, `Err` with the error it prints otherwise.
pub fn decide(index: usize, row: &Row) -> Result<(), String> {
    match row.input {
        Input::Set { value, .. } => {
            let key = set_key(index, row).unwrap_or_default();
            let literal = Literal::from_str(&format!("{key}={value}"))?;
            let overlays = Overlays::builtin().map_err(|e| format!("{e:#}"))?;
            let dev = overlays.find("dev").map_err(|e| format!("{e:#}"))?;
            let overrides = Overrides {
                set: vec![literal],
                ..Overrides::default()
            };
            Plan::new(dev, &overrides)
                .map(drop)
                .map_err(|e| format!("{e:#}"))
        }
        Input::Image(reference) => ImageRef::from_str(reference).map(drop),
        Input::Namespace(name) => crate::overrides::namespace(name).map(drop),
        Input::Secret { key, value } => {
            let mut data = crate::render::SecretData::new();
            if key != contract::API_KEY_SECRET_KEY {
                data.insert(
                    contract::API_KEY_SECRET_KEY.into(),
                    b"0123456789abcdef".to_vec(),
                );
            }
            data.insert(key.into(), value.as_bytes().to_vec());
            crate::secret_env::check(&data, contract::Environment::Production, "secret")
                .map_err(|e| format!("{e:#}"))
        }
    }
}

/// The `--set` rows as JSON lines, `{"class", "key", "value", "accepted"}`, `accepted` as
/// manifest-gen decides it (what `manifest-gen value-classes` prints).
pub fn value_classes_json() -> String {
    ROWS.iter()
        .enumerate()
        .filter_map(|(index, row)| {
            let Input::Set { value, .. } = row.input else {
                return None;
            };
            let line = serde_json::json!({
                "class": row.class,
                "key": set_key(index, row),
                "value": value,
                "accepted": decide(index, row).is_ok(),
            });
            Some(format!("{line}\n"))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_decided_as_the_table_says() {
        let mut wrong = Vec::new();
        for (index, row) in ROWS.iter().enumerate() {
            let decided = decide(index, row);
            if decided.is_ok() != row.accepted {
                wrong.push(format!("{}: {:?} -> {decided:?}", row.class, row.input));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn classes_are_unique_and_accepted_set_keys_distinct() {
        let classes: std::collections::BTreeSet<&str> = ROWS.iter().map(|r| r.class).collect();
        assert_eq!(classes.len(), ROWS.len());
        assert_eq!(KEY_253.len(), 253);
        assert_eq!(KEY_254.len(), 254);
        let keys: Vec<String> = ROWS
            .iter()
            .enumerate()
            .filter(|(_, r)| r.accepted)
            .filter_map(|(i, r)| set_key(i, r))
            .collect();
        let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:?}");
    }
}
