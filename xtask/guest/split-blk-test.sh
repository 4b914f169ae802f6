#!/bin/busybox sh
# Dom0's split block device checks: /usr/lib/keel/split-blk-test.sh in
# Dom0's initramfs (built by xtask/src/guest/dom0_initramfs.rs). Dom0's
# /init runs it when the kernel command line has `keel.test=split-blk`, then
# powers off.
#
# "Split drivers": the DomU's own virtio-blk driver (the frontend) talks to
# virtio-pci functions Keel presents, whose requests a backend process in
# Dom0's userspace (`keel backend ...`, started by `keel create` for the
# config's `disk = [...]`) serves from image files. domu-split-blk has two:
# /var/lib/keel/split-rw.ext4 read-write (its /dev/vda, an ext4 file
# system) and /var/lib/keel/split-ro.img read-only (its /dev/vdb, 2048
# sectors and 300 bytes it must not see); xtask/src/guest/split_disks.rs
# makes both, with the sums the DomU checks them against. In order:
#  setup      uio and uio_pci_generic are loaded (Dom0's /init loads them:
#             the backends drive Keel's management function through them);
#             the images are there, with their sizes; a copy of the read-only
#             one and the ext4 superblock's mount count and lifetime writes
#             are kept;
#  create     `keel create` of domu-split-blk works and leaves a backend
#             (a `keel` process) running;
#  boot 1     the DomU (keel.domu=split-blk, domu-init.sh) loads the virtio
#             drivers, finds vda (read-write, 32768 sectors) and vdb
#             (read-only, 2048 sectors), mounts vda, checks data.bin against
#             data.sha256, writes persist.txt ("boot-1") and syncs, writes
#             4 MiB and reads them back intact after dropping its page cache,
#             unmounts, checks vdb's sectors against ro.sha256, sees a write
#             to vdb refused and vdb unchanged, and says
#             "domu: split-blk done";
#  hostile    the first boot also ran `keel-stress virtio-hostile` on vdb
#             (malformed chains, rings rewritten under the backend) and
#             then read vda again: the backend is the same process, still
#             running;
#  file       the ext4 image file in Dom0 shows the DomU's mount (its mount
#             count one up) and at least the 4 MiB of writes (the
#             superblock's lifetime writes): the writes reached the file;
#  reboot     `keel reboot` boots the DomU again (a new boot id); this boot
#             finds persist.txt and says "domu: split-blk persisted boot-1",
#             then passes every check again;
#  kernels    Dom0's dmesg and the DomU's console show no BUG, Oops, panic,
#             WARNING or lockup;
#  restart    the backend killed with SIGKILL while the second boot reads
#             vda in a loop; `keel backend-restart` starts it again and the
#             DomU's read passes go on (the request the dead backend had
#             taken is served again);
#  destroy    destroying domu-split-blk (while its second boot keeps reading
#             vda: requests in flight) gives all memory back and leaves no
#             backend behind; the read-only image file is unchanged.
#
# Every step says one `dom0: split-blk ...` line through the kernel log,
# and the DomU's own lines are shown from its console after each boot; the
# boot test bochs-split-blk (tests/src/cases.rs, SPLIT_BLK_STEPS and
# SPLIT_BLK_FAILURES) expects the success lines in order and fails on any
# failure line or the DomU's "domu: split-blk FAILED".

. /usr/lib/keel/domu-lib.sh

