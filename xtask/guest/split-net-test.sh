#!/bin/busybox sh
# Dom0's split network device checks: /usr/lib/keel/split-net-test.sh in
# Dom0's initramfs (built by xtask/src/guest/dom0_initramfs.rs). Dom0's
# /init runs it when the kernel command line has `keel.test=split-net`, then
# powers off.
#
# "Split drivers" for the network: each DomU's own virtio-net driver (the
# frontend) on a virtio-pci function Keel presents, one per entry of its
# config's `vif = [...]`, whose frames a backend process in Dom0's
# userspace (`keel backend <id> ...`, started by `keel create`) carries to
# and from a switch process (`keel switch`, a learning Ethernet switch the
# first such `keel create` starts, which outlives the domains like a
# bridge). The switch gives Dom0 a port too: the TAP interface keel0, which
# Dom0 addresses itself (10.0.0.1/24). Two DomUs: domu-split-net-a, the
# server (10.0.0.2, the configured MAC 02:4b:45:00:00:0a), and
# domu-split-net-b, the client (10.0.0.3, a MAC keel generates). In order:
#  setup      uio, uio_pci_generic and tun are loaded (Dom0's /init loads
#             them: the backends drive Keel's management function through
#             the first two, the switch makes keel0 through /dev/net/tun);
#  create     `keel create` of the server, then of the client, works;
#  switch     a `keel switch` process runs and keel0 exists; Dom0 brings it
#             up with 10.0.0.1/24;
#  backends   one `keel backend <id>` process per domain, two pids;
#  domus      both DomUs (keel.domu=split-net, domu-init.sh) load the virtio
#             drivers and virtio_net, bring eth0 up with their address,
#             ping each other and Dom0 until they answer; the client sends
#             2 MiB of /dev/urandom over TCP (busybox nc) to the server;
#             each says "domu: split-net done", or "domu: split-net FAILED:
#             ..." at its first failed step;
#  transfer   the size and sha256 the server received are those the client
#             sent;
#  ping       Dom0 pings both DomUs through keel0 (3 of 3 answered), and its
#             neighbour table has each DomU's address at the MAC the DomU
#             reported (the server's the configured one);
#  console    the server also has a virtio console (virtio_console = true):
#             `keel console --hvc` shows what its DomU said on hvc0 before
#             anyone connected (kept by its backend) and, after typing a
#             line, the DomU's answer to it;
#  kernels    Dom0's dmesg and both DomUs' consoles show no BUG, Oops, panic,
#             WARNING or lockup;
#  destroy    destroying both gives all memory back and leaves no backend
#             behind (the switch may stay).
# `keel network-list` of each domain is shown for the reader, not judged.
#
# Every step says one `dom0: split-net ...` line through the kernel log,
# and each DomU's own lines are shown from its console (the server's, then
# the client's) once both are done; the boot test bochs-split-net
# (tests/src/cases.rs, SPLIT_NET_STEPS and SPLIT_NET_FAILURES) expects the
# success lines in order and fails on any failure line or a DomU's
# "domu: split-net FAILED".

. /usr/lib/keel/domu-lib.sh

SERVER_CONFIG=/etc/keel/domu-split-net-a.toml # domu-split-net-a: keel.net-role=server, vif mac=02:4b:45:00:00:0a
SERVER_DOMU=domu-split-net-a
# The server's virtio console: what its DomU says on hvc0 first, the word
# Dom0 types, the answer, and how long keel console --hvc may take.
HVC_HELLO='domu: hvc0 hello'
HVC_WORD=marco
HVC_ANSWER='domu: hvc0 polo marco'
HVC_TIMEOUT=120
CLIENT_CONFIG=/etc/keel/domu-split-net-b.toml # domu-split-net-b: keel.net-role=client, a generated MAC
CLIENT_DOMU=domu-split-net-b
# The DomUs' addresses (their configs' keel.net-ip=) and the server's MAC.
SERVER_IP=10.0.0.2
CLIENT_IP=10.0.0.3
SERVER_MAC=02:4b:45:00:00:0a
# Dom0's port on the switch, and the address Dom0 gives it.
SWITCH_PORT=keel0
DOM0_ADDRESS=10.0.0.1/24
# The kernel modules the backends and the switch need (kernel::DOM0_MODULES).
DOM0_MODULES="uio uio_pci_generic tun"
# What the DomUs' /init (domu-init.sh) says when it has passed every step,
# and when a step failed.
NET_DONE='domu: split-net done'
NET_FAILED='domu: split-net FAILED'
# Dom0 seconds for both DomUs to boot, find each other and finish the
# transfer (they boot at once on the one emulated CPU).
BOOT_TIMEOUT=1500
# Dom0 seconds for keel0 to appear once `keel create` returned.
SWITCH_WAIT=10
# Dom0 seconds for the backends to end after the domains are destroyed.
BACKEND_WAIT=10
# Where `keel backend` and `keel switch` write their stderr
# (backend-<id>.log, and the switch's log).
BACKEND_LOGS=/run/keel
# Pings Dom0 sends each DomU; each must be answered.
PINGS=3

