#!/bin/busybox sh
# Dom0's fault and lifecycle checks: /usr/lib/keel/domu-faults-test.sh in
# Dom0's initramfs (built by xtask/src/guest/dom0_initramfs.rs). Dom0's /init
# runs it when the kernel command line has `keel.test=domu-faults`, then
# powers off.
#
# A witness DomU (domu-tick) says "domu: tick N" every second throughout;
# after each misdeed of another domain it must still be ticking. In order:
#  isolation  domu-probe reads and writes guest-physical addresses outside
#             its RAM (where Dom0 has its management registers and shared
#             memory, above its RAM, an HPET's place): it must never see
#             Dom0's MAGIC or any data but all ones (or zeros), nor keep what
#             it wrote. Keel may read all ones and drop the writes, or stop
#             the domain as crashed (its on_crash is "preserve"): either way
#             Keel, Dom0 and the witness go on. The line says what happened.
#  pause      a spinning DomU's cpu_time_ns does not move while it is paused,
#             and moves again once it is unpaused;
#  reboot     `keel reboot` boots that DomU a second time: its userspace
#             marker comes again, with a new boot id;
#  triple     domu-triple runs `reboot -f` with `reboot=t`, Linux's triple
#             fault method: with on_crash = "preserve" Keel lists it as
#             crashed; then it is destroyed;
#  shutdown   `keel shutdown` of the witness presses its ACPI power button:
#             the witness's /init runs acpid on the button driver, so it
#             must say "domu: power button pressed, powering off" and leave
#             `keel list` (on_poweroff = "destroy") within SHUTDOWN_TIMEOUT s
#             of Dom0's clock; anything else fails;
# and finally every domain is destroyed and all memory comes back.
#
# Every step says one `dom0: domu faults ...` line through the kernel log;
# the boot test bochs-domu-faults (tests/src/cases.rs, DOMU_FAULTS_STEPS and
# DOMU_FAULTS_FAILURES) expects the success lines in order and fails on any
# failure line.

. /usr/lib/keel/domu-lib.sh

TICK_CONFIG=/etc/keel/domu-tick.toml     # domu-tick: keel.domu=tick
PROBE_CONFIG=/etc/keel/domu-probe.toml   # domu-probe: keel.domu=probe, on_crash=preserve
SPIN_CONFIG=/etc/keel/domu-spin.toml     # domu-spin: keel.domu=spin
TRIPLE_CONFIG=/etc/keel/domu-triple.toml # domu-triple: keel.domu=triple reboot=t, on_crash=preserve
TICK_DOMU=domu-tick
PROBE_DOMU=domu-probe
SPIN_DOMU=domu-spin
TRIPLE_DOMU=domu-triple
# What the DomUs' /init (domu-init.sh) says.
DOMU_READY='domu: userspace started'
TICKING='domu: tick 1'
PROBES_DONE='domu: probes done'
SPINNING='domu: spinning'
# What a DomU with a power button (acpid on its input device) says, and
# what its button handler says before it powers off.
POWER_BUTTON='domu: acpid started'
POWERING_OFF='domu: power button pressed, powering off'
# Dom0 seconds (its /proc/uptime) from `keel shutdown` until the DomU must
# have said POWERING_OFF and left `keel list`.
SHUTDOWN_TIMEOUT=120
# Dom0 seconds for a DomU to boot (two at once: twice that).
BOOT_TIMEOUT=600
# Dom0's management function: MAGIC ("KEEL") at offset 0 of BAR 0.
MGMT_DEVICE=/sys/bus/pci/devices/0000:00:01.0
MAGIC=0x4C45454B
# What domu-init.sh writes to each probed address.
PROBE_PATTERN=0x5A5AA5A5
# How long a witness gets to say a new tick, and the pause/unpause windows.
TICK_WINDOW=6
PAUSE_WINDOW=4
# An unpaused spinner must get at least this share of the window.
MIN_SHARE_PERCENT=20

