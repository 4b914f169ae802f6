#!/bin/busybox sh
# Dom0's DomU checks: /usr/lib/keel/domu-test.sh in Dom0's initramfs (built
# by xtask/src/guest/dom0_initramfs.rs). Dom0's /init runs it when the kernel
# command line has `keel.test=domu`, then powers off.
#
# It creates, inspects and destroys DomUs with the `keel` tool and feeds it
# bad input. Every step says one `dom0: domu ...` line through the kernel
# log; the boot test bochs-domu (tests/src/cases.rs, DOMU_STEPS and
# DOMU_FAILURES) expects the success lines in order and fails on any failure
# line. The commands and their own output go to the console as well, so a
# failure shows what `keel` said.

export PATH=/bin

CONFIG=/etc/keel/domu.toml                   # domu1: a shell on its console
POWEROFF_CONFIG=/etc/keel/domu-poweroff.toml # domu2: powers off at once
DOMU=domu1
CYCLE_DOMU=domu2
CYCLES=5
# DomU's /init (domu-init.sh) says this first thing.
DOMU_READY='domu: userspace started'

# say, run, free_memory, listed, wait_gone, memory_back_to, snapshot.
. /usr/lib/keel/domu-lib.sh

# The names `keel list --json` gives, on one line.
domain_names() {
    keel list --json | grep -oE '"name"[[:space:]]*:[[:space:]]*"[^"]*"' \
        | sed 's/.*"\([^"]*\)"$/\1/' | tr '\n' ' '
}

# Destroys the domains not named in $1 (a list from domain_names): what a
# wrongly accepted command created, so later steps start clean.
destroy_new_domains() {
    for name in $(domain_names); do
        case " $1 " in
            *" $name "*) ;;
            *) run keel destroy "$name" ;;
        esac
    done
}

bad_inputs_accepted=0
# refuse_saying WHAT PATTERN ARGS...: `keel ARGS...` must fail, say why (its
# output must match the extended regular expression PATTERN, when not
# empty) and leave the domains and free memory as they were (a refused
# `keel create` destroys what it half built; that may take a moment).
refuse_saying() {
    what=$1
    pattern=$2
    shift 2
    names_before=$(domain_names)
    state_before=$(snapshot)
    echo "dom0# keel $*"
    if keel "$@" > /tmp/refused.txt 2>&1; then
        cat /tmp/refused.txt
        say "dom0: domu bad input accepted: $what"
        bad_inputs_accepted=$((bad_inputs_accepted + 1))
        destroy_new_domains "$names_before"
        return
    fi
    cat /tmp/refused.txt
    state_after=$(snapshot)
    waited=0
    while [ "$state_after" != "$state_before" ] && [ "$waited" -lt 10 ]; do
        sleep 1
        waited=$((waited + 1))
        state_after=$(snapshot)
    done
    if [ "$state_after" != "$state_before" ]; then
        say "dom0: domu bad input accepted: $what (refused, but it changed what exists)"
        echo "before: $state_before"
        echo "after:  $state_after"
        bad_inputs_accepted=$((bad_inputs_accepted + 1))
        destroy_new_domains "$names_before"
    elif [ -n "$pattern" ] && ! grep -qE "$pattern" /tmp/refused.txt; then
        say "dom0: domu bad input refused unclearly: $what: keel said '$(head -n 1 /tmp/refused.txt)', not /$pattern/"
        bad_inputs_accepted=$((bad_inputs_accepted + 1))
    fi
}

# refuse WHAT ARGS...: refuse_saying without a required message.
refuse() {
    what=$1
    shift
    refuse_saying "$what" "" "$@"
}

# --- free memory before any DomU -------------------------------------------
run keel info
before=$(free_memory)
if [ -n "$before" ]; then
    say "dom0: domu free memory before: $before bytes"
else
    run keel info --json
    say "dom0: domu info failed: no free_memory in keel info --json"
fi

# --- create, watch the console, list, destroy ------------------------------
run keel create "$CONFIG"
status=$?
if [ "$status" -eq 0 ]; then
    say "dom0: domu created"

    # Not through `run`: the boot test looks for DomU's own line, so Dom0
    # must not print the text it waits for.
    echo "dom0# keel console $DOMU --until \"\$DOMU_READY\" --timeout 600"
    if keel console "$DOMU" --until "$DOMU_READY" --timeout 600; then
        echo
        say "dom0: domu console marker seen"
    else
        status=$?
        echo
        say "dom0: domu console marker not seen (keel console status $status)"
    fi

    run keel list
    json=$(keel list --json)
    echo "$json"
    if ! echo "$json" | grep -qE '"id"[[:space:]]*:[[:space:]]*0([^0-9]|$)'; then
        say "dom0: domu list wrong: no domain with id 0 (Dom0)"
    elif ! echo "$json" | grep -qE "\"name\"[[:space:]]*:[[:space:]]*\"$DOMU\""; then
        say "dom0: domu list wrong: no $DOMU"
    else
        say "dom0: domu list ok"
    fi

    if ! run keel destroy "$DOMU"; then
        say "dom0: domu destroy failed: $DOMU"
    elif ! wait_gone "$DOMU"; then
        run keel list
        say "dom0: domu still listed 10 s after destroy: $DOMU"
    else
        after=$(memory_back_to "$before")
        if [ -n "$before" ] && [ "$after" = "$before" ]; then
            say "dom0: domu destroyed, memory restored"
        else
            say "dom0: domu memory leak: before=$before after=$after"
        fi
    fi
