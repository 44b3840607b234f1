//! Typed configuration: defaults, then a TOML file, then `MAILGATE_*` environment variables.
//!
//! Nested keys come from the environment with a double underscore, e.g.
//! `MAILGATE_DELIVERY__CONCURRENCY=64`. Secrets are wrapped so they never print. A key that
//! is not a setting (a typo) is refused with the nearest one that is, rather than ignored.
//!
//! This file holds the top level (`Config`, loading, and the order of validation); each
//! section lives in its own file with its defaults and its own checks.

mod compat;
mod console;
mod delivery;
mod dkim;
mod dns;
mod domains;
mod env;
mod http;
mod inbound;
mod metrics;
mod ratelimit;
mod redis;
mod relays;
mod retention;
mod runner;
mod scan;
mod secret;
mod shaping;
mod smtp;
mod tls_policy;
mod tlsrpt;
mod tracking;
mod typos;
mod webhooks;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::bail;
use figment::providers::{Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use self::{
    compat::CompatConfig,
    console::ConsoleConfig,
    delivery::DeliveryConfig,
    dkim::{DkimAlgorithm, DkimKeyConfig},
    dns::DnsConfig,
    domains::{DomainsConfig, check_label},
    http::HttpConfig,
    inbound::{BounceConfig, InboundConfig, check_domain},
    metrics::MetricsConfig,
    ratelimit::{ApiLimits, RateLimitConfig, RedisFailureMode, SendLimits},
    redis::RedisConfig,
    relays::{DEFAULT_RELAY, EgressConfig, RelayConfig},
    retention::RetentionConfig,
    runner::RunnerSettings,
    scan::{OnScanError, ScanAction, ScanConfig},
    secret::{SecretUrl, is_password_param, redact_url},
    shaping::{DEFAULT_SHAPING, ShapingConfig, TlsRequirement},
    smtp::SmtpConfig,
    tls_policy::TlsPolicyConfig,
    tlsrpt::TlsrptConfig,
    tracking::TrackingConfig,
    webhooks::WebhooksConfig,
};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Postgres connection URL; the queue lives there.
    pub database_url: SecretUrl,
    /// Connections per process to Postgres.
    pub database_pool_size: u32,
    /// Redis URL for shared rate limits; unset means per-process limits.
    pub redis_url: Option<SecretUrl>,
    pub http_addr: SocketAddr,
    /// Where the SMTP submission listener binds (`MAILGATE_SMTP_ADDR`).
    pub smtp_addr: SocketAddr,
    /// The default upstream relay; unset (and no `[relays]`) means sandbox delivery.
    pub relay_url: Option<SecretUrl>,
    /// HMAC secret for operator JWTs (`mailgate token`); unset disables operator endpoints.
    #[serde(serialize_with = "ser_secret")]
    pub jwt_secret: Option<SecretString>,
    /// tracing filter, e.g. `info,mailgate=debug`.
    pub log: String,
    /// `human` (default) or `json`: one JSON object per line, with span fields such as
    /// `message_id` and `request_id` (`MAILGATE_LOG_FORMAT=json`).
    pub log_format: LogFormat,
    /// Run the HTTP API in `serve`.
    pub api_enabled: bool,
    /// Run the queue workers in `serve`: delivery, webhooks (see `webhooks.workers_enabled`)
    /// and inbound processing.
    pub workers_enabled: bool,
    pub http: HttpConfig,
    /// The Prometheus listener (`/metrics`), apart from the API.
    pub metrics: MetricsConfig,
    pub delivery: DeliveryConfig,
    pub redis: RedisConfig,
    pub ratelimit: RateLimitConfig,
    pub retention: RetentionConfig,
    pub smtp: SmtpConfig,
    pub webhooks: WebhooksConfig,
    pub bounce: BounceConfig,
    pub inbound: InboundConfig,
    pub tracking: TrackingConfig,
    /// The web console at `/console`.
    pub console: ConsoleConfig,
    pub scan: ScanConfig,
    /// The provider-compatible routes.
    pub compat: CompatConfig,
    /// The resolver direct delivery uses (`relays.NAME.mx = true`).
    pub dns: DnsConfig,
    /// Recipient domains' published TLS policies, for direct delivery.
    pub tls_policy: TlsPolicyConfig,
    /// TLS reporting (RFC 8460) on direct delivery's sessions.
    pub tlsrpt: TlsrptConfig,
    /// Named upstream relays; `default` is taken from `relay_url` when set.
    pub relays: BTreeMap<String, RelayConfig>,
    /// Named pools: relays by priority, tried in order on connection, TLS or 4xx trouble.
    /// A send's `relay` may name a pool or a single relay; pool `default` is the default.
    pub pools: BTreeMap<String, Vec<String>>,
    /// Limits per destination site for direct delivery, over the built-in entries
    /// (`Config::shaping_map`).
    pub shaping: BTreeMap<String, ShapingConfig>,
    /// DKIM keys, one per signing domain (`[[dkim]]` tables in the TOML file).
    pub dkim: Vec<DkimKeyConfig>,
    /// Seals secrets kept in the database (sending domains' DKIM keys): one key, or
    /// `new,old` while rotating (`MAILGATE_SECRET_KEY`). Unset: no domain can be added.
    #[serde(serialize_with = "ser_secret")]
    pub secret_key: Option<SecretString>,
    /// Sending domains (`/v1/domains`): their records, checks and the sending rule.
    pub domains: DomainsConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/mailgate".into(),
            database_pool_size: 16,
            redis_url: None,
            http_addr: "127.0.0.1:8080".parse().expect("valid default"),
            smtp_addr: "127.0.0.1:2525".parse().expect("valid default"),
            relay_url: None,
            jwt_secret: None,
            log: "info,sqlx=warn".into(),
            log_format: LogFormat::Human,
            api_enabled: true,
            workers_enabled: true,
            http: HttpConfig::default(),
            metrics: MetricsConfig::default(),
            delivery: DeliveryConfig::default(),
            redis: RedisConfig::default(),
            ratelimit: RateLimitConfig::default(),
            retention: RetentionConfig::default(),
            smtp: SmtpConfig::default(),
            webhooks: WebhooksConfig::default(),
            bounce: BounceConfig::default(),
            inbound: InboundConfig::default(),
            tracking: TrackingConfig::default(),
            console: ConsoleConfig::default(),
            scan: ScanConfig::default(),
            compat: CompatConfig::default(),
            dns: DnsConfig::default(),
            tls_policy: TlsPolicyConfig::default(),
            tlsrpt: TlsrptConfig::default(),
            relays: BTreeMap::new(),
            pools: BTreeMap::new(),
            shaping: BTreeMap::new(),
            dkim: Vec::new(),
            secret_key: None,
            domains: DomainsConfig::default(),
        }
    }
}