# Whether the witness says a new tick within TICK_WINDOW s; says which.
witness_ticks() {
    first_tick=$(last_tick "$TICK_DOMU")
    sleep "$TICK_WINDOW"
    next_tick=$(last_tick "$TICK_DOMU")
    echo "$TICK_DOMU: tick $first_tick, then $next_tick ${TICK_WINDOW} s later ($(domain_state "$TICK_DOMU"))"
    [ "$next_tick" -gt "$first_tick" ]
}

# Domain $1's CPU time in ns now.
cpu_time() {
    domain_field "$1" cpu_time_ns
}

# Destroys domain $1 if it is listed and waits for it to go; says the
# failure line (with $2 for context) if that does not work.
destroy_domain() {
    listed "$1" || return 0
    if ! run keel destroy "$1"; then
        say "dom0: domu faults destroy failed: $1 ($2)"
        return 1
    fi
    if ! wait_gone "$1"; then
        say "dom0: domu faults destroy failed: $1 still listed 10 s after destroy ($2)"
        return 1
    fi
    return 0
}

# --- free memory before any DomU -------------------------------------------
before=$(free_memory)
if [ -n "$before" ]; then
    say "dom0: domu faults free memory before: $before bytes"
else
    run keel info --json
    say "dom0: domu faults info failed: no free_memory in keel info --json"
fi

# Where Dom0 itself sees its management function: the probed addresses are
# where Keel places its BARs (docs/management.md).
bar0=$(head -n 1 "$MGMT_DEVICE/resource" 2> /dev/null | cut -d ' ' -f 1)
dom0_magic=$(devmem "$bar0" 32 2>&1)
echo "Dom0: management BAR 0 at $bar0, MAGIC there reads $dom0_magic"

# --- the witness and the prober -------------------------------------------
if run keel create "$TICK_CONFIG" && run keel create "$PROBE_CONFIG"; then
    say "dom0: domu faults created domu-tick and domu-probe"
else
    say "dom0: domu faults create failed: $TICK_DOMU, $PROBE_DOMU"
fi

# --- (a) isolation ----------------------------------------------------------
wait_console "$TICK_DOMU" "$TICKING" $((2 * BOOT_TIMEOUT))
tick_status=$?
wait_console "$PROBE_DOMU" "$PROBES_DONE" $((2 * BOOT_TIMEOUT))
probe_status=$?
probe_state=$(domain_state "$PROBE_DOMU")
# The prober's console goes with its memory if Keel stopped it; what it
# said before is still worth showing.
probe_lines=$(console_now "$PROBE_DOMU" | grep 'domu: probe ')
echo "--- $PROBE_DOMU's probe lines ---"
echo "$probe_lines"
echo "---"
show_domu_lines "$TICK_DOMU" 5
run keel list

probes=$(echo "$probe_lines" | grep -c 'domu: probe 0x')
# Every value a probe read: all ones (an empty bus) or zeros, never MAGIC,
# the pattern it wrote, or anything else.
bad_values=$(echo "$probe_lines" | grep -oE '(read|reread)=[^ ]*' | grep -vE '=(0xFFFFFFFF|0x00000000)$' \
    | tr '\n' ' ')
denied=$(echo "$probe_lines" | grep -E 'devmem:|write=[^o]' | head -n 1)
if [ "$tick_status" -ne 0 ]; then
    say "dom0: domu faults witness stopped: $TICK_DOMU never said '$TICKING' (state $(domain_state "$TICK_DOMU"))"
elif echo "$probe_lines" | grep -qi "$MAGIC"; then
    say "dom0: domu faults isolation broken: $PROBE_DOMU read Dom0's MAGIC: $(echo "$probe_lines" | grep -i "$MAGIC" | head -n 1)"
elif [ -n "$denied" ]; then
    say "dom0: domu faults probe not run: $PROBE_DOMU's kernel refused /dev/mem: $denied"
