#!/usr/bin/env bash
# Install the external programs the test suite starts for real:
#   - the PostgreSQL server binaries (Debian's /usr/lib/postgresql/<ver>/bin/{initdb,pg_ctl,postgres});
#   - dcmtk (storescp, storescu, echoscu) and Orthanc, the DICOM peers of the
#     router's tests and of bench/dicom_route.py (standins/dicom/);
#   - xmlsec1, which verifies the DMP VIHF signature in the tests and the DMP stand-in
#     (another implementation than the signxml that signs it);
#   - Postfix (SMTP submission, real DSNs) and Dovecot (IMAP over TLS), the MSSanté
#     peers; rsyslog with its TLS driver (rsyslog-gnutls), the audit trail's SIEM peer;
#   - promtool (package prometheus), which checks the example Prometheus rules and lints
#     the engine's /metrics exposition;
#   - chromium and chromium-driver, the headless browser of the console's tests.
#     Their packages start system services: this script stops and disables them
#     (the tests start their own instances with temporary configs on free ports);
#   - HAProxy, the TCP load balancer in front of two engine nodes in the failover test
#     (tests/fault/test_haproxy_failover.py); its system service is stopped and disabled.
#
# Runs apt-get only for what is missing and only as root, so local reruns are
# fast. Without root it only warns: the fixtures then fail with a message that
# says what to install.
#
# The orthanc package enables and (where a service manager runs and
# policy-rc.d allows it) starts a system Orthanc on ports 4242 (DICOM, all
# interfaces) and 8042 (HTTP). The tests never use it: they start their own
# Orthanc with a temporary config on free ports. So when this script installs
# orthanc, it stops and disables that service (systemd or sysvinit).
set -euo pipefail

# The FHIR peer of the fhir destination's tests (tests/_fhir_peer/): Medplum's FHIR
# router, from npm, as pinned by its package-lock.json, into tests/_fhir_peer/node_modules
# (git-ignored). Needs Node 20 and npm; no root.
fhir_peer="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/_fhir_peer"
if [[ -d "$fhir_peer/node_modules/@medplum/fhir-router" ]]; then
    echo "install-test-peers: FHIR peer (Medplum) present in $fhir_peer/node_modules"
elif command -v npm >/dev/null; then
    (cd "$fhir_peer" && npm ci --no-audit --no-fund)
    echo "install-test-peers: installed the FHIR peer (Medplum) in $fhir_peer/node_modules"
else
    echo "install-test-peers: WARNING: npm is missing: the fhir destination's tests will fail (install Node 20)" >&2
fi

have_pg() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

have_dcmtk() {
    command -v storescp >/dev/null && command -v storescu >/dev/null && command -v echoscu >/dev/null
}

have_xmlsec1() {
    command -v xmlsec1 >/dev/null
}

have_postfix() {
    [[ -x /usr/sbin/postfix ]]
}

have_dovecot() {
    [[ -x /usr/sbin/dovecot ]] && compgen -G '/usr/lib/dovecot/imap' >/dev/null
}

have_rsyslog() {
    [[ -x /usr/sbin/rsyslogd ]] && compgen -G '/usr/lib/*/rsyslog/lmnsd_gtls.so' >/dev/null
}

have_promtool() {
    command -v promtool >/dev/null
}

have_chromium() {
    # the web console's browser tests: Debian's Chromium and its chromedriver (Selenium)
    [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]
}

have_haproxy() {
    [[ -x /usr/sbin/haproxy ]]
}

have_orthanc() {
    command -v Orthanc >/dev/null || [[ -x /usr/sbin/Orthanc ]]
}

missing=()
have_pg || missing+=(postgresql)
have_dcmtk || missing+=(dcmtk)
have_orthanc || missing+=(orthanc)
have_xmlsec1 || missing+=(xmlsec1)
have_postfix || missing+=(postfix)
have_dovecot || missing+=(dovecot-imapd)
have_rsyslog || missing+=(rsyslog rsyslog-gnutls)
have_promtool || missing+=(prometheus)
have_chromium || missing+=(chromium chromium-driver)
have_haproxy || missing+=(haproxy)

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-test-peers: PostgreSQL server binaries present:" $(compgen -G '/usr/lib/postgresql/*/bin/initdb')
    echo "install-test-peers: dcmtk present: $(command -v storescp storescu echoscu | tr '\n' ' ')"
    echo "install-test-peers: Orthanc present: $(command -v Orthanc || echo /usr/sbin/Orthanc)"
    echo "install-test-peers: xmlsec1 present: $(command -v xmlsec1)"
    echo "install-test-peers: Postfix, Dovecot and rsyslog (TLS) present"
    echo "install-test-peers: promtool present: $(command -v promtool)"
    echo "install-test-peers: Chromium and chromedriver present"
    echo "install-test-peers: HAProxy present: /usr/sbin/haproxy"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-test-peers: WARNING: missing Debian packages: ${missing[*]}, and this is not root;" >&2
    echo "install-test-peers: run 'apt-get install ${missing[*]}' as root, or the tests that need them will fail." >&2
    exit 0
