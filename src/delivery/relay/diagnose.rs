//! `mailgate doctor`'s check of a relay: a session walked through step by step (connect and
//! EHLO, STARTTLS, AUTH) on a fresh connection, so an operator sees which step fails.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;

use super::{upstream::Relay, url::TlsMode};

impl Relay {
    /// Walks through a session step by step (connect and EHLO, STARTTLS, AUTH) on a fresh
    /// connection, so an operator sees exactly which step fails. For `mailgate doctor`.
    pub async fn diagnose(&self) -> Vec<(String, Result<String, String>)> {
        use lettre::transport::smtp::{
            authentication::Mechanism, client::AsyncSmtpConnection, extension::ClientId,
        };
        let mut steps = Vec::new();
        let hello = ClientId::default();
        let started = std::time::Instant::now();
        let wrapper = match self.url.tls {
            TlsMode::Implicit => match self.tls_parameters() {
                Ok(p) => Some(p),
                Err(e) => {
                    steps.push(("connect".into(), Err(format!("{e:#}"))));
                    return steps;
                }
            },
            _ => None,
        };
        let connected = AsyncSmtpConnection::connect_tokio1(
            (self.url.host.as_str(), self.url.port),
            Some(self.timeout),
            &hello,
            wrapper,
            None,
        )
        .await;
        let mut conn = match connected {
            Ok(c) => c,
            Err(e) => {
                steps.push(("connect and EHLO".into(), Err(e.to_string())));
                return steps;
            }
        };
        steps.push((
            "connect and EHLO".into(),
            Ok(format!(
                "{} in {} ms: {}",
                self.host,
                started.elapsed().as_millis(),
                conn.server_info()
            )),
        ));
        match self.url.tls {
            TlsMode::Required | TlsMode::Opportunistic => {
                let required = self.url.tls == TlsMode::Required;
                if conn.can_starttls() {
                    let result = match self.tls_parameters() {
                        Ok(p) => conn.starttls(p, &hello).await.map_err(|e| e.to_string()),
                        Err(e) => Err(format!("{e:#}")),
                    };
                    steps.push(("STARTTLS".into(), result.map(|()| "encrypted".to_string())));
                } else if required {
                    steps.push((
                        "STARTTLS".into(),
                        Err("required but not offered by the relay".into()),
                    ));
                } else {
                    steps.push((
                        "STARTTLS".into(),
                        Ok("not offered; continuing in plain text".into()),
                    ));
                }
            }
            TlsMode::Implicit => steps.push(("TLS".into(), Ok("implicit (smtps)".into()))),
            TlsMode::None => steps.push(("TLS".into(), Ok("disabled by ?tls=none".into()))),
        }
        if steps.iter().any(|(_, r)| r.is_err()) {
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.abort()).await;
            return steps;
        }
        if let Some((user, pass)) = &self.url.credentials {
            let creds = Credentials::new(user.clone(), pass.clone());
            let result = conn
                .auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await;
            steps.push((
                "AUTH".into(),
                result
                    .map(|_| format!("accepted for user {user}"))
                    .map_err(|e| e.to_string()),
            ));
        } else {
            steps.push(("AUTH".into(), Ok("no credentials configured".into())));
        }
        let _ = conn.quit().await;
        steps
    }
}