impl Config {
    /// Loads defaults → TOML (`path`, or `MAILGATE_CONFIG`) → environment. A key that is not
    /// a setting, in the file or as a `MAILGATE_*` variable, is an error that names it.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let vars: Vec<(String, String)> = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        Self::load_from(path, &vars)
    }

    /// `load`, with the environment given as a list of variables.
    pub fn load_from(path: Option<&Path>, vars: &[(String, String)]) -> anyhow::Result<Self> {
        let var = |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let file = path
            .map(Path::to_path_buf)
            .or_else(|| var("MAILGATE_CONFIG").map(PathBuf::from));
        // Every section has serde defaults, so the layers carry only what was set; the runner
        // settings, flattened into their sections, take theirs from a first layer.
        let mut figment = runner::defaults();
        if let Some(file) = &file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        // DATABASE_URL is the common convention; MAILGATE_DATABASE_URL wins over it.
        if let Some(url) = var("DATABASE_URL") {
            figment = figment.merge(Serialized::default("database_url", url));
        }
        // Likewise REDIS_URL for MAILGATE_REDIS_URL.
        if let Some(url) = var("REDIS_URL") {
            figment = figment.merge(Serialized::default("redis_url", url));
        }
        let env = env::EnvLayer::new(vars);
        let figment = figment.merge(&env);
        let extracted = match runner::check(&figment) {
            Some(e) => Err(e),
            None => figment.extract(),
        };
        let config: Config = match extracted {
            Ok(config) => config,
            Err(e) => match typos::unknown_key(&e, &env, file.as_deref()) {
                Some(message) => bail!("invalid configuration: {message}"),
                None => return Err(anyhow::Error::new(e).context("invalid configuration")),
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// Each section checks itself; checks that span sections live here.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.http.validate()?;
        self.delivery.validate()?;
        self.ratelimit.validate()?;
        self.redis
            .validate(self.redis_url.as_ref().map(SecretUrl::expose))?;
        self.smtp.validate()?;
        self.webhooks.validate()?;
        self.bounce.validate()?;
        self.inbound.validate()?;
        self.tracking.validate()?;
        self.console.validate()?;
        self.scan.validate()?;
        self.dns.validate()?;
        self.tls_policy.validate()?;
        self.tlsrpt.validate()?;
        dkim::validate(&self.dkim)?;
        self.domains.validate()?;
        if let Some(key) = &self.secret_key {
            use secrecy::ExposeSecret;
            crate::secrets::SecretBox::new(key.expose_secret())?;
        }
        for (name, relay) in &self.relays {
            relay.validate(name)?;
        }
        self.validate_direct_pools()?;
        shaping::validate(&self.shaping)?;
        Ok(())
    }

    /// Every shaping entry in force: the built-in ones with `[shaping.NAME]` over them.
    pub fn shaping_map(&self) -> BTreeMap<String, ShapingConfig> {
        shaping::effective(&self.shaping)
    }

    /// The largest message the SMTP listener takes.
    pub fn smtp_max_message_bytes(&self) -> usize {
        self.smtp
            .max_message_bytes
            .unwrap_or(self.http.max_message_bytes)
    }
}

/// Like `SecretUrl`, the secret serializes redacted: serialization is only for showing.
fn ser_secret<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("***"),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_password_prints() {
        let mut c = Config {
            database_url: "postgres://mailgate:pg-hunter2@db.example.com/mailgate".into(),
            redis_url: Some("redis://:redis-hunter2@cache.example.com:6379/0".into()),
            relay_url: Some("smtp://bob:relay-hunter2@mx.example.com:587".into()),
            jwt_secret: Some("jwt-hunter2".into()),
            ..Config::default()
        };
        c.relays.insert(
            "eu".into(),
            RelayConfig {
                url: Some("smtps://alice:eu-hunter2@mx.example.eu".into()),
                pool_size: Some(2),
                tls_insecure: false,
                max_rate_per_sec: None,
                burst: None,
                max_connections: None,
                mx: false,
                egress: Vec::new(),
                allow_private_mx: false,
            },
        );
        let printed = [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{:?}", c.relay_map()),
            serde_json::to_string(&c).unwrap(),
            toml::to_string(&c).unwrap(),
        ];
        for text in &printed {
            assert!(!text.contains("hunter2"), "a password prints:\n{text}");
        }
        assert!(printed[0].contains("postgres://mailgate:***@db.example.com/mailgate"));
        assert!(printed[2].contains("smtp://bob:***@mx.example.com:587"));
        // The code that connects still gets the real URLs.
        assert!(c.database_url.expose().contains("pg-hunter2"));
        assert!(
            c.relay_map()["eu"]
                .url
                .as_ref()
                .unwrap()
                .expose()
                .contains("eu-hunter2")
        );
        assert!(
            c.relay_map()["default"]
                .url
                .as_ref()
                .unwrap()
                .expose()
                .contains("relay-hunter2")
        );
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A config file with `text`, removed when dropped.
    struct TempToml(PathBuf);

    impl TempToml {
        fn new(text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "mailgate-config-{}.toml",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&path, text).unwrap();
            Self(path)
        }
    }

    impl Drop for TempToml {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn load_err(file: Option<&TempToml>, env: &[(&str, &str)]) -> String {
        let err = Config::load_from(file.map(|f| f.0.as_path()), &vars(env))
            .expect_err("the configuration is refused");
        format!("{err:#}")
    }

    #[test]
    fn a_misspelt_key_in_the_file_is_refused_with_a_suggestion() {
        let file = TempToml::new("[delivery]\nconcurency = 5\n");
        let err = load_err(Some(&file), &[]);
        assert!(
            err.contains("unknown config key `delivery.concurency`")
                && err.contains(&file.0.display().to_string())
                && err.contains("did you mean `delivery.concurrency`?"),
            "{err}"
        );
        let file = TempToml::new("databse_url = \"postgres://x\"\n");
        let err = load_err(Some(&file), &[]);
        assert!(err.contains("did you mean `database_url`?"), "{err}");
        // Nothing close: the message lists what the section has.
        let file = TempToml::new("[webhooks]\nfrobnicate = true\n");
        let err = load_err(Some(&file), &[]);
        assert!(
            err.contains("unknown config key `webhooks.frobnicate`")
                && err.contains("the keys of `webhooks` are")
                && err.contains("lease_secs"),
            "{err}"
        );
    }

    #[test]
    fn a_misspelt_environment_variable_is_refused_with_a_suggestion() {
        let err = load_err(None, &[("MAILGATE_DELIVERY__CONCURENCY", "5")]);
        assert!(
            err.contains("unknown config key `delivery.concurency`")
                && err.contains("environment variable MAILGATE_DELIVERY__CONCURENCY")
                && err.contains(
                    "did you mean `delivery.concurrency` (MAILGATE_DELIVERY__CONCURRENCY)?"
                ),
            "{err}"
        );
        let err = load_err(None, &[("MAILGATE_RELAY_UR", "smtp://x")]);
        assert!(
            err.contains("did you mean `relay_url` (MAILGATE_RELAY_URL)?"),
            "{err}"
        );
        let err = load_err(None, &[("MAILGATE_SOMETHING_ELSE", "1")]);
        assert!(
            err.contains("environment variable MAILGATE_SOMETHING_ELSE")
                && err.contains("the top-level keys are"),
            "{err}"
        );
        let err = load_err(None, &[("MAILGATE_DELIVER__CONCURRENCY", "5")]);
        assert!(
            err.contains(
                "unknown config key `deliver` (environment variable MAILGATE_DELIVER__CONCURRENCY): did you mean `delivery`"
            ),
            "{err}"
        );
        // Inside named relays and inline tables too.
        let err = load_err(None, &[("MAILGATE_RELAYS__EU__URLL", "smtp://x")]);
        assert!(err.contains("did you mean `relays.eu.url`"), "{err}");
        let err = load_err(
            None,
            &[(
                "MAILGATE_DKIM",
                r#"[{domain="example.com",selectr="mg1",private_key_file="/k.pem"}]"#,
            )],
        );
        assert!(
            err.contains("environment variable MAILGATE_DKIM")
                && err.ends_with("did you mean `dkim.0.selector`?"),
            "{err}"
        );
    }

    /// Issue 26's example loads; each direct-relay mistake is refused naming the key.
    #[test]
    fn direct_relays_load_and_their_mistakes_are_refused() {
        let load = |toml: &str| {
            let file = TempToml::new(toml);
            Config::load_from(
                None,
                &vars(&[("MAILGATE_CONFIG", file.0.to_str().unwrap())]),
            )
            .map_err(|e| format!("{e:#}"))
        };
        let c = load(
            r#"
            [dns]
            nameservers = ["127.0.0.1:5353"]
            timeout_ms = 5000
            [relays.direct]
            mx = true
            egress = [ { addr = "203.0.113.10", helo = "mta1.example.com", weight = 100 }, { addr = "203.0.113.11", helo = "mta2.example.com", weight = 10 } ]
            allow_private_mx = false
            [pools]
            default = ["direct"]
            "#,
        )
        .unwrap();
        let direct = &c.relays["direct"];
        assert!(direct.mx && direct.url.is_none());
        assert_eq!(direct.egress[1].helo, "mta2.example.com");
        assert_eq!(direct.egress[0].weight, 100);
        assert_eq!(c.dns.nameserver_addrs().unwrap()[0].port(), 5353);
        // The same through the environment, as docs/configuration.md shows it.
        let c = Config::load_from(
            None,
            &vars(&[
                ("MAILGATE_RELAYS__D__MX", "true"),
                (
                    "MAILGATE_RELAYS__D__EGRESS",
                    r#"[{addr="203.0.113.10",helo="mta1.example.com"}]"#,
                ),
                ("MAILGATE_RELAYS__D__ALLOW_PRIVATE_MX", "true"),
                ("MAILGATE_DNS__NAMESERVERS", r#"["127.0.0.1:5353"]"#),
                ("MAILGATE_DNS__TIMEOUT_MS", "700"),
            ]),
        )
        .unwrap();
        assert!(c.relays["d"].mx && c.relays["d"].allow_private_mx);
        assert_eq!(c.relays["d"].egress[0].weight, 1);
        assert_eq!(c.dns.nameservers, ["127.0.0.1:5353"]);
        assert_eq!(c.dns.timeout_ms, 700);
        for (toml, says) in [
            ("[relays.d]\nmx = true\nurl = \"smtp://x\"", "either `url`"),
            ("[relays.d]\npool_size = 2", "needs `url`"),
            (
                "[relays.d]\nmx = true\negress = [{ addr = \"203.0.113.10\", helo = \"a b\" }]",
                "egress[0].helo",
            ),
            (
                "[relays.d]\nmx = true\negress = [{ addr = \"203.0.113.10\", helo = \"a.example\", weight = 0 }]",
                "egress[0].weight",
            ),
            (
                "[relays.d]\nmx = true\negress = [{ addr = \"203.0.113.10\", helo = \"a.example\", wieght = 1 }]",
                "wieght",
            ),
            (
                "[relays.d]\nmx = true\nallow_privat_mx = true",
                "allow_privat_mx",
            ),
            (
                "[relays.d]\nmx = true\n[relays.u]\nurl = \"smtp://x\"\n[pools]\ndefault = [\"d\", \"u\"]",
                "mixes direct",
            ),
            ("[dns]\nnameservers = [\"dns.example\"]", "dns.nameservers"),
            ("[dns]\ntimeout = 5", "timeout"),
        ] {
            let err = load(toml).unwrap_err();
            assert!(err.contains(says), "{toml}: {err}");
        }
    }

    #[test]
    fn known_keys_user_named_relays_and_non_config_variables_load() {
        let file = TempToml::new(
            r#"
            relay_url = "smtp://127.0.0.1:2526"
            [delivery]
            concurrency = 5
            [relays.my-eu-relay]
            url = "smtp://eu.example.com"
            [pools]
            any-name = ["my-eu-relay", "default"]
            [[dkim]]
            domain = "example.com"
            selector = "mg1"
            private_key_file = "/etc/mailgate/dkim.pem"
            "#,
        );
        let c = Config::load_from(
            None,
            &vars(&[
                ("MAILGATE_CONFIG", file.0.to_str().unwrap()),
                ("MAILGATE_WEBHOOKS__LEASE_SECS", "12"),
                ("MAILGATE_RELAYS__OTHER__URL", "smtp://other.example.com"),
                ("mailgate_http_addr", "127.0.0.1:9999"),
                // Not config: set by scripts/, bench/ and the tests.
                ("MAILGATE_ROOT", "/src/mailgate"),
                ("MAILGATE_KEY", "mg_live_x"),
                ("MAILGATE_PID", "123"),
                ("MAILGATE_FUZZ_EXAMPLES", "30"),
                ("MAILGATE_TEST_DATABASE_URL", "postgres://x"),
                ("MAILGATE_TEST_ANYTHING", "1"),
                ("DATABASE_URL", "postgres://fallback/db"),
                ("REDIS_URL", "redis://fallback"),
                ("MAILGATE_REDIS_URL", "redis://wins"),
                ("UNRELATED", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.delivery.runner.concurrency, 5);
        assert_eq!(c.webhooks.runner.lease_secs, 12);
        assert_eq!(c.http_addr.port(), 9999);
        assert_eq!(
            c.relays["my-eu-relay"].url.as_ref().unwrap().expose(),
            "smtp://eu.example.com"
        );
        assert_eq!(
            c.relays["other"].url.as_ref().unwrap().expose(),
            "smtp://other.example.com"
        );
        assert_eq!(c.pools["any-name"], ["my-eu-relay", "default"]);
        assert_eq!(c.dkim[0].selector, "mg1");
        assert_eq!(c.database_url.expose(), "postgres://fallback/db");
        assert_eq!(c.redis_url.as_ref().unwrap().expose(), "redis://wins");
        assert_eq!(c.relay_map().len(), 3);
        // Nothing set: the defaults.
        let c = Config::load_from(None, &[]).unwrap();
        assert_eq!(c.delivery.runner.lease_secs, 30);
        assert_eq!(c.http_addr, Config::default().http_addr);
    }

    #[test]
    fn old_spellings_are_refused_with_the_one_to_use() {
        let err = load_err(None, &[("MAILGATE_SMTP__ADDR", "127.0.0.1:2525")]);
        assert!(
            err.contains("unknown config key `smtp.addr`")
                && err.contains("did you mean `smtp_addr` (MAILGATE_SMTP_ADDR)?"),
            "{err}"
        );
        let file = TempToml::new("[smtp]\naddr = \"127.0.0.1:2525\"\n");
        let err = load_err(Some(&file), &[]);
        assert!(err.contains("did you mean `smtp_addr`?"), "{err}");
        let file = TempToml::new("[webhooks]\nworker_enabled = false\n");
        let err = load_err(Some(&file), &[]);
        assert!(
            err.contains("unknown config key `webhooks.worker_enabled`")
                && err.contains("did you mean `webhooks.workers_enabled`?"),
            "{err}"
        );
        let err = load_err(None, &[("MAILGATE_WEBHOOKS__WORKER_ENABLED", "false")]);
        assert!(
            err.contains(
                "did you mean `webhooks.workers_enabled` (MAILGATE_WEBHOOKS__WORKERS_ENABLED)?"
            ),
            "{err}"
        );
        let c = Config::load_from(
            None,
            &vars(&[
                ("MAILGATE_SMTP_ADDR", "127.0.0.1:2600"),
                ("MAILGATE_WEBHOOKS__WORKERS_ENABLED", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.smtp_addr.port(), 2600);
        assert!(!c.webhooks.workers_enabled);
    }

    /// The runner settings are the same keys in each queue's section, with that section's
    /// defaults, typos caught as in any section.
    #[test]
    fn each_queue_section_has_its_runner_settings_and_defaults() {
        let c = Config::load_from(None, &[]).unwrap();
        assert_eq!(
            (
                c.delivery.runner.concurrency,
                c.delivery.runner.claim_batch()
            ),
            (32, 64)
        );
        assert_eq!(
            (
                c.webhooks.runner.concurrency,
                c.webhooks.runner.claim_batch()
            ),
            (32, 32)
        );
        assert_eq!(
            (c.inbound.runner.concurrency, c.inbound.runner.claim_batch()),
            (4, 4)
        );
        assert_eq!(c.inbound.runner.shutdown_grace_secs, 5);
        assert_eq!(c.webhooks.runner.shutdown_grace_secs, 20);
        // Setting one key keeps the section's other defaults.
        let file = TempToml::new("[inbound]\nlease_secs = 9\n[webhooks]\nconcurrency = 3\n");
        let c = Config::load_from(
            Some(&file.0),
            &vars(&[("MAILGATE_INBOUND__SHUTDOWN_GRACE_SECS", "2")]),
        )
        .unwrap();
        assert_eq!(
            (
                c.inbound.runner.concurrency,
                c.inbound.runner.lease_secs,
                c.inbound.runner.shutdown_grace_secs
            ),
            (4, 9, 2)
        );
        assert_eq!(c.webhooks.runner.claim_batch(), 3);
        assert_eq!(c.delivery.runner.concurrency, 32);
        let file = TempToml::new("[inbound]\nshutdown_grace_sec = 9\n");
        let err = load_err(Some(&file), &[]);
        assert!(
            err.contains("unknown config key `inbound.shutdown_grace_sec`")
                && err.contains("did you mean `inbound.shutdown_grace_secs`?"),
            "{err}"
        );
        let err = load_err(None, &[("MAILGATE_INBOUND__LEASE_SECS", "long")]);
        assert!(err.contains("MAILGATE_INBOUND__LEASE_SECS"), "{err}");
        let err = load_err(None, &[("MAILGATE_INBOUND__LEASE_SECS", "2")]);
        assert!(
            err.contains("inbound.lease_secs (2) must be at least 3"),
            "{err}"
        );
    }

    #[test]
    fn tlsrpt_is_off_by_default_and_needs_who_sends_when_on() {
        let c = Config::load_from(None, &[]).unwrap();
        assert!(!c.tlsrpt.enabled);
        let c = Config::load_from(
            None,
            &vars(&[
                ("MAILGATE_TLSRPT__ENABLED", "true"),
                ("MAILGATE_TLSRPT__ORG_NAME", "Example Inc."),
                ("MAILGATE_TLSRPT__CONTACT", "postmaster@example.com"),
                ("MAILGATE_TLSRPT__SEND_HOUR", "3"),
            ]),
        )
        .unwrap();
        assert!(c.tlsrpt.enabled);
        assert_eq!(c.tlsrpt.send_hour, 3);
        assert_eq!(c.tlsrpt.from_address(), Some("postmaster@example.com"));
        let err = load_err(None, &[("MAILGATE_TLSRPT__ENABLED", "true")]);
        assert!(err.contains("tlsrpt.org_name is required"), "{err}");
        let err = load_err(
            None,
            &[
                ("MAILGATE_TLSRPT__ENABLED", "true"),
                ("MAILGATE_TLSRPT__ORG_NAME", "Example Inc."),
                ("MAILGATE_TLSRPT__CONTACT", "https://example.com/tls"),
            ],
        );
        assert!(err.contains("tlsrpt.from is required"), "{err}");
        let file = TempToml::new("[tlsrpt]\norg = \"x\"\n");
        let err = load_err(Some(&file), &[]);
        assert!(err.contains("unknown config key `tlsrpt.org`"), "{err}");
        let err = load_err(None, &[("MAILGATE_TLSRPT__SEND_HOUR", "24")]);
        assert!(err.contains("tlsrpt.send_hour"), "{err}");
    }

    #[test]
    fn values_of_the_wrong_type_still_name_their_variable() {
        let err = load_err(None, &[("MAILGATE_DELIVERY__CONCURRENCY", "many")]);
        assert!(err.contains("MAILGATE_DELIVERY__CONCURRENCY"), "{err}");
    }
}