fi

# Stop and disable the system Orthanc service the package sets up: the tests run
# their own. Without systemd (containers) the package's start is usually refused
# by policy-rc.d; the sysvinit script is stopped if it runs anyway.
disable_system_orthanc() {
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now orthanc.service >/dev/null 2>&1 || true
    else
        if [[ -x /etc/init.d/orthanc ]] && /etc/init.d/orthanc status >/dev/null 2>&1; then
            /etc/init.d/orthanc stop >/dev/null 2>&1 || true
        fi
        if command -v update-rc.d >/dev/null; then
            update-rc.d orthanc disable >/dev/null 2>&1 || true
        fi
        if command -v systemctl >/dev/null; then  # offline: removes the WantedBy symlink
            systemctl disable orthanc.service >/dev/null 2>&1 || true
        fi
    fi
    echo "install-test-peers: system Orthanc service stopped and disabled (tests start their own)"
}

# Stop and disable a system service a package has just started: the tests run their own.
disable_system_service() {
    local name=$1
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now "$name.service" >/dev/null 2>&1 || true
    else
        if [[ -x /etc/init.d/$name ]]; then
            /etc/init.d/"$name" stop >/dev/null 2>&1 || true
        fi
        if command -v update-rc.d >/dev/null; then
            update-rc.d "$name" disable >/dev/null 2>&1 || true
        fi
        if command -v systemctl >/dev/null; then
            systemctl disable "$name.service" >/dev/null 2>&1 || true
        fi
    fi
}

export DEBIAN_FRONTEND=noninteractive
# Postfix asks how it is to be used: no configuration (the tests write their own).
if [[ " ${missing[*]} " == *" postfix "* ]] && command -v debconf-set-selections >/dev/null; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
echo "install-test-peers: installing from Debian's packages: ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null

status=0
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    if have_pg; then
        echo "install-test-peers: installed:" $(compgen -G '/usr/lib/postgresql/*/bin/initdb')
    else
        echo "install-test-peers: ERROR: apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb" >&2
        status=1
    fi
fi
if [[ " ${missing[*]} " == *" dcmtk "* ]]; then
    if have_dcmtk; then
        echo "install-test-peers: installed: $(command -v storescp storescu echoscu | tr '\n' ' ')"
    else
        echo "install-test-peers: ERROR: apt-get installed dcmtk but storescp/storescu/echoscu are missing" >&2
        status=1
    fi
fi
if [[ " ${missing[*]} " == *" orthanc "* ]]; then
    if have_orthanc; then
        disable_system_orthanc
        echo "install-test-peers: installed: $(command -v Orthanc || echo /usr/sbin/Orthanc)"
    else
        echo "install-test-peers: ERROR: apt-get installed orthanc but there is no Orthanc program" >&2
        status=1
    fi
fi
for pkg in postfix:postfix dovecot-imapd:dovecot rsyslog:rsyslog prometheus:prometheus haproxy:haproxy; do
    if [[ " ${missing[*]} " == *" ${pkg%%:*} "* ]]; then
        disable_system_service "${pkg#*:}"
        echo "install-test-peers: installed ${pkg%%:*} (system service stopped and disabled)"
    fi
done
have_postfix || { echo "install-test-peers: ERROR: no /usr/sbin/postfix" >&2; status=1; }
have_dovecot || { echo "install-test-peers: ERROR: no dovecot with its IMAP server" >&2; status=1; }
have_rsyslog || { echo "install-test-peers: ERROR: no rsyslogd with its gtls driver" >&2; status=1; }
have_promtool || { echo "install-test-peers: ERROR: no promtool" >&2; status=1; }
have_haproxy || { echo "install-test-peers: ERROR: no /usr/sbin/haproxy" >&2; status=1; }
exit "$status"
