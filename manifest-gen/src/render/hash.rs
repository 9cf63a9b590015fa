//! kustomize's name suffix for generated ConfigMaps and Secrets.
//!
//! kustomize (api/hasher/hasher.go) hashes a canonical JSON map with Go's `encoding/json`:
//! `{"data":…,"kind":"ConfigMap","name":""}` for a ConfigMap and
//! `{"data":…,"kind":"Secret","name":"","type":…}` for a Secret (map keys sorted, Secret data
//! base64-encoded), takes the hex SHA-256, keeps ten characters and swaps the vowels and
//! look-alike digits so the suffix can never spell a word (`0`→`g`, `1`→`h`, `3`→`k`, `a`→`m`,
//! `e`→`t`). The name is always empty: hasher.go looks it up as the single field
//! `metadata/name`, which never exists (checked against kubectl's kustomize v5.5, whose output
//! the tests compare with ours). `render` needs the same suffix to produce the same names as `kubectl kustomize`.

use std::collections::BTreeMap;
use std::io;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The suffix kustomize appends to a generated ConfigMap's name.
pub fn config_map_suffix(data: &BTreeMap<String, String>) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        data: &'a BTreeMap<String, String>,
        kind: &'static str,
        name: &'a str,
    }
    suffix(&Canonical {
        data,
        kind: "ConfigMap",
        name: "",
    })
}

/// The suffix kustomize appends to a generated Secret's name; `data_base64` holds the values
/// as they appear in the Secret's `data` (base64).
pub fn secret_suffix(type_: &str, data_base64: &BTreeMap<String, String>) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        data: &'a BTreeMap<String, String>,
        kind: &'static str,
        name: &'a str,
        #[serde(rename = "type")]
        type_: &'a str,
    }
    suffix(&Canonical {
        data: data_base64,
        kind: "Secret",
        name: "",
        type_,
    })
}

fn suffix<T: Serialize>(canonical: &T) -> String {
    let json = go_json(canonical);
    let hex = format!("{:x}", Sha256::digest(&json));
    hex.chars()
        .take(10)
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            other => other,
        })
        .collect()
}

/// Compact JSON as Go's `json.Marshal` writes it: fields in declaration order (our structs
/// declare them sorted, as Go sorts map keys), and `<`, `>`, `&`, U+2028, U+2029 escaped.
fn go_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // Serializing string maps into a Vec cannot fail.
    if value.serialize(&mut serializer).is_err() {
        out.clear();
    }
    out
}

struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn go_json_escapes_html_characters_like_encoding_json() {
        let map: BTreeMap<String, String> =
            [("k".to_string(), "<a>&\u{2028}\"\n".to_string())].into();
        assert_eq!(
            String::from_utf8(go_json(&map)).unwrap(),
            r#"{"k":"\u003ca\u003e\u0026\u2028\"\n"}"#
        );
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Expected suffixes as printed by `kubectl kustomize` (kustomize v5.5) for the same data.
    #[test]
    fn config_map_suffix_matches_kustomize() {
        assert_eq!(config_map_suffix(&map(&[("A", "b")])), "b9t2424hkf");
        assert_eq!(
            config_map_suffix(&map(&[("B", "<a>&\u{8}\u{c}\u{2028}")])),
            "569d4gc7bt"
        );
    }

    #[test]
    fn secret_suffix_matches_kustomize() {
        let data = map(&[("API_KEY", "ZGV2LWluc2VjdXJlLW5vdC1hLXNlY3JldA==")]);
        assert_eq!(secret_suffix("Opaque", &data), "h64kt9267f");
    }
}
