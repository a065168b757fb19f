//! Support for end-to-end tests: real Dovecot and Postfix on loopback (started
//! by `tests/support/mailservers.sh` in a private temporary folder), a real
//! `deskgate` process, and small IMAP/SMTP client helpers to play requester.

#![allow(dead_code)]

pub mod config;
pub mod load;
pub mod oauth2;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use tokio::net::TcpStream;

pub use config::{toml_str, TestConfig};
#[allow(unused_imports)]
pub use load::{load_printer_mails, printer_body};

pub const HELP: &str = "help@desk.test";
pub const ALICE: &str = "alice@customer.test";
pub const CATCHALL: &str = "catchall@outside.test";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The KEY=value lines mailservers.sh wrote to DIR/env.
pub struct ServerEnv(String);

impl ServerEnv {
    pub fn get(&self, k: &str) -> String {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{k} missing in env file:\n{}", self.0))
    }

    pub fn port(&self, k: &str) -> u16 {
        self.get(k).parse().expect("a port")
    }
}

/// A private Dovecot + Postfix pair; stopped when dropped.
pub struct MailServers {
    pub dir: tempfile::TempDir,
    pub imap_port: u16,
    pub smtp_port: u16,
}

/// How the test servers differ from the plain pair (options of
/// `mailservers.sh start`, which documents them).
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// The exact capability list Dovecot advertises (e.g. without MOVE).
    pub imap_capability: Option<&'static str>,
    /// Postfix offers SMTP AUTH and relays outside only after a login.
    pub smtp_auth: bool,
}

impl MailServers {
    pub fn start(users: &[&str]) -> MailServers {
        MailServers::start_with(users, &ServerOptions::default())
    }

    pub fn start_with(users: &[&str], options: &ServerOptions) -> MailServers {
        MailServers::start_env(users, options, None).0
    }