SPLIT_CONFIG=/etc/keel/domu-split-blk.toml # domu-split-blk: keel.domu=split-blk, the two disks
SPLIT_DOMU=domu-split-blk
# The images the config names, and their sizes (split_disks.rs).
RW_IMAGE=/var/lib/keel/split-rw.ext4
RO_IMAGE=/var/lib/keel/split-ro.img
RW_IMAGE_BYTES=16777216
RO_IMAGE_BYTES=1048876
# A copy of the read-only image taken before the DomU runs.
RO_ORIGINAL=/tmp/split-ro.img.orig
# The kernel modules the backends need (kernel::DOM0_MODULES).
UIO_MODULES="uio uio_pci_generic"
# What the DomU's /init (domu-init.sh) says when it has checked both disks,
# when a check failed, and on a boot that finds the first boot's write.
SPLIT_DONE='domu: split-blk done'
SPLIT_FAILED='domu: split-blk FAILED'
SPLIT_WROTE='domu: split-blk wrote persist.txt (boot-1)'
SPLIT_PERSISTED='domu: split-blk persisted boot-1'
# KiB the DomU writes at least on every boot (its 4 MiB file).
MIN_KIB_WRITTEN=4096
# Dom0 seconds for the DomU to boot and check its disks.
BOOT_TIMEOUT=600
# Dom0 seconds for the backends to end after the domain is destroyed.
BACKEND_WAIT=10
# Dom0 seconds for the reads to go on after `keel backend-restart`.
RESTART_WAIT=300
# Where `keel backend` writes its stderr (backend-<id>.log).
BACKEND_LOGS=/run/keel

# Destroys domain $1 if it is listed and waits for it to go; says the
# failure line (with $2 for context) if that does not work.
destroy_domain() {
    destroy_and_wait "$1"
    case $? in
        0) return 0 ;;
        1) say "dom0: split-blk destroy failed: keel destroy $1 ($2)" ;;
        *) say "dom0: split-blk destroy failed: $1 still listed 10 s after destroy ($2)" ;;
    esac
    return 1
}

# The keel processes running now, "pid: command line" each on a line. The
# script runs no keel command meanwhile, so each is a backend.
keel_processes() {
    for pid in $(pidof keel); do
        echo "$pid: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null)"
    done
}

# Waits up to BACKEND_WAIT s for every keel process to end; returns 1 if
# some remain.
wait_no_backend() {
    waited=0
    while [ -n "$(pidof keel)" ]; do
        [ "$waited" -ge "$BACKEND_WAIT" ] && return 1
        sleep 1
        waited=$((waited + 1))
    done
    return 0
}

# The last "domu: split-blk read pass N" the DomU said (empty: none yet).
read_passes() {
    console_now "$SPLIT_DOMU" | grep -oE 'domu: split-blk read pass [0-9]+' | tail -n 1 | sed 's/.* //'
}

# Little-endian unsigned field of $3 bytes at byte $2 of file $1.
file_field() {
    od -An -tu"$3" -j "$2" -N "$3" "$1" | tr -d ' '
}

# The ext4 superblock (at byte 1024) of the read-write image: its mount
# count (s_mnt_count at 0x34) and lifetime KiB written (s_kbytes_written
# at 0x178), "count kib".
superblock_counts() {
    echo "$(file_field "$RW_IMAGE" $((1024 + 0x34)) 2) $(file_field "$RW_IMAGE" $((1024 + 0x178)) 8)"
}

