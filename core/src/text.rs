//! Text that comes from outside — a plugin's logs, progress, errors and diagnostics; what a
//! node prints — made fit for a terminal and a log: no escape or control characters (nothing
//! can move the cursor, clear the screen, retitle the window or reorder what is shown), no
//! secret by its shape, and a bound on its size.

use crate::ssh::Redactor;

/// `text` without terminal escape sequences, control characters or the invisible characters
/// that reorder or hide text (bidirectional overrides and isolates, zero-width characters);
/// tabs become spaces, lines stay.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI (`ESC [` … final byte) or OSC (`ESC ]` … BEL or `ESC \\`); else the next char.
                match chars.next() {
                    Some('[') => {
                        // Parameters, then one final byte in `@`..=`~`.
                        let _ = chars.by_ref().find(|x| ('@'..='~').contains(x));
                    }
                    Some(']') => {
                        while let Some(x) = chars.next() {
                            if x == '\u{7}' || (x == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                                break;
                            }
                        }
                    }
                    _ => {}
                }
            }
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            c if c.is_control() || is_invisible_format(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Unicode format characters that change how the text around them is shown.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `text` cut to at most `max` bytes (at a character boundary), saying how much was cut.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let end = (0..=max).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    format!("{}… ({} bytes cut)", &text[..end], text.len() - end)
}

/// Text a plugin hands the host, as it may be shown: secrets by their shape masked, printable,
/// at most `max` bytes.
pub fn untrusted(text: &str, max: usize) -> String {
    bounded(&printable(&Redactor::new().redact(text)), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_node_prints_cannot_drive_the_terminal() {
        let hostile = "\u{1b}[0;37mCGROUPS\u{1b}[0m: ok\tdone\r\n\u{1b}]0;owned\u{7}title\u{1b}[2J\u{8}end\n";
        assert_eq!(printable(hostile), "CGROUPS: ok done\ntitleend\n");
        assert_eq!(printable("plain text\nline two"), "plain text\nline two");
        // Bidirectional overrides and zero-width characters would show text other than it is.
        assert_eq!(printable("user\u{202e}gnp.exe\u{2066}x\u{200b}y\u{feff}"), "usergnp.exexy");
        assert_eq!(printable("µ naïve ünïcode 日本"), "µ naïve ünïcode 日本");
    }

    #[test]
    fn bounded_cuts_at_a_character_and_says_so() {
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("ééé", 3), "é… (4 bytes cut)");
        let u = untrusted(&format!("\u{1b}[31m{}\u{1b}[0m abcdef.0123456789abcdef", "x".repeat(10)), 1000);
        assert_eq!(u, "xxxxxxxxxx [REDACTED]");
    }
}
