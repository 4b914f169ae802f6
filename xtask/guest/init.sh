#!/bin/busybox sh
# /init of Keel's Dom0 initramfs (built by xtask/src/guest/initramfs.rs).
#
# With `keel.test=1` on the kernel command line it checks what Dom0 sees,
# prints one `dom0: ...` line per check for the boot tests and `bench boot`,
# and powers off; with `keel.test=domu` it runs the DomU checks
# (/usr/lib/keel/domu-test.sh: create, watch, list and destroy DomUs with
# /bin/keel) and powers off; with `keel.test=domu-sched`, `domu-faults`,
# `hostile`, `passthrough`, `passthrough-kvm`, `split-blk` or `split-net` it
# runs those checks
# (/usr/lib/keel/*-test.sh) and powers off;
# with `keel.test=domu-bench` it times one DomU
# boot for `bench boot`, with `keel.test=bench-io` it measures the split
# block driver for `bench io` (/usr/lib/keel/bench-io.sh), and powers off;
# otherwise it starts a shell on the console.

# --install needs /proc/self/exe to find the binary its links point to.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin

mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# Reports go through the kernel log rather than the console tty: printk
# writes each line whole and synchronously, so a kernel message can never
# split a report line, and `poweroff -f` cannot cut off output still
# queued in the tty (it did). Lines show as "[  12.34] dom0: ...".
echo on > /proc/sys/kernel/printk_devkmsg  # no rate limit on /dev/kmsg
say() {
    echo "$*" > /dev/kmsg
}

say "dom0: userspace started"

# The modules the virtio backends `keel create` starts need
# (kernel::DOM0_MODULES, in load order): uio, and uio_pci_generic, which a
# backend binds Keel's management function to; tun, through which the
# network backends' switch (`keel switch`) gives Dom0 its port, the TAP
# interface keel0. Loaded before any keel command; only the backends need
# them, so a failure is reported, not fatal.
for module in uio uio_pci_generic tun; do
    if ! insmod "/lib/modules/$module.ko"; then
        say "dom0: cannot load module $module (insmod /lib/modules/$module.ko failed); the virtio backends need it"
    fi
done

# "yes" when the first CPU's flags line lists $1.
cpu_flag() {
    flags=$(grep -m 1 '^flags' /proc/cpuinfo)
    case " ${flags#*:} " in
        *" $1 "*) echo yes ;;
        *) echo no ;;
    esac
}

# Seconds since boot, as the kernel counts them.
uptime_seconds() {
    read -r seconds _idle < /proc/uptime
    echo "$seconds"
}

run_checks() {
    say "dom0: cpuinfo hypervisor=$(cpu_flag hypervisor) vmx=$(cpu_flag vmx)"

    # `sleep` only returns if timer interrupts reach Dom0; the uptime must
    # then have moved on.
    before=$(uptime_seconds)
    sleep 1
    after=$(uptime_seconds)
    if awk -v before="$before" -v after="$after" 'BEGIN { exit !(after > before) }'; then
        say "dom0: clock advanced $before -> $after"
    else
        say "dom0: clock stuck $before -> $after"
    fi

    # Kernel bugs, oopses, panics and WARN splats. The RETBleed notice says
    # the CPU model (Bochs' Skylake) lacks a mitigation: no fault of Dom0's.
    problems=$(dmesg | grep -E 'BUG|panic|Oops|WARNING' \
        | grep -v 'RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable')
    if [ -z "$problems" ]; then
        say "dom0: dmesg clean"
    else
        say "dom0: dmesg problems:"
        echo "$problems" | while read -r line; do
            say "    $line"
        done
    fi
    say "dom0: checks done"
}

if grep -qwF 'keel.test=1' /proc/cmdline; then
    run_checks
    poweroff -f
fi

# The DomU scheduling and fault checks (domu-sched-test.sh,
# domu-faults-test.sh). Before keel.test=domu: grep -w takes "-" for a word
# boundary, so that flag's pattern also matches inside these.
if grep -qwF 'keel.test=domu-sched' /proc/cmdline; then
    /usr/lib/keel/domu-sched-test.sh
    poweroff -f