# Waits for a boot of the DomU other than boot id $1 (empty: any) to say
# SPLIT_DONE or SPLIT_FAILED, or for the DomU to stop running, or
# BOOT_TIMEOUT. Sets $outcome (done, failed, stopped (...), still waiting
# ...), $boot_id and $boot_lines (its console from that boot's
# "domu: boot id" line on, whether the ring kept an earlier boot or not),
# and shows the DomU's kernel lines about its disks and its own lines.
wait_boot() {
    wait_start=$(now)
    outcome=
    boot_id=
    boot_lines=
    while :; do
        console=$(console_now "$SPLIT_DOMU")
        boot_id=$(echo "$console" | grep -oE 'domu: boot id [0-9a-f-]+' | tail -n 1 | sed 's/.* //')
        if [ -n "$boot_id" ] && [ "$boot_id" != "$1" ]; then
            boot_lines=$(echo "$console" | sed -n "/domu: boot id $boot_id/,\$p")
        elif [ -z "$1" ]; then
            # The first boot, its boot id line not (or no longer) there.
            boot_lines=$console
        else
            boot_lines=
        fi
        if [ -n "$boot_lines" ]; then
            if echo "$boot_lines" | grep -qF "$SPLIT_FAILED"; then
                outcome=failed
                break
            fi
            if echo "$boot_lines" | grep -qF "$SPLIT_DONE"; then
                outcome=done
                break
            fi
        fi
        state=$(domain_state "$SPLIT_DOMU")
        case "$state" in
            running | blocked) ;;
            *)
                outcome="stopped ($state)"
                break
                ;;
        esac
        if holds "waited >= limit" -v waited="$(since "$wait_start")" -v limit="$BOOT_TIMEOUT"; then
            outcome="still waiting after $BOOT_TIMEOUT s ($state)"
            break
        fi
        sleep "$LOOK_INTERVAL"
    done
    echo "[$(now)] $SPLIT_DOMU boot ${boot_id:-?}: $outcome after $(since "$wait_start") s"
    echo "--- $SPLIT_DOMU's console: its virtio disks ---"
    echo "$boot_lines" | grep -E 'virtio|vd[a-z]|EXT4' | grep -v 'domu: '
    echo "--- [$(now)] $SPLIT_DOMU's console, its own report lines (boot ${boot_id:-?}) ---"
    echo "$boot_lines" | grep -E 'domu: '
    echo "---"
    if [ "$outcome" != done ]; then
        # All it said, and what the backends logged, for the reader.
        echo "--- $SPLIT_DOMU's whole console ---"
        echo "$console"
        show_backend_logs
    fi
}

