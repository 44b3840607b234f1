//! Servers with TLS on, private to one test: a PostgreSQL cluster made with `initdb` (`ssl =
//! on`, the test CA's server certificate, a `clientcert=verify-full` role) and a
//! `redis-server` listening only on its `tls-port`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection};

use super::pki::{CLIENT_CN, Pki, s};
use crate::support::{eventually, free_port, missing_tool, within};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest Debian PostgreSQL server binaries (`initdb`, `postgres`).
fn postgres_bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: apt-get install postgresql (scripts/test installs it)"
        )
    })
}

/// `program` run as the `postgres` user when the tests run as root (`initdb` and `postgres`
/// refuse root). setpriv execs, so the child's pid is the server's.
fn as_postgres(program: &Path, root: bool) -> Command {
    if root {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl PrivatePostgres {
    /// A cluster in `pki`'s folder, TLS only: every TCP line in pg_hba.conf is `hostssl`,
    /// and role `mailgate_cert` must present a client certificate with its name.
    pub fn start(pki: &Pki) -> PrivatePostgres {
        let root = is_root();
        let bindir = postgres_bindir();
        let dir = pki.path("pg");
        let data = dir.join("data");
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        // The server reads its key only if it is private to the user it runs as.
        for (from, to) in [
            (&pki.server_cert, "server.pem"),
            (&pki.server_key, "server.key"),
            (&pki.ca, "ca.pem"),
        ] {
            std::fs::copy(from, dir.join(to)).unwrap();
        }
        run(Command::new("chmod").args(["600", &s(&dir.join("server.key"))]));
        if root {
            run(Command::new("chown").args(["-R", "postgres:postgres", &s(&dir)]));
        }
        run(as_postgres(&bindir.join("initdb"), root).args([
            "-D",
            &s(&data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "-N",
        ]));
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 hostssl all {CLIENT_CN} 127.0.0.1/32 trust clientcert=verify-full\n\
                 hostssl all all 127.0.0.1/32 trust\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
        let child = as_postgres(&bindir.join("postgres"), root)
            .args(["-D", &s(&data), "-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                &format!("unix_socket_directories={}", s(&dir.join("sock"))),
            ])
            .args(["-c", "ssl=on"])
            .args([
                "-c",
                &format!("ssl_cert_file={}", s(&dir.join("server.pem"))),
            ])
            .args([
                "-c",
                &format!("ssl_key_file={}", s(&dir.join("server.key"))),
            ])
            .args(["-c", &format!("ssl_ca_file={}", s(&dir.join("ca.pem")))])
            .args(["-c", "fsync=off", "-c", "max_connections=60"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}", missing_tool("postgres", "postgresql", &e)));
        PrivatePostgres { port, dir, child }
    }

    /// Waits until it takes TLS connections, then adds the client-certificate role.
    pub async fn ready(mut self) -> PrivatePostgres {
        let url = self.url("postgres", "sslmode=require");
        let connected = within(Duration::from_secs(30), async || {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("postgres.log"));
                panic!("postgres exited ({status}):\n{}", log.unwrap_or_default());
            }
            PgConnection::connect(&url).await.map_err(|e| e.to_string())
        })
        .await;
        let mut conn = connected.unwrap_or_else(|e| {
            panic!(
                "postgres did not come up: {}\n{}",
                e.unwrap_or_default(),
                self.log()
            )
        });
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {CLIENT_CN} LOGIN SUPERUSER"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        self
    }

    /// `postgres://USER@HOST:PORT/postgres?QUERY` on this cluster.
    pub fn url_at(&self, user: &str, host: &str, query: &str) -> String {
        format!("postgres://{user}@{host}:{}/postgres?{query}", self.port)
    }

    pub fn url(&self, user: &str, query: &str) -> String {
        self.url_at(user, "127.0.0.1", query)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Immediate shutdown: the postmaster takes its backends down with it.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a set-up command; a failure stops the test with its output.
fn run(cmd: &mut Command) {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{}", missing_tool(&program, "util-linux", &e)));
    assert!(
        out.status.success(),
        "{program} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `redis-server` speaking only TLS, on a free port.
pub struct TlsRedis {
    pub port: u16,
    child: Child,
}

impl TlsRedis {
    /// `client_certs`: `tls-auth-clients yes` (a client must present a certificate the CA
    /// signed) rather than `optional`.
    pub async fn start(pki: &Pki, client_certs: bool) -> TlsRedis {
        let port = free_port();
        let log_path = pki.path(&format!("redis-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--tls-cert-file", &s(&pki.server_cert)])
            .args(["--tls-key-file", &s(&pki.server_key)])
            .args(["--tls-ca-cert-file", &s(&pki.ca)])
            .args([
                "--tls-auth-clients",
                if client_certs { "yes" } else { "optional" },
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}", missing_tool("redis-server", "redis-server", &e)));
        let mut redis = TlsRedis { port, child };
        eventually("redis-server up", Duration::from_secs(10), async || {
            if let Ok(Some(status)) = redis.child.try_wait() {
                let out = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "redis-server exited ({status}); does this build support TLS (`redis-server --tls-port`)?\n{out}"
                );
            }
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        redis
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
