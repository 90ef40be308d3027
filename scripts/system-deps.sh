# Sourced by scripts/test.sh: the system programs the tests use, from Debian's packages where missing.
# mosquitto (the MQTT broker of the presence tests), iproute2 (`ip netns`, `tc` for the fleet tests),
# libb64-0d (linked by Triton's perf_analyzer) and prometheus (scrapes a fleet in the dashboard test).
missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v ip >/dev/null || missing+=(iproute2)
command -v tc >/dev/null || missing+=(iproute2)
ldconfig -p 2>/dev/null | grep -q 'libb64\.so\.0d' || missing+=(libb64-0d)
command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    else
        echo "system-deps: missing ${missing[*]}; their tests skip (they fail under CI=true)" >&2
    fi
fi
