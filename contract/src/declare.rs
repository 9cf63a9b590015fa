//! The `declare_keys!` macro: one declaration per environment key, from which the rest is
//! derived.
//!
//! Each key is written once, in `keys.rs`, with its typed default, its kind (which holds the
//! range and the accepted form), where the cluster sets it and with which value, and sample
//! invalid values. The macro turns that one list into:
//!
//! - [`RawConfig`](crate::RawConfig): one optional text per key, what `envy` deserializes;
//! - [`Config`](crate::Config): one typed field per key, parsed with the key's kind, absent
//!   keys at their default, every error naming the key and the accepted form;
//! - [`KEYS`](crate::KEYS): the table the generator (ConfigMap literals, container env), the
//!   documentation and the end-to-end configuration battery read;
//! - [`names`](crate::names): each key's variable name as a constant.

use crate::kinds::Environment;

/// Where the cluster sets a key.
#[derive(Clone, Copy)]
pub enum Source {
    /// A literal of the generated ConfigMap, with the text each environment gets.
    ConfigMap(fn(Environment) -> String),
    /// A key of the generated Secret, which reaches the container as a mounted file.
    Secret,
    /// The downward API: a `fieldRef` with this field path.
    FieldRef(&'static str),
    /// The downward API: a `resourceFieldRef` of the container for this resource, in bytes or
    /// cores as the kubelet writes them (divisor 1).
    ResourceFieldRef(&'static str),
}

impl Source {
    /// The cluster's value in `environment`, for ConfigMap keys.
    pub fn config_map_value(&self, environment: Environment) -> Option<String> {
        match self {
            Source::ConfigMap(value) => Some(value(environment)),
            _ => None,
        }
    }

    /// A short label: `ConfigMap`, `Secret`, `fieldRef`, `resourceFieldRef`.
    pub fn label(&self) -> &'static str {
        match self {
            Source::ConfigMap(_) => "ConfigMap",
            Source::Secret => "Secret",
            Source::FieldRef(_) => "fieldRef",
            Source::ResourceFieldRef(_) => "resourceFieldRef",
        }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::ConfigMap(_) => f.write_str("ConfigMap"),
            Source::Secret => f.write_str("Secret"),
            Source::FieldRef(path) => write!(f, "FieldRef({path})"),
            Source::ResourceFieldRef(resource) => write!(f, "ResourceFieldRef({resource})"),
        }
    }
}

/// One environment key, as declared.
#[derive(Clone, Copy)]
pub struct Key {
    /// The variable name (`DRAIN_DELAY_SECONDS`).
    pub name: &'static str,
    /// The field of [`crate::Config`] and [`crate::RawConfig`] (`drain_delay_seconds`).
    pub field: &'static str,
    /// Where the cluster sets it, and with which value.
    pub source: Source,
    /// Values the service must refuse (the end-to-end battery tries each).
    pub invalid: &'static [&'static str],
    pub(crate) doc: &'static str,
    pub(crate) default_doc: Option<&'static str>,
    pub(crate) default_text: fn() -> String,
    pub(crate) accepted: fn() -> String,
    pub(crate) accepts: fn(&str) -> bool,
    pub(crate) secret: fn() -> bool,
}

impl Key {
    /// What the key does, one line.
    pub fn description(&self) -> &'static str {
        self.doc.trim()
    }

    /// The accepted forms (the key's kind describes its range).
    pub fn accepted(&self) -> String {
        (self.accepted)()
    }

    /// True when `text` is an accepted value of this key on its own (rules that involve
    /// several keys, such as the production API key, are checked by [`crate::Settings`]).
    pub fn accepts(&self, text: &str) -> bool {
        (self.accepts)(text)
    }

    /// True when the value is secret: never echoed.
    pub fn is_secret(&self) -> bool {
        (self.secret)()
    }

    /// The default as the documentation states it; `None` when an absent key stays unset.
    pub fn default(&self) -> Option<String> {
        match self.default_doc {
            Some(doc) => Some(doc.to_owned()),
            None => Some((self.default_text)()).filter(|t| !t.is_empty()),
        }
    }

    /// True when the default is a rule that depends on other keys (documented in words).
    pub fn default_is_a_rule(&self) -> bool {
        self.default_doc.is_some()
    }

    /// The cluster's value of a ConfigMap key in `environment`.
    pub fn cluster_value(&self, environment: Environment) -> Option<String> {
        self.source.config_map_value(environment)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Upper-cases an ASCII identifier at compile time (the variable name of a field).
#[doc(hidden)]
pub const fn upper<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i].to_ascii_uppercase();
        i += 1;
    }
    out
}

