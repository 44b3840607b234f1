//! One SMTP transaction on a relay connection, pipelined when the relay offers PIPELINING
//! (RFC 2920), and how to tell whether a relay offers it.
//!
//! lettre sends each command and waits for its reply: `MAIL`, each `RCPT`, `DATA` and the
//! message are a round trip each. Pipelined, `MAIL`, every `RCPT` and `DATA` go in one write
//! and their replies are read in order, then the message: two round trips whatever the
//! number of recipients. lettre's `ServerInfo` keeps only the extensions lettre uses, so
//! whether PIPELINING is offered is read from an EHLO of our own (`offers_pipelining`).

use std::fmt;

use lettre::{
    address::Envelope,
    transport::smtp::{
        Error as SmtpError,
        client::AsyncSmtpConnection,
        commands::{Data, Ehlo, Mail, Rcpt},
        extension::{ClientId, MailParameter},
        response::Response,
    },
};

/// Where a transaction failed: at `MAIL FROM` (nothing of the message was said) or later.
pub(super) enum Failed {
    Mail(SmtpError),
    Later(SmtpError),
}

/// Asks EHLO again and reads whether PIPELINING is among the keywords. An EHLO resets only
/// the transaction state (RFC 5321 §4.1.4), so this goes after TLS and before AUTH.
pub(super) async fn offers_pipelining(
    conn: &mut AsyncSmtpConnection,
    hello: &ClientId,
) -> Result<bool, SmtpError> {
    let reply = conn.command(Ehlo::new(hello.clone())).await?;
    Ok(reply
        .message()
        .skip(1)
        .any(|line| line.trim().eq_ignore_ascii_case("PIPELINING")))
}

/// One transaction, with the `MAIL FROM` parameters given. On an error the caller closes the
/// connection, as lettre would: unread replies of a pipelined batch, or a `DATA` the server
/// accepted, must not meet the next transaction (the message is never ended, so a closed
/// connection leaves nothing delivered).
pub(super) async fn transaction(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    params: Vec<MailParameter>,
    mime: &[u8],
    pipelining: bool,
) -> Result<Response, Failed> {
    let mail = Mail::new(envelope.from().cloned(), params);
    if pipelining {
        // One write; the reply read here is MAIL's, and the rest follow in order.
        conn.command(Batch { mail, envelope })
            .await
            .map_err(Failed::Mail)?;
        return async {
            for _ in envelope.to() {
                conn.read_response().await?;
            }
            // DATA's 354.
            conn.read_response().await?;
            conn.message(mime).await
        }
        .await
        .map_err(Failed::Later);
    }
    conn.command(mail).await.map_err(Failed::Mail)?;
    async {
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), vec![])).await?;
        }
        conn.command(Data).await?;
        conn.message(mime).await
    }
    .await
    .map_err(Failed::Later)
}

/// `MAIL`, every `RCPT` and `DATA` as one text (lettre writes a command's whole text at once).
struct Batch<'a> {
    mail: Mail,
    envelope: &'a Envelope,
}

impl fmt::Display for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mail)?;
        for to in self.envelope.to() {
            write!(f, "{}", Rcpt::new(to.clone(), vec![]))?;
        }
        write!(f, "{Data}")
    }
}

/// Whether an error at the first command says the relay closed the idle connection: the
/// socket was closed or reset (no reply at all), or it said `421` (closing).
pub(super) fn closed_by_relay(err: &SmtpError) -> bool {
    match err.status() {
        Some(code) => u16::from(code) == 421,
        None => !err.is_client() && !err.is_tls(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_mail_every_rcpt_and_data_each_ended_by_crlf() {
        let envelope = Envelope::new(
            Some("a@shop.test".parse().unwrap()),
            vec!["b@x.test".parse().unwrap(), "c@y.test".parse().unwrap()],
        )
        .unwrap();
        let batch = Batch {
            mail: Mail::new(envelope.from().cloned(), vec![]),
            envelope: &envelope,
        };
        assert_eq!(
            batch.to_string(),
            "MAIL FROM:<a@shop.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
        );
    }
}
