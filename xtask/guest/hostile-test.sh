#!/bin/busybox sh
# Dom0's hostile-guest checks: /usr/lib/keel/hostile-test.sh in Dom0's
# initramfs (built by xtask/src/guest/dom0_initramfs.rs). Dom0's /init runs
# it when the kernel command line has `keel.test=hostile`, then powers off.
#
# `keel-stress hostile` (guest-tools) misbehaves against Keel, first in Dom0
# itself, then in a DomU: it sweeps CPUID leaves, reads and writes random
# and architectural MSRs (writes only where the guest's own kernel does not
# depend on them, plus writes the architecture refuses, which Keel must
# refuse too), reads and writes ports (never the kernel's devices or a reset
# or power-off port), maps guest-physical addresses outside RAM and devices
# (the holes of /proc/iomem, above 4 GiB too) through /dev/mem and reads
# and writes them (they must read all ones or zeros), with string
# instructions too (rep movs/stos), does string port I/O, VMCALLs from user
# mode with random registers, single-steps CPUID, VMCALL and IN with
# RFLAGS.TF (the #DB must come after each), raises #AC and hardware
# breakpoint #DBs. Keel must neither panic nor hang, the guest's failures
# must stay its own, and a witness DomU (domu-tick) must keep ticking
# throughout:
#  witness    domu-tick boots and says "domu: tick N" every second;
#  dom0 run   domu-hostile is created (it boots meanwhile), and Dom0 runs
#             keel-stress hostile for DOM0_SECONDS of its clock: it must end
#             with status 0 (no FAILED line) and the witness must have
#             ticked at least once every TICK_RATE_DIVISOR seconds;
#  domu run   domu-hostile (keel.domu=hostile, on_crash = "preserve") runs
#             keel-stress hostile itself and says "domu: hostile done (...)";
#             Keel may instead stop it as crashed: either outcome is
#             contained, and the line says which (with Keel's reason);
#             meanwhile the witness ticks on;
#  keel       `keel list` and `keel info` still answer and list what exists;
#  kernels    Dom0's dmesg, the witness's and (if it finished) the hostile
#             DomU's consoles show no BUG, Oops, panic, WARNING or lockup;
# and finally every DomU is destroyed and all memory comes back.
#
# Every step says one `dom0: hostile ...` line through the kernel log, and
# keel-stress's own lines (Dom0's here, the DomU's shown from its console)
# go there too; the boot test bochs-hostile (tests/src/cases.rs,
# HOSTILE_STEPS and HOSTILE_FAILURES) expects the success lines in order and
# fails on any failure line or "keel-stress: hostile FAILED".

. /usr/lib/keel/domu-lib.sh

TICK_CONFIG=/etc/keel/domu-tick.toml       # domu-tick: keel.domu=tick
HOSTILE_CONFIG=/etc/keel/domu-hostile.toml # domu-hostile: keel.domu=hostile, on_crash=preserve
TICK_DOMU=domu-tick
HOSTILE_DOMU=domu-hostile
# What the DomUs' /init (domu-init.sh) says.
TICKING='domu: tick 1'
HOSTILE_DONE='domu: hostile done'
# Dom0's own run: its seed (the DomU's config names another), its length,
# and the groups of operations it leaves out (`keel-stress hostile --skip`;
# none: every check counts).
DOM0_SEED=1
DOM0_SECONDS=60
DOM0_SKIP=
# Dom0 seconds for a DomU to boot, and for the hostile DomU to boot and
# finish its run (keel.hostile-seconds in its config) on a CPU it shares.
BOOT_TIMEOUT=600
HOSTILE_TIMEOUT=900
# The witness must say at least one tick per this many seconds of a run
# (it says one a second when it gets the CPU).
TICK_RATE_DIVISOR=4
# How long a witness gets to say a new tick after a run.
TICK_WINDOW=6
# The module behind /dev/cpu/0/msr (Debian builds it as one).
MSR_MODULE=/lib/modules/msr.ko

# Whether the witness says a new tick within TICK_WINDOW s; says which.
witness_ticks() {
    first_tick=$(last_tick "$TICK_DOMU")
    sleep "$TICK_WINDOW"
    next_tick=$(last_tick "$TICK_DOMU")
    echo "$TICK_DOMU: tick $first_tick, then $next_tick ${TICK_WINDOW} s later ($(domain_state "$TICK_DOMU"))"
    [ "$next_tick" -gt "$first_tick" ]
}