elif [ -n "$bad_values" ]; then
    say "dom0: domu faults isolation broken: $PROBE_DOMU read data outside its RAM: $bad_values"
elif [ "$probe_status" -eq 0 ] && [ "$probes" -ge 7 ]; then
    # Keel read all ones and dropped the writes; the prober spins on.
    values=$(echo "$probe_lines" | grep -oE '(read|reread)=[^ ]*' | sed 's/.*=//' | sort -u | tr '\n' ' ')
    say "dom0: domu faults isolation held: $probes addresses read only ${values}and kept no write; $PROBE_DOMU is $probe_state (Dom0 reads $dom0_magic at its BAR 0, $bar0)"
elif [ "$probe_status" -eq 2 ] && [ "$probe_state" = crashed ]; then
    say "dom0: domu faults isolation held: Keel stopped $PROBE_DOMU after $probes probes; it is crashed (on_crash=preserve; Dom0 reads $dom0_magic at its BAR 0, $bar0)"
else
    say "dom0: domu faults probe not run: wait status $probe_status, state '$probe_state', $probes probes"
fi

if witness_ticks; then
    say "dom0: domu faults witness kept ticking after the probes"
else
    say "dom0: domu faults witness stopped after the probes"
fi

# --- (e) pause and unpause a spinning DomU -----------------------------------
spinner=
case "$probe_state" in
    running | blocked) spinner=$PROBE_DOMU ;;
    *)
        # Keel stopped the prober: another spinner, and the prober goes.
        destroy_domain "$PROBE_DOMU" "crashed prober"
        if run keel create "$SPIN_CONFIG" && wait_console "$SPIN_DOMU" "$SPINNING" "$BOOT_TIMEOUT"; then
            spinner=$SPIN_DOMU
        else
            say "dom0: domu faults create failed: $SPIN_DOMU did not start spinning"
        fi
        ;;
esac

if [ -n "$spinner" ]; then
    if run keel pause "$spinner"; then
        paused_state=$(domain_state "$spinner")
        first=$(cpu_time "$spinner")
        sleep "$PAUSE_WINDOW"
        second=$(cpu_time "$spinner")
        echo "$spinner paused ($paused_state): cpu_time_ns $first, then $second ${PAUSE_WINDOW} s later"
        run keel unpause "$spinner"
        unpaused_state=$(domain_state "$spinner")
        third=$(cpu_time "$spinner")
        third_at=$(now)
        sleep "$PAUSE_WINDOW"
        fourth=$(cpu_time "$spinner")
        window=$(since "$third_at")
        echo "$spinner unpaused ($unpaused_state): cpu_time_ns $third, then $fourth $window s later"
        share=$(awk -v a="$third" -v b="$fourth" -v s="$window" \
            'BEGIN { if (a == "" || b == "" || s <= 0) print -1; else printf "%.1f", (b - a) / (s * 1e7) }')
        if [ "$paused_state" != paused ] || [ -z "$first" ] || [ "$second" != "$first" ]; then
            say "dom0: domu faults paused domain ran: state $paused_state, cpu_time_ns $first -> $second"
        elif ! holds "share >= min" -v share="$share" -v min="$MIN_SHARE_PERCENT"; then
            say "dom0: domu faults unpaused domain did not run: state $unpaused_state, $share% of $window s"
        else
            say "dom0: domu faults pause froze $spinner's cpu time, unpause gave it $share% of $window s"
        fi
    else
        say "dom0: domu faults pause failed: $spinner"
    fi

    # --- (b) reboot ------------------------------------------------------------
    first_console=$(console_now "$spinner")
    first_boot=$(echo "$first_console" | grep -oE 'domu: boot id [0-9a-f-]+' | tail -n 1 | sed 's/.* //')
    id_before=$(domain_field "$spinner" id)
    if ! run keel reboot "$spinner"; then
        say "dom0: domu faults reboot failed: keel reboot $spinner"
    else
        # Waits for a boot id other than the first boot's.
        rebooted=
        wait_start=$(now)
        while :; do
            second_console=$(console_now "$spinner")
            second_boot=$(echo "$second_console" | grep -oE 'domu: boot id [0-9a-f-]+' | tail -n 1 | sed 's/.* //')
            if [ -n "$second_boot" ] && [ "$second_boot" != "$first_boot" ]; then
                rebooted=yes
                break
            fi
            holds "waited >= limit" -v waited="$(since "$wait_start")" -v limit="$BOOT_TIMEOUT" && break
            sleep "$LOOK_INTERVAL"
        done
        markers_first=$(echo "$first_console" | grep -c "$DOMU_READY")
        markers_second=$(echo "$second_console" | grep -c "$DOMU_READY")
        markers=$((markers_first + markers_second))
        if [ "$markers_second" -ge 2 ]; then
            kept="the console kept both boots"
            markers=$markers_second
        else
            kept="the console restarted with the new boot"
        fi
        id_after=$(domain_field "$spinner" id)
        show_domu_lines "$spinner"
        if [ -n "$rebooted" ] && [ "$markers" -ge 2 ] && [ "$id_after" = "$id_before" ]; then
            say "dom0: domu faults reboot booted $spinner a second time: '$DOMU_READY' seen $markers times, boot id $first_boot then $second_boot, id $id_after kept; $kept"
        else
            say "dom0: domu faults reboot did not boot again: boot id '$first_boot' then '$second_boot', '$DOMU_READY' seen $markers times, id $id_before -> '$id_after'"
        fi
    fi
    destroy_domain "$spinner" "after the reboot"
