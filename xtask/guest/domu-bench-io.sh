#!/bin/busybox sh
# The DomU side of `cargo xtask bench io` (xtask/src/commands/bench/io.rs):
# /lib/keel/domu-bench-io.sh in the DomU initramfs (built by
# xtask/src/guest/domu_initramfs.rs). The DomU's /init (domu-init.sh) runs it
# with `keel.domu=bench-io` on the kernel command line; Dom0's bench-io.sh
# (xtask/guest/bench-io.sh) drives it through the DomU's console.
#
# One disk, /dev/vda: Dom0's /var/lib/keel/split-rw.ext4 (16 MiB) served
# read-only by Dom0's backend (the split block driver, docs/virtio.md). In
# order:
#  setup     load the virtio drivers, wait for vda, check it is the
#            read-only 32768-sector disk, drop the page cache;
#  warm-up   read the first BENCH_IO_WARMUP_BLOCKS blocks (the driver's,
#            the backend's and Keel's paths run once before the measurement)
#            and time a `dd` that reads nothing (count=0: starting dd and
#            opening the disk, which the measurement subtracts);
#  ready     say "domu: bench-io ready warmup_bytes=... warmup_ns=...
#            startup_ns=... tsc_hz=...", then wait for a line with "go" on
#            the console (Dom0 takes its counter snapshot first, then types
#            it);
#  measure   say "domu: bench-io go", idle BENCH_IO_PAUSE s (Dom0's console
#            tool ends meanwhile), then read the whole disk with `dd
#            bs=65536 iflag=direct` (O_DIRECT: every block from the device,
#            one request each, one at a time), timed on the guest's clock,
#            with vda's request count (/sys/block/vda/stat) before and after;
#  result    say "domu: bench-io result bytes=... ns=... requests=...
#            sectors=... startup_ns=... tsc_hz=...", then wait (idle) for
#            another console line, say "domu: bench-io powering off" and
#            power off.
# Any failure says "domu: bench-io FAILED: <why>" and idles: Dom0 shows the
# console and destroys the domain (powering off would take the console with
# the domain before Dom0 has read it).
#
# Times come from /proc/timer_list's "now at <n> nsecs" (the monotonic
# clock in nanoseconds, which runs on the TSC), read by shell builtins so
# that taking a time starts no process. In Bochs the TSC counts emulated
# instructions, so times on this clock are instruction counts divided by the
# TSC rate Linux uses (tsc_hz, from its own `tsc:` lines).

export PATH=/bin

# tsc_hz: the rate this kernel's clock runs at.
. /lib/keel/tsc-hz.sh

say() {
    echo "$*" > /dev/kmsg
}

# The virtio drivers, in load order (kernel::SPLIT_BLK_MODULES).
BENCH_IO_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk"
# The disk, and its size in 512-byte sectors (split_disks::RW_SECTORS).
BENCH_IO_DISK=vda
BENCH_IO_SECTORS=32768
# Bytes per read: one request each.
BENCH_IO_BLOCK=65536
# Blocks the warm-up reads (2 MiB).
BENCH_IO_WARMUP_BLOCKS=32
# Seconds to wait for the disk once virtio_blk is loaded.
BENCH_IO_WAIT=60
# Seconds between "go" and the measured read.
BENCH_IO_PAUSE=2

# The failure line, then what the kernel said about the disk; then idle.
bench_io_failed() {
    say "domu: bench-io FAILED: $*"
    dmesg | grep -E 'virtio|vd[a-z]|blk_update|I/O error|Buffer I/O' | grep -v 'domu: ' | tail -n 12 \
        | while IFS= read -r line; do
            say "domu: bench-io kernel: $line"
        done
    while :; do
        sleep 60
    done
}

# Sets bench_io_ns to the monotonic clock, in nanoseconds (no process
# started: the header of /proc/timer_list, its third line "now at N nsecs").
bench_io_stamp() {
    { read -r _ && read -r _ && read -r _ _ bench_io_ns _; } < /proc/timer_list
}

