//! `MAILGATE_*` environment variables as a figment provider: `MAILGATE_DELIVERY__CONCURRENCY=64`
//! sets `delivery.concurrency`. Built from a list of variables, so tests need not change the
//! process environment.

use figment::{
    Metadata, Profile, Provider,
    value::{Dict, Map, Value},
};

pub(super) const PREFIX: &str = "MAILGATE_";

/// `MAILGATE_*` variables that are not configuration. Every other one must name a config key.
const NOT_CONFIG: &[&str] = &[
    // The config file itself.
    "CONFIG",
    // scripts/lib.sh: the checkout the scripts run in.
    "ROOT",
    // scripts/dev prints `export MAILGATE_KEY=…` for the curl examples.
    "KEY",
    // bench/lib.sh: the server under test.
    "PID",
    // scripts/test and scripts/fuzz: how many fuzz examples.
    "FUZZ_EXAMPLES",
];
/// Likewise every variable with one of these prefixes: `MAILGATE_TEST_DATABASE_URL` and
/// `MAILGATE_TEST_REDIS_URL` for the tests.
const NOT_CONFIG_PREFIXES: &[&str] = &["TEST_"];

/// The `MAILGATE_*` variables that carry configuration.
pub(super) struct EnvLayer {
    /// (variable name, key path like `delivery.concurrency`, value)
    vars: Vec<(String, String, String)>,
}

impl EnvLayer {
    pub(super) fn new(vars: &[(String, String)]) -> Self {
        let vars = vars
            .iter()
            .filter_map(|(name, value)| {
                let rest = strip_prefix(name.trim())?;
                if is_not_config(rest) {
                    return None;
                }
                let key = rest.to_ascii_lowercase().replace("__", ".");
                // As figment's own `Env`: `MAILGATE_A____B` names nothing.
                if key.split('.').any(str::is_empty) {
                    return None;
                }
                Some((name.trim().to_string(), key, value.clone()))
            })
            .collect();
        Self { vars }
    }

    /// The variable that set `path`, a table that holds it (`MAILGATE_DKIM=[{…}]`), or a key
    /// inside it (`MAILGATE_SECTON__KEY` for the unknown `secton`).
    pub(super) fn var_for(&self, path: &[String]) -> Option<&str> {
        let key = path.join(".");
        self.vars
            .iter()
            .filter(|(_, k, _)| {
                key == *k || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}."))
            })
            .max_by_key(|(_, k, _)| k.len())
            .map(|(name, _, _)| name.as_str())
    }
}

/// The variable that would set `path`.
pub(super) fn var_name(path: &[&str]) -> String {
    format!("{PREFIX}{}", path.join("__").to_ascii_uppercase())
}

fn strip_prefix(name: &str) -> Option<&str> {
    let head = name.get(..PREFIX.len())?;
    head.eq_ignore_ascii_case(PREFIX)
        .then(|| &name[PREFIX.len()..])
        .filter(|rest| !rest.is_empty())
}

fn is_not_config(rest: &str) -> bool {
    NOT_CONFIG.iter().any(|n| rest.eq_ignore_ascii_case(n))
        || NOT_CONFIG_PREFIXES.iter().any(|p| {
            rest.get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p))
        })
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_: &Profile, keys: &[&str]| var_name(keys))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (_, key, value) in &self.vars {
            // Values parse as figment's env provider does: numbers, booleans, arrays and
            // inline tables (`MAILGATE_DKIM=[{domain="…", …}]`), else strings.
            let value: Value = value.parse().expect("parsing a figment value never fails");
            merge(&mut dict, key, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Sets `key` (a dotted path) in `dict`; inner tables merge, a later leaf wins.
fn merge(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => match (dict.get_mut(key), value) {
            (Some(Value::Dict(_, old)), Value::Dict(_, new)) => {
                for (k, v) in new {
                    merge(old, &k, v);
                }
            }
            (_, value) => {
                dict.insert(key.to_string(), value);
            }
        },
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                merge(inner, rest, value);
            }
        }
    }
}
