#!/bin/busybox sh
# Dom0's side of `cargo xtask bench io` (xtask/src/commands/bench/io.rs):
# /usr/lib/keel/bench-io.sh in Dom0's initramfs (built by
# xtask/src/guest/dom0_initramfs.rs). Dom0's /init runs it when the kernel
# command line has `keel.test=bench-io`, then powers off.
#
# Sequential reads of one image file, /var/lib/keel/split-rw.ext4 (16 MiB),
# natively in Dom0 and from a DomU through the split block driver (its
# virtio-blk frontend, Keel's transport and notifications, Dom0's backend
# process; docs/virtio.md). Every time is on a guest's own clock, which runs
# on the TSC: in Bochs, emulated instructions. In order:
#  native    `dd bs=65536` reads the file NATIVE_PASSES times, after
#            `echo 3 > /proc/sys/vm/drop_caches` (Dom0's root is an
#            initramfs, so the file stays in memory all the same: "native"
#            is Dom0 reading it from its page cache, where the backend's
#            preads come from too), and a dd that reads nothing (count=0)
#            gives the cost of starting dd; one line
#            "dom0: bench-io native bytes=... passes=... ns=... startup_ns=...
#            tsc_hz=...";
#  domu      `keel create` of domu-bench-io (keel.domu=bench-io: the file as
#            its read-only vda; xtask/guest/domu-bench-io.sh); wait for its
#            "domu: bench-io ready" line (it has loaded its drivers, warmed up
#            and timed its dd start-up);
#  window    snapshot A of `keel list --json`; type "go" on its console
#            (`keel console` ends once the DomU says "domu: bench-io go",
#            and the DomU idles BENCH_IO_PAUSE s before reading, so that
#            Dom0's tool is gone before the read starts); sleep as long as
#            the warm-up says the read takes, with a margin (10% and 1 s),
#            and nothing else
#            (no console polling during the read); then look for the
#            DomU's result line every LOOK_WAIT s; snapshot B;
#  idle      sleep IDLE_SECONDS with both domains idle as they were around
#            the read, snapshot C: the exits idle domains cost per second,
#            which io.rs subtracts for the part of A..B outside the read;
#  report    each snapshot as one line "dom0: bench-io snapshot <a|b|c>
#            ns=<Dom0's clock> dom0.<field>=... domu.<field>=..." (cpu_time_ns
#            and the exits fields of `keel list --json`), the DomU's own
#            bench-io lines from its console, then "off" to the DomU, which
#            powers off (on_poweroff = "destroy"); "dom0: bench-io done".
# Any problem says "dom0: bench-io failed: <why>" (after showing the DomU's
# console when it has one), which fails the bench.
#
# Then the split network driver (bench_net): two DomUs, each with one
# virtio-net NIC on Dom0's switch (`keel switch`; docs/testing.md, "Split
# network device"), in keel.domu=split-net mode with keel.net-bench=1
# (domu-init.sh's split_net_bench_*): domu-bench-net-a the server
# (10.0.0.2), domu-bench-net-b the client (10.0.0.3). In order:
#  create    `keel create` of the server, then the client; keel0 up with
#            10.0.0.1/24 (the DomUs ping Dom0 too);
#  ready     the DomUs ping each other and Dom0, the client sends the server
#            a warm-up and says "domu: split-net bench ready
#            warmup_bytes=... warmup_ns=... bytes=... tsc_hz=..." (looked
#            for every LOOK_INTERVAL s);
#  window    snapshot A; "go" on the client's console (`keel console`
#            ends once it says "domu: split-net bench go"; it idles
#            NET_PAUSE s before sending); sleep as long as the warm-up's pace
#            says the transfer of `bytes` takes, 10% and 1 s more; look for
#            "domu: split-net bench sent" every LOOK_WAIT s; snapshot B;
#  idle      sleep IDLE_SECONDS, snapshot C (all three domains idle);
#  rtt       "rtt" on the client's console: it idles NET_PAUSE s, pings
#            the server NET_PINGS times every NET_INTERVAL s and says
#            "domu: split-net bench result rtt_min_ms=... rtt_avg_ms=...
#            rtt_max_ms=... pings=... bytes=... ns=... tx_packets=...
#            rx_packets=... tx_bytes=... tsc_hz=...";
#  report    "dom0: bench-io net snapshot <a|b|c> ns=<Dom0's clock>
#            dom0.<field>=... server.<field>=... client.<field>=...", both
#            DomUs' split-net lines, then destroy both; "dom0: bench-io net
#            done".
# A problem there says "dom0: bench-io net failed: <why>": not a failure
# marker of the boot, so the split-blk figures still come; io.rs fails the
# bench on it afterwards.

