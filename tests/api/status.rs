//! The message status is computed in two places: SQL (`mailgate_message_status`, which keeps
//! the stored status current in the same statements that change recipients) and Rust
//! (`summarise`, for answers built from recipients read just now). They must agree.

use mailgate::{
    domain::status::{MessageStatus, RecipientStatus, summarise},
    store,
};

use crate::support::app::create_database;

/// Every sequence of one to three recipient statuses (order included, so every multiset in
/// every order): enough to take each branch of the function with every status.
fn all_sequences() -> Vec<Vec<RecipientStatus>> {
    let mut all: Vec<Vec<RecipientStatus>> = vec![Vec::new()];
    let mut out = Vec::new();
    for _ in 0..3 {
        all = all
            .iter()
            .flat_map(|seq| {
                RecipientStatus::ALL.into_iter().map(move |s| {
                    let mut longer = seq.clone();
                    longer.push(s);
                    longer
                })
            })
            .collect();
        out.extend(all.iter().cloned());
    }
    out
}

#[tokio::test]
async fn sql_and_rust_summarise_recipients_alike() {
    let pool = store::connect(&create_database().await, 2).await.unwrap();
    store::migrate(&pool).await.unwrap();
    let sequences = all_sequences();
    assert_eq!(sequences.len(), 11 + 121 + 1331);
    let mut seen = std::collections::HashSet::new();
    for statuses in sequences {
        let words: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let sql: String = sqlx::query_scalar("SELECT mailgate_message_status($1::text[])")
            .bind(&words)
            .fetch_one(&pool)
            .await
            .unwrap();
        let rust = summarise(&statuses);
        assert_eq!(
            sql.parse::<MessageStatus>(),
            Ok(rust),
            "recipients {words:?}: SQL says {sql}, Rust says {rust}"
        );
        seen.insert(rust);
    }
    // Every message status is reachable from recipients.
    assert_eq!(seen.len(), MessageStatus::ALL.len());
}
