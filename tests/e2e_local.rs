//! End to end, local access and honest service state: the control socket is
//! private, secrets stay out of the log, a dying task stops the daemon, and
//! systemd hears READY/STATUS/WATCHDOG over a real notify socket.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

fn socket(desk: &Deskgate) -> std::path::PathBuf {
    desk.state().join("state/control.sock")
}

#[tokio::test]
async fn trace_log_never_shows_the_password() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            log: "trace",
            ..DeskOptions::default()
        },
    );
    desk.start();
    desk.wait_log("connected", T);
    let m = mail(ALICE, HELP, "Printer", "p1@customer.test", "", "it jams");
    smtp_send(servers.smtp_port, ALICE, &[HELP], &m).await;
    desk.wait_tickets(1, T);
    assert!(desk.stop());
    let logs = desk.logs();
    assert!(logs.contains("TRACE"), "trace was not on:\n{logs}");
    // Every test mailbox's password is "secret".
    assert!(
        !logs.contains("secret"),
        "the password reached the log:\n{}",
        logs.lines()
            .filter(|l| l.contains("secret"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn control_socket_is_owner_only_whatever_the_umask() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    let mode = std::fs::metadata(socket(&desk))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {:o}", mode & 0o777);
    assert!(desk.stop());
}

#[test]
fn control_socket_answers_only_root_and_the_store_owner() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    // Open the way for another user, as a careless admin might; the daemon
    // must still refuse to answer that user.
    for p in [desk.state().to_path_buf(), desk.state().join("state")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&desk.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(socket(&desk), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_deskgate"))
        .arg("-c")
        .arg(&desk.config)
        .args(["tickets", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody was answered");
    assert!(err.contains("not allowed"), "{err}");
    // Root still is.
    assert!(desk.cli(&["tickets", "list"]).status.success());
    assert!(desk.stop());
}

#[test]
fn control_socket_bounds_concurrent_connections() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    // Connections that never send a query hold their slot.
    let idle: Vec<UnixStream> = (0..16)
        .map(|_| UnixStream::connect(socket(&desk)).unwrap())
        .collect();
    // Once the daemon has accepted them all (the machine may be busy), one
    // more is told it is busy.
    let deadline = Instant::now() + T;
    loop {
        let mut extra = UnixStream::connect(socket(&desk)).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        extra.write_all(b"{\"query\":\"stats\"}\n").unwrap();
        let mut answer = String::new();
        extra.read_to_string(&mut answer).unwrap();
        if answer.contains("busy") {
            break;
        }
        assert!(Instant::now() < deadline, "{answer}\n{}", desk.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(idle);
    // Freed slots serve again.
    let deadline = Instant::now() + T;
    while !desk.cli(&["stats"]).status.success() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(desk.stop());
}

#[test]
fn cli_refuses_to_open_another_users_store_unless_told() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    assert!(desk.stop());
    let state = desk.state().join("state");
    let st = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(st.success());
    let out = desk.cli(&["tickets", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "root opened nobody's store");
    assert!(err.contains("owned by uid 65534"), "{err}");
    let root_owned = |dir: &std::path::Path| {
        walk(dir)
            .into_iter()
            .filter(|p| std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).unwrap()) == 0)
            .collect::<Vec<_>>()
    };
    assert!(root_owned(&state).is_empty(), "{:?}", root_owned(&state));
    let forced = desk.cli(&["tickets", "list", "--any-user"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_task_that_dies_stops_the_daemon_with_failure() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            extra: "[timers]\ncheck_interval = \"100ms\"",
            ..DeskOptions::default()
        },
    );
    let trigger = desk.state().join("fault");
    desk.set_env("DESKGATE_TEST_FAULT", trigger.to_str().unwrap());
    desk.start();
    std::fs::write(&trigger, "timers").unwrap();
    let status = desk
        .wait_exit(T)
        .unwrap_or_else(|| panic!("still running:\n{}", desk.logs()));
    assert!(!status.success(), "exited with success");
    let logs = desk.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("ERROR") && l.contains("timers") && l.contains("task")),
        "{logs}"
    );
}

/// Reads notify datagrams until `want` returns true for one; returns all seen.
fn read_until(sock: &UnixDatagram, want: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = want(&msg);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
    panic!("never got the notification; saw {seen:?}");
}

#[test]
fn systemd_hears_ready_status_watchdog_and_stopping() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    let path = desk.state().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    desk.set_env("NOTIFY_SOCKET", path.to_str().unwrap());
    desk.set_env("WATCHDOG_USEC", "1000000");
    desk.start();
    let seen = read_until(&sock, |m| m.lines().any(|l| l == "READY=1"));
    // Ready only once the mailbox has logged in.
    assert!(desk.logs().contains("connected"), "{seen:?}");
    let ready = seen.last().unwrap();
    assert!(
        ready.contains("STATUS=1/1 mailboxes connected") && ready.contains("outbox 0 pending"),
        "{ready}"
    );
    // The watchdog is pinged at half of WATCHDOG_USEC, again and again.
    let start = Instant::now();
    read_until(&sock, |m| m.contains("WATCHDOG=1"));
    read_until(&sock, |m| m.contains("WATCHDOG=1"));
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(desk.stop());
    read_until(&sock, |m| m.contains("STOPPING=1"));
}

#[tokio::test]
async fn quarantine_show_is_terminal_safe_and_raw_is_exact() {
    let servers = MailServers::start(&[HELP]);
    let imap = servers.imap();
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    desk.start();
    // No From: quarantined. Its subject carries an escape sequence and a bidi override.
    let raw: &[u8] =
        b"Subject: hi \x1b]0;owned\x07 \xe2\x80\xae gpj.exe\r\nMessage-ID: <evil@x>\r\n\r\nbody \x1b[2J\r\n";
    imap.append(HELP, "INBOX", raw).await;
    let deadline = Instant::now() + T;
    let id = loop {
        let q = desk.json(&["quarantine", "list", "--json"]);
        if let Some(e) = q.as_array().and_then(|a| a.first()) {
            break e["id"].as_u64().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "never quarantined");
        std::thread::sleep(Duration::from_millis(100));
    };
    let shown = desk.cli(&["quarantine", "show", &id]);
    assert!(shown.status.success());
    let text = String::from_utf8(shown.stdout).unwrap();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202E}'),
        "{text:?}"
    );
    assert!(text.contains("\\u{1b}]0;owned"), "{text}");
    let exact = desk.cli(&["quarantine", "show", &id, "--raw"]);
    assert!(
        exact.status.success(),
        "{}",
        String::from_utf8_lossy(&exact.stderr)
    );
    assert_eq!(exact.stdout, raw);
    assert!(desk.stop());
}

