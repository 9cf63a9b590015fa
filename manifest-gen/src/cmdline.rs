//! Command lines as text: the exact command a generated file's header names, quoted so a
//! POSIX shell runs it as written (and kept on one line, since it sits in a YAML comment).

/// `word` as one shell word: bare when it holds only safe characters, in single quotes
/// otherwise, and as `$'...'` with escapes when it holds control characters.
pub fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    // Characters some YAML reader takes as a line break (NEL, U+2028, U+2029) or that are
    // invisible are escaped too: the command sits in a one-line comment.
    let escaped = |c: char| {
        c.is_control()
            || (c.is_whitespace() && c != ' ')
            || matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}')
    };
    if !word.chars().any(escaped) {
        return format!("'{}'", word.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for c in word.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            '\r' => out.push_str(r"\r"),
            c if c.is_ascii() && escaped(c) => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if escaped(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `manifest-gen` followed by `args`, each quoted as needed (`--flag=value` quotes the value).
pub fn command(args: &[String]) -> String {
    let word = |arg: &String| match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") && shell_word(flag) == flag => {
            format!("{flag}={}", shell_word(value))
        }
        _ => shell_word(arg),
    };
    std::iter::once("manifest-gen".to_string())
        .chain(args.iter().map(word))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed_and_stay_on_one_line() {
        assert_eq!(shell_word("k8s/overlays/demo"), "k8s/overlays/demo");
        assert_eq!(shell_word("LOG_LEVEL=warn"), "LOG_LEVEL=warn");
        assert_eq!(shell_word("A=it's on"), r"'A=it'\''s on'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("a\nb'\\"), r"$'a\nb\'\\'");
        assert_eq!(shell_word("\u{1}"), r"$'\x01'");
        assert_eq!(shell_word("a\u{2028}\u{85}é"), r"$'a\u2028\u0085é'");
        assert!(!command(&["--set".into(), "A=x\ny".into()]).contains('\n'));
        assert_eq!(
            command(&["--set=A=it's".into(), "--env".into()]),
            r"manifest-gen --set='A=it'\''s' --env"
        );
    }
}