# Sets bench_io_reads and bench_io_sectors from the disk's statistics
# (fields 1 and 3 of /sys/block/vda/stat: reads completed, sectors read).
bench_io_stat() {
    read -r bench_io_reads _ bench_io_sectors _ < "/sys/block/$BENCH_IO_DISK/stat"
}

# Reads the disk: $1 blocks of BENCH_IO_BLOCK bytes, O_DIRECT (count=0
# reads nothing).
bench_io_dd() {
    dd if="/dev/$BENCH_IO_DISK" of=/dev/null bs="$BENCH_IO_BLOCK" count="$1" iflag=direct 2> /tmp/bench-io-dd
}

# Waits for a console line containing $1; fails when the console ends.
bench_io_wait_line() {
    while :; do
        read -r line || bench_io_failed "the console ended while waiting for '$1'"
        case "$line" in
            *"$1"*) return 0 ;;
        esac
    done
}

for module in $BENCH_IO_MODULES; do
    insmod "/lib/modules/$module.ko" || bench_io_failed "insmod /lib/modules/$module.ko"
done
waited=0
while [ ! -b "/dev/$BENCH_IO_DISK" ]; do
    if [ "$waited" -ge "$BENCH_IO_WAIT" ]; then
        bench_io_failed "no /dev/$BENCH_IO_DISK ${BENCH_IO_WAIT} s after loading virtio_blk (disks: $(ls /sys/block | tr '\n' ' '))"
    fi
    sleep 1
    waited=$((waited + 1))
done
size=$(cat "/sys/block/$BENCH_IO_DISK/size")
ro=$(cat "/sys/block/$BENCH_IO_DISK/ro")
if [ "$size" != "$BENCH_IO_SECTORS" ] || [ "$ro" != 1 ]; then
    bench_io_failed "$BENCH_IO_DISK is not the read-only $BENCH_IO_SECTORS-sector disk: $size sectors, ro=$ro"
fi
sync
echo 3 > /proc/sys/vm/drop_caches

# --- warm-up, and the cost of starting dd ------------------------------------------------
bench_io_stamp
start=$bench_io_ns
bench_io_dd "$BENCH_IO_WARMUP_BLOCKS" || bench_io_failed "warm-up read: $(cat /tmp/bench-io-dd)"
bench_io_stamp
warmup_ns=$((bench_io_ns - start))
bench_io_stamp
start=$bench_io_ns
bench_io_dd 0 || bench_io_failed "dd count=0: $(cat /tmp/bench-io-dd)"
bench_io_stamp
startup_ns=$((bench_io_ns - start))
tsc_hz=$(tsc_hz)
say "domu: bench-io ready warmup_bytes=$((BENCH_IO_WARMUP_BLOCKS * BENCH_IO_BLOCK)) warmup_ns=$warmup_ns startup_ns=$startup_ns tsc_hz=$tsc_hz"

# --- the measured read ----------------------------------------------------------------------
bench_io_wait_line go
say "domu: bench-io go"
sleep "$BENCH_IO_PAUSE"
blocks=$((BENCH_IO_SECTORS * 512 / BENCH_IO_BLOCK))
bench_io_stat
reads_before=$bench_io_reads
sectors_before=$bench_io_sectors
bench_io_stamp
start=$bench_io_ns
bench_io_dd "$blocks"
status=$?
bench_io_stamp
ns=$((bench_io_ns - start))
bench_io_stat
[ "$status" = 0 ] || bench_io_failed "reading /dev/$BENCH_IO_DISK: $(cat /tmp/bench-io-dd)"
requests=$((bench_io_reads - reads_before))
sectors=$((bench_io_sectors - sectors_before))
if [ "$sectors" != "$BENCH_IO_SECTORS" ]; then
    bench_io_failed "the read took $sectors sectors from $BENCH_IO_DISK, not $BENCH_IO_SECTORS ($requests requests)"
fi
say "domu: bench-io result bytes=$((blocks * BENCH_IO_BLOCK)) ns=$ns requests=$requests sectors=$sectors startup_ns=$startup_ns tsc_hz=$tsc_hz"

# --- done: idle until Dom0 has its counters, then power off ----------------------------------
bench_io_wait_line off
say "domu: bench-io powering off"
poweroff -f