#[test]
fn a_shared_password_file_is_warned_about_in_check_config_and_the_log() {
    let servers = MailServers::start(&[HELP]);
    let mut desk = Deskgate::new(&servers, DeskOptions::default());
    let pw = desk.state().join("imap-password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = desk.cli(&["check-config"]);
    assert!(out.status.success(), "a warning is not a refusal");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("mode 640") && err.contains("chmod 600"),
        "{err}"
    );
    desk.start();
    desk.wait_log("chmod 600", T);
    assert!(desk
        .logs()
        .lines()
        .any(|l| l.contains("WARN") && l.contains("mode 640")));
    assert!(desk.stop());
}

#[tokio::test]
async fn sigterm_under_load_ends_well_inside_the_stop_timeout() {
    let servers = MailServers::start(&[HELP]);
    let imap = servers.imap();
    let mut desk = Deskgate::new(
        &servers,
        DeskOptions {
            batch_size: 100,
            ..DeskOptions::default()
        },
    );
    let mails: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            mail(
                ALICE,
                HELP,
                &format!("Load {i}"),
                &format!("load{i}@customer.test"),
                "",
                "body",
            )
        })
        .collect();
    desk.start();
    imap.append_many(HELP, "INBOX", &mails).await;
    desk.wait_tickets(1, T);
    let start = Instant::now();
    assert!(desk.stop(), "did not stop cleanly:\n{}", desk.logs());
    let took = start.elapsed();
    eprintln!("SIGTERM under load: stopped in {took:?}");
    // systemd/deskgate.service: TimeoutStopSec=45.
    assert!(took < Duration::from_secs(35), "took {took:?}");
}

/// lettre logs every SMTP line it writes, `AUTH` with the password among
/// them, but only with its `tracing` feature: it must stay off.
#[test]
fn lettre_is_built_without_its_wire_tracing() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let lettre = manifest
        .lines()
        .find(|l| l.starts_with("lettre"))
        .expect("lettre dependency");
    assert!(lettre.contains("default-features = false"), "{lettre}");
    assert!(!lettre.contains("\"tracing\""), "{lettre}");
}
