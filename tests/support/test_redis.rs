//! A private `redis-server` on a free loopback port, for tests that stop, hang or restart
//! Redis without disturbing the tests sharing the machine's Redis.

use std::{process::Stdio, time::Duration};

use super::eventually;
use tokio::process::{Child, Command};

pub struct TestRedis {
    pub port: u16,
    child: Option<Child>,
}

impl TestRedis {
    pub async fn start() -> TestRedis {
        let port = super::free_port();
        let mut redis = TestRedis { port, child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (empty: nothing is saved).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed for these tests (scripts/test installs it)");
        self.child = Some(child);
        eventually("redis-server up", Duration::from_secs(10), async || {
            redis_ping(&self.url()).await.is_ok()
        })
        .await;
    }

    /// Kills it, as a crash or a network cut would look to mailgate.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// SIGSTOP / SIGCONT: a Redis that accepts connections and never answers.
    pub async fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().and_then(|c| c.id()).expect("running");
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }
}

/// A client for `url` with `TCP_NODELAY`, like mailgate's own (`tests/api/sockets.rs` checks
/// every Redis socket of the test process).
fn client(url: &str) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    redis::Client::open(info.set_tcp_settings(tcp))
}

pub async fn redis_ping(url: &str) -> redis::RedisResult<()> {
    let client = client(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async::<String>(&mut conn).await?;
    Ok(())
}

/// Whether `key` exists in the Redis at `url`.
pub async fn redis_exists(url: &str, key: &str) -> bool {
    let client = client(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(&mut conn)
        .await
        .unwrap()
        == 1
}