# The last lines of each backend's log.
show_backend_logs() {
    for log in "$BACKEND_LOGS"/*.log; do
        [ -e "$log" ] || continue
        echo "--- $log (last 20 lines) ---"
        tail -n 20 "$log"
    done
    echo "---"
}

# What went wrong with a boot that did not say SPLIT_DONE: the DomU's
# failure line, or the outcome.
boot_failure() {
    failure=$(echo "$boot_lines" | grep -oE "$SPLIT_FAILED.*" | head -n 1)
    echo "${failure:-$outcome}"
}

# --- setup -------------------------------------------------------------------------------
before=$(free_memory)
if [ -n "$before" ]; then
    say "dom0: split-blk free memory before: $before bytes"
else
    run keel info --json
    say "dom0: split-blk info failed: no free_memory in keel info --json"
fi

missing=
for module in $UIO_MODULES; do
    [ -d "/sys/module/$module" ] || missing="$missing $module"
done
if [ -z "$missing" ]; then
    say "dom0: split-blk uio modules loaded: $UIO_MODULES"
else
    lsmod
    say "dom0: split-blk uio modules missing:$missing (Dom0's /init loads them from /lib/modules)"
fi

# The ext4 image travels gzip-compressed (only this test pays for the
# 16 MiB); unpacked here, it is the file the backend serves.
gunzip -c "$RW_IMAGE.gz" > "$RW_IMAGE" 2> /dev/null
rw_bytes=$(stat -c %s "$RW_IMAGE" 2> /dev/null)
ro_bytes=$(stat -c %s "$RO_IMAGE" 2> /dev/null)
# What the read-only image holds, to compare with at the end (cmp: summing
# it would cost Bochs far more).
rm -f "$RO_ORIGINAL"
cp "$RO_IMAGE" "$RO_ORIGINAL" 2> /dev/null
counts_before=$(superblock_counts 2> /dev/null)
mounts_before=${counts_before% *}
kib_before=${counts_before#* }
if [ "$rw_bytes" = "$RW_IMAGE_BYTES" ] && [ "$ro_bytes" = "$RO_IMAGE_BYTES" ] && [ "$mounts_before" = 0 ]; then
    say "dom0: split-blk images ready: $RW_IMAGE $rw_bytes bytes (never mounted, $kib_before KiB written by mkfs), $RO_IMAGE $ro_bytes bytes"
else
    ls -l /var/lib/keel
    say "dom0: split-blk images wrong: $RW_IMAGE ${rw_bytes:-missing} bytes (want $RW_IMAGE_BYTES, mount count '$mounts_before', want 0), $RO_IMAGE ${ro_bytes:-missing} bytes (want $RO_IMAGE_BYTES)"
fi

# --- create --------------------------------------------------------------------------------
if run keel create "$SPLIT_CONFIG"; then
    split_id=$(domain_field "$SPLIT_DOMU" id)
    say "dom0: split-blk created domu-split-blk (id $split_id)"

    backends=$(keel_processes)
    echo "keel processes after create:"
    echo "$backends"
    if [ -n "$backends" ]; then
        say "dom0: split-blk backend running: $(echo "$backends" | wc -l) keel process(es): $(echo "$backends" | head -n 1)"
    else
        ps
        say "dom0: split-blk backend not running: no keel process after keel create"
    fi

    # --- boot 1: both disks checked, the write made ----------------------------------------
    wait_boot ""
    first_boot=$boot_id
    if [ "$outcome" != done ]; then
        say "dom0: split-blk first boot failed: $SPLIT_DOMU $(boot_failure)"
    elif ! echo "$boot_lines" | grep -qF "$SPLIT_WROTE"; then
        say "dom0: split-blk first boot failed: $SPLIT_DOMU did not say '$SPLIT_WROTE': $(echo "$boot_lines" | grep -oE 'domu: split-blk (persisted|wrote).*' | head -n 1)"
    else
        say "dom0: split-blk first boot checked both disks: $(echo "$boot_lines" | grep -oE 'domu: split-blk big\.bin.*' | head -n 1 | sed 's/^domu: split-blk //')"
    fi
    # The first boot ran a hostile frontend on vdb: the backend that serves
    # it must be the same process, still running.
    after_hostile=$(keel_processes)
    if [ -n "$backends" ] && [ "$after_hostile" = "$backends" ] \
        && echo "$boot_lines" | grep -q 'domu: split-blk vda still served after the hostile frontend'; then
        say "dom0: split-blk backend survived the hostile frontend: $(echo "$boot_lines" | grep -oE 'hostile frontend on vdb.*' | head -n 1)"
    else
        echo "keel processes now:"
        echo "$after_hostile"
        say "dom0: split-blk backend did not survive the hostile frontend: before '$(echo "$backends" | head -n 1)', now '$(echo "$after_hostile" | head -n 1)'"
    fi

    # --- the writes in Dom0's file ---------------------------------------------------------------
    counts=$(superblock_counts)
    mounts=${counts% *}
    kib=${counts#* }
    if [ "$mounts" = $((mounts_before + 1)) ] && [ $((kib - kib_before)) -ge "$MIN_KIB_WRITTEN" ]; then
        say "dom0: split-blk writes reached split-rw.ext4: mount count $mounts_before -> $mounts, lifetime writes $kib_before -> $kib KiB"
    else
        say "dom0: split-blk writes not in the image: mount count $mounts_before -> '$mounts' (want $((mounts_before + 1))), lifetime writes $kib_before -> '$kib' KiB (want $MIN_KIB_WRITTEN more)"
    fi

    # --- reboot: the write persisted -----------------------------------------------------------
    if run keel reboot "$SPLIT_DOMU"; then
        say "dom0: split-blk rebooted domu-split-blk (boot id $first_boot)"
        wait_boot "$first_boot"
        if [ "$outcome" != done ]; then
            say "dom0: split-blk persistence failed: the second boot: $SPLIT_DOMU $(boot_failure)"
        elif ! echo "$boot_lines" | grep -qF "$SPLIT_PERSISTED"; then
            say "dom0: split-blk persistence failed: the second boot did not say '$SPLIT_PERSISTED': $(echo "$boot_lines" | grep -oE 'domu: split-blk (persisted|wrote).*' | head -n 1)"
        else
            say "dom0: split-blk second boot found the write persisted: boot id $first_boot then $boot_id, '$SPLIT_PERSISTED', every check passed again"
        fi
    else
        say "dom0: split-blk reboot failed: keel reboot $SPLIT_DOMU"
    fi

    # --- kernels ----------------------------------------------------------------------------------
    problems=$(dmesg | grep -E 'BUG|panic|Oops|WARNING|soft lockup|hard LOCKUP|rcu.*stall|hung_task|Call Trace' \
        | grep -v 'RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable' | head -n 1)
    where=dom0
    if [ -z "$problems" ]; then
        problems=$(kernel_problems "$SPLIT_DOMU" | head -n 1)
        where=$SPLIT_DOMU
    fi
    if [ -z "$problems" ]; then
        say "dom0: split-blk kernels clean: dom0 and $SPLIT_DOMU"
    else
        say "dom0: split-blk kernel problems: $where: $problems"
    fi

    # --- a backend that dies, restarted -----------------------------------------------------------
    # The second boot reads vda in a loop ("domu: split-blk read pass N").
    # SIGKILL its backend mid-read: the request in flight waits; `keel
    # backend-restart` starts the same backend again, which continues the
    # queue from its used index; the passes go on.
    dead=$(keel_processes | head -n 1)
    dead_pid=${dead%%:*}
    passes_before=$(read_passes)
    if [ -n "$dead_pid" ] && kill -9 "$dead_pid" && wait_no_backend; then
        run keel block-list "$SPLIT_DOMU"
        stalled=$(read_passes)
        if run keel backend-restart "$SPLIT_DOMU"; then
            restart_start=$(now)
            passes=$(read_passes)
            while [ "${passes:-0}" -le $((${stalled:-0} + 1)) ] \
                && ! holds "waited >= limit" -v waited="$(since "$restart_start")" -v limit="$RESTART_WAIT"; do
                sleep "$LOOK_INTERVAL"
                passes=$(read_passes)
            done
            if [ "${passes:-0}" -gt $((${stalled:-0} + 1)) ]; then
                say "dom0: split-blk backend restarted after kill -9: $(keel_processes | head -n 1); read passes ${passes_before:-0} before the kill, ${stalled:-0} when restarted, $passes after $(since "$restart_start") s"
            else
                show_backend_logs
                say "dom0: split-blk backend restart failed: read passes stayed at ${passes:-0} (${stalled:-0} when restarted) for $RESTART_WAIT s"
            fi
        else
            say "dom0: split-blk backend restart failed: keel backend-restart $SPLIT_DOMU"
        fi
    else
        say "dom0: split-blk backend restart failed: cannot kill the backend '$dead'"
    fi

    # --- destroy: memory back, no backend left ---------------------------------------------------
    if destroy_domain "$SPLIT_DOMU" "after its checks"; then
        after=$(memory_back_to "$before")
        if [ -n "$before" ] && [ "$after" = "$before" ]; then
            say "dom0: split-blk destroyed domu-split-blk, memory restored"
        else
            say "dom0: split-blk memory leak: before=$before after=$after"
        fi
    fi
else
    show_backend_logs
    say "dom0: split-blk create failed: keel create $SPLIT_CONFIG"
fi

# --- no backend left (after a refused create too) ------------------------------------------------
if wait_no_backend; then
    say "dom0: split-blk no backend left"
else
    say "dom0: split-blk backend left behind ${BACKEND_WAIT} s after destroy: $(keel_processes | tr '\n' ';')"
fi

# --- the read-only image ------------------------------------------------------------------------
if [ -e "$RO_ORIGINAL" ] && cmp -s "$RO_ORIGINAL" "$RO_IMAGE"; then
    say "dom0: split-blk read-only image unchanged: $RO_IMAGE as before keel create ($(stat -c %s "$RO_IMAGE") bytes)"
else
    say "dom0: split-blk read-only image changed: $RO_IMAGE: $(cmp "$RO_ORIGINAL" "$RO_IMAGE" 2>&1 | head -n 1)"
fi

run keel list
say "dom0: split-blk checks done"
