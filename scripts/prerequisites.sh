# Sourced by scripts/test and scripts/demo: checks what they need before
# anything runs, and says how to get what is missing. Installs nothing
# itself (the mail servers are installed by .ci/install-mail-servers, and
# only when missing).
# Usage: check_prerequisites NAME   (NAME is the calling script, for messages)

check_prerequisites() {
    local me="$1" missing=()
    if [ "$(id -u)" != 0 ]; then
        echo "$me: run as root: the private Postfix's master must run as root (e.g. sudo env PATH=\"\$PATH\" ./$me)" >&2
        return 1
    fi
    command -v cargo >/dev/null 2>&1 && command -v rustc >/dev/null 2>&1 ||
        missing+=("a Rust toolchain: curl https://sh.rustup.rs -sSf | sh, then put ~/.cargo/bin on PATH (with sudo: sudo env PATH=\"\$PATH\" ...)")
    command -v cc >/dev/null 2>&1 ||
        missing+=("a C compiler and linker: apt-get install build-essential")
    command -v python3 >/dev/null 2>&1 ||
        missing+=("python3 (the test servers' port picker and the demo's mail client): apt-get install python3")
    if ! command -v dovecot >/dev/null 2>&1 || ! command -v postfix >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 ||
            missing+=("Dovecot and Postfix, which are installed with apt-get (Debian 12); this machine has no apt-get")
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "$me: missing prerequisites:" >&2
        printf '  - %s\n' "${missing[@]}" >&2
        return 1
    fi
}
