//! Every TCP socket mailgate opens to Postgres, Redis and the SMTP relay, and every SMTP
//! session it accepts, has `TCP_NODELAY`: a request written in two pieces (a query and its
//! Sync; over TLS two records) must not wait for the peer's delayed ACK (issue 29 §1).

use std::{net::SocketAddr, os::fd::BorrowedFd, time::Duration};

use redis::io::tcp::socket2::SockRef;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::support::{
    app::{TestApp, require_shared_redis},
    smtp_server::TestSmtpServer,
};

/// One TCP socket of this process: where it is bound, where it goes, and whether Nagle is off.
struct Socket {
    local: SocketAddr,
    peer: SocketAddr,
    nodelay: bool,
}

/// The connected TCP sockets this process holds now, read through its own descriptors.
fn tcp_sockets() -> Vec<Socket> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // A duplicate, so a descriptor closed by another test meanwhile cannot be reused
        // under us. SAFETY: `fd` was open a moment ago; if it closed, dup fails.
        let Ok(owned) = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned() else {
            continue;
        };
        let sock = SockRef::from(&owned);
        let (Ok(local), Ok(peer), Ok(nodelay)) =
            (sock.local_addr(), sock.peer_addr(), sock.tcp_nodelay())
        else {
            continue;
        };
        if let (Some(local), Some(peer)) = (local.as_socket(), peer.as_socket()) {
            found.push(Socket {
                local,
                peer,
                nodelay,
            });
        }
    }
    found
}

/// Which sockets are of one kind.
type Kind<'a> = dyn Fn(&Socket) -> bool + 'a;

fn port_of(url: &str) -> u16 {
    url::Url::parse(url).unwrap().port().unwrap()
}

#[tokio::test]
async fn every_database_redis_and_smtp_socket_has_tcp_nodelay() {
    let redis_port = port_of(&require_shared_redis());
    let smtp = TestSmtpServer::start().await;
    let app = TestApp::builder().relaying_to(&smtp).start().await;
    let pg_port = port_of(&app.database_url);
    let id = app
        .send_ok(
            &json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"}),
        )
        .await;
    app.wait_for_status(&id, &["delivered"], Duration::from_secs(20))
        .await;
    // An SMTP submission session, held open while the sockets are read.
    let listener = app.smtp_addr.expect("the SMTP listener is on");
    let mut client = tokio::net::TcpStream::connect(listener).await.unwrap();
    let mut greeting = [0u8; 3];
    client.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"220");

    let sockets = tcp_sockets();
    let kinds: [(&str, &Kind<'_>); 4] = [
        ("Postgres", &|s| s.peer.port() == pg_port),
        ("Redis", &|s| s.peer.port() == redis_port),
        ("SMTP relay", &|s| s.peer == smtp.addr),
        ("SMTP submission", &|s| s.local == listener),
    ];
    // Every kind is looked at before failing, so one run names them all.
    let mut wrong = Vec::new();
    for (kind, of_kind) in kinds {
        let all: Vec<&Socket> = sockets.iter().filter(|s| of_kind(s)).collect();
        let nagle: Vec<String> = all
            .iter()
            .filter(|s| !s.nodelay)
            .map(|s| format!("{} -> {}", s.local, s.peer))
            .collect();
        if all.is_empty() {
            wrong.push(format!("no {kind} socket open to look at"));
        } else if !nagle.is_empty() {
            wrong.push(format!(
                "{} of {} {kind} sockets have Nagle's algorithm on: {nagle:?}",
                nagle.len(),
                all.len()
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
