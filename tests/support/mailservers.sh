#!/usr/bin/env bash
# Private Dovecot (IMAP + LMTP) and Postfix (SMTP) on 127.0.0.1 for deskgate's
# integration tests. Everything (config, logs, sockets, Maildirs, queue) lives
# in DIR, so several instances can run side by side. Needs root (the Postfix
# master must run as root) and the packages from .ci/install-mail-servers.
#
#   mailservers.sh start DIR [OPTION ...] USER@DOMAIN [USER@DOMAIN ...] [ghost:USER@DOMAIN ...]
#   mailservers.sh stop DIR
#   mailservers.sh smtp-stop DIR
#   mailservers.sh smtp-start DIR
#
# `start` writes DIR/env (KEY=value lines): IMAP_PORT, SMTP_PORT, LMTP_SOCKET,
# DOVECOT_CONF, POSTFIX_CONF_DIR, MAIL_ROOT, CATCHALL. Every user's password is
# "secret"; the IMAP login is the full address. Mail to any domain that is not
# one of the users' domains goes to the IMAP user CATCHALL, never off the box.
# A `ghost:` address is accepted by Postfix but unknown to Dovecot: delivery
# fails after acceptance, so Postfix sends a real bounce (DSN) to the sender.
# An `alias:FROM@DOMAIN=USER@DOMAIN` is a Postfix virtual alias: mail to FROM
# (and FROM+tag) lands in USER's INBOX (as USER+tag), with Delivered-To USER;
# FROM's domain must be one of the users' domains.
#
# MAILSERVERS_TLS=1 adds TLS with a CA made for the run (see tls.sh): STARTTLS
# on both ports, implicit TLS on IMAPS_PORT and SMTPS_PORT.
#
# Options of `start` (before the users):
#
#   --imap-capability="IMAP4rev1 IDLE ..."
#       Dovecot advertises exactly this capability list after login
#       (imap_capability), e.g. without MOVE or UIDPLUS, to test a client's
#       fallbacks against a server that lacks an extension. Dovecot still
#       understands the commands; only what it announces changes.
#   --smtp-auth
#       Postfix offers SMTP AUTH (PLAIN and LOGIN), checked by Dovecot's auth
#       service over a unix socket (SASL_SOCKET in DIR/env; Postfix's
#       smtpd_sasl_type = dovecot). The logins are the IMAP users' (password
#       "secret"). Relaying to outside domains then needs a login (no more
#       permit_mynetworks), so a client that fails to authenticate cannot send
#       its replies; mail to the users' own domains is still accepted without
#       one, so tests can keep playing requester. A new mechanism (e.g.
#       XOAUTH2 for OAuth2) is a matter of Dovecot's auth_mechanisms and a
#       passdb that checks tokens, behind the same socket.
# MAILSERVERS_OAUTH2=1 adds OAuth2 (see oauth2.sh): IMAP XOAUTH2/OAUTHBEARER
# and SMTP AUTH, tokens checked against a key made for the run (OAUTH2_KEY).
set -euo pipefail
# shellcheck source=tests/support/tls.sh
source "$(dirname "${BASH_SOURCE[0]}")/tls.sh"
# shellcheck source=tests/support/oauth2.sh
source "$(dirname "${BASH_SOURCE[0]}")/oauth2.sh"

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH}"

readonly CATCHALL="catchall@outside.test"
readonly PASSWORD="secret"
readonly MAIL_USER="dgmail" # unprivileged owner of all Maildirs
readonly WAIT_SECS=15

die() {
    echo "mailservers.sh: $*" >&2
    exit 1
}

usage() {
    cat >&2 <<'USAGE'
usage: mailservers.sh start DIR [--imap-capability=LIST] [--smtp-auth]
                           USER@DOMAIN [USER@DOMAIN ...] [ghost:USER@DOMAIN ...]
       mailservers.sh stop DIR
       mailservers.sh smtp-stop DIR
       mailservers.sh smtp-start DIR
USAGE
    exit 2
}

# --- layout ---------------------------------------------------------------

