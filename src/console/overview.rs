//! The overview: a project's mail over the last 24 hours and 7 days, by outcome, with a
//! chart per day, and its recipients still in the queue.

use axum::{extract::State, response::Response};
use chrono::{Duration, Utc};
use serde::Serialize;
use tera::Context;

use super::{chart, error::ConsoleResult, session::Viewer, view};
use crate::{domain::Scope, service::AppState, store::overview};

#[derive(Serialize)]
struct Stat {
    label: String,
    value: i64,
    class: &'static str,
}

/// Sent (messages), then recipients by outcome.
fn stats(sent: i64, by_status: &[(String, i64)]) -> Vec<Stat> {
    let count = |status: &str| {
        by_status
            .iter()
            .filter(|(s, _)| s == status)
            .map(|(_, n)| n)
            .sum()
    };
    let mut stats = vec![Stat {
        label: "Sent".into(),
        value: sent,
        class: "sent",
    }];
    stats.extend(chart::SERIES.iter().map(|status| Stat {
        label: capitalised(status),
        value: count(status),
        class: status,
    }));
    stats
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Messages)?;
    let now = Utc::now();
    let day_ago = now - Duration::hours(24);
    let today = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let week_start = today - Duration::days(6);
    let pool = &state.pool;
    let sent_day = overview::messages_since(pool, project, day_ago).await?;
    let sent_week = overview::messages_since(pool, project, week_start).await?;
    let day = overview::recipients_since(pool, project, day_ago).await?;
    let by_day = overview::recipients_by_day(pool, project, week_start).await?;
    let mut week: Vec<(String, i64)> = Vec::new();
    for c in &by_day {
        match week.iter_mut().find(|(s, _)| *s == c.status) {
            Some((_, n)) => *n += c.recipients,
            None => week.push((c.status.clone(), c.recipients)),
        }
    }
    let depth = overview::queue_depth(pool, project).await?;
    let mut context = Context::new();
    context.insert("section", "overview");
    context.insert("day", &stats(sent_day, &day));
    context.insert("week", &stats(sent_week, &week));
    context.insert("chart", &chart::daily(&by_day, week_start, 7));
    context.insert("depth", &depth);
    context.insert("depth_total", &depth.iter().map(|(_, n)| n).sum::<i64>());
    Ok(view::page(
        Some(&viewer),
        "overview.html",
        "Overview",
        context,
    ))
}
