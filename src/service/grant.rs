//! What a key may give when it creates or changes keys: never more than it holds. Only
//! scopes it has; send limits no higher than its own, and above the configured defaults
//! (`ratelimit.send.*`) only to lower a key that has more; a test key makes and manages test
//! keys only. Raising limits beyond the defaults is the operator's, who is not bound here.
//! Every refusal is a 403 naming each field that asks too much, never a silent clamp.

use crate::{
    config::SendLimits,
    domain::{FieldError, Scope, api_key::KeyLimits},
    store::api_keys::{AuthenticatedKey, LimitsChange},
};

use super::error::{Forbidden, ServiceError, ServiceResult};

/// A key acting on keys, with the defaults its limits fall back to.
pub struct Grantor<'a> {
    key: &'a AuthenticatedKey,
    defaults: &'a SendLimits,
}

/// One send limit. Values compare as `f64`: no daily quota is `INFINITY`, and every bound
/// (at most 1e9) is exact.
#[derive(Clone, Copy)]
enum Limit {
    Rate,
    Burst,
    Quota,
}

impl Limit {
    const ALL: [Limit; 3] = [Limit::Rate, Limit::Burst, Limit::Quota];

    fn field(self) -> &'static str {
        match self {
            Limit::Rate => "rate_per_sec",
            Limit::Burst => "burst",
            Limit::Quota => "daily_quota",
        }
    }

    /// The value set in `limits`: `None` when unset, `Some(INFINITY)` never (unset is how a
    /// key has no quota).
    fn of(self, limits: &KeyLimits) -> Option<f64> {
        match self {
            Limit::Rate => limits.rate_per_sec,
            Limit::Burst => limits.burst.map(f64::from),
            Limit::Quota => limits.daily_quota.map(|q| q as f64),
        }
    }

    fn default_of(self, defaults: &SendLimits) -> f64 {
        match self {
            Limit::Rate => defaults.rate_per_sec,
            Limit::Burst => f64::from(defaults.burst),
            Limit::Quota => defaults.daily_quota.map_or(f64::INFINITY, |q| q as f64),
        }
    }

    /// The change to this limit: `Some(None)` back to the default, `Some(Some(v))` to `v`.
    fn changed(self, change: &LimitsChange) -> Option<Option<f64>> {
        match self {
            Limit::Rate => change.rate_per_sec,
            Limit::Burst => change.burst.map(|b| b.map(f64::from)),
            Limit::Quota => change.daily_quota.map(|q| q.map(|q| q as f64)),
        }
    }
}

fn show(value: f64) -> String {
    if value.is_infinite() {
        "no limit".into()
    } else {
        value.to_string()
    }
}

impl<'a> Grantor<'a> {
    pub fn new(key: &'a AuthenticatedKey, defaults: &'a SendLimits) -> Self {
        Grantor { key, defaults }
    }

    /// The key's own value of a limit: its setting, else the default.
    fn own(&self, limit: Limit) -> f64 {
        limit
            .of(&self.key.limits)
            .unwrap_or_else(|| limit.default_of(self.defaults))
    }

    /// The most of a limit this key may give a new key: its own, never above the default.
    fn ceiling(&self, limit: Limit) -> f64 {
        self.own(limit).min(limit.default_of(self.defaults))
    }

    /// Why `value` of `limit` is too much for a key that has `current` (a new key: none),
    /// or `None` when the key may give it.
    fn too_much(&self, limit: Limit, value: f64, current: Option<f64>) -> Option<String> {
        let own = self.own(limit);
        let default = limit.default_of(self.defaults);
        if value > own {
            return Some(format!(
                "{} is above this key's own {}: a key grants no more than it has",
                show(value),
                show(own)
            ));
        }
        // Above the default only to lower a key that has more.
        if value > default && current.is_none_or(|c| value > c) {
            return Some(format!(
                "{} is above the configured default {} (ratelimit.send.{}): raising limits beyond the defaults is for the operator",
                show(value),
                show(default),
                limit.field()
            ));
        }
        None
    }