fi

# --- (d) triple fault --------------------------------------------------------
if run keel create "$TRIPLE_CONFIG"; then
    triple_state=$(domain_state "$TRIPLE_DOMU")
    wait_start=$(now)
    while [ "$triple_state" != crashed ]; do
        case "$triple_state" in
            running | blocked) ;;
            *) break ;;
        esac
        holds "waited >= limit" -v waited="$(since "$wait_start")" -v limit="$BOOT_TIMEOUT" && break
        sleep "$LOOK_INTERVAL"
        triple_state=$(domain_state "$TRIPLE_DOMU")
    done
    run keel list
    echo "dom0# keel dmesg | grep 'triple fault'"
    keel dmesg | grep 'triple fault'
    if [ "$triple_state" = crashed ]; then
        say "dom0: domu faults triple fault left domu-triple crashed"
    else
        say "dom0: domu faults triple fault not seen: $TRIPLE_DOMU is '$triple_state'"
    fi
    if witness_ticks; then
        say "dom0: domu faults witness kept ticking after the triple fault"
    else
        say "dom0: domu faults witness stopped after the triple fault"
    fi
    if destroy_domain "$TRIPLE_DOMU" "crashed"; then
        say "dom0: domu faults destroyed the crashed domain"
    fi
else
    say "dom0: domu faults create failed: $TRIPLE_DOMU"
fi

# The witness lived through all of it: its kernel must not complain.
problems=$(kernel_problems "$TICK_DOMU")
if [ -z "$problems" ]; then
    say "dom0: domu faults witness kernel clean"
else
    echo "--- $TICK_DOMU's kernel problems ---"
    echo "$problems"
    say "dom0: domu faults witness kernel problems: $(echo "$problems" | head -n 1)"
fi

# --- (c) keel shutdown --------------------------------------------------------
# `keel shutdown` presses the ACPI power button and returns, like `xl
# shutdown`. The witness's /init loaded evdev.ko and button.ko and runs
# acpid on the button ("domu: acpid started"); its handler says
# POWERING_OFF, waits a second and powers off, and on_poweroff = "destroy"
# takes the domain (and its console) away. A `keel console --until` started
# before the press follows the console, so the line is read before it goes.
# Failures: no acpid in the witness, `keel shutdown` refused, the line not
# said or the domain still listed SHUTDOWN_TIMEOUT s after the press.
show_button_lines() {
    echo "--- [$(now)] $TICK_DOMU's power button lines ---"
    console_now "$TICK_DOMU" | grep -E 'domu: (power button|no input|acpid)|input: |ACPI: button'
    echo "---"
}
if ! console_has "$TICK_DOMU" "$POWER_BUTTON"; then
    show_button_lines
    setup=$(console_now "$TICK_DOMU" | grep -oE 'domu: (power button setup|no input|acpid failed).*' | head -n 1)
    say "dom0: domu faults shutdown impossible: $TICK_DOMU never said '$POWER_BUTTON' (${setup:-no power button line}; $(domain_state "$TICK_DOMU"))"