. /usr/lib/keel/domu-lib.sh
# tsc_hz: the rate Dom0's clock runs at.
. /usr/lib/keel/tsc-hz.sh

BENCH_CONFIG=/etc/keel/domu-bench-io.toml # domu-bench-io: keel.domu=bench-io, the image read-only
BENCH_DOMU=domu-bench-io
# The image both sides read, and its size (split_disks.rs).
IMAGE=/var/lib/keel/split-rw.ext4
IMAGE_BYTES=16777216
# Bytes per read (the DomU's too).
BLOCK=65536
# How often Dom0 reads the file.
NATIVE_PASSES=4
# What the DomU's bench-io script says.
READY='domu: bench-io ready'
GO='domu: bench-io go'
RESULT='domu: bench-io result'
DOMU_FAILED='domu: bench-io FAILED'
OFF='domu: bench-io powering off'
# Seconds between "go" and the DomU's read (domu-bench-io.sh's BENCH_IO_PAUSE).
BENCH_IO_PAUSE=2
# Dom0 seconds for the DomU to boot and warm up, and for its read.
BOOT_TIMEOUT=600
READ_TIMEOUT=900
# Seconds between looks for a line once the read should be over.
LOOK_WAIT=2
# The idle window after B.
IDLE_SECONDS=10

# The network part: the DomUs' configs and names (the server's MAC is the
# configured one, the client's generated).
NET_SERVER_CONFIG=/etc/keel/domu-bench-net-a.toml # domu-bench-net-a: keel.net-role=server keel.net-bench=1
NET_SERVER_DOMU=domu-bench-net-a
NET_CLIENT_CONFIG=/etc/keel/domu-bench-net-b.toml # domu-bench-net-b: keel.net-role=client keel.net-bench=1
NET_CLIENT_DOMU=domu-bench-net-b
# Dom0's port on the switch and its address (the DomUs ping it).
SWITCH_PORT=keel0
DOM0_ADDRESS=10.0.0.1/24
# Dom0 seconds for keel0 to appear once `keel create` returned.
SWITCH_WAIT=10
# What the client says (domu-init.sh's split_net_bench_client), and what
# either says when a step failed.
NET_READY='domu: split-net bench ready'
NET_GO='domu: split-net bench go'
NET_SENT='domu: split-net bench sent'
NET_PINGING='domu: split-net bench pinging'
NET_RESULT='domu: split-net bench result'
NET_DOMU_FAILED='domu: split-net FAILED'
# Seconds the client idles after "go" and after "rtt" (SPLIT_NET_BENCH_PAUSE),
# its pings and their interval (SPLIT_NET_BENCH_PINGS, SPLIT_NET_BENCH_INTERVAL).
NET_PAUSE=2
NET_PINGS=20
NET_INTERVAL=0.2
# Dom0 seconds for both DomUs to boot, find each other and warm up (they
# boot at once on the one emulated CPU), for the transfer past its expected
# end, and for the pings.
NET_BOOT_TIMEOUT=1500
NET_TRANSFER_TIMEOUT=900
NET_PING_TIMEOUT=300

failed() {
    say "dom0: bench-io failed: $*"
}

# Sets stamp_ns to Dom0's monotonic clock in nanoseconds (the third line of
# /proc/timer_list, "now at N nsecs"; shell builtins only, no process).
stamp() {
    { read -r _ && read -r _ && read -r _ _ stamp_ns _; } < /proc/timer_list
}

