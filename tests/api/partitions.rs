//! Day partitions of messages (migration 0031): a database filled before the migration moves
//! across with every row, the queue and the API work on it after, retention drops whole days.

use std::time::Duration;

use crate::support::{
    app::{TestApp, create_database},
    smtp_server::TestSmtpServer,
};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// The last migration before the partitions.
const BEFORE_PARTITIONS: i64 = 30;

const MIME: &[u8] = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: old\r\n\r\nbody\r\n";

/// A v7 id made `days_ago` days ago (the id's time is its partition's day).
fn id_days_ago(days_ago: i64) -> Uuid {
    id_at(Utc::now() - chrono::Duration::days(days_ago))
}

fn id_at(at: DateTime<Utc>) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    ))
}

/// One message of project `acme` with one recipient in `status` and its first event, as the
/// code before the partitions wrote them.
async fn insert_message(pool: &PgPool, id: Uuid, days_ago: i64, status: &str) {
    insert_message_at(
        pool,
        id,
        Utc::now() - chrono::Duration::days(days_ago),
        status,
    )
    .await
}

async fn insert_message_at(pool: &PgPool, id: Uuid, at: DateTime<Utc>, status: &str) {
    let (project, _) = mailgate::store::projects::ensure(pool, "acme")
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO messages (id, project_id, status, from_addr, subject, message_id, mime,
                               sandbox, created_at, updated_at)
         VALUES ($1, $2, $3, 'a@example.com', 'old', '<' || $1 || '@example.com>', $4, false,
                 $5, $5)",
    )
    .bind(id)
    .bind(project.id)
    .bind(status)
    .bind(MIME)
    .bind(at)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "WITH r AS (INSERT INTO recipients (message_id, email, kind, status, next_attempt_at)
                    VALUES ($1, 'b@example.com', 'to', $2, now()) RETURNING id)
         INSERT INTO events (message_id, recipient_id, recipient, type)
         SELECT $1, r.id, 'b@example.com', t FROM r, unnest(ARRAY['queued', $2]) t",
    )
    .bind(id)
    .bind(status)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Every row of a table, as one text, in a fixed order (without the columns later
/// migrations add).
async fn table_text(pool: &PgPool, table: &str) -> (i64, String) {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), coalesce(md5(string_agg(r, '|' ORDER BY r)), '')
         FROM (SELECT (to_jsonb(t) - 'body_purged_at')::text AS r FROM {table} t) rows"
    )))
    .fetch_one(pool)
    .await
    .unwrap()
}

const TABLES: [&str; 4] = ["messages", "recipients", "events", "message_opens"];

#[tokio::test]
async fn a_database_filled_before_the_partitions_moves_across_with_every_row() {
    let database = create_database().await;
    let pool = PgPool::connect(&database).await.unwrap();
    mailgate::store::MIGRATOR
        .run_to(BEFORE_PARTITIONS, &pool)
        .await
        .unwrap();

    // Five days of mail: delivered, and one still queued each day; one old non-v7 id too.
    let mut delivered = Vec::new();
    let mut queued = Vec::new();
    for day in 0..5 {
        for _ in 0..3 {
            let id = id_days_ago(day);
            insert_message(&pool, id, day, "delivered").await;
            delivered.push(id);
        }
        let id = id_days_ago(day);
        insert_message(&pool, id, day, "queued").await;
        queued.push(id);
    }
    let v4 = Uuid::new_v4();
    insert_message(&pool, v4, 2, "delivered").await;
    delivered.push(v4);
    sqlx::query(
        "INSERT INTO message_opens (message_id, opens, first_at, last_at, recorded_at, recorded_opens)
         VALUES ($1, 3, now(), now(), now(), 3)",
    )
    .bind(delivered[0])
    .execute(&pool)
    .await
    .unwrap();
    let mut before = Vec::new();
    for table in TABLES {
        before.push(table_text(&pool, table).await);
    }
    pool.close().await;

    // The rest of the migrations, applied by mailgate as it starts (no workers yet, so the
    // rows stay as they were).
    let app = TestApp::builder()
        .on_database(&database)
        .without_workers()
        .start()
        .await;
    for (table, was) in TABLES.iter().zip(&before) {
        assert_eq!(
            &table_text(&app.pool, table).await,
            was,
            "{table}: every row kept"
        );
    }
    let partitioned: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relkind = 'p' AND relname = ANY($1) ORDER BY 1",
    )
    .bind(TABLES.to_vec())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        partitioned,
        ["events", "message_opens", "messages", "recipients"]
    );
    // The v7 messages went to their days; only the v4 one to the default partition.
    let in_default: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM messages_default")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(in_default, [v4]);

    // The API lists every message and shows each with its timeline.
    let listed: Vec<String> = app
        .list_emails("limit=100")
        .await
        .data
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed.len(), delivered.len() + queued.len());
    for id in delivered.iter().chain(&queued) {
        assert!(listed.contains(&id.to_string()), "{id} listed");
    }
    let shown = app.get_email(&delivered[0].to_string()).await;
    assert_eq!(shown.status, "delivered");
    assert_eq!(shown.events.len(), 2);
    assert_eq!(shown.opens.map(|o| o.count), Some(3));

    // The queue delivers the mail that was waiting.
    let smtp = TestSmtpServer::start().await;
    let worker = TestApp::builder()
        .on_database(&database)
        .relaying_to(&smtp)
        .start()
        .await;
    for id in &queued {
        worker
            .wait_for_status(&id.to_string(), &["delivered"], Duration::from_secs(30))
            .await;
    }
    // New mail goes to today's partition.
    let new = worker
        .send_ok(
            &serde_json::json!({"from": "a@example.com", "to": "c@example.com",
                                     "subject": "new", "text": "t"}),
        )
        .await;
    let partition: String =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM messages WHERE id = $1")
            .bind(Uuid::parse_str(&new).unwrap())
            .fetch_one(&worker.pool)
            .await
            .unwrap();
    assert_eq!(
        partition,
        format!("messages_p{}", Utc::now().format("%Y%m%d"))
    );
}