else
    show_button_lines
    rm -f /tmp/shutdown-console.txt
    keel console "$TICK_DOMU" --until "$POWERING_OFF" --timeout "$SHUTDOWN_TIMEOUT" \
        < /dev/null > /tmp/shutdown-console.txt 2>&1 &
    watcher=$!
    echo "dom0# keel shutdown $TICK_DOMU"
    shutdown_start=$(now)
    keel shutdown "$TICK_DOMU" > /tmp/shutdown.txt 2>&1
    shutdown_status=$?
    cat /tmp/shutdown.txt
    if [ "$shutdown_status" -ne 0 ]; then
        kill "$watcher" 2> /dev/null
        wait "$watcher"
        say "dom0: domu faults shutdown failed: keel shutdown $TICK_DOMU status $shutdown_status: $(head -n 1 /tmp/shutdown.txt) ($(domain_state "$TICK_DOMU"))"
    else
        # Returns when the line appears, or fails when the domain goes
        # without it or SHUTDOWN_TIMEOUT s pass.
        wait "$watcher"
        watcher_status=$?
        said_after=$(since "$shutdown_start")
        gone=
        while :; do
            listed "$TICK_DOMU" || { gone=yes; break; }
            holds "waited >= limit" -v waited="$(since "$shutdown_start")" -v limit="$SHUTDOWN_TIMEOUT" && break
            sleep 1
        done
        gone_after=$(since "$shutdown_start")
        state=$(domain_state "$TICK_DOMU")
        echo "--- $TICK_DOMU's last console lines (keel console --until, status $watcher_status) ---"
        tr -d '\r' < /tmp/shutdown-console.txt | grep -vE 'domu: tick [0-9]+$' | tail -n 8
        echo "---"
        run keel list
        echo "dom0# keel dmesg | grep 'domain [0-9]*[ :(]' | tail -n 4"
        keel dmesg | grep -E 'domain [0-9]+[ :(]' | tail -n 4
        if [ "$watcher_status" -ne 0 ]; then
            say "dom0: domu faults shutdown ignored: $TICK_DOMU never said '$POWERING_OFF' (keel console status $watcher_status after $said_after s; $(tail -n 1 /tmp/shutdown-console.txt | tr -d '\r'); ${state:-not listed})"
        elif [ -z "$gone" ]; then
            say "dom0: domu faults shutdown ignored: $TICK_DOMU said '$POWERING_OFF' after $said_after s but is still listed ($state) ${SHUTDOWN_TIMEOUT} s after the press"
        else
            say "dom0: domu faults shutdown handled: $TICK_DOMU said '$POWERING_OFF' $said_after s after keel shutdown and left keel list after $gone_after s (bound ${SHUTDOWN_TIMEOUT} s)"
        fi
    fi
fi

# --- all gone, all memory back -----------------------------------------------
destroy_domain "$PROBE_DOMU" "cleanup"
destroy_domain "$SPIN_DOMU" "cleanup"
if destroy_domain "$TICK_DOMU" "the witness"; then
    after=$(memory_back_to "$before")
    if [ -n "$before" ] && [ "$after" = "$before" ]; then
        say "dom0: domu faults destroyed every domu, memory restored"
    else
        say "dom0: domu faults memory leak: before=$before after=$after"
    fi
fi

run keel list
say "dom0: domu faults checks done"
