//! TLS against the real Dovecot and Postfix serving a certificate from a CA
//! the test makes: implicit TLS and STARTTLS, with the CA given as `ca_file`
//! and with a pin; a certificate from another CA, or not the pinned one, is
//! refused with a clear error; `tls_verify = false` needs `allow_insecure`.

mod common;

use std::time::Duration;

use common::tls::TlsServers;
use common::*;

const T: Duration = Duration::from_secs(60);

fn quoted(p: &std::path::Path) -> String {
    toml_str(&p.display().to_string())
}

/// A desk reaching both servers over TLS: `mode` is "implicit" or "starttls".
fn tls_config(
    s: &TlsServers,
    mode: &str,
    ca: &std::path::Path,
    extra: &[(&str, String)],
) -> String {
    let (imap, smtp) = match mode {
        "implicit" => (s.imaps_port, s.smtps_port),
        _ => (s.servers.imap_port, s.servers.smtp_port),
    };
    let mut c = TestConfig::new()
        .mailbox("tls", &toml_str(mode))
        .mailbox("port", &imap.to_string())
        .mailbox("ca_file", &quoted(ca))
        .mailbox("timeout", "\"10s\"")
        .smtp("tls", &toml_str(mode))
        .smtp("port", &smtp.to_string())
        .smtp("ca_file", &quoted(ca))
        .smtp("timeout", "\"10s\"")
        .outbox("retry_initial", "\"1s\"")
        .outbox("retry_max", "\"2s\"");
    for (k, v) in extra {
        c = c.mailbox(k, v).smtp(k, v);
    }
    c.render()
}

async fn ticket_and_ack_over_tls(s: &TlsServers, config: &str) {
    let mut desk = Deskgate::with_config(&s.servers, config);
    desk.start();
    let m = mail(
        ALICE,
        HELP,
        "Printer on fire",
        "tls-1@customer.test",
        "",
        "help",
    );
    smtp_send(s.servers.smtp_port, ALICE, &[HELP], &m).await;
    desk.wait_tickets(1, T);
    let acks = s.servers.imap().wait_for(ALICE, "INBOX", 1, T).await;
    assert!(subject(&acks[0]).contains("[#"), "{}", subject(&acks[0]));
    assert!(desk.stop());
}

#[tokio::test]
async fn implicit_tls_with_an_internal_ca_and_a_pin_carries_mail_both_ways() {
    let s = TlsServers::start(&[HELP, ALICE]);
    let config = tls_config(&s, "implicit", &s.ca, &[("tls_pin", toml_str(&s.pin))]);
    ticket_and_ack_over_tls(&s, &config).await;
}

#[tokio::test]
async fn starttls_with_an_internal_ca_carries_mail_both_ways() {
    let s = TlsServers::start(&[HELP, ALICE]);
    let config = tls_config(&s, "starttls", &s.ca, &[]);
    ticket_and_ack_over_tls(&s, &config).await;
}

fn doctor(s: &TlsServers, config: &str) -> (bool, String) {
    let desk = Deskgate::with_config(&s.servers, config);
    let out = desk.cli(&["doctor"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_certificate_from_another_ca_or_not_the_pinned_one_is_refused_in_plain_words() {
    let s = TlsServers::start(&[HELP, ALICE]);
    for mode in ["implicit", "starttls"] {
        let (ok, text) = doctor(&s, &tls_config(&s, mode, &s.ca, &[]));
        assert!(ok, "{mode}: the right CA passes:\n{text}");

        let (ok, text) = doctor(&s, &tls_config(&s, mode, &s.wrong_ca, &[]));
        assert!(!ok, "{text}");
        assert!(
            text.contains(": cannot set up TLS with 127.0.0.1")
                && text.contains(
                    "not signed by a CA this machine trusts; for an internal CA set ca_file"
                ),
            "{mode}:\n{text}"
        );
        assert!(
            text.contains("FAIL  smtp: cannot start TLS with SMTP server 127.0.0.1"),
            "{mode}:\n{text}"
        );

        let wrong_pin = toml_str(&format!("sha256:{}", "00".repeat(32)));
        let (ok, text) = doctor(&s, &tls_config(&s, mode, &s.ca, &[("tls_pin", wrong_pin)]));
        assert!(!ok, "{text}");
        assert!(
            text.contains(": cannot set up TLS with 127.0.0.1: the server's certificate (sha256:")
                && text.contains("is not the one tls_pin names"),
            "{mode}:\n{text}"
        );
        assert!(
            text.contains("FAIL  smtp: cannot trust SMTP server"),
            "{mode}:\n{text}"
        );
    }
}

#[test]
fn tls_verify_false_needs_allow_insecure_is_warned_about_and_still_checks_a_pin() {
    let s = TlsServers::start(&[HELP, ALICE]);
    let off = [("tls_verify", "false".to_string())];
    let (ok, text) = doctor(&s, &tls_config(&s, "implicit", &s.wrong_ca, &off));
    assert!(!ok);
    assert!(
        text.contains("mailbox[0].tls_verify")
            && text.contains("allowed only together with allow_insecure = true"),
        "{text}"
    );

    let insecure = [
        ("tls_verify", "false".to_string()),
        ("allow_insecure", "true".to_string()),
    ];
    let (ok, text) = doctor(&s, &tls_config(&s, "implicit", &s.wrong_ca, &insecure));
    assert!(ok, "verification off: any certificate passes:\n{text}");
    assert!(
        text.contains("warn  config: mailbox[0].tls_verify = false: the certificate of 127.0.0.1 is not checked"),
        "{text}"
    );

    let pinned_wrong = [
        ("tls_verify", "false".to_string()),
        ("allow_insecure", "true".to_string()),
        ("tls_pin", toml_str(&format!("sha256:{}", "11".repeat(32)))),
    ];
    let (ok, text) = doctor(&s, &tls_config(&s, "implicit", &s.wrong_ca, &pinned_wrong));
    assert!(!ok, "the pin still counts:\n{text}");
    assert!(text.contains("is not the one tls_pin names"), "{text}");
}
