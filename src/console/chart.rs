//! The overview's chart as SVG drawn on the server: recipients per day and outcome, as
//! grouped bars. The numbers are computed here; the template only places them.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::store::overview::DayCount;

/// The outcomes drawn, in order, each with its CSS class.
pub const SERIES: [&str; 5] = ["delivered", "deferred", "bounced", "complained", "failed"];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;

#[derive(Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub bars: Vec<Bar>,
    pub days: Vec<Label>,
    pub ticks: Vec<Label>,
    pub baseline: f64,
    /// A sentence for screen readers: the same numbers as text.
    pub summary: String,
}

#[derive(Serialize)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub class: &'static str,
    pub title: String,
}

#[derive(Serialize)]
pub struct Label {
    pub x: f64,
    pub y: f64,
    pub text: String,
}

/// Bars for `days` UTC days from `first_day`, from counts by day and status.
pub fn daily(counts: &[DayCount], first_day: DateTime<Utc>, days: i64) -> Chart {
    let value = |day: DateTime<Utc>, status: &str| -> i64 {
        counts
            .iter()
            .filter(|c| c.day == day && c.status == status)
            .map(|c| c.recipients)
            .sum()
    };
    let day_list: Vec<DateTime<Utc>> = (0..days).map(|i| first_day + Duration::days(i)).collect();
    let max = day_list
        .iter()
        .flat_map(|d| SERIES.map(|s| value(*d, s)))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let group = (WIDTH - LEFT) / days as f64;
    let bar_w = group / (SERIES.len() as f64 + 1.0);
    let mut bars = Vec::new();
    let mut labels = Vec::new();
    let mut summary = Vec::new();
    for (i, day) in day_list.iter().enumerate() {
        let label = day.format("%a %d").to_string();
        let group_x = LEFT + group * i as f64 + bar_w / 2.0;
        let mut parts = Vec::new();
        for (j, status) in SERIES.iter().enumerate() {
            let n = value(*day, status);
            if n > 0 {
                parts.push(format!("{n} {status}"));
            }
            let h = (n as f64 / max as f64 * plot_h).max(if n > 0 { 1.0 } else { 0.0 });
            bars.push(Bar {
                x: round(group_x + bar_w * j as f64),
                y: round(TOP + plot_h - h),
                w: round(bar_w * 0.9),
                h: round(h),
                class: status,
                title: format!("{label}: {n} {status}"),
            });
        }
        labels.push(Label {
            x: round(LEFT + group * i as f64 + group / 2.0),
            y: HEIGHT - 8.0,
            text: label.clone(),
        });
        summary.push(format!(
            "{label}: {}",
            if parts.is_empty() {
                "nothing".to_string()
            } else {
                parts.join(", ")
            }
        ));
    }
    let ticks = [0, max / 2, max]
        .iter()
        .map(|&t| Label {
            x: LEFT - 6.0,
            y: round(TOP + plot_h - t as f64 / max as f64 * plot_h + 4.0),
            text: t.to_string(),
        })
        .collect();
    Chart {
        width: WIDTH,
        height: HEIGHT,
        bars,
        days: labels,
        ticks,
        baseline: TOP + plot_h,
        summary: summary.join("; "),
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tallest_bar_fills_the_plot_and_empty_days_draw_nothing() {
        let first = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let counts = vec![
            DayCount {
                day: first + Duration::days(6),
                status: "delivered".into(),
                recipients: 10,
            },
            DayCount {
                day: first + Duration::days(6),
                status: "bounced".into(),
                recipients: 5,
            },
        ];
        let chart = daily(&counts, first, 7);
        assert_eq!(chart.bars.len(), 7 * SERIES.len());
        let tallest = chart.bars.iter().map(|b| b.h).fold(0.0, f64::max);
        assert_eq!(tallest, HEIGHT - TOP - BOTTOM);
        assert!(chart.bars[..6 * SERIES.len()].iter().all(|b| b.h == 0.0));
        assert!(chart.summary.contains("10 delivered, 5 bounced"));
    }
}