# Destroys domain $1 if it is listed and waits for it to go; says the
# failure line if that does not work.
destroy_domain() {
    destroy_and_wait "$1"
    case $? in
        0) return 0 ;;
        1) say "dom0: split-net destroy failed: keel destroy $1" ;;
        *) say "dom0: split-net destroy failed: $1 still listed 10 s after destroy" ;;
    esac
    return 1
}

# Word $2 (1 is the program) of process $1's command line.
command_word() {
    tr '\0' '\n' < "/proc/$1/cmdline" 2> /dev/null | sed -n "$2p"
}

# "pid: command line" of process $1.
process_line() {
    echo "$1: $(tr '\0' ' ' < "/proc/$1/cmdline" 2> /dev/null | sed 's/ $//')"
}

# The keel processes running now whose command line's second word is $1
# (backend, switch), "pid: command line" each on a line. `keel` commands the
# script runs (list, console) are never running meanwhile.
keel_processes() {
    for pid in $(pidof keel); do
        [ "$(command_word "$pid" 2)" = "$1" ] || continue
        process_line "$pid"
    done
}

# The pids of domain id $1's backends (`keel backend <id> ...`), on one line.
backend_pids() {
    pids=
    for pid in $(pidof keel); do
        if [ "$(command_word "$pid" 2)" = backend ] && [ "$(command_word "$pid" 3)" = "$1" ]; then
            pids="$pids $pid"
        fi
    done
    echo "${pids# }"
}

# Waits up to BACKEND_WAIT s for every backend to end; returns 1 if some
# remain.
wait_no_backend() {
    waited=0
    while [ -n "$(keel_processes backend)" ]; do
        [ "$waited" -ge "$BACKEND_WAIT" ] && return 1
        sleep 1
        waited=$((waited + 1))
    done
    return 0
}

