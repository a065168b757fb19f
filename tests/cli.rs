//! The command line without servers: config validation and the routing dry run.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn deskgate(config: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deskgate"))
        .arg("-c")
        .arg(fixtures().join("config").join(config))
        .args(args)
        .output()
        .expect("run deskgate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_config_accepts_the_routing_example() {
    let o = deskgate("routing.toml", &["check-config"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("ok (2 mailbox(es)"));
    // What the [trust] settings promise, in plain words.
    assert!(
        stdout(&o).contains("trust: agents prove their mail only by replying to a notification"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn check_config_names_file_line_rule_and_problem() {
    let o = deskgate("broken.toml", &["check-config"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("broken.toml:"), "{err}");
    assert!(
        err.contains("rule[1].when[0].regex: rule \"Newsletters\": invalid regex"),
        "{err}"
    );
    assert!(
        err.contains("rule[2].set.team: rule \"Legal requests\": unknown team \"sales\""),
        "{err}"
    );
    // Each problem has its own line number.
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("broken.toml:")).collect();
    assert!(lines.len() >= 2, "{err}");
}

#[test]
fn rules_test_explains_a_vip_mail() {
    let vip = fixtures().join("rules/vip.eml");
    let o = deskgate("routing.toml", &["rules", "test", vip.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(out.contains("1. \"VIP customers\": MATCHED"), "{out}");
    assert!(out.contains("dry run: nothing is stored or sent"), "{out}");
    assert!(
        out.contains("yes: from_domain equals \"bigcorp.com\""),
        "{out}"
    );
    assert!(out.contains("2. \"Newsletters\": did not match"), "{out}");
    assert!(out.contains("priority: urgent"), "{out}");
    assert!(out.contains("tags:     vip"), "{out}");
    assert!(out.contains("team:     it"), "mailbox default team: {out}");
    assert!(
        out.contains("--- acknowledgement to ceo@bigcorp.com ---"),
        "{out}"
    );
    assert!(
        out.contains("--- notification to alice@desk.test ---"),
        "{out}"
    );
    assert!(out.contains("Reply-To: \"Help Desk\" <help+1000."), "{out}");
}

#[test]
fn rules_test_shows_an_ignored_newsletter() {
    let mail = fixtures().join("rules/newsletter.eml");
    let o = deskgate("routing.toml", &["rules", "test", mail.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(out.contains("2. \"Newsletters\": MATCHED"), "{out}");
    assert!(out.contains("Outcome: Ignored"), "{out}");
    assert!(out.contains("Mails that would be sent: 0"), "{out}");
}

#[test]
fn rules_test_routes_legal_mail_with_an_attachment_to_its_assignee() {
    let mail = fixtures().join("rules/legal.eml");
    let o = deskgate(
        "routing.toml",
        &[
            "rules",
            "test",
            mail.to_str().unwrap(),
            "--mailbox",
            "legal",
        ],
    );
    let out = stdout(&o);
    assert!(out.contains("\"Legal requests\": MATCHED"), "{out}");
    assert!(out.contains("yes: has_attachments is true"), "{out}");
    assert!(out.contains("assignee: bob@desk.test"), "{out}");
    assert!(
        out.contains("--- notification to bob@desk.test ---"),
        "{out}"
    );
    assert!(!out.contains("notification to alice"), "{out}");
}

#[test]
fn rules_test_touches_no_store() {
    let mail = fixtures().join("rules/vip.eml");
    deskgate("routing.toml", &["rules", "test", mail.to_str().unwrap()]);
    assert!(
        !fixtures().join("config/state").exists(),
        "the dry run must not create the store"
    );
}

#[test]
fn the_example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(repo.join("config/deskgate.toml"))
        .unwrap()
        .replace(
            "/var/lib/deskgate",
            &dir.path().join("state").display().to_string(),
        )
        .replace(
            "/etc/deskgate/templates",
            &repo.join("templates").display().to_string(),
        )
        .replace(
            "password_file = \"/etc/deskgate/imap-password\"",
            "password_env = \"PATH\"",
        )
        .replace(
            "password_file = \"/etc/deskgate/smtp-password\"",
            "password_env = \"PATH\"",
        );
    let cfg = dir.path().join("deskgate.toml");
    std::fs::write(&cfg, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_deskgate"))
        .arg("-c")
        .arg(&cfg)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn rules_test_refuses_an_unknown_mailbox() {
    let mail = fixtures().join("rules/vip.eml");
    let o = deskgate(
        "routing.toml",
        &[
            "rules",
            "test",
            mail.to_str().unwrap(),
            "--mailbox",
            "nosuch",
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no mailbox named \"nosuch\"; configured: it, legal"),
        "{err}"
    );
}

/// A desk in `dir/<name>` with its config file, for commands on a store
/// without servers (nothing here connects: the mailbox is never fetched).
fn store_config(dir: &std::path::Path, name: &str, extra: &str) -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(dir.join("pw"), "x").unwrap();
    let text = format!(
        "[desk]\naddress = \"help@desk.test\"\nstorage = \"{}\"\ntemplates = \"{}\"\n\
         [[mailbox]]\nname = \"help\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nuser = \"help@desk.test\"\npassword_file = \"{}\"\n\
         [smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\n{extra}",
        dir.join(name).display(),
        repo.join("templates").display(),
        dir.join("pw").display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the CLI on a store this test process just closed: sled lets go of
/// its lock a moment after the last handle, so "locked" is retried briefly.
fn cli_on(config: &std::path::Path, args: &[&str]) -> Output {
    for _ in 0..100 {
        let o = Command::new(env!("CARGO_BIN_EXE_deskgate"))
            .arg("-c")
            .arg(config)
            .args(args)
            .output()
            .expect("run deskgate");
        if !String::from_utf8_lossy(&o.stderr).contains("another deskgate process") {
            return o;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the store stayed locked");
}

/// Ten days ago: three mails (one with an attachment) and a reply, filed by
/// the real engine, into the store of `config`.
fn ingest_desk(config: &std::path::Path) {
    use deskgate::engine::clock::ManualClock;
    let cfg = deskgate::config::Config::load(config).unwrap();
    let policy = deskgate::desk::policy::Policy::from_config(&cfg).unwrap();
    let start = chrono::Utc::now() - chrono::Duration::days(10);
    let store = deskgate::store::Store::open(&cfg.desk.storage).unwrap();
    let engine =
        deskgate::engine::Engine::new(store, std::sync::Arc::new(ManualClock::new(start)), policy);
    let attachment = "UERGIGJ5dGVzIG9mIHRoZSBpbnZvaWNl"; // "PDF bytes of the invoice"
    let mails = [
        "From: Ann <ann@outside.test>\r\nTo: help@desk.test\r\nSubject: VPN down\r\nMessage-ID: <a1@outside.test>\r\n\r\nThe VPN does not connect.\r\n".to_string(),
        format!("From: bob@outside.test\r\nTo: help@desk.test\r\nSubject: Invoice\r\nMessage-ID: <b1@outside.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nSee the invoice.\r\n--XX\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n--XX--\r\n"),
        "From: Ann <ann@outside.test>\r\nTo: help@desk.test\r\nSubject: Re: VPN down\r\nMessage-ID: <a2@outside.test>\r\nIn-Reply-To: <a1@outside.test>\r\n\r\nStill down.\r\n".to_string(),
    ];
    for m in &mails {
        engine.ingest(m.as_bytes(), "help").unwrap();
    }
    engine.store().flush_blocking().unwrap();
}

#[test]
fn export_then_import_into_an_empty_state_dir_gives_the_same_desk() {
    let dir = tempfile::tempdir().unwrap();
    let a = store_config(dir.path(), "a", "");
    let b = store_config(dir.path(), "b", "");
    let c = store_config(dir.path(), "c", "");
    ingest_desk(&a);
    let file = dir.path().join("desk.jsonl");
    let f = file.to_str().unwrap();
    let o = cli_on(&a, &["export", "--jsonl", f]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout(&o).contains("exported 2 tickets, 5 messages"),
        "{}",
        stdout(&o)
    );
    let o = cli_on(&b, &["import", "--jsonl", f]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("imported 2 tickets"), "{}", stdout(&o));

    // The filters read the imported store's list index.
    let o = cli_on(&b, &["tickets", "list", "--requester", "ANN@outside.test"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout(&o).contains("VPN down") && !stdout(&o).contains("Invoice"),
        "{}",
        stdout(&o)
    );
    let o = cli_on(&b, &["tickets", "list", "--since", "1d"]);
    assert!(stdout(&o).contains("0 ticket(s)"), "{}", stdout(&o));

    // Into a store that is not empty: refused, nothing changes.
    let o = cli_on(&b, &["import", "--jsonl", f]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));

    // A file cut short says so.
    let text = std::fs::read_to_string(&file).unwrap();
    let cut: Vec<&str> = text.lines().collect();
    let cut_file = dir.path().join("cut.jsonl");
    std::fs::write(&cut_file, cut[..cut.len() - 1].join("\n")).unwrap();
    let o = cli_on(&c, &["import", "--jsonl", cut_file.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cut short"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The same tickets, messages, events and attachments.
    let open = |cfg: &std::path::Path| {
        let storage = deskgate::config::Config::load(cfg).unwrap().desk.storage;
        for _ in 0..100 {
            match deskgate::store::Store::open(&storage) {
                Ok(s) => return s,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        panic!("cannot open {}", storage.display());
    };
    let (sa, sb) = (open(&a), open(&b));
    let ta: Vec<_> = sa.tickets().map(|t| t.unwrap()).collect();
    let tb: Vec<_> = sb.tickets().map(|t| t.unwrap()).collect();
    assert_eq!(ta.len(), 2);
    assert_eq!(ta, tb);
    let mut attachments = 0;
    for t in &ta {
        let ma = sa.messages(t.id).unwrap();
        assert_eq!(ma, sb.messages(t.id).unwrap());
        assert_eq!(sa.events(t.id).unwrap(), sb.events(t.id).unwrap());
        for att in ma.iter().flat_map(|m| &m.attachments) {
            assert_eq!(
                sb.blob(&att.sha256).unwrap().unwrap(),
                b"PDF bytes of the invoice"
            );
            attachments += 1;
        }
    }
    assert_eq!(attachments, 1);
    // Replies to imported mail thread; numbering goes on.
    assert_eq!(
        sb.ticket_of_message("a2@outside.test").unwrap(),
        Some(ta[0].id)
    );
    let next = sb.transact(|tx| tx.next_ticket_id(1000)).unwrap();
    assert_eq!(next, ta[1].id + 1);
}

#[test]
fn prune_removes_old_raw_mail_and_dedupe_keys_and_keeps_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let off = store_config(dir.path(), "d", "");
    let on = store_config(
        dir.path(),
        "d2",
        "[retention]\nraw_mail_after = \"2d\"\ndedupe_keys_after = \"2d\"\n",
    );
    ingest_desk(&off);
    let o = cli_on(&off, &["prune"]);
    assert!(stdout(&o).contains("nothing to prune"), "{}", stdout(&o));
    // The same store under the config with [retention].
    std::fs::rename(dir.path().join("d"), dir.path().join("d2")).unwrap();
    let o = cli_on(&on, &["prune", "--dry-run"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout(&o).starts_with("would remove 3 raw mail(s)"),
        "{}",
        stdout(&o)
    );
    let o = cli_on(&on, &["prune"]);
    assert!(
        stdout(&o).starts_with("removed 3 raw mail(s)"),
        "{}",
        stdout(&o)
    );
    let o = cli_on(&on, &["prune"]);
    assert!(
        stdout(&o).starts_with("removed 0 raw mail(s)") && stdout(&o).contains(" 0 dedupe"),
        "{}",
        stdout(&o)
    );
    let o = cli_on(&on, &["tickets", "show", "1000"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("Still down."), "{}", stdout(&o));
    let bad = store_config(dir.path(), "e", "[retention]\ndedupe_keys_after = \"1h\"\n");
    let o = cli_on(&bad, &["check-config"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("retention.dedupe_keys_after"));
}

#[test]
fn a_desk_time_zone_that_does_not_exist_is_refused_in_plain_words() {
    let config = fixtures().join("report/bad-timezone.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_deskgate"))
        .arg("-c")
        .arg(&config)
        .arg("check-config")
        .output()
        .expect("run deskgate");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("desk.timezone"), "{err}");
    assert!(err.contains("is not a time zone name"), "{err}");
    // The read commands say so too, before touching anything.
    let o = Command::new(env!("CARGO_BIN_EXE_deskgate"))
        .arg("-c")
        .arg(&config)
        .args(["report", "--last", "7d"])
        .output()
        .expect("run deskgate");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("\"Mars/Olympus\" is not a time zone name"),
        "{err}"
    );
}
