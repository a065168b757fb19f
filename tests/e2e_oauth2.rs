//! OAuth2 logins against the real Dovecot and Postfix (tokens checked by
//! Dovecot's oauth2 passdb, locally, with a key the test servers make):
//! IMAP with the token from `oauth2_token_command`, SMTP AUTH XOAUTH2 with
//! the same; a refused (expired) token and a token near its expiry are
//! fetched again; a failing command is explained; the token never reaches
//! even a trace log.

mod common;

use std::time::Duration;

use base64::Engine;
use common::oauth2::*;
use common::*;

const T: Duration = Duration::from_secs(60);

/// The desk logging in to IMAP with `command`, and to SMTP too if `smtp`.
fn config(command: &std::path::Path, smtp: bool) -> String {
    let argv = format!("[{}]", toml_str(&command.display().to_string()));
    let mut c = DeskOptions::default()
        .config()
        .mailbox("oauth2_token_command", &argv);
    if smtp {
        c = c
            .smtp("user", &toml_str(HELP))
            .smtp("oauth2_token_command", &argv);
    }
    without_password(&c.render())
}

async fn ticket_from_alice(s: &OAuth2Servers, desk: &Deskgate, n: usize, id: &str) {
    let m = mail(ALICE, HELP, "Printer on fire", id, "", "help");
    smtp_send(s.servers.smtp_port, ALICE, &[HELP], &m).await;
    desk.wait_tickets(n, T);
}

#[tokio::test]
async fn tokens_log_in_to_imap_and_smtp_and_never_reach_the_log() {
    let s = OAuth2Servers::start(&[HELP, ALICE]);
    let tokens = tempfile::tempdir().unwrap();
    let token = s.token(HELP, 3600);
    let command = token_command(tokens.path(), std::slice::from_ref(&token));
    let mut desk = Deskgate::with_config(&s.servers, &config(&command, true));
    desk.set_env("DESKGATE_LOG", "trace");
    desk.start();
    ticket_from_alice(&s, &desk, 1, "oauth-1@customer.test").await;
    let acks = s.servers.imap().wait_for(ALICE, "INBOX", 1, T).await;
    assert!(subject(&acks[0]).contains("[#"), "{}", subject(&acks[0]));
    assert!(desk.stop());

    // Dovecot offers OAUTHBEARER, so IMAP used it; SMTP has XOAUTH2 only.
    let dovecot = s.dovecot_log();
    assert!(
        dovecot.contains("user=<help@desk.test>, method=OAUTHBEARER"),
        "{dovecot}"
    );
    let postfix = s.postfix_log();
    assert!(
        postfix.contains("sasl_method=XOAUTH2, sasl_username=help@desk.test"),
        "{postfix}"
    );
    let logs = desk.logs();
    assert!(logs.contains("TRACE"), "not a trace log:\n{logs}");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let signature = token.rsplit('.').next().unwrap();
    for secret in [
        token.clone(),
        signature.to_string(),
        b64(&format!("user={HELP}\x01auth=Bearer {token}\x01\x01")),
    ] {
        assert!(!logs.contains(&secret), "the log shows the token");
    }
    // One run: the cached token served IMAP and SMTP.
    assert_eq!(runs(tokens.path()), 1);
}

#[tokio::test]
async fn an_expired_token_is_fetched_again_and_the_login_succeeds() {
    let s = OAuth2Servers::start(&[HELP, ALICE]);
    let tokens = tempfile::tempdir().unwrap();
    let command = token_command(tokens.path(), &[s.token(HELP, -600), s.token(HELP, 3600)]);
    let mut desk = Deskgate::with_config(&s.servers, &config(&command, false));
    desk.start();
    ticket_from_alice(&s, &desk, 1, "oauth-2@customer.test").await;
    assert_eq!(runs(tokens.path()), 2);
    assert!(
        desk.logs()
            .contains("refused the OAuth2 token; fetching a fresh one"),
        "{}",
        desk.logs()
    );
    assert!(desk.stop());
}

