# Shell functions Dom0's DomU checks share: /usr/lib/keel/domu-lib.sh in
# Dom0's initramfs (built by xtask/src/guest/dom0_initramfs.rs), sourced by
# domu-test.sh, domu-sched-test.sh, domu-faults-test.sh, hostile-test.sh and
# passthrough-test.sh. Not run by itself.
#
# Times are Dom0's clock (/proc/uptime, 10 ms resolution), the same guest
# time base Keel's cpu_time_ns counts in (the TSC).

export PATH=/bin

# One report line through the kernel log (whole, never split by other output).
say() {
    echo "$*" > /dev/kmsg
}

# Shows a command on the console, then runs it there; its status is returned.
run() {
    echo "dom0# $*"
    "$@"
}

# Seconds since Dom0 booted, e.g. "123.45".
now() {
    read -r seconds _idle < /proc/uptime
    echo "$seconds"
}

# Seconds from $1 (a `now`) to now, two decimals.
since() {
    awk -v start="$1" -v end="$(now)" 'BEGIN { printf "%.2f", end - start }'
}

# Whether awk finds the condition $1 true (variables as name=value args).
holds() {
    condition=$1
    shift
    awk "$@" "BEGIN { exit !($condition) }"
}

# Free host memory in bytes: "free_memory" in `keel info --json`.
free_memory() {
    keel info --json \
        | sed -n -E 's/.*"free_memory(_bytes)?"[[:space:]]*:[[:space:]]*([0-9]+).*/\2/p' \
        | head -n 1
}

