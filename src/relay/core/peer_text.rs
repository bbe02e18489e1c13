//! Text a peer chose (apps, stream names, tcUrl, flashVer, command names), as log lines
//! show it: cut short, with control characters escaped. A client cannot make one request
//! write megabytes to the log, or lines that look like the relay's own.

use std::fmt::{self, Write};

/// Characters shown before the rest is summed up as a byte count.
const MAX_SHOWN_CHARS: usize = 256;

/// Shows peer-controlled text in a log line (see the [module docs](self)).
#[derive(Clone, Copy, Debug)]
pub struct PeerText<'a>(pub &'a str);

impl fmt::Display for PeerText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(MAX_SHOWN_CHARS) {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        match chars.as_str().len() {
            0 => Ok(()),
            rest => write!(f, "...(+{rest} bytes)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        assert_eq!(PeerText("live").to_string(), "live");
        assert_eq!(PeerText("a\nb\r\t\u{1b}[31m\u{7f}").to_string(), "a\\nb\\r\\t\\u{1b}[31m\\u{7f}");
        assert_eq!(PeerText("名前🎥").to_string(), "名前🎥");
        let long = "n".repeat(MAX_SHOWN_CHARS + 5000);
        assert_eq!(PeerText(&long).to_string(), format!("{}...(+5000 bytes)", "n".repeat(MAX_SHOWN_CHARS)));
    }
}
