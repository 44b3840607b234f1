//! Postgres over TLS: `sslmode` as libpq reads it, `sslrootcert`, client certificates through
//! `sslcert`/`sslkey`, and mail sent end to end over a verified connection.

use std::time::Duration;

use mailgate::store;
use serde_json::json;

use super::{
    pki::{CLIENT_CN, Pki, s},
    servers::PrivatePostgres,
};
use crate::support::{
    app::{TestApp, relay_to, test_config},
    smtp_server::TestSmtpServer,
};

/// A private TLS-only cluster and the PKI it was made with (the server goes first).
pub struct PgFixture {
    pub pg: PrivatePostgres,
    pub pki: Pki,
}

impl PgFixture {
    pub async fn start() -> PgFixture {
        mailgate::tls::install_provider();
        let pki = Pki::new();
        let pg = PrivatePostgres::start(&pki).ready().await;
        PgFixture { pg, pki }
    }

    /// `sslmode=verify-full` with the test CA: what a production URL looks like.
    pub fn verified_url(&self) -> String {
        self.pg.url(
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={}", s(&self.pki.ca)),
        )
    }
}

async fn uses_tls(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `store::connect`'s error, as `serve` and `doctor` print it.
async fn refused(url: &str) -> String {
    let err = store::connect(url, 1)
        .await
        .expect_err(&format!("{url} is refused"));
    format!("{err:#}")
}

async fn connects(url: &str) -> sqlx::PgPool {
    store::connect(url, 1)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e:#}"))
}

#[tokio::test]
async fn a_send_over_verify_full_is_accepted_stored_and_relayed() {
    let f = PgFixture::start().await;
    let smtp = TestSmtpServer::start().await;
    let mut config = test_config(&f.verified_url());
    relay_to(&mut config, &smtp);
    let app = TestApp::builder().config(config).start().await;
    assert!(uses_tls(&app.pool).await, "mailgate's pool is not on TLS");

    let id = app
        .send_ok(&json!({
            "from": "a@example.com", "to": "b@example.com", "subject": "over TLS", "text": "hi"
        }))
        .await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    app.wait_for_status(&id, &["delivered"], Duration::from_secs(15))
        .await;
    assert_eq!(smtp.wait_for(1, Duration::from_secs(5)).await.len(), 1);
}

#[tokio::test]
async fn sslmode_works_as_libpq_reads_it() {
    let f = PgFixture::start().await;
    let (ca, wrong) = (s(&f.pki.ca), s(&f.pki.wrong_ca));

    // The server takes TLS only: `disable` is turned away by pg_hba.conf.
    let err = refused(&f.pg.url("postgres", "sslmode=disable")).await;
    assert!(err.contains("no pg_hba.conf entry"), "{err}");
    // `prefer` (the default) upgrades when the server offers TLS.
    assert!(uses_tls(&connects(&f.pg.url("postgres", "sslmode=prefer")).await).await);
    assert!(uses_tls(&connects(&f.pg.url("postgres", "")).await).await);
    // `require` encrypts without checking the certificate or the name...
    let anything = f.pg.url_at("postgres", "localhost", "sslmode=require");
    assert!(uses_tls(&connects(&anything).await).await);
    // ...unless a root certificate is given: then, as in libpq, it means verify-ca.
    let err = refused(
        &f.pg
            .url("postgres", &format!("sslmode=require&sslrootcert={wrong}")),
    )
    .await;
    assert!(err.contains("TLS: certificate not trusted"), "{err}");
    connects(&f.pg.url_at(
        "postgres",
        "localhost",
        &format!("sslmode=require&sslrootcert={ca}"),
    ))
    .await;
    // `verify-ca` checks the chain, not the name (the certificate is for 127.0.0.1 only).
    connects(&f.pg.url_at(
        "postgres",
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .await;
    let err = refused(&f.pg.url(
        "postgres",
        &format!("sslmode=verify-ca&sslrootcert={wrong}"),
    ))
    .await;
    assert!(err.contains("TLS: certificate not trusted"), "{err}");
    // `verify-full` checks both.
    let err = refused(&f.pg.url_at(
        "postgres",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await;
    assert!(
        err.contains("TLS: certificate does not name this host"),
        "{err}"
    );
    connects(&f.verified_url()).await;
    // Without sslrootcert only the public (webpki) roots are trusted: the test CA is not.
    let err = refused(&f.pg.url("postgres", "sslmode=verify-full")).await;
    assert!(err.contains("TLS: certificate not trusted"), "{err}");
}

#[tokio::test]
async fn a_wrong_ca_is_named_in_the_error_and_the_password_is_not() {
    let f = PgFixture::start().await;
    let wrong = s(&f.pki.wrong_ca);
    let url = format!(
        "postgres://postgres:pg-hunter2@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={wrong}",
        f.pg.port
    );
    let err = refused(&url).await;
    assert_eq!(
        err,
        format!(
            "could not connect to Postgres at postgres://postgres:***@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={wrong}: TLS: certificate not trusted (signed by an unknown issuer: check the CA file) (sslmode=verify-full, sslrootcert={wrong})",
            f.pg.port
        )
    );
}

#[tokio::test]
async fn client_certificates_come_from_sslcert_and_sslkey() {
    let f = PgFixture::start().await;
    let ca = s(&f.pki.ca);
    // pg_hba.conf: this role needs a certificate the CA signed, with its name.
    let err = refused(
        &f.pg
            .url(CLIENT_CN, &format!("sslmode=verify-full&sslrootcert={ca}")),
    )
    .await;
    assert!(err.contains("certificate"), "{err}");

    let url = f.pg.url(
        CLIENT_CN,
        &format!(
            "sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
            s(&f.pki.client_cert),
            s(&f.pki.client_key)
        ),
    );
    let pool = connects(&url).await;
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(user, CLIENT_CN);

    // mailgate itself, on that URL: migrations, a send, its workers.
    let app = TestApp::builder().config(test_config(&url)).start().await;
    let id = app
        .send_ok(&json!({
            "from": "a@example.com", "to": "b@example.com", "subject": "mTLS", "text": "hi"
        }))
        .await;
    app.wait_for_status(&id, &["delivered"], Duration::from_secs(15))
        .await;
}