set_paths() {
    local dir="$1"
    # Values go into DIR/env and the configs unquoted; unix socket paths are
    # limited to ~107 bytes and Dovecot's deepest socket adds ~40.
    [[ "$dir" =~ ^/[A-Za-z0-9._/-]+$ ]] ||
        die "DIR must be an absolute path of [A-Za-z0-9._/-] only: $dir"
    ((${#dir} <= 60)) || die "DIR is too long for unix sockets (max 60 chars): $dir"
    D="$dir"
    DV="$D/dovecot"
    DV_CONF="$DV/dovecot.conf"
    DV_RUN="$DV/run" # base_dir: sockets, master.pid
    DV_LOG="$DV/dovecot.log"
    DV_STARTUP_LOG="$DV/startup.log"
    LMTP_SOCKET="$DV_RUN/lmtp"
    SASL_SOCKET="$DV_RUN/smtp-auth"
    PF="$D/postfix"
    PF_CONF="$PF/conf"
    PF_QUEUE="$PF/queue"
    PF_LOG="$PF/postfix.log"
    PF_PID="$PF_QUEUE/pid/master.pid"
    MAIL_ROOT="$D/mail"
    ENV_FILE="$D/env"
}

abs_dir() {
    local dir="$1"
    case "$dir" in
    /*) ;;
    *) dir="$PWD/$dir" ;;
    esac
    # Strip trailing slashes (but keep "/").
    while [[ "$dir" == */ && "$dir" != / ]]; do dir="${dir%/}"; done
    printf '%s\n' "$dir"
}

env_value() { # KEY -> value from DIR/env
    sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1
}

# --- processes ------------------------------------------------------------

# True if the process exists and is not a zombie: an exited daemon is
# re-parented to PID 1, which (e.g. in containers) may reap it only later.
pid_alive() {
    local stat
    [[ -n "${1:-}" ]] && read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat="${stat##*) }" # drop "pid (comm) ", comm may contain spaces
    [[ "${stat%% *}" != Z ]]
}

read_pid() { # FILE -> pid or nothing
    local pid=""
    [[ -s "$1" ]] && read -r pid <"$1" 2>/dev/null
    pid="${pid//[!0-9]/}" # Postfix pads its pid file with spaces
    echo "$pid"
}

# Only trust a pid file if the process is the right program *and* belongs to
# this DIR: after a crash/reboot the pid may have been reused.
dovecot_pid() {
    local pid
    pid="$(read_pid "$DV_RUN/master.pid")"
    pid_alive "$pid" || return 0
    # (No "tr | grep -q" here: with pipefail, grep exiting early can fail it.)
    local args=()
    mapfile -d '' -t args 2>/dev/null <"/proc/$pid/cmdline" || return 0
    [[ " ${args[*]} " == *" $DV_CONF "* ]] && echo "$pid"
    return 0
}

postfix_pid() {
    local pid
    pid="$(read_pid "$PF_PID")"
    pid_alive "$pid" || return 0
    # postfix-script starts the master with MAIL_CONFIG=<config dir>.
    local vars=() v
    mapfile -d '' -t vars 2>/dev/null <"/proc/$pid/environ" || return 0
    for v in "${vars[@]}"; do
        [[ "$v" == "MAIL_CONFIG=$PF_CONF" ]] && echo "$pid" && break
    done
    return 0
}

# Wait until none of the given pids exists; SIGKILL them after the deadline.
wait_gone() {
    local deadline=$((SECONDS + 10)) pid any
    while :; do
        any=""
        for pid in "$@"; do pid_alive "$pid" && any=1; done
        [[ -z "$any" ]] && return 0
        if ((SECONDS >= deadline)); then
            for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
            sleep 0.2
            return 0
        fi
        sleep 0.05
    done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # PORT PID-FUNCTION -> 0 once PORT accepts
    local deadline=$((SECONDS + WAIT_SECS))
    until port_open "$1"; do
        ((SECONDS < deadline)) || return 1
        [[ -n "$("$2")" ]] || return 1 # master died: no point waiting
        sleep 0.05
    done
}

wait_port_closed() {
    local deadline=$((SECONDS + 10))
    while port_open "$1"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

# --- setup ----------------------------------------------------------------

# Dedicated unprivileged owner of the Maildirs (not dovecot/nobody: Dovecot's
# internal user must not own mail, nobody must not own files).
ensure_mail_user() {
    local tries=0
    until id -u "$MAIL_USER" >/dev/null 2>&1; do
        # Parallel starts may race; useradd locks /etc/passwd, a loser just
        # fails and finds the user on the next round.
        ((tries++ < 10)) || die "could not create system user $MAIL_USER"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "deskgate test mail" "$MAIL_USER" 2>/dev/null ||
            sleep 0.2
    done
}

pick_ports() { # -> "IMAP_PORT SMTP_PORT"
    # Bind both at once so they differ; the kernel hands out random free ports.
    python3 - <<'PY'
import socket
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

write_dovecot_conf() {
    local imap_port="$1" uid gid
    uid="$(id -u "$MAIL_USER")"
    gid="$(id -g "$MAIL_USER")"
    cat >"$DV_CONF" <<EOF
# Private Dovecot for deskgate tests (generated by tests/support/mailservers.sh).
protocols = imap lmtp
listen = 127.0.0.1
base_dir = $DV_RUN
state_dir = $DV/state
instance_name = deskgate-test
log_path = $DV_LOG
info_log_path = $DV_LOG
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# The system user is in the system uid range (< 500, Dovecot's default floor).
first_valid_uid = $uid
last_valid_uid = $uid
first_valid_gid = $gid
last_valid_gid = $gid
mail_location = maildir:$MAIL_ROOT/%d/%n/Maildir
# Tests only; durability does not matter, speed does.
mail_fsync = never

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DV/users
}
# The passdb lookup also tells LMTP which recipients exist.
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$MAIL_ROOT/%d/%n
}

namespace inbox {
  inbox = yes
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    # Postfix's lmtp client runs as user postfix.
    mode = 0666
  }
}
EOF
    if [[ -n "$IMAP_CAPABILITY" ]]; then
        printf 'imap_capability = %s\n' "$IMAP_CAPABILITY" >>"$DV_CONF"
    fi
    if [[ -n "$SMTP_AUTH" ]]; then
        cat >>"$DV_CONF" <<EOF
# SMTP AUTH for Postfix (smtpd_sasl_type = dovecot); its smtpd runs as postfix.
service auth {
  unix_listener smtp-auth {
    mode = 0666
  }
}
EOF
    fi
}