#[tokio::test]
async fn a_refused_smtp_token_is_fetched_again_and_the_ack_goes_out() {
    let s = OAuth2Servers::start(&[HELP, ALICE]);
    let (imap_tokens, smtp_tokens) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let imap_command = token_command(imap_tokens.path(), &[s.token(HELP, 3600)]);
    let smtp_command = token_command(
        smtp_tokens.path(),
        &[s.token(HELP, -600), s.token(HELP, 3600)],
    );
    let argv = |p: &std::path::Path| format!("[{}]", toml_str(&p.display().to_string()));
    let text = DeskOptions::default()
        .config()
        .mailbox("oauth2_token_command", &argv(&imap_command))
        .smtp("user", &toml_str(HELP))
        .smtp("oauth2_token_command", &argv(&smtp_command))
        .render();
    let mut desk = Deskgate::with_config(&s.servers, &without_password(&text));
    desk.start();
    ticket_from_alice(&s, &desk, 1, "oauth-5@customer.test").await;
    s.servers.imap().wait_for(ALICE, "INBOX", 1, T).await;
    assert_eq!(runs(smtp_tokens.path()), 2);
    // Within the same connect, not by the outbox trying again later.
    let logs = desk.logs();
    assert!(
        logs.contains("the SMTP server refused the OAuth2 token; fetching a fresh one"),
        "{logs}"
    );
    assert!(!logs.contains("cannot log in to SMTP server"), "{logs}");
    assert!(desk.stop());
}

#[tokio::test]
async fn a_token_near_its_expiry_is_replaced_before_the_next_login() {
    let s = OAuth2Servers::start(&[HELP, ALICE]);
    let tokens = tempfile::tempdir().unwrap();
    // Valid for 30 s: good for the first login (a fresh token is always
    // tried), but within the minute's margin of its expiry at the next.
    let command = token_command(tokens.path(), &[s.token(HELP, 30), s.token(HELP, 3600)]);
    let mut desk = Deskgate::with_config(&s.servers, &config(&command, false));
    desk.start();
    ticket_from_alice(&s, &desk, 1, "oauth-3@customer.test").await;
    assert_eq!(runs(tokens.path()), 1);
    s.servers.kick(HELP);
    ticket_from_alice(&s, &desk, 2, "oauth-4@customer.test").await;
    assert_eq!(runs(tokens.path()), 2);
    assert!(
        !desk.logs().contains("refused the OAuth2 token"),
        "{}",
        desk.logs()
    );
    assert!(desk.stop());
}

#[tokio::test]
async fn a_failing_token_command_is_explained_in_plain_words() {
    let s = OAuth2Servers::start(&[HELP, ALICE]);
    let tokens = tempfile::tempdir().unwrap();
    let command = tokens.path().join("get-token");
    std::fs::write(
        &command,
        "#!/bin/sh\necho 'AADSTS7000215: Invalid client secret provided.' >&2\nexit 1\n",
    )
    .unwrap();
    set_executable(&command);
    let mut desk = Deskgate::with_config(&s.servers, &config(&command, false));
    desk.start();
    desk.wait_log(
        &format!(
            "cannot log in to 127.0.0.1 as help@desk.test: cannot get an OAuth2 token: \
             the token command {} failed (exit status 1); it said: \
             AADSTS7000215: Invalid client secret provided.",
            command.display()
        ),
        T,
    );
    assert!(desk.stop());
}

#[tokio::test]
async fn a_token_file_logs_in_too() {
    let s = OAuth2Servers::start(&[HELP, ALICE]);
    let tokens = tempfile::tempdir().unwrap();
    let file = tokens.path().join("token");
    std::fs::write(&file, format!("{}\n", s.token(HELP, 3600))).unwrap();
    let text = DeskOptions::default()
        .config()
        .mailbox("oauth2_token_file", &toml_str(&file.display().to_string()))
        .render();
    let mut desk = Deskgate::with_config(&s.servers, &without_password(&text));
    desk.start();
    ticket_from_alice(&s, &desk, 1, "oauth-6@customer.test").await;
    assert!(s
        .dovecot_log()
        .contains("user=<help@desk.test>, method=OAUTHBEARER"));
    assert!(desk.stop());
}

#[test]
fn doctor_logs_in_with_the_token_and_says_why_a_bad_one_fails() {
    let s = OAuth2Servers::start(&[HELP, ALICE]);
    let tokens = tempfile::tempdir().unwrap();
    let doctor = |command: &std::path::Path| {
        let desk = Deskgate::with_config(&s.servers, &config(command, true));
        let out = desk.cli(&["doctor"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let good = token_command(tokens.path(), &[s.token(HELP, 3600)]);
    let (ok, text) = doctor(&good);
    assert!(ok, "{text}");
    assert!(text.contains("answers, logged in (nothing sent)"), "{text}");

    let other = tempfile::tempdir().unwrap();
    let wrong_user = token_command(other.path(), &[s.token(ALICE, 3600)]);
    let (ok, text) = doctor(&wrong_user);
    assert!(!ok, "{text}");
    assert!(
        text.contains("cannot log in to 127.0.0.1 as help@desk.test: the server refused the OAuth2 token, a freshly fetched one too"),
        "{text}"
    );
    assert!(!text.contains("Some(") && !text.contains("code:"), "{text}");
}
