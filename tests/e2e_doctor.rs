//! `deskgate doctor` against the real Dovecot and Postfix: every check passes
//! on a good deployment, and a wrong password, a missing folder or an SMTP
//! server that is down each fail in plain words, with a non-zero exit.

mod common;

use common::*;

fn doctor(desk: &Deskgate) -> (bool, String) {
    let out = desk.cli(&["doctor"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn doctor_passes_a_good_deployment_and_names_what_is_wrong() {
    let servers = MailServers::start(&[HELP]);
    let opts = DeskOptions {
        after_processing: "after_processing = \"move\"\nmove_to = \"Done\"",
        ..Default::default()
    };
    let mut desk = Deskgate::new(&servers, opts);

    let (ok, text) = doctor(&desk);
    assert!(ok, "{text}");
    for want in [
        "ok    config:",
        "ok    templates: all 17 render",
        "ok    mailbox help: logged in to 127.0.0.1:",
        "ok    mailbox help: folder \"INBOX\" holds 0 mail(s)",
        "warn  mailbox help: move target \"Done\" does not exist yet",
        "ok    smtp: 127.0.0.1:",
        "all checks passed",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(
        !text.contains("Error {") && !text.contains("Some("),
        "debug text leaked:\n{text}"
    );

    // While the daemon runs, the store check asks it instead of opening it.
    desk.start();
    let (ok, text) = doctor(&desk);
    assert!(ok, "{text}");
    assert!(
        text.contains("ok    store: in use by the running daemon"),
        "{text}"
    );
    assert!(desk.stop());

    // A wrong password fails the mailbox check, in plain words.
    std::fs::write(desk.dir.path().join("imap-password"), "wrong\n").unwrap();
    let (ok, text) = doctor(&desk);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "FAIL  mailbox help: cannot log in to 127.0.0.1 as help@desk.test: \
             the server refused the user name or password (it said: [AUTHENTICATIONFAILED]"
        ),
        "{text}"
    );
    assert!(text.contains("1 check(s) failed"), "{text}");
    std::fs::write(desk.dir.path().join("imap-password"), "secret\n").unwrap();

    // SMTP down: the SMTP check fails, nothing else does.
    servers.smtp_stop();
    let (ok, text) = doctor(&desk);
    servers.smtp_start();
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAIL  smtp: cannot connect to SMTP server 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("1 check(s) failed"), "{text}");
}

#[test]
fn doctor_fails_a_folder_that_does_not_exist() {
    let servers = MailServers::start(&[HELP]);
    let desk = Deskgate::new(
        &servers,
        DeskOptions {
            folder: "Nowhere",
            ..Default::default()
        },
    );
    let (ok, text) = doctor(&desk);
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAIL  mailbox help: folder \"Nowhere\" cannot be opened"),
        "{text}"
    );
}
