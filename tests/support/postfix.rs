//! A private Postfix for one test: its own configuration, queue and log under a temporary
//! directory, listening on 127.0.0.1, relaying by transport table to the test's servers.
//! It runs as root (Postfix's master needs it) and is stopped when dropped.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

pub struct Postfix {
    dir: PathBuf,
    pub addr: SocketAddr,
}

/// The master's services, none chrooted (a chroot would need copies of /etc files).
const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

impl Postfix {
    /// Starts Postfix as `hostname` on 127.0.0.1:`port`: mail for each `(domain, server)` of
    /// `routes` goes to that server, everything else to `default_next`.
    pub fn start(
        hostname: &str,
        port: u16,
        default_next: SocketAddr,
        routes: &[(&str, SocketAddr)],
    ) -> Postfix {
        let postfix = Command::new("postfix")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(e) = postfix {
            panic!("{}", super::missing_tool("postfix", "postfix", &e));
        }
        assert!(
            nix_is_root(),
            "the Postfix tests run a private Postfix, whose master must start as root"
        );
        let dir = std::env::temp_dir().join(format!(
            "mailgate-postfix-{}",
            uuid::Uuid::new_v4().simple()
        ));
        for sub in ["conf", "queue", "data"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // Postfix's own processes run as its mail owner and write here.
        let chown = Command::new("chown")
            .args(["postfix", dir.join("data").to_str().unwrap()])
            .status()
            .unwrap();
        assert!(chown.success(), "chown postfix failed");
        let routes: Vec<String> = routes
            .iter()
            .map(|(domain, addr)| format!("{domain}=smtp:[{}]:{}", addr.ip(), addr.port()))
            .collect();
        let d = dir.display();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
syslog_name = {name}
myhostname = {hostname}
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
default_transport = smtp:[{}]:{}
transport_maps = inline:{{{}}}
smtp_tls_security_level = none
alias_maps =
alias_database =
local_recipient_maps =
delay_warning_time = 0
",
            default_next.ip(),
            default_next.port(),
            routes.join(","),
        );
        std::fs::write(dir.join("conf/main.cf"), main_cf).unwrap();
        std::fs::write(
            dir.join("conf/master.cf"),
            format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER_CF}"),
        )
        .unwrap();
        let me = Postfix {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let out = Command::new("postfix")
            .arg("-c")
            .arg(me.dir.join("conf"))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postfix start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            me.log()
        );
        // Listening once the master has opened the port.
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(me.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "postfix did not listen:\n{}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    /// Its mail log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.dir.join("conf"))
            .arg("abort")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Give the master a moment to go, then leave nothing behind.
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
