#!/bin/sh
# Run a credential test binary against a real, private Secret Service (gnome-keyring):
#
#   keyring_session.sh <test-binary>
#
# A temporary HOME (with XDG_RUNTIME_DIR, XDG_DATA_HOME, ... inside it) and a private D-Bus
# session bus (dbus-run-session with its own configuration) isolate each run, so runs may go
# in parallel and never touch the user's keyring. On that bus org.freedesktop.secrets is
# D-Bus-activated as `gnome-keyring-daemon --foreground --unlock --components=secrets` with the
# login password on stdin: the first client call waits until the daemon owns the name (a
# daemonising `gnome-keyring-daemon --unlock` returns before that, which races). No other
# service is activatable, so an unlock prompt fails at once instead of waiting for a user.
#
# Then: store two entries with secret-tool, run the binary with NONOPROXY_KEYRING_TEST=1, lock
# the collection over D-Bus, run it again with NONOPROXY_KEYRING_TEST=locked. Exits with the
# first non-zero status of the binary (or 1 on a setup failure); a missing tool is a failure.
set -u

me=keyring_session.sh

die() {
    echo "$me: $*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: $me <test-binary>"
bin=$1
case $bin in
/*) ;;
*) bin=$(pwd)/$bin ;;
esac
[ -x "$bin" ] || die "not an executable file: $1"

need() {
    command -v "$1" >/dev/null 2>&1 ||
        die "$1 not found: install the Debian package $2 (the keyring test needs it)"
}
need dbus-run-session dbus-daemon
need dbus-daemon dbus-daemon
need dbus-send dbus-bin
need gnome-keyring-daemon gnome-keyring
need secret-tool libsecret-tools

tmp=$(mktemp -d /tmp/np-keyring.XXXXXX) || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -m 700 "$tmp/run" "$tmp/data" "$tmp/config" "$tmp/cache" "$tmp/services" ||
    die "cannot create directories under $tmp"
printf '%s' "np-login-password" >"$tmp/password"

cat >"$tmp/start-keyring" <<EOF
#!/bin/sh
exec gnome-keyring-daemon --foreground --unlock --components=secrets <"$tmp/password"
EOF
chmod 700 "$tmp/start-keyring"

cat >"$tmp/services/org.freedesktop.secrets.service" <<EOF
[D-BUS Service]
Name=org.freedesktop.secrets
Exec=$tmp/start-keyring
EOF

cat >"$tmp/session.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=$tmp/run</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$tmp/services</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF

export HOME="$tmp"
export XDG_RUNTIME_DIR="$tmp/run"
export XDG_DATA_HOME="$tmp/data"
export XDG_CONFIG_HOME="$tmp/config"
export XDG_CACHE_HOME="$tmp/cache"
unset DBUS_SESSION_BUS_ADDRESS GNOME_KEYRING_CONTROL DISPLAY WAYLAND_DISPLAY \
    SECRET_SERVICE_BUS_NAME NONOPROXY_KEYRING_TEST

# The session: $1 = test binary. Kept in single quotes: nothing here is expanded twice.
dbus-run-session --config-file="$tmp/session.conf" -- sh -c '
    set -u
    me=keyring_session.sh
    bin=$1
    bus=org.freedesktop.DBus
    secrets=org.freedesktop.secrets

    # The first store activates the daemon (login collection created and unlocked).
    printf "%s" "np-keyring-secret-1" |
        secret-tool store --label="nonoproxy test (bare name)" service nono username np-test-key ||
        { echo "$me: secret-tool store failed" >&2; exit 1; }
    printf "%s" "np-keyring-secret-2 with space" |
        secret-tool store --label="nonoproxy test (service/account)" \
            service np-service username np-account ||
        { echo "$me: secret-tool store failed" >&2; exit 1; }

    kpid=$(dbus-send --session --print-reply=literal --dest=$bus /org/freedesktop/DBus \
        $bus.GetConnectionUnixProcessID string:$secrets | awk "{ print \$2 }")
    case $kpid in
    "" | *[!0-9]*) echo "$me: no pid for the keyring daemon ($kpid)" >&2; exit 1 ;;
    esac

    NONOPROXY_KEYRING_TEST=1 "$bin"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        coll=$(dbus-send --session --print-reply=literal --dest=$secrets /org/freedesktop/secrets \
            org.freedesktop.Secret.Service.ReadAlias string:default | awk "{ print \$1 }")
        case $coll in
        /org/freedesktop/secrets/collection/*) ;;
        *) echo "$me: no default collection ($coll)" >&2; rc=1 ;;
        esac
    fi
    if [ "$rc" -eq 0 ]; then
        dbus-send --session --print-reply --dest=$secrets /org/freedesktop/secrets \
            org.freedesktop.Secret.Service.Lock "array:objpath:$coll" >/dev/null ||
            { echo "$me: locking $coll failed" >&2; rc=1; }
    fi
    if [ "$rc" -eq 0 ]; then
        NONOPROXY_KEYRING_TEST=locked "$bin"
        rc=$?
    fi
    kill "$kpid" 2>/dev/null
    exit "$rc"
' keyring-session "$bin"