# Whether the witness ticked from $1 (a tick number) at $2 (a `now`) often
# enough: at least one tick per TICK_RATE_DIVISOR s since, and again within
# TICK_WINDOW s. Sets $ticked to what it saw.
witness_kept_ticking() {
    ticks_now=$(last_tick "$TICK_DOMU")
    elapsed=$(since "$2")
    ticked="tick $1 -> $ticks_now in $elapsed s"
    holds "ticks * divisor >= elapsed" -v ticks="$((ticks_now - $1))" -v divisor="$TICK_RATE_DIVISOR" \
        -v elapsed="$elapsed" && witness_ticks
}

# Destroys domain $1 if it is listed and waits for it to go; says the
# failure line (with $2 for context) if that does not work.
destroy_domain() {
    listed "$1" || return 0
    if ! run keel destroy "$1"; then
        say "dom0: hostile destroy failed: $1 ($2)"
        return 1
    fi
    if ! wait_gone "$1"; then
        say "dom0: hostile destroy failed: $1 still listed 10 s after destroy ($2)"
        return 1
    fi
    return 0
}

# --- setup -------------------------------------------------------------------
before=$(free_memory)
if [ -n "$before" ]; then
    say "dom0: hostile free memory before: $before bytes"
else
    run keel info --json
    say "dom0: hostile info failed: no free_memory in keel info --json"
fi
if ! insmod "$MSR_MODULE" allow_writes=on; then
    say "dom0: hostile setup failed: insmod $MSR_MODULE"
elif [ ! -c /dev/cpu/0/msr ]; then
    say "dom0: hostile setup failed: no /dev/cpu/0/msr"
fi

# --- the witness ---------------------------------------------------------------
if run keel create "$TICK_CONFIG"; then
    if wait_console "$TICK_DOMU" "$TICKING" "$BOOT_TIMEOUT"; then
        say "dom0: hostile witness ticking: $TICK_DOMU said '$TICKING'"
    else
        show_domu_lines "$TICK_DOMU" 5
        say "dom0: hostile witness stopped: $TICK_DOMU never said '$TICKING' ($(domain_state "$TICK_DOMU"))"
    fi
else
    say "dom0: hostile create failed: $TICK_DOMU"
fi

# --- Dom0's own run, while domu-hostile boots ------------------------------------
if run keel create "$HOSTILE_CONFIG"; then
    hostile_id=$(domain_field "$HOSTILE_DOMU" id)
    say "dom0: hostile created domu-hostile (id $hostile_id)"
else
    say "dom0: hostile create failed: $HOSTILE_DOMU"
fi

rm -f /tmp/hostile-status /tmp/hostile-summary
run_start=$(now)
run_tick=$(last_tick "$TICK_DOMU")
echo "dom0# keel-stress hostile --seed $DOM0_SEED --seconds $DOM0_SECONDS --skip '$DOM0_SKIP'"
# Each line of keel-stress goes through the kernel log, whole; its status
# and summary are kept for the report.
{
    keel-stress hostile --seed "$DOM0_SEED" --seconds "$DOM0_SECONDS" --skip "$DOM0_SKIP" 2>&1
    echo "keel-stress: exit status $?"
} | while IFS= read -r line; do
    say "$line"
    case "$line" in
        "keel-stress: exit status "*) echo "${line##* }" > /tmp/hostile-status ;;
        "keel-stress: hostile done "*) echo "${line#keel-stress: hostile done }" > /tmp/hostile-summary ;;
    esac
done
status=$(cat /tmp/hostile-status 2> /dev/null)
summary=$(cat /tmp/hostile-summary 2> /dev/null)
if [ "$status" = 0 ] && [ -n "$summary" ]; then
    say "dom0: hostile dom0 run survived: keel-stress status 0 after $(since "$run_start") s: $summary"
else
    say "dom0: hostile dom0 run failed: keel-stress status '${status:-none}' (${summary:-no summary})"
fi
if witness_kept_ticking "$run_tick" "$run_start"; then
    say "dom0: hostile witness kept ticking through dom0's run: $ticked"
else
    say "dom0: hostile witness stopped during dom0's run: $ticked ($(domain_state "$TICK_DOMU"))"
fi

