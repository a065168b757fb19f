# OAuth2 for the private test servers (sourced by mailservers.sh, used when
# MAILSERVERS_OAUTH2=1): Dovecot validates HS256 JWTs locally
# (introspection_mode = local) with a key made for the run, for IMAP
# AUTHENTICATE XOAUTH2/OAUTHBEARER; Postfix offers SMTP AUTH through Dovecot's
# SASL (so XOAUTH2 there too). Tests mint their own tokens with the key:
# claims sub and email = the login address, exp in the future; no azp or kid
# (Dovecot then looks the key up as default/HS256/default).
# Adds to DIR/env: OAUTH2_KEY (the HMAC key, base64).

make_test_oauth2() { # DIR
    local keys="$1/dovecot/oauth2-keys"
    mkdir -p "$keys/default/HS256"
    OAUTH2_KEY="$(head -c 32 /dev/urandom | base64 -w0)"
    # Dovecot reads the whole file as the base64 key: no newline.
    printf '%s' "$OAUTH2_KEY" >"$keys/default/HS256/default"
    # Read by the auth process (user dovecot).
    chgrp -R dovecot "$keys"
    chmod -R g+rX,o-rwx "$keys"
}

oauth2_dovecot_conf() { # DIR
    local dv="$1/dovecot"
    cat >"$dv/oauth2.conf.ext" <<CONF
introspection_mode = local
local_validation_key_dict = fs:posix:prefix=$dv/oauth2-keys/
username_attribute = email
CONF
    # A token is checked against passwd-file first (a mismatch goes on to
    # the next passdb), then here.
    cat >>"$DV_CONF" <<CONF

# OAuth2 (tests/support/oauth2.sh)
auth_mechanisms = plain login xoauth2 oauthbearer
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $dv/oauth2.conf.ext
}
service auth {
  # Postfix's smtpd (user postfix) asks here.
  unix_listener postfix-auth {
    mode = 0666
  }
}
CONF
}

oauth2_postfix_conf() { # DIR
    cat >>"$PF_CONF/main.cf" <<CONF

# SMTP AUTH through Dovecot (tests/support/oauth2.sh)
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $1/dovecot/run/postfix-auth
CONF
    touch -d '1 minute ago' "$PF_CONF"/*
}