# The last lines of each backend's and the switch's log.
show_backend_logs() {
    for log in "$BACKEND_LOGS"/*.log; do
        [ -e "$log" ] || continue
        echo "--- $log (last 20 lines) ---"
        tail -n 20 "$log"
    done
    echo "---"
}

# Where domain $1 stands: done, failed, stopped (<state>), or nothing while
# it is still at work.
net_outcome() {
    console=$(console_now "$1")
    if echo "$console" | grep -qF "$NET_FAILED"; then
        echo failed
    elif echo "$console" | grep -qF "$NET_DONE"; then
        echo done
    else
        state=$(domain_state "$1")
        case "$state" in
            running | blocked) ;;
            *) echo "stopped (${state:-not listed})" ;;
        esac
    fi
}

# Waits for both DomUs to say NET_DONE or NET_FAILED (or stop running), or
# BOOT_TIMEOUT. Sets $server_outcome and $client_outcome (done, failed,
# stopped (...), still waiting ...) and the seconds each took.
wait_both() {
    wait_start=$(now)
    server_outcome=
    client_outcome=
    server_seconds=
    client_seconds=
    while :; do
        if [ -z "$server_outcome" ]; then
            server_outcome=$(net_outcome "$SERVER_DOMU")
            [ -n "$server_outcome" ] && server_seconds=$(since "$wait_start")
        fi
        if [ -z "$client_outcome" ]; then
            client_outcome=$(net_outcome "$CLIENT_DOMU")
            [ -n "$client_outcome" ] && client_seconds=$(since "$wait_start")
        fi
        [ -n "$server_outcome" ] && [ -n "$client_outcome" ] && break
        if holds "waited >= limit" -v waited="$(since "$wait_start")" -v limit="$BOOT_TIMEOUT"; then
            still="still waiting after $BOOT_TIMEOUT s"
            server_outcome=${server_outcome:-"$still ($(domain_state "$SERVER_DOMU"))"}
            client_outcome=${client_outcome:-"$still ($(domain_state "$CLIENT_DOMU"))"}
            break
        fi
        sleep "$LOOK_INTERVAL"
    done
    echo "[$(now)] $SERVER_DOMU: $server_outcome after ${server_seconds:-$(since "$wait_start")} s; $CLIENT_DOMU: $client_outcome after ${client_seconds:-$(since "$wait_start")} s"
}

# Shows domain $1's kernel lines about its NIC and its own lines; its whole
# console too when $2 is not "done".
show_domu() {
    console=$(console_now "$1")
    echo "--- $1's console: its virtio NIC ---"
    echo "$console" | grep -E 'virtio|eth[0-9]' | grep -v 'domu: '
    echo "--- [$(now)] $1's console, its own report lines ---"
    echo "$console" | grep -E 'domu: '
    echo "---"
    if [ "$2" != done ]; then
        echo "--- $1's whole console ---"
        echo "$console"
        echo "---"
    fi
}

# What went wrong with domain $1, whose outcome is $2: its failure line, or
# the outcome.
domu_failure() {
    failure=$(console_now "$1" | grep -oE "$NET_FAILED.*" | head -n 1)
    echo "$1: ${failure:-$2}"
}

# The "domu: split-net <verb> <bytes> bytes sha256 <sum>" line domain $1
# said, as "<bytes> <sum>"; empty when it said none.
transfer_of() {
    console_now "$1" | grep -oE "domu: split-net $2 [0-9]+ bytes sha256 [0-9a-f]{64}" | tail -n 1 \
        | awk '{ print $4, $7 }'
}

# The MAC domain $1 said its NIC has ("domu: split-net eth0 mac <mac>, ...").
said_mac() {
    console_now "$1" | grep -oE 'domu: split-net [a-z0-9]+ mac [0-9a-f:]{17}' | tail -n 1 | sed 's/.* //'
}

# Pings $1 PINGS times from Dom0; prints "<received> <min/avg/max>".
dom0_ping() {
    run ping -c "$PINGS" -W 5 "$1" > /tmp/split-net-ping 2>&1
    cat /tmp/split-net-ping >&2
    received=$(grep -oE '[0-9]+ packets received' /tmp/split-net-ping | sed 's/ .*//')
    rtt=$(grep -oE 'min/avg/max = [0-9./]+' /tmp/split-net-ping | sed 's/^min\/avg\/max = //')
    echo "${received:-0} ${rtt:-none}"
}

# The MAC Dom0's neighbour table has for address $1 on keel0.
neighbour_mac() {
    ip neigh show dev "$SWITCH_PORT" 2> /dev/null | grep -E "^$1 " | grep -oE 'lladdr [0-9a-f:]{17}' | sed 's/^lladdr //'
}

# --- setup -------------------------------------------------------------------------------
before=$(free_memory)
if [ -n "$before" ]; then
    say "dom0: split-net free memory before: $before bytes"
else
    run keel info --json
    say "dom0: split-net info failed: no free_memory in keel info --json"
fi

missing=
for module in $DOM0_MODULES; do
    [ -d "/sys/module/$module" ] || missing="$missing $module"
done
[ -c /dev/net/tun ] || missing="$missing (no /dev/net/tun)"
if [ -z "$missing" ]; then
    say "dom0: split-net modules loaded: $DOM0_MODULES, /dev/net/tun there"
else
    lsmod
    say "dom0: split-net modules missing:$missing (Dom0's /init loads them from /lib/modules)"
fi

# --- create: the server, then the client ------------------------------------------------
created=
if run keel create "$SERVER_CONFIG"; then
    server_id=$(domain_field "$SERVER_DOMU" id)
    say "dom0: split-net created domu-split-net-a (id $server_id): the server, $SERVER_IP, mac $SERVER_MAC"
    if run keel create "$CLIENT_CONFIG"; then
        client_id=$(domain_field "$CLIENT_DOMU" id)
        say "dom0: split-net created domu-split-net-b (id $client_id): the client, $CLIENT_IP, a generated mac"
        created=yes
    else
        show_backend_logs
        say "dom0: split-net create failed: keel create $CLIENT_CONFIG"
    fi