async fn partition_exists(pool: &PgPool, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn retention_drops_whole_days_that_are_finished_and_makes_days_ahead() {
    let app = TestApp::builder().without_workers().start().await;
    let day = |days_ago: i64| {
        (Utc::now() - chrono::Duration::days(days_ago))
            .format("%Y%m%d")
            .to_string()
    };
    // Two old days: one all delivered, one with mail still waiting.
    sqlx::query("SELECT mailgate_create_day_partitions((now() AT TIME ZONE 'UTC')::date - n) FROM unnest(ARRAY[40, 41]) n")
        .execute(&app.pool)
        .await
        .unwrap();
    let finished = id_days_ago(40);
    insert_message(&app.pool, finished, 40, "delivered").await;
    let waiting = id_days_ago(41);
    insert_message(&app.pool, waiting, 41, "queued").await;
    // Finished mail of the day kept for its waiting mail goes row by row.
    let beside_waiting = id_days_ago(41);
    insert_message(&app.pool, beside_waiting, 41, "delivered").await;
    let fresh = id_days_ago(1);
    insert_message(&app.pool, fresh, 1, "delivered").await;
    // Mail already older than retention.days (30) on the day that is only partly past it
    // stays, to go with its whole day, not row by row as it ages.
    let config = mailgate::config::RetentionConfig::default();
    let edge = Utc::now() - chrono::Duration::days(config.days);
    let day_start = mailgate::retention::row_by_row_before(Utc::now(), config.days);
    let partly_past = day_start + (edge - day_start) / 2;
    sqlx::query("SELECT mailgate_create_day_partitions($1)")
        .bind(partly_past.date_naive())
        .execute(&app.pool)
        .await
        .unwrap();
    let aging = id_at(partly_past);
    insert_message_at(&app.pool, aging, partly_past, "delivered").await;

    mailgate::retention::purge_once(&app.pool, &config)
        .await
        .unwrap();

    for table in TABLES {
        assert!(
            !partition_exists(&app.pool, &format!("{table}_p{}", day(40))).await,
            "{table} of the finished day dropped"
        );
        assert!(
            partition_exists(&app.pool, &format!("{table}_p{}", day(41))).await,
            "{table} of the day with waiting mail kept"
        );
        assert!(
            partition_exists(&app.pool, &format!("{table}_p{}", day(-7))).await,
            "{table} made a week ahead"
        );
    }
    let status = |id: Uuid| {
        let app = &app;
        async move {
            app.get_email_raw(&app.key, &id.to_string())
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(finished).await, 404);
    assert_eq!(status(waiting).await, 200);
    assert_eq!(status(beside_waiting).await, 404, "finished, on a day kept");
    // Its rows go with it (no foreign key cascades since migration 0036: a trigger deletes
    // them), and only its.
    for (table, id, left) in [
        ("recipients", beside_waiting, 0),
        ("events", beside_waiting, 0),
        ("recipients", waiting, 1),
        ("events", waiting, 2),
    ] {
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE message_id = $1"
        )))
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(rows, left, "{table} rows of {id}");
    }
    assert_eq!(status(fresh).await, 200);
    assert_eq!(
        status(aging).await,
        200,
        "past retention.days at {partly_past}, but its day ({}) is not yet wholly past",
        partly_past.date_naive()
    );
    assert!(
        partition_exists(
            &app.pool,
            &format!("messages_p{}", partly_past.format("%Y%m%d"))
        )
        .await
    );

    // Once its whole day is past (as the next day's passes see it), it goes with the day.
    let next_day = day_start + chrono::Duration::days(1) + chrono::Duration::days(config.days);
    assert!(mailgate::retention::row_by_row_before(next_day, config.days) > partly_past);
    let dropped = mailgate::retention::maintain_partitions(&app.pool, config.days - 1)
        .await
        .unwrap();
    assert!(dropped.contains(&partly_past.date_naive()), "{dropped:?}");
    assert_eq!(status(aging).await, 404);
}