else
    say "dom0: domu create failed (keel create status $status)"
fi

# --- bad input: each must fail and change nothing --------------------------
bad_inputs_tried=yes
refuse "a config file that does not exist" create /nonexistent.toml

sed -e 's/^name = .*/name = "domu-unknown-key"/' "$CONFIG" > /tmp/domu-unknown-key.toml
echo 'colour = "blue"' >> /tmp/domu-unknown-key.toml
refuse "a config with an unknown key" create /tmp/domu-unknown-key.toml

now=$(free_memory)
too_much=$((${now:-0} / 1048576 + 1))
sed -e 's/^name = .*/name = "domu-too-big"/' -e "s/^memory = .*/memory = $too_much/" \
    "$CONFIG" > /tmp/domu-too-big.toml
refuse "a config asking for $too_much MiB, more than the free memory" create /tmp/domu-too-big.toml

refuse "destroying a domain that does not exist" destroy nosuchdomain

# A kernel file that is not there: the tool finds out before creating anything.
sed -e 's/^name = .*/name = "domu-no-kernel"/' -e 's|^kernel = .*|kernel = "/nonexistent/vmlinuz"|' \
    "$CONFIG" > /tmp/domu-no-kernel.toml
refuse_saying "a config whose kernel does not exist" 'cannot read /nonexistent/vmlinuz' \
    create /tmp/domu-no-kernel.toml

# The first 1000000 bytes of the kernel: its setup header is whole, the
# protected-mode kernel it describes is cut short. Only Keel's loader can
# tell (syssize), when `keel create` boots the domain; the tool then
# destroys what it built.
head -c 1000000 /usr/lib/keel/vmlinuz > /tmp/vmlinuz-truncated
sed -e 's/^name = .*/name = "domu-truncated"/' -e 's|^kernel = .*|kernel = "/tmp/vmlinuz-truncated"|' \
    "$CONFIG" > /tmp/domu-truncated.toml
refuse_saying "a kernel truncated to 1000000 bytes" 'cannot load the kernel: .*truncated' \
    create /tmp/domu-truncated.toml
rm -f /tmp/vmlinuz-truncated

paused_start=$(free_memory)
if run keel create "$CONFIG" -p; then
    refuse "a second domain named $DOMU" create "$CONFIG"
    if ! run keel destroy "$DOMU"; then
        say "dom0: domu destroy failed: paused $DOMU"
    elif ! wait_gone "$DOMU"; then
        say "dom0: domu still listed 10 s after destroy: paused $DOMU"
    else
        after=$(memory_back_to "$paused_start")
        if [ "$after" != "$paused_start" ]; then
            say "dom0: domu memory leak: before=$paused_start after=$after (paused $DOMU)"
        fi
    fi
else
    bad_inputs_tried=no
    say "dom0: domu create failed: paused $DOMU (keel create -p)"
fi

if [ "$bad_inputs_tried" = yes ] && [ "$bad_inputs_accepted" -eq 0 ]; then
    say "dom0: domu bad inputs refused"
fi

# --- an unprivileged caller ------------------------------------------------
# busybox su, run by root, asks no password; /etc/passwd lists nobody.
uid=$(su -s /bin/sh nobody -c 'id -u')
if [ "$uid" != 65534 ]; then
    say "dom0: domu unprivileged check impossible: su nobody ran as uid '$uid'"
else
    state_before=$(snapshot)
    accepted=
    echo "dom0# (as nobody) keel list"
    su -s /bin/sh nobody -c '/bin/keel list' && accepted="$accepted list"
    echo "dom0# (as nobody) keel create $POWEROFF_CONFIG -p"
    su -s /bin/sh nobody -c "/bin/keel create $POWEROFF_CONFIG -p" && accepted="$accepted create"
    if [ -n "$accepted" ]; then
        say "dom0: domu unprivileged caller accepted:$accepted"
        listed "$CYCLE_DOMU" && run keel destroy "$CYCLE_DOMU"
    elif [ "$(snapshot)" != "$state_before" ]; then
        say "dom0: domu unprivileged caller accepted: refused, but what exists changed"
    else
        say "dom0: domu unprivileged refused"
    fi
fi

# --- create/destroy cycles -------------------------------------------------
cycle_start=$(free_memory)
failed=
cycle=1
while [ "$cycle" -le "$CYCLES" ]; do
    if ! run keel create "$POWEROFF_CONFIG" -p; then
        failed="create $cycle"
        break
    fi
    if ! run keel destroy "$CYCLE_DOMU"; then
        failed="destroy $cycle"
        break
    fi
    if ! wait_gone "$CYCLE_DOMU"; then
        failed="$CYCLE_DOMU still listed 10 s after destroy $cycle"
        break
    fi
    cycle=$((cycle + 1))
done
if [ -n "$failed" ]; then
    say "dom0: domu cycles failed: $failed"
else
    after=$(memory_back_to "$cycle_start")
    if [ -n "$cycle_start" ] && [ "$after" = "$cycle_start" ]; then
        say "dom0: domu cycles no leak"
    else
        say "dom0: domu cycles leak: before=$cycle_start after=$after ($CYCLES cycles)"
    fi
fi

run keel list
say "dom0: domu checks done"