else
    show_backend_logs
    say "dom0: split-net create failed: keel create $SERVER_CONFIG"
fi

if [ -n "$created" ]; then
    echo "keel processes after create:"
    for pid in $(pidof keel); do
        process_line "$pid"
    done

    # --- the switch and Dom0's port on it ----------------------------------------------------
    waited=0
    while [ ! -d "/sys/class/net/$SWITCH_PORT" ] && [ "$waited" -lt "$SWITCH_WAIT" ]; do
        sleep 1
        waited=$((waited + 1))
    done
    switch=$(keel_processes switch)
    if [ ! -d "/sys/class/net/$SWITCH_PORT" ]; then
        ip link
        show_backend_logs
        say "dom0: split-net keel0 missing: no $SWITCH_PORT ${SWITCH_WAIT} s after keel create (switch: '$(echo "$switch" | head -n 1)')"
    elif ! run ip link set "$SWITCH_PORT" up || ! run ip addr add "$DOM0_ADDRESS" dev "$SWITCH_PORT"; then
        ip addr
        say "dom0: split-net keel0 setup failed: ip link set $SWITCH_PORT up; ip addr add $DOM0_ADDRESS dev $SWITCH_PORT"
    elif [ -z "$switch" ]; then
        ps
        show_backend_logs
        say "dom0: split-net switch not running: no 'keel switch' process, though $SWITCH_PORT exists"
    else
        run ip addr show dev "$SWITCH_PORT"
        say "dom0: split-net switch running: $(echo "$switch" | head -n 1); $SWITCH_PORT up with $DOM0_ADDRESS, mac $(cat "/sys/class/net/$SWITCH_PORT/address")"
    fi

    # --- one backend per domain -------------------------------------------------------------
    server_backend=$(backend_pids "$server_id")
    client_backend=$(backend_pids "$client_id")
    if [ "$(echo "$server_backend" | wc -w)" = 1 ] && [ "$(echo "$client_backend" | wc -w)" = 1 ] \
        && [ "$server_backend" != "$client_backend" ]; then
        say "dom0: split-net backends running: $SERVER_DOMU's pid $server_backend, $CLIENT_DOMU's pid $client_backend"
    else
        ps
        show_backend_logs
        say "dom0: split-net backends not running: $SERVER_DOMU (id $server_id) has '$server_backend', $CLIENT_DOMU (id $client_id) has '$client_backend' (want one 'keel backend <id>' each): $(keel_processes backend | tr '\n' ';')"
    fi

    # --- both DomUs: ping each other and Dom0, the transfer -------------------------------
    wait_both
    show_domu "$SERVER_DOMU" "$server_outcome"
    show_domu "$CLIENT_DOMU" "$client_outcome"
    if [ "$server_outcome" = done ] && [ "$client_outcome" = done ]; then
        say "dom0: split-net both domus done: $SERVER_DOMU after $server_seconds s, $CLIENT_DOMU after $client_seconds s"
    else
        show_backend_logs
        if [ "$server_outcome" != done ]; then
            say "dom0: split-net domu failed: $(domu_failure "$SERVER_DOMU" "$server_outcome")"
        fi
        if [ "$client_outcome" != done ]; then
            say "dom0: split-net domu failed: $(domu_failure "$CLIENT_DOMU" "$client_outcome")"
        fi
    fi

    # --- the transfer: what arrived is what was sent -------------------------------------------
    sent=$(transfer_of "$CLIENT_DOMU" sending)
    received=$(transfer_of "$SERVER_DOMU" received)
    if [ -n "$sent" ] && [ "$sent" = "$received" ] \
        && console_now "$CLIENT_DOMU" | grep -qF 'domu: split-net sent '; then
        say "dom0: split-net transfer intact: $CLIENT_DOMU sent and $SERVER_DOMU received ${sent% *} bytes with sha256 ${sent#* }"
    else
        say "dom0: split-net transfer broken: $CLIENT_DOMU sent '${sent:-nothing}', $SERVER_DOMU received '${received:-nothing}' (bytes sha256)"
    fi

    # --- Dom0 reaches both through keel0 -------------------------------------------------------
    server_ping=$(dom0_ping "$SERVER_IP")
    client_ping=$(dom0_ping "$CLIENT_IP")
    run ip neigh show dev "$SWITCH_PORT"
    server_neighbour=$(neighbour_mac "$SERVER_IP")
    client_neighbour=$(neighbour_mac "$CLIENT_IP")
    client_mac=$(said_mac "$CLIENT_DOMU")
    if [ "${server_ping%% *}" != "$PINGS" ] || [ "${client_ping%% *}" != "$PINGS" ]; then
        show_backend_logs
        say "dom0: split-net dom0 ping failed: $SERVER_IP answered ${server_ping%% *} of $PINGS, $CLIENT_IP ${client_ping%% *} of $PINGS"
    elif [ "$server_neighbour" != "$SERVER_MAC" ] || [ -z "$client_mac" ] || [ "$client_neighbour" != "$client_mac" ]; then
        say "dom0: split-net wrong mac: $SERVER_IP is at '$server_neighbour' (want $SERVER_MAC), $CLIENT_IP at '$client_neighbour' ($CLIENT_DOMU said '$client_mac')"
    else
        say "dom0: split-net dom0 reached both domus through keel0: $SERVER_IP $PINGS/$PINGS (rtt ${server_ping#* } ms) at $server_neighbour, $CLIENT_IP $PINGS/$PINGS (rtt ${client_ping#* } ms) at $client_neighbour"
    fi

    # For the reader: each domain's vifs as keel lists them.
    run keel network-list "$SERVER_DOMU"
    run keel network-list "$CLIENT_DOMU"

    # --- the server's virtio console ---------------------------------------------------------------
    # Its config has virtio_console = true: its /dev/hvc0, served by its
    # backend on a socket. The DomU said HVC_HELLO on it and answers each
    # line with "domu: hvc0 polo <line>": the hello comes back from what the
    # backend kept, the answer from a live round trip.
    hvc_output=$(printf '%s\n' "$HVC_WORD" | keel console "$SERVER_DOMU" --hvc --until "$HVC_ANSWER" --timeout "$HVC_TIMEOUT" 2>&1)
    hvc_status=$?
    echo "--- keel console $SERVER_DOMU --hvc ---"
    echo "$hvc_output"
    echo "---"
    if [ "$hvc_status" = 0 ] && echo "$hvc_output" | grep -qF "$HVC_HELLO" && echo "$hvc_output" | grep -qF "$HVC_ANSWER"; then
        say "dom0: split-net virtio console answered: '$HVC_HELLO' kept, '$HVC_ANSWER' live"
    else
        show_backend_logs
        say "dom0: split-net virtio console failed: keel console --hvc status $hvc_status, said: $(echo "$hvc_output" | tail -n 1)"
    fi

    # --- kernels ----------------------------------------------------------------------------------
    problems=$(dmesg | grep -E 'BUG|panic|Oops|WARNING|soft lockup|hard LOCKUP|rcu.*stall|hung_task|Call Trace' \
        | grep -v 'RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable' | head -n 1)
    where=dom0
    for domu in "$SERVER_DOMU" "$CLIENT_DOMU"; do
        [ -n "$problems" ] && break
        problems=$(kernel_problems "$domu" | head -n 1)
        where=$domu
    done
    if [ -z "$problems" ]; then
        say "dom0: split-net kernels clean: dom0, $SERVER_DOMU and $CLIENT_DOMU"
    else
        say "dom0: split-net kernel problems: $where: $problems"
    fi
fi

# --- destroy: memory back, no backend left (after a refused create too) ---------------------
destroyed=yes
destroy_domain "$SERVER_DOMU" || destroyed=
destroy_domain "$CLIENT_DOMU" || destroyed=
if [ -n "$destroyed" ]; then
    after=$(memory_back_to "$before")
    if [ -n "$before" ] && [ "$after" = "$before" ]; then
        say "dom0: split-net destroyed both, memory restored"
    else
        say "dom0: split-net memory leak: before=$before after=$after"
    fi
fi

if wait_no_backend; then
    say "dom0: split-net no backend left (switch: $(keel_processes switch | head -n 1))"
else
    show_backend_logs
    say "dom0: split-net backend left behind ${BACKEND_WAIT} s after destroy: $(keel_processes backend | tr '\n' ';')"
fi

run keel list
say "dom0: split-net checks done"