fi

if grep -qwF 'keel.test=domu-faults' /proc/cmdline; then
    /usr/lib/keel/domu-faults-test.sh
    poweroff -f
fi

# The hostile-guest checks (hostile-test.sh): Dom0 and a DomU misbehave
# against Keel while a witness DomU ticks.
if grep -qwF 'keel.test=hostile' /proc/cmdline; then
    /usr/lib/keel/hostile-test.sh
    poweroff -f
fi

# The PCI passthrough checks with VT-d (passthrough-kvm-test.sh): the host's
# NVMe controller goes to a DomU with its DMA confined by the IOMMU. Before
# keel.test=passthrough: grep -w takes "-" for a word boundary, so that
# flag's pattern also matches inside this one.
if grep -qwF 'keel.test=passthrough-kvm' /proc/cmdline; then
    /usr/lib/keel/passthrough-kvm-test.sh
    poweroff -f
fi

# The PCI passthrough checks (passthrough-test.sh): the host's IDE function
# goes to a DomU, whose own driver reads the disk behind it.
if grep -qwF 'keel.test=passthrough' /proc/cmdline; then
    /usr/lib/keel/passthrough-test.sh
    poweroff -f
fi

# The split block device checks (split-blk-test.sh): a DomU's virtio-blk
# disks, served by backend processes in Dom0 from image files.
if grep -qwF 'keel.test=split-blk' /proc/cmdline; then
    /usr/lib/keel/split-blk-test.sh
    poweroff -f
fi

# The split network device checks (split-net-test.sh): two DomUs' virtio-net
# NICs, served by backend processes in Dom0 and joined by a switch with a
# port for Dom0 (keel0).
if grep -qwF 'keel.test=split-net' /proc/cmdline; then
    /usr/lib/keel/split-net-test.sh
    poweroff -f
fi

# `cargo xtask bench boot` (xtask/src/commands/bench/boot.rs) times one
# DomU boot: from `keel create` to the DomU's userspace marker, by the lines
# Dom0 says around it (their timestamps are Dom0's clock) and DomU's own.
# domu2 powers off right after its marker; with on_poweroff = "destroy"
# Keel then prints its exits and removes it, which Dom0 waits for. Checked
# before keel.test=domu: grep -w takes "-" for a word boundary, so that
# flag's test matches this one too.
if grep -qwF 'keel.test=domu-bench' /proc/cmdline; then
    say "dom0: domu-bench create"
    if keel create /etc/keel/domu-poweroff.toml; then
        # Not echoed: the bench looks for DomU's own line.
        if keel console domu2 --until 'domu: userspace started' --timeout 600; then
            echo
            say "dom0: domu-bench marker seen"
        else
            status=$?
            echo
            say "dom0: domu-bench failed: keel console status $status"
        fi
        waited=0
        while keel list | grep -qw domu2; do
            if [ "$waited" -ge 120 ]; then
                keel list
                say "dom0: domu-bench failed: domu2 still listed 120 s after its marker"
                break
            fi
            sleep 1
            waited=$((waited + 1))
        done
    else
        say "dom0: domu-bench failed: keel create status $?"
    fi
    say "dom0: domu-bench done"
    poweroff -f
fi

# `cargo xtask bench io` (xtask/src/commands/bench/io.rs): sequential reads
# of one image file natively and from a DomU through virtio-blk, with Keel's
# exit counters around the DomU's read (bench-io.sh).
if grep -qwF 'keel.test=bench-io' /proc/cmdline; then
    /usr/lib/keel/bench-io.sh
    poweroff -f
fi

if grep -qwF 'keel.test=domu' /proc/cmdline; then
    /usr/lib/keel/domu-test.sh
    poweroff -f
fi

echo
echo "Keel Dom0: busybox shell on the console ('poweroff -f' or 'exit' powers off)."
setsid cttyhack sh
# Also reached at once when the console has no input side (a serial port
# that only logs to a file).
say "dom0: console shell exited, powering off"
poweroff -f