    /// Starts the servers with `switch` (e.g. `MAILSERVERS_TLS`) set to 1,
    /// and returns what the script wrote to DIR/env besides the ports.
    pub fn start_env(
        users: &[&str],
        options: &ServerOptions,
        switch: Option<&str>,
    ) -> (MailServers, ServerEnv) {
        let mut flags = Vec::new();
        if let Some(caps) = options.imap_capability {
            flags.push(format!("--imap-capability={caps}"));
        }
        if options.smtp_auth {
            flags.push("--smtp-auth".to_string());
        }
        let dir = tempfile::Builder::new()
            .prefix("dg-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let script = repo().join("tests/support/mailservers.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir.path())
            .args(&flags)
            .args(users)
            .envs(switch.map(|v| (v, "1")))
            .output()
            .expect("run mailservers.sh");
        assert!(
            out.status.success(),
            "mailservers.sh start failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = ServerEnv(std::fs::read_to_string(dir.path().join("env")).expect("env file"));
        let servers = MailServers {
            imap_port: env.port("IMAP_PORT"),
            smtp_port: env.port("SMTP_PORT"),
            dir,
        };
        (servers, env)
    }

    fn script(&self, cmd: &str) {
        let out = Command::new("bash")
            .arg(repo().join("tests/support/mailservers.sh"))
            .arg(cmd)
            .arg(self.dir.path())
            .output()
            .expect("run mailservers.sh");
        assert!(
            out.status.success(),
            "mailservers.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn smtp_stop(&self) {
        self.script("smtp-stop");
    }

    pub fn smtp_start(&self) {
        self.script("smtp-start");
    }

    /// Postfix's log (e.g. to see who logged in with SMTP AUTH).
    pub fn postfix_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix/postfix.log")).unwrap_or_default()
    }

    pub fn dovecot_conf(&self) -> PathBuf {
        self.dir.path().join("dovecot/dovecot.conf")
    }

    /// Disconnects every IMAP session of `user`, as a server restart or network drop would.
    pub fn kick(&self, user: &str) {
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(self.dovecot_conf())
            .args(["kick", user])
            .output()
            .expect("doveadm kick");
        // doveadm kick exits non-zero when nobody was connected; callers only need the effect.
        let _ = out;
    }

    pub fn imap(&self) -> Imap {
        Imap {
            port: self.imap_port,
        }
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("tests/support/mailservers.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

pub type Session = async_imap::Session<TcpStream>;

/// A tiny IMAP client for playing requester and checking mailboxes.
#[derive(Clone, Copy)]
pub struct Imap {
    pub port: u16,
}

impl Imap {
    pub async fn login(&self, user: &str) -> Session {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect imap");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("greeting")
            .expect("greeting ok");
        client
            .login(user, "secret")
            .await
            .map_err(|(e, _)| e)
            .expect("login")
    }

    pub async fn append(&self, user: &str, folder: &str, raw: &[u8]) {
        let mut s = self.login(user).await;
        s.append(folder, None, None, raw).await.expect("append");
        s.logout().await.ok();
    }

    pub async fn append_many(&self, user: &str, folder: &str, mails: &[Vec<u8>]) {
        let mut s = self.login(user).await;
        for raw in mails {
            s.append(folder, None, None, raw).await.expect("append");
        }
        s.logout().await.ok();
    }

    /// Every mail in a folder (empty when the folder does not exist).
    pub async fn fetch_all(&self, user: &str, folder: &str) -> Vec<Vec<u8>> {
        let mut s = self.login(user).await;
        let Ok(mb) = s.examine(folder).await else {
            return Vec::new();
        };
        if mb.exists == 0 {
            s.logout().await.ok();
            return Vec::new();
        }
        let fetches: Vec<_> = s
            .fetch("1:*", "BODY.PEEK[]")
            .await
            .expect("fetch")
            .try_collect()
            .await
            .expect("fetch stream");
        let out = fetches
            .iter()
            .filter_map(|f| f.body().map(|b| b.to_vec()))
            .collect();
        s.logout().await.ok();
        out
    }

    pub async fn count(&self, user: &str, folder: &str) -> u32 {
        let mut s = self.login(user).await;
        let n = s.examine(folder).await.map(|m| m.exists).unwrap_or(0);
        s.logout().await.ok();
        n
    }

    /// Waits until `folder` holds at least `n` mails, and returns them.
    pub async fn wait_for(
        &self,
        user: &str,
        folder: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.fetch_all(user, folder).await;
            if mails.len() >= n {
                return mails;
            }
            if Instant::now() > deadline {
                panic!(
                    "{user}/{folder}: expected {n} mails, found {} after {timeout:?}",
                    mails.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Sends a raw mail through the test SMTP server.
pub async fn smtp_send(port: u16, from: &str, to: &[&str], raw: &[u8]) {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    let env = lettre::address::Envelope::new(
        Some(from.parse().unwrap()),
        to.iter().map(|a| a.parse().unwrap()).collect(),
    )
    .unwrap();
    t.send_raw(&env, raw).await.expect("smtp send");
}

/// A plain mail as a requester's client would write it.
pub fn mail(
    from: &str,
    to: &str,
    subject: &str,
    message_id: &str,
    extra_headers: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n{extra_headers}\r\n{body}\r\n"
    )
    .into_bytes()
}

/// `n` requests, one per outside sender (`user{i}@outside.example`), each
/// with its own Message-ID `{tag}{i}@outside.example`: a burst of new tickets.
pub fn burst(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            mail(
                &format!("user{i}@outside.example"),
                HELP,
                &format!("Request {i}"),
                &format!("{tag}{i}@outside.example"),
                "",
                "please help",
            )
        })
        .collect()
}

/// A number from the environment (benchmarks' knobs), or the default.
/// Runs `f` and says how long it took (for the benchmarks).
pub fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// A duration in milliseconds, for benchmark tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse(raw)?;
    let value = parsed
        .headers_raw()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string());
    value
}

pub fn subject(raw: &[u8]) -> String {
    deskgate::mail::parse::parse(raw)
        .map(|m| m.subject)
        .unwrap_or_default()
}

pub fn message_id(raw: &[u8]) -> Option<String> {
    deskgate::mail::parse::parse(raw).ok()?.message_id
}

/// Options for a test's deskgate config.
#[derive(Clone)]
pub struct DeskOptions {
    pub after_processing: &'static str,
    pub batch_size: u32,
    pub idle: bool,
    pub poll_interval: &'static str,
    pub folder: &'static str,
    pub extra_outbox: &'static str,
    /// Appended to the config file (e.g. a `[limits]` table).
    pub extra: &'static str,
    /// The help address, also the IMAP login of its mailbox.
    pub address: &'static str,
    /// Extra lines for the `[desk]` table.
    pub desk_extra: &'static str,
    /// `DESKGATE_LOG`: tests want every mail's debug line; the benchmark
    /// measures the daemon as deployed (`info`).
    pub log: &'static str,
}

impl Default for DeskOptions {
    fn default() -> Self {
        DeskOptions {
            after_processing: "after_processing = \"seen\"",
            batch_size: 500,
            idle: true,
            poll_interval: "1s",
            folder: "INBOX",
            extra_outbox: "retry_initial = \"1s\"\nretry_max = \"2s\"",
            extra: "",
            address: HELP,
            log: "info,deskgate=debug",
            desk_extra: "",
        }
    }
}

impl DeskOptions {
    /// The config these options describe: the desk "Test Help Desk" at
    /// `address`, with its one mailbox "help".
    pub fn config(&self) -> TestConfig {
        let c = TestConfig::new()
            .desk("address", &toml_str(self.address))
            .desk("name", "\"Test Help Desk\"");
        let c = set_lines(c, self.desk_extra, TestConfig::desk)
            .mailbox("name", "\"help\"")
            .mailbox("user", &toml_str(self.address))
            .mailbox("folder", &toml_str(self.folder));
        let c = set_lines(c, self.after_processing, TestConfig::mailbox)
            .mailbox("idle", &self.idle.to_string())
            .mailbox("poll_interval", &toml_str(self.poll_interval))
            .mailbox("timeout", "\"10s\"")
            .mailbox("batch_size", &self.batch_size.to_string())
            .smtp("timeout", "\"10s\"");
        set_lines(c, self.extra_outbox, TestConfig::outbox).table(self.extra)
    }
}

/// Sets the `key = value` lines of `raw` with `set` (e.g. [`TestConfig::desk`]).
fn set_lines(
    mut config: TestConfig,
    raw: &str,
    set: fn(TestConfig, &str, &str) -> TestConfig,
) -> TestConfig {
    for line in raw.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a `key = value` line: {line:?}"));
        config = set(config, key.trim(), value.trim());
    }
    config
}

/// The desk the team tests start from: "Test Desk", whose one mailbox "help"
/// feeds team "it" (which the test defines), with quick outbox retries.
pub fn team_desk() -> TestConfig {
    TestConfig::new()
        .desk("name", "\"Test Desk\"")
        .mailbox("name", "\"help\"")
        .mailbox("default_team", "\"it\"")
        .mailbox("timeout", "\"10s\"")
        .outbox("retry_initial", "\"1s\"")
        .outbox("retry_max", "\"2s\"")
}

/// A deskgate process with its own config and state folder.
pub struct Deskgate {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    child: Option<Child>,
    starts: u32,
    log: &'static str,
    /// Extra environment for the daemon (e.g. `NOTIFY_SOCKET`).
    env: Vec<(String, String)>,
}

impl Deskgate {
    pub fn new(servers: &MailServers, opts: DeskOptions) -> Deskgate {
        let mut desk = Deskgate::with_config(servers, &opts.config().render());
        desk.log = opts.log;
        desk
    }

    /// A deskgate with a config of its own: `{imap}`, `{smtp}` and
    /// `{templates}` in `text` are replaced; every mailbox password is "secret"
    /// (use `password_file = "imap-password"`).
    pub fn with_config(servers: &MailServers, text: &str) -> Deskgate {
        let dir = tempfile::Builder::new()
            .prefix("dgd-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        std::fs::write(dir.path().join("imap-password"), "secret\n").unwrap();
        let config = dir.path().join("deskgate.toml");
        Deskgate::write_config_at(&config, servers, text);
        Deskgate {
            dir,
            config,
            child: None,
            starts: 0,
            log: DeskOptions::default().log,
            env: Vec::new(),
        }
    }

    /// Rewrites the config file (for reload tests), with the same placeholders.
    pub fn rewrite_config(&self, servers: &MailServers, text: &str) {
        Deskgate::write_config_at(&self.config, servers, text);
    }

    fn write_config_at(path: &Path, servers: &MailServers, text: &str) {
        let text = config::fill(
            text,
            servers.imap_port,
            servers.smtp_port,
            &repo().join("templates"),
        );
        std::fs::write(path, text).unwrap();
    }

    /// Sends a signal (e.g. "HUP") to the running daemon.
    pub fn signal(&self, sig: &str) {
        let pid = self.pid().expect("running");
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
    }

    /// Waits until the current run's log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .contains(needle)
        {
            assert!(
                Instant::now() < deadline,
                "log never said {needle:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("deskgate-{}.log", self.starts))
    }

    /// The log file the next `start` writes (created early, a test can
    /// point `JOURNAL_STREAM` at it: `start` truncates, the inode stays).
    pub fn next_log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("deskgate-{}.log", self.starts + 1))
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.starts += 1;
        // A kill -9 leaves the socket file behind; only a fresh one means "up".
        let sock = self.dir.path().join("state/control.sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_deskgate"))
            .arg("-c")
            .arg(&self.config)
            .arg("run")
            .env("DESKGATE_LOG", self.log)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn deskgate");
        self.child = Some(child);
        // Ready when the control socket answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                Instant::now() < deadline,
                "deskgate did not start:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        let mut all = String::new();
        for i in 1..=self.starts {
            let p = self.dir.path().join(format!("deskgate-{i}.log"));
            all.push_str(&std::fs::read_to_string(p).unwrap_or_default());
        }
        all
    }

    /// Sets `DESKGATE_LOG` for the next start (e.g. "trace").
    pub fn set_log(&mut self, log: &'static str) {
        self.log = log;
    }

    /// Sets an environment variable for the next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Waits for the daemon to exit by itself; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    /// SIGTERM, then wait; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .ok();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if Instant::now() > deadline {
                c.kill().ok();
                c.wait().ok();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_deskgate"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run deskgate cli")
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "deskgate {args:?} failed: {}\nlogs:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    pub fn tickets(&self) -> Vec<serde_json::Value> {
        self.json(&["tickets", "list", "--all", "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn ticket(&self, id: u64) -> serde_json::Value {
        self.json(&["tickets", "show", &id.to_string(), "--json"])
    }

    pub fn wait_tickets(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.tickets();
            if t.len() >= n {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} tickets, have {} after {timeout:?}\nlogs:\n{}",
                t.len(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn state(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Deskgate {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `f` until it returns true.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
