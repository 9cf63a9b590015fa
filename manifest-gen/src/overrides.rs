//! The user's overrides (declaration stage, beside [`crate::declaration`]): image, replicas,
//! ConfigMap literals, namespace, and the rules their values must meet.
//!
//! Each parser returns an error that states the whole rule; clap prefixes it with the flag
//! and the offending value. The rules are those of the readers downstream, so that what
//! manifest-gen accepts reaches the API server unchanged:
//!
//! - image references: the OCI distribution grammar (`NAME[:TAG][@DIGEST]`);
//! - ConfigMap keys: the API server's `IsConfigMapKey`, and no key a YAML 1.1 reader could take
//!   for another type ([`config_map_key`]: kustomize re-reads its own output with one);
//! - ConfigMap values: no character kustomize refuses or rewrites ([`config_map_value`]).

use std::fmt;
use std::str::FromStr;

/// The image reference compiled in from the repository's `image.env`.
const IMAGE_ENV: &str = include_str!("../../image.env");

/// A container image reference `NAME[:TAG][@DIGEST]`, with a tag or a digest or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>` or `sha512:<128 hex>`: pins the image content.
    pub digest: Option<String>,
}

/// The whole rule, stated in every image error.
pub const IMAGE_RULE: &str = "expected NAME:TAG, NAME@sha256:<64 hex> or NAME:TAG@sha256:<64 hex>, e.g. hello-k8s:0.2.0 or registry.example:5000/team/hello-k8s:0.2.0 (NAME: path components of lower-case letters and digits, each separator between two of them exactly one of '.', '_', '__' or a run of '-', components separated by '/', optionally after a registry host[:port] whose labels are letters, digits and inner '-'; TAG: 1 to 128 characters, the first a letter, digit or '_', the rest letters, digits, '_', '.' or '-'; DIGEST: sha256 with 64 or sha512 with 128 lower-case hex digits)";

impl ImageRef {
    /// The default image: `IMAGE_NAME:IMAGE_TAG` from `image.env`.
    pub fn from_image_env() -> Result<Self, String> {
        Self::parse_image_env(IMAGE_ENV)
    }