/// The variable name of a field identifier, as a `&'static str` constant.
macro_rules! variable_name {
    ($field:ident) => {{
        const FIELD: &str = stringify!($field);
        const BYTES: [u8; FIELD.len()] = $crate::declare::upper::<{ FIELD.len() }>(FIELD);
        const NAME: &str = match ::core::str::from_utf8(&BYTES) {
            Ok(name) => name,
            Err(_) => panic!("key names are ASCII identifiers"),
        };
        NAME
    }};
}

/// The documented default of a declaration's optional `default` clause.
macro_rules! default_doc {
    () => {
        None
    };
    ($doc:literal) => {
        Some($doc)
    };
}

/// The [`Source`] of a declaration's `from` clause.
macro_rules! source {
    (config_map ($value:expr), $kind:expr, $ty:ty) => {
        $crate::declare::Source::ConfigMap(|environment: $crate::Environment| {
            let value: $ty = ($value)(environment);
            $crate::kinds::Kind::render(&$kind, &value)
        })
    };
    (secret (), $kind:expr, $ty:ty) => {
        $crate::declare::Source::Secret
    };
    (field_ref ($path:literal), $kind:expr, $ty:ty) => {
        $crate::declare::Source::FieldRef($path)
    };
    (resource_field ($resource:literal), $kind:expr, $ty:ty) => {
        $crate::declare::Source::ResourceFieldRef($resource)
    };
}

/// See the module documentation; the one invocation is in `keys.rs`.
macro_rules! declare_keys {
    (
        $(
            $(#[doc = $doc:literal])*
            $field:ident : $ty:ty = $default:expr,
                kind $kind:expr,
                $(default $default_doc:literal,)?
                from $source:ident $( ( $($source_arg:tt)* ) )?,
                invalid [ $($invalid:literal),* $(,)? ];
        )*
    ) => {
        /// The environment as `envy` reads it: one optional text per key, so that reading can
        /// only fail on the environment's shape, never on a value; values are checked by
        /// [`Config::from_raw`] with each key's kind.
        #[derive(Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawConfig {
            $( pub $field: Option<String>, )*
        }

        impl std::fmt::Debug for RawConfig {
            /// Which keys are set, never their values (one of them is the API key).
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut set = f.debug_set();
                $( if self.$field.is_some() { set.entry(&names::$field); } )*
                set.finish()
            }
        }

        /// The configuration, typed: every key parsed with its kind, absent keys at their
        /// declared default.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Config {
            /// Parses every key present in `raw`; the first problem, in declaration order, is
            /// returned.
            pub fn from_raw(raw: &RawConfig) -> Result<Config, $crate::ConfigError> {
                Ok(Config {
                    $(
                        $field: match raw.$field.as_deref() {
                            None => $default,
                            Some(text) => $crate::kinds::Kind::parse(&$kind, text).ok_or_else(
                                || $crate::ConfigError::invalid(&KEYS[index::$field as usize], text),
                            )?,
                        },
                    )*
                })
            }
        }

        /// Each key's variable name.
        #[allow(non_upper_case_globals)]
        pub mod names {
            $( pub const $field: &str = $crate::declare::variable_name!($field); )*
        }

        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        enum index { $( $field, )* }

        /// Each key's declaration, by field.
        pub mod spec {
            $(
                pub fn $field() -> &'static $crate::declare::Key {
                    &super::KEYS[super::index::$field as usize]
                }
            )*
        }

        /// Every key the service reads, in declaration order.
        pub static KEYS: &[$crate::declare::Key] = &[
            $(
                $crate::declare::Key {
                    name: names::$field,
                    field: stringify!($field),
                    source: $crate::declare::source!($source ( $($($source_arg)*)? ), $kind, $ty),
                    invalid: &[$($invalid),*],
                    doc: concat!($($doc),*),
                    default_doc: $crate::declare::default_doc!($($default_doc)?),
                    default_text: || {
                        let value: $ty = $default;
                        $crate::kinds::Kind::render(&$kind, &value)
                    },
                    accepted: || $crate::kinds::Kind::accepted(&$kind),
                    accepts: |text| $crate::kinds::Kind::parse(&$kind, text).is_some(),
                    secret: || $crate::kinds::Kind::is_secret(&$kind),
                },
            )*
        ];
    };
}

pub(crate) use {declare_keys, default_doc, source, variable_name};
