//! The admin API's input: one JSON object per `POST` (pure logic, no FFI;
//! property-tested in `t/props.rs`).

use serde_json::Value;

/// A parsed admin command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `{"action":"purge","token":"<opaque>"}`: forget one token.
    Purge {
        /// The opaque token (hashed before use, never stored).
        token: String,
    },
    /// `{"action":"purge_all"}`: forget every token.
    PurgeAll,
    /// `{"action":"warm","token":"<opaque>","jwt":"<jwt>","ttl":<seconds>}`.
    Warm {
        /// The opaque token.
        token: String,
        /// The JWT to serve for it.
        jwt: String,
        /// Requested lifetime in seconds (capped by `exp` and the max TTL).
        ttl: Option<u64>,
    },
}

/// Parses an admin request body; the error is the message of the `400`.
pub fn parse_command(body: &[u8]) -> Result<Command, &'static str> {
    let Ok(Value::Object(cmd)) = serde_json::from_slice::<Value>(body) else {
        return Err("body must be a JSON object");
    };
    let token = cmd
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    match cmd.get("action").and_then(Value::as_str) {
        Some("purge") => match token {
            Some(token) => Ok(Command::Purge {
                token: token.to_string(),
            }),
            None => Err("\"token\" (string) is required"),
        },
        Some("purge_all") => Ok(Command::PurgeAll),
        Some("warm") => {
            let (Some(token), Some(jwt)) = (token, cmd.get("jwt").and_then(Value::as_str)) else {
                return Err("\"token\" and \"jwt\" (strings) are required");
            };
            let ttl = match cmd.get("ttl") {
                None => None,
                Some(v) => match v.as_u64() {
                    Some(secs) => Some(secs),
                    None => return Err("\"ttl\" must be a non-negative integer (seconds)"),
                },
            };
            Ok(Command::Warm {
                token: token.to_string(),
                jwt: jwt.to_string(),
                ttl,
            })
        }
        _ => Err("\"action\" must be one of purge, purge_all, warm"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_commands() {
        assert_eq!(
            parse_command(br#"{"action":"purge","token":"t"}"#),
            Ok(Command::Purge { token: "t".into() })
        );
        assert_eq!(
            parse_command(br#"{"action":"purge_all"}"#),
            Ok(Command::PurgeAll)
        );
        assert_eq!(
            parse_command(br#"{"action":"warm","token":"t","jwt":"j","ttl":5}"#),
            Ok(Command::Warm {
                token: "t".into(),
                jwt: "j".into(),
                ttl: Some(5)
            })
        );
    }

    #[test]
    fn rejects_bad_input() {
        for body in [
            &b""[..],
            b"[]",
            b"{",
            br#"{"action":"purge"}"#,
            br#"{"action":"purge","token":""}"#,
            br#"{"action":"warm","token":"t"}"#,
            br#"{"action":"warm","token":"t","jwt":"j","ttl":-1}"#,
            br#"{"action":"drop"}"#,
        ] {
            assert!(parse_command(body).is_err(), "{body:?}");
        }
    }
}
