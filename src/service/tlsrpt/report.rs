//! One domain's aggregate report for one day (RFC 8460 §4), built from its session counts
//! with mail-auth's report types, as gzipped JSON.

use std::{collections::BTreeMap, io::Write, net::IpAddr};

use chrono::NaiveDate;
use flate2::{Compression, write::GzEncoder};
use mail_auth::report::tlsrpt::{
    DateRange, FailureDetails, Policy, PolicyDetails, PolicyType, ResultType, Summary, TlsReport,
};

use crate::store::tlsrpt::SessionRow;

/// Who sends the report.
pub struct Reporter<'a> {
    pub org_name: &'a str,
    pub contact: &'a str,
}

/// The report of `domain`'s sessions on `day`: one policy entry per policy the sessions
/// were judged by, with their successes, failures and failure details.
pub fn build(
    by: &Reporter<'_>,
    report_id: &str,
    domain: &str,
    day: NaiveDate,
    rows: &[SessionRow],
) -> TlsReport {
    let mut policies: BTreeMap<(String, String), Policy> = BTreeMap::new();
    for row in rows {
        let policy = policies
            .entry((row.policy_type.clone(), row.policy_key.clone()))
            .or_insert_with(|| Policy {
                policy: PolicyDetails {
                    policy_type: policy_type(&row.policy_type),
                    policy_string: row.policy_strings.clone(),
                    policy_domain: domain.to_string(),
                    mx_host: row.mx_hosts.clone(),
                },
                summary: Summary {
                    total_success: 0,
                    total_failure: 0,
                },
                failure_details: Vec::new(),
            });
        let count = u32::try_from(row.sessions).unwrap_or(u32::MAX);
        if row.result == "success" {
            policy.summary.total_success = policy.summary.total_success.saturating_add(count);
            continue;
        }
        policy.summary.total_failure = policy.summary.total_failure.saturating_add(count);
        policy.failure_details.push(FailureDetails {
            result_type: result_type(&row.result),
            sending_mta_ip: None,
            receiving_mx_hostname: Some(row.receiving_mx.clone()).filter(|s| !s.is_empty()),
            receiving_mx_helo: None,
            receiving_ip: row.receiving_ip.parse::<IpAddr>().ok(),
            failed_session_count: count,
            additional_information: row.detail.clone(),
            failure_reason_code: None,
        });
    }
    let start = day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    TlsReport {
        organization_name: Some(by.org_name.to_string()),
        date_range: DateRange::from_timestamps(start.timestamp(), start.timestamp() + 86399),
        contact_info: Some(by.contact.to_string()),
        report_id: report_id.to_string(),
        policies: policies.into_values().collect(),
    }
}

/// The report as JSON without the `null` members of fields it lacks (RFC 8460 §4.4 leaves
/// them out), gzipped (§5.2).
pub fn gzipped_json(report: &TlsReport) -> std::io::Result<Vec<u8>> {
    let mut value = serde_json::to_value(report).map_err(std::io::Error::other)?;
    drop_nulls(&mut value);
    let json = serde_json::to_vec(&value).map_err(std::io::Error::other)?;
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::default());
    gz.write_all(&json)?;
    gz.finish()
}

fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn policy_type(stored: &str) -> PolicyType {
    match stored {
        "sts" => PolicyType::Sts,
        "tlsa" => PolicyType::Tlsa,
        _ => PolicyType::NoPolicyFound,
    }
}

/// The stored result (an RFC 8460 result type) as mail-auth's type.
fn result_type(stored: &str) -> ResultType {
    serde_json::from_value(serde_json::Value::String(stored.to_string()))
        .unwrap_or(ResultType::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, key: &str, result: &str, n: i64) -> SessionRow {
        SessionRow {
            policy_type: kind.into(),
            policy_key: key.into(),
            policy_strings: vec![],
            mx_hosts: vec![],
            result: result.into(),
            receiving_mx: if result == "success" {
                String::new()
            } else {
                "mx.example.com".into()
            },
            receiving_ip: if result == "success" {
                String::new()
            } else {
                "192.0.2.1".into()
            },
            detail: None,
            sessions: n,
        }
    }

    #[test]
    fn counts_go_under_their_policy() {
        let rows = [
            row("no-policy-found", "", "success", 3),
            row("sts", "p1", "success", 2),
            row("sts", "p1", "certificate-expired", 1),
            row("sts", "p1", "starttls-not-supported", 4),
        ];
        let by = Reporter {
            org_name: "Org",
            contact: "tls@org.example",
        };
        let day = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        let report = build(&by, "r1", "example.com", day, &rows);
        assert_eq!(report.policies.len(), 2);
        let sts = report
            .policies
            .iter()
            .find(|p| p.policy.policy_type == PolicyType::Sts)
            .unwrap();
        assert_eq!(sts.summary.total_success, 2);
        assert_eq!(sts.summary.total_failure, 5);
        assert_eq!(
            sts.failure_details[0].result_type,
            ResultType::CertificateExpired
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["date-range"]["start-datetime"], "2026-12-06T00:00:00Z");
        assert_eq!(json["date-range"]["end-datetime"], "2026-12-06T23:59:59Z");
        let gz = gzipped_json(&report).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
            .unwrap();
        assert!(!text.contains("null"), "{text}");
        assert_eq!(TlsReport::parse_json(text.as_bytes()).unwrap(), report);
    }
}
