//! `{{name}}` parameters in command lines.
//!
//! Substitution is textual and happens before classification and hashing, so
//! the classifier rates, and the hash binds, exactly the command that will run
//! with these values.

use std::collections::BTreeMap;

/// A `{{name}}` reference: the name and its byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamRef {
    pub name: String,
    pub start: usize,
    pub end: usize,
}

/// Finds every `{{ name }}` in a text. Whitespace inside the braces is
/// allowed; a `{{` without a closing `}}` is not a reference.
pub fn references(text: &str) -> Vec<ParamRef> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{") {
        let start = from + open;
        let Some(close) = text[start + 2..].find("}}") else {
            break;
        };
        let end = start + 2 + close + 2;
        let name = text[start + 2..end - 2].trim();
        if is_param_name(name) {
            out.push(ParamRef {
                name: name.to_owned(),
                start,
                end,
            });
        }
        from = end;
    }
    out
}

/// Parameter names: a letter or `_`, then letters, digits, `_` and `-`.
pub fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Replaces every reference whose name is defined. Undefined references are
/// left as written; validation reports them.
pub fn substitute(text: &str, params: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in references(text) {
        if let Some(v) = params.get(&r.name) {
            out.push_str(&text[last..r.start]);
            out.push_str(v);
            last = r.end;
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_defined_references_with_or_without_spaces() {
        let params = BTreeMap::from([("replicas".to_string(), "5".to_string())]);
        assert_eq!(
            substitute(
                "scale --replicas={{replicas}} # {{ replicas }} {{other}}",
                &params
            ),
            "scale --replicas=5 # 5 {{other}}"
        );
    }

    #[test]
    fn finds_references_and_their_positions() {
        let refs = references("a {{x}} b {{ y-z }} {{ not a name }} {{open");
        let names: Vec<_> = refs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["x", "y-z"]);
        assert_eq!((refs[0].start, refs[0].end), (2, 7));
    }
}
