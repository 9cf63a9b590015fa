//! Command-line overrides and their validation: image, replicas, ConfigMap literals, namespace.
//!
//! Each parser returns an error that states the expected form; clap prefixes it with the flag
//! and the offending value.

use std::fmt;
use std::str::FromStr;

/// The image reference compiled in from the repository's `image.env`.
const IMAGE_ENV: &str = include_str!("../../image.env");

/// A container image reference `NAME:TAG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub tag: String,
}

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
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl FromStr for ImageRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "expected NAME:TAG, e.g. hello-k8s:0.2.0 or registry.example:5000/team/hello-k8s:0.2.0 (lower-case name; tag of letters, digits, '_', '.', '-', up to 63 characters)";
        // The tag follows the last ':' after the last '/', since a registry may carry a port.
        let slash = s.rfind('/').map_or(0, |i| i + 1);
        let Some(colon) = s[slash..].rfind(':').map(|i| slash + i) else {
            return Err(format!("the tag is missing; {EXPECTED}"));
        };
        let (name, tag) = (&s[..colon], &s[colon + 1..]);
        if !valid_image_name(name) {
            return Err(format!("{name:?} is not a valid image name; {EXPECTED}"));
        }
        // The tag doubles as the app.kubernetes.io/version label, so it must also be a valid
        // label value (at most 63 characters, alphanumeric at both ends).
        let tag_ok = (1..=63).contains(&tag.len())
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            && tag.as_bytes()[0].is_ascii_alphanumeric()
            && tag.as_bytes()[tag.len() - 1].is_ascii_alphanumeric();
        if !tag_ok {
            return Err(format!("{tag:?} is not a valid tag; {EXPECTED}"));
        }
        Ok(ImageRef {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }
}

fn valid_image_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first component with '.' or ':' (or `localhost`) is a registry host[:port].
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (host, port) = host.split_once(':').unwrap_or((host, "1"));
        let host_ok = !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !host_ok || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    parts.iter().all(|component| {
        // [a-z0-9]+ separated by '.', '_', '__' or '-'s, never at either end.
        let bytes = component.as_bytes();
        !bytes.is_empty()
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && !component.contains("..")
    })
}

/// One `--set KEY=VALUE`: an extra or overriding ConfigMap literal. The value is any text.
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
        if let Err(e) = config_map_key(key) {
            return Err(format!("{e}; expected KEY=VALUE"));
        }
        Ok(Literal {
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

/// A valid ConfigMap key: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
pub fn config_map_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the key {key:?} is not a valid ConfigMap key (1 to 253 of letters, digits, '-', '_', '.')"
        ))
    }
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
        assert!(!image.tag.is_empty());
    }

    #[test]
    fn image_references_are_checked() {
        for good in [
            "hello-k8s:0.1.0",
            "registry.example:5000/team/hello-k8s:v1_2-rc.3",
            "localhost/hello:1",
            "a__b/c:X",
        ] {
            assert!(good.parse::<ImageRef>().is_ok(), "{good}");
        }
        let p: ImageRef = "registry.example:5000/team/hello-k8s:v1".parse().unwrap();
        assert_eq!(p.name, "registry.example:5000/team/hello-k8s");
        assert_eq!(p.tag, "v1");
        for bad in [
            "hello-k8s",
            "hello-k8s:",
            "Hello:1",
            ":1",
            "hello k8s:1",
            "hello:-1",
            "hello:1/2",
            "registry.example:5000/hello",
            "a..b:1",
        ] {
            let err = bad.parse::<ImageRef>().unwrap_err();
            assert!(err.contains("expected NAME:TAG"), "{bad}: {err}");
        }
    }

    #[test]
    fn literals_split_at_the_first_equals_sign_and_keep_any_value() {
        let l: Literal = "A=b=c: d".parse().unwrap();
        assert_eq!((l.key.as_str(), l.value.as_str()), ("A", "b=c: d"));
        let l: Literal = "A=".parse().unwrap();
        assert_eq!(l.value, "");
        for bad in ["A", "=x", "A B=x", "A/B=x", "..=x"] {
            assert!(bad.parse::<Literal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn namespaces_must_be_dns_labels() {
        assert!(dns_label("hello-k8s-dev").is_ok());
        for bad in ["", "Dev", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
    }
}
