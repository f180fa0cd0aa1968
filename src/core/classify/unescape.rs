//! Quote and escape decoding the word parser leaves to its caller: `$'…'`
//! (ANSI-C) escapes and backquoted substitutions. Getting these right is what
//! lets the classifier see `rm` in `$'\x72m'`.

/// Inside backquotes, `\$`, `` \` `` and `\\` stand for the character itself.
pub(crate) fn backquote_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && matches!(n, '$' | '`' | '\\')
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Decodes the escapes of `$'…'` quoting, so `$'\x72m'` is seen as `rm`.
pub(crate) fn ansi_c_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('\\');
            break;
        };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'e' | 'E' => out.push('\u{1b}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' | '\'' | '"' | '?' => out.push(e),
            'x' | 'u' | 'U' => {
                let max = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let digits = take_digits(&mut chars, String::new(), max, 16);
                match u32::from_str_radix(&digits, 16)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(ch) => out.push(ch),
                    None => {
                        out.push('\\');
                        out.push(e);
                        out.push_str(&digits);
                    }
                }
            }
            '0'..='7' => {
                let digits = take_digits(&mut chars, String::from(e), 3, 8);
                match u32::from_str_radix(&digits, 8)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&digits),
                }
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

/// Appends up to `max` digits of `radix` from `chars` to `digits`.
fn take_digits(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    mut digits: String,
    max: usize,
    radix: u32,
) -> String {
    while digits.len() < max {
        match chars.next_if(|d| d.is_digit(radix)) {
            Some(d) => digits.push(d),
            None => break,
        }
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_c_escapes_decode() {
        assert_eq!(ansi_c_unescape(r"\x72m"), "rm");
        assert_eq!(ansi_c_unescape(r"\162\155"), "rm");
        assert_eq!(ansi_c_unescape(r"\u006bubectl"), "kubectl");
        assert_eq!(ansi_c_unescape(r"a\tb\\"), "a\tb\\");
    }

    #[test]
    fn backquote_escapes_decode() {
        assert_eq!(
            backquote_unescape(r"echo \$HOME \`x\` \\"),
            r"echo $HOME `x` \"
        );
    }
}
