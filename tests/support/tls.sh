# TLS for the private test servers (sourced by mailservers.sh, used when
# MAILSERVERS_TLS=1): a CA made here, a server certificate it signs for
# 127.0.0.1 and localhost, a second, unrelated CA (to test refusal), then
# Dovecot with STARTTLS on the IMAP port plus implicit TLS on IMAPS_PORT, and
# Postfix with STARTTLS on the SMTP port plus implicit TLS on SMTPS_PORT.
# Adds to DIR/env: IMAPS_PORT, SMTPS_PORT, TLS_CA, TLS_WRONG_CA and
# TLS_CERT_SHA256 (the server certificate's fingerprint, as tls_pin takes it).

make_test_tls() { # DIR
    local t="$1/tls"
    mkdir -p "$t"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=deskgate test CA" \
        -keyout "$t/ca.key" -out "$t/ca.crt" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=unrelated CA" \
        -keyout "$t/wrong-ca.key" -out "$t/wrong-ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
    printf 'subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n' >"$t/ext"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" \
        -CAcreateserial -days 2 -extfile "$t/ext" -out "$t/server.crt" 2>/dev/null
    chmod 0755 "$t"
    chmod 0644 "$t"/*.crt
    # Read by Postfix's smtpd (user postfix) and Dovecot's master (root).
    chown root:postfix "$t/server.key"
    chmod 0640 "$t/server.key"
    TLS_CERT_SHA256="sha256:$(openssl x509 -in "$t/server.crt" -outform der | sha256sum | cut -d' ' -f1)"
}

tls_dovecot_conf() { # DIR IMAPS_PORT
    local t="$1/tls"
    # Later settings override earlier ones; this imaps listener replaces port 0.
    cat >>"$DV_CONF" <<CONF

# TLS (tests/support/tls.sh)
ssl = yes
ssl_cert = <$t/server.crt
ssl_key = <$t/server.key
service imap-login {
  inet_listener imaps {
    address = 127.0.0.1
    port = $2
    ssl = yes
  }
}
CONF
}

tls_postfix_conf() { # DIR SMTPS_PORT
    local t="$1/tls"
    cat >>"$PF_CONF/main.cf" <<CONF

# TLS (tests/support/tls.sh)
smtpd_tls_security_level = may
smtpd_tls_cert_file = $t/server.crt
smtpd_tls_key_file = $t/server.key
CONF
    # tlsmgr keeps smtpd's TLS session cache and entropy; without it smtpd
    # turns TLS off.
    printf '127.0.0.1:%s inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt\ntlsmgr unix - - n 1000? 1 tlsmgr\n' "$2" \
        >>"$PF_CONF/master.cf"
    touch -d '1 minute ago' "$PF_CONF"/*
}