/// A send holds `messages` and then needs `recipients` and `events`; retention dropping a day
/// beside it must wait for the send, not take `recipients` first and then wait for `messages`
/// (a deadlock, in which PostgreSQL kills one of the two: under load, sends answered 500).
#[tokio::test]
async fn dropping_a_day_waits_for_a_send_in_flight_instead_of_deadlocking_with_it() {
    let app = TestApp::builder().without_workers().start().await;
    sqlx::query("SELECT mailgate_create_day_partitions((now() AT TIME ZONE 'UTC')::date - 40)")
        .execute(&app.pool)
        .await
        .unwrap();
    insert_message(&app.pool, id_days_ago(40), 40, "delivered").await;
    let (project, _) = mailgate::store::projects::ensure(&app.pool, "acme")
        .await
        .unwrap();

    // The send's transaction, in the order the submission core writes: its message first…
    let new = Uuid::now_v7();
    let mut send = app.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO messages (id, project_id, status, from_addr, subject, message_id, mime, sandbox)
         VALUES ($1, $2, 'queued', 'a@example.com', 'new', '<' || $1 || '@example.com>', $3, false)",
    )
    .bind(new)
    .bind(project.id)
    .bind(MIME)
    .execute(&mut *send)
    .await
    .unwrap();
    // …while retention drops the old day…
    let day = (Utc::now() - chrono::Duration::days(40)).date_naive();
    let pool = app.pool.clone();
    let drop = tokio::spawn(async move {
        sqlx::query_scalar::<_, bool>("SELECT mailgate_drop_day_partitions($1)")
            .bind(day)
            .fetch_one(&pool)
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // …then its recipients and events.
    sqlx::query(
        "WITH r AS (INSERT INTO recipients (message_id, email, kind, status)
                    VALUES ($1, 'b@example.com', 'to', 'queued') RETURNING id)
         INSERT INTO events (message_id, recipient_id, recipient, type)
         SELECT $1, r.id, 'b@example.com', 'queued' FROM r",
    )
    .bind(new)
    .execute(&mut *send)
    .await
    .expect("the send is not a deadlock's victim");
    send.commit().await.unwrap();

    let dropped = tokio::time::timeout(Duration::from_secs(10), drop)
        .await
        .expect("the drop finishes once the send committed")
        .unwrap()
        .expect("the drop is not a deadlock's victim either");
    // On a busy machine the drop may have given up its tries before the send committed (it
    // then leaves the day to the next pass); the next pass, with nothing in the way, drops it.
    if !dropped {
        let again: bool = sqlx::query_scalar("SELECT mailgate_drop_day_partitions($1)")
            .bind(day)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert!(again, "the day is dropped by the next pass");
    }
    for table in TABLES {
        assert!(
            !partition_exists(&app.pool, &format!("{table}_p{}", day.format("%Y%m%d"))).await,
            "{table} of the day dropped"
        );
    }
}

/// Over a month of day partitions the planner's estimates pass PostgreSQL's JIT thresholds,
/// and compiling a queue statement took seconds where running it took milliseconds
/// (bench/RESULTS.md): mailgate's connections run without JIT, whatever the server's default.
#[tokio::test]
async fn mailgate_connections_run_without_jit() {
    let url = create_database().await;
    let server_default: String = sqlx::query_scalar("SHOW jit")
        .fetch_one(&PgPool::connect(&url).await.unwrap())
        .await
        .unwrap();
    let pool = mailgate::store::connect(&url, 2).await.unwrap();
    // Every connection of the pool, not only the first.
    let (a, b) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
    for mut conn in [a, b] {
        let jit: String = sqlx::query_scalar("SHOW jit")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(jit, "off", "the server's default is {server_default}");
    }
}