    fn parse_image_env(text: &str) -> Result<Self, String> {
        let value = |key: &str| {
            text.lines()
                .filter_map(|line| line.trim().split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
                .ok_or_else(|| format!("image.env does not set {key}"))
        };
        format!("{}:{}", value("IMAGE_NAME")?, value("IMAGE_TAG")?)
            .parse()
            .map_err(|e| format!("image.env: {e}"))
    }

    /// The `app.kubernetes.io/version` label: the tag, made a valid label value (at most 63
    /// characters, a letter or digit at both ends) by dropping what is not; `None` without a
    /// tag, or when nothing of the tag is left (a digest is not a version).
    pub fn version_label(&self) -> Option<String> {
        let tag = self.tag.as_deref()?;
        let trimmed = tag.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        let cut = &trimmed[..trimmed.len().min(63)];
        let label = cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        (!label.is_empty()).then(|| label.to_string())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                if !valid_digest(digest) {
                    return Err(format!("{digest:?} is not a valid digest; {IMAGE_RULE}"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (s, None),
        };
        // The tag follows the last ':' after the last '/', since a registry may carry a port.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':').map(|i| slash + i) {
            Some(colon) => (&rest[..colon], Some(&rest[colon + 1..])),
            None => (rest, None),
        };
        if tag.is_none() && digest.is_none() {
            return Err(format!("the tag is missing; {IMAGE_RULE}"));
        }
        if !valid_image_name(name) {
            return Err(format!("{name:?} is not a valid image name; {IMAGE_RULE}"));
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(format!("{tag:?} is not a valid tag; {IMAGE_RULE}"));
        }
        Ok(ImageRef {
            name: name.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

/// The OCI distribution tag rule (Docker's too): `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    (1..=128).contains(&bytes.len())
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `sha256:<64 lower-case hex>` or `sha512:<128 lower-case hex>` (the registered OCI
/// algorithms).
fn valid_digest(digest: &str) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match digest.split_once(':') {
        Some(("sha256", encoded)) => hex(encoded, 64),
        Some(("sha512", encoded)) => hex(encoded, 128),
        _ => false,
    }
}

/// The name grammar of the OCI distribution reference (distribution/reference's
/// `regexp.go`, which Docker and containerd share): an optional registry `host[:port]/`, then
/// path components of lower-case letters and digits joined by one separator each: `.`, `_`,
/// `__` or a run of `-`. A first component is the registry only when it holds `.` or `:` or is
/// `localhost`, as Docker splits it.
fn valid_image_name(name: &str) -> bool {
    use std::sync::LazyLock;
    const PATH_COMPONENT: &str = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    const DOMAIN_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    static PATH: LazyLock<regex_lite::Regex> = LazyLock::new(|| {
        regex_lite::Regex::new(&format!("^{PATH_COMPONENT}(?:/{PATH_COMPONENT})*$"))
            .unwrap_or_else(|e| unreachable!("the path pattern compiles: {e}"))
    });
    static DOMAIN: LazyLock<regex_lite::Regex> = LazyLock::new(|| {
        regex_lite::Regex::new(&format!(
            r"^(?:{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
        ))
        .unwrap_or_else(|e| unreachable!("the domain pattern compiles: {e}"))
    });
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            DOMAIN.is_match(first) && PATH.is_match(rest)
        }
        _ => PATH.is_match(name),
    }
}

/// One `--set KEY=VALUE`: an extra or overriding ConfigMap literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    pub key: String,
    pub value: String,
}

impl FromStr for Literal {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((key, value)) = s.split_once('=') else {
            return Err("expected KEY=VALUE".into());
        };
        config_map_key(key).map_err(|e| format!("{e}; expected KEY=VALUE"))?;
        // A secret's value is not checked here: clap would echo it in the error. The plan
        // refuses the key without showing the value.
        if secret_key_named(key).is_none() {
            config_map_value(value).map_err(|e| format!("the value of {key}: {e}"))?;
        }
        Ok(Literal {
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

/// The API server's rule for ConfigMap (and Secret) keys, `IsConfigMapKey`, in full.
pub const CONFIG_MAP_KEY_RULE: &str =
    "1 to 253 characters of letters, digits, '-', '_' and '.', not '.' and not starting with '..'";

/// The rule for keys beyond the API server's, as errors and docs state it.
pub const YAML_KEY_RULE: &str = "not a key a YAML 1.1 reader could take for a boolean, null, number or date (the rule manifest-gen quotes values by, wider than kustomize's failures on purpose): not y, n, yes, no, on, off, true, false, null, .inf or .nan in any case, and not a key that starts with a digit, '.' or '-' and holds only hex digits, '.', '_', '-', 'x' and 'o' (0123, 0x1F, 1e3, 1_000, 1.2.3, 2001-12-14); a key that starts with a letter or '_' and is not such a word is always fine";

/// A ConfigMap key the API server accepts (`IsConfigMapKey`) and kustomize keeps a string.
///
/// kustomize's ConfigMap and Secret generators re-read their own output with a YAML 1.1
/// parser (go-yaml v2), and a key it takes for a number, boolean, null or date makes `kubectl
/// kustomize` fail. Rather than reproduce that parser, a key is refused whenever a YAML 1.1
/// reader could take it for another type: [`crate::yaml::ambiguous_in_yaml_1_1`], the rule the
/// generated YAML is quoted by. It is wider than kustomize's failures (`yes` and `1.2.3` work
/// there); the tests judge it against the real `kubectl kustomize`.
pub fn config_map_key(key: &str) -> Result<(), String> {
    let charset = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    let problem = if !charset {
        Some("has a character other than letters, digits, '-', '_' and '.'".to_string())
    } else if key.len() > 253 {
        Some(format!("is {} characters long", key.len()))
    } else if key == "." {
        Some("is '.'".to_string())
    } else if key.starts_with("..") {
        Some("starts with '..'".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(format!(
            "the key {key:?} is not a valid ConfigMap key: it {problem} (the API server's rule: {CONFIG_MAP_KEY_RULE})"
        ));
    }
    if crate::yaml::ambiguous_in_yaml_1_1(key) {
        return Err(format!(
            "the key {key:?} may be read as a boolean, null, number or date by a YAML 1.1 parser, and kustomize re-reads its own output with one (`kubectl kustomize` fails with \"json: unsupported type\" on the keys it types); expected {YAML_KEY_RULE}"
        ));
    }
    Ok(())
}

/// The value rule, as the docs state it (the errors name the character at fault).
pub const VALUE_RULE: &str = "any text but DEL (U+007F), the C1 controls U+0080 to U+009F (kustomize refuses them, and turns NEL U+0085 into a space) and U+FFFE and U+FFFF (refused as control characters)";

/// A ConfigMap value kustomize keeps as it is: no DEL (U+007F), no C1 control (U+0080 to
/// U+009F: kustomize refuses them, except NEL U+0085, which it silently turns into a space),
/// no U+FFFE or U+FFFF (refused as control characters).
pub fn config_map_value(value: &str) -> Result<(), String> {
    for (index, c) in value.chars().enumerate() {
        let why = match c {
            '\u{85}' => {
                "NEL, which kustomize writes as a space, so the deployed value and the ConfigMap's hash would differ from what was asked"
            }
            '\u{7f}'..='\u{9f}' => {
                "a control character `kubectl kustomize` refuses (\"control characters are not allowed\")"
            }
            '\u{fffe}' | '\u{ffff}' => {
                "a non-character `kubectl kustomize` refuses (\"control characters are not allowed\")"
            }
            _ => continue,
        };
        return Err(format!(
            "character {} is U+{:04X}, {why}; values may hold any other character (tab, newline and other C0 controls included)",
            index + 1,
            u32::from(c)
        ));
    }
    Ok(())
}

/// The API server's limit on a ConfigMap's (and a Secret's) data: keys and values together.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// The contract key a `--set` key names in another case or spelling (`api_key`, `Api-Key`),
/// when that key is secret or comes from the Secret: refused, it must never reach a ConfigMap.
pub fn secret_key_named(key: &str) -> Option<&'static contract::Key> {
    let normal = |s: &str| s.to_ascii_uppercase().replace(['-', '.'], "_");
    contract::KEYS.iter().find(|k| {
        (k.is_secret() || matches!(k.source, contract::Source::Secret))
            && normal(k.name) == normal(key)
    })
}

/// Words that make a key look like it holds a secret (checked case-insensitively).
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "APIKEY",
    "API_KEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
];

/// The one-line warning a `--set` key deserves, if any: the container does not read it, or
/// its name looks like a secret (accepted either way: sidecars and humans read ConfigMaps).
pub fn literal_warning(key: &str) -> Option<String> {
    let upper = key.to_ascii_uppercase().replace(['-', '.'], "_");
    let secret_like = SECRET_WORDS.iter().any(|w| upper.contains(w));
    let unread = contract::key(key).is_none();
    match (secret_like, unread) {
        (true, _) => Some(format!(
            "warning: --set {key}: the name looks like a secret, but ConfigMap values are readable by anyone who can read the namespace's ConfigMaps and land in git with the overlay; put secrets in the Secret{}",
            if unread {
                " (the container does not read this key either)"
            } else {
                ""
            }
        )),
        (false, true) => Some(format!(
            "warning: --set {key}: the container does not read {key} (not a key of the contract); it only reaches the ConfigMap"
        )),
        (false, false) => None,
    }
}

/// Namespaces an overlay must not own: every name with the `kube-` prefix, which Kubernetes
/// reserves for its own (`kube-system`, `kube-public`, `kube-node-lease`, and any it adds), and
/// `default`, which every cluster shares and which cannot be deleted. An overlay owns its
/// Namespace object (it creates and labels it, and `kubectl delete -k` deletes it), so it takes
/// a namespace of its own.
pub const RESERVED_NAMESPACE_PREFIX: &str = "kube-";
/// The reserved names besides the prefix.
pub const RESERVED_NAMESPACES: &[&str] = &["default"];
/// The namespace rule, as help, errors and docs state it.
pub const NAMESPACE_RULE: &str = "a DNS-1123 label (1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit), not default and not starting with kube- (Kubernetes reserves that prefix)";

/// A namespace an overlay may own: a DNS-1123 label, not reserved.
pub fn namespace(s: &str) -> Result<String, String> {
    let name = dns_label(s).map_err(|e| format!("{e}; expected {NAMESPACE_RULE}"))?;
    if RESERVED_NAMESPACES.contains(&s) || s.starts_with(RESERVED_NAMESPACE_PREFIX) {
        return Err(format!(
            "{s} is reserved: Kubernetes keeps the {RESERVED_NAMESPACE_PREFIX} prefix for its own namespaces and every cluster shares {}; the overlay owns, labels and deletes its Namespace, so it needs one of its own, e.g. hello-k8s-demo (expected {NAMESPACE_RULE})",
            RESERVED_NAMESPACES.join(", ")
        ));
    }
    Ok(name)
}

/// A DNS-1123 label: a namespace name.
pub fn dns_label(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let ok = (1..=63).contains(&s.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(s.to_string())
    } else {
        Err("expected a DNS-1123 label: 1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit".into())
    }
}

/// What a user may change without editing Rust.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub image: Option<ImageRef>,
    pub replicas: Option<i32>,
    pub set: Vec<Literal>,
    pub namespace: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_env_of_the_repository_parses() {
        let image = ImageRef::from_image_env().unwrap();
        assert_eq!(image.name, contract::APP_NAME);
        assert!(image.tag.is_some() && image.digest.is_none());
    }

    #[test]
    fn image_references_follow_the_oci_grammar() {
        let digest = format!("sha256:{}", "a1".repeat(32));
        let long_tag = format!("hello:{}", "x".repeat(128));
        let with_digest = format!("registry.example/hello-k8s@{digest}");
        let tag_and_digest = format!("hello-k8s:1.0@{digest}");
        for good in [
            "hello-k8s:0.1.0",
            "registry.example:5000/team/hello-k8s:v1_2-rc.3",
            "localhost/hello:1",
            "a__b/c:X",
            "a---b:1",
            "x/a.b_c__d-e:1",
            "Registry-1.Example:443/x/y:1",
            "[::1]:5000/hello:1",
            "hello-k8s:1.0-",
            "hello-k8s:_x",
            "hello-k8s:a.",
            long_tag.as_str(),
            with_digest.as_str(),
            tag_and_digest.as_str(),
        ] {
            let parsed: ImageRef = good.parse().unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(parsed.to_string(), good);
        }
        let p: ImageRef = tag_and_digest.parse().unwrap();
        assert_eq!(
            (p.name.as_str(), p.tag.as_deref(), p.digest.as_deref()),
            ("hello-k8s", Some("1.0"), Some(digest.as_str()))
        );
        let too_long = format!("hello:{}", "x".repeat(129));
        let short_digest = format!("hello@sha256:{}", "a".repeat(63));
        let upper_digest = format!("hello@sha256:{}", "A".repeat(64));
        for bad in [
            "hello-k8s",
            "hello-k8s:",
            "Hello:1",
            ":1",
            "hello k8s:1",
            "hello:-1",
            "hello:.x",
            "hello:1/2",
            "registry.example:5000/hello",
            "a..b:1",
            "hello___k8s:1",
            "hello._k8s:1",
            "hello-_k8s:1",
            "hello_.k8s:1",
            "hello.-k8s:1",
            "reg-.example/hello:1",
            "-reg.example/hello:1",
            "registry.example:/hello:1",
            too_long.as_str(),
            short_digest.as_str(),
            upper_digest.as_str(),
            "hello@md5:00",
        ] {
            let err = bad.parse::<ImageRef>().unwrap_err();
            assert!(
                err.contains("the first a letter, digit or '_'"),
                "{bad}: {err}"
            );
            assert!(err.contains("1 to 128 characters"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_version_label_is_the_tag_made_a_label_value() {
        let label = |s: &str| s.parse::<ImageRef>().unwrap().version_label();
        assert_eq!(label("h:0.1.0").as_deref(), Some("0.1.0"));
        assert_eq!(label("h:1.0-").as_deref(), Some("1.0"));
        assert_eq!(label("h:_x").as_deref(), Some("x"));
        assert_eq!(label(&format!("h:{}", "7".repeat(100))).unwrap().len(), 63);
        assert_eq!(label("h:___"), None);
        assert_eq!(label(&format!("h@sha256:{}", "0".repeat(64))), None);
    }

    #[test]
    fn literals_split_at_the_first_equals_sign_and_keep_any_value() {
        let l: Literal = "A=b=c: d".parse().unwrap();
        assert_eq!((l.key.as_str(), l.value.as_str()), ("A", "b=c: d"));
        let l: Literal = "A=".parse().unwrap();
        assert_eq!(l.value, "");
        for bad in ["A", "=x", "A B=x", "A/B=x", "..=x", ".=x", "..foo=x"] {
            assert!(bad.parse::<Literal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_map_keys_follow_the_api_server_rule_in_full() {
        for good in [
            "a",
            "A-b_c.d",
            ".npmrc",
            "a..b",
            "_-",
            "_1",
            &"k".repeat(253),
        ] {
            assert!(config_map_key(good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("..foo", "starts with '..'"),
            ("..", "starts with '..'"),
            (".", "is '.'"),
            ("a b", "character other than"),
            ("", "character other than"),
            (&"k".repeat(254), "254 characters"),
        ] {
            let err = config_map_key(bad).unwrap_err();
            assert!(
                err.contains(says) && err.contains(CONFIG_MAP_KEY_RULE),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn keys_a_yaml_1_1_reader_could_type_are_refused_naming_kustomize() {
        for typed in [
            "0",
            "1",
            "-1",
            "0123",
            "089",
            "0o17",
            "0b101",
            "0x1F",
            "1_000",
            "1e3",
            "1E3",
            "1e-3",
            "1.5",
            ".5",
            "1.",
            "-1.5",
            ".inf",
            "-.Inf",
            ".NaN",
            "true",
            "False",
            "NULL",
            "2001-12-14",
            "2001-1-1",
            "2000-02-29",
            // Wider than kustomize's failures, on purpose (kustomize keeps these).
            "yes",
            "On",
            "y",
            "1.2.3",
            "2001-02-30",
            ".a",
            "-",
        ] {
            let err = config_map_key(typed).unwrap_err();
            assert!(
                err.contains("json: unsupported type") && err.contains(YAML_KEY_RULE),
                "{typed}: {err}"
            );
        }
        for plain in [
            "_1",
            "0xg",
            "a1",
            "LOG_LEVEL",
            ".npmrc",
            "1st-key",
            "x.y",
            "yes-no",
        ] {
            assert!(config_map_key(plain).is_ok(), "{plain}");
        }
    }

    #[test]
    fn values_kustomize_refuses_or_changes_are_refused() {
        for good in [
            "",
            "tab\there",
            "a\u{1}b",
            "a\rb",
            "a\u{a0}b",
            "ü ✓ 😀",
            "a\u{feff}",
        ] {
            assert!(config_map_value(good).is_ok(), "{good:?}");
        }
        for (bad, says) in [
            ("a\u{85}b", "U+0085, NEL"),
            ("\u{7f}", "U+007F"),
            ("x\u{80}", "U+0080"),
            ("\u{9f}", "U+009F"),
            ("\u{fffe}", "U+FFFE"),
            ("\u{ffff}", "U+FFFF"),
        ] {
            let err = config_map_value(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn secret_keys_are_found_in_any_case_and_spelling() {
        for name in ["API_KEY", "api_key", "Api-Key", "api.key"] {
            assert_eq!(
                secret_key_named(name).map(|k| k.name),
                Some("API_KEY"),
                "{name}"
            );
        }
        assert!(secret_key_named("API_KEY_FILE").is_none());
        assert!(
            literal_warning("db_password")
                .unwrap()
                .contains("looks like a secret")
        );
        assert!(
            literal_warning("SIDECAR_MODE")
                .unwrap()
                .contains("does not read")
        );
        assert_eq!(literal_warning("LOG_LEVEL"), None);
    }

    #[test]
    fn namespaces_must_be_dns_labels_and_not_reserved() {
        assert!(namespace("hello-k8s-dev").is_ok());
        for bad in ["", "Dev", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(namespace(bad).is_err(), "{bad}");
        }
        for reserved in [
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "kube-foo",
            "kube-",
        ] {
            assert!(
                namespace(reserved).unwrap_err().contains("reserved") || reserved.ends_with('-'),
                "{reserved}"
            );
        }
        assert!(namespace("kubernetes-dev").is_ok());
        assert!(namespace("my-kube-x").is_ok());
    }
}
