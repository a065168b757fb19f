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
