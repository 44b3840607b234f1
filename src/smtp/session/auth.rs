//! AUTH: PLAIN or LOGIN over TLS (or from a trusted network), with any user name and an API
//! key with the `send` scope as password; failures count against the client's address.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};

use super::{
    Role, Session, Step,
    framing::{End, Io},
};
use crate::{domain::Scope, service::ServiceError};

/// What an AUTH exchange gave.
enum Sasl {
    Password(String),
    Cancelled,
    Malformed,
}

impl Session<'_> {
    pub(super) async fn auth(
        &mut self,
        io: &mut Io,
        mechanism: u64,
        initial: &str,
    ) -> Result<Step, End> {
        if self.auth.is_some() {
            io.reply(503, [5, 5, 1], "already authenticated");
            return Ok(Step::Error);
        }
        if self.tx.is_some() {
            io.reply(
                503,
                [5, 5, 1],
                "AUTH is not allowed during a mail transaction",
            );
            return Ok(Step::Error);
        }
        if !self.tls && !self.trusted {
            io.reply(538, [5, 7, 11], "encryption required: send STARTTLS first");
            return Ok(Step::Error);
        }
        if mechanism != AUTH_PLAIN && mechanism != AUTH_LOGIN {
            io.reply(504, [5, 5, 4], "use AUTH PLAIN or AUTH LOGIN");
            return Ok(Step::Error);
        }
        // A locked-out address learns nothing, not even whether this password was right.
        if let Err(wait) = self.shared.throttle.check(self.ip) {
            io.reply(
                454,
                [4, 7, 0],
                format_args!(
                    "too many failed logins from your address; try again in {} s",
                    wait.as_secs().max(1)
                ),
            );
            return Ok(Step::Continue);
        }
        let password = match sasl(io, mechanism, initial).await? {
            Sasl::Password(password) => password,
            Sasl::Cancelled => {
                io.reply(501, [5, 7, 0], "authentication cancelled");
                return Ok(Step::Continue);
            }
            Sasl::Malformed => {
                io.reply(501, [5, 5, 2], "cannot decode the AUTH response");
                return Ok(Step::Error);
            }
        };
        let Role::Submission { gate, .. } = &self.shared.role else {
            io.reply(503, [5, 5, 1], "AUTH is not offered here");
            return Ok(Step::Error);
        };
        // The same gate as every other way in: the key cache, then the key table.
        let found = match gate.key(password.trim()).await {
            Ok(key) => Ok(Some(key)),
            Err(ServiceError::Unauthorized(_)) => Ok(None),
            Err(e) => Err(e),
        };
        match found {
            Ok(Some(key)) if key.scopes.contains(&Scope::Send) => {
                tracing::debug!(peer = %self.ip, key = %key.id, "SMTP AUTH succeeded");
                self.auth = Some(key);
                io.reply(235, [2, 7, 0], "authentication successful");
            }
            Ok(Some(_)) => {
                io.reply(535, [5, 7, 8], "this API key lacks the send scope");
            }
            Ok(None) => {
                self.shared.throttle.failed(self.ip);
                tracing::info!(peer = %self.ip, "SMTP AUTH failed: unknown or revoked key");
                io.reply(535, [5, 7, 8], "authentication credentials invalid");
            }
            Err(e) => {
                tracing::warn!(error = %e, "SMTP AUTH: key lookup failed");
                io.reply(
                    454,
                    [4, 7, 0],
                    "temporary authentication failure; try again later",
                );
            }
        }
        Ok(Step::Continue)
    }
}

/// Runs the PLAIN or LOGIN exchange and returns the password; the user name is not used.
async fn sasl(io: &mut Io, mechanism: u64, initial: &str) -> Result<Sasl, End> {
    let first = if initial.is_empty() {
        // LOGIN asks for the user name, PLAIN for everything at once.
        let prompt = if mechanism == AUTH_LOGIN {
            "VXNlcm5hbWU6"
        } else {
            ""
        };
        match io.challenge(prompt).await? {
            Some(answer) => answer,
            None => return Ok(Sasl::Malformed),
        }
    } else {
        initial.to_string()
    };
    let first = match decode(&first) {
        Ok(bytes) => bytes,
        Err(outcome) => return Ok(outcome),
    };
    let password = if mechanism == AUTH_PLAIN {
        // authzid NUL authcid NUL password
        let mut fields = first.splitn(3, |b| *b == 0);
        match (fields.next(), fields.next(), fields.next()) {
            (Some(_), Some(_), Some(password)) => password.to_vec(),
            _ => return Ok(Sasl::Malformed),
        }
    } else {
        let Some(answer) = io.challenge("UGFzc3dvcmQ6").await? else {
            return Ok(Sasl::Malformed);
        };
        match decode(&answer) {
            Ok(bytes) => bytes,
            Err(outcome) => return Ok(outcome),
        }
    };
    Ok(match String::from_utf8(password) {
        Ok(password) => Sasl::Password(password),
        Err(_) => Sasl::Malformed,
    })
}

fn decode(answer: &str) -> Result<Vec<u8>, Sasl> {
    match answer.trim() {
        "*" => Err(Sasl::Cancelled),
        // RFC 4954: "=" is an empty initial response.
        "=" => Ok(Vec::new()),
        other => B64.decode(other).map_err(|_| Sasl::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_answers_decode() {
        assert!(matches!(decode("*"), Err(Sasl::Cancelled)));
        assert!(matches!(decode("!!"), Err(Sasl::Malformed)));
        assert_eq!(decode("=").ok(), Some(Vec::new()));
        assert_eq!(decode(" dXNlcg== ").ok(), Some(b"user".to_vec()));
    }
}