# Field $3 of the domain named $2 in the `keel list --json` output $1.
# The records list "id" first, then "name", then every other field.
field_of() {
    echo "$1" | awk -v name="$2" -v key="$3" '
        /"id"[[:space:]]*:/ {
            id = $0
            sub(/^[^:]*:[[:space:]]*/, "", id)
            gsub(/[",[:space:]]/, "", id)
        }
        /"name"[[:space:]]*:/ {
            current = $0
            sub(/^[^:]*:[[:space:]]*"/, "", current)
            sub(/".*/, "", current)
            if (key == "id" && current == name) {
                print id
                exit
            }
            next
        }
        /[{}]/ { current = "" }
        current == name && $0 ~ "\"" key "\"[[:space:]]*:" {
            value = $0
            sub(/^[^:]*:[[:space:]]*/, "", value)
            gsub(/[",[:space:]]/, "", value)
            print value
            exit
        }'
}

# Field $2 of domain $1, asked now.
domain_field() {
    field_of "$(keel list --json)" "$1" "$2"
}

# Domain $1's state ("running", "blocked", "paused", "crashed", ...), empty
# when it is not listed.
domain_state() {
    domain_field "$1" state
}

# Whether `keel list --json` lists a domain named $1.
listed() {
    keel list --json | grep -qE "\"name\"[[:space:]]*:[[:space:]]*\"$1\""
}

# Waits up to 10 s for domain $1 to leave `keel list`.
wait_gone() {
    waited=0
    while listed "$1"; do
        [ "$waited" -ge 10 ] && return 1
        sleep 1
        waited=$((waited + 1))
    done
    return 0
}

# Waits up to 10 s for free memory to be $1 again; prints what it is then.
memory_back_to() {
    waited=0
    current=$(free_memory)
    while [ "$current" != "$1" ] && [ "$waited" -lt 10 ]; do
        sleep 1
        waited=$((waited + 1))
        current=$(free_memory)
    done
    echo "$current"
}

# What exists: the ids and names `keel list --json` gives, and free memory
# (states and counters change by themselves).
snapshot() {
    keel list --json | grep -oE '"(id|name)"[[:space:]]*:[[:space:]]*("[^"]*"|[0-9]+)' \
        | tr -d ' \t' | sort | tr '\n' ' '
    echo "free=$(free_memory)"
}

# Domain $1's console as Keel's ring holds it now (up to 64 KiB), without
# the carriage returns of its serial line.
console_now() {
    keel console "$1" --timeout 0.1 < /dev/null 2> /dev/null | tr -d '\r'
}

# Whether domain $1's console holds the text $2 now.
console_has() {
    keel console "$1" --until "$2" --timeout 0.1 < /dev/null > /dev/null 2>&1
}

# Seconds between two looks at a booting DomU. Each look starts a few
# processes (`keel console`, `keel list`, awk), about a second of Dom0's CPU
# in Bochs, which the booting DomUs would otherwise get.
LOOK_INTERVAL=10

# Waits up to $3 seconds (Dom0's clock) for the text $2 on domain $1's
# console, looking every LOOK_INTERVAL s. Returns 1 on time-out, 2 at once
# when the domain stops running (crashed, shut down or gone).
wait_console() {
    wait_start=$(now)
    looks=0
    while :; do
        looks=$((looks + 1))
        if console_has "$1" "$2"; then
            echo "[$(now)] '$2' on $1's console after $(since "$wait_start") s ($looks looks)"
            return 0
        fi
        case "$(domain_state "$1")" in
            running | blocked | paused) ;;
            *) return 2 ;;
        esac
        holds "waited >= limit" -v waited="$(since "$wait_start")" -v limit="$3" && return 1
        sleep "$LOOK_INTERVAL"
    done
}

# The DomU's own report lines ("[  12.3] domu: ...", and what keel-stress
# says) on domain $1's console, shown on Dom0's console (the last $2 of them
# when $2 is given).
show_domu_lines() {
    echo "--- [$(now)] $1's console, its own report lines ---"
    console_now "$1" | grep -E 'domu: |keel-stress: ' | tail -n "${2:-1000}"
    echo "---"
}

# The last tick domain $1 said ("domu: tick N"), 0 when none.
last_tick() {
    tick=$(console_now "$1" | grep -oE 'domu: tick [0-9]+' | tail -n 1 | sed 's/.* //')
    echo "${tick:-0}"
}

# Kernel trouble on domain $1's console: BUG, Oops, panics, WARN splats,
# lockups, RCU stalls and call traces (as Dom0's own dmesg check, the
# RETBleed notice about Bochs' CPU model excluded); empty when there is none.
kernel_problems() {
    console_now "$1" | grep -E 'BUG|Oops|panic|WARNING|soft lockup|hard LOCKUP|rcu.*stall|hung_task|Call Trace' \
        | grep -v 'RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable'
}

# Destroys domain $1 and waits up to 10 s for it to leave `keel list`.
# Returns 0 when it is gone (or was never listed), 1 when `keel destroy`
# failed, 2 when it is still listed.
destroy_and_wait() {
    listed "$1" || return 0
    run keel destroy "$1" || return 1
    wait_gone "$1" || return 2
    return 0
}

# keel_refuses PATTERN ARGS...: runs `keel ARGS...`, shows it and its output
# (kept in /tmp/keel-output.txt). Returns 0 when it fails saying something
# the extended regular expression PATTERN matches (in any case), 1 when it
# succeeds, 2 when it fails without saying that.
keel_refuses() {
    pattern=$1
    shift
    echo "dom0# keel $*"
    if keel "$@" > /tmp/keel-output.txt 2>&1; then
        cat /tmp/keel-output.txt
        return 1
    fi
    cat /tmp/keel-output.txt
    grep -qiE "$pattern" /tmp/keel-output.txt || return 2
    return 0
}

# The line `keel pci-assignable-list` gives the host PCI function $1
# ("0000:00:01.1  8086:7010  010180  assignable  dma NOT confined"), with
# single spaces; empty when it lists none (or fails).
pci_list_line() {
    keel pci-assignable-list 2> /dev/null | grep -E "^$1[[:space:]]" | tr -s ' \t' '  ' | head -n 1
}