    /// The scopes a new key asks for: only ones this key holds.
    pub fn scopes(&self, wanted: &[Scope]) -> ServiceResult<()> {
        let lacking: Vec<String> = wanted
            .iter()
            .filter(|s| !self.key.scopes.contains(s))
            .map(|s| format!("`{}`", s.as_str()))
            .collect();
        if lacking.is_empty() {
            return Ok(());
        }
        let message = format!(
            "{} not held by this key (it holds {}): a key grants only scopes it has",
            lacking.join(", "),
            self.held()
        );
        Err(refusal(
            Forbidden::ExceedsOwnScopes,
            vec![FieldError::new("scopes", message)],
        ))
    }

    fn held(&self) -> String {
        self.key
            .scopes
            .iter()
            .map(|s| format!("`{}`", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A new key's mode: a test key makes test keys only.
    pub fn test_mode(&self, test: bool) -> ServiceResult<()> {
        if self.key.test_mode && !test {
            return Err(refusal(
                Forbidden::TestKeyOnly,
                vec![FieldError::new(
                    "test",
                    "a test key creates test keys only (`\"test\": true`): a live key relays mail",
                )],
            ));
        }
        Ok(())
    }

    /// A new key's limits: each one given at most what this key may give, and each one left
    /// out this key's own when that is below the default (a key never makes a freer key).
    pub fn new_limits(&self, given: &KeyLimits) -> ServiceResult<KeyLimits> {
        let mut errors = Vec::new();
        for limit in Limit::ALL {
            if let Some(value) = limit.of(given)
                && let Some(why) = self.too_much(limit, value, None)
            {
                errors.push(FieldError::new(limit.field(), why));
            }
        }
        if !errors.is_empty() {
            return Err(refusal(Forbidden::ExceedsOwnLimits, errors));
        }
        let inherit = |limit: Limit| {
            (self.ceiling(limit) < limit.default_of(self.defaults)).then(|| self.ceiling(limit))
        };
        Ok(KeyLimits {
            rate_per_sec: given.rate_per_sec.or_else(|| inherit(Limit::Rate)),
            burst: given
                .burst
                .or_else(|| inherit(Limit::Burst).map(|b| b as u32)),
            daily_quota: given
                .daily_quota
                .or_else(|| inherit(Limit::Quota).map(|q| q as u64)),
        })
    }

    /// A key this key may manage (change or revoke): one holding no scope it lacks, and a
    /// test key when it is one.
    pub fn manages(&self, target: &AuthenticatedKey) -> ServiceResult<()> {
        let lacking: Vec<String> = target
            .scopes
            .iter()
            .filter(|s| !self.key.scopes.contains(s))
            .map(|s| format!("`{}`", s.as_str()))
            .collect();
        if !lacking.is_empty() {
            return Err(ServiceError::forbidden(
                Forbidden::ExceedsOwnScopes,
                format!(
                    "that key holds {} and this key does not (it holds {}): a key manages only keys within its own scopes",
                    lacking.join(", "),
                    self.held()
                ),
            ));
        }
        if self.key.test_mode && !target.test_mode {
            return Err(ServiceError::forbidden(
                Forbidden::TestKeyOnly,
                "that key is live and this one a test key: a test key manages test keys only",
            ));
        }
        Ok(())
    }

    /// A change to `target`'s limits: each new value at most this key's own, and above the
    /// default only to lower the target; `null` (the default) only when this key has at
    /// least the default itself.
    pub fn change(&self, target: &AuthenticatedKey, change: &LimitsChange) -> ServiceResult<()> {
        let target = Grantor::new(target, self.defaults);
        let mut errors = Vec::new();
        for limit in Limit::ALL {
            let why = match limit.changed(change) {
                None => None,
                Some(Some(value)) => self.too_much(limit, value, Some(target.own(limit))),
                Some(None) => {
                    let default = limit.default_of(self.defaults);
                    self.too_much(limit, default, None).map(|_| {
                        format!(
                            "null returns it to the configured default {}, above this key's own {}: give a number up to {}",
                            show(default),
                            show(self.own(limit)),
                            show(self.own(limit))
                        )
                    })
                }
            };
            if let Some(why) = why {
                errors.push(FieldError::new(limit.field(), why));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(refusal(Forbidden::ExceedsOwnLimits, errors))
        }
    }
}

/// A 403 naming each field; the detail lists them all.
fn refusal(kind: Forbidden, errors: Vec<FieldError>) -> ServiceError {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    ServiceError::Forbidden {
        kind,
        detail,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn key(scopes: &[Scope], test_mode: bool, limits: KeyLimits) -> AuthenticatedKey {
        AuthenticatedKey {
            id: Uuid::nil(),
            project_id: Uuid::nil(),
            scopes: scopes.to_vec(),
            test_mode,
            limits,
        }
    }

    fn defaults() -> SendLimits {
        SendLimits {
            rate_per_sec: 50.0,
            burst: 500,
            daily_quota: None,
        }
    }

    fn kind(err: ServiceError) -> (Forbidden, Vec<String>) {
        match err {
            ServiceError::Forbidden { kind, errors, .. } => {
                (kind, errors.into_iter().map(|e| e.field).collect())
            }
            other => panic!("not a 403: {other:?}"),
        }
    }

    #[test]
    fn a_key_grants_only_scopes_it_holds() {
        let d = defaults();
        let k = key(&[Scope::Keys, Scope::Send], false, KeyLimits::default());
        let g = Grantor::new(&k, &d);
        assert!(g.scopes(&[Scope::Send]).is_ok());
        let (kind_, fields) = kind(g.scopes(&[Scope::Send, Scope::Messages]).unwrap_err());
        assert_eq!(
            (kind_, fields),
            (Forbidden::ExceedsOwnScopes, vec!["scopes".into()])
        );
    }

    #[test]
    fn limits_stay_within_the_keys_own_and_the_defaults() {
        let d = defaults();
        let own = KeyLimits {
            rate_per_sec: Some(10.0),
            burst: Some(1000),
            daily_quota: Some(5000),
        };
        let k = key(&[Scope::Keys], false, own);
        let g = Grantor::new(&k, &d);
        // Left out: its own where lower than the default, else the default.
        let made = g.new_limits(&KeyLimits::default()).unwrap();
        assert_eq!(made.rate_per_sec, Some(10.0));
        assert_eq!(made.burst, None, "its own 1000 is above the default 500");
        assert_eq!(made.daily_quota, Some(5000));
        let (kind_, fields) = kind(
            g.new_limits(&KeyLimits {
                rate_per_sec: Some(11.0),
                burst: Some(600),
                daily_quota: Some(5000),
            })
            .unwrap_err(),
        );
        assert_eq!(kind_, Forbidden::ExceedsOwnLimits);
        assert_eq!(fields, ["rate_per_sec", "burst"]);

        // Changing itself: lower is fine, higher is not, and so is `null` back to a default
        // above its own.
        let lower = LimitsChange {
            rate_per_sec: Some(Some(5.0)),
            burst: Some(Some(800)),
            ..Default::default()
        };
        assert!(g.change(&k, &lower).is_ok(), "lowering 1000 to 800 is fine");
        let raise = LimitsChange {
            rate_per_sec: Some(Some(20.0)),
            daily_quota: Some(None),
            ..Default::default()
        };
        let (_, fields) = kind(g.change(&k, &raise).unwrap_err());
        assert_eq!(fields, ["rate_per_sec", "daily_quota"]);
        // Another key at the default cannot be raised above it.
        let other = key(&[Scope::Send], false, KeyLimits::default());
        let (_, fields) = kind(
            g.change(
                &other,
                &LimitsChange {
                    burst: Some(Some(800)),
                    ..Default::default()
                },
            )
            .unwrap_err(),
        );
        assert_eq!(fields, ["burst"]);
    }

    #[test]
    fn a_test_key_makes_and_manages_test_keys_only() {
        let d = defaults();
        let k = key(&[Scope::Keys, Scope::Send], true, KeyLimits::default());
        let g = Grantor::new(&k, &d);
        assert!(g.test_mode(true).is_ok());
        assert_eq!(
            kind(g.test_mode(false).unwrap_err()).0,
            Forbidden::TestKeyOnly
        );
        let live = key(&[Scope::Send], false, KeyLimits::default());
        assert!(g.manages(&live).is_err());
        let stronger = key(&[Scope::Send, Scope::Webhooks], true, KeyLimits::default());
        assert!(g.manages(&stronger).is_err());
        let weaker = key(&[Scope::Send], true, KeyLimits::default());
        assert!(g.manages(&weaker).is_ok());
    }
}