# --- the hostile DomU's run --------------------------------------------------------
domu_start=$(now)
domu_tick=$(last_tick "$TICK_DOMU")
wait_console "$HOSTILE_DOMU" "$HOSTILE_DONE" "$HOSTILE_TIMEOUT"
wait_status=$?
hostile_state=$(domain_state "$HOSTILE_DOMU")
# Its console goes with its memory if Keel stopped it; what it said is
# shown either way.
show_domu_lines "$HOSTILE_DOMU"
done_line=$(console_now "$HOSTILE_DOMU" | grep -oE "$HOSTILE_DONE.*" | tail -n 1)
domu_summary=$(console_now "$HOSTILE_DOMU" | grep -oE 'keel-stress: hostile done .*' | tail -n 1)
rounds=$(console_now "$HOSTILE_DOMU" | grep -oE 'keel-stress: hostile round [0-9]+' | tail -n 1 | sed 's/.* //')
# Keel's own account if it stopped the domain.
stop=$(keel dmesg | grep -E "domain ${hostile_id:-none} stopped: " | tail -n 1 | sed 's/^.*keel: //')
run keel list
case "$wait_status:$hostile_state:$done_line" in
    "0:running:$HOSTILE_DONE (keel-stress status 0)" | "0:blocked:$HOSTILE_DONE (keel-stress status 0)")
        say "dom0: hostile domu run contained: $HOSTILE_DOMU finished its run and is $hostile_state: ${domu_summary#keel-stress: }"
        ;;
    0:*)
        say "dom0: hostile domu run failed: $HOSTILE_DOMU said '$done_line' (${domu_summary:-no summary}; $hostile_state)"
        ;;
    2:crashed:*)
        say "dom0: hostile domu run contained: Keel stopped $HOSTILE_DOMU (crashed, on_crash=preserve) after round ${rounds:-0}: ${stop:-no stop line in keel dmesg}"
        ;;
    *)
        say "dom0: hostile domu run not finished: wait status $wait_status, state '$hostile_state', ${rounds:-no} rounds, '${done_line}'"
        ;;
esac
if witness_kept_ticking "$domu_tick" "$domu_start"; then
    say "dom0: hostile witness kept ticking through domu-hostile's run: $ticked"
else
    say "dom0: hostile witness stopped during $HOSTILE_DOMU's run: $ticked ($(domain_state "$TICK_DOMU"))"
fi

# --- Keel's management still answers --------------------------------------------
list=$(keel list 2>&1)
list_status=$?
info=$(keel info 2>&1)
info_status=$?
echo "dom0# keel list"
echo "$list"
echo "dom0# keel info"
echo "$info"
if [ "$list_status" -eq 0 ] && [ "$info_status" -eq 0 ] && echo "$list" | grep -qw Domain-0 \
    && echo "$list" | grep -qw "$TICK_DOMU"; then
    say "dom0: hostile keel list and info answer: $(echo "$list" | sed 1d | awk '{ printf "%s ", $1 }')listed"
else
    say "dom0: hostile management broken: keel list status $list_status, keel info status $info_status"
fi

# --- kernels ------------------------------------------------------------------------
# Dom0's own, as /init's checks judge it (the RETBleed notice about Bochs'
# CPU model excluded), the witness's, and the hostile DomU's if it finished.
problems=$(dmesg | grep -E 'BUG|panic|Oops|WARNING|soft lockup|hard LOCKUP|rcu.*stall|hung_task|Call Trace' \
    | grep -v 'RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable' | head -n 1)
where="dom0"
if [ -z "$problems" ]; then
    problems=$(kernel_problems "$TICK_DOMU" | head -n 1)
    where=$TICK_DOMU
fi
if [ -z "$problems" ] && [ "$hostile_state" != crashed ]; then
    problems=$(kernel_problems "$HOSTILE_DOMU" | head -n 1)
    where=$HOSTILE_DOMU
fi
if [ -z "$problems" ]; then
    say "dom0: hostile kernels clean: dom0, $TICK_DOMU and $HOSTILE_DOMU ($hostile_state)"
else
    say "dom0: hostile kernel problems: $where: $problems"
fi

# --- all gone, all memory back ---------------------------------------------------------
destroy_domain "$HOSTILE_DOMU" "the hostile domu"
if destroy_domain "$TICK_DOMU" "the witness"; then
    after=$(memory_back_to "$before")
    if [ -n "$before" ] && [ "$after" = "$before" ]; then
        say "dom0: hostile destroyed every domu, memory restored"
    else
        say "dom0: hostile memory leak: before=$before after=$after"
    fi
fi

run keel list
say "dom0: hostile checks done"