write_postfix_conf() {
    local smtp_port="$1"
    shift
    local domains=("$@") pattern dom
    pattern=""
    for dom in "${domains[@]}"; do
        pattern+="${pattern:+|}${dom//./\\.}"
    done

    local relay="permit_mynetworks, reject_unauth_destination"
    [[ -z "$SMTP_AUTH" ]] || relay="permit_sasl_authenticated, reject_unauth_destination"

    cat >"$PF_CONF/main.cf" <<EOF
# Private Postfix for deskgate tests (generated by tests/support/mailservers.sh).
compatibility_level = 3.6
# Outside the config dir, otherwise "postfix check" walks the queue.
queue_directory = $PF_QUEUE
data_directory = $PF/data
maillog_file = $PF_LOG
maillog_file_prefixes = $D
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.test
mydomain = mail.test
myorigin = mail.test
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
alias_maps =
alias_database =
biff = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtpd_relay_restrictions = $relay
# Tests provoke 5xx replies on purpose; don't make them sleep for it.
smtpd_error_sleep_time = 0
smtpd_peername_lookup = no
message_size_limit = 104857600
mailbox_size_limit = 0
virtual_mailbox_limit = 0
# help+tag@desk.test is accepted and delivered to help@desk.test.
recipient_delimiter = +
virtual_mailbox_domains = ${domains[*]}
# Lists the known users: anything else at these domains gets 550 at RCPT.
virtual_mailbox_maps = texthash:$PF_CONF/vmailbox
# Every other domain (including ones Postfix would append, like mail.test) is
# rewritten to the catch-all mailbox, so the smtp client never runs.
# Empty: it defaults to the virtual_alias_maps value, and the negated catch-all
# pattern would claim the users' own domains as alias-only domains.
virtual_alias_domains =
virtual_alias_maps = regexp:$PF_CONF/valias
virtual_transport = lmtp:unix:$LMTP_SOCKET
# One recipient per LMTP transaction so Dovecot writes Delivered-To.
lmtp_destination_recipient_limit = 1
# If Dovecot is briefly unavailable, retry soon instead of after minutes.
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 30s
EOF
    if [[ -n "$SMTP_AUTH" ]]; then
        cat >>"$PF_CONF/main.cf" <<EOF
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $SASL_SOCKET
# Plain-text mechanisms over the unencrypted loopback connection (tests only).
smtpd_sasl_security_options = noanonymous
smtpd_tls_auth_only = no
EOF
    fi

    : >"$PF_CONF/vmailbox"
    local u
    for u in "${USERS[@]}"; do
        printf '%s OK\n' "$u" >>"$PF_CONF/vmailbox"
    done
    # Regexp tables match case-insensitively by default. Outside mail keeps its
    # envelope recipient as an address extension, so tests can see it in
    # Delivered-To: someone@elsewhere.example becomes
    # catchall+someone=elsewhere.example@outside.test (INBOX of catchall).
    : >"$PF_CONF/valias"
    local alias from to
    for alias in "${ALIASES[@]}"; do
        from="${alias%%=*}"
        from="${from//./\\.}"
        to="${alias#*=}"
        # /^hr(\+[^@]*)?@desk\.test$/ help${1}@desk.test (the tag kept)
        printf '/^%s%s@%s$/ %s%s@%s\n' "${from%@*}" '(\+[^@]*)?' "${from#*@}" \
            "${to%@*}" '${1}' "${to#*@}" >>"$PF_CONF/valias"
    done
    cat >>"$PF_CONF/valias" <<EOF
if !/@($pattern)\$/
/^([^@"\\[:space:]]+)@([^@"\\[:space:]]+)\$/ ${CATCHALL%@*}+\${1}=\${2}@${CATCHALL#*@}
/./ $CATCHALL
endif
EOF

    # Minimal master.cf: no chroot (the queue dir has no copies of /etc files),
    # the smtpd listener on our port, postlogd for maillog_file.
    cat >"$PF_CONF/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$smtp_port inet n - n - - smtpd
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
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    # Postfix won't trust a config/table file modified in the current second:
    # it re-reads it every 300 ms until it has "settled", which made every
    # start ~1.5-2 s slower. Backdate what we just wrote.
    touch -d '1 minute ago' "$PF_CONF"/*
}

# --- start / stop pieces --------------------------------------------------

start_dovecot() {
    # Dovecot keeps the stderr it was started with open; never leave it on a
    # caller's pipe.
    dovecot -c "$DV_CONF" </dev/null >>"$DV_STARTUP_LOG" 2>&1
}

# Create the queue tree as postfix-files(5) lays it out. Done by hand because
# `postfix start`'s integrity check (post-install create-missing plus
# check-warn) costs ~1.5 s per fresh instance; with the tree in place we use
# Postfix's own quick-start flag to skip it.
make_postfix_queue() {
    local q
    mkdir -p "$PF_QUEUE"
    chown root:root "$PF_QUEUE"
    chmod 0755 "$PF_QUEUE"
    for q in active bounce corrupt defer deferred flush hold incoming private saved trace; do
        mkdir -p "$PF_QUEUE/$q"
        chown postfix "$PF_QUEUE/$q"
        chmod 0700 "$PF_QUEUE/$q"
    done
    mkdir -p "$PF_QUEUE/maildrop" "$PF_QUEUE/public" "$PF_QUEUE/pid"
    chown postfix:postdrop "$PF_QUEUE/maildrop" "$PF_QUEUE/public"
    chmod 0730 "$PF_QUEUE/maildrop"
    chmod 0710 "$PF_QUEUE/public"
    chmod 0755 "$PF_QUEUE/pid"
    mkdir -p "$PF/data"
    chown postfix "$PF/data"
    chmod 0700 "$PF/data"
}

start_postfix() {
    touch "$PF_QUEUE/quick-start" # consumed (removed) by postfix-script
    postfix -c "$PF_CONF" start </dev/null >>"$PF/startup.log" 2>&1
}

# Both stops signal the master directly: `doveadm stop` and `postfix stop` do
# the same but then poll slowly (~3 s and ~2 s); the masters themselves exit
# within ~1 s (Dovecot) and a few ms (Postfix, which also kills its process
# group).
stop_dovecot() {
    local pid kids
    pid="$(dovecot_pid)"
    [[ -n "$pid" ]] || return 0
    kids="$(pgrep -P "$pid" || true)"
    kill -TERM "$pid" 2>/dev/null || true
    # shellcheck disable=SC2086 # word-splitting the pid list is intended
    wait_gone "$pid" $kids
}

stop_postfix() {
    local pid kids
    pid="$(postfix_pid)"
    [[ -n "$pid" ]] || return 0
    kids="$(pgrep -P "$pid" || true)"
    kill -TERM "$pid" 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_gone "$pid" $kids
}

stop_all() {
    # In parallel: Dovecot's master takes ~1 s to exit.
    stop_postfix &
    stop_dovecot
    wait
}

dump_logs() {
    local f
    for f in "$DV_STARTUP_LOG" "$DV_LOG" "$PF/startup.log" "$PF_LOG"; do
        [[ -s "$f" ]] || continue
        echo "===== $f =====" >&2
        tail -n 50 "$f" >&2
    done
}

fail_smtp_start() {
    echo "mailservers.sh: $*" >&2
    dump_logs
    stop_postfix
    exit 1
}

# Start both and wait until they accept; on failure set START_ERROR, return 1.
start_servers() {
    local imap_port="$1" smtp_port="$2" deadline=$((SECONDS + WAIT_SECS))
    START_ERROR=""
    if ! start_dovecot; then
        START_ERROR="dovecot failed to start"
    elif ! start_postfix; then
        START_ERROR="postfix failed to start"
    elif ! wait_port "$imap_port" dovecot_pid; then
        START_ERROR="Dovecot IMAP not accepting on port $imap_port"
    else
        until [[ -S "$LMTP_SOCKET" && (-z "$SMTP_AUTH" || -S "$SASL_SOCKET") ]]; do
            if ((SECONDS >= deadline)); then
                START_ERROR="Dovecot LMTP socket $LMTP_SOCKET (or SASL socket) missing"
                return 1
            fi
            sleep 0.05
        done
        wait_port "$smtp_port" postfix_pid ||
            START_ERROR="Postfix not accepting on port $smtp_port"
    fi
    [[ -z "$START_ERROR" ]]
}

# --- commands -------------------------------------------------------------

cmd_start() {
    (($# >= 2)) || usage
    [[ "$(id -u)" -eq 0 ]] || die "must run as root (the Postfix master needs it)"
    local dir="$1"
    shift
    dir="$(abs_dir "$dir")"
    set_paths "$dir"

    IMAP_CAPABILITY=""
    SMTP_AUTH=""
    while (($#)) && [[ "$1" == --* ]]; do
        case "$1" in
        --imap-capability=*)
            IMAP_CAPABILITY="${1#*=}"
            [[ "$IMAP_CAPABILITY" =~ ^[A-Za-z0-9\ =+._-]+$ ]] ||
                die "--imap-capability: atoms separated by spaces only: $IMAP_CAPABILITY"
            ;;
        --smtp-auth) SMTP_AUTH=1 ;;
        *) die "unknown option: $1" ;;
        esac
        shift
    done
    (($# >= 1)) || usage

    USERS=()
    GHOSTS=()
    ALIASES=()
    local domains=() u dom d seen
    for u in "$@" "$CATCHALL"; do
        u="${u,,}"
        if [[ "$u" == alias:* ]]; then
            u="${u#alias:}"
            [[ "$u" =~ ^[a-z0-9._-]+@[a-z0-9.-]+=[a-z0-9._-]+@[a-z0-9.-]+$ ]] ||
                die "not alias:FROM@DOMAIN=USER@DOMAIN: $u"
            ALIASES+=("$u")
            continue
        fi
        if [[ "$u" == ghost:* ]]; then
            u="${u#ghost:}"
            GHOSTS+=("$u")
        fi
        [[ "$u" =~ ^[a-z0-9._+-]+@[a-z0-9.-]+$ ]] || die "not a plain USER@DOMAIN: $u"
        [[ " ${USERS[*]} " == *" $u "* ]] || USERS+=("$u")
        dom="${u#*@}"
        seen=""
        for d in "${domains[@]}"; do [[ "$d" == "$dom" ]] && seen=1; done
        [[ -n "$seen" ]] || domains+=("$dom")
    done

    [[ -z "$(dovecot_pid)$(postfix_pid)" ]] ||
        die "servers already running in $D (run: $0 stop $D)"

    ensure_mail_user
    mkdir -p "$D"
    # The mail user (Dovecot's mail processes) and postfix (lmtp client
    # connecting to the socket) must traverse DIR; mktemp -d makes it 0700.
    chmod a+x "$D"
    rm -rf "$DV" "$PF" "$ENV_FILE"
    mkdir -p "$DV/state" "$PF_CONF" "$MAIL_ROOT"
    make_postfix_queue
    chown "$MAIL_USER:" "$MAIL_ROOT"
    chmod 0750 "$MAIL_ROOT"

    : >"$DV/users"
    for u in "${USERS[@]}"; do
        [[ " ${GHOSTS[*]} " == *" $u "* ]] && continue
        printf '%s:{PLAIN}%s\n' "$u" "$PASSWORD" >>"$DV/users"
    done
    # Read by the auth process, which runs as dovecot.
    chgrp dovecot "$DV/users"
    chmod 0640 "$DV/users"

    # A picked port can be grabbed by someone else before the daemons bind it
    # (parallel tests); then retry with fresh ports.
    local attempt ports imap_port smtp_port tls_env="" imaps_port smtps_port
    [[ -z "${MAILSERVERS_TLS:-}" ]] || make_test_tls "$D"
    [[ -z "${MAILSERVERS_OAUTH2:-}" ]] || make_test_oauth2 "$D"
    for attempt in 1 2 3; do
        ports="$(pick_ports)"
        read -r imap_port smtp_port <<<"$ports"
        [[ -n "$imap_port" && -n "$smtp_port" ]] || die "could not pick free ports"
        write_dovecot_conf "$imap_port"
        write_postfix_conf "$smtp_port" "${domains[@]}"
        if [[ -n "${MAILSERVERS_TLS:-}" ]]; then
            read -r imaps_port smtps_port <<<"$(pick_ports)"
            tls_dovecot_conf "$D" "$imaps_port"
            tls_postfix_conf "$D" "$smtps_port"
            tls_env="IMAPS_PORT=$imaps_port
SMTPS_PORT=$smtps_port
TLS_CA=$D/tls/ca.crt
TLS_WRONG_CA=$D/tls/wrong-ca.crt
TLS_CERT_SHA256=$TLS_CERT_SHA256"
        fi
        if [[ -n "${MAILSERVERS_OAUTH2:-}" ]]; then
            oauth2_dovecot_conf "$D"
            oauth2_postfix_conf "$D"
        fi
        start_servers "$imap_port" "$smtp_port" && break
        stop_all
        if ((attempt < 3)) && grep -qs 'ddress already in use' \
            "$DV_STARTUP_LOG" "$DV_LOG" "$PF/startup.log" "$PF_LOG"; then
            echo "mailservers.sh: port taken, retrying with other ports" >&2
            : >"$DV_STARTUP_LOG"
            : >"$DV_LOG"
            : >"$PF/startup.log"
            : >"$PF_LOG"
            continue
        fi
        echo "mailservers.sh: $START_ERROR" >&2
        dump_logs
        exit 1
    done

    # Write env last (atomically): its presence means "up".
    cat >"$ENV_FILE.tmp" <<EOF
IMAP_PORT=$imap_port
SMTP_PORT=$smtp_port
LMTP_SOCKET=$LMTP_SOCKET
DOVECOT_CONF=$DV_CONF
POSTFIX_CONF_DIR=$PF_CONF
MAIL_ROOT=$MAIL_ROOT
CATCHALL=$CATCHALL
SMTP_AUTH=${SMTP_AUTH:+yes}
SASL_SOCKET=${SMTP_AUTH:+$SASL_SOCKET}
EOF
    [[ -z "$tls_env" ]] || printf '%s\n' "$tls_env" >>"$ENV_FILE.tmp"
    [[ -z "${MAILSERVERS_OAUTH2:-}" ]] || printf 'OAUTH2_KEY=%s\n' "$OAUTH2_KEY" >>"$ENV_FILE.tmp"
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

cmd_stop() {
    (($# == 1)) || usage
    set_paths "$(abs_dir "$1")"
    [[ -d "$D" ]] || return 0
    stop_all
}

cmd_smtp_stop() {
    (($# == 1)) || usage
    set_paths "$(abs_dir "$1")"
    [[ -d "$D" ]] || return 0
    stop_postfix
    if [[ -f "$ENV_FILE" ]]; then
        local port
        port="$(env_value SMTP_PORT)"
        [[ -z "$port" ]] || wait_port_closed "$port" || die "SMTP port $port still open"
    fi
}

cmd_smtp_start() {
    (($# == 1)) || usage
    [[ "$(id -u)" -eq 0 ]] || die "must run as root (the Postfix master needs it)"
    set_paths "$(abs_dir "$1")"
    [[ -f "$ENV_FILE" && -f "$PF_CONF/main.cf" ]] || die "no servers set up in $D (run start first)"
    local port
    port="$(env_value SMTP_PORT)"
    if [[ -z "$(postfix_pid)" ]]; then
        start_postfix || fail_smtp_start "postfix failed to start"
    fi
    wait_port "$port" postfix_pid || fail_smtp_start "Postfix not accepting on port $port"
}

main() {
    (($# >= 1)) || usage
    local cmd="$1"
    shift
    case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    smtp-stop) cmd_smtp_stop "$@" ;;
    smtp-start) cmd_smtp_start "$@" ;;
    *) usage ;;
    esac
}

main "$@"