# The counters in the `keel list --json` output $1 of the domains named by
# the following arguments, each NAME=LABEL (Dom0 is always "dom0"), one
# line: "dom0.cpu_time_ns=... dom0.exits=... dom0.exits_io=... ...
# LABEL.cpu_time_ns=... ..." (one awk, not one per field: every process
# costs Dom0 time in Bochs).
counters() {
    json=$1
    shift
    echo "$json" | awk -v labels="Domain-0=dom0 $*" '
        BEGIN {
            count = split(labels, pairs, " ")
            for (i = 1; i <= count; i++) {
                at = index(pairs[i], "=")
                label[substr(pairs[i], 1, at - 1)] = substr(pairs[i], at + 1)
            }
        }
        /[{]/ { who = "" }
        /"name"[[:space:]]*:/ {
            name = $0
            sub(/^[^:]*:[[:space:]]*"/, "", name)
            sub(/".*/, "", name)
            who = (name in label) ? label[name] : ""
            next
        }
        who != "" && /"(cpu_time_ns|exits[a-z_]*)"[[:space:]]*:/ {
            key = $0
            sub(/^[[:space:]]*"/, "", key)
            sub(/".*/, "", key)
            value = $0
            sub(/^[^:]*:[[:space:]]*/, "", value)
            gsub(/[",[:space:]]/, "", value)
            printf "%s%s.%s=%s", separator, who, key, value
            separator = " "
        }
        END { print "" }'
}

# Waits up to $2 s for the DomU's console to say $1, looking every 5 s.
# Returns 1 when the DomU said DOMU_FAILED, 2 when it stopped running, 3
# on time-out.
wait_for() {
    wait_start=$(now)
    while :; do
        console_has "$BENCH_DOMU" "$1" && return 0
        console_has "$BENCH_DOMU" "$DOMU_FAILED" && return 1
        case "$(domain_state "$BENCH_DOMU")" in
            running | blocked) ;;
            *) return 2 ;;
        esac
        holds "waited >= limit" -v waited="$(since "$wait_start")" -v limit="$2" && return 3
        sleep 5
    done
}

# Why wait_for returned $1, for a failure line.
wait_failure() {
    case $1 in
        1) echo "$(console_now "$BENCH_DOMU" | grep -oE "$DOMU_FAILED.*" | head -n 1)" ;;
        2) echo "$BENCH_DOMU stopped ($(domain_state "$BENCH_DOMU"))" ;;
        *) echo "timed out" ;;
    esac
}

# The DomU's whole console and the backends' logs, for the reader.
show_domu() {
    echo "--- $BENCH_DOMU's whole console ---"
    console_now "$BENCH_DOMU"
    for log in /run/keel/*.log; do
        [ -e "$log" ] || continue
        echo "--- $log (last 20 lines) ---"
        tail -n 20 "$log"
    done
    echo "---"
}

bench() {
    # The image may travel gzip-compressed (split-blk-test.sh unpacks it
    # the same way).
    if [ ! -e "$IMAGE" ] && [ -e "$IMAGE.gz" ]; then
        gunzip -c "$IMAGE.gz" > "$IMAGE" 2> /dev/null
    fi
    size=$(stat -c %s "$IMAGE" 2> /dev/null)
    if [ "$size" != "$IMAGE_BYTES" ]; then
        failed "$IMAGE is ${size:-missing} bytes, not $IMAGE_BYTES"
        return
    fi

    # --- native: Dom0 reads the file -------------------------------------------------------
    sync
    echo 3 > /proc/sys/vm/drop_caches
    stamp
    start=$stamp_ns
    dd if="$IMAGE" of=/dev/null bs="$BLOCK" count=0 2> /dev/null
    stamp
    startup_ns=$((stamp_ns - start))
    pass=0
    stamp
    start=$stamp_ns
    while [ "$pass" -lt "$NATIVE_PASSES" ]; do
        if ! dd if="$IMAGE" of=/dev/null bs="$BLOCK" 2> /tmp/bench-io-dd; then
            failed "dd of $IMAGE: $(cat /tmp/bench-io-dd)"
            return
        fi
        pass=$((pass + 1))
    done
    stamp
    say "dom0: bench-io native bytes=$((IMAGE_BYTES * NATIVE_PASSES)) passes=$NATIVE_PASSES ns=$((stamp_ns - start)) startup_ns=$startup_ns tsc_hz=$(tsc_hz)"

    # --- the DomU boots and warms up ----------------------------------------------------------
    if ! run keel create "$BENCH_CONFIG"; then
        show_domu
        failed "keel create $BENCH_CONFIG"
        return
    fi
    wait_for "$READY" "$BOOT_TIMEOUT"
    waited=$?
    if [ "$waited" != 0 ]; then
        show_domu
        failed "no '$READY' from $BENCH_DOMU: $(wait_failure "$waited")"
        return
    fi
    ready=$(console_now "$BENCH_DOMU" | grep -oE "$READY .*" | head -n 1)
    echo "$BENCH_DOMU: $ready"
    # How long to sleep through the read: the warm-up's pace for the whole
    # image (in Bochs within 1% of the read's time), 10% more, the pause
    # and 1 s. Every second slept beyond the read is idle time whose exits
    # io.rs estimates and subtracts; a look during the read would take
    # Dom0 time from it.
    sleep_seconds=$(echo "$ready" | awk -v image="$IMAGE_BYTES" -v pause="$BENCH_IO_PAUSE" '{
        for (i = 1; i <= NF; i++) {
            split($i, pair, "=")
            value[pair[1]] = pair[2]
        }
        read_ns = value["warmup_ns"] - value["startup_ns"]
        if (value["warmup_bytes"] <= 0 || read_ns <= 0) { print ""; exit }
        printf "%.1f\n", (value["startup_ns"] + read_ns * image / value["warmup_bytes"]) * 1.1 / 1e9 + pause + 1
    }')
    if [ -z "$sleep_seconds" ]; then
        show_domu
        failed "unreadable ready line from $BENCH_DOMU: '$ready'"
        return
    fi

    # --- the measured window: A, go, sleep, the result, B -------------------------------------
    stamp
    a_ns=$stamp_ns
    a_json=$(keel list --json)
    if ! printf 'go\n' | keel console "$BENCH_DOMU" --until "$GO" --timeout 60 > /dev/null; then
        show_domu
        failed "$BENCH_DOMU did not say '$GO' within 60 s of typing go"
        return
    fi
    sleep "$sleep_seconds"
    looks=0
    window_start=$(now)
    while :; do
        looks=$((looks + 1))
        console_has "$BENCH_DOMU" "$RESULT" && break
        if console_has "$BENCH_DOMU" "$DOMU_FAILED"; then
            show_domu
            failed "$(console_now "$BENCH_DOMU" | grep -oE "$DOMU_FAILED.*" | head -n 1)"
            return
        fi
        if holds "waited >= limit" -v waited="$(since "$window_start")" -v limit="$READ_TIMEOUT"; then
            show_domu
            failed "no '$RESULT' from $BENCH_DOMU $READ_TIMEOUT s after the expected end of its read"
            return
        fi
        sleep "$LOOK_WAIT"
    done
    stamp
    b_ns=$stamp_ns
    b_json=$(keel list --json)

    # --- the idle window: B to C -----------------------------------------------------------
    sleep "$IDLE_SECONDS"
    stamp
    c_ns=$stamp_ns
    c_json=$(keel list --json)

    # --- report ---------------------------------------------------------------------------------
    echo "slept $sleep_seconds s through the read, then $looks look(s) for its result"
    for snapshot in a b c; do
        eval "snapshot_ns=\$${snapshot}_ns snapshot_json=\$${snapshot}_json"
        # shellcheck disable=SC2154 # set by the eval
        line=$(counters "$snapshot_json" "$BENCH_DOMU=domu")
        case " $line" in
            *" domu.exits="*" dom0.exits="* | *" dom0.exits="*" domu.exits="*) ;;
            *)
                echo "$snapshot_json"
                failed "snapshot $snapshot lacks Dom0 or $BENCH_DOMU in keel list --json"
                return
                ;;
        esac
        # shellcheck disable=SC2154
        say "dom0: bench-io snapshot $snapshot ns=$snapshot_ns $line"
    done
    echo "--- $BENCH_DOMU's bench-io lines ---"
    console_now "$BENCH_DOMU" | grep -F 'domu: bench-io'
    echo "---"

    # --- the DomU powers off -----------------------------------------------------------------
    printf 'off\n' | keel console "$BENCH_DOMU" --until "$OFF" --timeout 30 > /dev/null 2>&1
    if ! wait_gone "$BENCH_DOMU"; then
        destroy_and_wait "$BENCH_DOMU" || failed "$BENCH_DOMU still listed after keel destroy"
    fi
}

net_failed() {
    say "dom0: bench-io net failed: $*"
}


# Waits up to $2 s for the client's console to say $1, looking every $3 s.
# Returns 1 when either DomU said NET_DOMU_FAILED, 2 when one stopped
# running, 3 on time-out.
net_wait_for() {
    wait_start=$(now)
    while :; do
        console_has "$NET_CLIENT_DOMU" "$1" && return 0
        for domu in "$NET_CLIENT_DOMU" "$NET_SERVER_DOMU"; do
            console_has "$domu" "$NET_DOMU_FAILED" && return 1
        done
        for domu in "$NET_CLIENT_DOMU" "$NET_SERVER_DOMU"; do
            case "$(domain_state "$domu")" in
                running | blocked) ;;
                *) return 2 ;;
            esac
        done
        holds "waited >= limit" -v waited="$(since "$wait_start")" -v limit="$2" && return 3
        sleep "$3"
    done
}

# Why net_wait_for returned $1, for a failure line.
net_wait_failure() {
    case $1 in
        1)
            for domu in "$NET_CLIENT_DOMU" "$NET_SERVER_DOMU"; do
                failure=$(console_now "$domu" | grep -oE "$NET_DOMU_FAILED.*" | head -n 1)
                [ -n "$failure" ] && echo "$domu: $failure" && return
            done
            ;;
        2) echo "a DomU stopped: $NET_SERVER_DOMU $(domain_state "$NET_SERVER_DOMU"), $NET_CLIENT_DOMU $(domain_state "$NET_CLIENT_DOMU")" ;;
        *) echo "timed out" ;;
    esac
}

# Both DomUs' split-net lines, and their whole consoles when $1 is "all",
# and the backends' and the switch's logs.
show_net_domus() {
    for domu in "$NET_SERVER_DOMU" "$NET_CLIENT_DOMU"; do
        if [ "$1" = all ]; then
            echo "--- $domu's whole console ---"
            console_now "$domu"
        else
            echo "--- $domu's split-net lines ---"
            console_now "$domu" | grep -F 'domu: split-net'
        fi
    done
    if [ "$1" = all ]; then
        for log in /run/keel/*.log; do
            [ -e "$log" ] || continue
            echo "--- $log (last 20 lines) ---"
            tail -n 20 "$log"
        done
    fi
    echo "---"
}

# Looks for text $1 on the client's console every LOOK_WAIT s for up to $2
# s; says why not (net_failed) and returns 1 when it does not come.
net_look_for() {
    look_start=$(now)
    looks=0
    while :; do
        looks=$((looks + 1))
        console_has "$NET_CLIENT_DOMU" "$1" && return 0
        for domu in "$NET_CLIENT_DOMU" "$NET_SERVER_DOMU"; do
            if console_has "$domu" "$NET_DOMU_FAILED"; then
                show_net_domus all
                net_failed "$domu: $(console_now "$domu" | grep -oE "$NET_DOMU_FAILED.*" | head -n 1)"
                return 1
            fi
        done
        if holds "waited >= limit" -v waited="$(since "$look_start")" -v limit="$2"; then
            show_net_domus all
            net_failed "no '$1' from $NET_CLIENT_DOMU $2 s after its expected time"
            return 1
        fi
        sleep "$LOOK_WAIT"
    done
}

# The split network driver between two DomUs: see the header.
bench_net() {
    # --- create: the server, then the client; keel0 -----------------------------------------
    if ! run keel create "$NET_SERVER_CONFIG"; then
        net_failed "keel create $NET_SERVER_CONFIG"
        return
    fi
    if ! run keel create "$NET_CLIENT_CONFIG"; then
        net_failed "keel create $NET_CLIENT_CONFIG"
        return
    fi
    waited=0
    while [ ! -d "/sys/class/net/$SWITCH_PORT" ] && [ "$waited" -lt "$SWITCH_WAIT" ]; do
        sleep 1
        waited=$((waited + 1))
    done
    if ! run ip link set "$SWITCH_PORT" up || ! run ip addr add "$DOM0_ADDRESS" dev "$SWITCH_PORT"; then
        ip link
        net_failed "cannot bring $SWITCH_PORT up with $DOM0_ADDRESS"
        return
    fi

    # --- both boot, find each other, warm up -------------------------------------------------
    net_wait_for "$NET_READY" "$NET_BOOT_TIMEOUT" "$LOOK_INTERVAL"
    waited=$?
    if [ "$waited" != 0 ]; then
        show_net_domus all
        net_failed "no '$NET_READY' from $NET_CLIENT_DOMU: $(net_wait_failure "$waited")"
        return
    fi
    ready=$(console_now "$NET_CLIENT_DOMU" | grep -oE "$NET_READY .*" | head -n 1)
    echo "$NET_CLIENT_DOMU: $ready"
    # As for the read: the warm-up's pace for the whole transfer, 10% more,
    # the pause and 1 s.
    sleep_seconds=$(echo "$ready" | awk -v pause="$NET_PAUSE" '{
        for (i = 1; i <= NF; i++) {
            split($i, pair, "=")
            value[pair[1]] = pair[2]
        }
        if (value["warmup_bytes"] <= 0 || value["warmup_ns"] <= 0 || value["bytes"] <= 0) { print ""; exit }
        printf "%.1f\n", value["warmup_ns"] * value["bytes"] / value["warmup_bytes"] * 1.1 / 1e9 + pause + 1
    }')
    if [ -z "$sleep_seconds" ]; then
        show_net_domus all
        net_failed "unreadable ready line from $NET_CLIENT_DOMU: '$ready'"
        return
    fi

    # --- the measured window: A, go, sleep, sent, B ---------------------------------------------
    stamp
    a_ns=$stamp_ns
    a_json=$(keel list --json)
    if ! printf 'go\n' | keel console "$NET_CLIENT_DOMU" --until "$NET_GO" --timeout 60 > /dev/null; then
        show_net_domus all
        net_failed "$NET_CLIENT_DOMU did not say '$NET_GO' within 60 s of typing go"
        return
    fi
    sleep "$sleep_seconds"
    net_look_for "$NET_SENT" "$NET_TRANSFER_TIMEOUT" || return
    stamp
    b_ns=$stamp_ns
    b_json=$(keel list --json)
    sent_looks=$looks

    # --- the idle window: B to C ------------------------------------------------------------
    sleep "$IDLE_SECONDS"
    stamp
    c_ns=$stamp_ns
    c_json=$(keel list --json)

    # --- the round trips ----------------------------------------------------------------------
    if ! printf 'rtt\n' | keel console "$NET_CLIENT_DOMU" --until "$NET_PINGING" --timeout 60 > /dev/null; then
        show_net_domus all
        net_failed "$NET_CLIENT_DOMU did not say '$NET_PINGING' within 60 s of typing rtt"
        return
    fi
    # Through the pings without a look: the pause, the pings and 2 s.
    sleep "$(awk -v n="$NET_PINGS" -v i="$NET_INTERVAL" -v pause="$NET_PAUSE" 'BEGIN { printf "%.1f\n", pause + n * i + 2 }')"
    net_look_for "$NET_RESULT" "$NET_PING_TIMEOUT" || return

    # --- report ---------------------------------------------------------------------------------
    echo "slept $sleep_seconds s through the transfer, then $sent_looks look(s) for its end"
    for snapshot in a b c; do
        eval "snapshot_ns=\$${snapshot}_ns snapshot_json=\$${snapshot}_json"
        # shellcheck disable=SC2154 # set by the eval
        line=$(counters "$snapshot_json" "$NET_SERVER_DOMU=server" "$NET_CLIENT_DOMU=client")
        for who in dom0 server client; do
            case " $line" in
                *" $who.exits="*) ;;
                *)
                    echo "$snapshot_json"
                    net_failed "snapshot $snapshot lacks $who's exits in keel list --json (Domain-0, $NET_SERVER_DOMU, $NET_CLIENT_DOMU)"
                    return
                    ;;
            esac
        done
        # shellcheck disable=SC2154
        say "dom0: bench-io net snapshot $snapshot ns=$snapshot_ns $line"
    done
    show_net_domus lines
}

bench
bench_net
# Both DomUs go (after a failure too); no backend may stay.
for domu in "$NET_SERVER_DOMU" "$NET_CLIENT_DOMU"; do
    destroy_and_wait "$domu" || net_failed "$domu still listed after keel destroy"
done
say "dom0: bench-io net done"
say "dom0: bench-io done"
